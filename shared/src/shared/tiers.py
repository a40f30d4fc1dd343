"""The tier rule (DESIGN §6), in one place for every service that derives it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

Tier = Literal["BASIC", "PRO"]
PAID_STATUSES = frozenset({"active", "trialing"})


def derive_tier(
    status: str | None,
    current_period_end: datetime | None,
    now: datetime,
    grace_until: datetime | None = None,
) -> Tier:
    """PRO while the subscription is active or trialing and its period has not ended, or
    past_due before the grace period ends; BASIC otherwise."""
    if status == "past_due" and grace_until is not None and now < grace_until:
        return "PRO"
    period_open = current_period_end is not None and now < current_period_end
    return "PRO" if status in PAID_STATUSES and period_open else "BASIC"

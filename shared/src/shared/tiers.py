"""The tier rule (DESIGN §6), in one place for every service that derives it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from shared.erasure import digest
from shared.events import SubscriptionChanged

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


# -- the tier projection kept by services that consume SubscriptionChanged ----------------
# Its table, `tier_projection`, is defined once, in shared/sql/tiers/ (TIER_PROJECTION in
# shared.migrations), in the schema of each service that includes it (auth, chat); the
# tier is derived from it at read time.


@dataclass(frozen=True)
class SubscriptionState:
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    grace_until: datetime | None
    as_of: datetime
    current_period_start: datetime | None = None

    def tier(self, now: datetime) -> Tier:
        return derive_tier(self.status, self.current_period_end, now, self.grace_until)


async def subscription_state(conn: AsyncConnection, user_id: uuid.UUID) -> SubscriptionState | None:
    async with conn.cursor(row_factory=class_row(SubscriptionState)) as cur:
        await cur.execute(
            "SELECT status, current_period_end, cancel_at_period_end, grace_until, as_of,"
            " current_period_start FROM tier_projection WHERE user_id = %s",
            (user_id,),
        )
        return await cur.fetchone()


async def project_subscription_changed(conn: AsyncConnection, event: SubscriptionChanged) -> bool:
    """Apply the event unless the stored state is newer or the user was erased; True when
    it was applied."""
    cur = await conn.execute(
        """
        INSERT INTO tier_projection AS s
            (user_id, status, current_period_start, current_period_end, cancel_at_period_end,
             grace_until, as_of)
        SELECT %s, %s, %s, %s, %s, %s, %s
         WHERE NOT EXISTS (SELECT 1 FROM erased_users WHERE digest = %s)
        ON CONFLICT (user_id) DO UPDATE
           SET status = EXCLUDED.status, current_period_start = EXCLUDED.current_period_start,
               current_period_end = EXCLUDED.current_period_end,
               cancel_at_period_end = EXCLUDED.cancel_at_period_end,
               grace_until = EXCLUDED.grace_until, as_of = EXCLUDED.as_of
         WHERE s.as_of < EXCLUDED.as_of
        """,
        (
            event.user_id,
            event.status,
            event.current_period_start,
            event.current_period_end,
            event.cancel_at_period_end,
            event.grace_until,
            event.as_of,
            digest(event.user_id),
        ),
    )
    return cur.rowcount == 1


async def erase_user(conn: AsyncConnection, user_id: uuid.UUID) -> None:
    """The user's projection row goes, and no later SubscriptionChanged brings it back."""
    await conn.execute("DELETE FROM tier_projection WHERE user_id = %s", (user_id,))
    await conn.execute(
        "INSERT INTO erased_users (digest) VALUES (%s) ON CONFLICT DO NOTHING",
        (digest(user_id),),
    )

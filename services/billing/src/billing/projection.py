"""The subscription projection as pure functions of Stripe subscription snapshots.

Live webhook handling and ``python -m billing rebuild`` both fold snapshots through
:func:`apply_snapshot` in ``as_of`` order and derive each user's plan with
:func:`plan_for`, so a rebuild from the event log gives the same projection.

Only a subscription to the Pro price (``STRIPE_PRO_PRICE_ID``) can make a user Pro: any
other subscription of the Stripe account (another product, a price made in the dashboard)
is kept in the projection but never stands for the user's plan.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.tiers import Tier, derive_tier


@dataclass(frozen=True)
class Subscription:
    stripe_subscription_id: str
    user_id: uuid.UUID
    stripe_customer_id: str
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    ended_at: datetime | None
    past_due_since: datetime | None
    as_of: datetime
    # The prices of the subscription's items (a list when read back from Postgres).
    price_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "price_ids", tuple(self.price_ids))

    def is_for(self, price_id: str) -> bool:
        return price_id in self.price_ids


# The plan of a user none of whose subscriptions is for the Pro price: no subscription, no
# period, so every consumer derives BASIC from it (shared.tiers.derive_tier).
NO_PLAN_STATUS = "none"


@dataclass(frozen=True)
class Plan:
    user_id: uuid.UUID
    stripe_subscription_id: str | None
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    grace_until: datetime | None
    as_of: datetime

    def tier(self, now: datetime) -> Tier:
        return derive_tier(self.status, self.current_period_end, now, self.grace_until)

    def announces_the_same_as(self, other: Plan | None) -> bool:
        """No SubscriptionChanged is due when nothing a consumer derives from changed."""
        if other is None:
            return False
        fields = (
            "stripe_subscription_id",
            "status",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "grace_until",
        )
        return all(getattr(self, f) == getattr(other, f) for f in fields)


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def user_id_of(snapshot: dict[str, Any]) -> str | None:
    return (snapshot.get("metadata") or {}).get("userId")


def _price_id(item: dict[str, Any]) -> str | None:
    price = item.get("price")
    if isinstance(price, dict):
        price = price.get("id")
    return str(price) if price else None


def apply_snapshot(
    current: Subscription | None,
    snapshot: dict[str, Any],
    user_id: uuid.UUID,
    as_of: datetime,
) -> Subscription | None:
    """The projection row after ``snapshot``; None when ``current`` is newer (kept)."""
    if current is not None and current.as_of >= as_of:
        return None
    items = (snapshot.get("items") or {}).get("data") or [{}]
    item = items[0]
    status = str(snapshot.get("status") or "incomplete")
    past_due_since = None
    if status == "past_due":
        past_due_since = (
            current.past_due_since
            if current is not None and current.status == "past_due" and current.past_due_since
            else as_of
        )
    customer = snapshot.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    prices = (_price_id(i) for i in (snapshot.get("items") or {}).get("data") or [])
    return Subscription(
        stripe_subscription_id=str(snapshot["id"]),
        user_id=user_id,
        stripe_customer_id=str(customer or ""),
        status=status,
        current_period_start=_ts(item.get("current_period_start")),
        current_period_end=_ts(item.get("current_period_end")),
        cancel_at_period_end=bool(snapshot.get("cancel_at_period_end")),
        ended_at=_ts(snapshot.get("ended_at")),
        past_due_since=past_due_since,
        as_of=as_of,
        price_ids=tuple(p for p in prices if p),
    )


def plan_for(
    user_id: uuid.UUID, subscriptions: list[Subscription], grace: timedelta, pro_price_id: str
) -> Plan:
    """The user's plan: of their subscriptions to ``pro_price_id``, the one that gave PRO as
    of the newest snapshot if one did, else the newest; with none to that price, no plan
    (BASIC). A function of the snapshots and the price alone, so a rebuild gives the same."""

    def plan(sub: Subscription) -> Plan:
        grace_until = sub.past_due_since + grace if sub.past_due_since else None
        return Plan(
            user_id=user_id,
            stripe_subscription_id=sub.stripe_subscription_id,
            status=sub.status,
            current_period_start=sub.current_period_start,
            current_period_end=sub.current_period_end,
            cancel_at_period_end=sub.cancel_at_period_end,
            grace_until=grace_until,
            as_of=sub.as_of,
        )

    newest = max(s.as_of for s in subscriptions)
    pro = [s for s in subscriptions if s.is_for(pro_price_id)]
    if not pro:
        return Plan(
            user_id=user_id,
            stripe_subscription_id=None,
            status=NO_PLAN_STATUS,
            current_period_start=None,
            current_period_end=None,
            cancel_at_period_end=False,
            grace_until=None,
            as_of=newest,
        )
    plans = [plan(s) for s in sorted(pro, key=lambda s: s.as_of, reverse=True)]
    paying = [p for p in plans if p.tier(newest) == "PRO"]
    return replace(paying[0] if paying else plans[0], as_of=newest)

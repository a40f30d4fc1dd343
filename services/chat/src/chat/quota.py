"""The daily prompt quota of the Basic tier: what a user has used today, taking a unit,
and the 429 with its rate-limit headers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from chat import repository
from chat.context import ChatContext
from chat.settings import Settings
from shared.db import Database, Transaction
from shared.errors import AppError
from shared.tiers import SubscriptionState, Tier, subscription_state


@dataclass(frozen=True)
class Usage:
    tier: Tier
    limit: int | None
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


class DailyLimitReached(AppError):
    status_code = 429
    code = "daily_limit_reached"

    def __init__(self, usage: Usage) -> None:
        assert usage.limit is not None
        reset = int(usage.resets_at.timestamp())
        retry_after = max(1, reset - int(datetime.now(UTC).timestamp()))
        super().__init__(
            f"Daily prompt limit ({usage.limit}) reached for Basic tier."
            " Please upgrade to Pro for more usage.",
            headers={"Retry-After": str(retry_after)} | rate_limit_headers(usage),
            extra={
                "limit": usage.limit,
                "used": usage.used,
                "resetsAt": usage.resets_at.isoformat().replace("+00:00", "Z"),
            },
        )


def rate_limit_headers(usage: Usage) -> dict[str, str]:
    if usage.limit is None:
        return {}
    return {
        "X-RateLimit-Limit": str(usage.limit),
        "X-RateLimit-Remaining": str(usage.remaining),
        "X-RateLimit-Reset": str(int(usage.resets_at.timestamp())),
    }


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(utc_day(now) + timedelta(days=1), time(0), tzinfo=UTC)


def tier_from(state: SubscriptionState | None, now: datetime) -> Tier:
    """The tier a user's projected subscription gives now (BASIC without one)."""
    return state.tier(now) if state else "BASIC"


def daily_limit(settings: Settings, tier: Tier) -> int | None:
    """Prompts a UTC day for ``tier``; None: unlimited (Pro)."""
    return settings.basic_tier_daily_prompt_limit if tier == "BASIC" else None


async def tier_of(tx: Transaction, user_id: uuid.UUID, now: datetime) -> Tier:
    return tier_from(await subscription_state(tx.conn, user_id), now)


async def usage(db: Database, ctx: ChatContext, user_id: uuid.UUID) -> Usage:
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        tier = await tier_of(tx, user_id, now)
        used = await repository.quota_used(tx.conn, user_id, utc_day(now))
    return Usage(tier, daily_limit(ctx.settings, tier), used, next_midnight(now))


async def take_quota(tx: Transaction, ctx: ChatContext, user_id: uuid.UUID, now: datetime) -> Usage:
    """Count one prompt against today's quota (Basic), or raise 429 at the limit."""
    tier = await tier_of(tx, user_id, now)
    limit = daily_limit(ctx.settings, tier)
    used = await repository.take_quota_unit(tx.conn, user_id, utc_day(now), limit)
    if used is None:
        assert limit is not None
        raise DailyLimitReached(Usage(tier, limit, limit, next_midnight(now)))
    return Usage(tier, limit, used, next_midnight(now))

"""Rate limits of the unauthenticated routes, kept in Redis.

Two kinds, both atomic, both checked per number before per client address (so one busy
address cannot use up a number's budget for everyone, and a refusal by number costs the
address nothing):

- **Hits** (code sends, signups): the `limits` library's moving windows; every request
  counts.
- **Attempts** (password logins, code checks): taken *before* the slow or secret-revealing
  work starts and forgiven when it succeeds, so only failures use the budget, yet 60
  concurrent guesses cannot all start while the count is still low (a check-then-count
  limit lets every one of them through). `limits` cannot give a hit back, so attempts are
  a small Lua script over one sorted set per subject (:class:`AttemptLimiter`).

A number is counted under a keyed hash of it (``Throttle._number``), never in clear.

Every refusal raises :class:`shared.errors.RateLimited` (429 with ``Retry-After``). If
Redis is down nothing can be counted, so every limited route refuses with 503.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from auth import metrics
from auth.settings import Settings
from shared.errors import RateLimited, ServiceUnavailable
from shared.redis import reconnecting

log = structlog.get_logger(__name__)
T = TypeVar("T")

HOUR = 3600
DAY = 86_400
KEY_PREFIX = "auth-attempts"


async def _storage(call: Awaitable[T]) -> T:
    """Redis down means we cannot count: refuse (503) rather than let floods through."""
    try:
        return await call
    except StorageError as exc:
        log.error("throttle.storage_unavailable", error=repr(exc.storage_error))
        raise ServiceUnavailable() from exc


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` unforgiven attempts per ``window`` seconds for one subject."""

    name: str
    limit: int
    window: int
    message: str


# KEYS: one sorted set per budget. ARGV: the attempt's id, then a window (ms) and a limit
# per key. Members are attempt ids scored by their start time (ms, Redis's clock). Either
# every key takes the attempt or none does; a refusal returns the 1-based index of the
# full budget and the milliseconds until its oldest attempt leaves the window.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
for i, key in ipairs(KEYS) do
    local window = tonumber(ARGV[2 * i])
    local limit = tonumber(ARGV[2 * i + 1])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) >= limit then
        local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
        return {i, tonumber(oldest[2]) + window - now}
    end
end
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[1])
    redis.call('PEXPIRE', key, tonumber(ARGV[2 * i]))
end
return {0, 0}
"""


class Attempt:
    """A taken attempt: :meth:`forgive` it once the guarded action succeeded."""

    def __init__(self, limiter: AttemptLimiter, keys: list[str], attempt_id: str) -> None:
        self._limiter = limiter
        self._keys = keys
        self._id = attempt_id

    async def forgive(self) -> None:
        try:
            async with self._limiter.redis.pipeline(transaction=True) as pipe:
                for key in self._keys:
                    pipe.zrem(key, self._id)
                await pipe.execute()
        except RedisError as exc:  # the attempt then counts as a failure: the safe side
            log.warning("throttle.forgive_failed", error=repr(exc))


class AttemptLimiter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)

    async def take(self, *budgets: tuple[Budget, str]) -> Attempt:
        """One attempt against every ``(budget, subject)``, all or none; raises 429 naming
        the first full budget."""
        keys = [f"{KEY_PREFIX}:{budget.name}:{subject}" for budget, subject in budgets]
        args: list[str | int] = [uuid.uuid4().hex]
        for budget, _ in budgets:
            args += [budget.window * 1000, budget.limit]
        try:
            full, wait_ms = await self._take(keys=keys, args=args)
        except RedisError as exc:
            log.error("throttle.storage_unavailable", error=repr(exc))
            raise ServiceUnavailable() from exc
        if full:
            budget = budgets[int(full) - 1][0]
            log.info("throttle.attempts_refused", budget=budget.name)
            metrics.THROTTLED.labels(budget.name).inc()
            raise RateLimited(
                budget.message, code="too_many_attempts", retry_after=math.ceil(wait_ms / 1000)
            )
        return Attempt(self, keys, str(args[0]))


class Throttle:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.storage = RedisStorage(
            f"async+{settings.redis_url}",
            implementation="redispy",
            key_prefix="auth-limits",
            wrap_exceptions=True,
            retry=reconnecting(),  # type: ignore[arg-type]  # limits: redis options typed as scalars
            retry_on_error=[RedisConnectionError],  # type: ignore[arg-type]  # limits: as above
        )
        self.limiter = MovingWindowRateLimiter(self.storage)
        # Numbers are counted under a keyed hash: Redis never holds one in clear, so the
        # windows can outlive an account deleted meanwhile without keeping its number.
        self._number_key = hashlib.sha256(
            b"throttle-number:" + settings.jwt_secret.encode()
        ).digest()
        self.attempts = AttemptLimiter(redis)
        cooldown = settings.otp_resend_cooldown_seconds
        self.resend_cooldown: RateLimitItem | None = (
            RateLimitItemPerSecond(1, cooldown) if cooldown > 0 else None
        )
        self.sends_per_number = RateLimitItemPerHour(settings.otp_sends_per_number_per_hour)
        self.sends_per_ip = RateLimitItemPerHour(settings.otp_sends_per_ip_per_hour)
        self.signups_per_number = RateLimitItemPerHour(settings.signups_per_number_per_hour)
        self.signups_per_ip = RateLimitItemPerHour(settings.signups_per_ip_per_hour)
        self.login_per_number = Budget(
            "login-number",
            settings.login_failures_per_number_per_hour,
            HOUR,
            "Too many failed logins for this number. Try again later or log in with a code.",
        )
        self.login_per_ip = Budget(
            "login-ip",
            settings.login_failures_per_ip_per_hour,
            HOUR,
            "Too many failed logins from this network. Try again later.",
        )
        self.codes_per_number = Budget(
            "code-number",
            settings.otp_failures_per_number_per_day,
            DAY,
            "Too many wrong codes for this number: code checks are locked for now. "
            "Try again after the time in Retry-After.",
        )
        self.codes_per_ip = Budget(
            "code-ip",
            settings.otp_failures_per_ip_per_hour,
            HOUR,
            "Too many wrong codes from this network. Try again later.",
        )

    def _number(self, mobile_number: str) -> str:
        return hmac.new(self._number_key, mobile_number.encode(), hashlib.sha256).hexdigest()[:32]

    async def _retry_after(self, item: RateLimitItem, *ids: str) -> int:
        stats = await _storage(self.limiter.get_window_stats(item, *ids))
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _hit(self, item: RateLimitItem, message: str, *ids: str) -> None:
        if not await _storage(self.limiter.hit(item, *ids)):
            log.info("throttle.refused", limit=ids[0])
            metrics.THROTTLED.labels(ids[0]).inc()
            raise RateLimited(message, retry_after=await self._retry_after(item, *ids))

    async def otp_send(self, mobile_number: str, ip: str) -> None:
        if self.resend_cooldown is not None:
            await self._hit(
                self.resend_cooldown,
                "A code was just sent to this number. Wait before asking for another.",
                "otp-cooldown",
                self._number(mobile_number),
            )
        await self._hit(
            self.sends_per_number,
            "Too many codes requested for this number. Try again later.",
            "otp-number",
            self._number(mobile_number),
        )
        await self._hit(
            self.sends_per_ip,
            "Too many codes requested from this network. Try again later.",
            "otp-ip",
            ip,
        )

    async def signup(self, mobile_number: str, ip: str) -> None:
        await self._hit(
            self.signups_per_number,
            "Too many sign-ups for this number. Try again later.",
            "signup-number",
            self._number(mobile_number),
        )
        await self._hit(
            self.signups_per_ip,
            "Too many sign-ups from this network. Try again later.",
            "signup-ip",
            ip,
        )

    async def login_attempt(self, mobile_number: str, ip: str) -> Attempt:
        return await self.attempts.take(
            (self.login_per_number, self._number(mobile_number)), (self.login_per_ip, ip)
        )

    async def code_attempt(self, mobile_number: str, ip: str) -> Attempt:
        return await self.attempts.take(
            (self.codes_per_number, self._number(mobile_number)), (self.codes_per_ip, ip)
        )

"""Rate limits on OTP sends and password logins, kept in Redis with the `limits` library.

Moving windows, so a burst at the end of one hour and the start of the next is still
limited. Every limit raises :class:`shared.errors.RateLimited` (429 with ``Retry-After``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from typing import TypeVar

import structlog
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import ConnectionError as RedisConnectionError

from auth.settings import Settings
from shared.errors import RateLimited, ServiceUnavailable
from shared.redis import reconnecting

log = structlog.get_logger(__name__)
T = TypeVar("T")


async def _storage(call: Awaitable[T]) -> T:
    """Redis down means we cannot count: refuse (503) rather than let floods through."""
    try:
        return await call
    except StorageError as exc:
        log.error("throttle.storage_unavailable", error=repr(exc.storage_error))
        raise ServiceUnavailable() from exc


class Throttle:
    def __init__(self, settings: Settings) -> None:
        url = settings.redis_url
        self.storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            key_prefix="auth-limits",
            wrap_exceptions=True,
            retry=reconnecting(),
            retry_on_error=[RedisConnectionError],
        )
        self.limiter = MovingWindowRateLimiter(self.storage)
        cooldown = settings.otp_resend_cooldown_seconds
        self.resend_cooldown: RateLimitItem | None = (
            RateLimitItemPerSecond(1, cooldown) if cooldown > 0 else None
        )
        self.sends_per_number = RateLimitItemPerHour(settings.otp_sends_per_number_per_hour)
        self.sends_per_ip = RateLimitItemPerHour(settings.otp_sends_per_ip_per_hour)
        self.login_failures = RateLimitItemPerHour(settings.login_failures_per_number_per_hour)

    async def _retry_after(self, item: RateLimitItem, *ids: str) -> int:
        stats = await _storage(self.limiter.get_window_stats(item, *ids))
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _hit(self, item: RateLimitItem, message: str, *ids: str) -> None:
        if not await _storage(self.limiter.hit(item, *ids)):
            raise RateLimited(message, retry_after=await self._retry_after(item, *ids))

    async def otp_send_from_ip(self, ip: str) -> None:
        await self._hit(
            self.sends_per_ip,
            "Too many codes requested from this network. Try again later.",
            "otp-ip",
            ip,
        )

    async def otp_send_to_number(self, mobile_number: str) -> None:
        if self.resend_cooldown is not None:
            await self._hit(
                self.resend_cooldown,
                "A code was just sent to this number. Wait before asking for another.",
                "otp-cooldown",
                mobile_number,
            )
        await self._hit(
            self.sends_per_number,
            "Too many codes requested for this number. Try again later.",
            "otp-number",
            mobile_number,
        )

    async def check_login_allowed(self, mobile_number: str) -> None:
        if not await _storage(self.limiter.test(self.login_failures, "login-fail", mobile_number)):
            raise RateLimited(
                "Too many failed logins for this number. Try again later or log in with an OTP.",
                retry_after=await self._retry_after(
                    self.login_failures, "login-fail", mobile_number
                ),
            )

    async def record_login_failure(self, mobile_number: str) -> None:
        await _storage(self.limiter.hit(self.login_failures, "login-fail", mobile_number))

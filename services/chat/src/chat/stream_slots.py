"""The bounds on open reply streams (DESIGN §7). An open stream holds a Redis connection in
a blocking read, so their number is bounded: per user across every chat process (a lease
per stream in Redis, renewed while it is open, so a process that dies cannot keep slots),
and per process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from chat import metrics
from chat.settings import Settings
from chat.streaming import SseEvent
from shared.errors import RateLimited, ServiceUnavailable

log = structlog.get_logger(__name__)


# Taking, renewing or giving back a stream slot: Redis answers within this or not at all.
SLOT_TIMEOUT_SECONDS = 2.0
# What a refused stream is told; a slot frees as soon as another stream of the user ends.
STREAM_RETRY_AFTER_SECONDS = 5

# -- bounds on open streams --------------------------------------------------------------

# Takes or renews one stream's lease in a user's sorted set of leases (member: lease id,
# score: expiry in ms of Redis's clock, the one clock every chat process shares). Expired
# leases are dropped first; a new lease is refused (0) when the user holds the limit.
# One script, so concurrent takers cannot both see room for one more. (TIME before writes
# needs Redis 5 or later, where scripts replicate their effects.)
_TAKE_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease_ms)
return 1
"""


def leases_key(user_id: uuid.UUID) -> str:
    return f"chat:streams:{user_id}"


class TooManyStreams(RateLimited):
    """429: the user has ``max_streams_per_user`` streams open."""

    code = "too_many_streams"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You already have {limit} reply streams open, the most allowed at once."
            " Close one (or let it finish) to open another.",
            retry_after=STREAM_RETRY_AFTER_SECONDS,
        )


def _streams_unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        message,
        code="streams_unavailable",
        headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
    )


class StreamSlots:
    """The open streams of this process (``open``), and the leases of every user's
    streams in Redis. One per process."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.per_user = settings.max_streams_per_user
        self.per_process = settings.max_open_streams
        self.lease_ms = settings.stream_lease_seconds * 1000
        self.open = 0
        self._take_lease = redis.register_script(_TAKE_LEASE)
        metrics.OPEN_STREAMS.set_function(lambda: self.open)

    async def take(self, user_id: uuid.UUID) -> Lease:
        """A slot for one more stream of ``user_id``: 503 when this process serves its
        limit or Redis does not answer (never unlimited), 429 at the user's limit."""
        if self.open >= self.per_process:
            log.warning("chat.stream_process_limit_reached", limit=self.per_process)
            raise _streams_unavailable(
                "This server has as many reply streams open as it can serve. Try again"
                " shortly, or read the reply from the chatroom."
            )
        self.open += 1  # before any await: concurrent requests see it
        lease = Lease(self, leases_key(user_id), uuid.uuid4().hex)
        try:
            admitted = await lease.renew()
        except (RedisError, TimeoutError) as exc:
            self.open -= 1
            log.warning("chat.stream_slot_unavailable", error=repr(exc))
            raise _streams_unavailable(
                "Reply streams are unavailable right now. Try again shortly."
            ) from None
        if not admitted:
            self.open -= 1
            log.info("chat.stream_limit_reached", user_id=str(user_id), limit=self.per_user)
            raise TooManyStreams(self.per_user)
        return lease


class Lease:
    """One open stream's slot: renewed while the stream is sent, given back at its end."""

    def __init__(self, slots: StreamSlots, key: str, lease_id: str) -> None:
        self.slots = slots
        self.key = key
        self.id = lease_id
        self.lost = False
        self.released = False

    @property
    def held(self) -> bool:
        return not (self.lost or self.released)

    async def renew(self) -> bool:
        """Take or extend the lease; False when it had expired and the user's slots were
        taken meanwhile."""
        slots = self.slots
        async with asyncio.timeout(SLOT_TIMEOUT_SECONDS):
            taken = await slots._take_lease(
                keys=[self.key], args=[self.id, slots.per_user, slots.lease_ms]
            )
        return bool(taken)

    async def _keep(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.slots.lease_ms / 3000)
            try:
                if not await self.renew():
                    self.lost = True
                    log.warning("chat.stream_slot_lost", lease=self.id)
                    return
                failing = False
            except (RedisError, TimeoutError) as exc:
                if not failing:  # once per outage: the lease expires on its own
                    log.warning("chat.stream_slot_renew_failed", error=repr(exc))
                failing = True

    @asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the lease in the background until the block ends, then give it back."""
        keeper = asyncio.create_task(self._keep(), name=f"stream-lease-{self.id}")
        try:
            yield
        finally:
            keeper.cancel()
            await self.release()

    async def release(self) -> None:
        """Give the slot back; once, whatever cancels the stream around it."""
        if self.released:
            return
        self.released = True
        self.slots.open -= 1
        with anyio.move_on_after(SLOT_TIMEOUT_SECONDS, shield=True):
            try:
                await self.slots.redis.zrem(self.key, self.id)
            except RedisError as exc:  # it expires on its own
                log.warning("chat.stream_slot_release_failed", error=repr(exc))


class LeasedEventSourceResponse(EventSourceResponse):
    """An SSE response that holds a stream slot while it is sent, and gives it back
    however it ends: done, client gone, error or server shutdown."""

    def __init__(self, content: AsyncIterator[SseEvent], lease: Lease, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.lease.kept():
            await super().__call__(scope, receive, send)

"""A process-local copy of the Redis keys under one prefix, trusted only while Redis is
telling this process of every change to them (client-side caching: ``CLIENT TRACKING`` in
broadcast mode).

One connection of its own, in RESP2, turns tracking on for the prefix with its invalidation
messages redirected to itself and subscribes to ``__redis__:invalidate``. From then on Redis
sends it the name of every key under the prefix that any client sets, deletes or lets
expire, before it answers the client that wrote it, and ``None`` when a database is flushed.
A value is dropped from the copy when its key is named.

The copy is read only while the connection is known to be alive: it answers a ``PING``
every ``PING_SECONDS`` and the last answer is under ``SILENCE_SECONDS`` old. Otherwise
(Redis restarting, a network that went quiet, this process frozen or its loop stalled) the
copy is emptied or ignored and every read goes to Redis again, as if there were no copy.

A value read from Redis is kept only if no key was named, and the connection did not
change, while it was being read (:meth:`TrackedKeys.generation`): the invalidation for a
write made just after the read may reach this process before the read's own answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from shared.aio import sleep_unless

log = structlog.get_logger(__name__)

INVALIDATE_CHANNEL = "__redis__:invalidate"
CLIENT_NAME = "key-tracking"  # how the connection shows in CLIENT LIST
PING_SECONDS = 0.5
# Longer than a ping's round trip under load, short enough that a connection that went
# quiet is not trusted for long.
SILENCE_SECONDS = 1.5
RECONNECT_SECONDS = 1.0
MAX_RECONNECT_SECONDS = 30.0
# Oldest value out first once the copy holds this many.
MAX_ENTRIES = 100_000


class Missing:
    """What :meth:`TrackedKeys.get` returns for a key it cannot answer for."""


MISSING = Missing()


class TrackedKeys:
    """The copy; :meth:`run` keeps the tracking connection (a :class:`shared.aio.Background`
    loop)."""

    def __init__(self, url: str, prefix: str, *, max_entries: int = MAX_ENTRIES) -> None:
        self.url = url
        self.prefix = prefix
        self.max_entries = max_entries
        self._values: dict[str, Any] = {}
        self._generation = 0
        self._live = False
        self._heard_at = 0.0
        self.client_id: int | None = None  # the tracking connection's, once it has one
        self.followings = 0  # how many times the copy has started being trusted

    def trusted(self) -> bool:
        """True while the copy is read: the connection is following and answered lately."""
        return self._live and time.monotonic() - self._heard_at < SILENCE_SECONDS

    @property
    def generation(self) -> int:
        """Taken before reading a key from Redis, handed back to :meth:`put`."""
        return self._generation

    def get(self, key: str) -> Any:
        """The key's value as last put, or ``MISSING``."""
        if not self.trusted():
            return MISSING
        return self._values.get(key, MISSING)

    def put(self, key: str, value: Any, generation: int) -> None:
        """Keep ``value``, read from Redis since ``generation`` was taken, unless a key was
        named or the connection changed in between."""
        if generation != self._generation or not self.trusted():
            return
        if key not in self._values and len(self._values) >= self.max_entries:
            del self._values[next(iter(self._values))]
        self._values[key] = value

    def _forget(self, keys: list[str] | None) -> None:
        self._generation += 1
        if keys is None:
            self._values.clear()
            return
        for key in keys:
            self._values.pop(key, None)

    def _drop(self) -> None:
        self._live = False
        self._forget(None)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the prefix until ``stop``; connect again whenever the connection fails,
        waiting twice as long after each attempt that never got as far as following (a
        Redis that refuses CLIENT TRACKING is asked again every MAX_RECONNECT_SECONDS)."""
        delay = RECONNECT_SECONDS
        while not stop.is_set():
            followed = self.followings
            try:
                await self._follow(stop)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("tracking.lost", prefix=self.prefix, error=repr(exc))
            if self.followings != followed:
                delay = RECONNECT_SECONDS
            else:
                delay = min(delay * 2, MAX_RECONNECT_SECONDS)
            await sleep_unless(stop, delay)

    async def _follow(self, stop: asyncio.Event) -> None:
        pool = ConnectionPool.from_url(
            self.url,
            protocol=2,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=None,
            health_check_interval=0,
        )
        connection = pool.make_connection()  # type: ignore[no-untyped-call]  # redis-py: unannotated
        try:
            await connection.connect()
            await connection.send_command("CLIENT", "SETNAME", CLIENT_NAME)
            await connection.read_response()
            await connection.send_command("CLIENT", "ID")
            self.client_id = client_id = await connection.read_response()
            await connection.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self.prefix
            )
            await connection.read_response()
            await connection.send_command("SUBSCRIBE", INVALIDATE_CHANNEL)
            await connection.read_response()
            self._forget(None)
            self._heard_at = time.monotonic()
            self._live = True
            self.followings += 1
            log.info("tracking.following", prefix=self.prefix, client_id=client_id)
            reader = asyncio.create_task(self._read(connection))
            try:
                while not stop.is_set() and not reader.done():
                    await connection.send_command("PING", check_health=False)
                    await sleep_unless(stop, PING_SECONDS)
                    if time.monotonic() - self._heard_at > SILENCE_SECONDS:
                        raise TimeoutError("no answer to PING on the tracking connection")
                if reader.done():
                    reader.result()  # the read's error
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                    await reader
        finally:
            self._drop()  # before the awaits below: not trusted from here on
            await connection.disconnect()
            await pool.aclose()

    async def _read(self, connection: Any) -> None:
        try:
            while True:
                message = await connection.read_response()
                if message[0] == "message" and message[1] == INVALIDATE_CHANNEL:
                    self._forget(message[2])
                self._heard_at = time.monotonic()
        finally:
            self._drop()  # not trusted from the moment the connection failed

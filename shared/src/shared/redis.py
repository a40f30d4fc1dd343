"""One asyncio Redis client per process."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

# Stream replies as a client of open_redis gets them: it decodes replies (redis-py types
# them ``bytes | str``) and speaks RESP2 (redis-py allows for RESP3's dicts too). The fields
# are None only for an entry deleted while pending, which XRANGE, XREAD and XREADGROUP of
# new entries never return.
Fields = dict[str, str]
Entries = list[tuple[str, Fields]]  # XRANGE
StreamEntries = list[tuple[str, Entries]]  # XREAD, XREADGROUP: each stream, its entries


def reconnecting() -> Retry:
    """Retry a command twice on a broken connection: after Redis restarts, the pooled
    connections to the old server fail once; a fresh one succeeds."""
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)


# A worker with AI_WORKER_CONCURRENCY replies in flight holds about that many connections.
MAX_CONNECTIONS = 1024


class WaitingPool(ConnectionPool):
    """redis-py's connection pool that, like its BlockingConnectionPool, waits up to
    ``timeout`` seconds for a free connection when all ``max_connections`` are in use
    instead of failing, for a fifth to a third less CPU a command (docs/bench-choices.md §5):

    - no lock or condition around the pool's lists: asyncio runs one task at a time and
      nothing here awaits between looking at a list and changing it;
    - no probe of each connection handed out for unread data (a read with a zero timeout):
      redis-py disconnects a connection whose command was interrupted (an error, a timeout
      or a cancellation while sending or reading), so a connection back in the pool has
      nothing left to read, and a disconnected one connects again when handed out;
    - no per-command pool metrics or events, which nothing here consumes.
    """

    def __init__(self, *args: Any, timeout: float = 10, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *_args: Any, **_options: Any) -> AbstractConnection:
        while True:
            if self._available_connections:
                connection = self._available_connections.pop()
            elif len(self._in_use_connections) < self.max_connections:
                connection = self.make_connection()  # type: ignore[no-untyped-call]  # redis-py: unannotated
            else:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    async with asyncio.timeout(self.timeout):
                        await waiter
                except TimeoutError:
                    if waiter.done() and not waiter.cancelled():
                        self._wake_one()  # woken as time ran out: pass the wake-up on
                    raise RedisConnectionError("No connection available.") from None
                continue  # another task may have taken it first: look again
            self._in_use_connections.add(connection)
            if not connection.is_connected:
                try:
                    await connection.connect()  # type: ignore[no-untyped-call]  # redis-py: unannotated
                except BaseException:
                    await self.release(connection)
                    raise
            return connection

    async def release(self, connection: AbstractConnection) -> None:
        self._in_use_connections.discard(connection)
        self._available_connections.append(connection)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a waiter that timed out is cancelled
                waiter.set_result(None)
                return


class PackedInC(AbstractConnection):
    """Packs each command with hiredis (C), as redis-py's synchronous client does; its
    asyncio client packs in Python, ~9% of the ai-worker's CPU (10 µs against 1.6 µs for
    a token append). An argument hiredis does not take (a bool or None, which redis-py
    refuses too; a memoryview) goes redis-py's way, which raises or sends it as before.
    redis-py's own HiredisRespSerializer is not used: it copies every argument first and
    takes 3.1 µs for the same append."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        # As redis-py: a command name with a space ("CLIENT TRACKING") is sent as words.
        if isinstance(first, str):
            if " " in first:
                args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            packed: list[bytes] = super().pack_command(*args)
            return packed


# Each kind of connection a URL can ask for (TCP, TLS, a Unix socket), packing in C.
_PACKING_IN_C: dict[type[AbstractConnection], type[AbstractConnection]] = {
    kind: type(kind.__name__, (PackedInC, kind), {})
    for kind in (Connection, SSLConnection, UnixDomainSocketConnection)
}


def open_redis(url: str, *, socket_timeout: float = 10) -> Redis:
    pool = WaitingPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=10,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=socket_timeout,
        health_check_interval=30,
        retry=reconnecting(),
        retry_on_error=[RedisConnectionError],
    )
    pool.connection_class = _PACKING_IN_C[pool.connection_class]
    return Redis.from_pool(pool)

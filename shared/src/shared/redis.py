"""One asyncio Redis client per process."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
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
# A blocking pool waits for a free connection instead of failing when all are in use.
MAX_CONNECTIONS = 1024


def open_redis(url: str) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=10,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=30,
        retry=reconnecting(),
        retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)

"""shared.redis.WaitingPool: waits for a free connection, gives up after its timeout, and
never hands out a connection with a reply still unread."""

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.redis import WaitingPool


def client(redis_url: str, *, max_connections: int, timeout: float = 10) -> Redis:
    pool = WaitingPool.from_url(
        redis_url, max_connections=max_connections, timeout=timeout, decode_responses=True
    )
    return Redis.from_pool(pool)


async def test_more_commands_than_connections_wait_their_turn(redis_url):
    r = client(redis_url, max_connections=3)
    key = f"test.pool.{uuid.uuid4().hex}"
    try:
        # 50 blocking pops at once on 3 connections: each waits for a free connection.
        pushes = [r.rpush(key, i) for i in range(50)]
        await asyncio.gather(*pushes)
        popped = await asyncio.gather(*(r.blpop([key], timeout=5) for _ in range(50)))
        assert sorted(int(v) for _, v in popped) == list(range(50))
        pool = r.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) == 3
        assert not pool._in_use_connections and not pool._waiters
    finally:
        await r.delete(key)
        await r.aclose()


async def test_a_full_pool_fails_after_its_timeout_and_recovers(redis_url):
    r = client(redis_url, max_connections=1, timeout=0.2)
    key = f"test.pool.{uuid.uuid4().hex}"
    holder = asyncio.create_task(r.blpop([key], timeout=1))  # holds the one connection
    try:
        await asyncio.sleep(0.05)
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await r.ping()
        assert await holder is None  # BLPOP timed out and gave the connection back
        assert await r.ping()
        assert not r.connection_pool._waiters
    finally:
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        await r.aclose()


async def test_a_command_cancelled_mid_reply_leaves_no_reply_behind(redis_url):
    """A cancelled BLPOP whose reply arrives later must not be read by the next command
    on the same connection (redis-py disconnects it; the pool reconnects it)."""
    r = client(redis_url, max_connections=1)
    key = f"test.pool.{uuid.uuid4().hex}"
    try:
        waiting = asyncio.create_task(r.blpop([key], timeout=5))
        await asyncio.sleep(0.1)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await r.rpush(key, "late")  # what the cancelled BLPOP was waiting for
        assert await r.echo("next") == "next"
        assert await r.lrange(key, 0, -1) == ["late"]  # nobody took it
    finally:
        await r.delete(key)
        await r.aclose()

"""One asyncio Redis client per process."""

from __future__ import annotations

from redis.asyncio import Redis


def open_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=30,
    )

"""Clients of the running stack (``stack``, in tests/conftest.py): the gateway, the stack's
Redis and the simulators' control APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from dev.stack import Stack
from shared.redis import open_redis


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15) as client:
        yield client


@pytest.fixture
async def stack_redis(stack: Stack) -> AsyncIterator[Redis]:
    client = open_redis(stack.env["REDIS_URL"])
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def stripe_sim(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The Stripe simulator: its pages and its control API (/_sim/...)."""
    async with httpx.AsyncClient(base_url=stack.url("stripe-sim"), timeout=15) as client:
        yield client


@pytest.fixture
async def simulator(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The Gemini simulator's control API (/_sim/...)."""
    async with httpx.AsyncClient(base_url=stack.url("gemini-sim"), timeout=15) as client:
        yield client

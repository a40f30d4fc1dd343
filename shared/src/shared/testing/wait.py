"""Polling with a deadline: the way tests wait for something asynchronous to happen."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Return as soon as ``check()`` is true; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def _entry_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


async def handled(redis: Any, stream: str, group: str, *, timeout: float = 10.0) -> None:
    """Return once consumer group ``group`` has read every entry ``stream`` holds now and
    acknowledged it (its handler's transaction committed): what a test waits for before
    checking that an event changed nothing."""
    last = _entry_id((await redis.xinfo_stream(stream))["last-generated-id"])

    async def done() -> bool:
        for info in await redis.xinfo_groups(stream):
            if info["name"] == group:
                read = _entry_id(info["last-delivered-id"])
                return read >= last and int(info["pending"]) == 0
        return False

    await eventually(done, timeout=timeout, what=f"group {group} to handle {stream}")

"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class Background:
    """Long-running loops of a service (outbox relay, consumers, reconciler), started in
    the app's lifespan and stopped together: ``stop`` is set, then each gets ``grace``
    seconds to finish before it is cancelled. A loop that crashes is logged and restarted."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(
        self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Run ``loop(stop)`` until ``stop`` is set; the task that supervises it."""
        task = asyncio.create_task(self._supervise(name, loop), name=name)
        self._tasks.append(task)
        return task

    async def _supervise(self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        while not self.stop.is_set():
            try:
                await loop(self.stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background.crashed", task=name)
                await sleep_unless(self.stop, 1.0)

    async def shutdown(self, grace: float = 30.0) -> None:
        self.stop.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

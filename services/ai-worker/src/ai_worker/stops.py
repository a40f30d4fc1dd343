"""Stopping a reply mid-generation (the user pressed Stop).

Chat marks the reply cancelled and sets ``ai.reply.<id>.stop`` in Redis. Whatever worker
process is generating that reply must notice within a second, without a Redis call per
chunk: one watcher per process reads the stop keys of all its in-flight replies with one
MGET a tick and sets the matching reply's event, which the generation waits on beside
the next chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.aio import sleep_unless
from shared.replies import stops_requested

log = structlog.get_logger(__name__)


class StopRequested(Exception):
    """The user stopped the reply."""


class StopWatcher:
    def __init__(self, redis: Redis, interval: float = 0.25) -> None:
        self.redis = redis
        self.interval = interval
        self._watched: dict[str, asyncio.Event] = {}

    @contextmanager
    def watch(self, reply_id: str) -> Iterator[asyncio.Event]:
        """An event set once the reply is stopped, for as long as the block runs."""
        event = self._watched.setdefault(reply_id, asyncio.Event())
        try:
            yield event
        finally:
            self._watched.pop(reply_id, None)

    async def check(self) -> None:
        ids = [i for i, event in self._watched.items() if not event.is_set()]
        if not ids:
            return
        stopped = await stops_requested(self.redis, ids)
        for reply_id, requested in zip(ids, stopped, strict=True):
            if requested and (event := self._watched.get(reply_id)):
                log.info("reply.stop_requested", reply_id=reply_id)
                event.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except RedisError as exc:
                log.warning("reply.stop_watch_failed", error=repr(exc))
            await sleep_unless(stop, self.interval)

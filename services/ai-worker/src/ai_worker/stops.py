"""Stopping a reply mid-generation (the user pressed Stop).

Chat marks the reply cancelled and sets ``ai.reply.<id>.stop`` in Redis. Whatever worker
process is generating that reply must notice within a second, without a Redis call per
chunk: one watcher per process reads the stop keys of all its in-flight replies with one
MGET a tick and sets the matching reply's event, which the generation waits on beside
the next chunk. The same MGET reads the deletion markers of their users
(:mod:`ai_worker.erasure`): a reply of a user deleted meanwhile stops the same way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ai_worker.erasure import deleted_key
from shared.aio import sleep_unless
from shared.replies import stop_key

log = structlog.get_logger(__name__)


class StopRequested(Exception):
    """The user stopped the reply."""


class StopWatcher:
    def __init__(self, redis: Redis, interval: float = 0.25) -> None:
        self.redis = redis
        self.interval = interval
        self._watched: dict[str, tuple[asyncio.Event, str]] = {}

    @contextmanager
    def watch(self, reply_id: str, user_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set once the reply is stopped or its user deleted, for as long as the
        block runs."""
        event, _ = self._watched.setdefault(reply_id, (asyncio.Event(), deleted_key(user_id)))
        try:
            yield event
        finally:
            self._watched.pop(reply_id, None)

    async def check(self) -> None:
        watched = [
            (i, marker) for i, (event, marker) in self._watched.items() if not event.is_set()
        ]
        if not watched:
            return
        markers = sorted({marker for _, marker in watched})
        values = await self.redis.mget([stop_key(i) for i, _ in watched] + markers)
        deleted = {m for m, value in zip(markers, values[len(watched) :], strict=True) if value}
        for (reply_id, marker), stop in zip(watched, values, strict=False):
            if (stop is not None or marker in deleted) and (found := self._watched.get(reply_id)):
                log.info("reply.stop_requested", reply_id=reply_id, user_deleted=marker in deleted)
                found[0].set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except RedisError as exc:
                log.warning("reply.stop_watch_failed", error=repr(exc))
            await sleep_unless(stop, self.interval)

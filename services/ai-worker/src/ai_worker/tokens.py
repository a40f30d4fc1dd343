"""Appending one attempt's tokens to the reply's stream, without holding up the reading.

One append is in flight at a time; text that arrives meanwhile is joined and goes out as
one entry when the append returns. A model whose chunks come spaced out (a real one, a few
a second) still gets one entry per chunk. Chunks that come faster than Redis takes them
(several in one read, a fast model) share entries, so a reply costs fewer appends here and
fewer events for chat, the gateway and the client. Nothing waits for company: an append
starts as soon as the reading pauses, so the first token is never held back.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from shared import replies


class TokenWriter:
    def __init__(self, redis: Redis, reply_id: str, *, ttl: int) -> None:
        self.redis = redis
        self.reply_id = reply_id
        self.ttl = ttl
        self._pending: list[str] = []
        self._appending: asyncio.Task[None] | None = None
        self._refreshed_at: float | None = None  # the stream's time to live, last restarted

    def add(self, text: str) -> None:
        """Queue ``text``; raises the error of an earlier append that failed."""
        if self._appending is not None and self._appending.done():
            self._appending.result()  # failed: a finished append clears the field itself
        self._pending.append(text)
        if self._appending is None:
            self._appending = asyncio.create_task(self._append())

    async def _append(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            # The time to live is restarted with the first entry and then every quarter of
            # it, not with every entry (the end entry restarts it too).
            now = loop.time()
            refresh = self._refreshed_at is None or now - self._refreshed_at >= self.ttl / 4
            await replies.append_token(
                self.redis, self.reply_id, text, ttl=self.ttl, refresh_ttl=refresh
            )
            if refresh:
                self._refreshed_at = now
        self._appending = None

    async def flush(self) -> None:
        """Return once every queued token is in the stream; raises an append's error."""
        if self._appending is not None:
            await self._appending

    async def abandon(self) -> None:
        """After a failed attempt: let the append in flight end (its error does not matter
        now) so nothing of this attempt lands after what the next one writes."""
        if self._appending is not None:
            with contextlib.suppress(Exception):
                await self._appending

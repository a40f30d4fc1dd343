"""Appending the replies' tokens to their streams: all of this process's replies together,
without holding up the reading of any of them.

Each attempt has a :class:`TokenWriter`; what it is given goes to :class:`TokenAppends`,
the process's one sender, which has one pipeline in flight at a time. Whatever text the
writers were given meanwhile goes out in the next pipeline, one entry per reply (the text
that reply received since its last entry, joined). Chunks that come spaced out (a real
model, a few a second) are still one entry each; chunks that come faster than Redis takes
them (a burst in one read, a fast model, many replies ticking at once) share round trips,
and a reply's own chunks share entries, so there are fewer events for chat, the gateway and
the client too. Nothing waits for company: a pipeline starts as soon as the reading pauses
and none is in flight, so a first token waits at most for one round trip already on its way.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from shared import replies


class TokenWriter:
    """One attempt's tokens for one reply stream."""

    def __init__(self, appends: TokenAppends, reply_id: str, *, ttl: int) -> None:
        self.appends = appends
        self.reply_id = reply_id
        self.ttl = ttl
        self.pending: list[str] = []  # given, not yet in a pipeline
        self.sent: asyncio.Future[None] | None = None  # the pipeline that took the latest
        self.error: Exception | None = None  # an append that failed
        self.refreshed_at: float | None = None  # the stream's time to live, last restarted

    def add(self, text: str) -> None:
        """Queue ``text``; raises the error of an earlier append that failed."""
        if self.error is not None:
            raise self.error
        self.pending.append(text)
        self.appends.queue(self)

    async def flush(self) -> None:
        """Return once every queued token is in the stream; raises an append's error."""
        while True:
            if self.sent is not None and not self.sent.done():
                await asyncio.shield(self.sent)
            elif self.pending:
                await self.appends.turn()
            else:
                break
        if self.error is not None:
            raise self.error

    async def abandon(self) -> None:
        """After a failed attempt: let what it queued reach the stream (or fail: that does
        not matter now), so nothing of it lands after what the next attempt writes."""
        with contextlib.suppress(Exception):
            await self.flush()


class TokenAppends:
    """The process's token appends: one pipeline in flight, the next one gathering."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._waiting: dict[TokenWriter, None] = {}  # insertion-ordered set
        self._sending: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[None] | None = None

    def writer(self, reply_id: str, *, ttl: int) -> TokenWriter:
        return TokenWriter(self, reply_id, ttl=ttl)

    def queue(self, writer: TokenWriter) -> None:
        self._waiting[writer] = None
        if self._sending is None:
            self._sending = asyncio.create_task(self._send())

    async def turn(self) -> None:
        """Wait until the pipeline in flight, if any, is back; or let the sender start."""
        if self._in_flight is not None and not self._in_flight.done():
            await asyncio.shield(self._in_flight)
        else:
            await asyncio.sleep(0)

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                writers = list(self._waiting)
                self._waiting.clear()
                done = self._in_flight = loop.create_future()
                pipe = self.redis.pipeline(transaction=False)
                now = loop.time()
                for writer in writers:
                    text = "".join(writer.pending)
                    writer.pending.clear()
                    writer.sent = done
                    # The time to live is restarted with a writer's first entry and then
                    # every quarter of it, not with every entry (the end entry restarts it).
                    refresh = writer.refreshed_at is None or now - writer.refreshed_at >= (
                        writer.ttl / 4
                    )
                    replies.queue_token(
                        pipe, writer.reply_id, text, ttl=writer.ttl, refresh_ttl=refresh
                    )
                    if refresh:
                        writer.refreshed_at = now
                try:
                    await pipe.execute()
                except Exception as exc:  # Redis down: each writer raises it in turn
                    for writer in writers:
                        writer.error = exc
                finally:
                    done.set_result(None)
        finally:
            self._sending = None
            if self._in_flight is not None and not self._in_flight.done():
                self._in_flight.set_result(None)  # cancelled: let no flush wait forever

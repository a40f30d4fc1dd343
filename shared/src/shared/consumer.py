"""Consuming events from Redis Streams with a consumer group (DESIGN §4).

For each entry: decode and upcast the envelope, run the processor, then ``XACK``. An entry
whose processing raised stays pending; once it has been idle past ``claim_idle_ms`` any
consumer of the group takes it over with ``XAUTOCLAIM`` and tries again. After
``max_deliveries`` tries it is copied to ``<stream>.dlq`` and acked, so one poison entry
never blocks the others. Entries still being processed are re-claimed by their owner at
intervals (a heartbeat), so a slow but live consumer does not lose them to another.

Groups are created with ``MKSTREAM`` at start and again whenever Redis answers NOGROUP,
so a Redis that lost everything recovers without manual action.

A read whose answer the client lost leaves its entries pending for this consumer with
nothing handling them: the process froze past the socket timeout while Redis answered (a
VM pause, SIGSTOP; uvloop runs the expired timeout before it reads the socket), or the
connection broke, and redis-py sent the read again. After a read that took much longer
than its block time, or a Redis error, the consumer looks at its own pending entries and
takes up those it is not handling (:meth:`StreamConsumer._recover_stranded`) instead of
leaving them to the claim deadline.

What is done with an entry is a :data:`Processor`; :mod:`shared.delivery` makes one from a
service's handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import StreamIdT

from shared import metrics, tracing
from shared.aio import sleep_unless
from shared.dlq import REPLAY_GROUP_FIELD, dead_letter, dlq_stream
from shared.events.envelope import Envelope, Event, UnknownEventType, decode
from shared.redis import Entries, StreamEntries

log = structlog.get_logger(__name__)

# A read that took this much longer than its block time may have lost its answer.
LOST_READ_SLACK_SECONDS = 1.0

Processor = Callable[[Envelope, Event, str], Awaitable[None]]


def consumer_name(service: str) -> str:
    return f"{service}-{socket.gethostname()}-{os.getpid()}"


@dataclass
class _Entry:
    stream: str
    entry_id: str
    fields: dict[str, str]


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        *,
        group: str,
        name: str,
        streams: Sequence[str],
        types: set[str] | frozenset[str],
        process: Processor,
        concurrency: int = 1,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        batch_size: int = 50,
    ) -> None:
        self.redis = redis
        self.group = group
        self.name = name
        self.streams = list(streams)
        self.types = set(types)
        self.process = process
        self.concurrency = concurrency
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.batch_size = batch_size
        self._inflight: dict[asyncio.Task[None], _Entry] = {}
        # Set when a handler finishes: the loop, full, waits on this one event instead of
        # on every task in flight (asyncio.wait adds and removes a callback on each).
        self._slot_freed = asyncio.Event()
        # (stream, entry id) of entries whose handler failed, left pending on purpose
        # until the claim deadline: not stranded.
        self._left_pending: set[tuple[str, str]] = set()

    # -- setup -----------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
                log.info("consumer.group_created", stream=stream, group=self.group)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- one entry ---------------------------------------------------------------------

    async def _dead_letter(self, entry: _Entry, reason: str, deliveries: int) -> None:
        await dead_letter(
            self.redis, entry.stream, self.group, entry.entry_id, entry.fields, reason, deliveries
        )

    async def _after_failure(self, entry: _Entry, exc: Exception) -> None:
        """Leave a failed entry pending (retried after claim_idle_ms), unless this was its
        last allowed delivery: then dead-letter it now, with the error as its reason, so
        ``dlq list`` says why. (An entry whose handler never returned, its process killed,
        is dead-lettered when next claimed: see _claim_stale.)"""
        try:
            deliveries = await self._deliveries(entry.stream, entry.entry_id)
            if deliveries >= self.max_deliveries:
                reason = f"handler failed: {type(exc).__name__}: {exc}".strip()
                await self._dead_letter(entry, reason, deliveries)
        except RedisError as redis_error:  # still pending: the claim path decides later
            log.warning("consumer.failure_not_recorded", error=repr(redis_error))

    async def _handle(self, entry: _Entry) -> None:
        if entry.fields.get(REPLAY_GROUP_FIELD, self.group) != self.group:
            await self.redis.xack(entry.stream, self.group, entry.entry_id)
            return
        raw = entry.fields.get("envelope")
        try:
            if raw is None:
                raise ValueError("entry has no envelope field")
            type_ = entry.fields.get("type")
            if type_ and type_ not in self.types:  # another consumer's event: not ours
                await self.redis.xack(entry.stream, self.group, entry.entry_id)
                return
            envelope, event = decode(raw)
        except UnknownEventType:
            await self.redis.xack(entry.stream, self.group, entry.entry_id)
            return
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(entry, f"undecodable: {exc}", 1)
            return
        if envelope.type not in self.types:
            await self.redis.xack(entry.stream, self.group, entry.entry_id)
            return
        # The request id of the request that raised the event: one key in every log line.
        with (
            structlog.contextvars.bound_contextvars(
                event_id=str(envelope.id),
                event_type=envelope.type,
                request_id=envelope.correlation_id,
            ),
            tracing.consuming(
                envelope.trace_context,
                event_type=envelope.type,
                event_id=str(envelope.id),
                stream=entry.stream,
                group=self.group,
            ),
        ):
            started = time.perf_counter()
            try:
                await self.process(envelope, event, entry.stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                tracing.failed(exc)
                log.exception(
                    "consumer.handler_failed", stream=entry.stream, entry_id=entry.entry_id
                )
                metrics.EVENTS_HANDLED.labels(entry.stream, self.group, "failed").inc()
                self._left_pending.add((entry.stream, entry.entry_id))
                await self._after_failure(entry, exc)
                return
            await self.redis.xack(entry.stream, self.group, entry.entry_id)
            metrics.EVENTS_HANDLED.labels(entry.stream, self.group, "ok").inc()
            metrics.EVENT_DURATION.labels(entry.stream, self.group).observe(
                time.perf_counter() - started
            )

    # -- reading ---------------------------------------------------------------------

    async def _read_new(self, count: int, block_ms: int | None) -> list[_Entry]:
        try:
            response = await self.redis.xreadgroup(
                self.group,
                self.name,
                {s: ">" for s in self.streams},
                count=count,
                block=block_ms,
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                log.warning("consumer.group_missing", group=self.group)
                await self.ensure_groups()
                return []
            raise
        return [
            _Entry(stream, entry_id, fields)
            for stream, entries in cast(StreamEntries, response or [])
            for entry_id, fields in entries
            if fields is not None
        ]

    async def _deliveries(self, stream: str, entry_id: str) -> int:
        pending = await self.redis.xpending_range(stream, self.group, entry_id, entry_id, 1)
        return int(pending[0]["times_delivered"]) if pending else 0

    async def _claim_stale(self, count: int) -> list[_Entry]:
        """Take over entries idle past the deadline (a consumer died, or a handler failed)."""
        claimed: list[_Entry] = []
        for stream in self.streams:
            if len(claimed) >= count:
                break
            try:
                _, entries, _deleted = await self.redis.xautoclaim(
                    stream,
                    self.group,
                    self.name,
                    self.claim_idle_ms,
                    "0-0",
                    count=count - len(claimed),
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self.ensure_groups()
                    continue
                raise
            for entry_id, fields in entries:
                self._left_pending.discard((stream, entry_id))
                if fields is None:
                    continue
                entry = _Entry(stream, entry_id, fields)
                deliveries = await self._deliveries(stream, entry_id)
                if deliveries > self.max_deliveries:
                    await self._dead_letter(entry, "too many failed deliveries", deliveries)
                    continue
                metrics.REDELIVERIES.labels(stream, self.group).inc()
                log.warning(
                    "consumer.reclaimed", stream=stream, entry_id=entry_id, deliveries=deliveries
                )
                claimed.append(entry)
        return claimed

    async def _recover_stranded(self, count: int) -> list[_Entry]:
        """This consumer's pending entries that it is neither handling nor left pending
        after a failure: delivered in an answer the client lost (see the module's text).
        Claimed again (a new delivery), at most ``count``."""
        handling = {(e.stream, e.entry_id) for e in self._inflight.values()}
        recovered: list[_Entry] = []
        for stream in self.streams:
            if len(recovered) >= count:
                break
            asked = len(handling) + len(self._left_pending) + count
            try:
                mine = await self.redis.xpending_range(
                    stream, self.group, "-", "+", asked, consumername=self.name
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the stream: nothing is stranded
                    await self.ensure_groups()
                    continue
                raise
            ids = [str(p["message_id"]) for p in mine]  # oldest first
            if len(ids) < asked:  # all of them: forget failed ones another consumer took
                self._left_pending -= {k for k in self._left_pending if k[0] == stream} - {
                    (stream, i) for i in ids
                }
            stranded: list[StreamIdT] = []
            for i in ids:
                if len(stranded) + len(recovered) >= count:
                    break
                if (stream, i) not in handling and (stream, i) not in self._left_pending:
                    stranded.append(i)
            if not stranded:
                continue
            entries = cast(
                Entries, await self.redis.xclaim(stream, self.group, self.name, 0, stranded)
            )
            for entry_id, fields in entries:
                if fields is None:
                    continue
                log.warning("consumer.recovered_lost_read", stream=stream, entry_id=entry_id)
                recovered.append(_Entry(stream, entry_id, fields))
        return recovered

    async def _heartbeat(self) -> None:
        """Reset the idle time of entries still being processed, so no one reclaims them."""
        by_stream: dict[str, list[StreamIdT]] = {}
        for entry in self._inflight.values():
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        for stream, ids in by_stream.items():
            await self.redis.xclaim(stream, self.group, self.name, 0, ids, justid=True)

    def _start(self, entries: list[_Entry]) -> None:
        for entry in entries:
            task = asyncio.create_task(self._handle(entry))
            self._inflight[task] = entry
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task)
        self._slot_freed.set()

    async def poll(self, block_ms: int | None) -> int:
        """One round: reclaim stale entries, read new ones, start them; returns how many."""
        room = self.concurrency - len(self._inflight)
        if room <= 0:
            return 0
        entries = await self._claim_stale(room)
        if len(entries) < room:
            entries += await self._read_new(min(room - len(entries), self.batch_size), block_ms)
        self._start(entries)
        return len(entries)

    async def drain(self) -> int:
        """Process until the streams have nothing new and nothing is in flight (tests; wrap
        it in ``asyncio.timeout``)."""
        total = 0
        await self.ensure_groups()
        while True:
            started = await self.poll(block_ms=None)
            total += started
            if self._inflight:
                await asyncio.wait(set(self._inflight), return_when="FIRST_COMPLETED")
            elif started == 0:
                return total

    # -- the loop --------------------------------------------------------------------

    async def collect_metrics(self) -> None:
        """For a scrape: each stream's lag and pending count for this group, and its DLQ."""
        for stream in self.streams:
            try:
                groups = await self.redis.xinfo_groups(stream)
            except ResponseError:  # the stream does not exist yet
                groups = []
            for group in groups:
                if group["name"] == self.group:
                    metrics.GROUP_LAG.labels(stream, self.group).set(group.get("lag") or 0)
                    metrics.GROUP_PENDING.labels(stream, self.group).set(group["pending"])
            metrics.DEAD_LETTERS.labels(stream).set(await self.redis.xlen(dlq_stream(stream)))

    async def run(self, stop: asyncio.Event, shutdown_timeout: float = 30.0) -> None:
        """Consume until ``stop`` is set, then let in-flight entries finish."""
        remove_collector = metrics.on_scrape(self.collect_metrics)
        try:
            await self._run(stop, shutdown_timeout)
        finally:
            remove_collector()

    async def _run(self, stop: asyncio.Event, shutdown_timeout: float) -> None:
        await self._retry_forever(self.ensure_groups, stop)
        loop = asyncio.get_running_loop()
        next_claim = next_heartbeat = 0.0
        heartbeat_every = max(self.claim_idle_ms / 3000, 0.2)
        maybe_lost = False  # a read may have lost its answer: look for stranded entries
        while not stop.is_set():
            try:
                now = loop.time()
                if self._inflight and now >= next_heartbeat:
                    await self._heartbeat()
                    next_heartbeat = now + heartbeat_every
                if len(self._inflight) >= self.concurrency:
                    self._slot_freed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(heartbeat_every):
                            await self._slot_freed.wait()
                    continue
                room = self.concurrency - len(self._inflight)
                entries: list[_Entry] = []
                if maybe_lost:
                    entries = await self._recover_stranded(room)
                    maybe_lost = False
                if not entries and now >= next_claim:
                    entries = await self._claim_stale(room)
                    next_claim = now + max(self.claim_idle_ms / 2000, 0.2)
                if not entries:
                    block = (
                        min(self.block_ms, int(heartbeat_every * 1000))
                        if self._inflight
                        else self.block_ms
                    )
                    reading = loop.time()
                    entries = await self._read_new(min(room, self.batch_size), block)
                    took = loop.time() - reading
                    maybe_lost = took > block / 1000 + LOST_READ_SLACK_SECONDS
                self._start(entries)
            except (RedisError, OSError) as exc:
                log.warning("consumer.redis_error", error=repr(exc))
                maybe_lost = True
                await sleep_unless(stop, 1.0)
        if self._inflight:
            log.info("consumer.finishing_inflight", count=len(self._inflight))
            _, pending = await asyncio.wait(set(self._inflight), timeout=shutdown_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _retry_forever(self, fn: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await fn()
                return
            except (RedisError, OSError) as exc:
                log.warning("consumer.redis_unavailable", error=repr(exc))
                await sleep_unless(stop, 1.0)

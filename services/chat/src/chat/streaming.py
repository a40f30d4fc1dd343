"""Server-sent events for one reply (DESIGN §5, step 4), and the bounds on open streams
(DESIGN §7).

Replays the reply's token stream (``ai.reply.<id>``) from the start or from
``Last-Event-ID``, follows it live, and ends with a ``done`` event carrying the final
status. If the reply is already final, or its token stream is gone (expired, or Redis
lost it), the stored reply is sent at once. Events:

- ``token``  ``{"text": "..."}``, id = the stream entry id (resume with Last-Event-ID);
- ``reset``  ``{}``: discard the text so far, a new attempt starts;
- ``done``   ``{"status": ..., "reply": {...the stored message...}}``.

An open stream holds a Redis connection in a blocking read, so their number is bounded:
per user across every chat process (a lease per stream in Redis, renewed while it is
open, so a process that dies cannot keep slots), and per process. A Redis error while
following the stream is retried with growing waits, never in a tight loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from chat import metrics
from chat.repository import Message
from chat.settings import Settings
from shared import replies
from shared.errors import RateLimited, ServiceUnavailable, ValidationFailed
from shared.redis import StreamEntries
from shared.replies import reply_stream

log = structlog.get_logger(__name__)

FINAL = frozenset({"completed", "failed", "blocked", "cancelled"})
BLOCK_MS = 3_000
STORE_WAIT_SECONDS = 5.0
# Waits between reads of a token stream while Redis fails: doubling, with jitter.
RETRY_BASE_SECONDS = 0.1
RETRY_CAP_SECONDS = 5.0
# Taking, renewing or giving back a stream slot: Redis answers within this or not at all.
SLOT_TIMEOUT_SECONDS = 2.0
# What a refused stream is told; a slot frees as soon as another stream of the user ends.
STREAM_RETRY_AFTER_SECONDS = 5

LoadReply = Callable[[], Awaitable[Message]]
Render = Callable[[Message], dict[str, Any]]
SseEvent = dict[str, str]  # event, data and id: what EventSourceResponse sends


def _event_schema(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """One event's JSON schema, as schemathesis reads a stream: ``data`` is JSON text."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": kind},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
            "id": {"type": "string"},
        },
    }


def _example_event(event_id: str, kind: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


_EXAMPLE_ROOM_ID = "0b6f1f5c-2d1e-4b8a-9c3d-7e5f4a3b2c1d"
_EXAMPLE_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("token", {"text": "Yoga is "}),
    ("token", {"text": "a practice."}),
    (
        "done",
        {
            "status": "completed",
            "reply": {
                "id": "3f0c6a1e-8a6b-4c47-9d0e-2b1f5e7c9a10",
                "chatroomId": _EXAMPLE_ROOM_ID,
                "chatRoomId": _EXAMPLE_ROOM_ID,
                "role": "GEMINI",
                "content": "Yoga is a practice.",
                "status": "completed",
                "createdAt": "2026-12-01T09:00:00Z",
                "completedAt": "2026-12-01T09:00:02Z",
            },
        },
    ),
]
# The 200 of the stream route in the OpenAPI document: the events above, with an example.
STREAM_EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _event_schema(
            "token",
            {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        ),
        _event_schema("reset", {"type": "object", "maxProperties": 0}),
        _event_schema(
            "done",
            {
                "type": "object",
                "required": ["status", "reply"],
                "properties": {
                    "status": {"enum": sorted(FINAL)},
                    "reply": {"$ref": "#/components/schemas/MessageOut"},
                    "error": {"type": "string"},
                },
            },
        ),
    ]
}
STREAM_RESPONSE: dict[str, Any] = {
    "description": (
        "The reply as it is generated, as server-sent events (`text/event-stream`), and a"
        " `: ping` comment line now and then while it is quiet. Events:\n\n"
        '- `token`: `{"text": "..."}`, the next piece of the reply; its `id` is what'
        " `Last-Event-ID` resumes after;\n"
        "- `reset`: `{}`, discard the text so far: a new attempt starts;\n"
        '- `done`: `{"status": "completed" | "failed" | "blocked" | "cancelled",'
        ' "reply": {...the stored message...}}` and `"error"` when the reply failed;'
        " the last event of the stream."
    ),
    "content": {
        "text/event-stream": {
            "schema": STREAM_EVENT_SCHEMA,
            "example": "".join(
                _example_event(f"1732000000000-{n}", kind, data)
                for n, (kind, data) in enumerate(_EXAMPLE_EVENTS)
            ),
        }
    },
}

# A Redis stream entry id, as the ``token`` events carry it: milliseconds, then an
# optional sequence number, each an unsigned 64-bit integer.
_ENTRY_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
_MAX_ENTRY_PART = 2**64 - 1


def parse_last_event_id(value: str | None) -> str | None:
    """The ``Last-Event-ID`` to resume after, or None to start from the beginning.

    Anything but a stream entry id is refused before the stream starts: Redis would
    refuse it on every read."""
    if not value:
        return None
    match = _ENTRY_ID.fullmatch(value)
    if match is None or any(int(part) > _MAX_ENTRY_PART for part in match.groups() if part):
        raise ValidationFailed.on(
            "Last-Event-ID", "Must be the id of an event of this stream, like 1732000000000-0."
        )
    return value


class Backoff:
    """Waits between attempts that keep failing: ``base`` doubling up to ``cap``, each
    drawn between half and all of it (so streams that failed together spread out), back
    to ``base`` after a success."""

    def __init__(self, base: float = RETRY_BASE_SECONDS, cap: float = RETRY_CAP_SECONDS) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 32))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


def _event(kind: str, data: dict[str, Any], event_id: str | None = None) -> SseEvent:
    event = {"event": kind, "data": json.dumps(data)}
    if event_id:
        event["id"] = event_id
    return event


def _stored(reply: Message, render: Render, *, sent_text: bool) -> list[SseEvent]:
    events = [_event("reset", {})] if sent_text else []
    if reply.content:
        events.append(_event("token", {"text": reply.content}))
    events.append(_event("done", {"status": reply.status, "reply": render(reply)}))
    return events


async def _stored_reply(load_reply: LoadReply) -> Message:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STORE_WAIT_SECONDS
    reply = await load_reply()
    while reply.status not in FINAL and loop.time() < deadline:
        await asyncio.sleep(0.02)
        reply = await load_reply()
    return reply


async def reply_events(
    redis: Redis,
    reply_id: uuid.UUID,
    load_reply: LoadReply,
    render: Render,
    last_event_id: str | None,
    keep_going: Callable[[], bool] = lambda: True,
) -> AsyncIterator[SseEvent]:
    """The reply's events; ends early, without ``done``, once ``keep_going()`` is false
    (the stream lost its slot: the client reconnects with Last-Event-ID)."""
    # A client resuming after an event has some text already: whatever replaces it starts
    # with a reset.
    sent_text = last_event_id is not None
    reply = await load_reply()
    if reply.status in FINAL:
        for event in _stored(reply, render, sent_text=sent_text):
            yield event
        return
    key = reply_stream(str(reply_id))
    cursor = last_event_id or "0-0"
    backoff = Backoff()
    while keep_going():
        delay = 0.0
        try:
            response = await redis.xread({key: cursor}, count=200, block=BLOCK_MS)
        except RedisError as exc:
            response, delay = None, backoff.next_delay()
            if backoff.failures == 1:
                log.warning(
                    "chat.sse_redis_error",
                    reply_id=str(reply_id),
                    error=repr(exc),
                    retry_in=round(delay, 2),
                )
            else:
                log.debug(
                    "chat.sse_redis_retry",
                    reply_id=str(reply_id),
                    failures=backoff.failures,
                    retry_in=round(delay, 2),
                )
        else:
            if backoff.failures:
                log.info(
                    "chat.sse_redis_recovered", reply_id=str(reply_id), failures=backoff.failures
                )
                backoff.reset()
        for _, entries in cast(StreamEntries, response or []):
            for entry_id, fields in entries:
                cursor = entry_id
                entry = replies.parse(fields)
                if entry is None:
                    continue
                if entry.kind == "token":
                    sent_text = True
                    yield _event("token", {"text": entry.text}, entry_id)
                elif entry.kind == "reset":
                    sent_text = False
                    yield _event("reset", {}, entry_id)
                elif entry.end is not None:
                    # `done` means "stored": a client may send its next prompt at once, so
                    # wait (briefly) for the result event to reach the database.
                    reply = await _stored_reply(load_reply)
                    status = reply.status if reply.status in FINAL else entry.end.status
                    data: dict[str, Any] = {"status": status, "reply": render(reply)}
                    if reply.status not in FINAL and entry.end.message:
                        data["error"] = entry.end.message
                    yield _event("done", data, entry_id)
                    return
        if not response:
            # Quiet for a while, or Redis failing: the reply may have ended without a
            # stream to show it (expired, or Redis lost it). The database decides.
            reply = await load_reply()
            if reply.status in FINAL:
                for event in _stored(reply, render, sent_text=sent_text):
                    yield event
                return
        if delay:
            await asyncio.sleep(delay)


# -- bounds on open streams --------------------------------------------------------------

# Takes or renews one stream's lease in a user's sorted set of leases (member: lease id,
# score: expiry in ms of Redis's clock, the one clock every chat process shares). Expired
# leases are dropped first; a new lease is refused (0) when the user holds the limit.
# One script, so concurrent takers cannot both see room for one more. (TIME before writes
# needs Redis 5 or later, where scripts replicate their effects.)
_TAKE_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease_ms)
return 1
"""


def _leases_key(user_id: uuid.UUID) -> str:
    return f"chat:streams:{user_id}"


class TooManyStreams(RateLimited):
    """429: the user has ``max_streams_per_user`` streams open."""

    code = "too_many_streams"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You already have {limit} reply streams open, the most allowed at once."
            " Close one (or let it finish) to open another.",
            retry_after=STREAM_RETRY_AFTER_SECONDS,
        )


def _streams_unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        message,
        code="streams_unavailable",
        headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
    )


class StreamSlots:
    """The open streams of this process (``open``), and the leases of every user's
    streams in Redis. One per process."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.per_user = settings.max_streams_per_user
        self.per_process = settings.max_open_streams
        self.lease_ms = settings.stream_lease_seconds * 1000
        self.open = 0
        self._take_lease = redis.register_script(_TAKE_LEASE)
        metrics.OPEN_STREAMS.set_function(lambda: self.open)

    async def take(self, user_id: uuid.UUID) -> Lease:
        """A slot for one more stream of ``user_id``: 503 when this process serves its
        limit or Redis does not answer (never unlimited), 429 at the user's limit."""
        if self.open >= self.per_process:
            log.warning("chat.stream_process_limit_reached", limit=self.per_process)
            raise _streams_unavailable(
                "This server has as many reply streams open as it can serve. Try again"
                " shortly, or read the reply from the chatroom."
            )
        self.open += 1  # before any await: concurrent requests see it
        lease = Lease(self, _leases_key(user_id), uuid.uuid4().hex)
        try:
            admitted = await lease.renew()
        except (RedisError, TimeoutError) as exc:
            self.open -= 1
            log.warning("chat.stream_slot_unavailable", error=repr(exc))
            raise _streams_unavailable(
                "Reply streams are unavailable right now. Try again shortly."
            ) from None
        if not admitted:
            self.open -= 1
            log.info("chat.stream_limit_reached", user_id=str(user_id), limit=self.per_user)
            raise TooManyStreams(self.per_user)
        return lease


class Lease:
    """One open stream's slot: renewed while the stream is sent, given back at its end."""

    def __init__(self, slots: StreamSlots, key: str, lease_id: str) -> None:
        self.slots = slots
        self.key = key
        self.id = lease_id
        self.lost = False
        self.released = False

    @property
    def held(self) -> bool:
        return not (self.lost or self.released)

    async def renew(self) -> bool:
        """Take or extend the lease; False when it had expired and the user's slots were
        taken meanwhile."""
        slots = self.slots
        async with asyncio.timeout(SLOT_TIMEOUT_SECONDS):
            taken = await slots._take_lease(
                keys=[self.key], args=[self.id, slots.per_user, slots.lease_ms]
            )
        return bool(taken)

    async def _keep(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.slots.lease_ms / 3000)
            try:
                if not await self.renew():
                    self.lost = True
                    log.warning("chat.stream_slot_lost", lease=self.id)
                    return
                failing = False
            except (RedisError, TimeoutError) as exc:
                if not failing:  # once per outage: the lease expires on its own
                    log.warning("chat.stream_slot_renew_failed", error=repr(exc))
                failing = True

    @asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the lease in the background until the block ends, then give it back."""
        keeper = asyncio.create_task(self._keep(), name=f"stream-lease-{self.id}")
        try:
            yield
        finally:
            keeper.cancel()
            await self.release()

    async def release(self) -> None:
        """Give the slot back; once, whatever cancels the stream around it."""
        if self.released:
            return
        self.released = True
        self.slots.open -= 1
        with anyio.move_on_after(SLOT_TIMEOUT_SECONDS, shield=True):
            try:
                await self.slots.redis.zrem(self.key, self.id)
            except RedisError as exc:  # it expires on its own
                log.warning("chat.stream_slot_release_failed", error=repr(exc))


class LeasedEventSourceResponse(EventSourceResponse):
    """An SSE response that holds a stream slot while it is sent, and gives it back
    however it ends: done, client gone, error or server shutdown."""

    def __init__(self, content: AsyncIterator[SseEvent], lease: Lease, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.lease.kept():
            await super().__call__(scope, receive, send)

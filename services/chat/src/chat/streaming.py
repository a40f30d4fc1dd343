"""Server-sent events for one reply (DESIGN §5, step 4); the bounds on open streams are
chat/stream_slots.py (DESIGN §7).

Replays the reply's token stream (``ai.reply.<id>``) from the start or from
``Last-Event-ID``, follows it live, and ends with a ``done`` event carrying the final
status. If the reply is already final, or its token stream is gone (expired, or Redis
lost it), the stored reply is sent at once. Events:

- ``token``  ``{"text": "..."}``, id = the stream entry id (resume with Last-Event-ID);
- ``reset``  ``{}``: discard the text so far, a new attempt starts;
- ``done``   ``{"status": ..., "reply": {...the stored message...}}``.

A Redis error while following the stream is retried with growing waits, never in a tight
loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chat.repository import Message
from shared import replies
from shared.errors import ValidationFailed
from shared.redis import StreamEntries
from shared.replies import reply_stream

log = structlog.get_logger(__name__)

FINAL = frozenset({"completed", "failed", "blocked", "cancelled"})
BLOCK_MS = 3_000
STORE_WAIT_SECONDS = 5.0
# After the worker's end, while chat's word that the reply is stored (a ``stored`` entry)
# has not come: how often the database is asked instead (a word lost, or not sent).
STORE_POLL_SECONDS = 0.2
# Waits between reads of a token stream while Redis fails: doubling, with jitter.
RETRY_BASE_SECONDS = 0.1
RETRY_CAP_SECONDS = 5.0

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


def _events_of_the_stored_reply(
    reply: Message, render: Render, *, sent_text: bool
) -> list[SseEvent]:
    events = [_event("reset", {})] if sent_text else []
    if reply.content:
        events.append(_event("token", {"text": reply.content}))
    events.append(_event("done", {"status": reply.status, "reply": render(reply)}))
    return events


async def _final_reply(
    redis: Redis, key: str, after: str, load_reply: LoadReply, *, stored: bool
) -> Message:
    """The reply as stored, once the worker's ``end`` (entry ``after``) was read: `done`
    means "stored", so a client may send its next prompt at once. Chat appends a
    ``stored`` entry after committing the reply's final state (``stored``: it was already
    read); until it comes, the stream is waited on and the database read every
    STORE_POLL_SECONDS, for STORE_WAIT_SECONDS at most; then the reply as it is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STORE_WAIT_SECONDS
    while not stored and (wait := min(deadline - loop.time(), STORE_POLL_SECONDS)) > 0:
        try:
            response = await redis.xread({key: after}, count=100, block=max(1, int(wait * 1000)))
        except RedisError:
            await asyncio.sleep(wait)
            response = None
        for _, entries in cast(StreamEntries, response or []):
            for entry_id, fields in entries:
                after = entry_id
                stored = stored or fields.get("type") == "stored"
        if not stored:
            reply = await load_reply()
            if reply.status in FINAL:
                return reply
    return await load_reply()


async def reply_events(
    redis: Redis,
    reply_id: uuid.UUID,
    load_reply: LoadReply,
    render: Render,
    last_event_id: str | None,
    keep_going: Callable[[], bool] = lambda: True,
    *,
    loaded: Message | None = None,
) -> AsyncIterator[SseEvent]:
    """The reply's events; ends early, without ``done``, once ``keep_going()`` is false
    (the stream lost its slot: the client reconnects with Last-Event-ID). ``loaded``: the
    reply as the request just read it, so it is not read again to begin."""
    # A client resuming after an event has some text already: whatever replaces it starts
    # with a reset.
    sent_text = last_event_id is not None
    reply = loaded if loaded is not None else await load_reply()
    if reply.status in FINAL:
        for event in _events_of_the_stored_reply(reply, render, sent_text=sent_text):
            yield event
        return
    key = reply_stream(str(reply_id))
    cursor = last_event_id or "0-0"
    backoff = Backoff()
    stored = False  # chat said the reply is stored (normally right after the end)
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
            for at, (entry_id, fields) in enumerate(entries):
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
                elif entry.kind == "stored":
                    stored = True
                elif entry.end is not None:
                    # A cancelled end is chat's own, written after it stored the reply.
                    stored = (
                        stored
                        or entry.end.status == "cancelled"
                        or any(later.get("type") == "stored" for _, later in entries[at + 1 :])
                    )
                    reply = await _final_reply(redis, key, entry_id, load_reply, stored=stored)
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
                for event in _events_of_the_stored_reply(reply, render, sent_text=sent_text):
                    yield event
                return
        if delay:
            await asyncio.sleep(delay)

"""Server-sent events for one reply (DESIGN §5, step 4).

Replays the reply's token stream (``ai.reply.<id>``) from the start or from
``Last-Event-ID``, follows it live, and ends with a ``done`` event carrying the final
status. If the reply is already final, or its token stream is gone (expired, or Redis
lost it), the stored reply is sent at once. Events:

- ``token``  ``{"text": "..."}``, id = the stream entry id (resume with Last-Event-ID);
- ``reset``  ``{}``: discard the text so far, a new attempt starts;
- ``done``   ``{"status": ..., "reply": {...the stored message...}}``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chat.repository import Message
from shared.replies import reply_stream

log = structlog.get_logger(__name__)

FINAL = frozenset({"completed", "failed", "blocked", "cancelled"})
BLOCK_MS = 3_000
STORE_WAIT_SECONDS = 5.0

LoadReply = Callable[[], Awaitable[Message]]
Render = Callable[[Message], dict]


def _event(kind: str, data: dict, event_id: str | None = None) -> dict:
    event = {"event": kind, "data": json.dumps(data)}
    if event_id:
        event["id"] = event_id
    return event


def _stored(reply: Message, render: Render, *, sent_text: bool) -> list[dict]:
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
) -> AsyncIterator[dict]:
    reply = await load_reply()
    if reply.status in FINAL:
        for event in _stored(reply, render, sent_text=False):
            yield event
        return
    key = reply_stream(str(reply_id))
    cursor = last_event_id or "0-0"
    sent_text = False
    while True:
        try:
            response = await redis.xread({key: cursor}, count=200, block=BLOCK_MS)
        except RedisError as exc:
            log.warning("chat.sse_redis_error", reply_id=str(reply_id), error=repr(exc))
            response = None
        for _, entries in response or []:
            for entry_id, fields in entries:
                cursor = entry_id
                kind = fields.get("type")
                if kind == "token":
                    sent_text = True
                    yield _event("token", {"text": fields.get("text", "")}, entry_id)
                elif kind == "reset":
                    sent_text = False
                    yield _event("reset", {}, entry_id)
                elif kind == "end":
                    # `done` means "stored": a client may send its next prompt at once, so
                    # wait (briefly) for the result event to reach the database.
                    reply = await _stored_reply(load_reply)
                    status = reply.status if reply.status in FINAL else fields.get("status")
                    data = {"status": status, "reply": render(reply)}
                    if reply.status not in FINAL and fields.get("message"):
                        data["error"] = fields["message"]
                    yield _event("done", data, entry_id)
                    return
        if not response:
            # Quiet for a while: the reply may have ended without a stream to show it
            # (expired, or Redis lost it). The database decides.
            reply = await load_reply()
            if reply.status in FINAL:
                for event in _stored(reply, render, sent_text=sent_text):
                    yield event
                return

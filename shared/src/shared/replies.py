"""The live token stream of one reply: ``ai.reply.<reply_id>`` (DESIGN §5).

The ai-worker appends entries as the model produces text; chat's SSE endpoint replays
and follows them. Entries have a ``type`` field:

- ``token`` (``text``): the next piece of the reply;
- ``reset``: a new attempt starts, so everything before it is void (a retry after a
  partial answer, or another worker taking over after a crash);
- ``end`` (``status``, and ``reason`` + ``message`` unless completed): the reply is final
  (``cancelled`` when the user stopped it).

The stream is capped and expires ``ttl`` seconds after its last write: the stored reply
in chat's database is the durable copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis

from shared.redis import Entries

MAXLEN = 20_000


def reply_stream(reply_id: str) -> str:
    return f"ai.reply.{reply_id}"


def stop_key(reply_id: str) -> str:
    """Set by chat when the user stops a reply; the worker generating it watches for it."""
    return f"ai.reply.{reply_id}.stop"


async def request_stop(redis: Redis, reply_id: str, *, ttl: int) -> None:
    await redis.set(stop_key(reply_id), "1", ex=ttl)


async def append(redis: Redis, reply_id: str, fields: dict[str, str], *, ttl: int) -> str:
    """Append an entry and restart the stream's time to live, in one round trip."""
    key = reply_stream(reply_id)
    pipe = redis.pipeline(transaction=False)
    pipe.xadd(
        key,
        fields,  # type: ignore[arg-type]  # redis-py: fields as an invariant dict
        maxlen=MAXLEN,
        approximate=True,
    )
    pipe.expire(key, ttl)
    entry_id, _ = await pipe.execute()
    return str(entry_id)


async def append_token(
    redis: Redis, reply_id: str, text: str, *, ttl: int, refresh_ttl: bool = True
) -> str:
    """``refresh_ttl=False`` for the tokens between two refreshes: one command instead of
    two (the writer refreshes often enough that the stream cannot expire meanwhile)."""
    fields = {"type": "token", "text": text}
    if refresh_ttl:
        return await append(redis, reply_id, fields, ttl=ttl)
    entry_id = await redis.xadd(
        reply_stream(reply_id),
        fields,  # type: ignore[arg-type]  # redis-py: fields as an invariant dict
        maxlen=MAXLEN,
        approximate=True,
    )
    return str(entry_id)


async def append_reset(redis: Redis, reply_id: str, *, ttl: int) -> str:
    return await append(redis, reply_id, {"type": "reset"}, ttl=ttl)


async def append_end(
    redis: Redis,
    reply_id: str,
    status: str,
    *,
    ttl: int,
    reason: str = "",
    message: str = "",
) -> str:
    fields = {"type": "end", "status": status}
    if reason:
        fields |= {"reason": reason, "message": message}
    return await append(redis, reply_id, fields, ttl=ttl)


@dataclass
class ReplySoFar:
    """What a token stream says now: the text of the current attempt, and the end."""

    text: str = ""
    started: bool = False
    end: dict[str, str] | None = None
    parts: list[str] = field(default_factory=list)


async def read_all(redis: Redis, reply_id: str) -> ReplySoFar:
    state = ReplySoFar()
    for _, fields in cast(Entries, await redis.xrange(reply_stream(reply_id))):
        kind = fields.get("type")
        state.started = True
        if kind == "token":
            state.parts.append(fields.get("text", ""))
        elif kind == "reset":
            state.parts.clear()
        elif kind == "end":
            state.end = dict(fields)
    state.text = "".join(state.parts)
    return state

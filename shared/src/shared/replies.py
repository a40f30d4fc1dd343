"""The reply protocol between the ai-worker and chat (docs/architecture.md): each reply's
live token stream ``ai.reply.<reply_id>``, the stop request, and the worker's lease. Both
sides use only this module.

The stream's entries have a ``type`` field:

- ``token`` (``text``): the next piece of the reply;
- ``reset``: a new attempt starts, so everything before it is void (a retry after a
  partial answer, or another worker taking over after a crash);
- ``end``: the reply is final; :class:`End` is the record (``cancelled`` when the user
  stopped it);
- ``stored``: chat has committed the reply's final state (:func:`append_stored`, after the
  ``end``), so a reader that saw the end reads the stored reply once, without polling.

The stream is capped and expires ``ttl`` seconds after its last write: the stored reply
in chat's database is the durable copy.

Stopping: chat calls :func:`request_stop`, which sets ``ai.reply.<reply_id>.stop`` (the
worker generating the reply watches it, ``ai_worker/stops.py``) and ends the stream as
cancelled for its readers, in one round trip.

The lease: a worker generates a reply only while it holds ``ai-worker.lease.<reply_id>``
(:func:`queue_start` takes it, :func:`renew_lease` keeps it, :func:`queue_release` gives it
back), so two workers never generate the same reply at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.redis import Entries, Fields

MAXLEN = 20_000

EndStatus = Literal["completed", "failed", "blocked", "cancelled"]


def reply_stream(reply_id: str) -> str:
    return f"ai.reply.{reply_id}"


def stop_key(reply_id: str) -> str:
    """Set by :func:`request_stop`; the worker generating the reply watches it."""
    return f"ai.reply.{reply_id}.stop"


def lease_key(reply_id: str) -> str:
    return f"ai-worker.lease.{reply_id}"


@dataclass(frozen=True)
class End:
    """How a reply ended: the stream's last entry. A completed reply's record carries
    what publishing its result again needs without the model (finish reason, model,
    token counts); a failed or blocked one the reason code and the user's message."""

    status: EndStatus
    reason: str = ""
    message: str = ""
    finish_reason: str = ""
    model: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def fields(self) -> Fields:
        """The entry: ``type`` and ``status``, and every other field that is set."""
        entry = {"type": "end"}
        for name, value in asdict(self).items():
            if value or name == "status":
                entry[name] = str(value)
        return entry

    @classmethod
    def from_fields(cls, fields: Fields) -> End:
        """Read an ``end`` entry; fields it does not know are ignored, a missing status
        reads as ``failed``."""
        status = fields.get("status", "failed")
        if status not in ("completed", "failed", "blocked", "cancelled"):
            status = "failed"

        def count(name: str) -> int:
            value = fields.get(name, "0")
            return int(value) if value.isdigit() else 0

        return cls(
            status=cast(EndStatus, status),
            reason=fields.get("reason", ""),
            message=fields.get("message", ""),
            finish_reason=fields.get("finish_reason", ""),
            model=fields.get("model", ""),
            prompt_tokens=count("prompt_tokens"),
            output_tokens=count("output_tokens"),
            total_tokens=count("total_tokens"),
        )


@dataclass(frozen=True)
class Entry:
    """One entry as a reader sees it: ``kind`` token, reset, end or stored (anything else
    is skipped by :func:`parse`)."""

    kind: Literal["token", "reset", "end", "stored"]
    text: str = ""
    end: End | None = None


def parse(fields: Fields) -> Entry | None:
    kind = fields.get("type")
    if kind == "token":
        return Entry("token", text=fields.get("text", ""))
    if kind == "reset":
        return Entry("reset")
    if kind == "end":
        return Entry("end", end=End.from_fields(fields))
    if kind == "stored":
        return Entry("stored")
    return None


# -- writing -----------------------------------------------------------------------------


def _queue_append(
    pipe: Pipeline, reply_id: str, fields: Fields, *, ttl: int, refresh_ttl: bool = True
) -> None:
    key = reply_stream(reply_id)
    pipe.xadd(
        key,
        cast(dict[Any, Any], fields),  # redis-py: fields as an invariant dict
        maxlen=MAXLEN,
        approximate=True,
    )
    if refresh_ttl:
        pipe.expire(key, ttl)


async def append(redis: Redis, reply_id: str, fields: Fields, *, ttl: int) -> str:
    """Append an entry and restart the stream's time to live, in one round trip; the
    entry's id."""
    pipe = redis.pipeline(transaction=False)
    _queue_append(pipe, reply_id, fields, ttl=ttl)
    entry_id, _ = await pipe.execute()
    return str(entry_id)


async def append_token(redis: Redis, reply_id: str, text: str, *, ttl: int) -> str:
    return await append(redis, reply_id, {"type": "token", "text": text}, ttl=ttl)


def queue_token(pipe: Pipeline, reply_id: str, text: str, *, ttl: int, refresh_ttl: bool) -> None:
    """A token entry as part of the caller's pipeline. ``refresh_ttl=False`` for the tokens
    between two refreshes: one command instead of two (the writer refreshes often enough
    that the stream cannot expire meanwhile)."""
    _queue_append(pipe, reply_id, {"type": "token", "text": text}, ttl=ttl, refresh_ttl=refresh_ttl)


async def append_reset(redis: Redis, reply_id: str, *, ttl: int) -> str:
    return await append(redis, reply_id, {"type": "reset"}, ttl=ttl)


async def append_end(redis: Redis, reply_id: str, end: End, *, ttl: int) -> str:
    return await append(redis, reply_id, end.fields(), ttl=ttl)


def queue_end(pipe: Pipeline, reply_id: str, end: End, *, ttl: int) -> None:
    """:func:`append_end` as part of the caller's pipeline."""
    _queue_append(pipe, reply_id, end.fields(), ttl=ttl)


async def append_stored(redis: Redis, reply_id: str) -> None:
    """Say on the reply's stream that its final state is committed. Never creates the
    stream (NOMKSTREAM): one that expired or was erased stays gone, and one that exists
    keeps the time to live its writer gave it."""
    await redis.xadd(
        reply_stream(reply_id),
        {"type": "stored"},
        maxlen=MAXLEN,
        approximate=True,
        nomkstream=True,
    )


# -- reading -----------------------------------------------------------------------------


@dataclass
class ReplySoFar:
    """What a token stream says now: the text of the current attempt, and the end."""

    text: str = ""
    started: bool = False
    end: End | None = None
    parts: list[str] = field(default_factory=list)


def so_far(entries: Entries) -> ReplySoFar:
    state = ReplySoFar(started=bool(entries))
    for _, fields in entries:
        entry = parse(fields)
        if entry is None:
            continue
        if entry.kind == "token":
            state.parts.append(entry.text)
        elif entry.kind == "reset":
            state.parts.clear()
        elif entry.kind == "end":
            state.end = entry.end
    state.text = "".join(state.parts)
    return state


async def read_all(redis: Redis, reply_id: str) -> ReplySoFar:
    return so_far(cast(Entries, await redis.xrange(reply_stream(reply_id))))


# -- stopping ----------------------------------------------------------------------------


async def request_stop(redis: Redis, reply_id: str, *, ttl: int) -> None:
    """The user stopped the reply (chat, after storing it as cancelled): tell the worker
    generating it, and end the stream for its readers at once. One round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.set(stop_key(reply_id), "1", ex=ttl)
    queue_end(pipe, reply_id, End("cancelled"), ttl=ttl)
    await pipe.execute()


# -- the worker's lease ------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """What :func:`queue_start` found: whether this worker now holds the lease
    (``token``), and if so the stream so far and whether the reply was stopped before it
    started."""

    held: bool
    token: str
    so_far: ReplySoFar
    stop_requested: bool


START_COMMANDS = 3


def queue_start(pipe: Pipeline, reply_id: str, *, lease_ms: int) -> str:
    """Take the reply's lease for ``lease_ms`` unless another worker holds it, and read
    the stream and the stop request: the first ``START_COMMANDS`` commands of the caller's
    pipeline (one round trip with whatever the caller adds). Returns the lease token, for
    :func:`started`."""
    token = uuid.uuid4().hex
    pipe.set(lease_key(reply_id), token, nx=True, px=lease_ms)
    pipe.xrange(reply_stream(reply_id))
    pipe.exists(stop_key(reply_id))
    return token


def started(token: str, results: Sequence[Any]) -> Start:
    """What :func:`queue_start`'s commands answered (``results``: theirs, in order)."""
    held, entries, stopped = results[:START_COMMANDS]
    return Start(bool(held), token, so_far(cast(Entries, entries)), bool(stopped))


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


async def renew_lease(redis: Redis, reply_id: str, token: str, *, lease_ms: int) -> bool:
    """False when the lease is no longer this worker's (it expired and another took it)."""
    return bool(await redis.eval(_RENEW, 1, lease_key(reply_id), token, lease_ms))


def queue_release(pipe: Pipeline, reply_id: str, token: str) -> None:
    """Give the lease back (if it is still ``token``'s) as part of the caller's pipeline."""
    pipe.eval(_RELEASE, 1, lease_key(reply_id), token)


async def release_lease(redis: Redis, reply_id: str, token: str) -> None:
    pipe = redis.pipeline(transaction=False)
    queue_release(pipe, reply_id, token)
    await pipe.execute()

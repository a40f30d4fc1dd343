"""Dead letters, and the operator commands over them:
``python -m <service> dlq list | show | replay | purge``.

The stream consumer copies an entry it gave up on to ``<stream>.dlq``: the original fields
plus ``original_id``, ``group`` (the group that gave up), ``reason`` and ``deliveries``.
Several groups may read one stream (``billing.events``: auth and chat) and so share its
``.dlq``; a service sees and acts on its own group's dead letters only.

Replay adds the original fields to the original stream again, with ``replay_group`` naming
the group: every other group handled the original and acks the copy unseen. The XADD and
the record of it (hash ``<stream>.dlq.replayed``: dead-letter id → new entry id) are one
Lua script, so a dead letter goes back at most once however often, or however many
operators at once, ask. The dead letter stays (shown as replayed) until purged; purge
deletes it and its record.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from redis.asyncio import Redis

from shared import metrics
from shared.logging import mask_phone_numbers
from shared.redis import Entries, Fields

log = structlog.get_logger(__name__)

# What the consumer adds to the original fields when it dead-letters an entry.
DLQ_FIELDS = frozenset({"original_id", "group", "reason", "deliveries"})
# Set on an entry replayed from the dead-letter stream: only this group handles it; every
# other group handled the original already and acks it unseen.
REPLAY_GROUP_FIELD = "replay_group"
DLQ_MAXLEN = 10_000


def dlq_stream(stream: str) -> str:
    """Where a consumer puts the entries of ``stream`` it gave up on."""
    return f"{stream}.dlq"


async def dead_letter(
    redis: Redis,
    stream: str,
    group: str,
    entry_id: str,
    fields: Fields,
    reason: str,
    deliveries: int,
) -> None:
    """Move ``group``'s entry to the dead-letter stream: copied with why (DLQ_FIELDS),
    then acked. XADD before XACK: a crash in between leaves a duplicate, never a loss."""
    await redis.xadd(
        dlq_stream(stream),
        {
            **fields,  # type: ignore[dict-item]  # redis-py: fields as an invariant dict
            "original_id": entry_id,
            "group": group,
            "reason": reason[:1000],
            "deliveries": str(deliveries),
        },
        maxlen=DLQ_MAXLEN,
        approximate=True,
    )
    await redis.xack(stream, group, entry_id)
    metrics.DEAD_LETTERED.labels(stream, group).inc()
    log.error(
        "consumer.dead_lettered",
        stream=stream,
        entry_id=entry_id,
        reason=reason,
        deliveries=deliveries,
    )


ENTRY_ID = re.compile(r"^\d+-\d+$")

# KEYS: the original stream, the replay records; ARGV: the dead-letter id, then the
# fields to add as name, value, name, value...
_REPLAY = """
local done = redis.call('HGET', KEYS[2], ARGV[1])
if done then return {0, done} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('HSET', KEYS[2], ARGV[1], id)
return {1, id}
"""


def replayed_key(stream: str) -> str:
    return f"{stream}.dlq.replayed"


@dataclass(frozen=True)
class DeadLetter:
    id: str  # in <stream>.dlq
    stream: str  # the stream it came from
    original_id: str
    group: str
    reason: str
    deliveries: int
    fields: dict[str, str]  # the original entry's
    replayed_as: str | None  # the entry id of its replay, once replayed

    @classmethod
    def from_entry(
        cls, stream: str, entry_id: str, fields: dict[str, str], replayed_as: str | None
    ) -> DeadLetter:
        return cls(
            id=entry_id,
            stream=stream,
            original_id=fields.get("original_id", "?"),
            group=fields.get("group", "?"),
            reason=fields.get("reason", ""),
            deliveries=int(fields.get("deliveries") or 0),
            fields={k: v for k, v in fields.items() if k not in DLQ_FIELDS},
            replayed_as=replayed_as,
        )

    @property
    def type(self) -> str:
        if self.fields.get("type"):
            return self.fields["type"]
        try:
            return str(json.loads(self.fields["envelope"])["type"])
        except (KeyError, TypeError, ValueError):
            return "?"

    def line(self) -> str:
        """One line for ``dlq list``. Phone numbers masked, here as in every log."""
        reason = mask_phone_numbers(" ".join(self.reason.split()))  # an error spans lines
        return (
            f"{self.id}  {self.stream}  original={self.original_id}  type={self.type}"
            f"  deliveries={self.deliveries}  replayed={self.replayed_as or 'no'}"
            f"  reason={reason}"
        )

    def as_json(self) -> dict[str, Any]:
        """Everything, for ``dlq show``; the envelope decoded when it is JSON. Phone
        numbers masked, here as in every log."""
        fields: dict[str, Any] = dict(self.fields)
        with contextlib.suppress(KeyError, ValueError):
            fields["envelope"] = json.loads(fields["envelope"])
        return {
            "id": self.id,
            "stream": self.stream,
            "dlq_stream": dlq_stream(self.stream),
            "original_id": self.original_id,
            "group": self.group,
            "type": self.type,
            "reason": mask_phone_numbers(self.reason),
            "deliveries": self.deliveries,
            "replayed_as": self.replayed_as,
            "fields": mask_phone_numbers(fields),
        }


async def dead_letters(redis: Redis, group: str, streams: Sequence[str]) -> list[DeadLetter]:
    """The dead letters of ``group`` on ``streams``, oldest first per stream."""
    found: list[DeadLetter] = []
    for stream in streams:
        replayed = cast(Fields, await redis.hgetall(replayed_key(stream)))
        for entry_id, fields in cast(Entries, await redis.xrange(dlq_stream(stream))):
            if fields.get("group") == group:
                replayed_as = replayed.get(entry_id)
                found.append(DeadLetter.from_entry(stream, entry_id, fields, replayed_as))
    return found


async def find(redis: Redis, streams: Sequence[str], dlq_id: str) -> DeadLetter | None:
    """The dead letter ``dlq_id`` on any of ``streams``' dead-letter streams, whatever its
    group (the caller checks: a wrong group deserves a better answer than "not found")."""
    for stream in streams:
        entries = await redis.xrange(dlq_stream(stream), dlq_id, dlq_id, count=1)
        for entry_id, fields in cast(Entries, entries):
            replayed_as = cast(str | None, await redis.hget(replayed_key(stream), entry_id))
            return DeadLetter.from_entry(stream, entry_id, fields, replayed_as)
    return None


async def replay(redis: Redis, letter: DeadLetter) -> tuple[bool, str]:
    """Put the dead letter back on its stream for its group only. Returns whether it went
    now, and the id of the replayed entry (now or earlier)."""
    fields = {**letter.fields, REPLAY_GROUP_FIELD: letter.group}
    args = [letter.id, *(item for pair in fields.items() for item in pair)]
    added, entry_id = await redis.eval(
        _REPLAY, 2, letter.stream, replayed_key(letter.stream), *args
    )
    if added:
        log.info(
            "dlq.replayed",
            stream=letter.stream,
            dead_letter=letter.id,
            original_id=letter.original_id,
            group=letter.group,
            entry_id=entry_id,
        )
    return bool(added), entry_id


async def purge(redis: Redis, letter: DeadLetter) -> bool:
    """Delete the dead letter and its replay record; False if it was already gone."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xdel(dlq_stream(letter.stream), letter.id)
        pipe.hdel(replayed_key(letter.stream), letter.id)
        deleted, _ = await pipe.execute()
    if deleted:
        log.info("dlq.purged", stream=letter.stream, dead_letter=letter.id, group=letter.group)
    return bool(deleted)


# -- the commands ------------------------------------------------------------------------


def _not_found(dlq_id: str, streams: Sequence[str]) -> int:
    print(f"no dead letter {dlq_id} on {', '.join(map(dlq_stream, streams))}", file=sys.stderr)
    return 1


def _is_ours(letter: DeadLetter, group: str) -> bool:
    if letter.group == group:
        return True
    print(
        f"dead letter {letter.id} belongs to consumer group {letter.group}, not {group}:"
        " use that service's `dlq` command",
        file=sys.stderr,
    )
    return False


async def _chosen(
    redis: Redis, group: str, streams: Sequence[str], dlq_id: str | None
) -> list[DeadLetter] | None:
    """What a command acts on: the dead letter ``dlq_id`` ([] when there is none), or
    every one of the group's when None. None when ``dlq_id`` is another group's (said)."""
    if dlq_id is None:
        return await dead_letters(redis, group, streams)
    letter = await find(redis, streams, dlq_id)
    if letter is None:
        return []
    return [letter] if _is_ours(letter, group) else None


async def list_command(redis: Redis, group: str, streams: Sequence[str]) -> int:
    letters = await dead_letters(redis, group, streams)
    for letter in letters:
        print(letter.line())
    if not letters:
        print(f"no dead letters for group {group} on {', '.join(streams)}")
    return 0


async def show_command(redis: Redis, group: str, streams: Sequence[str], dlq_id: str) -> int:
    letters = await _chosen(redis, group, streams, dlq_id)
    if letters is None:
        return 1
    if not letters:
        return _not_found(dlq_id, streams)
    print(json.dumps(letters[0].as_json(), indent=2, ensure_ascii=False))
    return 0


async def replay_command(
    redis: Redis, group: str, streams: Sequence[str], dlq_id: str | None
) -> int:
    """``dlq_id``, or every dead letter of the group not replayed yet when None."""
    letters = await _chosen(redis, group, streams, dlq_id)
    if letters is None:
        return 1
    if dlq_id is not None and not letters:
        return _not_found(dlq_id, streams)
    count = 0
    for letter in letters:
        added, entry_id = await replay(redis, letter)
        if added:
            count += 1
            print(f"replayed {letter.id} to {letter.stream} as {entry_id} (group {group} only)")
        elif dlq_id is not None:
            print(f"{letter.id} was already replayed as {entry_id}: nothing done")
    if dlq_id is None:
        print(f"{count} dead letters replayed, {len(letters) - count} already replayed before")
    return 0


async def purge_command(
    redis: Redis, group: str, streams: Sequence[str], dlq_id: str | None
) -> int:
    """``dlq_id``, or every dead letter of the group when None. Purging what is not there
    is not an error: the end state is the one asked for."""
    letters = await _chosen(redis, group, streams, dlq_id)
    if letters is None:
        return 1
    if dlq_id is not None and not letters:
        print(f"no dead letter {dlq_id}: nothing to purge")
        return 0
    count = 0
    for letter in letters:
        if await purge(redis, letter):
            count += 1
            print(f"purged {letter.id} from {dlq_stream(letter.stream)}")
    if dlq_id is None or count == 0:
        print(f"{count} dead letters purged")
    return 0

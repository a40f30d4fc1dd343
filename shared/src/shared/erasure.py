"""Erasing a deleted user from what the event plumbing keeps (issue: account deletion).

Each service, when it handles ``UserDeleted``, erases its own rows and also what it wrote
about the user into the shared plumbing: the events in its outbox table (kept after
publishing, for ``republish``) and the entries of its event stream and of that stream's
dead letters. The ``UserDeleted`` event itself is kept: it carries the id only, and a
consumer that was down must still find it.

Streams are scanned in pages and matched by the envelope's ``payload.userId``; a scan of
a full stream (``outbox.STREAM_MAXLEN`` entries) is a few hundred round trips, which an
account deletion can afford. Deleting an entry that a consumer group has not handled yet
is what we want: nothing is generated or projected for a deleted user.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING, cast

import structlog
from redis.asyncio import Redis

from shared.dlq import dlq_stream
from shared.redis import Entries

if TYPE_CHECKING:  # not loaded at run time: the ai-worker erases without a database
    from psycopg import AsyncConnection

log = structlog.get_logger(__name__)

KEPT = ("UserDeleted",)
PAGE = 500


def digest(identifier: uuid.UUID | str) -> str:
    """The sha256 (hex) of an identifier: what a service keeps to recognise a deleted user
    (or their id at a provider) later without keeping the identifier itself."""
    return hashlib.sha256(str(identifier).encode()).hexdigest()


def _about(fields: dict[str, str], user_id: str, keep: Collection[str]) -> bool:
    if fields.get("type") in keep:
        return False
    try:
        payload = json.loads(fields.get("envelope", "{}")).get("payload") or {}
    except (ValueError, AttributeError):
        return False
    return str(payload.get("userId", "")).lower() == user_id


async def erase_from_stream(
    redis: Redis, stream: str, user_id: uuid.UUID, *, keep: Collection[str] = KEPT
) -> int:
    """Delete ``stream``'s entries about ``user_id`` (and its dead letters'); how many."""
    target, erased = str(user_id), 0
    for name in (stream, dlq_stream(stream)):
        start = "-"
        while True:
            page = cast(Entries, await redis.xrange(name, min=start, max="+", count=PAGE))
            matched = [entry_id for entry_id, fields in page if _about(fields, target, keep)]
            if matched:
                erased += await redis.xdel(name, *matched)
            if len(page) < PAGE:
                break
            start = "(" + page[-1][0]
    if erased:
        log.info("erasure.stream_entries_deleted", stream=stream, count=erased)
    return erased


async def erase_from_outbox(
    conn: AsyncConnection, user_id: uuid.UUID, *, keep: Collection[str] = KEPT
) -> int:
    """Delete the outbox rows of events about ``user_id``, published or not; how many."""
    cur = await conn.execute(
        "DELETE FROM outbox WHERE envelope -> 'payload' ->> 'userId' = %s AND NOT (type = ANY(%s))",
        (str(user_id), list(keep)),
    )
    return cur.rowcount

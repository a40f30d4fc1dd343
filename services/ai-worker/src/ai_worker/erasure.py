"""Account deletion in the worker (``UserDeleted``, from auth): nothing more is generated
or published for the user, and what the worker wrote about them is deleted.

The worker has no database, so a Redis marker ``ai-worker.user-deleted.<digest>`` (the
sha256 of the id, never the id) tells every worker process, for
``DELETED_USER_MARKER_SECONDS``, that the user is gone. Processes check it where they
already talk to Redis, never per token:

- starting a reply (the same round trip that takes the lease): a prompt of a deleted user
  is acked unanswered;
- the stop watcher's poll (the same MGET as the stop keys): a reply in flight stops;
- finishing a reply, after its writes (the same round trip): if the user was deleted
  meanwhile, the writes are undone. A deletion handled after that check finds the writes
  in ``ai.events`` or in the user's reply list and deletes them itself, so a reply racing
  the deletion leaves nothing either way.

Each process also lists the replies it starts per user (``ai-worker.user-replies.<digest>``,
as long as a reply stream lives), so the deletion can delete their token streams even when
the reply finished in another process or before chat erased its rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ai_worker.settings import Settings
from shared.erasure import digest, erase_from_stream
from shared.replies import lease_key, reply_stream, stop_key

log = structlog.get_logger(__name__)


def deleted_key(user_id: uuid.UUID) -> str:
    return f"ai-worker.user-deleted.{digest(user_id)}"


def replies_key(user_id: uuid.UUID) -> str:
    return f"ai-worker.user-replies.{digest(user_id)}"


def queue_track(pipe: Pipeline, user_id: uuid.UUID, reply_id: str, *, ttl: int) -> None:
    """As part of a reply's start: list the reply under its user, then ask whether the user
    was deleted (the last command's answer). The order matters: a deletion that does not
    show here comes after the listing, and finds the reply in the list."""
    pipe.sadd(replies_key(user_id), reply_id)
    pipe.expire(replies_key(user_id), ttl)
    pipe.exists(deleted_key(user_id))


def reply_keys(reply_ids: Iterable[str]) -> list[str]:
    return [key for r in reply_ids for key in (reply_stream(r), stop_key(r), lease_key(r))]


async def erase_reply(
    redis: Redis,
    user_id: uuid.UUID,
    reply_id: str,
    *,
    stream: str | None = None,
    entry_ids: Iterable[str] = (),
) -> None:
    """Undo what a reply of a deleted user wrote: its keys, the user's reply list, and the
    entries it published to ``stream``."""
    pipe = redis.pipeline(transaction=False)
    pipe.delete(*reply_keys([reply_id]), replies_key(user_id))
    if stream is not None and (ids := list(entry_ids)):
        pipe.xdel(stream, *ids)
    await pipe.execute()
    log.info("reply.user_deleted")


async def forget_user(
    redis: Redis, settings: Settings, user_id: uuid.UUID, *, result_stream: str
) -> None:
    """Mark the user deleted (in flight replies stop, queued ones are dropped), delete the
    token streams of their replies, and their entries in ``result_stream`` (and its dead
    letters). Idempotent: a second run finds nothing more to delete."""
    pipe = redis.pipeline(transaction=True)  # the mark and the list read at one instant
    pipe.set(deleted_key(user_id), "1", ex=settings.deleted_user_marker_seconds)
    pipe.smembers(replies_key(user_id))
    pipe.delete(replies_key(user_id))
    _, reply_ids, _ = await pipe.execute()
    if reply_ids:
        await redis.delete(*reply_keys(sorted(reply_ids)))
    erased = await erase_from_stream(redis, result_stream, user_id)
    log.info("worker.user_forgotten", replies=len(reply_ids), result_entries=erased)

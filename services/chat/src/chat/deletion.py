"""Erasing a deleted account from chat (UserDeleted, from auth): the rooms with their
messages and share links, the daily usage, the tier projection (for good: a later
SubscriptionChanged does not bring it back), the events chat published about the user (its
outbox and ``chat.events``), and the Redis keys: cached lists, open-stream slots, reply
streams. Pending replies are stopped first, so no worker keeps generating for them.

Runs in the consumer's transaction. The Redis part comes before the commit: if it fails,
the transaction rolls back and the event is delivered again, and every step is idempotent.
"""

from __future__ import annotations

import uuid

import structlog

from chat import list_cache, prompts, repository, stream_slots
from chat.context import PRODUCER, ChatContext
from shared import erasure, publish, replies, tiers
from shared.db import Transaction

log = structlog.get_logger(__name__)

BATCH = 500


async def erase_user(tx: Transaction, ctx: ChatContext, user_id: uuid.UUID) -> None:
    reply_ids, pending = await repository.replies_of_user(tx.conn, user_id)
    for reply_id in pending:
        await replies.request_stop(ctx.redis, str(reply_id), ttl=prompts.STOP_TTL_SECONDS)
    streams = [replies.reply_stream(str(r)) for r in reply_ids]
    for start in range(0, len(streams), BATCH):
        await ctx.redis.delete(*streams[start : start + BATCH])
    await list_cache.forget(ctx, user_id)
    await ctx.redis.delete(stream_slots.leases_key(user_id))
    await erasure.erase_from_stream(ctx.redis, publish.stream_for(PRODUCER), user_id)

    rooms = await repository.delete_user_rows(tx.conn, user_id)
    await tiers.erase_user(tx.conn, user_id)
    published = await erasure.erase_from_outbox(tx.conn, user_id)
    log.info(
        "chat.user_erased",
        user_id=str(user_id),
        rooms=rooms,
        replies=len(reply_ids),
        stopped=len(pending),
        outbox_rows=published,
    )

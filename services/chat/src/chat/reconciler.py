"""The reconciler: replies whose MessageQueued was lost or never answered are queued again,
and every pending one when Redis lost its data (the marker below is gone)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from chat import repository
from chat.prompts import fail_reply, queue
from chat.settings import Settings
from shared.aio import sleep_unless
from shared.db import Database

log = structlog.get_logger(__name__)

REDIS_ALIVE_KEY = "chat:redis-alive"


async def set_redis_marker(redis: Redis) -> bool:
    """Set the marker this service keeps in Redis; True when it had to (it was gone: Redis
    restarted without persistence or was flushed, and events it held may be gone)."""
    return bool(await redis.set(REDIS_ALIVE_KEY, "1", nx=True))


async def requeue_stale_replies(
    db: Database, settings: Settings, queued_before: datetime, *, batch: int = 100
) -> int:
    """Queue again one batch of pending replies last queued before ``queued_before`` (their
    event was lost, or no worker answered); fail them after ``max_requeues``, giving the
    quota unit back. Returns how many it looked at."""
    # No stream reader still waits for chat's word that such a reply is stored
    # (announce_to): one that saw an end gave up waiting after seconds
    # (streaming.STORE_WAIT_SECONDS), long before a reply goes stale.
    async with db.transaction() as tx:
        stale = await repository.stale_pending_replies(tx.conn, queued_before, batch)
        for reply in stale:
            if reply.attempts > settings.max_requeues:
                await fail_reply(
                    tx,
                    reply.id,
                    status="failed",
                    code="timeout",
                    message="Gemini did not answer in time. Your prompt was not counted; "
                    "please try again.",
                    announce_to=None,
                )
                continue
            prompt = (
                await repository.get_message_by_id(tx.conn, reply.reply_to)
                if reply.reply_to
                else None
            )
            if prompt is None:  # cannot be asked again without its prompt
                await fail_reply(
                    tx,
                    reply.id,
                    status="failed",
                    code="prompt_missing",
                    message="Lost prompt.",
                    announce_to=None,
                )
                continue
            attempt = await repository.mark_requeued(tx.conn, reply.id)
            await queue(tx, settings, prompt, reply, attempt, None)
            log.warning("chat.reply_requeued", reply_id=str(reply.id), attempt=attempt)
    return len(stale)


def loop(
    pool: AsyncConnectionPool, redis: Redis, settings: Settings
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Every interval: queue again replies stuck past the deadline; and when Redis lost
    its data (restart without persistence, flush), every pending reply at once."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                now = datetime.now(UTC)
                cutoff = now - timedelta(seconds=settings.reconcile_after_seconds)
                if await set_redis_marker(redis):
                    # Also on the very first start against this Redis: harmless then.
                    log.warning("chat.redis_marker_missing_requeueing_all_pending")
                    cutoff = now
                while await requeue_stale_replies(Database(pool), settings, cutoff):
                    pass
            except Exception:
                log.exception("chat.reconciler_failed")
            await sleep_unless(stop, settings.reconcile_interval_seconds)

    return run

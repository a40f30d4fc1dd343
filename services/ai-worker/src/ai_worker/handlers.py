"""The events the worker consumes, and the consumer that feeds them to it."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from ai_worker.erasure import forget_user
from ai_worker.service import WorkerContext, answer_message
from shared.consumer import StreamConsumer, consumer_name
from shared.delivery import Delivery, Handler, direct_processor
from shared.events import Event, MessageQueued, UserDeleted
from shared.publish import stream_for

GROUP = "ai-worker"
CHAT_STREAM = stream_for("chat")
AUTH_STREAM = stream_for("auth")
# UserDeleted has a consumer of its own, so a deletion is handled at once even while every
# generation slot is taken (a slot frees only when a reply ends).
ERASURE_CONCURRENCY = 4


async def on_message_queued(event: MessageQueued, delivery: Delivery[WorkerContext]) -> None:
    with structlog.contextvars.bound_contextvars(reply_id=str(event.reply_id)):
        await answer_message(delivery.ctx, event, correlation_id=delivery.envelope.correlation_id)


async def on_user_deleted(event: UserDeleted, delivery: Delivery[WorkerContext]) -> None:
    ctx = delivery.ctx
    await forget_user(ctx.redis, ctx.settings, event.user_id, result_stream=ctx.result_stream)


HANDLERS: dict[type[Event], Handler[WorkerContext]] = {
    MessageQueued: on_message_queued,
    UserDeleted: on_user_deleted,
}


def build_consumer(
    redis: Redis,
    ctx: WorkerContext,
    *,
    streams: Sequence[str] = (CHAT_STREAM,),
    event: type[Event] = MessageQueued,
) -> StreamConsumer:
    """The consumer of ``event`` (MessageQueued on chat.events, or UserDeleted on
    auth.events) as group ``ai-worker``."""
    settings = ctx.settings
    prompts = event is MessageQueued
    return StreamConsumer(
        redis,
        group=GROUP,
        name=consumer_name(GROUP),
        streams=streams,
        types={event.type_name()},
        process=direct_processor(HANDLERS, ctx),
        concurrency=settings.ai_worker_concurrency if prompts else ERASURE_CONCURRENCY,
        claim_idle_ms=int(settings.claim_idle_seconds * 1000),
        max_deliveries=settings.max_deliveries,
    )

"""The events the worker consumes, and the consumer that feeds them to it."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from ai_worker.service import WorkerContext, answer_message
from shared.consumer import StreamConsumer, consumer_name
from shared.delivery import Delivery, Handler, direct_processor
from shared.events import Event, MessageQueued
from shared.outbox import stream_for

GROUP = "ai-worker"
CHAT_STREAM = stream_for("chat")


async def on_message_queued(event: MessageQueued, delivery: Delivery[WorkerContext]) -> None:
    with structlog.contextvars.bound_contextvars(reply_id=str(event.reply_id)):
        await answer_message(delivery.ctx, event, correlation_id=delivery.envelope.correlation_id)


HANDLERS: dict[type[Event], Handler[WorkerContext]] = {MessageQueued: on_message_queued}


def build_consumer(
    redis: Redis, ctx: WorkerContext, *, streams: Sequence[str] = (CHAT_STREAM,)
) -> StreamConsumer:
    settings = ctx.settings
    return StreamConsumer(
        redis,
        group=GROUP,
        name=consumer_name(GROUP),
        streams=streams,
        types={cls.type_name() for cls in HANDLERS},
        process=direct_processor(HANDLERS, ctx),
        concurrency=settings.ai_worker_concurrency,
        claim_idle_ms=int(settings.claim_idle_seconds * 1000),
        max_deliveries=settings.max_deliveries,
    )

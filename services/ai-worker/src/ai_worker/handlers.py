"""The events the worker consumes, and the consumer that feeds them to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis

from ai_worker.service import WorkerContext, answer_message
from shared.consumer import Processor, StreamConsumer, consumer_name
from shared.events import Envelope, Event, MessageQueued
from shared.outbox import stream_for

GROUP = "ai-worker"
CHAT_STREAM = stream_for("chat")

Handler = Callable[[Any, Envelope, WorkerContext], Awaitable[None]]


async def on_message_queued(event: MessageQueued, envelope: Envelope, ctx: WorkerContext) -> None:
    with structlog.contextvars.bound_contextvars(reply_id=str(event.reply_id)):
        await answer_message(ctx, event, correlation_id=envelope.correlation_id)


HANDLERS: dict[type[Event], Handler] = {MessageQueued: on_message_queued}


def processor(ctx: WorkerContext) -> Processor:
    async def process(envelope: Envelope, event: Event, stream: str) -> None:
        await HANDLERS[type(event)](event, envelope, ctx)

    return process


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
        process=processor(ctx),
        concurrency=settings.ai_worker_concurrency,
        claim_idle_ms=int(settings.claim_idle_seconds * 1000),
        max_deliveries=settings.max_deliveries,
    )

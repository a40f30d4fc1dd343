"""The worker's one use case: answer a queued prompt, exactly once in effect.

Delivery is at-least-once, and the worker has no database, so the token stream
``ai.reply.<reply_id>`` is its record of what happened:

- the stream has an ``end`` entry: an earlier delivery finished (and maybe died before
  acking): publish its result again from the stream, without calling Gemini;
- the stream has entries but no ``end``: an earlier delivery died mid-way: ``reset`` and
  generate again;
- a short lease (``ai-worker.lease.<reply_id>``) stops two workers from generating the same
  reply at once (a reclaimed entry and a re-queued event, say): the second acks and leaves
  the reply to the first. The lease lives a third of CLAIM_IDLE_SECONDS and is renewed
  while the reply is generated, so the lease of a crashed worker is gone before its
  entry can be reclaimed.

The protocol (the stream's entries, the stop request, the lease) is :mod:`shared.replies`.
A reply costs two round trips to Redis besides its tokens: one to start (take the lease,
read the stream and the stop request, list the reply under its user and read whether the
user was deleted: :mod:`ai_worker.erasure`) and one to finish (the end entry, the result
event, the lease given back, the deletion read again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from ai_worker import erasure
from ai_worker.generation import ReplyGenerator
from ai_worker.outcomes import Outcome
from ai_worker.settings import Settings
from ai_worker.stops import StopWatcher
from shared import replies
from shared.aio import sleep_unless
from shared.events import (
    ChatroomTitleSuggested,
    MessageQueued,
    ReplyCompleted,
    ReplyFailed,
    TokenUsage,
)
from shared.publish import queue_publish, stream_for

log = structlog.get_logger(__name__)

PRODUCER = "ai-worker"
RESULT_STREAM = stream_for("ai")  # ai.events (DESIGN §1)


@dataclass
class WorkerContext:
    """What the use case needs; built once per process."""

    settings: Settings
    redis: Redis
    generator: ReplyGenerator
    result_stream: str = RESULT_STREAM
    stops: StopWatcher | None = None

    @property
    def ttl(self) -> int:
        return self.settings.reply_stream_ttl_seconds


def lease_ms(settings: Settings) -> int:
    """A third of CLAIM_IDLE_SECONDS: a crashed worker's lease is gone well before its
    entry can be reclaimed, so the worker that reclaims it can take the reply."""
    return int(settings.claim_idle_seconds * 1000 / 3)


@contextlib.asynccontextmanager
async def _renewing(ctx: WorkerContext, reply_id: str, token: str) -> AsyncIterator[None]:
    """Renews the reply's lease until the block ends."""
    ttl_ms = lease_ms(ctx.settings)
    done = asyncio.Event()

    async def renew() -> None:
        while True:
            await sleep_unless(done, ttl_ms / 3000)
            if done.is_set():
                return
            try:
                if not await replies.renew_lease(ctx.redis, reply_id, token, lease_ms=ttl_ms):
                    log.warning("reply.lease_lost")
            except RedisError as exc:
                log.warning("reply.lease_renew_failed", error=repr(exc))

    # Stopped by an event, not by cancel(): on Python 3.11 redis-py can swallow a
    # cancellation (asyncio.wait_for in send_packed_command), and a renewer that missed
    # it would keep the reply from ever finishing.
    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        done.set()
        await asyncio.wait({renewer})


def result_event(event: MessageQueued, outcome: Outcome) -> ReplyCompleted | ReplyFailed:
    ids = {"reply_id": event.reply_id, "chatroom_id": event.chatroom_id, "user_id": event.user_id}
    if outcome.status == "completed":
        return ReplyCompleted(
            **ids,
            text=outcome.text,
            finish_reason=outcome.finish_reason,
            usage=outcome.usage,
            model=outcome.model or None,
        )
    assert outcome.status != "cancelled", "a stopped reply has no result event"
    return ReplyFailed(
        **ids,
        status=outcome.status,
        reason=outcome.reason,
        message=outcome.message,
        partial_text=outcome.text,
    )


def end_record(outcome: Outcome) -> replies.End:
    """What the stream's end entry records of an outcome: a completed reply's result can
    be published again from it without the model."""
    if outcome.status == "completed":
        return replies.End(
            "completed",
            finish_reason=outcome.finish_reason,
            model=outcome.model,
            prompt_tokens=outcome.usage.prompt_tokens,
            output_tokens=outcome.usage.output_tokens,
            total_tokens=outcome.usage.total_tokens,
        )
    return replies.End(outcome.status, reason=outcome.reason, message=outcome.message)


def recorded_outcome(so_far: replies.ReplySoFar) -> Outcome:
    """The outcome a finished token stream records."""
    end = so_far.end or replies.End("failed")
    if end.status == "completed":
        return Outcome(
            "completed",
            text=so_far.text,
            finish_reason=end.finish_reason,
            model=end.model,
            usage=TokenUsage(
                prompt_tokens=end.prompt_tokens,
                output_tokens=end.output_tokens,
                total_tokens=end.total_tokens,
            ),
        )
    return Outcome(
        "blocked" if end.status == "blocked" else "failed",
        text=so_far.text,
        reason=end.reason or "model_error",
        message=end.message,
    )


async def _finish(
    ctx: WorkerContext,
    event: MessageQueued,
    outcome: Outcome,
    correlation_id: str | None,
    *,
    lease_token: str | None,
    end: bool = True,
) -> None:
    """One round trip: the end entry (``end``), the result event (not for a stopped
    reply: chat stored it when the user stopped it), and the lease given back
    (``lease_token``). The end goes first: a crash before the event is healed by the next
    delivery, which finds the end and publishes the result from it. Last, whether the user
    was deleted meanwhile: then all of it is undone (:mod:`ai_worker.erasure`)."""
    reply_id = str(event.reply_id)
    pipe = ctx.redis.pipeline(transaction=False)
    if end:
        replies.queue_end(pipe, reply_id, end_record(outcome), ttl=ctx.ttl)
    published = None
    if outcome.status != "cancelled":
        published = len(pipe)  # the index of the XADD's answer: the entry id
        queue_publish(
            pipe,
            result_event(event, outcome),
            producer=PRODUCER,
            stream=ctx.result_stream,
            correlation_id=correlation_id,
        )
    if lease_token is not None:
        replies.queue_release(pipe, reply_id, lease_token)
    await _execute_unless_deleted(ctx, event, pipe, published)


async def _execute_unless_deleted(
    ctx: WorkerContext, event: MessageQueued, pipe: Pipeline, published: int | None
) -> None:
    """Run ``pipe`` (a reply's writes; ``published``: the index of its result event's
    XADD) and undo it if the reply's user was deleted by then: one round trip, two then.
    The user's reply list lives on as long as the stream just written."""
    pipe.expire(erasure.replies_key(event.user_id), ctx.ttl)
    pipe.exists(erasure.deleted_key(event.user_id))
    *results, _, deleted = await pipe.execute()
    if deleted:
        entries = [str(results[published])] if published is not None else []
        await erasure.erase_reply(
            ctx.redis,
            event.user_id,
            str(event.reply_id),
            stream=ctx.result_stream,
            entry_ids=entries,
        )


@contextlib.contextmanager
def _stop_signal(ctx: WorkerContext, reply_id: str, user_id: uuid.UUID) -> Iterator[asyncio.Event]:
    if ctx.stops is None:
        yield asyncio.Event()
        return
    with ctx.stops.watch(reply_id, user_id) as stopped:
        yield stopped


async def _suggest_title(
    ctx: WorkerContext, event: MessageQueued, outcome: Outcome, correlation_id: str | None
) -> None:
    try:
        title = await ctx.generator.title(event.prompt, outcome.text, ctx.generator.model_of(event))
    except Exception as exc:  # a room without a title is no failure of the reply
        log.warning("reply.title_failed", error=repr(exc))
        return
    if not title:
        return
    pipe = ctx.redis.pipeline(transaction=False)
    queue_publish(
        pipe,
        ChatroomTitleSuggested(chatroom_id=event.chatroom_id, user_id=event.user_id, title=title),
        producer=PRODUCER,
        stream=ctx.result_stream,
        correlation_id=correlation_id,
    )
    await _execute_unless_deleted(ctx, event, pipe, 0)
    log.info("reply.title_suggested", title=title)


async def answer_message(
    ctx: WorkerContext, event: MessageQueued, *, correlation_id: str | None = None
) -> None:
    """Generate the reply to ``event``, finish its token stream, publish the result."""
    reply_id = str(event.reply_id)
    pipe = ctx.redis.pipeline(transaction=False)
    token = replies.queue_start(pipe, reply_id, lease_ms=lease_ms(ctx.settings))
    erasure.queue_track(pipe, event.user_id, reply_id, ttl=ctx.ttl)
    *results, deleted = await pipe.execute()
    if deleted:  # the user's account was deleted: nothing to generate or publish
        await erasure.erase_reply(ctx.redis, event.user_id, reply_id)
        return
    start = replies.started(token, results)
    if not start.held:
        log.info("reply.already_in_progress")
        return
    so_far = start.so_far
    released = False  # the lease went back with the finishing round trip
    try:
        if so_far.end is not None:
            if so_far.end.status == "cancelled":
                log.info("reply.already_stopped")
                return
            outcome = recorded_outcome(so_far)
            await _finish(ctx, event, outcome, correlation_id, lease_token=start.token, end=False)
            released = True
            log.info("reply.republished", status=outcome.status)
            return
        async with _renewing(ctx, reply_id, start.token):
            if so_far.started:  # an earlier delivery died mid-way: void what it streamed
                await replies.append_reset(ctx.redis, reply_id, ttl=ctx.ttl)
            started = time.perf_counter()
            log.info(
                "reply.started",
                attempt=event.attempt,
                history_turns=len(event.history),
                prompt_chars=len(event.prompt),
                resumed=so_far.started,
            )
            with _stop_signal(ctx, reply_id, event.user_id) as stopped:
                if start.stop_requested:
                    stopped.set()  # stopped before it started: nothing to generate
                outcome = (
                    Outcome(status="cancelled")
                    if stopped.is_set()
                    else await ctx.generator.generate(event, stopped)
                )
            # A first reply's title is asked for with the lease still held.
            title = outcome.status == "completed" and event.want_title
            await _finish(
                ctx, event, outcome, correlation_id, lease_token=None if title else start.token
            )
            released = not title
            if title:
                await _suggest_title(ctx, event, outcome, correlation_id)
    finally:
        if not released:
            try:
                await replies.release_lease(ctx.redis, reply_id, start.token)
            except RedisError as exc:  # it expires on its own
                log.warning("reply.lease_release_failed", error=repr(exc))

    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    if outcome.status == "cancelled":
        # Chat stored the reply as cancelled when the user stopped it: nothing to send.
        log.info("reply.stopped", partial_chars=len(outcome.text))
    elif outcome.status == "completed":
        log.info(
            "reply.completed",
            tokens=outcome.usage.output_tokens,
            finish_reason=outcome.finish_reason,
            attempts=outcome.attempts,
            duration_ms=duration_ms,
        )
    else:
        log.warning(
            "reply.failed",
            status=outcome.status,
            reason=outcome.reason,
            finish_reason=outcome.finish_reason or None,
            attempts=outcome.attempts,
            error=outcome.error or None,
            partial_chars=len(outcome.text),
            duration_ms=duration_ms,
        )

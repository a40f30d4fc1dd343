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
from redis.exceptions import RedisError

from ai_worker.generation import Outcome, ReplyGenerator
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
from shared.outbox import publish_now, stream_for

log = structlog.get_logger(__name__)

PRODUCER = "ai-worker"
RESULT_STREAM = stream_for("ai")  # ai.events (DESIGN §1)

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


def lease_key(reply_id: str) -> str:
    return f"ai-worker.lease.{reply_id}"


@contextlib.asynccontextmanager
async def _lease(ctx: WorkerContext, reply_id: str) -> AsyncIterator[bool]:
    """Yields whether this worker holds the reply's lease; renews it until the block ends."""
    key, token = lease_key(reply_id), uuid.uuid4().hex
    ttl_ms = max(int(ctx.settings.claim_idle_seconds * 1000 / 3), 1000)
    if not await ctx.redis.set(key, token, nx=True, px=ttl_ms):
        yield False
        return

    done = asyncio.Event()

    async def renew() -> None:
        while True:
            await sleep_unless(done, ttl_ms / 3000)
            if done.is_set():
                return
            try:
                if not await ctx.redis.eval(_RENEW, 1, key, token, ttl_ms):
                    log.warning("reply.lease_lost")
            except RedisError as exc:
                log.warning("reply.lease_renew_failed", error=repr(exc))

    # Stopped by an event, not by cancel(): on Python 3.11 redis-py can swallow a
    # cancellation (asyncio.wait_for in send_packed_command), and a renewer that missed
    # it would keep the reply from ever finishing.
    renewer = asyncio.create_task(renew())
    try:
        yield True
    finally:
        done.set()
        await asyncio.wait({renewer})
        try:
            await ctx.redis.eval(_RELEASE, 1, key, token)
        except RedisError as exc:  # it expires on its own
            log.warning("reply.lease_release_failed", error=repr(exc))


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


async def _append_end(ctx: WorkerContext, reply_id: str, outcome: Outcome) -> None:
    if outcome.status != "completed":
        await replies.append_end(
            ctx.redis,
            reply_id,
            outcome.status,
            ttl=ctx.ttl,
            reason=outcome.reason,
            message=outcome.message,
        )
        return
    # What a later delivery needs to publish ReplyCompleted again without the model;
    # replies.append_end has no room for it, and readers ignore fields they do not know.
    fields = {
        "type": "end",
        "status": "completed",
        "finish_reason": outcome.finish_reason,
        "model": outcome.model,
        "prompt_tokens": str(outcome.usage.prompt_tokens),
        "output_tokens": str(outcome.usage.output_tokens),
        "total_tokens": str(outcome.usage.total_tokens),
    }
    await replies.append(ctx.redis, reply_id, fields, ttl=ctx.ttl)


def stored_outcome(so_far: replies.ReplySoFar) -> Outcome:
    """The outcome a finished token stream records."""
    end = so_far.end or {}
    status = end.get("status", "failed")
    if status == "completed":
        return Outcome(
            "completed",
            text=so_far.text,
            finish_reason=end.get("finish_reason", ""),
            model=end.get("model", ""),
            usage=TokenUsage(
                prompt_tokens=int(end.get("prompt_tokens", 0)),
                output_tokens=int(end.get("output_tokens", 0)),
                total_tokens=int(end.get("total_tokens", 0)),
            ),
        )
    return Outcome(
        "blocked" if status == "blocked" else "failed",
        text=so_far.text,
        reason=end.get("reason", "model_error"),
        message=end.get("message", ""),
    )


async def _publish(
    ctx: WorkerContext, event: MessageQueued, outcome: Outcome, correlation_id: str | None
) -> None:
    await publish_now(
        ctx.redis,
        result_event(event, outcome),
        producer=PRODUCER,
        stream=ctx.result_stream,
        correlation_id=correlation_id,
    )


@contextlib.contextmanager
def _stop_signal(ctx: WorkerContext, reply_id: str) -> Iterator[asyncio.Event]:
    if ctx.stops is None:
        yield asyncio.Event()
        return
    with ctx.stops.watch(reply_id) as stopped:
        yield stopped


async def _suggest_title(
    ctx: WorkerContext, event: MessageQueued, outcome: Outcome, correlation_id: str | None
) -> None:
    try:
        title = await ctx.generator.title(event.prompt, outcome.text)
    except Exception as exc:  # a room without a title is no failure of the reply
        log.warning("reply.title_failed", error=repr(exc))
        return
    if not title:
        return
    await publish_now(
        ctx.redis,
        ChatroomTitleSuggested(chatroom_id=event.chatroom_id, user_id=event.user_id, title=title),
        producer=PRODUCER,
        stream=ctx.result_stream,
        correlation_id=correlation_id,
    )
    log.info("reply.title_suggested", title=title)


async def answer_message(
    ctx: WorkerContext, event: MessageQueued, *, correlation_id: str | None = None
) -> None:
    """Generate the reply to ``event``, finish its token stream, publish the result."""
    reply_id = str(event.reply_id)
    async with _lease(ctx, reply_id) as held:
        if not held:
            log.info("reply.already_in_progress")
            return
        so_far = await replies.read_all(ctx.redis, reply_id)
        if so_far.end is not None:
            if so_far.end.get("status") == "cancelled":
                log.info("reply.already_stopped")
                return
            outcome = stored_outcome(so_far)
            await _publish(ctx, event, outcome, correlation_id)
            log.info("reply.republished", status=outcome.status)
            return
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
        with _stop_signal(ctx, reply_id) as stopped:
            if await ctx.redis.exists(replies.stop_key(reply_id)):
                stopped.set()  # stopped before it started: nothing to generate
            outcome = (
                Outcome(status="cancelled")
                if stopped.is_set()
                else await ctx.generator.generate(event, stopped)
            )
        # end before the event: a crash in between is healed by the next delivery.
        await _append_end(ctx, reply_id, outcome)
        if outcome.status == "cancelled":
            # Chat stored the reply as cancelled when the user stopped it: nothing to send.
            log.info("reply.stopped", partial_chars=len(outcome.text))
            return
        await _publish(ctx, event, outcome, correlation_id)
        if outcome.status == "completed" and event.want_title:
            await _suggest_title(ctx, event, outcome, correlation_id)

    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    if outcome.status == "completed":
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

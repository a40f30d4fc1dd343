"""The running worker: consumer group, concurrency, graceful stop, health endpoints."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ai_worker.app import create_app
from ai_worker.handlers import GROUP, build_consumer
from shared.consumer import StreamConsumer
from shared.events import ReplyCompleted
from shared.events.envelope import decode, to_json
from shared.testing.asgi import app_client
from shared.testing.wait import eventually


@pytest.fixture
def chat_stream(cleanup: list[str]) -> str:
    """A stand-in for chat.events, unique to the test."""
    name = f"test-chat-{uuid.uuid4().hex[:12]}.events"
    cleanup.extend([name, f"{name}.dlq"])
    return name


@pytest.fixture
def result_stream(cleanup: list[str]) -> str:
    name = f"test-ai-{uuid.uuid4().hex[:12]}.events"
    cleanup.append(name)
    return name


async def publish(redis, stream: str, envelope) -> None:
    await redis.xadd(stream, {"type": envelope.type, "envelope": to_json(envelope)})


async def published(redis, stream: str) -> list:
    return [decode(fields["envelope"])[1] for _, fields in await redis.xrange(stream)]


async def has_tokens(redis, reply_id) -> bool:
    entries = await redis.xrange(f"ai.reply.{reply_id}")
    return any(fields["type"] == "token" for _, fields in entries)


async def test_twenty_prompts_are_answered_concurrently(
    redis, make_ctx, make_settings, sim, queued, chat_stream
):
    await sim.configure(token_delay_ms=25)  # a reply takes 12 x 25 ms
    ctx = make_ctx(make_settings(ai_worker_concurrency=20))
    consumer = build_consumer(redis, ctx, streams=[chat_stream])
    events = [queued(f"question {i}") for i in range(20)]
    for _, envelope in events:
        await publish(redis, chat_stream, envelope)

    stop = asyncio.Event()
    run = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(
            lambda: _length(redis, ctx.result_stream, 20), timeout=15, what="20 replies"
        )
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)

    replies = await published(redis, ctx.result_stream)
    assert all(isinstance(r, ReplyCompleted) for r in replies)
    assert {r.reply_id for r in replies} == {e.reply_id for e, _ in events}
    # Requests were being served at the same time, not one after another.
    assert sim.inflight.peak >= 15, sim.inflight.peak
    assert len(await sim.requests()) == 20
    assert (await redis.xpending(chat_stream, GROUP))["pending"] == 0


async def _length(redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def test_stop_during_a_generation_lets_the_reply_finish_and_acks_it(
    redis, make_settings, sim, queued, chat_stream, result_stream
):
    # 1.8 s per reply: longer than the consumer's blocking read, so the stop is seen mid-reply.
    await sim.configure(token_delay_ms=150)
    app = create_app(
        make_settings(shutdown_grace_seconds=10), streams=[chat_stream], result_stream=result_stream
    )
    event, envelope = queued("a long answer please")

    async with app.router.lifespan_context(app):
        await publish(redis, chat_stream, envelope)
        await eventually(lambda: has_tokens(redis, event.reply_id), what="the first token")
        [*_, (_, last)] = await redis.xrange(f"ai.reply.{event.reply_id}")
        assert last["type"] == "token"  # still generating
        # Leaving the block is what uvicorn does on SIGTERM: the lifespan shuts down.

    [result] = await published(redis, result_stream)
    assert isinstance(result, ReplyCompleted) and result.reply_id == event.reply_id
    [*_, (_, end)] = await redis.xrange(f"ai.reply.{event.reply_id}")
    assert end["type"] == "end" and end["status"] == "completed"
    assert (await redis.xpending(chat_stream, GROUP))["pending"] == 0


async def test_reply_cut_off_by_the_grace_period_stays_pending_for_another_worker(
    redis, make_settings, sim, queued, chat_stream, result_stream
):
    app = create_app(
        make_settings(shutdown_grace_seconds=0), streams=[chat_stream], result_stream=result_stream
    )
    # The model sends nothing for a while, so the cancellation lands in the HTTP read (on
    # Python 3.11 one landing inside a redis-py call can be swallowed by its wait_for).
    event, envelope = queued("[sim:hang] a long answer please")

    async with app.router.lifespan_context(app):
        await publish(redis, chat_stream, envelope)

        async def model_called() -> bool:
            return bool(await sim.requests())

        await eventually(model_called, what="the request to the model")

    assert await redis.xlen(result_stream) == 0
    assert (await redis.xpending(chat_stream, GROUP))["pending"] == 1
    assert not await redis.exists(f"ai-worker.lease.{event.reply_id}")  # free to take over


async def test_readyz_reports_redis_and_the_consumer(
    make_settings, sim, chat_stream, result_stream
):
    app = create_app(make_settings(), streams=[chat_stream], result_stream=result_stream)

    async with app_client(app) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")

    assert health.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json()["data"]["checks"] == {"redis": "ok", "consumer": "ok"}


async def test_livez_is_503_once_the_consumer_loop_has_died(
    make_settings, sim, chat_stream, result_stream
):
    app = create_app(make_settings(), streams=[chat_stream], result_stream=result_stream)

    async with app_client(app) as client:
        alive = await client.get("/livez")
        task = app.state.consumer_task
        task.cancel()  # as good as a crash: the loop is gone and nothing restarts it
        await asyncio.gather(task, return_exceptions=True)
        dead = await client.get("/livez")
        health = await client.get("/healthz")

    assert alive.status_code == 200, alive.text
    assert dead.status_code == 503
    assert dead.json()["code"] == "consumer_stopped"
    assert health.status_code == 200  # /healthz only says the process answers


async def test_a_crashed_consumer_loop_is_started_again(
    make_settings, sim, chat_stream, result_stream, monkeypatch
):
    calls = 0
    original = StreamConsumer.run

    async def crashing_once(self, stop, shutdown_timeout=30.0):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the loop crashed")
        await original(self, stop, shutdown_timeout)

    monkeypatch.setattr(StreamConsumer, "run", crashing_once)
    app = create_app(make_settings(), streams=[chat_stream], result_stream=result_stream)

    async with app_client(app) as client:
        await eventually(lambda: calls >= 2, what="the loop to start again")
        live = await client.get("/livez")

    assert live.status_code == 200, live.text


async def test_livez_stays_200_while_the_worker_is_stopping(
    make_settings, sim, chat_stream, result_stream
):
    app = create_app(make_settings(), streams=[chat_stream], result_stream=result_stream)

    async with app_client(app) as client:
        app.state.stop.set()  # what shutdown does first: the loop ends on purpose
        await asyncio.wait_for(app.state.consumer_task, timeout=10)
        response = await client.get("/livez")

    assert response.status_code == 200, response.text

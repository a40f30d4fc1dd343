"""The stream consumer against real Postgres and Redis."""

import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
import redis as sync_redis
import uvloop

from shared.consumer import StreamConsumer
from shared.delivery import inbox_processor
from shared.events import UserRegistered, encode
from shared.events.envelope import to_json
from shared.redis import open_redis
from shared.testing.wait import eventually


def registered_envelope() -> str:
    event = UserRegistered(
        user_id=uuid.uuid4(), mobile_number="+917373737373", registered_at=datetime.now(UTC)
    )
    return to_json(encode(event, producer="auth"))


@pytest.fixture
def stream() -> str:
    return f"s{uuid.uuid4().hex[:10]}.events"


async def publish(redis, stream: str, envelope: str | None = None) -> str:
    envelope = envelope or registered_envelope()
    await redis.xadd(stream, {"type": "UserRegistered", "envelope": envelope})
    return envelope


def consumer(redis, stream, process, **kwargs) -> StreamConsumer:
    options = {"group": "g", "name": "c1", "claim_idle_ms": 200, "max_deliveries": 3}
    options.update(kwargs)
    return StreamConsumer(
        redis, streams=[stream], types={"UserRegistered"}, process=process, **options
    )


async def effects(pool) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT note FROM effects ORDER BY note")
        return [r[0] for r in await cur.fetchall()]


async def test_same_event_twice_changes_nothing_the_second_time(messaging_pool, redis, stream):
    async def on_registered(event, delivery):
        assert delivery.ctx == "the context" and delivery.envelope.type == "UserRegistered"
        await delivery.tx.conn.execute(
            "INSERT INTO effects (event_id, note) VALUES (gen_random_uuid(), %s)",
            (event.mobile_number,),
        )

    process = inbox_processor(messaging_pool, {UserRegistered: on_registered}, "the context")
    envelope = await publish(redis, stream)
    await publish(redis, stream, envelope)  # the same event id, delivered again
    async with asyncio.timeout(10):
        assert await consumer(redis, stream, process).drain() == 2
    assert await effects(messaging_pool) == ["+917373737373"]
    pending = await redis.xpending(stream, "g")
    assert pending["pending"] == 0


async def test_a_before_step_runs_outside_the_transaction_on_every_delivery(
    messaging_pool, redis, stream
):
    """The step for an outside API (billing's Stripe call): it runs for a repeated event
    too (so it must be idempotent itself), with no inbox row yet, and the handler only
    after it."""
    calls: list[str] = []

    async def outside(event, delivery):
        assert delivery.ctx == "ctx" and not hasattr(delivery, "tx")
        async with messaging_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM inbox WHERE event_id = %s", (delivery.envelope.id,)
            )
            calls.append(f"before, handled {(await cur.fetchone())[0]}x")

    async def handler(event, delivery):
        calls.append("handler")

    process = inbox_processor(
        messaging_pool, {UserRegistered: handler}, "ctx", before={UserRegistered: outside}
    )
    envelope = await publish(redis, stream)
    await publish(redis, stream, envelope)
    async with asyncio.timeout(10):
        c = consumer(redis, stream, process)
        await c.drain()
    assert calls == ["before, handled 0x", "handler", "before, handled 1x"]


async def test_handler_failure_rolls_back_its_effects_and_inbox_row(messaging_pool, redis, stream):
    calls = 0

    async def flaky(event, delivery):
        nonlocal calls
        calls += 1
        await delivery.tx.conn.execute(
            "INSERT INTO effects (event_id, note) VALUES (gen_random_uuid(), %s)", (str(calls),)
        )
        if calls == 1:
            raise RuntimeError("transient")

    process = inbox_processor(messaging_pool, {UserRegistered: flaky}, None)
    await publish(redis, stream)
    # claim_idle_ms well above one handler run, so the first drain cannot reclaim it.
    c = consumer(redis, stream, process, claim_idle_ms=1000)
    async with asyncio.timeout(10):
        await c.drain()
        assert (await redis.xpending(stream, "g"))["pending"] == 1
        await asyncio.sleep(1.1)  # past claim_idle_ms: the entry may be reclaimed
        await c.drain()
    assert await effects(messaging_pool) == ["2"]
    assert (await redis.xpending(stream, "g"))["pending"] == 0


async def test_poison_entry_is_dead_lettered_while_others_flow(redis, stream):
    seen: list[str] = []

    async def process(envelope, event, stream_name):
        if event.mobile_number == "+910000000000":
            raise RuntimeError("always fails")
        seen.append(str(envelope.id))

    poison = json.loads(registered_envelope())
    poison["payload"]["mobileNumber"] = "+910000000000"
    await publish(redis, stream, json.dumps(poison))
    good = [await publish(redis, stream) for _ in range(3)]
    c = consumer(redis, stream, process)
    async with asyncio.timeout(20):
        while await redis.xlen(f"{stream}.dlq") == 0:
            await c.drain()
            await asyncio.sleep(0.25)
    assert sorted(seen) == sorted(json.loads(g)["id"] for g in good)
    [(_, dead)] = await redis.xrange(f"{stream}.dlq")
    assert json.loads(dead["envelope"])["id"] == poison["id"]
    # Dead-lettered at its last allowed delivery (max_deliveries=3), with the error.
    assert int(dead["deliveries"]) == 3
    assert dead["reason"] == "handler failed: RuntimeError: always fails"
    assert (await redis.xpending(stream, "g"))["pending"] == 0


async def test_undecodable_entry_goes_straight_to_the_dead_letter_stream(redis, stream):
    async def process(envelope, event, stream_name):
        raise AssertionError("never called")

    await redis.xadd(stream, {"type": "UserRegistered", "envelope": "{broken"})
    async with asyncio.timeout(10):
        await consumer(redis, stream, process).drain()
    assert await redis.xlen(f"{stream}.dlq") == 1
    assert (await redis.xpending(stream, "g"))["pending"] == 0


async def test_events_of_other_types_are_acked_and_skipped(redis, stream):
    async def process(envelope, event, stream_name):
        raise AssertionError("never called")

    await redis.xadd(stream, {"type": "SomethingElse", "envelope": "{}"})
    async with asyncio.timeout(10):
        await consumer(redis, stream, process).drain()
    assert (await redis.xpending(stream, "g"))["pending"] == 0
    assert await redis.xlen(f"{stream}.dlq") == 0


async def test_entry_of_a_dead_consumer_is_reclaimed(redis, stream):
    await publish(redis, stream)
    c = consumer(redis, stream, None)
    await c.ensure_groups()
    # "c0" reads the entry and dies before acking it.
    await redis.xreadgroup("g", "c0", {stream: ">"}, count=1)
    done: list[str] = []

    async def process(envelope, event, stream_name):
        done.append(str(envelope.id))

    c.process = process
    async with asyncio.timeout(10):
        while not done:
            await asyncio.sleep(0.1)
            await c.drain()
    assert len(done) == 1
    assert (await redis.xpending(stream, "g"))["pending"] == 0


async def test_group_is_recreated_when_redis_loses_the_stream(redis, stream):
    done: list[str] = []

    async def process(envelope, event, stream_name):
        done.append(str(envelope.id))

    c = consumer(redis, stream, process, block_ms=100)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    try:
        await publish(redis, stream)
        await eventually(lambda: len(done) == 1, what="the first event")
        await redis.delete(stream)  # like FLUSHALL: the stream and its group are gone
        await publish(redis, stream)
        await eventually(lambda: len(done) == 2, what="the event after the group was lost")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_concurrency_and_heartbeat_keep_slow_entries_with_their_owner(redis, stream):
    running = 0
    peak = 0
    calls: list[str] = []

    async def slow(envelope, event, stream_name):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        calls.append(str(envelope.id))
        await asyncio.sleep(2.0)  # several times claim_idle_ms
        running -= 1

    for _ in range(4):
        await publish(redis, stream)
    # Heartbeats every 200 ms against a 600 ms idle deadline: a margin for a busy machine.
    owner = consumer(redis, stream, slow, concurrency=4, block_ms=50, claim_idle_ms=600)
    rival = consumer(redis, stream, slow, name="c2", block_ms=50, claim_idle_ms=600)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(owner.run(stop))]
    await eventually(lambda: running == 4, interval=0.01, what="four entries in flight")
    tasks.append(asyncio.create_task(rival.run(stop)))

    async def all_acked() -> bool:
        return (await redis.xpending(stream, "g"))["pending"] == 0

    await eventually(all_acked, what="every entry acked")
    stop.set()
    await asyncio.gather(*tasks)
    assert peak == 4
    assert len(calls) == 4  # nobody reclaimed an entry that was still being processed


async def test_a_full_consumer_starts_the_next_entry_when_one_finishes(redis, stream):
    """One slot, three entries: each waits for the one before, and starts as soon as
    it is done; the claim deadline, and with it the heartbeat the loop would otherwise
    wait for, is ten minutes away."""
    order: list[str] = []

    async def process(envelope, event, stream_name):
        order.append(f"start {envelope.id}")
        await asyncio.sleep(0.05)
        order.append(f"end {envelope.id}")

    ids = [json.loads(await publish(redis, stream))["id"] for _ in range(3)]
    c = consumer(redis, stream, process, concurrency=1, block_ms=50, claim_idle_ms=600_000)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    try:
        await eventually(lambda: len(order) == 6, timeout=10, what="three entries handled")
    finally:
        stop.set()
        await task
    assert order == [f"{step} {i}" for i in ids for step in ("start", "end")]


async def test_stop_lets_inflight_entries_finish(redis, stream):
    started = asyncio.Event()
    finished: list[bool] = []

    async def process(envelope, event, stream_name):
        started.set()
        await asyncio.sleep(0.3)
        finished.append(True)

    await publish(redis, stream)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer(redis, stream, process, block_ms=50).run(stop))
    async with asyncio.timeout(10):
        await started.wait()
    stop.set()
    await asyncio.wait_for(task, 10)
    assert finished == [True]
    assert (await redis.xpending(stream, "g"))["pending"] == 0


def test_an_answer_lost_to_a_frozen_read_is_handled_without_the_claim_deadline(redis_url, stream):
    """The process freezes (a VM pause, SIGSTOP, a stop-the-world stall) in the middle of
    a blocking read, and Redis answers it meanwhile. When the process runs again the
    socket timeout has passed: uvloop (which the services run on) fires expired timers
    before it reads the sockets, so redis-py drops the answer and sends the read again.
    The entries of the lost answer are this consumer's (pending), but nothing handles
    them; the consumer finds them at once instead of after the claim deadline."""
    handled = []

    async def scenario() -> None:
        redis = open_redis(redis_url, socket_timeout=1.0)

        done = asyncio.Event()

        async def process(envelope, event, stream):
            handled.append(envelope.id)
            done.set()

        c = consumer(redis, stream, process, claim_idle_ms=600_000, block_ms=800)
        await c.ensure_groups()
        stop = asyncio.Event()
        running = asyncio.create_task(c.run(stop))
        try:
            await asyncio.sleep(0.05)  # the consumer is in its blocking read (0.8 s)

            def publish_meanwhile() -> None:
                with sync_redis.Redis.from_url(redis_url) as other:
                    other.xadd(
                        stream, {"type": "UserRegistered", "envelope": registered_envelope()}
                    )

            writer = threading.Timer(0.1, publish_meanwhile)
            writer.start()
            # The freeze: the event loop runs nothing while Redis answers the read.
            time.sleep(3.0)  # noqa: ASYNC251 - blocking the loop is the point
            writer.join()
            async with asyncio.timeout(10):  # the claim deadline is ten minutes away
                await done.wait()

            async def acked() -> bool:  # after the handler returns
                return (await redis.xpending(stream, "g"))["pending"] == 0

            await eventually(acked, what="the entry's ack")
        finally:
            stop.set()
            await running
            await redis.aclose()

    uvloop.run(scenario())
    assert len(handled) == 1


async def test_an_entry_left_pending_after_a_failure_is_not_taken_for_a_lost_one(redis, stream):
    """Looking for entries of lost answers must not retry a failed one before its claim
    deadline (the wait between tries): only entries nothing knows about are taken up."""
    calls = []

    async def process(envelope, event, stream):
        calls.append(envelope.id)
        raise RuntimeError("the handler fails")

    c = consumer(redis, stream, process, claim_idle_ms=600_000)
    await publish(redis, stream)
    async with asyncio.timeout(10):
        await c.drain()
    assert len(calls) == 1
    # An entry of a lost answer: delivered to this consumer, never handled.
    await publish(redis, stream)
    await redis.xreadgroup("g", "c1", {stream: ">"}, count=1)
    recovered = await c._recover_stranded(10)
    assert [e.entry_id for e in recovered] == [
        str(p["message_id"]) for p in await redis.xpending_range(stream, "g", "-", "+", 10)
    ][1:]

"""The outbox relay against real Postgres and Redis."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.db import Database
from shared.events import UserRegistered, decode
from shared.outbox import OutboxRelay, add, republish_since, stream_for
from shared.redis import open_redis
from shared.testing.wait import eventually


def registered() -> UserRegistered:
    return UserRegistered(
        user_id=uuid.uuid4(), mobile_number="+917373737373", registered_at=datetime.now(UTC)
    )


@pytest.fixture
def producer() -> str:
    return "p" + uuid.uuid4().hex[:10]


@pytest.fixture
def relay(messaging_pool, redis, database_url, schema):
    return OutboxRelay(messaging_pool, redis, database_url=database_url, schema=schema)


async def unpublished(pool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return (await cur.fetchone())[0]


async def test_committed_event_is_published_once_and_kept(messaging_pool, relay, redis, producer):
    event = registered()
    async with Database(messaging_pool).transaction() as tx:
        event_id = await add(tx.conn, event, producer=producer, correlation_id="req-9")
    assert await relay.drain() == 1
    assert await relay.drain() == 0
    entries = await redis.xrange(stream_for(producer))
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields["type"] == "UserRegistered"
    envelope, decoded = decode(fields["envelope"])
    assert str(envelope.id) == event_id
    assert envelope.correlation_id == "req-9"
    assert decoded == event
    async with messaging_pool.connection() as conn:
        cur = await conn.execute("SELECT published_at IS NOT NULL FROM outbox")
        assert (await cur.fetchone())[0] is True  # kept as the event log


async def test_rolled_back_event_is_never_published(messaging_pool, relay, redis, producer):
    with pytest.raises(RuntimeError):
        async with Database(messaging_pool).transaction() as tx:
            await add(tx.conn, registered(), producer=producer)
            raise RuntimeError("the state change failed")
    assert await relay.drain() == 0
    assert await redis.xlen(stream_for(producer)) == 0


async def test_redis_down_leaves_rows_unpublished(
    messaging_pool, database_url, schema, redis, producer
):
    async with Database(messaging_pool).transaction() as tx:
        await add(tx.conn, registered(), producer=producer)
    dead = open_redis("redis://127.0.0.1:1/0")
    broken = OutboxRelay(messaging_pool, dead, database_url=database_url, schema=schema)
    with pytest.raises(Exception):  # noqa: B017 - any connection error
        await broken.publish_pending()
    await dead.aclose()
    assert await unpublished(messaging_pool) == 1
    working = OutboxRelay(messaging_pool, redis, database_url=database_url, schema=schema)
    assert await working.drain() == 1
    assert await unpublished(messaging_pool) == 0


async def test_republish_since_sends_the_log_again(messaging_pool, relay, redis, producer):
    async with Database(messaging_pool).transaction() as tx:
        for _ in range(3):
            await add(tx.conn, registered(), producer=producer)
    await relay.drain()
    await redis.delete(stream_for(producer))  # Redis lost its data
    async with Database(messaging_pool).transaction() as tx:
        count = await republish_since(tx.conn, datetime.now(UTC) - timedelta(minutes=5))
    assert count == 3
    assert await relay.drain() == 3
    assert await redis.xlen(stream_for(producer)) == 3


async def test_concurrent_relays_publish_every_row_exactly_once(
    messaging_pool, database_url, schema, redis, producer
):
    async with Database(messaging_pool).transaction() as tx:
        for _ in range(300):
            await add(tx.conn, registered(), producer=producer)
    relays = [
        OutboxRelay(messaging_pool, redis, database_url=database_url, schema=schema, batch_size=20)
        for _ in range(3)
    ]
    counts = await asyncio.gather(*(r.drain() for r in relays))
    assert sum(counts) == 300
    assert await redis.xlen(stream_for(producer)) == 300


async def test_running_relay_is_woken_by_notify(
    messaging_pool, database_url, schema, redis, producer
):
    # A poll interval far longer than the test: only NOTIFY can explain a quick publish.
    relay = OutboxRelay(
        messaging_pool, redis, database_url=database_url, schema=schema, poll_interval=60
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.3)  # let it LISTEN and finish its first (empty) drain
        async with Database(messaging_pool).transaction() as tx:
            await add(tx.conn, registered(), producer=producer)

        async def published() -> bool:
            return await redis.xlen(stream_for(producer)) == 1

        await eventually(published, timeout=5, interval=0.02, what="the relay to publish")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_batch_goes_out_in_the_order_it_was_written(messaging_pool, relay, redis, producer):
    events = [registered() for _ in range(5)]
    for event in events:
        async with Database(messaging_pool).transaction() as tx:
            await add(tx.conn, event, producer=producer)
    # Rewrite the first two rows in place: their new versions sit after the others in the
    # table, so reading the table in storage order would return them last.
    async with messaging_pool.connection() as conn:
        await conn.execute(
            "UPDATE outbox SET envelope = envelope WHERE id IN"
            " (SELECT id FROM outbox ORDER BY id LIMIT 2)"
        )
    assert await relay.drain() == 5
    entries = await redis.xrange(stream_for(producer))
    published = [decode(fields["envelope"])[1] for _, fields in entries]
    assert [e.user_id for e in published] == [e.user_id for e in events]

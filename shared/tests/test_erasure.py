"""Erasing a deleted user's events from the outbox table and from a stream (and its dead
letters), keeping everyone else's and the UserDeleted event itself."""

import uuid
from datetime import UTC, datetime

from shared.db import Database
from shared.dlq import dlq_stream
from shared.erasure import PAGE, erase_from_outbox, erase_from_stream
from shared.events import UserDeleted, UserRegistered, encode
from shared.events.envelope import to_json
from shared.outbox import add


def registered(user_id: uuid.UUID) -> UserRegistered:
    return UserRegistered(
        user_id=user_id, mobile_number="+917373737373", registered_at=datetime.now(UTC)
    )


def deleted(user_id: uuid.UUID) -> UserDeleted:
    return UserDeleted(user_id=user_id, deleted_at=datetime.now(UTC))


async def test_only_the_users_rows_go_and_their_deletion_stays(messaging_pool):
    gone, kept = uuid.uuid4(), uuid.uuid4()
    async with Database(messaging_pool).transaction() as tx:
        for event in (registered(gone), registered(kept), deleted(gone), registered(gone)):
            await add(tx.conn, event, producer="auth")
    async with Database(messaging_pool).transaction() as tx:
        assert await erase_from_outbox(tx.conn, gone) == 2
        assert await erase_from_outbox(tx.conn, gone) == 0  # idempotent
        cur = await tx.conn.execute("SELECT type, envelope -> 'payload' ->> 'userId' FROM outbox")
        assert sorted(await cur.fetchall()) == sorted(
            [("UserRegistered", str(kept)), ("UserDeleted", str(gone))]
        )


async def test_a_long_stream_and_its_dead_letters_lose_only_the_users_entries(redis):
    stream = f"erasure-{uuid.uuid4().hex[:8]}.events"
    gone, kept = uuid.uuid4(), uuid.uuid4()
    try:
        # More than a page, the user's entries spread over every page.
        for i in range(PAGE * 2 + 10):
            event = registered(gone if i % 7 == 0 else kept)
            envelope = encode(event, producer="auth")
            await redis.xadd(stream, {"type": envelope.type, "envelope": to_json(envelope)})
        tombstone = encode(deleted(gone), producer="auth")
        await redis.xadd(stream, {"type": tombstone.type, "envelope": to_json(tombstone)})
        letter = encode(registered(gone), producer="auth")
        await redis.xadd(
            dlq_stream(stream),
            {"type": letter.type, "envelope": to_json(letter), "reason": "x", "group": "g"},
        )
        await redis.xadd(stream, {"type": "Garbled", "envelope": "not json"})
        expected = len(range(0, PAGE * 2 + 10, 7)) + 1

        assert await erase_from_stream(redis, stream, gone) == expected
        assert await erase_from_stream(redis, stream, gone) == 0
        left = [fields for _, fields in await redis.xrange(stream)]
        assert len(left) == PAGE * 2 + 10 - (expected - 1) + 2
        assert str(gone) not in "".join(f["envelope"] for f in left if f["type"] != "UserDeleted")
        assert await redis.xlen(dlq_stream(stream)) == 0
    finally:
        await redis.delete(stream, dlq_stream(stream))

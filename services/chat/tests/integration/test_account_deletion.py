"""UserDeleted: chat erases everything of the user (rows in every table, the events it
published, the Redis keys) and nothing of anyone else; a second delivery and a late
SubscriptionChanged change nothing."""

import json
from datetime import UTC, datetime

import psycopg

from shared.events import UserDeleted
from shared.replies import append_token, reply_stream, stop_key


async def a_full_account(api, bus, client, user) -> dict[str, str]:
    """Rooms, a completed exchange, a share link, a pending reply with a live stream, a
    warm list cache, the Pro tier: what the account leaves behind if not erased."""
    await bus.tier(user, "PRO")
    room = await api.new_room(user, "mine")
    sent = (await api.send(user, room["id"], "my secret prompt")).json()["data"]
    await bus.complete(user, room["id"], sent["reply"]["id"], "my secret answer")
    await bus.handled()
    assert (
        await client.post(f"/api/v1/chatroom/{room['id']}/share", headers=user.headers)
    ).status_code == 201
    other_room = await api.new_room(user)
    pending = (await api.send(user, other_room["id"], "still thinking")).json()["data"]["reply"]
    await append_token(bus.redis, pending["id"], "half an ans", ttl=600)
    assert (await client.get("/api/v1/chatroom", headers=user.headers)).status_code == 200
    return {"completed": sent["reply"]["id"], "pending": pending["id"]}


async def delete(bus, user) -> None:
    event = UserDeleted(user_id=user.id, deleted_at=datetime.now(UTC))
    await bus.emit(event, stream="auth.events", producer="auth")
    await bus.handled("auth.events")


def rows_naming(database_url: str, *texts: str) -> dict[str, int]:
    """Rows of every table of chat's schema whose text holds one of ``texts``."""
    found = {}
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'chat'"
        ).fetchall()
        for (table,) in tables:
            for text in texts:
                (count,) = conn.execute(
                    f"SELECT count(*) FROM chat.{table} t WHERE row_to_json(t)::text LIKE %s",
                    (f"%{text}%",),
                ).fetchone()
                if count:
                    found[f"{table}: {text}"] = count
    return found


async def redis_naming(redis, *texts: str) -> list[str]:
    """Keys whose name holds one of ``texts``, and streams with an entry that does."""
    found = []
    async for key in redis.scan_iter(count=1000):
        if any(t in key for t in texts):
            found.append(key)
        elif await redis.type(key) == "stream":
            entries = json.dumps(await redis.xrange(key))
            found += [f"{key}: {t}" for t in texts if t in entries]
    return found


async def test_nothing_of_the_user_is_left_and_others_keep_theirs(
    api, bus, client, user, make_user, redis, chat_database_url
):
    other = make_user()
    others_room = await api.new_room(other, "theirs")
    assert (await api.send(other, others_room["id"], "their prompt")).status_code == 201
    replies = await a_full_account(api, bus, client, user)
    me = str(user.id)
    assert rows_naming(chat_database_url, me, "my secret")  # the check can see it

    await delete(bus, user)

    assert rows_naming(chat_database_url, me, "my secret", "half an ans") == {}
    # Chat's keys and stream only: the others' (auth's token state, the events this test
    # put on billing's, the worker's and auth's streams) are theirs to erase.
    foreign = ("auth:", "auth.events", "billing.events", "ai.events")
    left = await redis_naming(redis, me, "my secret", "half an ans", *replies.values())
    assert [k for k in left if not k.startswith(foreign)] == [
        stop_key(replies["pending"])  # the worker still generating it stops (holds no data)
    ]
    assert await redis.exists(reply_stream(replies["completed"])) == 0
    assert (await client.get("/api/v1/chatroom", headers=other.headers)).json()["results"] == 1
    assert rows_naming(chat_database_url, str(other.id), "their prompt")


async def test_a_second_delivery_and_a_late_subscription_change_leave_nothing(
    api, bus, user, chat_database_url
):
    await bus.tier(user, "PRO")
    await api.new_room(user)
    await delete(bus, user)
    await delete(bus, user)  # another event id: handled again, nothing left to do
    await bus.tier(user, "PRO", as_of=datetime.now(UTC))  # billing's, sent before it knew
    assert rows_naming(chat_database_url, str(user.id)) == {}

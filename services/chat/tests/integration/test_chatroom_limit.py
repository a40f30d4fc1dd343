"""A user owns at most MAX_CHATROOMS_PER_USER chatrooms, however many requests race."""

import asyncio

import psycopg
import pytest


def rooms_of(database_url: str, user) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM chat.chatrooms WHERE user_id = %s", (user.id,))
        return row.fetchone()[0]


async def create(client, user):
    return await client.post("/api/v1/chatroom", json={"name": "one more"}, headers=user.headers)


@pytest.mark.parametrize("settings_overrides", [{"max_chatrooms_per_user": 3}])
async def test_creating_beyond_the_limit_is_409_until_one_is_deleted(api, client, user, make_user):
    rooms = [await api.new_room(user) for _ in range(3)]
    refused = await create(client, user)
    assert refused.status_code == 409
    body = refused.json()
    assert body["status"] == "fail"
    assert body["code"] == "chatroom_limit_reached"
    assert "3" in body["message"] and "Delete" in body["message"]
    # Unnamed rooms count the same.
    assert (await client.post("/api/v1/chatroom", json={}, headers=user.headers)).status_code == 409
    # Another user is not affected.
    assert (await create(client, make_user())).status_code == 201
    deleted = await client.delete(f"/api/v1/chatroom/{rooms[0]['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert (await create(client, user)).status_code == 201
    assert (await create(client, user)).status_code == 409


@pytest.mark.parametrize("settings_overrides", [{"max_chatrooms_per_user": 5}])
async def test_a_concurrent_burst_never_goes_past_the_limit(api, client, user, chat_database_url):
    await api.new_room(user)
    responses = await asyncio.gather(*(create(client, user) for _ in range(30)))
    assert sorted(r.status_code for r in responses) == [201] * 4 + [409] * 26
    assert rooms_of(chat_database_url, user) == 5

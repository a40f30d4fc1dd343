"""Chatrooms: create, list (cursor pages, cache), get, rename, delete, ownership."""

import uuid

import psycopg
import pytest


async def test_create_returns_the_reference_shape(client, user):
    response = await client.post(
        "/api/v1/chatroom", json={"name": "  chatroom 01  "}, headers=user.headers
    )
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Chatroom created successfully."
    room = body["data"]["chatroom"]
    assert room["name"] == "chatroom 01"
    assert room["userId"] == str(user.id)
    assert {"id", "createdAt", "updatedAt"} <= room.keys()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_bad_names_are_400(client, user, name):
    response = await client.post("/api/v1/chatroom", json={"name": name}, headers=user.headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


async def test_list_is_newest_first_with_cursor_pages(api, client, user):
    names = [f"room {i}" for i in range(5)]
    for name in names:
        await api.new_room(user, name)
    first = await client.get("/api/v1/chatroom?limit=2", headers=user.headers)
    body = first.json()
    assert body["results"] == 2
    assert [r["name"] for r in body["data"]["chatrooms"]] == ["room 4", "room 3"]
    seen = [r["name"] for r in body["data"]["chatrooms"]]
    cursor = body["data"]["nextCursor"]
    while cursor:
        page = (
            await client.get(f"/api/v1/chatroom?limit=2&cursor={cursor}", headers=user.headers)
        ).json()
        seen += [r["name"] for r in page["data"]["chatrooms"]]
        cursor = page["data"]["nextCursor"]
    assert seen == list(reversed(names))


async def test_bad_cursor_and_limit_are_400(client, user):
    assert (
        await client.get("/api/v1/chatroom?cursor=nope", headers=user.headers)
    ).status_code == 400
    assert (await client.get("/api/v1/chatroom?limit=0", headers=user.headers)).status_code == 400
    assert (await client.get("/api/v1/chatroom?limit=101", headers=user.headers)).status_code == 400


async def test_first_page_is_cached_and_every_change_invalidates_it(
    api, client, user, chat_database_url
):
    room = await api.new_room(user, "cached")
    first = await client.get("/api/v1/chatroom", headers=user.headers)
    assert [r["name"] for r in first.json()["data"]["chatrooms"]] == ["cached"]
    # A row written behind the service's back is not seen while the cache is warm...
    with psycopg.connect(chat_database_url) as conn:
        conn.execute(
            "INSERT INTO chat.chatrooms (id, user_id, name) VALUES (%s, %s, 'sneaky')",
            (uuid.uuid4(), user.id),
        )
    again = await client.get("/api/v1/chatroom", headers=user.headers)
    assert again.json() == first.json()
    # ...and every change through the API is seen at once.
    await client.patch(
        f"/api/v1/chatroom/{room['id']}", json={"name": "renamed"}, headers=user.headers
    )
    names = [
        r["name"]
        for r in (await client.get("/api/v1/chatroom", headers=user.headers)).json()["data"][
            "chatrooms"
        ]
    ]
    assert names == ["sneaky", "renamed"]
    await client.delete(f"/api/v1/chatroom/{room['id']}", headers=user.headers)
    names = [
        r["name"]
        for r in (await client.get("/api/v1/chatroom", headers=user.headers)).json()["data"][
            "chatrooms"
        ]
    ]
    assert names == ["sneaky"]


async def test_get_rename_delete(api, client, user):
    room = await api.new_room(user, "before")
    got = await client.get(f"/api/v1/chatroom/{room['id']}", headers=user.headers)
    assert got.status_code == 200
    assert got.json()["data"]["chatroom"]["messages"] == []
    renamed = await client.patch(
        f"/api/v1/chatroom/{room['id']}", json={"name": "after"}, headers=user.headers
    )
    assert renamed.json()["data"]["chatroom"]["name"] == "after"
    deleted = await client.delete(f"/api/v1/chatroom/{room['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert (
        await client.get(f"/api/v1/chatroom/{room['id']}", headers=user.headers)
    ).status_code == 404


async def test_another_users_room_is_404_everywhere(api, client, user, make_user):
    room = await api.new_room(user)
    other = make_user()
    rid = room["id"]
    for method, path, body in [
        ("GET", f"/api/v1/chatroom/{rid}", None),
        ("PATCH", f"/api/v1/chatroom/{rid}", {"name": "mine now"}),
        ("DELETE", f"/api/v1/chatroom/{rid}", None),
        ("POST", f"/api/v1/chatroom/{rid}/message", {"content": "hi"}),
        ("GET", f"/api/v1/chatroom/{rid}/message/{uuid.uuid4()}/stream", None),
    ]:
        response = await client.request(method, path, json=body, headers=other.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["status"] == "fail"
    assert (await client.get(f"/api/v1/chatroom/{rid}", headers=user.headers)).status_code == 200


async def test_malformed_ids_are_404(client, user):
    assert (
        await client.get("/api/v1/chatroom/not-a-uuid", headers=user.headers)
    ).status_code == 404


async def test_routes_need_a_token(client):
    response = await client.get("/api/v1/chatroom")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_nul_characters_are_400_not_500(api, client, user):
    # Found by tests/fuzz: PostgreSQL text cannot hold NUL, so the INSERT failed with a 500.
    room = await api.new_room(user)
    for method, path, body in (
        ("POST", "/api/v1/chatroom", {"name": "a\x00b"}),
        ("PATCH", f"/api/v1/chatroom/{room['id']}", {"name": "\x00"}),
        ("POST", f"/api/v1/chatroom/{room['id']}/message", {"content": "hi\x00"}),
    ):
        response = await client.request(method, path, json=body, headers=user.headers)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "validation_error"
        assert body["errors"][0]["field"] in {"name", "content"}

"""Stopping a reply, regenerating the last one, and automatic chatroom titles."""

import uuid

import pytest

from shared.events import ChatroomTitleSuggested, ReplyCompleted
from shared.replies import append_token, read_all, stop_key
from shared.testing.wait import eventually


def completed(user, room_id: str, reply_id: str, text: str = "an answer") -> ReplyCompleted:
    return ReplyCompleted(
        reply_id=uuid.UUID(reply_id),
        chatroom_id=uuid.UUID(room_id),
        user_id=user.id,
        text=text,
        finish_reason="STOP",
    )


async def finished(api, bus, user, room_id: str, reply_id: str, text: str = "an answer") -> None:
    await bus.emit(completed(user, room_id, reply_id, text))

    async def stored() -> bool:
        room = await api.room(user, room_id)
        return any(m["id"] == reply_id and m["status"] == "completed" for m in room["messages"])

    await eventually(stored, what="the reply to be stored")


async def post(api, user, room_id: str, reply_id: str, action: str):
    return await api.client.post(
        f"/api/v1/chatroom/{room_id}/message/{reply_id}/{action}", headers=user.headers
    )


# -- stop ----------------------------------------------------------------------------------


async def test_stop_keeps_the_text_so_far_and_tells_the_worker(api, user, bus, redis):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    await append_token(redis, reply_id, "Half an ", ttl=60)
    await append_token(redis, reply_id, "answer", ttl=60)
    response = await post(api, user, room["id"], reply_id, "stop")
    assert response.status_code == 200
    reply = response.json()["data"]["reply"]
    assert reply["status"] == "cancelled"
    assert reply["content"] == "Half an answer"
    assert reply["completedAt"]
    assert await redis.get(stop_key(reply_id)) == "1"
    assert (await read_all(redis, reply_id)).end.status == "cancelled"
    assert (await api.usage(user))["used"] == 1  # a stopped reply still counts
    # The worker's late answer changes nothing.
    await bus.emit(completed(user, room["id"], reply_id, "the full answer"))
    await bus.handled()
    stored = (await api.room(user, room["id"]))["messages"][-1]
    assert (stored["status"], stored["content"]) == ("cancelled", "Half an answer")
    # The room takes a new prompt at once.
    assert (await api.send(user, room["id"])).status_code == 201


async def test_stop_after_completion_is_a_no_op(api, user, bus, redis):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    await finished(api, bus, user, room["id"], reply_id, "done already")
    response = await post(api, user, room["id"], reply_id, "stop")
    assert response.status_code == 200
    reply = response.json()["data"]["reply"]
    assert (reply["status"], reply["content"]) == ("completed", "done already")
    assert await redis.get(stop_key(reply_id)) is None


async def test_stop_and_regenerate_of_another_users_reply_are_404(api, user, make_user):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    other = make_user()
    for action in ("stop", "regenerate"):
        response = await post(api, other, room["id"], reply_id, action)
        assert response.status_code == 404, action
    assert (await post(api, user, room["id"], str(uuid.uuid4()), "stop")).status_code == 404


# -- regenerate ----------------------------------------------------------------------------


async def test_regenerate_queues_a_new_reply_and_keeps_the_old_one(api, user, bus):
    room = await api.new_room(user)
    sent = (await api.send(user, room["id"], "tell me a joke")).json()["data"]
    old_id = sent["reply"]["id"]
    await finished(api, bus, user, room["id"], old_id, "first joke")
    response = await post(api, user, room["id"], old_id, "regenerate")
    assert response.status_code == 201
    data = response.json()["data"]
    new_id = data["reply"]["id"]
    assert data["reply"]["status"] == "queued"
    assert data["previous"]["supersededBy"] == new_id
    assert response.headers["x-ratelimit-remaining"] == "3"
    # The room's path goes through the new reply; the old one is its sibling, kept.
    messages = (await api.room(user, room["id"]))["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("USER", "completed"),
        ("GEMINI", "queued"),
    ]
    assert messages[1]["replyTo"] == sent["message"]["id"]
    assert messages[1]["siblingIds"] == [old_id, new_id]
    assert messages[0]["siblingIds"] is None
    await eventually(lambda: bus.queued(new_id), what="MessageQueued for the new reply")
    [event] = await bus.queued(new_id)
    assert event.prompt == "tell me a joke"
    assert event.history == []  # the superseded answer is not history
    assert (await api.usage(user))["used"] == 2


async def test_regenerate_is_refused_while_pending_and_for_an_older_reply(api, user, bus):
    room = await api.new_room(user)
    first = (await api.send(user, room["id"], "one")).json()["data"]["reply"]["id"]
    response = await post(api, user, room["id"], first, "regenerate")
    assert response.status_code == 409
    assert response.json()["code"] == "reply_pending"
    await finished(api, bus, user, room["id"], first)
    second = (await api.send(user, room["id"], "two")).json()["data"]["reply"]["id"]
    await finished(api, bus, user, room["id"], second)
    response = await post(api, user, room["id"], first, "regenerate")
    assert response.status_code == 409
    assert response.json()["code"] == "not_last_reply"


@pytest.mark.parametrize("settings_overrides", [{"basic_tier_daily_prompt_limit": 1}])
async def test_regenerate_takes_a_quota_unit(api, user, bus):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    await finished(api, bus, user, room["id"], reply_id)
    response = await post(api, user, room["id"], reply_id, "regenerate")
    assert response.status_code == 429
    assert response.json()["code"] == "daily_limit_reached"


# -- titles --------------------------------------------------------------------------------


async def test_a_room_without_a_name_asks_for_a_title_once(api, user, bus):
    created = await api.client.post("/api/v1/chatroom", json={}, headers=user.headers)
    assert created.status_code == 201
    room = created.json()["data"]["chatroom"]
    assert room["name"] == "New chat"
    first = (await api.send(user, room["id"], "yoga for beginners")).json()["data"]["reply"]["id"]
    await eventually(lambda: bus.queued(first))
    assert (await bus.queued(first))[0].want_title is True
    await finished(api, bus, user, room["id"], first)
    second = (await api.send(user, room["id"], "and more")).json()["data"]["reply"]["id"]
    await eventually(lambda: bus.queued(second))
    assert (await bus.queued(second))[0].want_title is False

    named = await api.new_room(user, "my own name")
    third = (await api.send(user, named["id"])).json()["data"]["reply"]["id"]
    await eventually(lambda: bus.queued(third))
    assert (await bus.queued(third))[0].want_title is False


async def test_a_suggested_title_renames_the_room_unless_the_user_did(api, user, bus):
    auto = (await api.client.post("/api/v1/chatroom", json={}, headers=user.headers)).json()[
        "data"
    ]["chatroom"]
    renamed = (await api.client.post("/api/v1/chatroom", json={}, headers=user.headers)).json()[
        "data"
    ]["chatroom"]
    await api.client.patch(
        f"/api/v1/chatroom/{renamed['id']}", json={"name": "mine"}, headers=user.headers
    )
    listed = await api.client.get("/api/v1/chatroom", headers=user.headers)  # warms the cache
    assert listed.status_code == 200
    for room in (auto, renamed):
        await bus.emit(
            ChatroomTitleSuggested(
                chatroom_id=uuid.UUID(room["id"]), user_id=user.id, title="Yoga for beginners"
            )
        )

    async def titled() -> bool:
        rooms = (await api.client.get("/api/v1/chatroom", headers=user.headers)).json()
        names = {r["id"]: r["name"] for r in rooms["data"]["chatrooms"]}
        return names[auto["id"]] == "Yoga for beginners"

    await eventually(titled, what="the list (cache invalidated) to show the title")
    rooms = (await api.client.get("/api/v1/chatroom", headers=user.headers)).json()
    names = {r["id"]: r["name"] for r in rooms["data"]["chatrooms"]}
    assert names[renamed["id"]] == "mine"

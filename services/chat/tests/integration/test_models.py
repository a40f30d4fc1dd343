"""A model per tier: which model a reply is asked of, a room's choice among those its tier
allows, and a tier change applying from the next prompt."""

import uuid

import pytest

from shared.events import ReplyCompleted
from shared.testing.wait import eventually

BASIC, PRO = "sim-basic-model", "sim-pro-model"

pytestmark = pytest.mark.parametrize(
    "settings_overrides", [{"gemini_model_basic": BASIC, "gemini_model_pro": PRO}]
)


async def models(client, user) -> dict:
    response = await client.get("/api/v1/models", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def choose(client, user, room_id: str, model: str | None):
    return await client.put(
        f"/api/v1/chatroom/{room_id}/model", json={"model": model}, headers=user.headers
    )


async def sent_with(api, bus, user, room_id: str) -> str:
    """Send a prompt; the model its MessageQueued asks for, checked against the reply's."""
    response = await api.send(user, room_id)
    assert response.status_code == 201, response.text
    reply_id = response.json()["data"]["reply"]["id"]
    await eventually(lambda: bus.queued(reply_id), what="MessageQueued")
    (queued,) = await bus.queued(reply_id)
    room = await api.room(user, room_id)
    (reply,) = [m for m in room["messages"] if m["id"] == reply_id]
    assert reply["model"] == queued.model
    return queued.model


async def test_basic_gets_its_model_and_may_choose_no_other(client, api, bus, user):
    assert await models(client, user) == {"tier": "BASIC", "default": BASIC, "allowed": [BASIC]}
    room = await api.new_room(user)
    assert room["model"] is None
    assert await sent_with(api, bus, user, room["id"]) == BASIC

    refused = await choose(client, user, room["id"], PRO)
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "model_not_allowed" and body["allowed"] == [BASIC]
    assert (await api.room(user, room["id"]))["model"] is None


async def test_pro_gets_its_model_and_may_choose_basics_per_room(client, api, bus, user):
    await bus.tier(user, "PRO")
    assert await models(client, user) == {"tier": "PRO", "default": PRO, "allowed": [PRO, BASIC]}
    first, second = await api.new_room(user), await api.new_room(user)
    chosen = await choose(client, user, second["id"], BASIC)
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["data"]["chatroom"]["model"] == BASIC
    listed = (await client.get("/api/v1/chatroom", headers=user.headers)).json()
    assert {r["id"]: r["model"] for r in listed["data"]["chatrooms"]} == {
        first["id"]: None,
        second["id"]: BASIC,
    }
    assert await sent_with(api, bus, user, first["id"]) == PRO
    assert await sent_with(api, bus, user, second["id"]) == BASIC


async def test_a_tier_change_applies_from_the_next_prompt(client, api, bus, user):
    rooms = [(await api.new_room(user))["id"] for _ in range(5)]
    assert await sent_with(api, bus, user, rooms[0]) == BASIC
    await bus.tier(user, "PRO")
    assert await sent_with(api, bus, user, rooms[1]) == PRO
    assert (await choose(client, user, rooms[2], PRO)).status_code == 200

    # Back to Basic: a room's choice its tier no longer allows gives way to the tier's own
    # (and is kept, for when the tier allows it again).
    await bus.tier(user, "BASIC")
    assert await sent_with(api, bus, user, rooms[2]) == BASIC
    assert (await api.room(user, rooms[2]))["model"] == PRO
    await bus.tier(user, "PRO")
    assert await sent_with(api, bus, user, rooms[3]) == PRO
    assert (await choose(client, user, rooms[4], None)).json()["data"]["chatroom"]["model"] is None


async def test_bad_choices_are_clear_errors(client, api, user, make_user):
    room = await api.new_room(user)
    for body in ({}, {"model": ""}, {"model": "x" * 201}, {"model": 5}):
        response = await client.put(
            f"/api/v1/chatroom/{room['id']}/model", json=body, headers=user.headers
        )
        assert response.status_code == 400, body
        assert response.json()["status"] == "fail"
    other = make_user()
    assert (await choose(client, other, room["id"], BASIC)).status_code == 404
    assert (await choose(client, user, "not-a-room", BASIC)).status_code == 404
    assert (await client.get("/api/v1/models")).status_code == 401


async def test_a_regenerated_reply_is_asked_of_the_tiers_model_now(client, api, bus, user):
    room = await api.new_room(user)
    sent = (await api.send(user, room["id"])).json()["data"]
    await bus.emit(
        ReplyCompleted(
            reply_id=uuid.UUID(sent["reply"]["id"]),
            chatroom_id=uuid.UUID(room["id"]),
            user_id=user.id,
            text="a Basic answer",
            finish_reason="STOP",
        )
    )
    await bus.handled()
    await bus.tier(user, "PRO")
    response = await client.post(
        f"/api/v1/chatroom/{room['id']}/message/{sent['reply']['id']}/regenerate",
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    new_id = response.json()["data"]["reply"]["id"]
    await eventually(lambda: bus.queued(new_id), what="MessageQueued for the new reply")
    [event] = await bus.queued(new_id)
    assert event.model == PRO
    assert response.json()["data"]["previous"]["model"] == BASIC
    models_asked = {m["id"]: m["model"] for m in (await api.room(user, room["id"]))["messages"]}
    assert models_asked[new_id] == PRO

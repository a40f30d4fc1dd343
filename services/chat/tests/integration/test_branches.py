"""Edit and resend, with branches: an edited prompt and a regenerated reply are siblings
of what they replace, which is kept; the room shows one path; the history sent to Gemini
is that path only."""

import pytest

from shared.testing.wait import eventually

pytestmark = pytest.mark.parametrize("settings_overrides", [{"basic_tier_daily_prompt_limit": 50}])


async def exchange(api, bus, user, room_id: str, text: str) -> tuple[str, str]:
    """Send ``text`` and complete its reply: (prompt id, reply id)."""
    sent = await api.send(user, room_id, text)
    assert sent.status_code == 201, sent.text
    data = sent.json()["data"]
    await bus.complete(user, room_id, data["reply"]["id"], f"answer to {text}")
    await bus.handled()
    return data["message"]["id"], data["reply"]["id"]


async def path(api, user, room_id: str) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in (await api.room(user, room_id))["messages"]]


async def edit(client, user, room_id: str, prompt_id: str, content: str):
    return await client.put(
        f"/api/v1/chatroom/{room_id}/message/{prompt_id}",
        json={"content": content},
        headers=user.headers,
    )


async def show(client, user, room_id: str, message_id: str):
    return await client.put(
        f"/api/v1/chatroom/{room_id}/branch", json={"messageId": message_id}, headers=user.headers
    )


@pytest.fixture
async def three_turns(api, bus, user):
    room = (await api.new_room(user, "tree"))["id"]
    turns = [await exchange(api, bus, user, room, f"q{i}") for i in (1, 2, 3)]
    return room, turns


async def test_an_edit_is_a_sibling_branch_and_the_model_sees_only_its_path(
    api, bus, client, user, three_turns
):
    room, [(p1, r1), (p2, _r2), (_p3, _r3)] = three_turns
    edited = await edit(client, user, room, p2, "q2, better")
    assert edited.status_code == 201, edited.text
    data = edited.json()["data"]
    new_prompt, new_reply = data["message"]["id"], data["reply"]["id"]
    assert data["message"]["parentId"] == r1

    await eventually(lambda: bus.queued(new_reply), what="MessageQueued for the edit")
    [event] = await bus.queued(new_reply)
    assert event.prompt == "q2, better"
    assert [(t.role, t.text) for t in event.history] == [("user", "q1"), ("model", "answer to q1")]

    room_now = await api.room(user, room)
    assert [m["id"] for m in room_now["messages"]] == [p1, r1, new_prompt, new_reply]
    assert room_now["messages"][2]["siblingIds"] == [p2, new_prompt]
    assert (await api.usage(user))["used"] == 4
    # One pending reply per room, whatever the branch.
    assert (await edit(client, user, room, p1, "again")).status_code == 409
    assert (await api.send(user, room, "more")).status_code == 409


async def test_stepping_between_branches_and_going_on_from_an_old_one(
    api, bus, client, user, three_turns
):
    room, [(p1, r1), (p2, r2), (p3, r3)] = three_turns
    edited = (await edit(client, user, room, p2, "q2b")).json()["data"]
    await bus.complete(user, room, edited["reply"]["id"], "answer to q2b")
    await bus.handled()

    shown = await show(client, user, room, p2)  # back to the first version: where it ended
    assert shown.status_code == 200, shown.text
    old_path = [m["id"] for m in shown.json()["data"]["chatroom"]["messages"]]
    assert old_path == [p1, r1, p2, r2, p3, r3]
    assert await path(api, user, room) == [
        ("USER", "q1"), ("GEMINI", "answer to q1"), ("USER", "q2"), ("GEMINI", "answer to q2"),
        ("USER", "q3"), ("GEMINI", "answer to q3"),
    ]  # fmt: skip

    # A new prompt goes on from the branch shown, with that branch as its history.
    _p4, r4 = await exchange(api, bus, user, room, "q4")
    [event] = await bus.queued(r4)
    assert [t.text for t in event.history][-2:] == ["q3", "answer to q3"]
    assert "q2b" not in [t.text for t in event.history]

    # Only the reply at the end of the current branch can be regenerated.
    not_last = await client.post(
        f"/api/v1/chatroom/{room}/message/{r1}/regenerate", headers=user.headers
    )
    assert not_last.status_code == 409 and not_last.json()["code"] == "not_last_reply"
    again = await client.post(
        f"/api/v1/chatroom/{room}/message/{r4}/regenerate", headers=user.headers
    )
    assert again.status_code == 201, again.text

    back = await show(client, user, room, edited["message"]["id"])
    assert [m["id"] for m in back.json()["data"]["chatroom"]["messages"]] == [
        p1, r1, edited["message"]["id"], edited["reply"]["id"],
    ]  # fmt: skip


async def test_what_cannot_be_edited_or_shown_is_a_clear_error(
    api, bus, client, user, make_user, three_turns
):
    room, [(p1, r1), *_] = three_turns
    reply_edit = await edit(client, user, room, r1, "a reply is not a prompt")
    assert reply_edit.status_code == 404 and reply_edit.json()["code"] == "message_not_found"
    other = make_user()
    assert (await edit(client, other, room, p1, "mine now")).status_code == 404
    assert (await show(client, other, room, p1)).status_code == 404
    elsewhere = (await api.new_room(user))["id"]
    missing = await show(client, user, elsewhere, p1)  # a message of another room
    assert missing.status_code == 404 and missing.json()["code"] == "message_not_found"
    for body in ({}, {"content": ""}, {"content": "x" * 8001}):
        response = await client.put(
            f"/api/v1/chatroom/{room}/message/{p1}", json=body, headers=user.headers
        )
        assert response.status_code == 400, body
    assert (
        await client.put(f"/api/v1/chatroom/{room}/branch", json={}, headers=user.headers)
    ).status_code == 400
    assert (await show(client, user, room, "not-an-id")).status_code == 404

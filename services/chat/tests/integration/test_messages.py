"""Sending prompts: the queued reply, MessageQueued with bounded history, the daily quota,
and the reply events that complete or fail it."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from chat import repository
from shared.events import ReplyCompleted, ReplyFailed, SubscriptionChanged, TokenUsage
from shared.testing.wait import eventually


def completed(user, room_id: str, reply_id: str, text: str = "an answer") -> ReplyCompleted:
    return ReplyCompleted(
        reply_id=uuid.UUID(reply_id),
        chatroom_id=uuid.UUID(room_id),
        user_id=user.id,
        text=text,
        finish_reason="STOP",
        usage=TokenUsage(prompt_tokens=3, output_tokens=2, total_tokens=5),
    )


def failed(user, room_id: str, reply_id: str, status: str = "failed") -> ReplyFailed:
    return ReplyFailed(
        reply_id=uuid.UUID(reply_id),
        chatroom_id=uuid.UUID(room_id),
        user_id=user.id,
        status=status,
        reason="model_unavailable" if status == "failed" else "safety_block",
        message="Gemini is overloaded right now.",
    )


def pro(user, *, days: int = 30, status: str = "active", as_of: datetime | None = None):
    return SubscriptionChanged(
        user_id=user.id,
        tier="PRO" if status == "active" else "BASIC",
        status=status,
        current_period_end=datetime.now(UTC) + timedelta(days=days),
        as_of=as_of or datetime.now(UTC),
    )


async def reply_status(api, user, room_id: str, reply_id: str) -> str:
    room = await api.room(user, room_id)
    return next(m["status"] for m in room["messages"] if m["id"] == reply_id)


async def test_send_returns_the_prompt_and_a_queued_reply(api, user, bus):
    room = await api.new_room(user)
    response = await api.send(user, room["id"], "  what is yoga?  ")
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Message sent and queued for AI response."
    prompt, reply = body["data"]["message"], body["data"]["reply"]
    assert prompt["role"] == "USER" and prompt["content"] == "what is yoga?"
    assert prompt["chatroomId"] == prompt["chatRoomId"] == room["id"]  # ours, the Node service's
    assert reply["status"] == "queued"
    assert reply["streamUrl"] == f"/api/v1/chatroom/{room['id']}/message/{reply['id']}/stream"
    assert response.headers["x-ratelimit-limit"] == "5"
    assert response.headers["x-ratelimit-remaining"] == "4"
    assert int(response.headers["x-ratelimit-reset"]) > datetime.now(UTC).timestamp()

    messages = (await api.room(user, room["id"]))["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("USER", "completed"),
        ("GEMINI", "queued"),
    ]
    assert messages[1]["replyTo"] == prompt["id"]
    assert {m["chatRoomId"] for m in messages} == {room["id"]}

    await eventually(lambda: bus.queued(reply["id"]), what="MessageQueued on chat.events")
    [event] = await bus.queued(reply["id"])
    assert event.prompt == "what is yoga?"
    assert event.message_id == uuid.UUID(prompt["id"])
    assert event.user_id == user.id
    assert event.history == []


async def test_history_is_the_earlier_conversation_without_the_prompt(api, user, bus):
    room = await api.new_room(user)
    for i in range(3):
        sent = (await api.send(user, room["id"], f"question {i}")).json()["data"]
        await bus.emit(completed(user, room["id"], sent["reply"]["id"], f"answer {i}"))

        async def done(reply_id=sent["reply"]["id"]) -> bool:
            return await reply_status(api, user, room["id"], reply_id) == "completed"

        await eventually(done, what="the reply to be stored")
    reply_id = (await api.send(user, room["id"], "question 3")).json()["data"]["reply"]["id"]
    await eventually(lambda: bus.queued(reply_id), what="MessageQueued")
    [event] = await bus.queued(reply_id)
    assert [(t.role, t.text) for t in event.history] == [
        ("user", "question 0"),
        ("model", "answer 0"),
        ("user", "question 1"),
        ("model", "answer 1"),
        ("user", "question 2"),
        ("model", "answer 2"),
    ]
    assert event.prompt == "question 3"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"history_max_turns": 3, "history_max_chars": 10_000, "basic_tier_daily_prompt_limit": 50}],
)
async def test_history_is_bounded_and_starts_with_a_user_turn(api, user, bus):
    room = await api.new_room(user)
    for i in range(3):
        sent = (await api.send(user, room["id"], f"q{i}")).json()["data"]
        await bus.emit(completed(user, room["id"], sent["reply"]["id"], f"a{i}"))

        async def done(reply_id=sent["reply"]["id"]) -> bool:
            return await reply_status(api, user, room["id"], reply_id) == "completed"

        await eventually(done)
    reply_id = (await api.send(user, room["id"], "q3")).json()["data"]["reply"]["id"]
    await eventually(lambda: bus.queued(reply_id))
    [event] = await bus.queued(reply_id)
    # The three latest turns are a1, q2, a2; a model turn cannot open a conversation.
    assert [t.text for t in event.history] == ["q2", "a2"]


async def test_second_prompt_while_a_reply_is_pending_is_409(api, user):
    room = await api.new_room(user)
    assert (await api.send(user, room["id"])).status_code == 201
    response = await api.send(user, room["id"])
    assert response.status_code == 409
    assert response.json()["code"] == "reply_pending"
    assert (await api.usage(user))["used"] == 1  # the refused prompt cost nothing
    other = await api.new_room(user)
    assert (await api.send(user, other["id"])).status_code == 201


@pytest.mark.parametrize("content", ["", "   ", "x" * 8001])
async def test_empty_or_oversized_prompt_is_400(api, user, content):
    room = await api.new_room(user)
    response = await api.send(user, room["id"], content)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "content"


@pytest.mark.parametrize("settings_overrides", [{"basic_tier_daily_prompt_limit": 2}])
async def test_over_the_daily_limit_is_429_with_reset_time(api, user):
    rooms = [await api.new_room(user) for _ in range(3)]
    for room in rooms[:2]:
        assert (await api.send(user, room["id"])).status_code == 201
    response = await api.send(user, rooms[2]["id"])
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "daily_limit_reached"
    assert body["limit"] == 2 and body["used"] == 2
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert body["resetsAt"] == f"{tomorrow}T00:00:00Z"
    assert 0 < int(response.headers["retry-after"]) <= 86_400
    assert response.headers["x-ratelimit-remaining"] == "0"
    usage = await api.usage(user)
    assert usage == {
        "tier": "BASIC",
        "limit": 2,
        "used": 2,
        "remaining": 0,
        "resetsAt": f"{tomorrow}T00:00:00Z",
    }


async def test_thirty_concurrent_sends_with_limit_five_accept_exactly_five(api, user):
    rooms = [await api.new_room(user) for _ in range(30)]
    responses = await asyncio.gather(*(api.send(user, r["id"]) for r in rooms))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [429] * 25
    assert (await api.usage(user))["used"] == 5


async def test_concurrent_prompts_into_one_room_accept_one_and_take_one_unit(api, user, app):
    room = await api.new_room(user)
    responses = await asyncio.gather(*(api.send(user, room["id"]) for _ in range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 7
    assert (await api.usage(user))["used"] == 1  # a refused prompt took no unit
    async with app.state.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM messages WHERE chatroom_id = %(room)s),"
            " (SELECT count(*) FROM outbox"
            "   WHERE envelope->'payload'->>'chatroomId' = %(room)s::text)",
            {"room": room["id"]},
        )
        assert await cur.fetchone() == (2, 1)  # one prompt, one reply, one MessageQueued


async def test_a_prompt_into_a_room_deleted_meanwhile_stores_nothing(app, user):
    """The write is one statement after the reads: a room deleted in between is refused
    by its foreign key, and the quota unit and the outbox row go with it."""
    day = datetime.now(UTC).date()
    async with app.state.pool.connection() as conn:
        await conn.set_autocommit(True)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            await repository.store_prompt(
                conn,
                user_id=user.id,
                room_id=uuid.uuid4(),
                day=day,
                limit=5,
                prompt_id=uuid.uuid4(),
                reply_id=uuid.uuid4(),
                content="hello",
                model="gemini-2.5-flash",
                parent_id=None,
                event=(uuid.uuid4(), "chat.events", "MessageQueued", "{}"),
            )
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM daily_usage WHERE user_id = %(user)s),"
            " (SELECT count(*) FROM messages WHERE user_id = %(user)s),"
            " (SELECT count(*) FROM outbox WHERE envelope = '{}')",
            {"user": user.id},
        )
        assert await cur.fetchone() == (0, 0, 0)
        await conn.set_autocommit(False)


async def test_completed_reply_is_stored_once(api, user, bus):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    event = completed(user, room["id"], reply_id, "the answer")
    await bus.emit(event)
    await bus.emit(event)  # the same event delivered twice

    async def stored() -> bool:
        return await reply_status(api, user, room["id"], reply_id) == "completed"

    await eventually(stored)
    # A later, different outcome for the same reply changes nothing either.
    await bus.emit(failed(user, room["id"], reply_id))
    await bus.emit(completed(user, room["id"], reply_id, "a different answer"))
    await bus.handled()  # applied, or (rightly) not
    reply = (await api.room(user, room["id"]))["messages"][-1]
    assert reply["content"] == "the answer" and reply["status"] == "completed"
    assert reply["completedAt"]
    assert (await api.usage(user))["used"] == 1


async def test_failed_reply_gives_the_quota_unit_back(api, user, bus):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    assert (await api.usage(user))["used"] == 1
    event = failed(user, room["id"], reply_id)
    await bus.emit(event)
    await bus.emit(event)

    async def refunded() -> bool:
        return (await api.usage(user))["used"] == 0

    await eventually(refunded, what="the quota unit to come back")
    reply = (await api.room(user, room["id"]))["messages"][-1]
    assert reply["status"] == "failed"
    assert reply["error"] == "Gemini is overloaded right now."
    assert reply["errorCode"] == "model_unavailable"
    await bus.handled()
    assert (await api.usage(user))["used"] == 0  # given back once, not twice
    # The room accepts a new prompt now.
    assert (await api.send(user, room["id"])).status_code == 201


async def test_blocked_reply_keeps_its_quota_unit(api, user, bus):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    await bus.emit(failed(user, room["id"], reply_id, status="blocked"))

    async def blocked() -> bool:
        return await reply_status(api, user, room["id"], reply_id) == "blocked"

    await eventually(blocked)
    assert (await api.usage(user))["used"] == 1


@pytest.mark.parametrize("settings_overrides", [{"basic_tier_daily_prompt_limit": 1}])
async def test_pro_is_unlimited_and_a_downgrade_brings_the_limit_back(api, user, bus):
    rooms = [await api.new_room(user) for _ in range(4)]
    assert (await api.send(user, rooms[0]["id"])).status_code == 201
    assert (await api.send(user, rooms[1]["id"])).status_code == 429
    upgraded_at = datetime.now(UTC)
    await bus.emit(pro(user, as_of=upgraded_at), stream="billing.events", producer="billing")

    async def is_pro() -> bool:
        return (await api.usage(user))["tier"] == "PRO"

    await eventually(is_pro, what="the PRO projection")
    response = await api.send(user, rooms[1]["id"])
    assert response.status_code == 201
    assert "x-ratelimit-limit" not in response.headers
    assert (await api.send(user, rooms[2]["id"])).status_code == 201
    usage = await api.usage(user)
    assert usage["limit"] is None and usage["remaining"] is None

    # An older state arriving late is ignored.
    stale = pro(user, status="canceled", as_of=upgraded_at - timedelta(minutes=5))
    await bus.emit(stale, stream="billing.events", producer="billing")
    await bus.handled("billing.events")
    assert (await api.usage(user))["tier"] == "PRO"

    # A newer cancellation downgrades: BASIC and limited again.
    await bus.emit(
        pro(user, status="canceled", as_of=upgraded_at + timedelta(seconds=1)),
        stream="billing.events",
        producer="billing",
    )

    async def is_basic() -> bool:
        return (await api.usage(user))["tier"] == "BASIC"

    await eventually(is_basic)
    assert (await api.send(user, rooms[3]["id"])).status_code == 429


async def test_deleting_a_room_with_a_pending_reply_is_clean(api, user, bus, client):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    assert (
        await client.delete(f"/api/v1/chatroom/{room['id']}", headers=user.headers)
    ).status_code == 204
    await bus.emit(completed(user, room["id"], reply_id))
    await bus.handled()
    assert (
        await client.get(f"/api/v1/chatroom/{room['id']}", headers=user.headers)
    ).status_code == 404


async def test_messages_page_backwards_with_before(api, user, bus):
    room = await api.new_room(user)
    for i in range(3):
        sent = (await api.send(user, room["id"], f"m{i}")).json()["data"]
        await bus.emit(completed(user, room["id"], sent["reply"]["id"], f"r{i}"))

        async def done(reply_id=sent["reply"]["id"]) -> bool:
            return await reply_status(api, user, room["id"], reply_id) == "completed"

        await eventually(done)
    client = api.client
    latest = (
        await client.get(f"/api/v1/chatroom/{room['id']}?limit=4", headers=user.headers)
    ).json()["data"]["chatroom"]
    assert [m["content"] for m in latest["messages"]] == ["m1", "r1", "m2", "r2"]
    assert latest["hasMore"] is True
    older = (
        await client.get(
            f"/api/v1/chatroom/{room['id']}?limit=4&before={latest['messages'][0]['id']}",
            headers=user.headers,
        )
    ).json()["data"]["chatroom"]
    assert [m["content"] for m in older["messages"]] == ["m0", "r0"]
    assert older["hasMore"] is False


async def test_a_reply_with_a_nul_character_is_stored_without_it(api, user, bus):
    room = await api.new_room(user)
    reply_id = (await api.send(user, room["id"])).json()["data"]["reply"]["id"]
    await bus.emit(completed(user, room["id"], reply_id, "before\x00after"))

    async def stored() -> bool:
        return await reply_status(api, user, room["id"], reply_id) == "completed"

    await eventually(stored, what="the reply to be stored")
    assert (await api.room(user, room["id"]))["messages"][-1]["content"] == "beforeafter"

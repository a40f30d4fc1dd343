"""The SSE reply stream, and the reconciler that re-queues replies whose event was lost."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from chat import reconciler, streaming
from shared.db import Database
from shared.events import ReplyCompleted
from shared.replies import End, append_end, append_reset, append_token, reply_stream
from shared.testing.wait import eventually

TTL = 600


async def sse_events(response: httpx.Response):
    """Parse an event stream into (event, data, id) tuples as they arrive."""
    event, data, event_id = None, [], None
    async for line in response.aiter_lines():
        if line == "":
            if event is not None or data:
                yield event or "message", json.loads("\n".join(data)) if data else None, event_id
            event, data, event_id = None, [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


async def queued_reply(api, user) -> tuple[str, str]:
    room = await api.new_room(user)
    reply = (await api.send(user, room["id"], "stream me")).json()["data"]["reply"]
    return room["id"], reply["id"]


async def test_reply_streams_token_by_token_then_done(api, user, redis, bus, client):
    room_id, reply_id = await queued_reply(api, user)
    url = f"/api/v1/chatroom/{room_id}/message/{reply_id}/stream"
    received = []
    async with client.stream("GET", url, headers=user.headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = sse_events(response)
        await append_token(redis, reply_id, "Hello", ttl=TTL)
        received.append(await anext(events))  # arrives before the next token is written
        await append_token(redis, reply_id, " world", ttl=TTL)
        received.append(await anext(events))
        await bus.emit(
            ReplyCompleted(
                reply_id=uuid.UUID(reply_id),
                chatroom_id=uuid.UUID(room_id),
                user_id=user.id,
                text="Hello world",
                finish_reason="STOP",
            )
        )

        async def stored() -> bool:
            room = await api.room(user, room_id)
            return room["messages"][-1]["status"] == "completed"

        await eventually(stored)
        await append_end(redis, reply_id, End("completed"), ttl=TTL)
        received += [e async for e in events]
    assert [(e[0], e[1]) for e in received[:2]] == [
        ("token", {"text": "Hello"}),
        ("token", {"text": " world"}),
    ]
    kind, data, _ = received[-1]
    assert kind == "done"
    assert data["status"] == "completed"
    assert data["reply"]["content"] == "Hello world"


async def entry_types(redis, reply_id: str) -> list[str]:
    return [fields["type"] for _, fields in await redis.xrange(reply_stream(reply_id))]


async def test_done_follows_chats_word_that_the_reply_is_stored(
    api, user, redis, bus, client, monkeypatch
):
    """The worker's end comes before chat has stored the reply; chat appends `stored` once
    it has, and `done` follows that word. The database is not asked again meanwhile: were
    the word not sent, this stream would wait the whole minute."""
    monkeypatch.setattr(streaming, "STORE_POLL_SECONDS", 60.0)
    monkeypatch.setattr(streaming, "STORE_WAIT_SECONDS", 120.0)
    room_id, reply_id = await queued_reply(api, user)
    url = f"/api/v1/chatroom/{room_id}/message/{reply_id}/stream"
    async with asyncio.timeout(20), client.stream("GET", url, headers=user.headers) as response:
        events = sse_events(response)
        await append_token(redis, reply_id, "Hi there", ttl=TTL)
        assert (await anext(events))[:2] == ("token", {"text": "Hi there"})
        await append_end(redis, reply_id, End("completed"), ttl=TTL)
        await bus.complete(user, room_id, reply_id, "Hi there")
        kind, data, _ = await anext(events)
    assert kind == "done"
    assert data["status"] == "completed"
    assert data["reply"]["content"] == "Hi there"
    assert await entry_types(redis, reply_id) == ["token", "end", "stored"]


async def test_done_comes_from_the_database_when_chats_word_never_comes(
    api, user, redis, client, chat_database_url, monkeypatch
):
    """A reply stored without the word on its stream (a lost append, an older chat): the
    stream asks the database every STORE_POLL_SECONDS instead."""
    monkeypatch.setattr(streaming, "STORE_POLL_SECONDS", 0.05)
    monkeypatch.setattr(streaming, "STORE_WAIT_SECONDS", 120.0)
    room_id, reply_id = await queued_reply(api, user)
    await append_token(redis, reply_id, "partial", ttl=TTL)
    await append_end(redis, reply_id, End("completed"), ttl=TTL)
    url = f"/api/v1/chatroom/{room_id}/message/{reply_id}/stream"
    async with asyncio.timeout(20), client.stream("GET", url, headers=user.headers) as response:
        events = sse_events(response)
        assert (await anext(events))[0] == "token"
        with psycopg.connect(chat_database_url) as conn:
            conn.execute(
                "UPDATE chat.messages SET status = 'completed', content = 'from the database'"
                " WHERE id = %s",
                (reply_id,),
            )
        kind, data, _ = await anext(events)
    assert (kind, data["status"], data["reply"]["content"]) == (
        "done",
        "completed",
        "from the database",
    )
    assert await entry_types(redis, reply_id) == ["token", "end"]


async def test_the_word_never_makes_a_stream_that_is_gone(api, user, redis, bus):
    """Chat says `stored` only on a stream that still exists: one that expired (or never
    was) is not made again, without a time to live."""
    room_id, reply_id = await queued_reply(api, user)
    await bus.complete(user, room_id, reply_id, "answer")

    async def stored() -> bool:
        return (await api.room(user, room_id))["messages"][-1]["status"] == "completed"

    await eventually(stored)
    await bus.handled()
    assert not await redis.exists(reply_stream(reply_id))


async def test_last_event_id_resumes_after_what_was_seen(api, user, redis, client):
    room_id, reply_id = await queued_reply(api, user)
    first = await append_token(redis, reply_id, "one", ttl=TTL)
    await append_reset(redis, reply_id, ttl=TTL)
    await append_token(redis, reply_id, "two", ttl=TTL)
    await append_end(redis, reply_id, End("failed", reason="x", message="It broke."), ttl=TTL)
    url = f"/api/v1/chatroom/{room_id}/message/{reply_id}/stream"
    async with client.stream(
        "GET", url, headers=user.headers | {"Last-Event-ID": first}
    ) as response:
        events = [e async for e in sse_events(response)]
    assert [e[0] for e in events] == ["reset", "token", "done"]
    assert events[1][1] == {"text": "two"}
    assert events[2][1]["status"] == "failed"  # from the stream: the row is not final yet
    assert events[2][1]["error"] == "It broke."


async def completed_reply(api, user, bus, text: str) -> tuple[str, str]:
    """A reply the worker completed with ``text``, stored: (room id, reply id)."""
    room_id, reply_id = await queued_reply(api, user)
    await bus.complete(user, room_id, reply_id, text)

    async def stored() -> bool:
        return (await api.room(user, room_id))["messages"][-1]["status"] == "completed"

    await eventually(stored)
    return room_id, reply_id


async def test_finished_reply_is_sent_at_once_from_the_database(api, user, bus, client):
    room_id, reply_id = await completed_reply(api, user, bus, "stored answer")
    url = f"/api/v1/chatroom/{room_id}/message/{reply_id}/stream"
    async with client.stream("GET", url, headers=user.headers) as response:
        events = [e async for e in sse_events(response)]
    assert [(e[0], e[1].get("text")) for e in events[:1]] == [("token", "stored answer")]
    assert events[-1][0] == "done"


async def test_unknown_reply_is_404(api, user, client):
    room = await api.new_room(user)
    response = await client.get(
        f"/api/v1/chatroom/{room['id']}/message/{uuid.uuid4()}/stream", headers=user.headers
    )
    assert response.status_code == 404


async def age(database_url: str, reply_id: str, seconds: int) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE chat.messages SET queued_at = queued_at - make_interval(secs => %s)"
            " WHERE id = %s",
            (seconds, reply_id),
        )


@pytest.mark.parametrize("settings_overrides", [{"reconcile_after_seconds": 60, "max_requeues": 1}])
async def test_stuck_reply_is_requeued_then_failed_with_quota_back(
    api, user, bus, app, chat_settings, chat_database_url
):
    room_id, reply_id = await queued_reply(api, user)
    await eventually(lambda: bus.queued(reply_id))
    await age(chat_database_url, reply_id, 120)
    cutoff = datetime.now(UTC) - timedelta(seconds=60)
    await reconciler.requeue_stale_replies(Database(app.state.pool), chat_settings, cutoff)

    async def requeued() -> bool:
        return len(await bus.queued(reply_id)) == 2

    await eventually(requeued, what="a second MessageQueued")
    first, second = await bus.queued(reply_id)
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.prompt == first.prompt
    assert second.model == first.model == chat_settings.gemini_model_basic  # the reply's own

    await age(chat_database_url, reply_id, 120)
    cutoff = datetime.now(UTC) - timedelta(seconds=60)
    await reconciler.requeue_stale_replies(Database(app.state.pool), chat_settings, cutoff)
    reply = (await api.room(user, room_id))["messages"][-1]
    assert reply["status"] == "failed" and reply["errorCode"] == "timeout"
    assert (await api.usage(user))["used"] == 0


@pytest.mark.parametrize("settings_overrides", [{"reconcile_interval_seconds": 3600}])
async def test_redis_losing_its_data_requeues_every_pending_reply(api, user, bus, redis, app):
    _, reply_id = await queued_reply(api, user)
    await eventually(lambda: bus.queued(reply_id))
    assert not await reconciler.set_redis_marker(redis)
    await redis.delete(reconciler.REDIS_ALIVE_KEY)  # what a flush or a restart does
    assert await reconciler.set_redis_marker(redis)
    await reconciler.requeue_stale_replies(
        Database(app.state.pool), app.state.settings, datetime.now(UTC)
    )

    async def requeued() -> bool:
        return len(await bus.queued(reply_id)) == 2

    await eventually(requeued)


async def test_republish_command_sends_the_event_log_again(api, user, bus, chat_settings):
    _, reply_id = await queued_reply(api, user)
    await eventually(lambda: bus.queued(reply_id))
    since = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    env = {
        **os.environ,
        "DATABASE_URL": chat_settings.database_url,
        "REDIS_URL": chat_settings.redis_url,
        "JWT_SECRET": chat_settings.jwt_secret,
        "APP_ENV": "test",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "chat", "republish", "--since", since],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"outbox.republish_queued" in done.stdout + done.stderr

    async def published_twice() -> bool:
        return len(await bus.queued(reply_id)) == 2

    await eventually(published_twice, what="the running relay to publish the event again")


async def test_resuming_a_finished_reply_replaces_the_text_seen_so_far(api, user, bus, client):
    """A client that saw part of the reply and reconnects after it finished gets a reset
    before the stored text, so it shows the text once, not the start twice."""
    room_id, reply_id = await completed_reply(api, user, bus, "the whole answer")
    url = f"/api/v1/chatroom/{room_id}/message/{reply_id}/stream"
    headers = user.headers | {"Last-Event-ID": "1700000000000-0"}
    async with client.stream("GET", url, headers=headers) as response:
        events = [e async for e in sse_events(response)]
    assert [e[0] for e in events] == ["reset", "token", "done"]
    assert events[1][1] == {"text": "the whole answer"}

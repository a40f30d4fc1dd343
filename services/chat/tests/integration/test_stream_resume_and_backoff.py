"""The SSE reply stream under attack and under a failing Redis: a bad ``Last-Event-ID`` is
refused before the stream starts, and a Redis error makes the stream back off instead of
spinning (one header used to hold chat at 93% CPU and write thousands of log lines)."""

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from structlog.testing import capture_logs

from chat import prompts, streaming
from dev.proc import free_port
from shared.db import Database
from shared.testing.wait import eventually

WATCH_SECONDS = 2.0


async def queued_reply(api, user) -> tuple[str, str]:
    room = await api.new_room(user)
    reply = (await api.send(user, room["id"], "stream me")).json()["data"]["reply"]
    return room["id"], reply["id"]


def stream_url(room_id: str, reply_id: str) -> str:
    return f"/api/v1/chatroom/{room_id}/message/{reply_id}/stream"


async def resume(api, user, client, last_event_id: str | bytes):
    """Open a pending reply's stream with ``Last-Event-ID``, and close it at once; the body
    is read only when it is an error."""
    room_id, reply_id = await queued_reply(api, user)
    headers = user.headers | {"Last-Event-ID": last_event_id}
    async with client.stream("GET", stream_url(room_id, reply_id), headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
    return response


@pytest.mark.parametrize(
    "last_event_id",
    [
        "x",
        "$",
        ">",
        "+",
        "-",
        "1-",
        "-1",
        "1-2-3",
        "1.5",
        "0x10-0",
        "1 -0",
        b"\xb2-0",  # "²": a digit to str.isdigit(), not to Redis
        "18446744073709551616-0",  # one past the largest id Redis accepts
        "0-18446744073709551616",
        "1" * 200,
    ],
)
async def test_a_last_event_id_that_is_not_a_stream_entry_id_is_400(
    api, user, client, last_event_id
):
    response = await resume(api, user, client, last_event_id)
    assert response.status_code == 400, "the stream started"
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert error["status"] == "fail"
    assert error["code"] == "validation_error"
    assert error["errors"][0]["field"] == "Last-Event-ID"


@pytest.mark.parametrize(
    "last_event_id", ["0", "0-0", "1732000000000-7", "18446744073709551615-18446744073709551615"]
)
async def test_every_stream_entry_id_is_accepted_as_last_event_id(api, user, client, last_event_id):
    response = await resume(api, user, client, last_event_id)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")


async def test_a_redis_error_on_every_read_backs_off_instead_of_flooding_the_log(
    api, user, client, redis
):
    """A token stream key holding the wrong type makes every XREAD fail at once, as the
    bad header did: the stream must wait between attempts, and say so once."""
    room_id, reply_id = await queued_reply(api, user)
    await redis.set(f"ai.reply.{reply_id}", "not a stream", ex=60)
    with capture_logs() as logs:
        async with client.stream("GET", stream_url(room_id, reply_id), headers=user.headers) as r:
            assert r.status_code == 200
            await asyncio.sleep(WATCH_SECONDS)  # the window observed, not a wait for an effect
    errors = [line for line in logs if line["event"].startswith("chat.sse_redis")]
    warnings = [line for line in errors if line["log_level"] in ("warning", "error")]
    assert errors, "the error was not logged at all"
    assert len(warnings) <= 2, f"{len(warnings)} warnings in {WATCH_SECONDS}s"
    assert len(errors) < 12, f"{len(errors)} error lines in {WATCH_SECONDS}s"


class CountingRedis(Redis):
    """A real client that counts its XREAD calls."""

    xreads = 0

    async def xread(self, *args, **kwargs):
        self.xreads += 1
        return await super().xread(*args, **kwargs)


async def test_an_unreachable_redis_is_retried_with_growing_waits(api, user, app):
    room_id, reply_id = await queued_reply(api, user)
    user_id, room, reply = user.id, uuid.UUID(room_id), uuid.UUID(reply_id)
    # Nothing listens there, and the client itself does not retry: the loop alone decides
    # how often Redis is asked.
    dead = CountingRedis(
        host="127.0.0.1", port=free_port(), decode_responses=True, retry=Retry(NoBackoff(), 0)
    )

    async def load():
        return await prompts.get_reply(Database(app.state.pool), user_id, room, reply)

    events = streaming.reply_events(dead, reply, load, lambda m: {}, None)
    reader = asyncio.create_task(anext(events))
    try:
        with capture_logs() as logs:
            done, _ = await asyncio.wait({reader}, timeout=WATCH_SECONDS)
        assert not done, "the stream ended although the reply is pending"
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await events.aclose()
        await dead.aclose()
    assert 2 <= dead.xreads < 10, f"{dead.xreads} XREAD attempts in {WATCH_SECONDS}s"
    warnings = [line for line in logs if line["log_level"] in ("warning", "error")]
    assert len(warnings) <= 2, warnings


async def test_the_stream_carries_on_once_redis_answers_again(api, user, client, redis):
    from shared.replies import End, append_end, append_token

    room_id, reply_id = await queued_reply(api, user)
    key = f"ai.reply.{reply_id}"
    await redis.set(key, "not a stream", ex=60)
    with capture_logs() as logs:
        async with client.stream("GET", stream_url(room_id, reply_id), headers=user.headers) as r:
            assert r.status_code == 200

            def failing() -> bool:
                return any(line["event"] == "chat.sse_redis_error" for line in logs)

            await eventually(failing, what="the stream to meet the error")
            await redis.delete(key)
            await append_token(redis, reply_id, "back", ttl=60)
            await append_end(redis, reply_id, End("failed", reason="x", message="Ended."), ttl=60)
            async with asyncio.timeout(15):
                lines = [line async for line in r.aiter_lines()]
    assert "event: token" in lines and 'data: {"text": "back"}' in lines
    assert "event: done" in lines
    assert any(line["event"] == "chat.sse_redis_recovered" for line in logs)

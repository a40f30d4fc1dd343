"""Chat holes from the security review, reproduced as an attacker would, through the gateway
of the whole stack: a resume header that spun chat's stream loop, and unbounded reply
streams (each one holds a Redis connection in chat)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from dev.stack import Stack
from shared.testing.accounts import sign_up_and_in
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e

# Chat's MAX_STREAMS_PER_USER default; the e2e stack does not change it.
STREAMS_PER_USER = 5
# Keeps the reply generating for about 40 s in the simulator (200 slow tokens).
LONG_PROMPT = "[sim:slow] [sim:long] a very long story"


class User:
    """A signed-in user of the public API with a reply being generated."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.headers: dict[str, str] = {}
        self.room_id = ""
        self.reply_id = ""
        self.stream_url = ""

    async def sign_in(self) -> User:
        self.headers = (await sign_up_and_in(self.api)).headers
        return self

    async def ask_for_a_long_reply(self) -> User:
        room = await self.api.post("/api/v1/chatroom", json={"name": "e2e"}, headers=self.headers)
        assert room.status_code == 201, room.text
        self.room_id = room.json()["data"]["chatroom"]["id"]
        sent = await self.api.post(
            f"/api/v1/chatroom/{self.room_id}/message",
            json={"content": LONG_PROMPT},
            headers=self.headers,
        )
        assert sent.status_code == 201, sent.text
        reply = sent.json()["data"]["reply"]
        self.reply_id, self.stream_url = reply["id"], reply["streamUrl"]
        return self

    async def stop_the_reply(self) -> None:
        await self.api.post(
            f"/api/v1/chatroom/{self.room_id}/message/{self.reply_id}/stop", headers=self.headers
        )


@pytest.fixture
async def user(api) -> AsyncIterator[User]:
    person = await (await User(api).sign_in()).ask_for_a_long_reply()
    yield person
    await person.stop_the_reply()  # frees the worker for the next tests


async def attempt(api: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    """Open the stream and close it at once; the body is read only when it is an error."""
    async with api.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
    return response


def sse_errors_logged(stack: Stack) -> int:
    assert stack.log_dir is not None
    return (stack.log_dir / "chat.log").read_text(errors="replace").count("chat.sse_redis_error")


async def test_a_last_event_id_that_is_not_an_event_id_is_400_and_chat_does_not_spin(
    api, stack, user
):
    logged_before = sse_errors_logged(stack)
    # What once held chat at 93% CPU: five streams resuming after "x".
    refused = await asyncio.gather(
        *(attempt(api, user.stream_url, user.headers | {"Last-Event-ID": "x"}) for _ in range(5))
    )
    for response in refused:
        assert response.status_code == 400
        body = response.json()
        assert body["status"] == "fail"
        assert body["code"] == "validation_error"
        assert body["errors"][0]["field"] == "Last-Event-ID"
        assert response.headers["x-request-id"]
    too_long = await attempt(api, user.stream_url, user.headers | {"Last-Event-ID": "1" * 500})
    assert too_long.status_code == 400
    # A real event id resumes the stream.
    resumed = await attempt(api, user.stream_url, user.headers | {"Last-Event-ID": "0-0"})
    assert resumed.status_code == 200
    assert sse_errors_logged(stack) == logged_before


async def test_streams_beyond_the_per_user_limit_are_429_until_one_closes(api, user):
    async with contextlib.AsyncExitStack() as held:
        streams = []
        for _ in range(STREAMS_PER_USER):
            opened = await held.enter_async_context(
                api.stream("GET", user.stream_url, headers=user.headers, timeout=60)
            )
            assert opened.status_code == 200
            assert opened.headers["content-type"].startswith("text/event-stream")
            streams.append(opened)
        refused = await attempt(api, user.stream_url, user.headers)
        assert refused.status_code == 429
        body = refused.json()
        assert body["code"] == "too_many_streams"
        assert str(STREAMS_PER_USER) in body["message"]
        assert int(refused.headers["retry-after"]) >= 1

        await streams[0].aclose()  # the client goes away: its slot comes back

        async def reopens() -> bool:
            return (await attempt(api, user.stream_url, user.headers)).status_code == 200

        await eventually(reopens, timeout=10, interval=0.1, what="the closed stream's slot")

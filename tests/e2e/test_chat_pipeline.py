"""Prompts to streamed replies through the whole stack: gateway, auth, chat, the outbox,
Redis Streams, the ai-worker and the Gemini simulator (the real google-genai SDK)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.testing.accounts import sign_up_and_in
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e

FINAL = {"completed", "failed", "blocked", "cancelled"}


class Person:
    """A new user, signed up and logged in through the gateway."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.headers: dict[str, str] = {}

    async def login(self) -> Person:
        self.headers = (await sign_up_and_in(self.api)).headers
        return self

    async def room(self) -> str:
        response = await self.api.post(
            "/api/v1/chatroom", json={"name": "e2e"}, headers=self.headers
        )
        assert response.status_code == 201, response.text
        return response.json()["data"]["chatroom"]["id"]

    async def send(self, room_id: str, content: str) -> httpx.Response:
        return await self.api.post(
            f"/api/v1/chatroom/{room_id}/message", json={"content": content}, headers=self.headers
        )

    async def ask(self, room_id: str, content: str) -> dict:
        response = await self.send(room_id, content)
        assert response.status_code == 201, response.text
        return response.json()["data"]["reply"]

    async def messages(self, room_id: str) -> list[dict]:
        response = await self.api.get(f"/api/v1/chatroom/{room_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["data"]["chatroom"]["messages"]

    async def reply(self, room_id: str, reply_id: str) -> dict:
        return next(m for m in await self.messages(room_id) if m["id"] == reply_id)

    async def final_reply(self, room_id: str, reply_id: str, timeout: float = 30) -> dict:
        async def final() -> bool:
            return (await self.reply(room_id, reply_id))["status"] in FINAL

        await eventually(final, timeout=timeout, interval=0.1, what=f"reply {reply_id} final")
        return await self.reply(room_id, reply_id)

    async def usage(self) -> dict:
        return (await self.api.get("/api/v1/usage", headers=self.headers)).json()["data"]


@pytest.fixture
async def person(api) -> Person:
    return await Person(api).login()


async def sse(api: httpx.AsyncClient, url: str, headers: dict[str, str]):
    """(event, data) pairs of a server-sent event stream, as they arrive."""
    async with api.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = "message", []
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield event, json.loads("\n".join(data))
                event, data = "message", []
            elif line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].removeprefix(" "))


async def test_reply_streams_token_by_token_and_is_then_completed(api, person):
    room = await person.room()
    reply = await person.ask(room, "What is yoga?")
    assert reply["status"] == "queued"
    tokens: list[str] = []
    done = None
    async for event, data in sse(api, reply["streamUrl"], person.headers):
        if event == "token":
            tokens.append(data["text"])
        elif event == "reset":
            tokens.clear()
        elif event == "done":
            done = data
            break
    assert len(tokens) > 5, tokens  # many events, not one blob
    assert done["status"] == "completed"
    stored = await person.final_reply(room, reply["id"])
    assert stored["status"] == "completed"
    assert stored["content"] == "".join(tokens)
    assert "What is yoga?" in stored["content"]  # the simulator answers the prompt it got


async def test_history_reaches_the_model(api, person, simulator):
    room = await person.room()
    first = await person.ask(room, "My name is Asha.")
    await person.final_reply(room, first["id"])
    second = await person.ask(room, "What is my name?")
    stored = await person.final_reply(room, second["id"])
    requests = (await simulator.get("/_sim/requests")).json()["requests"]
    mine = [r for r in requests if r["contents"][-1]["parts"][0]["text"] == "What is my name?"]
    contents = mine[-1]["contents"]
    texts = [(c["role"], c["parts"][0]["text"]) for c in contents]
    assert texts[0] == ("user", "My name is Asha.")
    assert texts[1][0] == "model"
    assert texts[-1] == ("user", "What is my name?")
    assert sum(1 for _, t in texts if t == "What is my name?") == 1  # never the prompt twice
    assert "My name is Asha." in stored["content"]  # the reply shows the history it was sent


async def test_basic_limit_then_429_with_reset_time(api, person, basic_limit):
    for _ in range(basic_limit):
        room = await person.room()
        response = await person.send(room, "count me")
        assert response.status_code == 201
    response = await person.send(await person.room(), "one too many")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "daily_limit_reached"
    assert body["limit"] == basic_limit and body["used"] == basic_limit
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert body["resetsAt"] == f"{tomorrow}T00:00:00Z"
    assert response.headers["x-request-id"]


async def test_thirty_concurrent_sends_across_thirty_rooms_accept_exactly_the_limit(
    api, person, basic_limit
):
    rooms = [await person.room() for _ in range(30)]
    responses = await asyncio.gather(*(person.send(r, "race") for r in rooms))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * basic_limit + [429] * (30 - basic_limit)
    assert (await person.usage())["used"] == basic_limit


async def test_a_503_burst_is_retried_and_the_reply_completes(api, person):
    room = await person.room()
    reply = await person.ask(room, "[sim:503x2] are you there?")
    stored = await person.final_reply(room, reply["id"])
    assert stored["status"] == "completed"


async def test_safety_block_ends_blocked(api, person):
    room = await person.room()
    reply = await person.ask(room, "[sim:safety] something unsafe")
    stored = await person.final_reply(room, reply["id"])
    assert stored["status"] == "blocked"
    assert stored["error"]
    assert (await person.usage())["used"] == 1  # a blocked prompt still counts


async def test_permanent_error_fails_and_gives_the_quota_unit_back(api, person, basic_limit):
    room = await person.room()
    sent = await person.send(room, "[sim:400] malformed for the model")
    assert sent.status_code == 201
    # Counted when accepted (the refund may already have happened by the next request).
    assert sent.headers["x-ratelimit-remaining"] == str(basic_limit - 1)
    reply = sent.json()["data"]["reply"]
    stored = await person.final_reply(room, reply["id"])
    assert stored["status"] == "failed"
    assert stored["error"]

    async def refunded() -> bool:
        return (await person.usage())["used"] == 0

    await eventually(refunded, what="the quota unit to come back")


async def test_worker_killed_mid_generation_completes_the_reply_exactly_once(
    api, person, stack, stack_redis
):
    room = await person.room()
    reply = await person.ask(room, "[sim:slow] tell me a slow story")
    stream = f"ai.reply.{reply['id']}"

    async def generating() -> bool:
        return await stack_redis.xlen(stream) >= 2

    await eventually(generating, timeout=20, what="the first tokens")
    worker = stack.processes["ai-worker"]
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    stack.restart("ai-worker")
    stored = await person.final_reply(room, reply["id"], timeout=60)
    assert stored["status"] == "completed"
    # Exactly once: one reply row for the prompt, and its text is one whole answer.
    messages = await person.messages(room)
    assert [m["role"] for m in messages] == ["USER", "GEMINI"]
    assert stored["content"].count("tell me a slow story") == 1


async def test_redis_flushed_while_replies_are_queued_still_completes_them(
    api, person, stack, stack_redis
):
    worker = stack.processes["ai-worker"]
    worker.send_signal(signal.SIGSTOP)  # nobody takes the events yet
    try:
        rooms = [await person.room() for _ in range(3)]
        replies = [await person.ask(room, f"queued {i}") for i, room in enumerate(rooms)]

        async def published() -> bool:
            entries = await stack_redis.xrevrange("chat.events", count=50)
            return all(any(r["id"] in f["envelope"] for _, f in entries) for r in replies)

        await eventually(published, what="the MessageQueued events on chat.events")
        await stack_redis.flushdb()  # Redis loses everything: events, groups, caches
    finally:
        worker.send_signal(signal.SIGCONT)
    for room, reply in zip(rooms, replies, strict=True):
        stored = await person.final_reply(room, reply["id"], timeout=60)
        assert stored["status"] == "completed", stored


async def test_a_poison_entry_is_dead_lettered_while_others_flow(api, person, stack, stack_redis):
    await stack_redis.xadd(
        "chat.events", {"type": "MessageQueued", "envelope": '{"not": "an envelope"}'}
    )
    room = await person.room()
    reply = await person.ask(room, "still flowing?")
    assert (await person.final_reply(room, reply["id"]))["status"] == "completed"

    async def dead_lettered() -> bool:
        entries = await stack_redis.xrange("chat.events.dlq")
        return any(fields.get("envelope") == '{"not": "an envelope"}' for _, fields in entries)

    await eventually(dead_lettered, what="the poison entry in chat.events.dlq")

    # The operator finds it with the worker's own command, and purges it.
    def worker_command(*argv: str) -> subprocess.CompletedProcess[str]:
        return stack.command("ai_worker", *argv)

    listed = await asyncio.to_thread(worker_command, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if "reason=undecodable" in line]
    assert "  chat.events  " in line and "type=MessageQueued" in line
    purged = await asyncio.to_thread(worker_command, "dlq", "purge", line.split()[0])
    assert purged.returncode == 0, purged.stderr
    assert not await dead_lettered()


async def test_stream_of_another_users_reply_is_404(api, person):
    room = await person.room()
    reply = await person.ask(room, "mine")
    other = await Person(api).login()
    response = await api.get(reply["streamUrl"], headers=other.headers)
    assert response.status_code == 404
    unknown = await api.get(
        f"/api/v1/chatroom/{room}/message/{uuid.uuid4()}/stream", headers=person.headers
    )
    assert unknown.status_code == 404


async def test_stop_a_long_reply_ends_it_cancelled_and_the_worker_stops(api, person, stack_redis):
    room = await person.room()
    reply = await person.ask(room, "[sim:slow] [sim:long] a very long story")
    stream = f"ai.reply.{reply['id']}"

    async def generating() -> bool:
        return await stack_redis.xlen(stream) >= 3

    await eventually(generating, timeout=20, what="the first tokens")
    stopped = await api.post(
        f"/api/v1/chatroom/{room}/message/{reply['id']}/stop", headers=person.headers
    )
    assert stopped.status_code == 200
    body = stopped.json()["data"]["reply"]
    assert body["status"] == "cancelled"
    assert body["content"]  # the text produced so far

    # The worker notices within a second and streams nothing more.
    await asyncio.sleep(1.5)
    length = await stack_redis.xlen(stream)
    await asyncio.sleep(1.0)
    assert await stack_redis.xlen(stream) == length
    stored = await person.reply(room, reply["id"])
    assert (stored["status"], stored["content"]) == ("cancelled", body["content"])
    assert (await person.usage())["used"] == 1


async def test_regenerate_gives_a_new_reply_to_the_same_prompt(api, person):
    room = await person.room()
    first = await person.ask(room, "Name a colour.")
    await person.final_reply(room, first["id"])
    response = await api.post(
        f"/api/v1/chatroom/{room}/message/{first['id']}/regenerate", headers=person.headers
    )
    assert response.status_code == 201
    second = response.json()["data"]["reply"]
    stored = await person.final_reply(room, second["id"])
    assert stored["status"] == "completed"
    assert "Name a colour." in stored["content"]
    assert stored["siblingIds"] == [first["id"], second["id"]]  # the old one is kept
    assert response.json()["data"]["previous"]["supersededBy"] == second["id"]
    shown = await api.put(
        f"/api/v1/chatroom/{room}/branch", json={"messageId": first["id"]}, headers=person.headers
    )
    assert [m["id"] for m in shown.json()["data"]["chatroom"]["messages"]][-1] == first["id"]
    assert (await person.usage())["used"] == 2


async def test_an_edited_prompt_is_answered_from_its_own_branch(api, person, simulator):
    room = await person.room()
    first = await person.ask(room, "My name is Asha.")
    await person.final_reply(room, first["id"])
    second = await person.ask(room, "What is my name?")
    await person.final_reply(room, second["id"])
    [prompt1, _, prompt2, _] = await person.messages(room)

    edited = await api.put(
        f"/api/v1/chatroom/{room}/message/{prompt1['id']}",
        json={"content": "My name is Ravi."},
        headers=person.headers,
    )
    assert edited.status_code == 201, edited.text
    reply = await person.final_reply(room, edited.json()["data"]["reply"]["id"])
    assert "My name is Ravi." in reply["content"]
    # Gemini was asked with the new branch alone: no Asha, no second question.
    requests = (await simulator.get("/_sim/requests")).json()["requests"]
    [asked] = [r for r in requests if r["contents"][-1]["parts"][0]["text"] == "My name is Ravi."]
    assert len(asked["contents"]) == 1
    path = await person.messages(room)
    assert [m["content"] for m in path if m["role"] == "USER"] == ["My name is Ravi."]
    assert path[0]["siblingIds"] == [prompt1["id"], path[0]["id"]]
    shown = await api.put(
        f"/api/v1/chatroom/{room}/branch", json={"messageId": prompt1["id"]}, headers=person.headers
    )
    assert [m["id"] for m in shown.json()["data"]["chatroom"]["messages"]][2] == prompt2["id"]


async def test_a_new_chat_gets_a_title_from_its_first_exchange(api, person):
    created = await api.post("/api/v1/chatroom", json={}, headers=person.headers)
    room = created.json()["data"]["chatroom"]
    assert room["name"] == "New chat"
    reply = await person.ask(room["id"], "How do plants make food?")
    await person.final_reply(room["id"], reply["id"])

    async def titled() -> bool:
        rooms = (await api.get("/api/v1/chatroom", headers=person.headers)).json()
        name = next(r["name"] for r in rooms["data"]["chatrooms"] if r["id"] == room["id"])
        return name != "New chat"

    await eventually(titled, timeout=20, what="the automatic title")
    rooms = (await api.get("/api/v1/chatroom", headers=person.headers)).json()
    name = next(r["name"] for r in rooms["data"]["chatrooms"] if r["id"] == room["id"])
    assert name == "How do plants make food"

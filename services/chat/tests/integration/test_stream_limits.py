"""Open reply streams are bounded: per user across every chat process (leases in Redis),
and per process. Each open stream holds a Redis connection in a blocking XREAD; one
user once opened 400 streams on one pending reply."""

import asyncio
import contextlib
import uuid

import httpx
import pytest

from chat.app import create_app
from dev.proc import free_port
from shared.errors import ServiceUnavailable
from shared.redis import open_redis
from shared.testing.asgi import served
from shared.testing.wait import eventually


async def queued_reply(api, user) -> str:
    """The stream URL of a new reply that stays pending (no worker runs in these tests)."""
    room = await api.new_room(user)
    sent = await api.send(user, room["id"], "stream me")
    assert sent.status_code == 201, sent.text
    reply = sent.json()["data"]["reply"]
    return f"/api/v1/chatroom/{room['id']}/message/{reply['id']}/stream"


async def attempt(client: httpx.AsyncClient, url: str, headers: dict) -> httpx.Response:
    """Open the stream and close it at once; the body is read only when it is an error."""
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
    return response


def assert_too_many_streams(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.status_code
    body = response.json()
    assert body["status"] == "fail"
    assert body["code"] == "too_many_streams"
    assert str(limit) in body["message"]
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("settings_overrides", [{"max_streams_per_user": 2}])
async def test_streams_beyond_the_per_user_limit_are_429_and_other_users_are_unaffected(
    api, client, user, make_user
):
    url = await queued_reply(api, user)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(2):
            opened = await held.enter_async_context(client.stream("GET", url, headers=user.headers))
            assert opened.status_code == 200
        assert_too_many_streams(await attempt(client, url, user.headers), limit=2)
        # Another reply of the same user counts against the same limit.
        assert_too_many_streams(
            await attempt(client, await queued_reply(api, user), user.headers), 2
        )
        other = make_user()
        theirs = await queued_reply(api, other)
        assert (await attempt(client, theirs, other.headers)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"max_streams_per_user": 1}])
async def test_a_closed_stream_gives_its_slot_back(api, client, user):
    url = await queued_reply(api, user)
    async with client.stream("GET", url, headers=user.headers) as first:
        assert first.status_code == 200
        assert_too_many_streams(await attempt(client, url, user.headers), limit=1)

    async def reopens() -> bool:
        return (await attempt(client, url, user.headers)).status_code == 200

    await eventually(reopens, timeout=5, what="the slot of the closed stream to come back")
    # Each attempt above closed its stream at once: none of them keeps a slot (given back as
    # the server sees the close, which under load can take a moment).
    await eventually(reopens, timeout=5, what="the slot of the last attempt to come back")


@pytest.mark.parametrize("settings_overrides", [{"max_streams_per_user": 3}])
async def test_concurrent_opens_never_exceed_the_limit(api, client, user, redis):
    url = await queued_reply(api, user)
    statuses: list[int] = []
    release = asyncio.Event()

    async def open_and_hold() -> None:
        async with client.stream("GET", url, headers=user.headers) as response:
            statuses.append(response.status_code)
            if response.status_code == 200:
                await release.wait()

    tasks = [asyncio.create_task(open_and_hold()) for _ in range(20)]
    try:
        await eventually(lambda: len(statuses) == 20, what="20 answers")
        assert sorted(statuses) == [200] * 3 + [429] * 17
        assert await redis.zcard(f"chat:streams:{user.id}") == 3
    finally:
        release.set()
        await asyncio.gather(*tasks)


@pytest.mark.parametrize("settings_overrides", [{"max_streams_per_user": 2}])
async def test_the_per_user_limit_holds_across_chat_processes(api, client, user, chat_settings):
    url = await queued_reply(api, user)
    second_process = create_app(chat_settings)
    async with (
        served(second_process) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as other_client,
        client.stream("GET", url, headers=user.headers) as here,
        other_client.stream("GET", url, headers=user.headers) as there,
    ):
        assert (here.status_code, there.status_code) == (200, 200)
        assert_too_many_streams(await attempt(client, url, user.headers), limit=2)
        assert_too_many_streams(await attempt(other_client, url, user.headers), limit=2)


@pytest.mark.parametrize(
    "settings_overrides", [{"max_streams_per_user": 1, "stream_lease_seconds": 1}]
)
async def test_a_slot_left_by_a_crashed_process_expires(api, client, user, redis, chat_settings):
    from chat.stream_slots import StreamSlots

    url = await queued_reply(api, user)
    crashed = StreamSlots(redis, chat_settings)
    await crashed.take(user.id)  # and the process dies: nobody refreshes or releases it
    assert_too_many_streams(await attempt(client, url, user.headers), limit=1)

    async def opens() -> bool:
        return (await attempt(client, url, user.headers)).status_code == 200

    await eventually(opens, timeout=10, what="the abandoned lease to expire")


@pytest.mark.parametrize(
    "settings_overrides", [{"max_streams_per_user": 1, "stream_lease_seconds": 1}]
)
async def test_an_open_stream_keeps_its_slot_past_the_lease_time(api, client, user):
    url = await queued_reply(api, user)
    loop = asyncio.get_running_loop()
    async with client.stream("GET", url, headers=user.headers) as held:
        assert held.status_code == 200
        until = loop.time() + 3  # three lease times
        while loop.time() < until:
            assert_too_many_streams(await attempt(client, url, user.headers), limit=1)
            await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    "settings_overrides", [{"max_streams_per_user": 1, "stream_lease_seconds": 1}]
)
async def test_a_stream_that_lost_its_slot_ends(api, client, user, redis, chat_settings):
    """Its lease expired (say Redis was away for longer than the lease) and the slot went
    to another stream meanwhile: it ends rather than go past the limit."""
    from chat.stream_slots import StreamSlots

    url = await queued_reply(api, user)
    async with client.stream("GET", url, headers=user.headers) as held:
        assert held.status_code == 200
        await redis.delete(f"chat:streams:{user.id}")
        await StreamSlots(redis, chat_settings).take(user.id)
        async with asyncio.timeout(10):
            async for _ in held.aiter_lines():
                pass  # the server ends the response


@pytest.mark.parametrize("settings_overrides", [{"max_open_streams": 2, "max_streams_per_user": 5}])
async def test_the_per_process_cap_answers_503_until_a_stream_closes(api, client, user, make_user):
    url = await queued_reply(api, user)
    other = make_user()
    theirs = await queued_reply(api, other)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(2):
            opened = await held.enter_async_context(client.stream("GET", url, headers=user.headers))
            assert opened.status_code == 200
        refused = await attempt(client, theirs, other.headers)
        assert refused.status_code == 503
        assert refused.json()["code"] == "streams_unavailable"
        assert refused.json()["status"] == "error"
        assert int(refused.headers["retry-after"]) >= 1

    async def opens() -> bool:
        return (await attempt(client, theirs, other.headers)).status_code == 200

    await eventually(opens, timeout=5, what="a process slot to come back")


@contextlib.asynccontextmanager
async def silent_server():
    """Accepts connections and never answers: a Redis that hangs."""
    peers = []

    async def hold(reader, writer):
        peers.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in peers:
            writer.close()
        server.close()


@pytest.mark.parametrize("redis_is", ["refusing connections", "hanging"])
async def test_taking_a_slot_without_redis_fails_closed_quickly(chat_settings, redis_is):
    from chat.stream_slots import StreamSlots

    async with contextlib.AsyncExitStack() as stack:
        if redis_is == "hanging":
            port = await stack.enter_async_context(silent_server())
        else:
            port = free_port()
        unreachable = open_redis(f"redis://127.0.0.1:{port}/0")
        stack.push_async_callback(unreachable.aclose)
        slots = StreamSlots(unreachable, chat_settings)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ServiceUnavailable) as refused:
            await slots.take(uuid.uuid4())
        assert loop.time() - started < 6
    assert refused.value.code == "streams_unavailable"
    assert refused.value.headers and int(refused.value.headers["Retry-After"]) >= 1
    assert slots.open == 0  # the process slot is given back

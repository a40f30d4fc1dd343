"""Streams and ordinary requests go through separate upstream pools: open streams cannot
starve ordinary requests, a full pool of either kind leaves the other alone, and a request
that cannot get an upstream connection is refused at once, never left hanging."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from shared.testing.wait import eventually

STREAM = "/api/v1/chatroom/room-1/message/reply-1/stream"
CHATROOMS = "/api/v1/chatroom"
# Far longer than any answer below may take: the old code's requests waited this long.
PATIENT = 20.0


def big_client(url: str) -> httpx.AsyncClient:
    """A client that itself never queues: the gateway's pools are what the tests measure."""
    return httpx.AsyncClient(
        base_url=url, timeout=PATIENT, limits=httpx.Limits(max_connections=None)
    )


@asynccontextmanager
async def open_stream(client: httpx.AsyncClient, headers: dict[str, str]) -> AsyncIterator[None]:
    """A stream that has delivered its first event and stays open (the fake holds it)."""
    async with client.stream("GET", STREAM, headers={**headers, "X-Fake": "sse"}) as response:
        assert response.status_code == 200, await response.aread()
        received = bytearray()
        chunks = response.aiter_raw()
        while b"data: one\n\n" not in received:
            received.extend(await anext(chunks))
        yield


async def open_streams(
    client: httpx.AsyncClient, headers: dict[str, str], count: int, stack: AsyncExitStack
) -> None:
    async def one() -> None:
        await stack.enter_async_context(open_stream(client, headers))

    await asyncio.gather(*(one() for _ in range(count)))


def assert_busy_envelope(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["code"] == "service_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-request-id"]


async def test_streams_beyond_the_ordinary_pool_size_leave_ordinary_requests_fast(
    live_gateway_factory, new_user
) -> None:
    # As reported: every stream held one of the gateway's 100 upstream connections, so
    # further streams and every ordinary request waited for a connection to come free.
    user = new_user()
    async with (
        live_gateway_factory(upstream_pool_size=100, upstream_timeout_seconds=PATIENT) as url,
        big_client(url) as client,
        AsyncExitStack() as streams,
    ):
        async with asyncio.timeout(10):
            await open_streams(client, user.headers, 120, streams)
        started = time.monotonic()
        response = await client.get(CHATROOMS, headers=user.headers)
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 3


async def test_a_stream_over_the_stream_pool_is_refused_at_once_and_ordinary_requests_pass(
    live_gateway_factory, services, new_user
) -> None:
    user = new_user()
    async with (
        live_gateway_factory(stream_pool_size=2, upstream_timeout_seconds=PATIENT) as url,
        big_client(url) as client,
        AsyncExitStack() as streams,
    ):
        await open_streams(client, user.headers, 2, streams)
        started = time.monotonic()
        async with (
            asyncio.timeout(10),
            client.stream("GET", STREAM, headers={**user.headers, "X-Fake": "sse"}) as refused,
        ):
            await refused.aread()
        elapsed = time.monotonic() - started
        ordinary = await client.get(CHATROOMS, headers=user.headers)
    assert_busy_envelope(refused)
    assert elapsed < 5  # the time to wait for a pooled connection (2 s by default)
    assert ordinary.status_code == 200
    streamed = [r for r in services["chat"].received if r.raw_path == STREAM]
    assert len(streamed) == 2  # the refused stream never reached chat


async def test_a_full_ordinary_pool_leaves_streams_alone_and_refuses_further_requests_fast(
    live_gateway_factory, services, new_user
) -> None:
    user = new_user()
    auth = services["auth"]
    login = "/api/v1/auth/login"
    async with (
        live_gateway_factory(
            upstream_pool_size=2,
            upstream_connect_timeout_seconds=0.5,
            upstream_timeout_seconds=PATIENT,
        ) as url,
        big_client(url) as client,
    ):
        slow = [
            asyncio.create_task(client.post(login, json={}, headers={"X-Fake": "slow"}))
            for _ in range(2)
        ]
        await eventually(lambda: len(auth.received) == 2, what="both slow requests upstream")
        async with AsyncExitStack() as streams, asyncio.timeout(5):
            await open_streams(client, user.headers, 1, streams)
        # To auth, whose two connections are both busy (an idle pooled connection to
        # another service would be reused: only opening a new one waits for the pool).
        started = time.monotonic()
        busy = await client.post(login, json={})
        elapsed = time.monotonic() - started
        auth.release.set()
        finished = await asyncio.gather(*slow)
    assert_busy_envelope(busy)
    assert elapsed < 3
    assert [r.status_code for r in finished] == [201, 201]
    assert len(auth.received) == 2  # the refused request never reached auth


async def test_a_stream_whose_upstream_sends_no_headers_is_a_504(
    live_gateway_factory, new_user
) -> None:
    user = new_user()
    async with (
        live_gateway_factory(upstream_timeout_seconds=0.3) as url,
        big_client(url) as client,
        asyncio.timeout(5),
    ):
        response = await client.get(STREAM, headers={**user.headers, "X-Fake": "slow"})
    assert response.status_code == 504
    assert response.json()["code"] == "gateway_timeout"
    assert response.headers["x-request-id"]


async def test_the_services_429_for_too_many_streams_reaches_the_client(
    live_gateway, new_user
) -> None:
    user = new_user()
    async with big_client(live_gateway) as client:
        response = await client.get(STREAM, headers={**user.headers, "X-Fake-Status": "429"})
    assert response.status_code == 429
    assert response.json()["data"]["service"] == "chat"

"""SSE through a real gateway socket: relayed as it arrives, closed when the client leaves."""

import asyncio

import httpx

STREAM = "/api/v1/chatroom/room-1/message/reply-1/stream"


async def read_until(chunks, buffer: bytearray, marker: bytes) -> None:
    while marker not in buffer:
        buffer.extend(await anext(chunks))


async def test_events_reach_the_client_before_the_upstream_sends_the_rest(
    live_gateway, services, new_user
) -> None:
    user = new_user()
    chat = services["chat"]
    headers = {**user.headers, "X-Fake": "sse"}
    async with (
        asyncio.timeout(5),
        httpx.AsyncClient(base_url=live_gateway) as client,
        client.stream("GET", STREAM, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["cache-control"] == "no-cache"
        assert len(response.headers.get_list("x-request-id")) == 1
        assert "content-length" not in response.headers
        received = bytearray()
        chunks = response.aiter_raw()
        # The upstream is blocked until `release` is set: this only arrives if the
        # gateway relays the first event without waiting for the rest.
        await read_until(chunks, received, b"data: one\n\n")
        assert not chat.release.is_set()
        # Outlast the gateway's 0.2 s limit for ordinary responses: a stream has none.
        await asyncio.sleep(0.4)
        chat.release.set()
        async for chunk in chunks:
            received.extend(chunk)
    assert bytes(received) == b"id: 1\ndata: one\n\nid: 2\ndata: two\n\nid: 3\ndata: three\n\n"
    assert chat.received[-1].headers["authorization"] == f"Bearer {user.token}"


async def test_client_disconnect_closes_the_upstream_stream(live_gateway, services, new_user):
    user = new_user()
    chat = services["chat"]
    headers = {**user.headers, "X-Fake": "sse-forever"}
    async with (
        httpx.AsyncClient(base_url=live_gateway) as client,
        client.stream("GET", STREAM, headers=headers) as response,
    ):
        await read_until(response.aiter_raw(), bytearray(), b"data: one\n\n")
        assert not chat.stream_closed.is_set()
    # The upstream keeps writing pings until its connection is closed; only the gateway
    # closing its upstream response ends that (the fake gives up after 10 s).
    await asyncio.wait_for(chat.stream_closed.wait(), timeout=5)

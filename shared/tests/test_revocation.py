"""The gateway's signed word that it checked a token for revocation (X-Gateway-Checked),
and the look-up of a user's revocation time at auth."""

import asyncio
import time

import pytest
from fastapi import FastAPI, Request

from shared.errors import ServiceUnavailable
from shared.http import CLIENT_KEEP_ALIVE_SECONDS
from shared.revocation import (
    CHECKED_MAX_AGE_SECONDS,
    auth_lookup,
    checked_by_gateway,
    gateway_checked,
    lookup_client,
)
from shared.testing.asgi import served

SECRET = "unit-Z8qW3eR7tY1uI5oP9aS2dF6gH0jK4lXcVbNm"
TOKEN = "header.payload.signature"


def test_the_gateways_fresh_word_for_the_same_token_is_believed():
    assert checked_by_gateway(SECRET, TOKEN, gateway_checked(SECRET, TOKEN))


def test_the_word_is_bound_to_the_token_and_the_secret():
    value = gateway_checked(SECRET, TOKEN)
    assert not checked_by_gateway(SECRET, TOKEN + "x", value)
    assert not checked_by_gateway("another-" + SECRET, TOKEN, value)


def test_an_old_or_future_word_is_not_believed():
    now = time.time()
    old = gateway_checked(SECRET, TOKEN, now=now - CHECKED_MAX_AGE_SECONDS - 1)
    future = gateway_checked(SECRET, TOKEN, now=now + 60)
    assert not checked_by_gateway(SECRET, TOKEN, old, now=now)
    assert not checked_by_gateway(SECRET, TOKEN, future, now=now)


def test_made_up_values_are_not_believed():
    now = str(int(time.time()))
    for value in ("", "x", f"{now}.", f"{now}.{'0' * 64}", "99999999999999999.ab", f"-{now}.ab"):
        assert not checked_by_gateway(SECRET, TOKEN, value)


async def test_a_look_up_never_reuses_a_connection_auth_is_about_to_close():
    """Auth (uvicorn) closes a connection idle for SERVER_KEEP_ALIVE_SECONDS. A look-up sent
    on one at that moment fails, and the request it was for gets a 503: the client gives the
    connection up first. Which connection a look-up came on is the peer's port."""
    ports: list[int] = []
    auth = FastAPI()

    @auth.get("/internal/users/{user_id}/token-state")
    async def token_state(user_id: str, request: Request) -> dict:
        assert request.client is not None
        ports.append(request.client.port)
        return {"data": {"validAfter": None}}

    async with served(auth) as url, lookup_client(5.0) as http:
        lookup = auth_lookup(http, url)
        assert await lookup("u1") is None
        assert await lookup("u1") is None
        await asyncio.sleep(CLIENT_KEEP_ALIVE_SECONDS + 0.5)  # still open at auth's end
        assert await lookup("u1") is None
    assert ports[0] == ports[1], "a connection in use is kept"
    assert ports[2] != ports[1], "an idle one is given up before auth would close it"


class FlakyAuth:
    """A server on a free port that drops the first ``drops`` connections after reading
    their request, without a word (as a restarting auth would), and answers the rest."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if self.connections > self.drops:
            body = b'{"data": {"validAfter": 1700000000.5}}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_a_connection_that_breaks_before_auth_answers_is_asked_again_once():
    flaky = FlakyAuth(drops=1)
    async with flaky as url, lookup_client(5.0) as http:
        assert await auth_lookup(http, url)("u1") == 1700000000.5
    assert flaky.connections == 2


async def test_auth_that_keeps_dropping_connections_is_a_503_after_the_second_try():
    flaky = FlakyAuth(drops=10)
    async with flaky as url, lookup_client(5.0) as http:
        with pytest.raises(ServiceUnavailable):
            await auth_lookup(http, url)("u1")
    assert flaky.connections == 2

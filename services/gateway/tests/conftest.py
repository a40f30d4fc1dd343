"""Fixtures for the gateway tests: fake upstream services on real sockets, and gateways.

Each fake service is an aiohttp app on a random 127.0.0.1 port. It records every request
it receives and answers according to the ``X-Fake`` request header (which the gateway
forwards like any other header): JSON by default (status from ``X-Fake-Status``), ``sse``
(three events; the second waits until the test sets ``release``), ``sse-forever`` (pings
until the connection is closed), ``slow`` (answers once ``release`` is set) or ``hop``
(hop-by-hop and CORS headers and two cookies in the response). The auth fake also serves
``/internal/users/{id}/token-state`` from ``token_states``.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.settings import Settings
from shared.testing.asgi import app_client
from shared.tokens import issue_access_token, token_state_key

CLIENT_URL = "http://app.example.com"
SERVICES = ("auth", "chat", "billing")


@dataclass
class Received:
    method: str
    raw_path: str  # path and query exactly as they arrived
    headers: CIMultiDictProxy[str]
    body: bytes


def openapi_doc(service: str, paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Gemini Backend: {service}", "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@dataclass
class FakeService:
    name: str
    url: str = ""
    received: list[Received] = field(default_factory=list)
    ready_status: int = 200
    openapi: dict[str, Any] | None = None
    openapi_fetches: int = 0
    # auth only: user id -> validAfter; a user that is not here does not exist.
    token_states: dict[str, float | None] = field(default_factory=dict)
    token_state_calls: list[str] = field(default_factory=list)
    # Runs inside the token-state handler before it answers (to stage races).
    on_token_state: Callable[[str], Awaitable[None]] | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # Canned answers by request path: (status, JSON body).
    canned: dict[str, tuple[int, Any]] = field(default_factory=dict)
    stream_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/readyz":
            return web.json_response({"status": "success"}, status=self.ready_status)
        if path == "/openapi.json":
            self.openapi_fetches += 1
            if self.openapi is None:
                return web.json_response({"status": "error"}, status=500)
            return web.json_response(self.openapi)
        if path.startswith("/internal/users/") and path.endswith("/token-state"):
            return await self.token_state(request.match_info["tail"].split("/")[2])
        self.received.append(
            Received(request.method, request.raw_path, request.headers, await request.read())
        )
        if path in self.canned:
            status, body = self.canned[path]
            return web.json_response(body, status=status)
        behaviour = request.headers.get("X-Fake", "json")
        if behaviour == "sse":
            return await self.sse(request)
        if behaviour == "sse-forever":
            return await self.sse_forever(request)
        if behaviour == "slow":
            await self.release.wait()
        headers = {"X-Request-ID": "set-by-the-upstream"}
        if behaviour == "hop":
            headers |= {
                "Keep-Alive": "timeout=5",
                "Proxy-Authenticate": "Basic",
                "Connection": "X-Upstream-Hop",
                "X-Upstream-Hop": "1",
                "Access-Control-Allow-Origin": "*",
                "X-Kept": "yes",
            }
        response = web.json_response(
            {"status": "success", "data": {"service": self.name, "path": request.raw_path}},
            status=int(
                request.headers.get("X-Fake-Status", 201 if request.method == "POST" else 200)
            ),
            headers=headers,
        )
        if behaviour == "hop":
            response.set_cookie("a", "1")
            response.set_cookie("b", "2")
        return response

    async def token_state(self, user_id: str) -> web.Response:
        self.token_state_calls.append(user_id)
        if self.on_token_state is not None:
            await self.on_token_state(user_id)
        if user_id not in self.token_states:
            return web.json_response({"status": "fail", "code": "not_found"}, status=404)
        data = {"validAfter": self.token_states[user_id]}
        return web.json_response({"status": "success", "data": data})

    async def _start_sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(b"id: 1\ndata: one\n\n")
        return response

    async def sse(self, request: web.Request) -> web.StreamResponse:
        response = await self._start_sse(request)
        await self.release.wait()
        await response.write(b"id: 2\ndata: two\n\n")
        await asyncio.sleep(0.02)
        await response.write(b"id: 3\ndata: three\n\n")
        await response.write_eof()
        return response

    async def sse_forever(self, request: web.Request) -> web.StreamResponse:
        response = await self._start_sse(request)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                await response.write(b": ping\n\n")
                await asyncio.sleep(0.02)
        except (ConnectionError, asyncio.CancelledError):
            self.stream_closed.set()
            raise
        return response


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def client_url() -> str:
    return CLIENT_URL


@pytest.fixture
async def services() -> AsyncIterator[dict[str, FakeService]]:
    fakes = {name: FakeService(name) for name in SERVICES}
    servers = []
    try:
        for fake in fakes.values():
            server = TestServer(fake.app(), host="127.0.0.1")
            await server.start_server(shutdown_timeout=1)
            servers.append(server)
            fake.url = str(server.make_url("")).rstrip("/")
        yield fakes
    finally:
        for fake in fakes.values():
            fake.release.set()
        for server in servers:
            await server.close()


@pytest.fixture
def make_settings(
    services: dict[str, FakeService], redis_url: str, jwt_secret: str
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "test",
            "jwt_secret": jwt_secret,
            "redis_url": redis_url,
            "client_url": CLIENT_URL,
            **{f"{name}_url": fake.url for name, fake in services.items()},
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def gateway_factory(make_settings: Callable[..., Settings]) -> GatewayFactory:
    """``async with gateway_factory(**settings) as client``: an in-process gateway."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with app_client(create_app(make_settings(**overrides))) as client:
            yield client

    return start


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_factory() as client:
        yield client


LiveGatewayFactory = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def live_gateway_factory(make_settings: Callable[..., Settings]) -> LiveGatewayFactory:
    """``async with live_gateway_factory(**settings) as url``: the gateway under uvicorn on a
    real socket (httpx's ASGI transport does not stream)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[str]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            create_app(make_settings(**overrides)),
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 5
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await task
            sock.close()

    return start


@pytest.fixture
async def live_gateway(live_gateway_factory: LiveGatewayFactory) -> AsyncIterator[str]:
    """A live gateway whose non-streaming upstream timeout is 0.2 s, to show that streams
    outlive it."""
    async with live_gateway_factory(upstream_timeout_seconds=0.2) as url:
        yield url


@dataclass
class User:
    id: str
    token: str
    issued_at: float

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def new_user(
    services: dict[str, FakeService], jwt_secret: str, redis: Redis
) -> AsyncIterator[Callable[..., User]]:
    """``new_user(valid_after=None)``: a user auth knows, with a fresh token."""
    created: list[str] = []

    def make(valid_after: float | None = None, *, exists: bool = True) -> User:
        user_id = str(uuid.uuid4())
        created.append(user_id)
        if exists:
            services["auth"].token_states[user_id] = valid_after
        token = issue_access_token(jwt_secret, user_id, ttl_seconds=3600)
        return User(user_id, token.token, token.issued_at)

    yield make
    if created:
        await redis.delete(*(token_state_key(user_id) for user_id in created))

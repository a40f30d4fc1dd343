"""Fixtures: the Gemini simulator on a real 127.0.0.1 port, worker settings and context.

The simulator runs in a thread with its own event loop (one per session); the worker
under test uses the real google-genai SDK against it and real Redis. Every stream a test
writes has a unique name and is deleted afterwards (Redis db is shared; never FLUSHDB).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ai_worker.generation import ReplyGenerator, create_client, http_session
from ai_worker.service import WorkerContext
from ai_worker.settings import Settings
from dev.gemini_sim import SimConfig, create_app
from shared.events import Envelope, HistoryTurn, MessageQueued, encode

SIM_CONFIG = SimConfig(token_delay_ms=1, reply_tokens=12, hang_seconds=5)


class InFlight:
    """ASGI wrapper counting generation requests being served at once (the peak too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.now = 0
        self.peak = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "/models/" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


class Simulator:
    def __init__(self, url: str, inflight: InFlight) -> None:
        self.url = url
        self.inflight = inflight
        self.http = httpx.AsyncClient(base_url=url, timeout=5)

    async def reset(self) -> None:
        (await self.http.post("/_sim/reset")).raise_for_status()
        self.inflight.peak = 0

    async def configure(self, **values: Any) -> None:
        (await self.http.post("/_sim/config", json=values)).raise_for_status()

    async def fault(self, fault: str | None, count: int | None = None) -> None:
        response = await self.http.post("/_sim/faults", json={"fault": fault, "count": count})
        response.raise_for_status()

    async def requests(self) -> list[dict[str, Any]]:
        """Generation requests received since the last reset, oldest first."""
        response = await self.http.get("/_sim/requests")
        response.raise_for_status()
        return response.json()["requests"]


@pytest.fixture(scope="session")
def sim_server() -> Iterator[tuple[str, InFlight]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    inflight = InFlight(create_app(SIM_CONFIG))
    server = uvicorn.Server(
        uvicorn.Config(inflight, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the Gemini simulator did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", inflight
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
async def sim(sim_server: tuple[str, InFlight]) -> AsyncIterator[Simulator]:
    simulator = Simulator(*sim_server)
    await simulator.reset()
    try:
        yield simulator
    finally:
        await simulator.http.aclose()


@pytest.fixture
async def cleanup(redis) -> AsyncIterator[list[str]]:
    """Keys to delete after the test: append every stream the test makes."""
    keys: list[str] = []
    yield keys
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def make_settings(redis_url: str, sim: Simulator) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "test",
            "redis_url": redis_url,
            "gemini_base_url": sim.url,
            "gemini_request_timeout_seconds": 10,
            "gemini_chunk_timeout_seconds": 5,
            "retry_max_attempts": 4,
            "retry_budget_seconds": 10,
            "retry_initial_delay_seconds": 0.01,
            "retry_max_delay_seconds": 0.05,
            "claim_idle_seconds": 5,
            "reply_stream_ttl_seconds": 600,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
async def make_ctx(redis, cleanup: list[str]) -> AsyncIterator[Callable[[Settings], WorkerContext]]:
    """A worker context on a result stream of its own."""
    clients = []
    sessions = []

    def make(settings: Settings) -> WorkerContext:
        session = http_session()
        client = create_client(settings, session)
        clients.append(client)
        sessions.append(session)
        result_stream = f"test-ai-{uuid.uuid4().hex[:12]}.events"
        cleanup.append(result_stream)
        return WorkerContext(
            settings=settings,
            redis=redis,
            generator=ReplyGenerator(client, redis, settings),
            result_stream=result_stream,
        )

    yield make
    for client in clients:
        await client.aio.aclose()
    for session in sessions:
        await session.close()


@pytest.fixture
async def ctx(make_ctx, make_settings) -> WorkerContext:
    return make_ctx(make_settings())


@pytest.fixture
def queued(cleanup: list[str]) -> Callable[..., tuple[MessageQueued, Envelope]]:
    """A MessageQueued (and its envelope) whose reply stream is cleaned up."""

    def make(
        prompt: str, history: list[tuple[str, str]] | None = None, model: str | None = None
    ) -> tuple[MessageQueued, Envelope]:
        event = MessageQueued(
            reply_id=uuid.uuid4(),
            message_id=uuid.uuid4(),
            chatroom_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            prompt=f"{prompt} ({uuid.uuid4().hex[:8]})",  # unique: sim markers count per prompt
            history=[HistoryTurn(role=r, text=t) for r, t in history or []],
            model=model,
        )
        cleanup.extend([f"ai.reply.{event.reply_id}", f"ai-worker.lease.{event.reply_id}"])
        return event, encode(event, producer="chat", correlation_id=f"req-{uuid.uuid4().hex[:8]}")

    return make

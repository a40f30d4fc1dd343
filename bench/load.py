"""Steps 1 and 2: a closed-loop asyncio driver (aiohttp), the gateway's cost on a cached
read against a bare uvicorn app, and the sustained rate of accepted prompts.

The driver runs in this process, on the same 2 cores as everything it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import httpx

from bench.pipeline import login
from bench.stackrun import percentiles
from dev.proc import free_port, spawn, stop_all
from dev.stack import REPO_ROOT, Stack

MAX_REQUESTS = 500_000  # a bound on any one run, whatever its duration


@dataclass
class Run:
    label: str
    requests: int = 0
    elapsed: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def pct(self) -> dict[str, float]:
        return percentiles(self.latencies_ms or [0.0])


def _connector(concurrency: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=concurrency, force_close=False)


async def closed_loop(
    label: str,
    url: str,
    headers: dict[str, str],
    concurrency: int,
    duration: float,
    warmup: float,
) -> Run:
    """``concurrency`` connections each sending GET ``url`` back to back: ``warmup`` s
    unrecorded, then ``duration`` s recorded (and at most MAX_REQUESTS requests)."""
    run = Run(label)
    async with aiohttp.ClientSession(connector=_connector(concurrency), trust_env=False) as s:

        async def loop(until: float, record: bool) -> None:
            while time.perf_counter() < until and run.requests < MAX_REQUESTS:
                started = time.perf_counter()
                try:
                    async with s.get(url, headers=headers) as response:
                        body = await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError as exc:
                    ok, body = False, repr(exc).encode()
                if not record:
                    continue
                run.requests += 1
                run.latencies_ms.append((time.perf_counter() - started) * 1000)
                if not ok:
                    run.errors.append(body[:200].decode(errors="replace"))

        await asyncio.gather(
            *(loop(time.perf_counter() + warmup, False) for _ in range(concurrency))
        )
        started = time.perf_counter()
        await asyncio.gather(*(loop(started + duration, True) for _ in range(concurrency)))
        run.elapsed = time.perf_counter() - started
    return run


@contextlib.contextmanager
def hello_server() -> Iterator[tuple[str, int]]:
    """bench/hello.py under ``python -m uvicorn`` with the services' server options
    (uvloop and httptools, no access log, no Server header, proxy headers)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.hello:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--no-access-log", "--no-server-header", "--proxy-headers"]
    argv += ["--log-level", "warning", "--timeout-graceful-shutdown", "10"]
    proc = spawn(argv, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/hello", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the hello-world app did not start")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        stop_all([(proc, signal.SIGTERM)], 10)


async def _retrying(call, attempts: int = 3):
    """Set-up only (not measured): retry a request that lost its connection. Under load a
    pooled keep-alive connection is now and then closed by the server as it is reused."""
    for attempt in range(attempts):
        try:
            return await call()
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def _new_user(api: httpx.AsyncClient, rooms: int) -> tuple[dict[str, str], list[str]]:
    headers = await _retrying(lambda: login(api))
    ids = []
    for i in range(rooms):
        r = await _retrying(
            lambda i=i: api.post("/api/v1/chatroom", json={"name": f"bench {i}"}, headers=headers)
        )
        r.raise_for_status()
        ids.append(r.json()["data"]["chatroom"]["id"])
    return headers, ids


async def gateway_cost(
    stack: Stack, hello_url: str, concurrency: int, duration: float, warmup: float
) -> list[Run]:
    """Step 1: GET /api/v1/chatroom (first page, cached in Redis) through the gateway and
    straight to chat, and GET /hello on the bare app."""
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30) as api:
        headers, _ = await _new_user(api, 3)
        (await api.get("/api/v1/chatroom", headers=headers)).raise_for_status()
    targets = [
        ("bare uvicorn app, GET /hello", hello_url + "/hello", {}),
        ("chat directly, GET /api/v1/chatroom", stack.url("chat") + "/api/v1/chatroom", headers),
        (
            "gateway → chat, GET /api/v1/chatroom",
            stack.url("gateway") + "/api/v1/chatroom",
            headers,
        ),
    ]
    return [
        await closed_loop(label, url, h, concurrency, duration, warmup) for label, url, h in targets
    ]


async def prepare_senders(stack: Stack, users: int, rooms_per_user: int) -> list:
    """Step 2's users, each with its own chatrooms (one prompt per room: a room with a
    reply still pending refuses another prompt with 409)."""
    limits = httpx.Limits(max_connections=users)
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=60, limits=limits) as api:
        return await asyncio.gather(*(_new_user(api, rooms_per_user) for _ in range(users)))


async def post_acceptance(stack: Stack, senders: list, max_seconds: float) -> Run:
    """Step 2: every user POSTs one prompt into each of its rooms, back to back; the run
    ends when every room has had its prompt or after ``max_seconds``."""
    run = Run("POST /api/v1/chatroom/{id}/message")
    base = stack.url("gateway")
    async with aiohttp.ClientSession(connector=_connector(len(senders)), trust_env=False) as s:

        async def user(headers: dict[str, str], rooms: list[str], until: float) -> None:
            for i, room in enumerate(rooms):
                if time.perf_counter() > until:
                    return
                started = time.perf_counter()
                url = f"{base}/api/v1/chatroom/{room}/message"
                try:
                    async with s.post(url, json={"content": f"p{i}"}, headers=headers) as r:
                        body = await r.read()
                        ok = r.status == 201
                        status = r.status
                except aiohttp.ClientError as exc:
                    ok, body, status = False, repr(exc).encode(), 0
                run.requests += 1
                run.latencies_ms.append((time.perf_counter() - started) * 1000)
                if not ok:
                    run.errors.append(f"{status} {body[:200].decode(errors='replace')}")

        started = time.perf_counter()
        await asyncio.gather(*(user(h, rooms, started + max_seconds) for h, rooms in senders))
        run.elapsed = time.perf_counter() - started
    return run

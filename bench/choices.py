"""`python -m bench.choices`: the server and library choices of issue 11, each measured both
ways in one run, alternating (A B A B A B) so that the machine's drift hits both alike.
Writes docs/bench-choices.md (linked from BENCHMARKS.md).

1. uvicorn or granian for a service: chat's cached `GET /api/v1/chatroom` with wrk, chat
   under `python -m chat serve` (uvicorn, as deployed) and under granian (if installed:
   `pip install granian`; it is not a dependency).
2. google-genai's typed models or the REST JSON for a reply: time to the first chunk and
   for the rest of a 30-chunk reply with a 20-turn history, against the simulator at zero
   latency, both through the SDK's own aiohttp transport.
3. the reply stream's time to live restarted with every token (XADD + EXPIRE, one round
   trip) or every quarter of it (XADD alone): appends per second, 64 at a time.
4. gc.freeze after start-up (shared.http) or not: the same GET as 1, chat under uvicorn.
5. redis-py's BlockingConnectionPool or shared.redis.WaitingPool: commands per second and
   the client's CPU per command, 256 tasks sending XADDs at once (the ai-worker's load).
6. the chatroom list cache holding the response body (as deployed) or the rooms' rows: the
   CPU a cached read costs chat beyond the Redis GET both make, for a page of 3 and of 20
   rooms (in-process, no stack).
7. google-genai's transport, aiohttp (the worker's own session) or httpx (the SDK's
   default without aiohttp): CPU and time a 10-chunk reply costs the worker, against the
   simulator at zero latency.
8. Redis replies read by hiredis (as installed) or by redis-py's own Python parser: the time
   to parse an XADD's reply, a cached page (700 bytes) and a 10-entry stream read.
9. the JSON log line rendered by orjson (as configured) or the standard library's json:
   microseconds per access-log line (in-process).

    python -m bench.choices              # every section, rewrites docs/bench-choices.md
    python -m bench.choices parser json  # only these; their sections replaced in place
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from bench import wrk
from bench.pipeline import login
from bench.report import machine
from bench.stackrun import bench_stack
from dev.proc import free_port, spawn, stop_all
from dev.stack import REPO_ROOT

ROUNDS = 3


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _row(name: str, series: Sequence[Sequence[float]], formats: Sequence[str]) -> str:
    """A table row: each series' value in every round, then each series' median, each
    series in its own format."""
    rounds = [
        " / ".join(format(v, f) for v in values) for values, f in zip(series, formats, strict=True)
    ]
    medians = [
        format(statistics.median(values), f) for values, f in zip(series, formats, strict=True)
    ]
    return "| " + " | ".join([name, *rounds, *medians]) + " |"


def _serve(argv: list[str], env: dict[str, str], port: int):
    proc = spawn(argv, env=env, cwd=REPO_ROOT)
    try:
        _wait_up(f"http://127.0.0.1:{port}")
    except RuntimeError:
        stop_all([(proc, signal.SIGTERM)], 10)
        raise
    return proc


def servers() -> tuple[list[str], list[str]]:
    """chat as deployed, chat without gc.freeze (uvicorn) and chat under granian, if
    installed: the same GET, alternating."""
    granian = shutil.which("granian", path=str(Path(sys.executable).parent))
    with bench_stack(["auth", "chat"], {"LOG_LEVEL": "INFO"}) as stack:

        async def reader() -> dict[str, str]:
            async with httpx.AsyncClient(base_url=stack.url("auth"), timeout=30) as api:
                headers = await login(api)
            async with httpx.AsyncClient(base_url=stack.url("chat"), timeout=30) as api:
                for i in range(3):
                    r = await api.post("/api/v1/chatroom", json={"name": f"b{i}"}, headers=headers)
                    r.raise_for_status()
            return headers

        headers = asyncio.run(reader())
        spec = next(s for s in stack.specs if s.name == "chat")
        urls = {"uvicorn, as deployed": stack.url("chat")}
        procs = []
        try:
            port = free_port()
            argv = [sys.executable, "-m", "uvicorn", "--factory", "bench.variants:chat_unfrozen"]
            argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
            argv += ["--proxy-headers", "--no-server-header", "--log-level", "warning"]
            env = {**stack._child_env(spec), "PORT": str(port)}
            procs.append(_serve(argv, env, port))
            urls["uvicorn, without gc.freeze"] = f"http://127.0.0.1:{port}"
            if granian:
                port = free_port()
                argv = [granian, "--interface", "asgi", "--factory", "--loop", "uvloop"]
                argv += ["--no-ws", "--host", "127.0.0.1", "--port", str(port)]
                argv += ["--workers", "1", "--log-level", "warning", "bench.variants:chat"]
                env = {**stack._child_env(spec), "PORT": str(port)}
                procs.append(_serve(argv, env, port))
                urls["granian"] = f"http://127.0.0.1:{port}"
            results: dict[str, list[wrk.WrkRun]] = {name: [] for name in urls}
            for _ in range(ROUNDS):
                for name, base in urls.items():
                    results[name].append(wrk.run(name, base + "/api/v1/chatroom", headers=headers))
        finally:
            stop_all([(p, signal.SIGTERM) for p in procs], 10)

    def table(names: list[str]) -> list[str]:
        lines = [
            "| chat served by | req/s, each round | p99 ms, each round | median req/s"
            " | median p99 ms |",
            "|---|---|---|---:|---:|",
        ]
        for name in names:
            runs = results[name]
            rates, p99s = [r.rate for r in runs], [r.latency_ms.get("p99", 0) for r in runs]
            lines.append(_row(name, [rates, p99s], [",.0f", ".1f"]))
        return lines

    server = table(["uvicorn, as deployed", *(["granian"] if granian else [])])
    if not granian:
        server.append("| granian | not installed (`pip install granian`): not measured | | | |")
    return server, table(["uvicorn, as deployed", "uvicorn, without gc.freeze"])


async def _gemini(url: str) -> list[str]:
    from google.genai import types

    from ai_worker.generation import ReplyGenerator, build_contents, create_client, http_session
    from ai_worker.settings import Settings
    from shared.events import HistoryTurn

    os.environ.update(GEMINI_BASE_URL=url, GOOGLE_GEMINI_API_KEY="sim-key", APP_ENV="test")
    settings = Settings(_env_file=None)
    session = http_session()
    client = create_client(settings, session)
    generator = ReplyGenerator(client, None, settings)
    history = [
        HistoryTurn(role="user" if i % 2 == 0 else "model", text=f"turn {i} " * 30)
        for i in range(20)
    ]
    config = types.GenerateContentConfig(
        max_output_tokens=settings.gemini_max_output_tokens,
        system_instruction=settings.system_instruction,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )

    async def typed(i: int) -> tuple[float, float]:
        contents = [types.Content(role=t.role, parts=[types.Part(text=t.text)]) for t in history]
        contents.append(types.Content(role="user", parts=[types.Part(text=f"p{i}")]))
        started = time.perf_counter()
        stream = await client.aio.models.generate_content_stream(
            model=settings.gemini_model, contents=contents, config=config
        )
        await anext(stream)
        first = time.perf_counter()
        async for _ in stream:
            pass
        return first - started, time.perf_counter() - first

    async def wire(i: int) -> tuple[float, float]:
        started = time.perf_counter()
        stream = generator._chunks(settings.gemini_model, build_contents(f"p{i}", history))
        await anext(stream)
        first = time.perf_counter()
        async for _ in stream:
            pass
        return first - started, time.perf_counter() - first

    results: dict[str, list[tuple[float, float]]] = {"typed": [], "wire": []}
    for i in range(10):  # warm-up
        await typed(i), await wire(i)
    for i in range(ROUNDS * 20):
        results["typed"].append(await typed(i))
        results["wire"].append(await wire(i))
    await client.aio.aclose()
    await session.close()
    label = {
        "typed": "typed (`client.aio.models.generate_content_stream`)",
        "wire": "REST JSON through the SDK's API client (the worker's way)",
    }
    lines = [
        "| reply read as | first chunk p50 ms | the other 29 chunks p50 ms |",
        "|---|---:|---:|",
    ]
    for name, values in results.items():
        first = statistics.median(v[0] for v in values) * 1000
        rest = statistics.median(v[1] for v in values) * 1000
        lines.append(f"| {label[name]} | {first:.1f} | {rest:.1f} |")
    return lines


def gemini() -> list[str]:
    env = {"GEMINI_SIM_TOKEN_DELAY_MS": "0", "GEMINI_SIM_REPLY_TOKENS": "30"}
    with bench_stack(["gemini-sim"], env) as stack:
        return asyncio.run(_gemini(stack.url("gemini-sim")))


async def _appends(url: str) -> list[str]:
    from shared import replies
    from shared.redis import open_redis

    redis = open_redis(url)
    results: dict[str, list[float]] = {"every token": [], "every quarter of the TTL": []}

    async def run(refresh: bool, count: int = 4000) -> float:
        ids = [f"bench-{os.getpid()}-{refresh}-{i}" for i in range(64)]
        started = time.perf_counter()

        async def writer(reply_id: str) -> None:
            for n in range(count // 64):
                pipe = redis.pipeline(transaction=False)
                replies.queue_token(pipe, reply_id, "tok ", ttl=600, refresh_ttl=refresh or n == 0)
                await pipe.execute()

        await asyncio.gather(*(writer(i) for i in ids))
        elapsed = time.perf_counter() - started
        await redis.delete(*(replies.reply_stream(i) for i in ids))
        return count / elapsed

    await run(True), await run(False)
    for _ in range(ROUNDS):
        results["every token"].append(await run(True))
        results["every quarter of the TTL"].append(await run(False))
    await redis.aclose()
    lines = ["| TTL restarted | appends/s, each round | median |", "|---|---|---:|"]
    for name, rates in results.items():
        lines.append(_row(name, [rates], [",.0f"]))
    return lines


def appends() -> list[str]:
    with bench_stack([], {}) as stack:
        return asyncio.run(_appends(stack.env["REDIS_URL"]))


async def _pools(url: str) -> list[str]:
    from redis.asyncio import BlockingConnectionPool, Redis

    from shared.redis import MAX_CONNECTIONS, WaitingPool

    options = {"max_connections": MAX_CONNECTIONS, "timeout": 10, "decode_responses": True}
    pools = {
        "redis-py's BlockingConnectionPool": BlockingConnectionPool,
        "WaitingPool (shared/redis.py)": WaitingPool,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in pools}

    async def run(pool_class: type, tasks: int = 256, each: int = 100) -> tuple[float, float]:
        redis = Redis.from_pool(pool_class.from_url(url, **options))
        keys = [f"bench-pool-{os.getpid()}-{i}" for i in range(tasks)]

        async def writer(key: str) -> None:
            for _ in range(each):
                await redis.xadd(key, {"type": "token", "text": "tok "}, maxlen=1000)

        await writer(keys[0])  # connect, load the scripts of the first command
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer(k) for k in keys))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await redis.delete(*keys)
        await redis.aclose()
        return tasks * each / wall, cpu / (tasks * each) * 1e6

    for _ in range(ROUNDS):
        for name, pool_class in pools.items():
            results[name].append(await run(pool_class))
    lines = [
        "| pool | commands/s, each round | client CPU µs a command, each round"
        " | median commands/s | median µs |",
        "|---|---|---|---:|---:|",
    ]
    for name, runs in results.items():
        lines.append(_row(name, list(zip(*runs, strict=True)), [",.0f", ".0f"]))
    return lines


def pools() -> list[str]:
    with bench_stack([], {}) as stack:
        return asyncio.run(_pools(stack.env["REDIS_URL"]))


def list_cache() -> list[str]:
    import uuid
    from datetime import UTC, datetime, timedelta

    import orjson

    from chat.api import room_out
    from chat.repository import Chatroom
    from chat.schemas import ChatroomListData, ChatroomListOut

    def render(rooms: list[Chatroom]) -> str:  # the API's rendering, as on a miss
        return ChatroomListOut(
            results=len(rooms),
            data=ChatroomListData(chatrooms=[room_out(r) for r in rooms], next_cursor=None),
        ).model_dump_json(by_alias=True)

    def rows_of(rooms: list[Chatroom]) -> bytes:  # the most compact row encoding we found
        return orjson.dumps(
            [
                [str(r.id), str(r.user_id), r.name, r.auto_title, r.created_at, r.updated_at]
                for r in rooms
            ]
        )

    def from_rows(cached: bytes) -> list[Chatroom]:
        return [
            Chatroom(
                uuid.UUID(i),
                uuid.UUID(u),
                n,
                t,
                datetime.fromisoformat(c),
                datetime.fromisoformat(m),
            )
            for i, u, n, t, c, m in orjson.loads(cached)
        ]

    lines = [
        "| the cache holds | µs a cached read, 3 rooms, each round"
        " | µs, 20 rooms, each round | median, 3 | median, 20 |",
        "|---|---|---|---:|---:|",
    ]
    results: dict[str, dict[int, list[float]]] = {
        "the response body (as deployed)": {3: [], 20: []},
        "the rows, rendered on each read": {3: [], 20: []},
    }
    user, now = uuid.uuid4(), datetime.now(UTC)
    for _ in range(ROUNDS):
        for size in (3, 20):
            rooms = [
                Chatroom(uuid.uuid4(), user, f"Room {i}", False, now - timedelta(minutes=i), now)
                for i in range(size)
            ]
            body, rows = render(rooms), rows_of(rooms)
            reads = {
                "the response body (as deployed)": lambda body=body: body,
                "the rows, rendered on each read": lambda rows=rows: render(from_rows(rows)),
            }
            for name, read in reads.items():
                count = 20_000
                start = time.process_time()
                for _ in range(count):
                    read()
                results[name][size].append((time.process_time() - start) / count * 1e6)
    for name, by_size in results.items():
        lines.append(_row(name, [by_size[3], by_size[20]], [".1f", ".1f"]))
    return lines


async def _transports(url: str) -> list[str]:
    import httpx as httpx_lib
    from google import genai

    from ai_worker.generation import (
        ReplyGenerator,
        build_contents,
        create_client,
        http_options,
        http_session,
    )
    from ai_worker.settings import Settings

    os.environ.update(GEMINI_BASE_URL=url, GOOGLE_GEMINI_API_KEY="sim-key", APP_ENV="test")
    settings = Settings(_env_file=None)
    session = http_session()
    httpx_client = httpx_lib.AsyncClient(timeout=30)
    clients = {
        "aiohttp, the worker's own session (as deployed)": create_client(settings, session),
        "httpx": genai.Client(
            api_key=settings.google_gemini_api_key,
            http_options=http_options(settings, httpx_async_client=httpx_client),
        ),
    }
    generators = {name: ReplyGenerator(c, None, settings) for name, c in clients.items()}

    async def replies(generator: ReplyGenerator, count: int) -> tuple[float, float]:
        """(client CPU, wall) per reply, in ms: ``count`` replies, 8 at a time."""

        async def one(i: int) -> None:
            async for _ in generator._chunks(settings.gemini_model, build_contents(f"p{i}", [])):
                pass

        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, count, 8):
            await asyncio.gather(*(one(i) for i in range(start, start + 8)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return cpu / count * 1000, wall / count * 1000

    for generator in generators.values():  # warm-up: connections, the SDK's first call
        await replies(generator, 16)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in generators}
    for _ in range(ROUNDS):
        for name, generator in generators.items():
            results[name].append(await replies(generator, 400))
    for c in clients.values():
        await c.aio.aclose()
    await session.close()
    await httpx_client.aclose()
    lines = [
        "| transport | client CPU ms a reply, each round | wall ms a reply (8 at a time),"
        " each round | median CPU ms | median wall ms |",
        "|---|---|---|---:|---:|",
    ]
    for name, runs in results.items():
        lines.append(_row(name, list(zip(*runs, strict=True)), [".2f", ".2f"]))
    return lines


def transports() -> list[str]:
    env = {"GEMINI_SIM_TOKEN_DELAY_MS": "0", "GEMINI_SIM_REPLY_TOKENS": "10"}
    with bench_stack(["gemini-sim"], env) as stack:
        return asyncio.run(_transports(stack.url("gemini-sim")))


async def _parsers() -> list[str]:
    from redis._parsers import Encoder, _AsyncRESP2Parser
    from redis.asyncio.connection import DefaultParser

    parsers = {
        f"hiredis (as installed: {DefaultParser.__name__})": DefaultParser,
        "redis-py's Python parser": _AsyncRESP2Parser,
    }

    def bulk(text: str) -> bytes:
        return b"$%d\r\n%s\r\n" % (len(text), text.encode())

    def entries(count: int) -> bytes:  # XREADGROUP: one stream, ``count`` token entries
        entry = b"*2\r\n" + bulk("1795994475765-0") + b"*4\r\n" + bulk("type") + bulk("token")
        entry += bulk("text") + bulk("tok ")
        return b"*1\r\n*2\r\n" + bulk("ai.r.x") + b"*%d\r\n" % count + entry * count

    replies = {
        "XADD's entry id": bulk("1795994475765-0"),
        "a cached page (GET, 700 bytes)": bulk('{"status":"success"' + "x" * 681),
        "XREADGROUP, 10 entries": entries(10),
    }

    class Connection:  # what a parser takes from its connection
        def __init__(self) -> None:
            self._reader = asyncio.StreamReader()
            self.encoder = Encoder("utf-8", "strict", True)

    async def run(parser_class: type, reply: bytes, count: int = 20_000) -> float:
        connection = Connection()
        parser = parser_class(socket_read_size=65536)
        parser.on_connect(connection)
        start = time.process_time()
        for _ in range(count):
            connection._reader.feed_data(reply)
            await parser.read_response()
        return (time.process_time() - start) / count * 1e6

    results = {name: {kind: [] for kind in replies} for name in parsers}
    for _ in range(ROUNDS):
        for name, parser_class in parsers.items():
            for kind, reply in replies.items():
                results[name][kind].append(await run(parser_class, reply))
    kinds = list(replies)
    lines = [
        "| replies read by | "
        + " | ".join(f"µs to read {k}, each round" for k in kinds)
        + " | "
        + " | ".join(f"median, {k}" for k in kinds)
        + " |",
        "|---|" + "---|" * len(kinds) + "---:|" * len(kinds),
    ]
    for name, by_kind in results.items():
        lines.append(_row(name, [by_kind[k] for k in kinds], [".2f"] * len(kinds)))
    return lines


def parsers() -> list[str]:
    return asyncio.run(_parsers())


def json_renderers() -> list[str]:
    import orjson
    import structlog

    event = {
        "method": "GET",
        "path": "/api/v1/chatroom",
        "status": 200,
        "duration_ms": 1.23,
        "event": "http.request",
        "service": "chat",
        "level": "info",
        "logger": "shared.http",
        "timestamp": "2026-11-30T00:00:00.000000Z",
        "request_id": "5f0c6d2e8f7b4a0c9d3e1f2a3b4c5d6e",
    }
    renderers = {
        "orjson (as configured: shared/logging.py)": structlog.processors.JSONRenderer(
            serializer=orjson.dumps
        ),
        "the standard library's json": structlog.processors.JSONRenderer(),
    }
    results: dict[str, list[float]] = {name: [] for name in renderers}
    for _ in range(ROUNDS):
        for name, render in renderers.items():
            count = 50_000
            start = time.process_time()
            for _ in range(count):
                render(None, "info", dict(event))
            results[name].append((time.process_time() - start) / count * 1e6)
    lines = ["| the line rendered by | µs a line, each round | median µs |", "|---|---|---:|"]
    for name, values in results.items():
        lines.append(_row(name, [values], [".2f"]))
    return lines


def main() -> None:
    wanted = sys.argv[1:]
    unknown = [name for name in wanted if name not in ALONE]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {sorted(ALONE)}")
    if wanted:
        measure_alone(wanted)
        return
    m = machine()
    sections = []
    print("1. uvicorn or granian, and gc.freeze...", flush=True)
    server, freeze = servers()
    sections.append(("1. uvicorn or granian for a service", server, SERVERS_NOTE))
    print("2. google-genai's typed models or the REST JSON...", flush=True)
    sections.append(
        ("2. Reading a reply: google-genai's types or the REST JSON", gemini(), GEMINI_NOTE)
    )
    print("3. the reply stream's time to live...", flush=True)
    sections.append(
        (
            "3. Token appends: the stream's TTL restarted every token or every quarter",
            appends(),
            APPENDS_NOTE,
        )
    )
    sections.append(("4. gc.freeze after start-up, or not", freeze, FREEZE_NOTE))
    print("5. the Redis connection pool...", flush=True)
    sections.append(("5. The Redis connection pool", pools(), POOLS_NOTE))
    print("6. the chatroom list cache: the body or the rows...", flush=True)
    sections.append(
        ("6. The chatroom list cache: the response body or the rows", list_cache(), CACHE_NOTE)
    )
    for name in ("transport", "parser", "json"):
        title, measure, note = ALONE[name]
        print(f"{title}...", flush=True)
        sections.append((title, measure(), note))
    text = f"""# Choices, measured both ways

Written by `python -m bench.choices` ({m["date"]}, {m["cpu"]}, Python {m["python"]}): each
choice measured both ways in one run, alternating, {ROUNDS} rounds. Linked from
[BENCHMARKS.md](../BENCHMARKS.md); `make bench` does not rerun it.
"""
    for title, lines, note in sections:
        text += f"\n## {title}\n\n" + "\n".join(lines) + f"\n\n{note}\n"
    out = REPO_ROOT / "docs" / "bench-choices.md"
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out}")


SERVERS_NOTE = (
    "`wrk -t1 -c16 -d8s --latency` against chat itself (its cached `GET /api/v1/chatroom`), "
    "access log on. Kept: **uvicorn** (uvloop, httptools). granian's edge in requests/s is "
    "within what the rounds vary by on this machine and its p99 is no better; uvicorn's "
    "proxy-header handling (the trusted X-Forwarded-For chain, `shared/cli.py`), graceful "
    "shutdown and lifespan are what every service relies on, and a switch would have to "
    "carry all of them for no clear gain."
)
FREEZE_NOTE = (
    "Kept: **gc.freeze** (`shared/http.py` `frozen_after_startup`). Without it every full "
    "collection walks the ~100,000 objects of the imports and start-up (25-60 ms here, "
    "measured with `gc.collect()` after importing each service), pausing every request in "
    "flight: the p99."
)
GEMINI_NOTE = (
    'Kept: **the REST JSON** (ai_worker/generation.py, "the request and its chunks"). The '
    "typed path validates and converts the whole history into pydantic models before the "
    "request and every chunk after it; the worker needs five fields of each chunk. The "
    "transport, the API key header, timeouts and the error classes stay the SDK's, and a "
    "unit test checks that the body is the one the SDK would send."
)
APPENDS_NOTE = (
    "64 replies appending at once to their own streams. Kept: **every quarter** of the "
    "time to live (`shared/replies.py` `queue_token(refresh_ttl=...)`); the end entry "
    "restarts it too, so a finished stream still lives REPLY_STREAM_TTL_SECONDS."
)

POOLS_NOTE = (
    "Kept: **WaitingPool** (`shared/redis.py`, every service's client). Both wait for a free "
    "connection when all are in use. redis-py's takes an asyncio.Condition and a lock on "
    "every get and release and probes each connection it hands out for unread data; ours "
    "does neither, because asyncio runs one task at a time and redis-py disconnects a "
    "connection whose command was interrupted (`shared/tests/test_redis_pool.py` checks "
    "that a cancelled BLPOP's late reply is never read by the next command)."
)

CACHE_NOTE = (
    "Both read the cache in one Redis round trip; the rows must then be decoded (ids, "
    "timestamps) and rendered by the API's schema, which a cached body skips. A cached "
    "read costs chat about 280 µs of CPU in all (section 1: ~3,500 req/s on one core): "
    "rendering the rows again adds a fifth to that for 3 rooms and more than doubles it "
    "for 20, which the cached-list rows of BENCHMARKS.md would lose. "
    "Kept: **the response body**, cached by the API layer (`chat/list_cache.py`); the "
    "use cases (`chat/rooms.py`) deal in rows and only say, after a commit, that a "
    "user's list changed."
)

TRANSPORT_NOTE = (
    "400 replies of 10 chunks each way, 8 at a time, through the worker's own request"
    " (`ReplyGenerator._chunks`: the REST JSON over the SDK's API client). Kept: **aiohttp**,"
    " the worker's own session (`ai_worker/generation.py` `http_session`): httpx costs the"
    " worker about three times the CPU a reply here. aiohttp is already"
    " the design's client for the gateway's forwarding, and the worker's session also skips"
    " the proxy and netrc look-ups the SDK's own makes on every request."
)
PARSER_NOTE = (
    "The parse alone, in-process: each reply fed to the parser as redis-py's connection"
    " feeds it, 20,000 times (no round trip, which costs far more than any parse). Kept:"
    " **hiredis** (a dependency of `shared`), which redis-py uses by itself when it is"
    " installed: about half the time for a short reply, and a small fraction of it for a"
    " stream read, whose nested arrays the Python parser reads element by element (the"
    " worker's and chat's consumers, and every SSE stream, read such replies)."
)
JSON_NOTE = (
    "The access-log line every request writes, with the fields it has, rendered by"
    " structlog's JSONRenderer. Kept: **orjson** (`shared/logging.py`); the line's other"
    " processors (time stamp, request id, level, phone-number masking) are the same both ways."
)

# The sections that can be measured on their own: name -> (title, measure, note).
ALONE: dict[str, tuple[str, Callable[[], list[str]], str]] = {
    "gemini": ("2. Reading a reply: google-genai's types or the REST JSON", gemini, GEMINI_NOTE),
    "transport": (
        "7. google-genai's transport: aiohttp or httpx",
        transports,
        TRANSPORT_NOTE,
    ),
    "parser": ("8. Redis replies: hiredis or redis-py's own parser", parsers, PARSER_NOTE),
    "json": ("9. The JSON log line: orjson or the standard library", json_renderers, JSON_NOTE),
    "cache": (
        "6. The chatroom list cache: the response body or the rows",
        list_cache,
        CACHE_NOTE,
    ),
}


def measure_alone(names: list[str]) -> None:
    """Measure only ``names`` and put their sections into docs/bench-choices.md in place
    (a section not there yet goes at the end), each saying when it was measured."""
    m = machine()
    out = REPO_ROOT / "docs" / "bench-choices.md"
    text = out.read_text(encoding="utf-8")
    for name in names:
        title, measure, note = ALONE[name]
        print(f"{title}...", flush=True)
        lines = measure()
        section = (
            f"## {title}\n\n(Measured alone, `python -m bench.choices {name}`, {m['date']},"
            f" {m['cpu']}.)\n\n" + "\n".join(lines) + f"\n\n{note}\n"
        )
        start = text.find(f"## {title}\n")
        if start < 0:
            text = text.rstrip("\n") + "\n\n" + section
        else:
            end = text.find("\n## ", start + 1)
            text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
        print(section, flush=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

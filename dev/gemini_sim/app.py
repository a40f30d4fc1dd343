"""The simulator's HTTP app: Gemini's `generateContent` routes plus `/_sim/` controls."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict

from dev.gemini_sim.replies import (
    Marker,
    blocked_body,
    count_words,
    error_body,
    markers_in,
    parse_marker,
    reply_chunks,
    response_body,
    text_of,
    usage,
    user_turns,
)

log = logging.getLogger("dev.gemini_sim")

VERSIONS = frozenset({"v1", "v1beta"})
STREAMING = {"generateContent": False, "streamGenerateContent": True}  # action -> streams
MAX_RECORDS = 1000


@dataclass(frozen=True)
class SimConfig:
    token_delay_ms: float = 20.0  # before each streamed chunk; a whole reply waits tokens x delay
    reply_tokens: int = 30  # chunks (about words) in a reply
    hang_seconds: float = 300.0  # how long [sim:hang] and [sim:hang-mid] send nothing
    long_reply_tokens: int = 200  # for [sim:long]
    slow_factor: float = 10.0  # token delay multiplier for [sim:slow]

    def __post_init__(self) -> None:
        if self.token_delay_ms < 0 or self.hang_seconds < 0 or self.slow_factor < 0:
            raise ValueError("delays must not be negative")
        if self.reply_tokens < 1 or self.long_reply_tokens < 1:
            raise ValueError("a reply has at least one token")


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token_delay_ms: float | None = None
    reply_tokens: int | None = None
    hang_seconds: float | None = None
    long_reply_tokens: int | None = None
    slow_factor: float | None = None


class FaultUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fault: str | int | None  # a marker body: "503", "429:2s", "hang", ...; null clears
    count: int | None = None  # how many requests fail; null: all until cleared


class SimState:
    """Everything `/_sim/reset` puts back: config, records, per-prompt counters, faults."""

    def __init__(self, config: SimConfig) -> None:
        self.startup = config
        self.reset()

    def reset(self) -> None:
        self.config = self.startup
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self.failures: dict[str, int] = {}  # prompt -> failures already served for `xN`
        self.fault: Marker | None = None
        self.fault_remaining: int | None = None

    def faults(self) -> dict[str, Any]:
        name = self.fault.name if self.fault else None
        return {"fault": name, "remaining": self.fault_remaining}

    def choose_fault(self, prompt: str, markers: list[Marker]) -> tuple[Marker | None, str]:
        """The fault for this request and where it came from; consumes counts."""
        if self.fault is not None:
            fault = self.fault
            if self.fault_remaining is not None:
                self.fault_remaining -= 1
                if self.fault_remaining <= 0:
                    self.fault = self.fault_remaining = None
            return fault, "config"
        marker = next((m for m in markers if m.is_fault), None)
        if marker is None or marker.count is None:
            return marker, "marker"
        served = self.failures.get(prompt, 0)
        if served >= marker.count:
            return None, "marker"
        self.failures[prompt] = served + 1
        return marker, "marker"


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Reply:
    """A planned successful (or safety-stopped) reply."""

    model: str
    response_id: str
    chunks: list[str]
    prompt_tokens: int
    delay: float  # seconds before each streamed event
    finish: str  # STOP, MAX_TOKENS or SAFETY
    stall_before: int | None = None  # hang-mid: chunk index to stall before
    stall_seconds: float = 0.0

    def events(self) -> list[dict[str, Any]]:
        """The streamed chunks; the last one carries the finish reason and usage."""
        bodies = [response_body(self.model, self.response_id, c) for c in self.chunks]
        done = usage(self.prompt_tokens, len(self.chunks))
        if self.finish == "SAFETY" or not bodies:  # a safety stop ends with an empty candidate
            return [*bodies, response_body(self.model, self.response_id, None, self.finish, done)]
        last = response_body(self.model, self.response_id, self.chunks[-1], self.finish, done)
        return [*bodies[:-1], last]

    def whole(self) -> dict[str, Any]:
        text = None if self.finish == "SAFETY" else "".join(self.chunks)
        return response_body(
            self.model,
            self.response_id,
            text,
            self.finish,
            usage(self.prompt_tokens, len(self.chunks)),
        )


async def _pause(request: Request, seconds: float) -> bool:
    """Waits up to `seconds`, less if the client hangs up; True if it is still connected."""

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    if seconds <= 0:
        return True
    try:
        await asyncio.wait_for(hung_up(), seconds)
    except TimeoutError:
        return True
    return False


async def _read_request(request: Request) -> tuple[dict[str, Any], list[str]]:
    if not (request.headers.get("x-goog-api-key") or request.query_params.get("key")):
        raise _Rejected(
            403,
            "Method doesn't allow unregistered callers. Please use an API key (x-goog-api-key).",
        )
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Rejected(400, "Invalid JSON payload received.") from None
    contents = body.get("contents") if isinstance(body, dict) else None
    if not isinstance(contents, list) or not contents:
        raise _Rejected(400, "* GenerateContentRequest.contents: contents is not specified")
    turns = user_turns(contents)
    if not turns:
        raise _Rejected(400, "contents has no user turn")
    return body, turns


def _plan(config: SimConfig, model: str, body: dict[str, Any], markers: list[Marker]) -> Reply:
    names = {m.name for m in markers}
    tokens = config.long_reply_tokens if "long" in names else config.reply_tokens
    delay = config.token_delay_ms / 1000 * (config.slow_factor if "slow" in names else 1)
    chunks, finish = reply_chunks(body["contents"], tokens, "echo" in names), "STOP"
    max_out = (body.get("generationConfig") or {}).get("maxOutputTokens")
    if isinstance(max_out, int) and 0 < max_out < len(chunks):
        chunks, finish = chunks[:max_out], "MAX_TOKENS"
    if "safety-mid" in names:
        chunks, finish = chunks[: max(1, len(chunks) // 3)], "SAFETY"
    system = text_of(body.get("systemInstruction"))
    prompt_tokens = count_words(system, *map(text_of, body["contents"]))
    reply = Reply(model, uuid.uuid4().hex[:22], chunks, prompt_tokens, delay, finish)
    if "hang-mid" in names:
        reply.stall_before, reply.stall_seconds = min(3, len(chunks) - 1), config.hang_seconds
    return reply


async def _sse(
    events: list[dict[str, Any]],
    delay: float = 0.0,
    stall_before: int | None = None,
    stall: float = 0.0,
) -> AsyncIterator[str]:
    # Starlette cancels this generator when the client disconnects, so a stall ends with it.
    # Chunks are due on a schedule from the start, as a model's are: when this process's
    # loop runs late under load, the next wait is shorter, so the lateness does not add up
    # chunk after chunk into a slower model than the one configured.
    loop = asyncio.get_running_loop()
    due = loop.time()
    for i, event in enumerate(events):
        due += delay + (stall if i == stall_before else 0.0)
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        yield f"data: {json.dumps(event, separators=(',', ':'))}\r\n\r\n"


def _error(status: int, message: str | None = None, retry_delay: float = 1.0) -> JSONResponse:
    return JSONResponse(error_body(status, message, retry_delay), status_code=status)


async def _generate(state: SimState, request: Request, version: str, model_action: str) -> Response:
    model, _, action = model_action.rpartition(":")
    stream = STREAMING.get(action)
    if version not in VERSIONS or not model or stream is None:
        return _error(404, f"{request.url.path} is not simulated (only generateContent routes).")
    record: dict[str, Any] = {
        "time": time.time(),
        "path": request.url.path,
        "query": request.url.query,
        "version": version,
        "model": model,
        "stream": stream,
        "contents": None,
        "systemInstruction": None,
        "generationConfig": None,
        "fault": None,
        "fault_source": None,
        "status": 200,
    }
    state.records.append(record)
    try:
        body, markers, fault = await _admit(state, request, record)
    except _Rejected as exc:
        record["status"] = exc.status
        _log(record)
        return _error(exc.status, exc.message)
    _log(record)
    if fault is not None and fault.status:
        return _error(fault.status, retry_delay=fault.retry_delay)
    # Modifiers (slow, long) always apply; a behaviour only when chosen as this request's fault.
    applied = [m for m in markers if not m.is_fault] + ([fault] if fault else [])
    return await _respond(state.config, request, record, body, applied)


async def _admit(
    state: SimState, request: Request, record: dict[str, Any]
) -> tuple[dict[str, Any], list[Marker], Marker | None]:
    """Checks and records the request, then picks its fault (consuming counts)."""
    body, turns = await _read_request(request)
    for key in ("contents", "systemInstruction", "generationConfig"):
        record[key] = body.get(key)
    try:
        markers = markers_in(turns[-1])
    except ValueError as exc:
        raise _Rejected(400, str(exc)) from None
    fault, source = state.choose_fault(turns[-1], markers)
    if fault is not None:
        record.update(fault=fault.name, fault_source=source, status=fault.status or 200)
    return body, markers, fault


async def _respond(
    config: SimConfig,
    request: Request,
    record: dict[str, Any],
    body: dict[str, Any],
    markers: list[Marker],
) -> Response:
    """A 200 reply: blocked, whole, as SSE, or (streaming without alt=sse) one JSON array."""
    sse, stream = request.query_params.get("alt") == "sse", record["stream"]
    reply = _plan(config, record["model"], body, markers)
    names = {m.name for m in markers}
    hang = "hang" in names or ("hang-mid" in names and not sse)
    if hang and not await _pause(request, config.hang_seconds):
        return _gone(record)
    if "safety" in names:
        blocked = blocked_body(record["model"], reply.response_id, reply.prompt_tokens)
        if sse:
            return StreamingResponse(_sse([blocked]), media_type="text/event-stream")
        return JSONResponse([blocked] if stream else blocked)
    if sse and stream:
        events = _sse(reply.events(), reply.delay, reply.stall_before, reply.stall_seconds)
        return StreamingResponse(events, media_type="text/event-stream")
    if not await _pause(request, reply.delay * len(reply.chunks)):
        return _gone(record)
    return JSONResponse(reply.events() if stream else reply.whole())


def _gone(record: dict[str, Any]) -> Response:
    """The client hung up while we waited: recorded as nginx's 499, answered to nobody."""
    record["status"] = 499
    _log(record)
    return Response(status_code=499)


def _log(record: dict[str, Any]) -> None:
    source = f" ({record['fault_source']})" if record["fault"] else ""
    log.info(
        "%s %s stream=%s fault=%s%s status=%s",
        record["version"],
        record["model"],
        record["stream"],
        record["fault"],
        source,
        record["status"],
    )


def create_app(config: SimConfig | None = None) -> FastAPI:
    """The simulator as an ASGI app; its state is `app.state.sim` (a SimState)."""
    state = SimState(config or SimConfig())
    app = FastAPI(title="Gemini API simulator", version="1")
    app.state.sim = state

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sim/requests")
    async def requests() -> dict[str, list[dict[str, Any]]]:
        return {"requests": list(state.records)}

    @app.post("/_sim/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    @app.get("/_sim/config")
    async def get_config() -> dict[str, Any]:
        return dataclasses.asdict(state.config)

    @app.post("/_sim/config")
    async def set_config(update: ConfigUpdate) -> dict[str, Any]:
        try:
            state.config = dataclasses.replace(state.config, **update.model_dump(exclude_none=True))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return dataclasses.asdict(state.config)

    @app.get("/_sim/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults()

    @app.post("/_sim/faults")
    async def set_faults(update: FaultUpdate) -> dict[str, Any]:
        if update.fault is None:
            state.fault = state.fault_remaining = None
            return state.faults()
        try:
            marker = parse_marker(str(update.fault))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        count = update.count if update.count is not None else marker.count
        if not marker.is_fault or (count is not None and count < 1):
            raise HTTPException(400, "give a fault (not slow/long) and a count of at least 1")
        state.fault, state.fault_remaining = marker, count
        return state.faults()

    @app.post("/{version}/models/{model_action:path}")
    async def generate(version: str, model_action: str, request: Request) -> Response:
        return await _generate(state, request, version, model_action)

    return app

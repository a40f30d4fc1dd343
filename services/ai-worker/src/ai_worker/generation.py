"""One Gemini generation: stream the reply's tokens as they arrive, retry what is transient.

Retry policy (DESIGN §5, research/reliability.md §6):

- retried: 429 (unless the quota is per day: that does not clear by waiting), 408 and every
  5xx, connection and protocol errors, a stream that goes silent for
  ``GEMINI_CHUNK_TIMEOUT_SECONDS`` or an attempt longer than ``GEMINI_REQUEST_TIMEOUT_SECONDS``;
- never retried: any other 4xx (400, 403, 404, ...) and safety blocks, which are answers;
- exponential backoff with jitter, never shorter than the ``RetryInfo.retryDelay`` a 429
  carries; at most ``RETRY_MAX_ATTEMPTS`` attempts, and no attempt (or backoff sleep) that
  would start after ``RETRY_BUDGET_SECONDS``.

An attempt that fails after streaming tokens leaves them in ``ai.reply.<id>``; the next
attempt first appends a ``reset`` entry so readers drop them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import httpx2
import structlog
from google import genai
from google.genai import errors, types
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from ai_worker import metrics
from ai_worker.settings import Settings
from ai_worker.stops import StopRequested
from shared import replies, tracing
from shared.events import HistoryTurn, MessageQueued, TokenUsage

log = structlog.get_logger(__name__)

COMPLETED_FINISH_REASONS = frozenset({"STOP", "MAX_TOKENS"})
BLOCKED_FINISH_REASONS = frozenset(
    {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "RECITATION"}
)
# Finished without one (a stream that simply ends): recorded as Gemini names "no reason".
UNSPECIFIED_FINISH_REASON = "FINISH_REASON_UNSPECIFIED"

# Failures of the transport rather than of the request: worth another attempt.
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    aiohttp.ClientError,
    httpx2.TransportError,
    errors.UnknownApiResponseError,  # a body that is not JSON: cut off mid-way
)

Status = Literal["completed", "failed", "blocked", "cancelled"]

# What the person sees when there is no reply. The quota unit is given back on failure
# (DESIGN §5), hence "not counted".
MESSAGES = {
    "overloaded": "Gemini is overloaded right now. Your prompt was not counted; please try again.",
    "rate_limited": (
        "Gemini is receiving too many requests right now. Your prompt was not counted; "
        "please try again in a minute."
    ),
    "quota_exhausted": (
        "Gemini has no capacity left for today. Your prompt was not counted; "
        "please try again later."
    ),
    "timeout": "Gemini took too long to answer. Your prompt was not counted; please try again.",
    "unreachable": "Gemini could not be reached. Your prompt was not counted; please try again.",
    "bad_request": (
        "Gemini could not process this prompt. Your prompt was not counted; "
        "try rephrasing or shortening it."
    ),
    "misconfigured": (
        "The assistant is not available right now because of a configuration problem. "
        "Your prompt was not counted."
    ),
    "prompt_blocked": (
        "Gemini declined to answer this prompt because of its safety filters. "
        "Please rephrase it and try again."
    ),
    "reply_blocked": "Gemini stopped this reply because of its safety filters.",
    "recitation": (
        "Gemini stopped this reply because it was repeating existing content too closely."
    ),
    "unfinished": "Gemini could not finish this reply. Please try again.",
    "empty": "Gemini returned an empty reply. Your prompt was not counted; please try again.",
}


class ModelTimeout(TimeoutError):
    """An attempt took too long, or the stream went silent: treated as a hang."""


class EmptyReply(Exception):
    """The stream ended with no text and no finish reason."""


# What ends a generation as a failure (after retries, when retryable). A name rather than
# the tuple in the except clause: mypy cannot check an except over a starred tuple.
_FAILURES: tuple[type[BaseException], ...] = (errors.APIError, *_TRANSIENT_ERRORS, EmptyReply)


@dataclass(frozen=True)
class Outcome:
    """How a generation ended, as the result event and the ``end`` entry report it."""

    status: Status
    text: str = ""
    finish_reason: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str = ""
    reason: str = ""  # machine-readable, for failed and blocked
    message: str = ""  # readable by the person, for failed and blocked
    attempts: int = 1
    error: str = ""  # for logs: the error that ended it, if one did


def http_session() -> aiohttp.ClientSession:
    """The HTTP session the Gemini client streams over. Ours rather than the SDK's: the SDK's
    reads proxy settings and ~/.netrc from the environment on every request (in a worker
    thread) and gives each response a 4 MiB read buffer; a reply needs neither."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False)


def create_client(settings: Settings, session: aiohttp.ClientSession) -> genai.Client:
    """The process's one Gemini client, on ``session`` (which the caller closes). Its own
    retries are off: :class:`ReplyGenerator` retries (with ``attempts=1`` the SDK also
    skips its hidden retry of connection errors)."""
    http_options = types.HttpOptions(
        base_url=settings.gemini_base_url,
        api_version=settings.gemini_api_version,
        timeout=int(settings.gemini_request_timeout_seconds * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
        aiohttp_client=session,
    )
    return genai.Client(api_key=settings.google_gemini_api_key, http_options=http_options)


# -- the request and its chunks, in the REST API's JSON --------------------------------------
#
# A reply is streamed with the SDK's own API client (its aiohttp transport, key header,
# timeout and error classes: a 4xx or 5xx still raises errors.ClientError/ServerError), but
# its body is built and its chunks are read here, as the documented JSON of
# models.streamGenerateContent, not through the SDK's typed models. Those cost ~11 ms of CPU
# before the first token (validating and converting the whole history) and ~0.13 ms a chunk
# on the benchmark machine, against ~0.5 ms and ~0.04 ms this way (BENCHMARKS.md). The unit
# tests check that the body is exactly the one the SDK would send.

Wire = dict[str, Any]


def build_contents(prompt: str, history: Sequence[HistoryTurn]) -> list[Wire]:
    """The conversation so far, then the prompt as the last user turn (``Content`` JSON)."""
    turns = [(turn.role, turn.text) for turn in history if turn.text]
    turns.append(("user", prompt))
    return [{"role": role, "parts": [{"text": text}]} for role, text in turns]


def request_fields(settings: Settings) -> Wire:
    """Everything of a generateContent body but the contents."""
    fields: Wire = {"generationConfig": {"maxOutputTokens": settings.gemini_max_output_tokens}}
    if settings.system_instruction:
        fields["systemInstruction"] = {
            "role": "user",
            "parts": [{"text": settings.system_instruction}],
        }
    return fields


def model_path(model: str) -> str:
    """``gemini-2.5-flash`` → ``models/gemini-2.5-flash``; a full resource name stays."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def _obj(value: Any) -> Wire:
    return value if isinstance(value, dict) else {}


# -- error classification -------------------------------------------------------------------


def _error_details(exc: errors.APIError) -> list[dict[str, Any]]:
    """The ``details`` list of a Google error body (``{"error": {"details": [...]}}``)."""
    body = exc.details
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _seconds(duration: Any) -> float | None:
    """A protobuf Duration in its JSON form (``"1.5s"``), or ``{"seconds": 1, "nanos": ...}``."""
    try:
        if isinstance(duration, str) and duration.endswith("s"):
            return max(float(duration[:-1]), 0.0)
        if isinstance(duration, dict):
            seconds = float(duration.get("seconds", 0)) + float(duration.get("nanos", 0)) / 1e9
            return max(seconds, 0.0)
    except (TypeError, ValueError):
        pass
    return None


def server_retry_delay(exc: BaseException | None) -> float | None:
    """The wait a 429 asks for in its ``google.rpc.RetryInfo`` detail, in seconds."""
    if not isinstance(exc, errors.ClientError) or exc.code != 429:
        return None
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return _seconds(detail.get("retryDelay"))
    return None


def is_daily_quota(exc: BaseException) -> bool:
    """A 429 for a per-day quota: waiting seconds will not help."""
    if not isinstance(exc, errors.ClientError) or exc.code != 429:
        return False
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or []:
                if isinstance(violation, dict) and "PerDay" in str(violation.get("quotaId", "")):
                    return True
    return False


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, errors.ClientError):
        return exc.code in (408, 429) and not is_daily_quota(exc)
    if isinstance(exc, errors.ServerError):
        return True
    return isinstance(exc, (*_TRANSIENT_ERRORS, EmptyReply))


def retry_wait(settings: Settings) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter (``initial * 2**(n-1) + U(0, initial)``, capped),
    but never less than the ``retryDelay`` the server asked for."""
    backoff = wait_exponential_jitter(
        initial=settings.retry_initial_delay_seconds,
        max=settings.retry_max_delay_seconds,
        exp_base=2,
        jitter=settings.retry_initial_delay_seconds,
    )

    def wait(state: RetryCallState) -> float:
        delay = backoff(state)
        hinted = server_retry_delay(state.outcome.exception() if state.outcome else None)
        return max(delay, hinted) if hinted is not None else delay

    return wait


def error_code(exc: BaseException) -> str:
    """A short label for metrics: the HTTP status of an API error, else its kind."""
    if isinstance(exc, errors.APIError):
        return str(exc.code)
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, EmptyReply):
        return "empty"
    if isinstance(exc, (aiohttp.ClientError, httpx2.TransportError)):
        return "connection"
    return type(exc).__name__


def describe(exc: BaseException) -> str:
    """For logs: the status of an API error, else the exception (never the prompt)."""
    if isinstance(exc, errors.APIError):
        return f"{exc.code} {exc.status or ''}".strip()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def failure(exc: BaseException, *, partial_text: str = "", attempts: int = 1) -> Outcome:
    """The final outcome for an error that ended the generation (retried or not)."""
    if isinstance(exc, errors.ClientError) and exc.code not in (408, 429):
        key = "bad_request" if exc.code == 400 else "misconfigured"
        reason = "model_rejected"
        if key == "misconfigured":  # every reply will fail the same way until someone acts
            log.error("gemini.misconfigured", error=describe(exc))
    else:
        reason = "model_unavailable"
        if isinstance(exc, errors.ClientError):
            key = "quota_exhausted" if is_daily_quota(exc) else "rate_limited"
        elif isinstance(exc, errors.ServerError):
            key = "overloaded"
        elif isinstance(exc, TimeoutError):
            key = "timeout"
        elif isinstance(exc, EmptyReply):
            key = "empty"
        else:
            key = "unreachable"
    return Outcome(
        "failed",
        text=partial_text,
        reason=reason,
        message=MESSAGES[key],
        attempts=attempts,
        error=describe(exc),
    )


# -- the generation --------------------------------------------------------------------------


def _count(metadata: Wire, name: str) -> int:
    value = metadata.get(name)
    return value if isinstance(value, int) else 0


def _usage(metadata: Wire) -> TokenUsage:
    """A chunk's ``usageMetadata``."""
    prompt = _count(metadata, "promptTokenCount")
    output = _count(metadata, "candidatesTokenCount") + _count(metadata, "thoughtsTokenCount")
    return TokenUsage(
        prompt_tokens=prompt,
        output_tokens=output,
        total_tokens=_count(metadata, "totalTokenCount") or prompt + output,
    )


def _text_of(candidate: Wire) -> str:
    """The answer text of a chunk's candidate; thought summaries are not part of the reply."""
    parts = _obj(candidate.get("content")).get("parts")
    if not isinstance(parts, list):
        return ""
    texts = (_obj(p).get("text") for p in parts if not _obj(p).get("thought"))
    return "".join(t for t in texts if isinstance(t, str))


@dataclass
class Draft:
    """What the current attempt has produced so far."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_block: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str = ""
    # When the token stream's time to live was last restarted (the event loop's clock).
    ttl_refreshed_at: float = 0.0
    # When this attempt's request went out (the event loop's clock).
    started_at: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.parts)


def classify(draft: Draft, attempts: int = 1) -> Outcome:
    """The outcome of an attempt that ran to the end of its stream."""
    common: dict[str, Any] = {
        "text": draft.text,
        "usage": draft.usage,
        "model": draft.model,
        "attempts": attempts,
    }
    finish = draft.finish_reason
    if draft.prompt_block:
        return Outcome(
            "blocked",
            finish_reason=draft.prompt_block,
            reason="safety_block",
            message=MESSAGES["prompt_blocked"],
            **common,
        )
    if finish in BLOCKED_FINISH_REASONS:
        key = "recitation" if finish == "RECITATION" else "reply_blocked"
        return Outcome(
            "blocked", finish_reason=finish, reason="safety_block", message=MESSAGES[key], **common
        )
    if (finish is None or finish in COMPLETED_FINISH_REASONS) and draft.text.strip():
        return Outcome("completed", finish_reason=finish or UNSPECIFIED_FINISH_REASON, **common)
    # Nothing to show (all output spent on thinking, say), or MALFORMED_FUNCTION_CALL,
    # OTHER, LANGUAGE, ...: an answer, but not one to give the person.
    key = "empty" if finish in COMPLETED_FINISH_REASONS else "unfinished"
    return Outcome(
        "failed",
        finish_reason=finish or UNSPECIFIED_FINISH_REASON,
        reason="model_error",
        message=MESSAGES[key],
        **common,
    )


TITLE_INSTRUCTION = (
    "Give this conversation a short title of at most six words. Reply with the title only."
)
TITLE_MAX_CHARS = 60


def clean_title(text: str) -> str:
    """The model's title as a room name: first line, no quotes or markup, bounded."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = line.strip("\"'`*#_ ").removeprefix("Title:").strip().rstrip(".")
    if len(line) > TITLE_MAX_CHARS:
        line = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    return line


class ReplyGenerator:
    """Generates replies with Gemini: one per process, shared by all concurrent replies."""

    def __init__(self, client: genai.Client, redis: Redis, settings: Settings) -> None:
        self.client = client
        self.redis = redis
        self.settings = settings
        self.fields = request_fields(settings)
        self.path = f"{model_path(settings.gemini_model)}:streamGenerateContent?alt=sse"

    async def title(self, prompt: str, reply: str) -> str:
        """A short title for a conversation that starts with ``prompt`` and ``reply``: one
        request, no retries (a chatroom without a title is no failure)."""
        text = f"{TITLE_INSTRUCTION}\n\nUser: {prompt[:500]}\nGemini: {reply[:500]}"
        config = types.GenerateContentConfig(
            max_output_tokens=32,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        async with asyncio.timeout(self.settings.gemini_chunk_timeout_seconds):
            response = await self.client.aio.models.generate_content(
                model=self.settings.gemini_model,
                contents=[types.Content(role="user", parts=[types.Part(text=text)])],
                config=config,
            )
        return clean_title(response.text or "")

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            metrics.GEMINI_ERRORS.labels(error_code(exc)).inc()
            metrics.GEMINI_RETRIES.labels(error_code(exc)).inc()
        log.warning(
            "reply.retrying",
            attempt=state.attempt_number,
            delay=round(state.upcoming_sleep, 3),
            error=describe(exc) if exc else None,
        )

    async def generate(self, event: MessageQueued, stopped: asyncio.Event | None = None) -> Outcome:
        """Stream the reply to ``ai.reply.<reply_id>`` and say how it ended; appends no
        ``end`` entry (the caller does, after deciding what to publish).

        Raises only what is neither the model's answer nor the model's failure (Redis
        down, a bug): the entry then stays pending and is tried again later."""
        started = asyncio.get_running_loop().time()
        metrics.IN_FLIGHT.inc()
        try:
            model = {"gen_ai.request.model": self.settings.gemini_model}
            with tracing.span("gemini generate", model):
                outcome = await self._generate(event, stopped)
                tracing.annotate(
                    status=outcome.status,
                    attempts=outcome.attempts,
                    reason=outcome.reason or None,
                    **{
                        "gen_ai.usage.input_tokens": outcome.usage.prompt_tokens,
                        "gen_ai.usage.output_tokens": outcome.usage.output_tokens,
                    },
                )
        finally:
            metrics.IN_FLIGHT.dec()
        metrics.GENERATION.labels(outcome.status).observe(
            asyncio.get_running_loop().time() - started
        )
        if outcome.usage.prompt_tokens or outcome.usage.output_tokens:
            metrics.TOKENS.labels("prompt").inc(outcome.usage.prompt_tokens)
            metrics.TOKENS.labels("output").inc(outcome.usage.output_tokens)
        return outcome

    async def _generate(self, event: MessageQueued, stopped: asyncio.Event | None) -> Outcome:
        reply_id = str(event.reply_id)
        contents = build_contents(event.prompt, event.history)
        stopped = stopped or asyncio.Event()
        draft = Draft()
        dirty = False  # the stream holds tokens of a failed attempt
        attempts = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=(
                stop_after_attempt(self.settings.retry_max_attempts)
                | stop_before_delay(self.settings.retry_budget_seconds)
            ),
            wait=retry_wait(self.settings),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if dirty:
                        await replies.append_reset(
                            self.redis, reply_id, ttl=self.settings.reply_stream_ttl_seconds
                        )
                    draft = Draft(model=self.settings.gemini_model)
                    try:
                        await self._attempt(reply_id, contents, draft, stopped)
                    finally:
                        dirty = bool(draft.parts)
        except StopRequested:
            return Outcome(status="cancelled", text=draft.text, attempts=attempts)
        except _FAILURES as exc:
            metrics.GEMINI_ERRORS.labels(error_code(exc)).inc()
            return failure(exc, partial_text=draft.text, attempts=attempts)
        return classify(draft, attempts)

    async def _chunks(self, contents: list[Wire]) -> AsyncGenerator[Wire, None]:
        """The chunks of one streamGenerateContent request, each a JSON object; the request
        goes out on the first anext()."""
        api = self.client.aio._api_client  # the SDK's transport: see "the request" above
        responses = await api.async_request_streamed(
            "post", self.path, {"contents": contents, **self.fields}
        )
        try:
            async for response in responses:
                yield _obj(json.loads(response.body)) if response.body else {}
        finally:
            await responses.aclose()

    async def _attempt(
        self,
        reply_id: str,
        contents: list[Wire],
        draft: Draft,
        stopped: asyncio.Event,
    ) -> None:
        """One request, its chunks appended as they come. Every wait for a chunk is bounded
        by the chunk timeout and by what is left of the attempt's; nothing else is awaited
        under a timeout, so a Redis call can never absorb one (see service._renewing)."""
        loop = asyncio.get_running_loop()
        request_timeout = self.settings.gemini_request_timeout_seconds
        chunk_timeout = self.settings.gemini_chunk_timeout_seconds
        deadline = loop.time() + request_timeout
        draft.started_at = loop.time()
        stream = self._chunks(contents)  # sends nothing yet
        # The wait for the next chunk, while one is in progress: a stop ends it at once.
        # (A timeout on this task rather than a task per chunk: the chunks are the hot path.)
        waiting: asyncio.Timeout | None = None

        def on_stop(_: object) -> None:
            if waiting is not None and not waiting.expired():
                waiting.reschedule(loop.time())

        stop_waiter = asyncio.ensure_future(stopped.wait())
        stop_waiter.add_done_callback(on_stop)
        try:
            while True:
                wait = min(chunk_timeout, deadline - loop.time())
                if stopped.is_set():
                    raise StopRequested
                if wait <= 0:
                    raise ModelTimeout(f"attempt took longer than {request_timeout:g}s")
                try:
                    async with asyncio.timeout(wait) as waiting:
                        chunk = await anext(stream)
                except TimeoutError:
                    if stopped.is_set():
                        raise StopRequested from None
                    if wait < chunk_timeout:
                        raise ModelTimeout(
                            f"attempt took longer than {request_timeout:g}s"
                        ) from None
                    raise ModelTimeout(f"no chunk for {chunk_timeout:g}s") from None
                except StopAsyncIteration:
                    break
                finally:
                    waiting = None
                await self._take(reply_id, chunk, draft)
                if draft.prompt_block:
                    return
        finally:
            stop_waiter.remove_done_callback(on_stop)
            stop_waiter.cancel()
            await stream.aclose()
        if not draft.parts and draft.finish_reason is None:
            raise EmptyReply("the stream ended without text or a finish reason")

    async def _take(self, reply_id: str, chunk: Wire, draft: Draft) -> None:
        if "usageMetadata" in chunk:
            draft.usage = _usage(_obj(chunk["usageMetadata"]))
        if isinstance(model := chunk.get("modelVersion"), str) and model:
            draft.model = model
        block = _obj(chunk.get("promptFeedback")).get("blockReason")
        if isinstance(block, str) and block:
            draft.prompt_block = block
            return
        candidates = chunk.get("candidates")
        candidate = _obj(candidates[0]) if isinstance(candidates, list) and candidates else {}
        text = _text_of(candidate)
        if text:
            # Appended as it arrives: the first token reaches readers without waiting. The
            # stream's time to live is restarted with the first token of an attempt and then
            # every quarter of it, not with every token (the end entry restarts it too).
            ttl = self.settings.reply_stream_ttl_seconds
            now = asyncio.get_running_loop().time()
            refresh = not draft.parts or now - draft.ttl_refreshed_at >= ttl / 4
            await replies.append_token(self.redis, reply_id, text, ttl=ttl, refresh_ttl=refresh)
            if refresh:
                draft.ttl_refreshed_at = now
            if not draft.parts:
                metrics.FIRST_TOKEN.observe(asyncio.get_running_loop().time() - draft.started_at)
            draft.parts.append(text)
        if isinstance(finish := candidate.get("finishReason"), str) and finish:
            draft.finish_reason = finish

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
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp
import structlog
from google import genai
from google.genai import types
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from ai_worker import metrics
from ai_worker.outcomes import (
    FAILURES,
    Draft,
    EmptyReply,
    ModelTimeout,
    Outcome,
    Wire,
    classify,
    describe,
    error_code,
    failure,
    is_retryable,
    obj,
    retry_wait,
    text_of,
    usage_of,
)
from ai_worker.settings import Settings
from ai_worker.stops import StopRequested
from ai_worker.tokens import TokenAppends, TokenWriter
from shared import replies, tracing
from shared.events import HistoryTurn, MessageQueued

log = structlog.get_logger(__name__)


def http_session() -> aiohttp.ClientSession:
    """The HTTP session the Gemini client streams over. Ours rather than the SDK's: the SDK's
    reads proxy settings and ~/.netrc from the environment on every request (in a worker
    thread) and gives each response a 4 MiB read buffer; a reply needs neither."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False)


def http_options(settings: Settings, **transport: Any) -> types.HttpOptions:
    """The Gemini client's options over the given transport (``aiohttp_client=``, or
    ``httpx_async_client=`` as bench/choices.py compares). Its own retries are off:
    :class:`ReplyGenerator` retries (with ``attempts=1`` the SDK also skips its hidden
    retry of connection errors)."""
    return types.HttpOptions(
        base_url=settings.gemini_base_url,
        api_version=settings.gemini_api_version,
        timeout=int(settings.gemini_request_timeout_seconds * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
        **transport,
    )


def create_client(settings: Settings, session: aiohttp.ClientSession) -> genai.Client:
    """The process's one Gemini client, on ``session`` (which the caller closes)."""
    return genai.Client(
        api_key=settings.google_gemini_api_key,
        http_options=http_options(settings, aiohttp_client=session),
    )


# -- the request and its chunks, in the REST API's JSON --------------------------------------
#
# A reply is streamed with the SDK's own API client (its aiohttp transport, key header,
# timeout and error classes: a 4xx or 5xx still raises errors.ClientError/ServerError), but
# its body is built and its chunks are read here, as the documented JSON of
# models.streamGenerateContent, not through the SDK's typed models. Those cost ~11 ms of CPU
# before the first token (validating and converting the whole history) and ~0.13 ms a chunk
# on the benchmark machine, against ~0.5 ms and ~0.04 ms this way (BENCHMARKS.md). The unit
# tests check that the body is exactly the one the SDK would send.


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


class Watchdog:
    """Ends an attempt (expires its ``limit``) once its next chunk is late or its deadline
    has passed, or at once when :meth:`expire` is called (a stop). One timer for the whole
    attempt, which, when it fires, looks at when the last chunk came and either expires the
    limit or waits again: not a timer made and cancelled for every chunk (the chunks are
    the hot path). :meth:`cancel` when the attempt ends.

    A class rather than a closure that schedules itself: such a closure holds itself in its
    own cell, a reference cycle that kept every finished attempt's task, timeout and context
    alive until the garbage collector's next full pass. Cancelled, this one is freed as
    soon as the attempt lets go of it."""

    def __init__(self, limit: asyncio.Timeout, chunk_timeout: float, deadline: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.limit = limit
        self.chunk_timeout = chunk_timeout
        self.deadline = deadline
        self.last_chunk = self.loop.time()
        self._timer = self.loop.call_at(self._due(), self._check)

    def chunk_came(self) -> None:
        self.last_chunk = self.loop.time()

    def expire(self, _: object = None) -> None:
        if not self.limit.expired():
            self.limit.reschedule(self.loop.time())

    def cancel(self) -> None:
        self._timer.cancel()  # drops its callback: no reference back to this watchdog

    def _due(self) -> float:  # when the next chunk would be late
        return min(self.last_chunk + self.chunk_timeout, self.deadline)

    def _check(self) -> None:
        at = self._due()
        if self.loop.time() >= at:
            self.expire()
        else:
            self._timer = self.loop.call_at(at, self._check)


class ReplyGenerator:
    """Generates replies with Gemini: one per process, shared by all concurrent replies."""

    def __init__(self, client: genai.Client, redis: Redis, settings: Settings) -> None:
        self.client = client
        self.redis = redis
        self.settings = settings
        self.fields = request_fields(settings)
        self.appends = TokenAppends(redis)

    def model_of(self, event: MessageQueued) -> str:
        """The model chat chose for the reply (its tier's, or the room's choice); this
        worker's GEMINI_MODEL for an event from before chat chose one."""
        return event.model or self.settings.gemini_model

    async def title(self, prompt: str, reply: str, model: str) -> str:
        """A short title for a conversation that starts with ``prompt`` and ``reply``: one
        request, no retries (a chatroom without a title is no failure)."""
        text = f"{TITLE_INSTRUCTION}\n\nUser: {prompt[:500]}\nGemini: {reply[:500]}"
        config = types.GenerateContentConfig(
            max_output_tokens=32,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        async with asyncio.timeout(self.settings.gemini_chunk_timeout_seconds):
            response = await self.client.aio.models.generate_content(
                model=model,
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
            with tracing.span("gemini generate", {"gen_ai.request.model": self.model_of(event)}):
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
        model = self.model_of(event)
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
                    draft = Draft(model=model)
                    try:
                        await self._attempt(reply_id, model, contents, draft, stopped)
                    finally:
                        dirty = bool(draft.parts)
        except StopRequested:
            return Outcome(status="cancelled", text=draft.text, attempts=attempts)
        except FAILURES as exc:
            metrics.GEMINI_ERRORS.labels(error_code(exc)).inc()
            return failure(exc, partial_text=draft.text, attempts=attempts)
        return classify(draft, attempts)

    async def _chunks(self, model: str, contents: list[Wire]) -> AsyncGenerator[Wire, None]:
        """The chunks of one streamGenerateContent request, each a JSON object; the request
        goes out on the first anext()."""
        api = self.client.aio._api_client  # the SDK's transport: see "the request" above
        responses = await api.async_request_streamed(
            "post",
            f"{model_path(model)}:streamGenerateContent?alt=sse",
            {"contents": contents, **self.fields},
        )
        try:
            async for response in responses:
                yield obj(json.loads(response.body)) if response.body else {}
        finally:
            await responses.aclose()

    async def _attempt(
        self,
        reply_id: str,
        model: str,
        contents: list[Wire],
        draft: Draft,
        stopped: asyncio.Event,
    ) -> None:
        """One request, its chunks appended as they come. Every wait for a chunk is bounded
        by the chunk timeout and by what is left of the attempt's; nothing else is awaited
        under a timeout, so a Redis call can never absorb one (see service._renewing)."""
        loop = asyncio.get_running_loop()
        request_timeout = self.settings.gemini_request_timeout_seconds
        deadline = loop.time() + request_timeout
        draft.started_at = loop.time()
        stream = self._chunks(model, contents)  # sends nothing yet
        limit = asyncio.timeout(None)
        watchdog = Watchdog(limit, self.settings.gemini_chunk_timeout_seconds, deadline)
        stop_waiter = asyncio.ensure_future(stopped.wait())
        stop_waiter.add_done_callback(watchdog.expire)  # a stop ends the attempt at once
        writer = self.appends.writer(reply_id, ttl=self.settings.reply_stream_ttl_seconds)
        finished = False
        try:
            try:
                async with limit:
                    if stopped.is_set():
                        raise StopRequested
                    async for chunk in stream:
                        watchdog.chunk_came()
                        self._take(writer, chunk, draft)
                        if draft.prompt_block:
                            break
            except TimeoutError:
                if stopped.is_set():
                    raise StopRequested from None
                if loop.time() >= deadline:
                    raise ModelTimeout(f"attempt took longer than {request_timeout:g}s") from None
                raise ModelTimeout(f"no chunk for {watchdog.chunk_timeout:g}s") from None
            finished = True
        finally:
            watchdog.cancel()
            stop_waiter.remove_done_callback(watchdog.expire)
            stop_waiter.cancel()
            await stream.aclose()
            if not finished:
                await writer.abandon()
        await writer.flush()
        if draft.prompt_block:
            return
        if not draft.parts and draft.finish_reason is None:
            raise EmptyReply("the stream ended without text or a finish reason")

    def _take(self, writer: TokenWriter, chunk: Wire, draft: Draft) -> None:
        if "usageMetadata" in chunk:
            draft.usage = usage_of(obj(chunk["usageMetadata"]))
        if isinstance(model := chunk.get("modelVersion"), str) and model:
            draft.model = model
        block = obj(chunk.get("promptFeedback")).get("blockReason")
        if isinstance(block, str) and block:
            draft.prompt_block = block
            return
        candidates = chunk.get("candidates")
        candidate = obj(candidates[0]) if isinstance(candidates, list) and candidates else {}
        text = text_of(candidate)
        if text:
            writer.add(text)  # appended as it arrives (ai_worker.tokens)
            if not draft.parts:
                metrics.FIRST_TOKEN.observe(asyncio.get_running_loop().time() - draft.started_at)
            draft.parts.append(text)
        if isinstance(finish := candidate.get("finishReason"), str) and finish:
            draft.finish_reason = finish

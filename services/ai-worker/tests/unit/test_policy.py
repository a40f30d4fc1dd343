"""What is retried, how long to wait, and what the person is told: on the SDK's own
error classes, built from the bodies the Gemini API sends."""

import asyncio
import gc
import uuid
import weakref

import aiohttp
import pytest
from google.genai import errors
from tenacity import AsyncRetrying, RetryCallState

from ai_worker.generation import Watchdog, build_contents
from ai_worker.outcomes import (
    MESSAGES,
    Draft,
    EmptyReply,
    ModelTimeout,
    Outcome,
    classify,
    failure,
    is_retryable,
    retry_wait,
    server_retry_delay,
)
from ai_worker.service import recorded_outcome, result_event
from ai_worker.settings import Settings
from shared.events import HistoryTurn, MessageQueued, ReplyCompleted, ReplyFailed, TokenUsage
from shared.replies import End, ReplySoFar

STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}


def api_error(code: int, *, retry_delay: str | None = None, quota_id: str | None = None):
    error = {"code": code, "message": "simulated", "status": STATUS.get(code, "UNAVAILABLE")}
    details = []
    if quota_id:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": quota_id}],
            }
        )
    if retry_delay:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    if details:
        error["details"] = details
    cls = errors.ClientError if code < 500 else errors.ServerError
    return cls(code, {"error": error})


@pytest.mark.parametrize(
    "exc",
    [
        api_error(429, retry_delay="3s", quota_id="GenerateRequestsPerMinutePerProjectPerModel"),
        api_error(429),
        api_error(500),
        api_error(503),
        api_error(504),
        ModelTimeout("no chunk for 20s"),
        TimeoutError(),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientConnectionError("connection refused"),
    ],
    ids=repr,
)
def test_transient_failures_are_retried(exc):
    assert is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        api_error(400),
        api_error(403),
        api_error(404),
        api_error(429, quota_id="GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
        ValueError("a bug"),
    ],
    ids=repr,
)
def test_final_failures_are_not_retried(exc):
    assert not is_retryable(exc)


def test_retry_delay_is_read_from_the_rate_limit_details():
    assert server_retry_delay(api_error(429, retry_delay="1.5s")) == 1.5
    assert server_retry_delay(api_error(429, retry_delay="13s", quota_id="X")) == 13
    assert server_retry_delay(api_error(429)) is None
    assert server_retry_delay(api_error(503)) is None
    assert server_retry_delay(None) is None


def retry_state(exc: BaseException, attempt: int) -> RetryCallState:
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_backoff_grows_with_jitter_but_never_undercuts_the_servers_delay():
    settings = Settings(_env_file=None, app_env="test", google_gemini_api_key="k")
    wait = retry_wait(settings)

    first = [wait(retry_state(api_error(503), 1)) for _ in range(50)]
    third = [wait(retry_state(api_error(503), 3)) for _ in range(50)]
    assert all(1 <= w <= 2 for w in first) and len(set(first)) > 1
    assert all(4 <= w <= 5 for w in third)
    assert all(w <= 10 for w in (wait(retry_state(api_error(503), 8)) for _ in range(20)))
    hinted = [wait(retry_state(api_error(429, retry_delay="7s"), 1)) for _ in range(20)]
    assert all(w >= 7 for w in hinted)


@pytest.mark.parametrize(
    ("exc", "reason", "message"),
    [
        (api_error(503), "model_unavailable", "overloaded"),
        (api_error(500), "model_unavailable", "overloaded"),
        (api_error(429), "model_unavailable", "rate_limited"),
        (api_error(429, quota_id="RequestsPerDay"), "model_unavailable", "quota_exhausted"),
        (ModelTimeout("slow"), "model_unavailable", "timeout"),
        (aiohttp.ServerDisconnectedError(), "model_unavailable", "unreachable"),
        (EmptyReply("nothing"), "model_unavailable", "empty"),
        (api_error(400), "model_rejected", "bad_request"),
        (api_error(403), "model_rejected", "misconfigured"),
        (api_error(404), "model_rejected", "misconfigured"),
    ],
)
def test_each_failure_gets_a_reason_code_and_a_readable_message(exc, reason, message):
    outcome = failure(exc, partial_text="Hel", attempts=3)
    assert (outcome.status, outcome.reason, outcome.message) == (
        "failed",
        reason,
        MESSAGES[message],
    )
    assert (outcome.text, outcome.attempts) == ("Hel", 3)


@pytest.mark.parametrize(
    ("finish", "block", "text", "status", "reason", "message"),
    [
        ("STOP", None, "Hi.", "completed", "", ""),
        ("MAX_TOKENS", None, "Hi", "completed", "", ""),
        (None, None, "Hi", "completed", "", ""),  # the stream just ended
        (None, "SAFETY", "", "blocked", "safety_block", "prompt_blocked"),
        ("SAFETY", None, "Hal", "blocked", "safety_block", "reply_blocked"),
        ("PROHIBITED_CONTENT", None, "", "blocked", "safety_block", "reply_blocked"),
        ("RECITATION", None, "Once", "blocked", "safety_block", "recitation"),
        ("MAX_TOKENS", None, "", "failed", "model_error", "empty"),  # all spent thinking
        ("MALFORMED_FUNCTION_CALL", None, "", "failed", "model_error", "unfinished"),
        ("OTHER", None, "Par", "failed", "model_error", "unfinished"),
    ],
)
def test_how_a_stream_ends_decides_the_outcome(finish, block, text, status, reason, message):
    draft = Draft(parts=[text] if text else [], finish_reason=finish, prompt_block=block)
    outcome = classify(draft)
    assert (outcome.status, outcome.reason, outcome.text) == (status, reason, text)
    assert outcome.message == (MESSAGES[message] if message else "")
    if status == "completed":
        assert outcome.finish_reason == (finish or "FINISH_REASON_UNSPECIFIED")


def test_contents_are_the_history_then_the_prompt():
    contents = build_contents(
        "third?",
        [HistoryTurn(role="user", text="first?"), HistoryTurn(role="model", text="one")],
    )
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
        ("user", "first?"),
        ("model", "one"),
        ("user", "third?"),
    ]


def queued_event() -> MessageQueued:
    return MessageQueued(
        reply_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
        chatroom_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        prompt="hi",
    )


def test_a_finished_stream_gives_back_the_completed_result():
    usage = TokenUsage(prompt_tokens=3, output_tokens=7, total_tokens=10)
    end = End.from_fields(
        {
            "type": "end",
            "status": "completed",
            "finish_reason": "MAX_TOKENS",
            "model": "gemini-2.5-flash",
            "prompt_tokens": "3",
            "output_tokens": "7",
            "total_tokens": "10",
        }
    )
    event = queued_event()
    replayed = result_event(event, recorded_outcome(ReplySoFar(text="Hello there", end=end)))
    original = result_event(
        event,
        Outcome(
            "completed",
            text="Hello there",
            finish_reason="MAX_TOKENS",
            usage=usage,
            model="gemini-2.5-flash",
        ),
    )
    assert isinstance(replayed, ReplyCompleted)
    assert replayed == original


def test_a_failed_stream_gives_back_the_failure():
    end = End.from_fields(
        {"type": "end", "status": "blocked", "reason": "safety_block", "message": "No."}
    )
    event = queued_event()
    replayed = result_event(event, recorded_outcome(ReplySoFar(text="Par", end=end)))
    assert isinstance(replayed, ReplyFailed)
    assert (replayed.status, replayed.reason, replayed.message, replayed.partial_text) == (
        "blocked",
        "safety_block",
        "No.",
        "Par",
    )


async def test_an_attempts_watchdog_is_freed_without_the_garbage_collector():
    # A self-scheduling closure kept each finished attempt (its task, timeout, context)
    # alive until the collector's next full pass: the watchdog must hold no cycle once
    # cancelled, so reference counting alone frees it.
    loop = asyncio.get_running_loop()
    gc.collect()
    gc.disable()
    try:
        watchdog = Watchdog(asyncio.timeout(None), 5.0, loop.time() + 30.0)
        watchdog.chunk_came()
        gone = weakref.ref(watchdog)
        watchdog.cancel()
        del watchdog
        assert gone() is None
    finally:
        gc.enable()


async def test_the_watchdog_expires_its_limit_once_a_chunk_is_late():
    loop = asyncio.get_running_loop()
    limit = asyncio.timeout(None)
    watchdog = Watchdog(limit, 0.05, loop.time() + 30.0)
    try:
        with pytest.raises(TimeoutError):
            async with limit:
                for _ in range(4):  # chunks in time: the limit holds
                    await asyncio.sleep(0.02)
                    watchdog.chunk_came()
                await asyncio.sleep(1.0)  # then none: expired after ~0.05 s
        assert loop.time() - watchdog.last_chunk < 0.5
    finally:
        watchdog.cancel()

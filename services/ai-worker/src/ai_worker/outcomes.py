"""What a generation comes to: an answer, a block, or a failure the user is told about.

The classification of Gemini's errors (retry or not, the code and message stored with the
reply) and of a finished stream (completed, blocked, cut off) lives here, free of I/O, so
the policy can be tested on its own (tests/unit/test_policy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import httpx2
import structlog
from google.genai import errors
from tenacity import RetryCallState, wait_exponential_jitter

from ai_worker.settings import Settings
from shared.events import TokenUsage

log = structlog.get_logger(__name__)

# A JSON object of the REST API (a request body, a chunk).
Wire = dict[str, Any]


def obj(value: Any) -> Wire:
    return value if isinstance(value, dict) else {}


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
FAILURES: tuple[type[BaseException], ...] = (errors.APIError, *_TRANSIENT_ERRORS, EmptyReply)


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


# -- a finished stream --------------------------------------------------------------------------


def _count(metadata: Wire, name: str) -> int:
    value = metadata.get(name)
    return value if isinstance(value, int) else 0


def usage_of(metadata: Wire) -> TokenUsage:
    """A chunk's ``usageMetadata``."""
    prompt = _count(metadata, "promptTokenCount")
    output = _count(metadata, "candidatesTokenCount") + _count(metadata, "thoughtsTokenCount")
    return TokenUsage(
        prompt_tokens=prompt,
        output_tokens=output,
        total_tokens=_count(metadata, "totalTokenCount") or prompt + output,
    )


def text_of(candidate: Wire) -> str:
    """The answer text of a chunk's candidate; thought summaries are not part of the reply."""
    parts = obj(candidate.get("content")).get("parts")
    if not isinstance(parts, list):
        return ""
    texts = (obj(p).get("text") for p in parts if not obj(p).get("thought"))
    return "".join(t for t in texts if isinstance(t, str))


@dataclass
class Draft:
    """What the current attempt has produced so far."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_block: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str = ""
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

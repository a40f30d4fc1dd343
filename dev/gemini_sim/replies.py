"""What the simulator says: deterministic replies, `[sim:...]` markers, Gemini's JSON shapes."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from itertools import cycle, islice
from typing import Any

# HTTP status -> (google.rpc status, message), as the Gemini API answers them.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please retry later."),
    500: ("INTERNAL", "An internal error has occurred. Please retry."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
BEHAVIOURS = frozenset({"hang", "hang-mid", "safety", "safety-mid"})
MODIFIERS = frozenset({"slow", "long", "echo"})
KNOWN = ", ".join([*map(str, ERRORS), *sorted(BEHAVIOURS), *sorted(MODIFIERS)])

_MARKER = re.compile(r"\[sim:([^\]\s]*)\]")
_SPEC = re.compile(r"(?P<name>[a-z0-9-]+?)(?::(?P<delay>\d+(?:\.\d+)?)s)?(?:x(?P<count>\d+))?")
_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
]
_FILLER = (
    "This text comes from the local Gemini simulator, not from a model.",
    "The same request always gets the same reply.",
    "Each word is streamed as its own chunk after a configurable delay.",
    "The history the client sent is quoted above so tests can see it arrived.",
    "Markers in the last user turn make the simulator fail in chosen ways.",
)


@dataclass(frozen=True)
class Marker:
    """A parsed `[sim:NAME(:Ds)(xN)]`: an error status, a behaviour or a modifier."""

    name: str
    retry_delay: float = 1.0  # seconds, sent as RetryInfo with a 429
    count: int | None = None  # fail only the first `count` requests with the same prompt

    @property
    def status(self) -> int | None:
        """The HTTP error status this marker answers with, if it is an error."""
        return int(self.name) if self.name.isdigit() else None

    @property
    def is_fault(self) -> bool:
        return self.name not in MODIFIERS


def parse_marker(spec: str) -> Marker:
    """Parses the inside of a marker (`503`, `429:2s`, `503x2`); raises ValueError if unknown."""
    match = _SPEC.fullmatch(spec.strip().lower())
    name = match["name"] if match else ""
    if not (name in BEHAVIOURS | MODIFIERS or (name.isdigit() and int(name) in ERRORS)):
        raise ValueError(f"unknown simulator marker [sim:{spec}]; known: {KNOWN}")
    assert match is not None
    delay = float(match["delay"]) if match["delay"] else 1.0
    return Marker(name, delay, int(match["count"]) if match["count"] else None)


def markers_in(text: str) -> list[Marker]:
    return [parse_marker(spec) for spec in _MARKER.findall(text)]


def text_of(content: Any) -> str:
    """The text parts of one `Content` object, joined."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


def user_turns(contents: list[Any]) -> list[str]:
    return [text_of(c) for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]


def count_words(*texts: str) -> int:
    return sum(len(t.split()) for t in texts)


def _quote(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "..."


def _header(prompt: str, earlier: list[str]) -> str:
    header = f'Simulated Gemini reply to "{_quote(prompt, 60)}".'
    if earlier:
        said = ", ".join(f'"{" ".join(turn.split()[:4])}"' for turn in earlier[-8:])
        turns = f"{len(earlier)} turn" + ("s" if len(earlier) > 1 else "")
        header += f" Earlier in this conversation ({turns}) you said: {said}."
    return header


TITLE_REQUEST = "Give this conversation a short title"


def title_for(request: str) -> str:
    """A title request (the ai-worker's) gets a title: the first words the user said."""
    said = request.partition("User:")[2].partition("\nGemini:")[0]
    words = [w.strip(".,;:!?\"'()[]") for w in said.split()]
    words = [w for w in words if w and not w.lower().startswith("sim:")][:5]
    return " ".join(words).capitalize() or "New conversation"


def reply_chunks(contents: list[Any], tokens: int, echo: bool = False) -> list[str]:
    """The reply to `contents` as exactly `tokens` chunks; joined, they are the full text.

    The text quotes the last user turn and the start of each earlier one, then filler (chosen by
    a hash of the whole history) up to `tokens` words. Longer texts put several words in a chunk.
    With `echo` the text is the last user turn as it is, without its markers, a line a chunk.
    A request for a conversation title is answered with a short title instead.
    """
    turns = user_turns(contents)
    if turns and turns[-1].startswith(TITLE_REQUEST):
        return [title_for(turns[-1])]
    if echo:
        said = _MARKER.sub("", turns[-1]).strip()
        return said.splitlines(keepends=True) or [said]
    words = _header(turns[-1], turns[:-1]).split()
    digest = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).digest()
    start = int.from_bytes(digest[:4], "big") % len(_FILLER)
    filler = " ".join(_FILLER[start:] + _FILLER[:start]).split()
    words += islice(cycle(filler), max(0, tokens - len(words)))
    size, extra = divmod(len(words), tokens)
    chunks, begin = [], 0
    for i in range(tokens):
        end = begin + size + (i < extra)
        chunks.append(" ".join(words[begin:end]))
        begin = end
    return [chunk + " " for chunk in chunks[:-1]] + chunks[-1:]


def usage(prompt_tokens: int, reply_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": reply_tokens,
        "totalTokenCount": prompt_tokens + reply_tokens,
    }


def response_body(
    model: str,
    response_id: str,
    text: str | None,
    finish: str | None = None,
    usage_metadata: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One `GenerateContentResponse`: a whole reply, or one streamed chunk of it."""
    candidate: dict[str, Any] = {"index": 0}
    if text is not None:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    if finish is not None:
        candidate["finishReason"] = finish
    if finish == "SAFETY":
        candidate["safetyRatings"] = _SAFETY_RATINGS
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage_metadata is not None:
        body["usageMetadata"] = usage_metadata
    return {**body, "modelVersion": model, "responseId": response_id}


def blocked_body(model: str, response_id: str, prompt_tokens: int) -> dict[str, Any]:
    """A prompt refused by the safety filter: feedback and no candidates."""
    return {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS},
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
        "modelVersion": model,
        "responseId": response_id,
    }


def error_body(status: int, message: str | None = None, retry_delay: float = 1.0) -> dict[str, Any]:
    """Gemini's error envelope; a 429 carries QuotaFailure and RetryInfo details."""
    rpc_status, default = ERRORS[status]
    error: dict[str, Any] = {
        "code": status,
        "message": f"{message or default} (simulated)",
        "status": rpc_status,
    }
    if status == 429:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{retry_delay:g}s",
            },
        ]
    return {"error": error}

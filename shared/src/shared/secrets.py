"""Refusing secrets that only look like secrets: placeholders copied from an example, and
strings with too little entropy to resist guessing (``aaaa…``, ``test-secret-xxxx…``)."""

from __future__ import annotations

import math
from collections import Counter

MIN_SECRET_BYTES = 32
# An estimate from the character distribution (Shannon entropy times length). A random
# 32-character hex string scores about 110 bits, `openssl rand -base64 48` about 250; a
# word with padding scores far less.
MIN_ESTIMATED_BITS = 80
# What the examples in this repository, and the usual templates, put where a secret goes.
PLACEHOLDER_MARKERS = (
    "replace",
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "example",
    "development-only",
    "do-not-use",
    "your-secret",
    "your_secret",
    "secret-here",
)
HOW_TO_GENERATE = "generate one with `openssl rand -base64 48`"


def estimated_bits(value: str) -> float:
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values()) * total


def weakness(value: str, *, min_bytes: int = MIN_SECRET_BYTES) -> str | None:
    """Why ``value`` is not fit to be a production secret, or None when it is."""
    if len(value.encode()) < min_bytes:
        return f"must be at least {min_bytes} bytes (got {len(value.encode())})"
    lowered = value.lower()
    marker = next((m for m in PLACEHOLDER_MARKERS if m in lowered), None)
    if marker is not None:
        return f"is a placeholder (it contains {marker!r})"
    if estimated_bits(value) < MIN_ESTIMATED_BITS:
        return "has too little entropy (repeated or predictable characters)"
    return None

"""One-time codes: six digits from ``secrets``, stored only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

CODE_DIGITS = 6
MAX_ATTEMPTS = 5


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _key(secret: str) -> bytes:
    # A key of its own for OTP hashes, derived from the service secret.
    return hashlib.sha256(b"otp-hash:" + secret.encode()).digest()


def hash_code(secret: str, challenge_id: str, code: str) -> str:
    """Bound to the challenge: the same digits hash differently for every challenge."""
    return hmac.new(_key(secret), f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def matches(secret: str, challenge_id: str, code: str, code_hash: str) -> bool:
    return hmac.compare_digest(hash_code(secret, challenge_id, code), code_hash)

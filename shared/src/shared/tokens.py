"""Access tokens: HS256 JWTs with ``sub``, ``iat``, ``exp`` and ``jti``.

The algorithm is pinned on both sides (a token that names any other algorithm, ``none``
included, is rejected) and every claim above is required. ``iat`` carries milliseconds so a
token issued in the same second as a revocation is ordered correctly against it: a token is
revoked when its ``iat`` is earlier than the user's "valid after" time.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti"]
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired. ``str(exc)`` is safe to show."""


@dataclass(frozen=True)
class AccessToken:
    token: str
    user_id: str
    issued_at: float
    expires_at: float
    jti: str

    @property
    def expires_in(self) -> int:
        return max(0, int(self.expires_at - self.issued_at))


@dataclass(frozen=True)
class Claims:
    user_id: str
    issued_at: float
    expires_at: float
    jti: str
    mobile_number: str | None = None


def issue_access_token(
    secret: str,
    user_id: str,
    *,
    ttl_seconds: int,
    mobile_number: str | None = None,
    now: float | None = None,
) -> AccessToken:
    issued_at = now_ms() if now is None else round(now, 3)
    expires_at = int(issued_at) + ttl_seconds
    jti = uuid.uuid4().hex
    payload: dict[str, object] = {
        "sub": user_id,
        # The Node service's claim for the user id: clients that decode the token read it.
        "id": user_id,
        "iat": issued_at,
        "exp": expires_at,
        "jti": jti,
    }
    if mobile_number:
        payload["mobileNumber"] = mobile_number
    token = jwt.encode(payload, secret, algorithm=ALGORITHM)
    return AccessToken(token, user_id, issued_at, float(expires_at), jti)


# Tokens verified lately, so a token used for many requests has its signature checked once
# (HMAC and base64 cost more than the rest of a cached read). Bounded; an entry is used only
# while the token is unexpired, exactly as PyJWT would judge it.
VERIFIED_CACHE_SIZE = 4096
_verified: dict[tuple[str, str], Claims] = {}


def verify_access_token(secret: str, token: str) -> Claims:
    key = (secret, token)
    claims = _verified.get(key)
    if claims is not None:
        if time.time() <= claims.expires_at + LEEWAY_SECONDS:
            return claims
        del _verified[key]
    claims = _decode(secret, token)
    while len(_verified) >= VERIFIED_CACHE_SIZE:
        del _verified[next(iter(_verified))]  # the oldest entry
    _verified[key] = claims
    return claims


def _decode(secret: str, token: str) -> Claims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("Your token has expired! Please log in again.") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Invalid token. Please log in again!") from exc
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("Invalid token. Please log in again!")
    return Claims(
        user_id=sub,
        issued_at=float(payload["iat"]),
        expires_at=float(payload["exp"]),
        jti=str(payload["jti"]),
        mobile_number=payload.get("mobileNumber"),
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_revoked(claims: Claims, valid_after: float | None) -> bool:
    """True when the token was issued before the user's "valid after" time.

    Compared in whole milliseconds: ``iat`` is issued at millisecond precision and
    ``valid_after`` round-trips through Postgres and Redis as a float.
    """
    if valid_after is None:
        return False
    return round(claims.issued_at * 1000) < round(valid_after * 1000)


def now_ms() -> float:
    """The current time in epoch seconds, rounded to the millisecond (a token's ``iat``)."""
    return round(time.time(), 3)


TOKEN_STATE_PREFIX = "auth:tokens-valid-after:"


def token_state_key(user_id: str) -> str:
    """Redis key holding a user's "tokens valid after" time (epoch seconds), set by auth."""
    return TOKEN_STATE_PREFIX + user_id

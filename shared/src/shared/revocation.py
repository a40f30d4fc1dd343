"""Token revocation, honoured by every service that verifies a token (the gateway, auth,
chat and billing), so a request that goes around the gateway cannot use a token that was
revoked by logout, a password change or a reset.

Auth owns each user's "tokens valid after" time. After it commits a revocation it writes
the time to Redis under ``shared.tokens.token_state_key(user_id)`` as a decimal string of
epoch seconds (``f"{t:.3f}"``), for as long as a token lives, so the key outlives every
token it revokes. ``NO_REVOCATION`` (``"0"``: every token is issued after it) is what a
reader stores when auth says there is no revocation, so the cache holds one format only.

Each reader keeps a copy of the times it has read in its process, dropped as soon as Redis
reports a change to the key (:mod:`shared.tracking`), so a request usually costs no Redis
round trip at all. On a miss (never cached, or Redis lost its data) the reader asks the
source: auth reads its own database; every other service asks auth's internal route (once
more when the connection broke before auth answered). The answer is cached with ``SET NX``,
so a fill that raced with a revocation never overwrites auth's newer value. If Redis is
down, every check asks the source; if the source cannot answer either, the request fails
with 503: a check that cannot be made never lets a token through.

The gateway checks every request it forwards, and says so to the service behind it in
``X-Gateway-Checked``: a timestamp and an HMAC of it and the token under a key derived from
``JWT_SECRET``, which only the gateway and the services hold. A service that finds a valid,
fresh one for the very token it was sent skips its own look-up (one Redis round trip per
request); any other request, one that went around the gateway included, is checked in full.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import quote

import httpx
import structlog
from asgi_correlation_id.context import correlation_id
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import ServiceUnavailable, Unauthorized
from shared.http import CLIENT_KEEP_ALIVE_SECONDS
from shared.tokens import Claims, is_revoked, token_state_key
from shared.tracking import MISSING, TrackedKeys

log = structlog.get_logger(__name__)

NO_REVOCATION = "0"
REVOKED = "This token has been revoked. Please log in again."
USER_GONE = "The user belonging to this token does no longer exist."
AUTH_UNAVAILABLE = "The auth service is unavailable. Try again shortly."


CHECKED_HEADER = "X-Gateway-Checked"
# How old a gateway's word may be (it is written for the request it forwards), and how far
# the gateway's clock may run ahead of a service's.
CHECKED_MAX_AGE_SECONDS = 10
CLOCK_SKEW_SECONDS = 2


@functools.lru_cache(maxsize=8)
def _checked_key(secret: str) -> bytes:
    return hashlib.sha256(b"gateway-checked:" + secret.encode()).digest()


def _checked_signature(secret: str, token: str, timestamp: str) -> str:
    # hmac.digest: the one-shot C path, without an HMAC object (every request signs or
    # checks one of these).
    return hmac.digest(_checked_key(secret), f"{timestamp}.{token}".encode(), "sha256").hex()


def gateway_checked(secret: str, token: str, now: float | None = None) -> str:
    """The ``X-Gateway-Checked`` value for a request whose ``token`` the gateway found
    unrevoked just now."""
    timestamp = str(int(time.time() if now is None else now))
    return f"{timestamp}.{_checked_signature(secret, token, timestamp)}"


def checked_by_gateway(secret: str, token: str, value: str, now: float | None = None) -> bool:
    """True when ``value`` is the gateway's fresh word that ``token`` is not revoked."""
    timestamp, _, signature = value.partition(".")
    if not timestamp.isdigit() or len(timestamp) > 12:
        return False
    age = (time.time() if now is None else now) - int(timestamp)
    if not -CLOCK_SKEW_SECONDS <= age <= CHECKED_MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(signature, _checked_signature(secret, token, timestamp))


class UserGone(Exception):
    """The token names a user that does not exist (deleted, or a made-up id)."""


# A user's "valid after" time (None: never revoked); raises UserGone for an unknown user.
Lookup = Callable[[str], Awaitable[float | None]]


class TokenStates:
    """Each user's "tokens valid after" time: this process's copy of the Redis keys while
    Redis tells it of every change (``tracked``, :mod:`shared.tracking`), then Redis, then
    ``lookup`` on a miss."""

    def __init__(
        self,
        redis: Redis,
        lookup: Lookup,
        *,
        cache_seconds: int,
        tracked: TrackedKeys | None = None,
    ) -> None:
        self.redis = redis
        self.lookup = lookup
        self.cache_seconds = cache_seconds
        self.tracked = tracked

    async def valid_after(self, user_id: str) -> float | None:
        key = token_state_key(user_id)
        generation = 0
        if self.tracked is not None:
            known = self.tracked.get(key)
            if known is not MISSING:
                return cast(float | None, known)
            generation = self.tracked.generation
        try:
            cached = await self.redis.get(key)
        except RedisError as exc:
            log.warning("token_state.cache_unavailable", error=repr(exc))
            return await self.lookup(user_id)
        if cached is not None:
            try:
                found = None if cached == NO_REVOCATION else float(cached)
            except ValueError:
                log.warning("token_state.unparsable", key=key, value=cached)
                return await self.lookup(user_id)
            if self.tracked is not None:
                self.tracked.put(key, found, generation)
            return found
        # What the source says is not kept here: the SET below (or auth's newer one) names
        # the key to the copy, and the next check reads it from Redis.
        value = await self.lookup(user_id)
        try:
            stored = NO_REVOCATION if value is None else repr(value)
            await self.redis.set(key, stored, nx=True, ex=self.cache_seconds)
        except RedisError as exc:
            log.warning("token_state.cache_unavailable", error=repr(exc))
        return value

    async def check(self, claims: Claims) -> None:
        """Raises the 401 the client gets when the token was revoked or its user is gone."""
        try:
            valid_after = await self.valid_after(claims.user_id)
        except UserGone:
            raise Unauthorized(USER_GONE, code="user_not_found") from None
        if is_revoked(claims, valid_after):
            raise Unauthorized(REVOKED, code="token_revoked")


def lookup_client(timeout: httpx.Timeout | float) -> httpx.AsyncClient:
    """The HTTP client for :func:`auth_lookup`: it gives up an idle connection to auth
    before auth closes it (CLIENT_KEEP_ALIVE_SECONDS), so no look-up is sent on a
    connection being closed and answered 503."""
    limits = httpx.Limits(keepalive_expiry=CLIENT_KEEP_ALIVE_SECONDS)
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)


def auth_lookup(http: httpx.AsyncClient, auth_url: str) -> Lookup:
    """Asks auth's internal route ``GET /internal/users/{id}/token-state`` (cluster-only)."""
    base = auth_url.rstrip("/")

    async def get(url: str) -> httpx.Response:
        """The answer, asking twice when the first connection broke before auth answered
        (auth restarting, or closing an idle connection just as it was reused): the look-up
        is a read, so asking again is harmless, and a real outage still fails twice. A
        timeout is not asked again: auth is there but slow, and the request is waiting."""
        headers = {"X-Request-ID": correlation_id.get() or ""}
        try:
            return await http.get(url, headers=headers)
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as exc:
            log.info("token_state.lookup_retried", error=repr(exc))
        return await http.get(url, headers=headers)

    async def lookup(user_id: str) -> float | None:
        url = f"{base}/internal/users/{quote(user_id, safe='')}/token-state"
        try:
            response = await get(url)
        except httpx.HTTPError as exc:
            log.warning("token_state.lookup_failed", error=repr(exc))
            raise ServiceUnavailable(AUTH_UNAVAILABLE) from None
        if response.status_code == 404:
            raise UserGone(user_id)
        if response.status_code != 200:
            log.warning("token_state.lookup_failed", status=response.status_code)
            raise ServiceUnavailable(AUTH_UNAVAILABLE)
        try:
            value = json.loads(response.content)["data"]["validAfter"]
            return None if value is None else float(value)
        except (KeyError, TypeError, ValueError):
            log.warning("token_state.lookup_malformed", body=response.content[:200])
            raise ServiceUnavailable(AUTH_UNAVAILABLE) from None

    return lookup

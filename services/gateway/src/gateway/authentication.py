"""Authentication at the edge: signature, expiry and revocation of the bearer token.

Revocation state lives in Redis under ``shared.tokens.token_state_key(user_id)``. The value
is the user's "tokens valid after" time as a decimal string of epoch seconds (auth writes
``f"{t:.3f}"`` with a plain SET after it commits a revocation). ``NO_REVOCATION`` (``"0"``,
epoch zero: every token is issued after it) is what the gateway stores when auth answers
``validAfter: null``, so the cache holds one format only and any value parses as a float.

On a miss the gateway asks auth's internal route and fills the key with ``SET NX EX``: NX so
a fill that raced with a revocation never overwrites auth's newer value. If Redis is down,
every request asks auth.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import aiohttp
import structlog
from asgi_correlation_id.context import correlation_id
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.proxy import unavailable, upstream_error
from gateway.settings import Settings
from shared.errors import Unauthorized
from shared.tokens import (
    Claims,
    InvalidToken,
    bearer_token,
    is_revoked,
    token_state_key,
    verify_access_token,
)

log = structlog.get_logger(__name__)

NO_REVOCATION = "0"

USER_GONE = "The user belonging to this token does no longer exist."
REVOKED = "This token has been revoked. Please log in again."


class TokenStates:
    """Each user's "tokens valid after" time: Redis first, auth's internal route on a miss."""

    def __init__(self, redis: Redis, session: aiohttp.ClientSession, settings: Settings) -> None:
        self.redis = redis
        self.session = session
        self.ttl = settings.token_state_cache_seconds
        self.auth_url = settings.auth_url if "auth" in settings.gateway_upstreams else None
        self.timeout = aiohttp.ClientTimeout(
            total=settings.upstream_timeout_seconds,
            sock_connect=settings.upstream_connect_timeout_seconds,
        )

    async def valid_after(self, user_id: str) -> float | None:
        key = token_state_key(user_id)
        try:
            cached = await self.redis.get(key)
        except RedisError as exc:
            log.warning("token_state.cache_unavailable", error=repr(exc))
            return await self.ask_auth(user_id)
        if cached is not None:
            try:
                return None if cached == NO_REVOCATION else float(cached)
            except ValueError:
                log.warning("token_state.unparsable", key=key, value=cached)
                return await self.ask_auth(user_id)
        value = await self.ask_auth(user_id)
        try:
            stored = NO_REVOCATION if value is None else repr(value)
            await self.redis.set(key, stored, nx=True, ex=self.ttl)
        except RedisError as exc:
            log.warning("token_state.cache_unavailable", error=repr(exc))
        return value

    async def ask_auth(self, user_id: str) -> float | None:
        if self.auth_url is None:
            raise unavailable("auth")
        url = f"{self.auth_url}/internal/users/{quote(user_id, safe='')}/token-state"
        headers = {"X-Request-ID": correlation_id.get() or ""}
        try:
            async with self.session.get(url, headers=headers, timeout=self.timeout) as resp:
                if resp.status == 404:
                    raise Unauthorized(USER_GONE, code="user_not_found")
                if resp.status != 200:
                    log.warning("token_state.lookup_failed", status=resp.status)
                    raise unavailable("auth")
                body = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise upstream_error("auth", exc) from None
        try:
            value = json.loads(body)["data"]["validAfter"]
            return None if value is None else float(value)
        except (KeyError, TypeError, ValueError):
            log.warning("token_state.lookup_malformed", body=body[:200])
            raise unavailable("auth") from None


async def authenticate(authorization: str | None, secret: str, states: TokenStates) -> Claims:
    """The verified, unrevoked claims of the bearer token; raises the 401 the client gets."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized()
    try:
        claims = verify_access_token(secret, token)
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="invalid_token") from None
    if is_revoked(claims, await states.valid_after(claims.user_id)):
        raise Unauthorized(REVOKED, code="token_revoked")
    return claims

"""Authentication at the edge: signature, expiry and revocation of the bearer token.

Revocation is the shared check every token-verifying service makes
(:mod:`shared.revocation`): the user's "tokens valid after" time from this process's copy of
the Redis keys while Redis reports every change to them (:mod:`shared.tracking`), else from
Redis, auth's internal route on a miss.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from redis.asyncio import Redis

from gateway.proxy import unavailable
from gateway.settings import Settings
from shared.aio import Background
from shared.errors import Unauthorized
from shared.revocation import Lookup, TokenStates, auth_lookup, gateway_checked, lookup_client
from shared.tokens import TOKEN_STATE_PREFIX, InvalidToken, bearer_token, verify_access_token
from shared.tracking import TrackedKeys


def token_lookup(http: httpx.AsyncClient, settings: Settings) -> Lookup:
    """Auth's internal route, or a 503 for every miss when auth is not deployed."""
    if "auth" in settings.gateway_upstreams:
        return auth_lookup(http, settings.auth_url)

    async def no_auth(_: str) -> float | None:
        raise unavailable("auth")

    return no_auth


@asynccontextmanager
async def open_token_states(redis: Redis, settings: Settings) -> AsyncIterator[TokenStates]:
    timeout = httpx.Timeout(
        settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
    )
    tracked = TrackedKeys(settings.redis_url, TOKEN_STATE_PREFIX)
    background = Background()
    background.start("token-state-tracking", tracked.run)
    try:
        async with lookup_client(timeout) as http:
            yield TokenStates(
                redis,
                token_lookup(http, settings),
                cache_seconds=settings.token_state_cache_seconds,
                tracked=tracked,
            )
    finally:
        await background.shutdown(grace=2)


async def authenticate(authorization: str | None, secret: str, states: TokenStates) -> str:
    """Checks the bearer token (signature, expiry, revocation) and returns the
    ``X-Gateway-Checked`` value that tells the service behind that it was; raises the 401
    the client gets."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized()
    try:
        claims = verify_access_token(secret, token)
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="invalid_token") from None
    await states.check(claims)
    return gateway_checked(secret, token)

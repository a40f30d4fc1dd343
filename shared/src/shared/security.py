"""The ``CurrentUser`` dependency: who is calling, from the bearer token.

The gateway authenticates every request (signature, expiry, revocation) before forwarding
it; each service checks the signature and the expiry again (a verified token is cached
while it lives), so nothing behind the gateway trusts a header a client could forge, and
revocation again unless the request carries the gateway's signed word that it checked
just now (``X-Gateway-Checked``, :mod:`shared.revocation`), so a request that reaches a
service some other way cannot use a revoked token. The app puts its
:class:`shared.revocation.TokenStates` on ``app.state.token_states`` (see
:func:`shared.runtime.service_runtime`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Unauthorized
from shared.revocation import CHECKED_HEADER, TokenStates, checked_by_gateway
from shared.tokens import Claims, InvalidToken, verify_access_token

_bearer = HTTPBearer(
    auto_error=False, bearerFormat="JWT", description="The token from verify-otp or login."
)


async def current_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    secret = request.app.state.settings.jwt_secret
    token = credentials.credentials
    try:
        claims = verify_access_token(secret, token)
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="invalid_token") from exc
    checked = request.headers.get(CHECKED_HEADER)
    if checked is None or not checked_by_gateway(secret, token, checked):
        states: TokenStates = request.app.state.token_states
        await states.check(claims)
    return claims


CurrentUser = Annotated[Claims, Depends(current_claims)]


def user_id_of(claims: Claims) -> uuid.UUID:
    """The user id the token names. A token whose ``sub`` is not a user id (auth only
    issues ids) is refused like any other invalid token: 401, in every service."""
    try:
        return uuid.UUID(claims.user_id)
    except ValueError:
        raise Unauthorized("Invalid token. Please log in again!", code="invalid_token") from None


async def current_user_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> uuid.UUID:
    """The caller's user id: the ``CurrentUser`` checks, in one dependency (each one more
    costs FastAPI real time on every request)."""
    return user_id_of(await current_claims(request, credentials))


CurrentUserId = Annotated[uuid.UUID, Depends(current_user_id)]


def from_app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency answering ``app.state.<name>``: a service's context, built once in its
    lifespan (``Ctx = Annotated[ChatContext, Depends(from_app_state("chat"))]``)."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return dependency

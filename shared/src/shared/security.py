"""The ``CurrentUser`` dependency: who is calling, from the bearer token.

The gateway authenticates every request (signature, expiry, revocation) before forwarding
it; each service checks all three again, so nothing behind the gateway trusts a header a
client could forge, and a request that reaches a service some other way cannot use a
revoked token. The app puts its :class:`shared.revocation.TokenStates` on
``app.state.token_states`` (see :func:`shared.runtime.service_runtime`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Unauthorized
from shared.revocation import TokenStates
from shared.tokens import Claims, InvalidToken, verify_access_token

_bearer = HTTPBearer(auto_error=False, description="The token from verify-otp or login.")


async def current_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    try:
        claims = verify_access_token(request.app.state.settings.jwt_secret, credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="invalid_token") from exc
    states: TokenStates = request.app.state.token_states
    await states.check(claims)
    return claims


CurrentUser = Annotated[Claims, Depends(current_claims)]

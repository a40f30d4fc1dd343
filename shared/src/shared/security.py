"""The ``CurrentUser`` dependency: who is calling, from the bearer token.

The gateway authenticates every request (signature, expiry, revocation) before forwarding
it; services verify the signature and expiry again, so nothing behind the gateway trusts a
header a client could forge.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Unauthorized
from shared.tokens import Claims, InvalidToken, verify_access_token

_bearer = HTTPBearer(auto_error=False, description="The token from verify-otp or login.")


async def current_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    try:
        return verify_access_token(request.app.state.settings.jwt_secret, credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="invalid_token") from exc


CurrentUser = Annotated[Claims, Depends(current_claims)]

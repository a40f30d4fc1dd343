"""shared.security: the caller's identity, the same in every service."""

import uuid
from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from shared.errors import install_error_handlers
from shared.revocation import CHECKED_HEADER, gateway_checked
from shared.security import CurrentUserId, from_app_state
from shared.tokens import issue_access_token

SECRET = "s" * 64


class NeverRevoked:
    async def check(self, claims) -> None:
        return None


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)
    app.state.settings = SimpleNamespace(jwt_secret=SECRET)
    app.state.token_states = NeverRevoked()
    app.state.greeting = "hello"

    @app.get("/me")
    async def me(user_id: CurrentUserId) -> dict[str, str]:
        return {"id": str(user_id)}

    @app.get("/greeting")
    async def greeting(text: Annotated[str, Depends(from_app_state("greeting"))]) -> dict:
        return {"text": text}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def bearer(token: str, *, checked: bool = False) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if checked:
        headers[CHECKED_HEADER] = gateway_checked(SECRET, token)
    return headers


async def test_the_user_id_comes_from_the_token(client):
    user_id = uuid.uuid4()
    token = issue_access_token(SECRET, str(user_id), ttl_seconds=60).token
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 200 and response.json() == {"id": str(user_id)}


@pytest.mark.parametrize("checked", [False, True])
async def test_a_signed_token_naming_no_user_id_is_401_invalid_token(client, checked):
    token = issue_access_token(SECRET, "admin", ttl_seconds=60).token
    response = await client.get("/me", headers=bearer(token, checked=checked))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_a_service_context_comes_from_the_app_state(client):
    assert (await client.get("/greeting")).json() == {"text": "hello"}

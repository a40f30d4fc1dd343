"""Auth holes from the security review, reproduced as an attacker would, through the
public API of the whole stack (and around the gateway, straight to a service)."""

from __future__ import annotations

import time

import httpx
import pytest

from dev.stack import Stack
from shared.testing.fixtures import random_mobile_number
from shared.tokens import token_state_key

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def code_for(api: httpx.AsyncClient, number: str) -> str:
    response = await api.post("/api/v1/auth/send-otp", json={"mobileNumber": number})
    assert response.status_code == 200, response.text
    return response.json()["otp"]


async def sign_in_like_the_web_client(api: httpx.AsyncClient, number: str) -> str:
    """Sign up (a 409 means an existing account), then a code: what the web client does."""
    signup = await api.post("/api/v1/auth/signup", json={"mobileNumber": number})
    assert signup.status_code in (201, 409), signup.text
    verified = await api.post(
        "/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": await code_for(api, number)}
    )
    assert verified.status_code == 200, verified.text
    return verified.json()["token"]


async def test_pre_registering_a_number_with_a_password_takes_nothing_over(api):
    owner_number = random_mobile_number()
    planted = "attacker-chose-this"
    # The attacker signs the owner's number up with a password of their own.
    attack = await api.post(
        "/api/v1/auth/signup", json={"mobileNumber": owner_number, "password": planted}
    )
    assert attack.status_code == 201
    # The owner arrives through the web client and starts a private chat.
    token = await sign_in_like_the_web_client(api, owner_number)
    room = await api.post("/api/v1/chatroom", json={"name": "private"}, headers=bearer(token))
    assert room.status_code == 201
    # The attacker's password gets no token, so nothing of the owner's can be read.
    login = await api.post(
        "/api/v1/auth/login", json={"mobileNumber": owner_number, "password": planted}
    )
    assert login.status_code == 401, login.text
    assert "token" not in login.json()


async def test_a_logged_out_token_is_refused_by_every_service_not_only_the_gateway(
    api, stack: Stack
):
    token = await sign_in_like_the_web_client(api, random_mobile_number())
    assert (await api.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 200
    behind_the_gateway = {
        "auth": "/api/v1/auth/me",
        "chat": "/api/v1/chatroom",
        "billing": "/api/v1/subscription/status",
    }
    for service, path in behind_the_gateway.items():
        async with httpx.AsyncClient(base_url=stack.url(service), timeout=15) as direct:
            response = await direct.get(path, headers=bearer(token))
        assert response.status_code == 401, (service, response.text)
        assert response.json()["code"] == "token_revoked"


async def test_a_token_in_use_everywhere_is_refused_everywhere_the_moment_it_is_revoked(
    api, stack: Stack
):
    """Every service keeps a copy of the revocation times it has read (shared.tracking):
    a token used through the gateway and at each service straight, so that each holds a
    copy, is refused by all of them on the very next request after logout."""
    token = await sign_in_like_the_web_client(api, random_mobile_number())
    paths = {
        "auth": "/api/v1/auth/me",
        "chat": "/api/v1/chatroom",
        "billing": "/api/v1/subscription/status",
    }
    clients = {s: httpx.AsyncClient(base_url=stack.url(s), timeout=15) for s in paths}
    try:
        for _ in range(3):
            for service, path in paths.items():
                assert (await api.get(path, headers=bearer(token))).status_code == 200
                direct = await clients[service].get(path, headers=bearer(token))
                assert direct.status_code == 200, (service, direct.text)
        assert (await api.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 200
        for service, path in paths.items():
            through = await api.get(path, headers=bearer(token))
            assert through.status_code == 401, (service, through.text)
            assert through.json()["code"] == "token_revoked"
            direct = await clients[service].get(path, headers=bearer(token))
            assert direct.status_code == 401, (service, direct.text)
            assert direct.json()["code"] == "token_revoked"
    finally:
        for client in clients.values():
            await client.aclose()


async def test_revocation_holds_around_the_gateway_when_redis_lost_the_key(
    api, stack: Stack, stack_redis
):
    number = random_mobile_number()
    token = await sign_in_like_the_web_client(api, number)
    me = await api.get("/api/v1/auth/me", headers=bearer(token))
    user_id = me.json()["data"]["user"]["id"]
    assert (await api.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 200
    await stack_redis.delete(token_state_key(user_id))  # as after a Redis restart
    async with httpx.AsyncClient(base_url=stack.url("chat"), timeout=15) as chat:
        response = await chat.get("/api/v1/chatroom", headers=bearer(token))
    assert response.status_code == 401, response.text  # chat asked auth
    assert response.json()["code"] == "token_revoked"
    fresh = await sign_in_like_the_web_client(api, number)
    async with httpx.AsyncClient(base_url=stack.url("chat"), timeout=15) as chat:
        assert (await chat.get("/api/v1/chatroom", headers=bearer(fresh))).status_code == 200


async def test_verify_otp_does_not_tell_registered_numbers_apart(api):
    registered = random_mobile_number()
    assert (
        await api.post("/api/v1/auth/signup", json={"mobileNumber": registered})
    ).status_code == 201
    answers = [
        await api.post("/api/v1/auth/verify-otp", json={"mobileNumber": n, "otp": "000000"})
        for n in (registered, random_mobile_number())
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()


async def test_auths_internal_route_is_not_routed_by_the_gateway(api):
    response = await api.get("/internal/users/00000000-0000-4000-8000-000000000000/token-state")
    assert response.status_code == 404


async def test_only_the_gateways_own_fresh_word_skips_a_services_revocation_check(
    api, stack: Stack
):
    """Chat skips its look-up only for the gateway's signed, fresh X-Gateway-Checked for
    that very token; made-up, stale or borrowed values are checked in full."""
    from shared.revocation import gateway_checked

    token = await sign_in_like_the_web_client(api, random_mobile_number())
    other = await sign_in_like_the_web_client(api, random_mobile_number())
    assert (await api.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 200
    secret = stack.env["JWT_SECRET"]
    for value in (
        "1700000000.forged",
        gateway_checked(secret, token, now=time.time() - 3600),  # stale
        gateway_checked(secret, other),  # another token's
        gateway_checked("a-secret-the-attacker-chose-0123456789abcd", token),
    ):
        async with httpx.AsyncClient(base_url=stack.url("chat"), timeout=15) as chat:
            response = await chat.get(
                "/api/v1/chatroom", headers=bearer(token) | {"X-Gateway-Checked": value}
            )
        assert response.status_code == 401, (value, response.text)
        assert response.json()["code"] == "token_revoked"

"""JWT checks at the edge: signature, expiry, algorithm, and revocation via Redis and auth."""

import base64
import json
import time
from typing import Any

import jwt
import pytest

from shared.tokens import issue_access_token, token_state_key

PROTECTED = "/api/v1/usage"


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_token_is_401_unauthorized(gateway, services) -> None:
    response = await gateway.get(PROTECTED)
    assert response.status_code == 401
    assert response.json() == {
        "status": "fail",
        "code": "unauthorized",
        "message": "You are not logged in! Please log in to get access.",
    }
    assert not services["chat"].received


async def test_non_bearer_authorization_is_401_unauthorized(gateway) -> None:
    response = await gateway.get(PROTECTED, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.json()["code"] == "unauthorized"


def tampered(secret: str) -> str:
    header, _, signature = issue_access_token(secret, "user-1", ttl_seconds=600).token.split(".")
    now = int(time.time())
    payload = b64url({"sub": "admin", "iat": now, "exp": now + 600, "jti": "x"})
    return f"{header}.{payload}.{signature}"


def alg_none(secret: str) -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "iat": now, "exp": now + 600, "jti": "x"}
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


def wrong_secret(secret: str) -> str:
    return issue_access_token("another-secret-" + "y" * 40, "user-1", ttl_seconds=600).token


def expired(secret: str) -> str:
    return issue_access_token(secret, "user-1", ttl_seconds=60, now=time.time() - 3600).token


def hs384(secret: str) -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "iat": now, "exp": now + 600, "jti": "x"}
    return jwt.encode(claims, secret, algorithm="HS384")


def missing_jti(secret: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "user-1", "iat": now, "exp": now + 600}, secret, algorithm="HS256")


@pytest.mark.parametrize("make_token", [tampered, alg_none, wrong_secret, hs384, missing_jti])
async def test_forged_tokens_are_401_invalid_token(gateway, services, jwt_secret, make_token):
    response = await gateway.get(PROTECTED, headers=bearer(make_token(jwt_secret)))
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "invalid_token"
    assert body["message"] == "Invalid token. Please log in again!"
    assert not services["chat"].received
    assert not services["auth"].token_state_calls


async def test_expired_token_is_401_invalid_token(gateway, services, jwt_secret) -> None:
    response = await gateway.get(PROTECTED, headers=bearer(expired(jwt_secret)))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert response.json()["message"] == "Your token has expired! Please log in again."
    assert not services["chat"].received


async def test_valid_token_is_forwarded(gateway, services, new_user) -> None:
    user = new_user()
    response = await gateway.get(PROTECTED, headers=user.headers)
    assert response.status_code == 200
    assert len(services["chat"].received) == 1


async def test_revocation_in_redis_after_iat_is_401_token_revoked(
    gateway, services, new_user, redis
) -> None:
    user = new_user()
    await redis.set(token_state_key(user.id), f"{user.issued_at + 0.001:.3f}")
    response = await gateway.get(PROTECTED, headers=user.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"
    assert response.json()["message"] == "This token has been revoked. Please log in again."
    assert not services["chat"].received
    assert not services["auth"].token_state_calls  # answered from Redis


async def test_revocation_in_redis_before_iat_lets_the_token_through(
    gateway, services, new_user, redis
) -> None:
    user = new_user()
    await redis.set(token_state_key(user.id), f"{user.issued_at:.3f}")  # same ms: still valid
    response = await gateway.get(PROTECTED, headers=user.headers)
    assert response.status_code == 200
    assert not services["auth"].token_state_calls


async def test_cache_miss_asks_auth_once_and_caches_the_answer(
    gateway, services, new_user, redis
) -> None:
    user = new_user()
    for _ in range(3):
        assert (await gateway.get(PROTECTED, headers=user.headers)).status_code == 200
    assert services["auth"].token_state_calls == [user.id]
    key = token_state_key(user.id)
    assert await redis.get(key) == "0"
    assert 86_000 < await redis.ttl(key) <= 86_400


async def test_revocation_known_only_to_auth_is_applied_and_cached(
    gateway, services, new_user, redis
) -> None:
    user = new_user(valid_after=time.time() + 5)
    for _ in range(2):
        response = await gateway.get(PROTECTED, headers=user.headers)
        assert response.json()["code"] == "token_revoked"
    assert services["auth"].token_state_calls == [user.id]
    assert float(await redis.get(token_state_key(user.id))) > user.issued_at


async def test_user_that_no_longer_exists_is_401(gateway, services, new_user, redis) -> None:
    user = new_user(exists=False)
    response = await gateway.get(PROTECTED, headers=user.headers)
    assert response.status_code == 401
    assert response.json()["message"] == "The user belonging to this token does no longer exist."
    assert not services["chat"].received
    assert await redis.get(token_state_key(user.id)) is None


async def test_cache_fill_never_overwrites_a_revocation_written_meanwhile(
    gateway, services, new_user, redis
) -> None:
    """Auth commits a revocation (and SETs the key) while the gateway is asking it."""
    user = new_user(valid_after=None)
    key = token_state_key(user.id)
    revoked_at = f"{user.issued_at + 1:.3f}"

    async def revoke_meanwhile(_: str) -> None:
        await redis.set(key, revoked_at)

    services["auth"].on_token_state = revoke_meanwhile
    first = await gateway.get(PROTECTED, headers=user.headers)
    assert first.status_code == 200  # decided on what auth answered
    assert await redis.get(key) == revoked_at
    second = await gateway.get(PROTECTED, headers=user.headers)
    assert second.json()["code"] == "token_revoked"


async def test_without_redis_every_request_asks_auth(
    gateway_factory, services, new_user, dead_url
) -> None:
    user = new_user()
    redis_url = dead_url.replace("http://", "redis://") + "/0"
    async with gateway_factory(redis_url=redis_url) as gateway:
        for _ in range(2):
            assert (await gateway.get(PROTECTED, headers=user.headers)).status_code == 200
    assert services["auth"].token_state_calls == [user.id, user.id]


async def test_auth_unreachable_on_a_cache_miss_is_503(
    gateway_factory, services, new_user, dead_url
):
    user = new_user()
    async with gateway_factory(auth_url=dead_url) as gateway:
        response = await gateway.get(PROTECTED, headers=user.headers)
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert response.json()["message"] == "The auth service is unavailable. Try again shortly."
    assert not services["chat"].received


async def test_a_checked_token_is_forwarded_with_the_gateways_signed_word(
    gateway, services, new_user, jwt_secret
) -> None:
    """Chat and billing skip their own revocation look-up for it (shared.revocation)."""
    from shared.revocation import checked_by_gateway

    user = new_user()
    assert (await gateway.get(PROTECTED, headers=user.headers)).status_code == 200
    received = services["chat"].received[-1].headers
    token = user.headers["Authorization"].removeprefix("Bearer ")
    assert checked_by_gateway(jwt_secret, token, received["x-gateway-checked"])


async def test_a_client_cannot_send_the_gateways_word(gateway, services) -> None:
    await gateway.post(
        "/api/v1/auth/signup", json={}, headers={"X-Gateway-Checked": "1700000000.forged"}
    )
    assert "x-gateway-checked" not in services["auth"].received[-1].headers

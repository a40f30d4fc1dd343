"""The auth flow through the gateway, with every service running as its own process."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import psycopg
import pytest

from shared.testing.fixtures import random_mobile_number
from shared.version import __version__

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """Every error: the JSON envelope, and the request id header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert body["status"] == ("fail" if status < 500 else "error")
    assert isinstance(body["message"], str) and body["message"]
    if code:
        assert body["code"] == code
    return body


async def signup(api: httpx.AsyncClient, password: str | None = None) -> tuple[str, str]:
    number = random_mobile_number()
    body = {"mobileNumber": number} | ({"password": password} if password else {})
    response = await api.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 201, response.text
    return number, response.json()["userId"]


async def otp_for(api: httpx.AsyncClient, number: str, path: str = "send-otp") -> str:
    response = await api.post(f"/api/v1/auth/{path}", json={"mobileNumber": number})
    assert response.status_code == 200, response.text
    return response.json()["otp"]


async def login_with_otp(api: httpx.AsyncClient, number: str, password: str | None = None) -> str:
    """A token from a code; ``password`` confirms the one chosen at signup."""
    otp = await otp_for(api, number)
    body = {"mobileNumber": number, "otp": otp} | ({"password": password} if password else {})
    response = await api.post("/api/v1/auth/verify-otp", json=body)
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def test_happy_path_signup_otp_me_and_password_login(api):
    number = random_mobile_number()
    national = number.removeprefix("+91")
    created = await api.post(
        "/api/v1/auth/signup", json={"mobileNumber": national, "password": "s3cret-pass"}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["mobileNumber"] == number
    assert body["data"]["user"]["id"] == body["userId"]
    assert created.headers.get("x-request-id")

    sent = await api.post("/api/v1/auth/send-otp", json={"mobileNumber": number})
    assert sent.status_code == 200
    assert sent.json()["message"] == "OTP sent successfully."
    verified = await api.post(
        "/api/v1/auth/verify-otp",
        json={"mobileNumber": number, "otp": sent.json()["otp"], "password": "s3cret-pass"},
    )
    assert verified.status_code == 200
    token = verified.json()["token"]
    assert verified.json()["data"]["token"] == token

    for path in ("/api/v1/auth/me", "/api/v1/user/me"):
        me = await api.get(path, headers=bearer(token))
        assert me.status_code == 200
        user = me.json()["data"]["user"]
        assert user["id"] == body["userId"]
        assert user["mobileNumber"] == number
        assert user["currentSubscription"]["tier"] == "BASIC"

    login = await api.post(
        "/api/v1/auth/login", json={"mobileNumber": national, "password": "s3cret-pass"}
    )
    assert login.status_code == 200
    me = await api.get("/api/v1/auth/me", headers=bearer(login.json()["token"]))
    assert me.json()["data"]["user"]["id"] == body["userId"]


async def test_duplicate_signup_is_409(api):
    number, _ = await signup(api)
    response = await api.post("/api/v1/auth/signup", json={"mobileNumber": number})
    assert_error(response, 409, "mobile_number_taken")


async def test_invalid_number_is_400(api):
    response = await api.post("/api/v1/auth/signup", json={"mobileNumber": "12345"})
    body = assert_error(response, 400, "validation_error")
    assert body["errors"][0]["field"] == "mobileNumber"


async def test_unknown_number_on_send_otp_is_404(api):
    response = await api.post(
        "/api/v1/auth/send-otp", json={"mobileNumber": random_mobile_number()}
    )
    assert_error(response, 404, "user_not_found")


async def test_five_wrong_otps_then_the_right_one_is_refused(api):
    number, _ = await signup(api)
    otp = await otp_for(api, number)
    wrong = f"{(int(otp) + 1) % 1_000_000:06d}"
    for _ in range(5):
        response = await api.post(
            "/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": wrong}
        )
        assert_error(response, 401)
    response = await api.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": otp})
    assert_error(response, 401, "otp_attempts_exceeded")


async def test_expired_code_is_refused(api, database_url):
    number, user_id = await signup(api)
    otp = await otp_for(api, number)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE auth.otp_challenges SET expires_at = now() - interval '1 second'"
            " WHERE user_id = %s",
            (user_id,),
        )
    response = await api.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": otp})
    assert_error(response, 401, "otp_expired")


async def test_code_used_twice_is_refused(api):
    number, _ = await signup(api)
    otp = await otp_for(api, number)
    first = await api.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": otp})
    assert first.status_code == 200
    second = await api.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": otp})
    assert_error(second, 401, "invalid_otp")


async def test_reset_code_is_refused_by_verify_and_accepted_by_reset(api):
    number, _ = await signup(api, "first-password")
    token = await login_with_otp(api, number)
    code = await otp_for(api, number, "forgot-password")
    refused = await api.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": code})
    assert_error(refused, 401)

    reset = await api.post(
        "/api/v1/auth/reset-password",
        json={"mobileNumber": number, "otp": code, "newPassword": "second-password"},
    )
    assert reset.status_code == 200
    # The reset revoked the token issued before it, at the gateway.
    assert_error(await api.get("/api/v1/auth/me", headers=bearer(token)), 401, "token_revoked")
    login = await api.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "second-password"}
    )
    assert login.status_code == 200
    assert (
        await api.get("/api/v1/auth/me", headers=bearer(login.json()["token"]))
    ).status_code == (200)


async def test_password_change_revokes_earlier_tokens(api):
    number, _ = await signup(api, "first-password")
    older = await login_with_otp(api, number, "first-password")
    current = (
        await api.post(
            "/api/v1/auth/login", json={"mobileNumber": number, "password": "first-password"}
        )
    ).json()["token"]
    changed = await api.post(
        "/api/v1/auth/change-password",
        json={"currentPassword": "first-password", "newPassword": "second-password"},
        headers=bearer(current),
    )
    assert changed.status_code == 200
    fresh = changed.json()["token"]
    for revoked in (older, current):
        assert_error(
            await api.get("/api/v1/auth/me", headers=bearer(revoked)), 401, "token_revoked"
        )
    assert (await api.get("/api/v1/auth/me", headers=bearer(fresh))).status_code == 200


async def test_logout_revokes_the_token(api):
    number, _ = await signup(api)
    token = await login_with_otp(api, number)
    assert (await api.get("/api/v1/user/me", headers=bearer(token))).status_code == 200
    assert (await api.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 200
    assert_error(await api.get("/api/v1/user/me", headers=bearer(token)), 401, "token_revoked")
    # Logging in again gives a working token.
    assert (
        await api.get("/api/v1/user/me", headers=bearer(await login_with_otp(api, number)))
    ).status_code == 200


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_bad_tokens_are_401(api, jwt_secret):
    number, user_id = await signup(api)
    good = await login_with_otp(api, number)
    header, _, signature = good.split(".")
    now = time.time()
    claims = {"sub": user_id, "iat": now, "exp": now + 600, "jti": "j"}
    tampered = f"{header}.{_b64(claims | {'exp': now + 10**6})}.{signature}"
    expired = jwt.encode(claims | {"iat": now - 7200, "exp": now - 3600}, jwt_secret, "HS256")
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    wrong_secret = jwt.encode(claims, "another-secret-that-is-long-enough!!", "HS256")
    for token in (tampered, expired, alg_none, wrong_secret, "garbage"):
        response = await api.get("/api/v1/auth/me", headers=bearer(token))
        assert_error(response, 401, "invalid_token")
    assert_error(await api.get("/api/v1/auth/me"), 401, "unauthorized")


async def test_malformed_json_is_400(api):
    response = await api.post(
        "/api/v1/auth/signup",
        content=b'{"mobileNumber": ',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "invalid_json")


async def test_unknown_route_is_404_even_without_a_token(api):
    assert_error(await api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await api.get("/api/v1/auth/nothing-here"), 404, "not_found")
    assert_error(await api.get("/nowhere"), 404, "not_found")


async def test_wrong_method_is_405(api):
    response = await api.get("/api/v1/auth/signup")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_oversized_body_is_413(api):
    response = await api.post(
        "/api/v1/auth/signup",
        content=b'{"mobileNumber": "' + b"9" * 400_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


async def test_request_id_from_the_client_comes_back(api):
    response = await api.post(
        "/api/v1/auth/send-otp",
        json={"mobileNumber": random_mobile_number()},
        headers={"X-Request-ID": "trace-me-123"},
    )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-me-123"


async def test_health_and_readiness(api):
    health = await api.get("/healthz")
    assert health.status_code == 200
    assert health.json()["version"] == __version__
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_merged_openapi_lists_the_auth_routes(api):
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["version"] == __version__  # what /docs shows
    paths = response.json()["paths"]
    assert "/api/v1/auth/signup" in paths
    assert "/api/v1/user/me" in paths
    docs = await api.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()

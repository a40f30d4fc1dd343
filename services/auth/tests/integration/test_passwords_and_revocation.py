"""Reset codes, password change, logout and the "tokens valid after" time they set."""

import pytest

from shared.testing.fixtures import random_mobile_number
from shared.tokens import is_revoked, token_state_key, verify_access_token


async def signed_up(client, password: str | None = None) -> tuple[str, str, str]:
    """A new user logged in with an OTP, which confirmed ``password``: (number, user id,
    token)."""
    number = random_mobile_number()
    body = {"mobileNumber": number} | ({"password": password} if password else {})
    user_id = (await client.post("/api/v1/auth/signup", json=body)).json()["userId"]
    otp = (await client.post("/api/v1/auth/send-otp", json={"mobileNumber": number})).json()["otp"]
    proof = {"mobileNumber": number, "otp": otp} | ({"password": password} if password else {})
    verified = await client.post("/api/v1/auth/verify-otp", json=proof)
    assert verified.status_code == 200, verified.text
    return number, user_id, verified.json()["token"]


async def reset_code(client, number: str) -> str:
    response = await client.post("/api/v1/auth/forgot-password", json={"mobileNumber": number})
    assert response.status_code == 200, response.text
    return response.json()["otp"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_state(client, user_id: str) -> float | None:
    response = await client.get(f"/internal/users/{user_id}/token-state")
    assert response.status_code == 200
    return response.json()["data"]["validAfter"]


async def test_reset_code_cannot_log_in(client):
    number, _, _ = await signed_up(client)
    reset = await client.post("/api/v1/auth/forgot-password", json={"mobileNumber": number})
    assert reset.status_code == 200
    assert reset.json()["message"] == "OTP for password reset sent successfully."
    response = await client.post(
        "/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": reset.json()["otp"]}
    )
    assert response.status_code == 401


async def test_login_code_cannot_reset_the_password(client):
    number, _, _ = await signed_up(client)
    otp = (await client.post("/api/v1/auth/send-otp", json={"mobileNumber": number})).json()["otp"]
    response = await client.post(
        "/api/v1/auth/reset-password",
        json={"mobileNumber": number, "otp": otp, "newPassword": "new password"},
    )
    assert response.status_code == 401


async def test_reset_password_sets_it_and_revokes_earlier_tokens(client, redis, jwt_secret):
    number, user_id, token = await signed_up(client, "old password")
    assert await token_state(client, user_id) is None
    otp = (await client.post("/api/v1/auth/forgot-password", json={"mobileNumber": number})).json()[
        "otp"
    ]
    response = await client.post(
        "/api/v1/auth/reset-password",
        json={"mobileNumber": number, "otp": otp, "newPassword": "new password"},
    )
    assert response.status_code == 200
    valid_after = await token_state(client, user_id)
    assert valid_after > verify_access_token(jwt_secret, token).issued_at
    assert float(await redis.get(token_state_key(user_id))) == pytest.approx(valid_after)

    old = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "old password"}
    )
    new = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "new password"}
    )
    assert old.status_code == 401 and new.status_code == 200
    # The reset code is used up.
    again = await client.post(
        "/api/v1/auth/reset-password",
        json={"mobileNumber": number, "otp": otp, "newPassword": "third password"},
    )
    assert again.status_code == 401


async def test_change_password_needs_the_current_one_when_set(client):
    _, _, token = await signed_up(client, "old password")
    missing = await client.post(
        "/api/v1/auth/change-password", json={"newPassword": "new password"}, headers=auth(token)
    )
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "currentPassword"
    wrong = await client.post(
        "/api/v1/auth/change-password",
        json={"newPassword": "new password", "currentPassword": "not it at all"},
        headers=auth(token),
    )
    assert wrong.status_code == 401


async def test_change_password_revokes_earlier_tokens_and_returns_a_new_one(
    client, redis, jwt_secret
):
    number, user_id, token = await signed_up(client, "old password")
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"newPassword": "new password", "currentPassword": "old password"},
        headers=auth(token),
    )
    assert response.status_code == 200
    new_token = response.json()["token"]
    valid_after = await token_state(client, user_id)
    assert is_revoked(verify_access_token(jwt_secret, token), valid_after)
    assert not is_revoked(verify_access_token(jwt_secret, new_token), valid_after)
    assert float(await redis.get(token_state_key(user_id))) == pytest.approx(valid_after)
    login = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "new password"}
    )
    assert login.status_code == 200


async def test_otp_only_user_sets_a_first_password_with_a_fresh_code(client):
    number, _, token = await signed_up(client)
    without = await client.post(
        "/api/v1/auth/change-password", json={"newPassword": "first password"}, headers=auth(token)
    )
    assert without.status_code == 400
    assert without.json()["errors"][0]["field"] == "otp"
    code = await reset_code(client, number)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = await client.post(
        "/api/v1/auth/change-password",
        json={"newPassword": "first password", "otp": wrong},
        headers=auth(token),
    )
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_otp"
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"newPassword": "first password", "otp": code},
        headers=auth(token),
    )
    assert response.status_code == 200, response.text
    # The code is used up.
    again = await client.post(
        "/api/v1/auth/change-password",
        json={"newPassword": "second password", "otp": code},
        headers=auth(response.json()["token"]),
    )
    assert again.status_code == 400  # a password is set now: the current one is asked for
    login = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "first password"}
    )
    assert login.status_code == 200


async def test_logout_revokes_the_token(client, redis, jwt_secret):
    _, user_id, token = await signed_up(client)
    response = await client.post("/api/v1/auth/logout", headers=auth(token))
    assert response.status_code == 200
    valid_after = await token_state(client, user_id)
    assert is_revoked(verify_access_token(jwt_secret, token), valid_after)
    assert await redis.get(token_state_key(user_id)) is not None


async def test_protected_routes_need_a_valid_token(client):
    for method, path in [
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/change-password"),
    ]:
        missing = await client.request(method, path)
        assert missing.status_code == 401, path
        assert missing.json()["code"] == "unauthorized"
        forged = await client.request(method, path, headers=auth("a.b.c"))
        assert forged.status_code == 401
        assert forged.json()["code"] == "invalid_token"


async def test_token_state_of_unknown_user_is_404(client):
    response = await client.get("/internal/users/00000000-0000-4000-8000-000000000000/token-state")
    assert response.status_code == 404
    assert (await client.get("/internal/users/not-a-uuid/token-state")).status_code == 404

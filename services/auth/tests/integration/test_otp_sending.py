"""OTP send throttles and delivery modes."""

import pytest

from shared.testing.fixtures import random_mobile_number


async def new_user(client) -> str:
    number = random_mobile_number()
    assert (
        await client.post("/api/v1/auth/signup", json={"mobileNumber": number})
    ).status_code == 201
    return number


async def send(client, number: str):
    return await client.post("/api/v1/auth/send-otp", json={"mobileNumber": number})


@pytest.mark.parametrize("settings_overrides", [{"otp_resend_cooldown_seconds": 30}])
async def test_resend_within_cooldown_is_429_with_retry_after(client):
    number = await new_user(client)
    assert (await send(client, number)).status_code == 200
    response = await send(client, number)
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= 30
    assert response.json()["code"] == "rate_limited"


@pytest.mark.parametrize("settings_overrides", [{"otp_sends_per_number_per_hour": 3}])
async def test_sends_per_number_per_hour(client):
    number = await new_user(client)
    for _ in range(3):
        assert (await send(client, number)).status_code == 200
    response = await send(client, number)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    # Reset codes count against the same budget: an SMS costs the same.
    forgot = await client.post("/api/v1/auth/forgot-password", json={"mobileNumber": number})
    assert forgot.status_code == 429


@pytest.mark.parametrize("settings_overrides", [{"otp_sends_per_ip_per_hour": 4}])
async def test_sends_per_ip_per_hour_count_unknown_numbers_too(client):
    for _ in range(2):
        assert (await send(client, random_mobile_number())).status_code == 404
    for _ in range(2):
        assert (await send(client, await new_user(client))).status_code == 200
    response = await send(client, await new_user(client))
    assert response.status_code == 429
    assert "network" in response.json()["message"]


@pytest.mark.parametrize("settings_overrides", [{"otp_delivery": "log"}])
async def test_log_delivery_keeps_the_code_out_of_the_response(client):
    response = await send(client, await new_user(client))
    assert response.status_code == 200
    assert "otp" not in response.json()
    assert response.json()["data"]["expiresIn"] == 300

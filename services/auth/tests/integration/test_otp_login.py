"""Signup, OTP login and password login against real Postgres and Redis."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from shared.events import SubscriptionChanged, encode
from shared.events.envelope import to_json
from shared.testing.fixtures import random_mobile_number
from shared.testing.wait import eventually
from shared.tokens import verify_access_token


async def signup(client, number: str, password: str | None = None) -> dict:
    body = {"mobileNumber": number}
    if password:
        body["password"] = password
    response = await client.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def send_otp(client, number: str, path: str = "send-otp") -> str:
    response = await client.post(f"/api/v1/auth/{path}", json={"mobileNumber": number})
    assert response.status_code == 200, response.text
    return response.json()["otp"]


async def verify(client, number: str, otp: str, password: str | None = None):
    body = {"mobileNumber": number, "otp": otp} | ({"password": password} if password else {})
    return await client.post("/api/v1/auth/verify-otp", json=body)


async def with_confirmed_password(client, password: str) -> dict:
    """A user who signed up with ``password`` and confirmed it with a code."""
    number = random_mobile_number()
    user = await signup(client, number, password)
    response = await verify(client, number, await send_otp(client, number), password)
    assert response.status_code == 200, response.text
    return user | {"number": number}


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_signup_returns_reference_keys_and_normalised_number(client):
    # A fresh number each run: Redis is shared between test sessions, and a fixed number
    # would meet the per-number sign-up limit left by earlier runs.
    national = random_mobile_number().removeprefix("+91")
    body = await signup(client, national)
    assert body["status"] == "success"
    assert body["message"] == "User registered successfully."
    assert body["mobileNumber"] == f"+91{national}"
    user = body["data"]["user"]
    assert user["id"] == body["userId"]
    assert user["mobileNumber"] == body["mobileNumber"]
    assert {"createdAt", "updatedAt", "currentSubscription"} <= user.keys()


async def test_same_number_in_another_format_is_a_duplicate(client):
    number = random_mobile_number()  # +919XXXXXXXXX
    await signup(client, number)
    national = number.removeprefix("+91")
    response = await client.post("/api/v1/auth/signup", json={"mobileNumber": national})
    assert response.status_code == 409
    assert response.json() == {
        "status": "fail",
        "message": "User with this mobile number already exists.",
        "code": "mobile_number_taken",
    }


async def test_concurrent_duplicate_signups_give_one_user(client):
    number = random_mobile_number()
    responses = await asyncio.gather(
        *(client.post("/api/v1/auth/signup", json={"mobileNumber": number}) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]


@pytest.mark.parametrize("number", ["12345", "abcdefghij", "+91 12", "", "9" * 40])
async def test_invalid_number_is_400_naming_the_field(client, number):
    response = await client.post("/api/v1/auth/signup", json={"mobileNumber": number})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] == "mobileNumber"


async def test_short_password_is_400(client):
    response = await client.post(
        "/api/v1/auth/signup",
        json={"mobileNumber": random_mobile_number(), "password": "short"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "password"


async def test_send_otp_to_unknown_number_is_404(client):
    response = await client.post(
        "/api/v1/auth/send-otp", json={"mobileNumber": random_mobile_number()}
    )
    assert response.status_code == 404
    assert response.json()["message"] == "User not found. Please create an account."


async def test_otp_login_gives_a_token_for_the_user(client, jwt_secret):
    number = random_mobile_number()
    user_id = (await signup(client, number))["userId"]
    otp = await send_otp(client, number)
    assert len(otp) == 6 and otp.isdigit()
    response = await verify(client, number, otp)
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "OTP verified successfully."
    assert body["token"] == body["data"]["token"]
    assert body["data"]["tokenType"] == "Bearer"
    assert 86_000 < body["data"]["expiresIn"] <= 86_400
    assert verify_access_token(jwt_secret, body["token"]).user_id == user_id

    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["data"]["user"]["id"] == user_id
    user_me = await client.get(
        "/api/v1/user/me", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert user_me.json() == me.json()


async def test_otp_is_stored_hashed(client, auth_database_url):
    number = random_mobile_number()
    await signup(client, number)
    otp = await send_otp(client, number)
    with psycopg.connect(auth_database_url) as conn:
        (code_hash,) = conn.execute(
            "SELECT c.code_hash FROM auth.otp_challenges c JOIN auth.users u ON u.id = c.user_id"
            " WHERE u.mobile_number = %s",
            (number,),
        ).fetchone()
    assert otp not in code_hash and len(code_hash) == 64


async def test_five_wrong_codes_burn_the_code(client):
    number = random_mobile_number()
    await signup(client, number)
    otp = await send_otp(client, number)
    for attempt in range(5):
        response = await verify(client, number, wrong(otp))
        assert response.status_code == 401
        expected = "invalid_otp" if attempt < 4 else "otp_attempts_exceeded"
        assert response.json()["code"] == expected
    response = await verify(client, number, otp)
    assert response.status_code == 401
    assert response.json()["code"] == "otp_attempts_exceeded"
    # A new code works again.
    assert (await verify(client, number, await send_otp(client, number))).status_code == 200


async def test_expired_code_is_refused(client, auth_database_url):
    number = random_mobile_number()
    await signup(client, number)
    otp = await send_otp(client, number)
    with psycopg.connect(auth_database_url) as conn:
        conn.execute(
            "UPDATE auth.otp_challenges SET expires_at = now() - interval '1 second'"
            " WHERE user_id = (SELECT id FROM auth.users WHERE mobile_number = %s)",
            (number,),
        )
    response = await verify(client, number, otp)
    assert response.status_code == 401
    assert response.json() == {"status": "fail", "message": "OTP expired.", "code": "otp_expired"}


async def test_code_works_only_once(client):
    number = random_mobile_number()
    await signup(client, number)
    otp = await send_otp(client, number)
    assert (await verify(client, number, otp)).status_code == 200
    second = await verify(client, number, otp)
    assert second.status_code == 401
    assert second.json()["code"] == "invalid_otp"


async def test_concurrent_verifications_of_one_code_let_one_through(client):
    number = random_mobile_number()
    await signup(client, number)
    otp = await send_otp(client, number)
    responses = await asyncio.gather(*(verify(client, number, otp) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [200] + [401] * 5


async def test_new_code_replaces_the_old_one(client):
    number = random_mobile_number()
    await signup(client, number)
    first = await send_otp(client, number)
    second = await send_otp(client, number)
    if first != second:
        assert (await verify(client, number, first)).status_code == 401
    assert (await verify(client, number, second)).status_code == 200


async def test_malformed_otp_is_400_not_a_counted_attempt(client):
    number = random_mobile_number()
    await signup(client, number)
    otp = await send_otp(client, number)
    for bad in ["12345", "abcdef", "1234567"]:
        response = await verify(client, number, bad)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "otp"
    assert (await verify(client, number, otp)).status_code == 200


async def test_verify_answers_an_unknown_number_like_a_known_one_without_a_code(client):
    known = random_mobile_number()
    await signup(client, known)
    unknown = await verify(client, random_mobile_number(), "123456")
    no_code = await verify(client, known, "123456")
    assert unknown.status_code == no_code.status_code == 401
    assert (
        unknown.json()
        == no_code.json()
        == {
            "status": "fail",
            "code": "invalid_otp",
            "message": "Invalid OTP.",
        }
    )


async def test_password_login(client, jwt_secret):
    user = await with_confirmed_password(client, "correct horse")
    number, user_id = user["number"], user["userId"]
    response = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "correct horse"}
    )
    assert response.status_code == 200
    assert verify_access_token(jwt_secret, response.json()["token"]).user_id == user_id


async def test_wrong_password_and_unknown_number_look_the_same(client):
    number = (await with_confirmed_password(client, "correct horse"))["number"]
    wrong_password = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "wrong horse"}
    )
    unknown = await client.post(
        "/api/v1/auth/login",
        json={"mobileNumber": random_mobile_number(), "password": "correct horse"},
    )
    assert wrong_password.status_code == unknown.status_code == 401
    assert wrong_password.json() == unknown.json()


async def test_user_without_password_cannot_log_in_with_one(client):
    number = random_mobile_number()
    await signup(client, number)
    response = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "anything-at-all"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"login_failures_per_number_per_hour": 3}])
async def test_repeated_login_failures_are_throttled(client):
    number = (await with_confirmed_password(client, "correct horse"))["number"]
    for _ in range(3):
        response = await client.post(
            "/api/v1/auth/login", json={"mobileNumber": number, "password": "wrong horse"}
        )
        assert response.status_code == 401
    response = await client.post(
        "/api/v1/auth/login", json={"mobileNumber": number, "password": "correct horse"}
    )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_signup_emits_user_registered_through_the_outbox(client, redis):
    number = random_mobile_number()
    user_id = (await signup(client, number))["userId"]

    async def published() -> bool:
        entries = await redis.xrevrange("auth.events", count=200)
        return any(json.loads(f["envelope"])["payload"]["userId"] == user_id for _, f in entries)

    await eventually(published, what="UserRegistered on auth.events")


async def test_me_shows_the_subscription_projection(client, redis):
    number = random_mobile_number()
    user_id = (await signup(client, number))["userId"]
    token = (await verify(client, number, await send_otp(client, number))).json()["token"]
    period_start = datetime.now(UTC).replace(microsecond=0)
    period_end = period_start + timedelta(days=30)
    event = SubscriptionChanged(
        user_id=user_id,
        tier="PRO",
        status="active",
        current_period_start=period_start,
        current_period_end=period_end,
        as_of=datetime.now(UTC),
    )
    envelope = encode(event, producer="billing")
    await redis.xadd("billing.events", {"type": envelope.type, "envelope": to_json(envelope)})

    async def pro() -> bool:
        me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        return me.json()["data"]["user"]["currentSubscription"]["tier"] == "PRO"

    await eventually(pro, what="currentSubscription to show PRO")
    me = await client.get("/api/v1/user/me", headers={"Authorization": f"Bearer {token}"})
    current = me.json()["data"]["user"]["currentSubscription"]
    assert current["status"] == "active"
    assert current["cancelAtPeriodEnd"] is False
    assert datetime.fromisoformat(current["currentPeriodStart"]) == period_start
    assert datetime.fromisoformat(current["currentPeriodEnd"]) == period_end

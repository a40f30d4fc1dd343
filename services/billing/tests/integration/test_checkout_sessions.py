"""A user has at most one open Checkout Session: POST /subscribe/pro hands out the open one
again (repeated or concurrent calls), and makes a new one only once it expired or was
completed. Through billing's HTTP API, against the Stripe simulator and the real SDK."""

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from billing.app import create_app
from shared.testing.asgi import app_client
from shared.testing.fixtures import mark_user_unrevoked
from shared.tokens import issue_access_token

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def as_user(redis_url, jwt_secret) -> Callable[[], tuple[str, dict[str, str]]]:
    """A new user: (id, the Authorization header of a token of theirs)."""

    def make() -> tuple[str, dict[str, str]]:
        user = str(uuid.uuid4())
        mark_user_unrevoked(redis_url, user)
        token = issue_access_token(jwt_secret, user, ttl_seconds=600).token
        return user, {"Authorization": f"Bearer {token}"}

    return make


async def subscribe(billing: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    response = await billing.post("/api/v1/subscribe/pro", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def sessions_at_stripe(stripe_sim, user: str) -> list[dict]:
    state = await stripe_sim.state()
    return [s for s in state["checkout_sessions"] if s["client_reference_id"] == user]


def rows(database_url: str, user: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT stripe_session_id, status FROM billing.checkout_sessions"
            " WHERE user_id = %s ORDER BY created_at",
            (user,),
        ).fetchall()


def expire_in_billing(database_url: str, session_id: str) -> None:
    """The session's time is up as far as billing knows (its expires_at has passed)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE billing.checkout_sessions SET expires_at = now() - interval '1 second'"
            " WHERE stripe_session_id = %s",
            (session_id,),
        )


async def test_repeated_and_concurrent_subscribes_share_one_open_session(
    billing_settings, stripe_sim, as_user, billing_database_url
):
    user, auth = as_user()
    async with app_client(create_app(billing_settings(stripe_sim.url))) as billing:
        first = await subscribe(billing, auth)
        again = [await subscribe(billing, auth) for _ in range(3)]
        racing = await asyncio.gather(*(subscribe(billing, auth) for _ in range(10)))
    assert {(d["sessionId"], d["checkoutUrl"]) for d in [first, *again, *racing]} == {
        (first["sessionId"], first["checkoutUrl"])
    }
    at_stripe = await sessions_at_stripe(stripe_sim, user)
    assert [s["id"] for s in at_stripe] == [first["sessionId"]]
    # Created with an explicit expiry: CHECKOUT_SESSION_TTL_MINUTES (60) from now.
    assert abs(at_stripe[0]["expires_at"] - (time.time() + 3600)) < 120
    assert rows(billing_database_url, user) == [(first["sessionId"], "open")]


async def test_concurrent_first_subscribes_of_one_user_end_with_one_session(
    billing_settings, stripe_sim, as_user
):
    user, auth = as_user()
    async with app_client(create_app(billing_settings(stripe_sim.url))) as billing:
        racing = await asyncio.gather(*(subscribe(billing, auth) for _ in range(8)))
    assert len({d["sessionId"] for d in racing}) == 1
    assert len(await sessions_at_stripe(stripe_sim, user)) == 1


async def test_once_the_open_session_expired_a_new_one_is_created(
    billing_settings, stripe_sim, as_user, billing_database_url, sign
):
    user, auth = as_user()
    async with app_client(create_app(billing_settings(stripe_sim.url))) as billing:
        first = await subscribe(billing, auth)
        # Time passes: the session's expires_at is behind, at Stripe and for billing.
        expired = await stripe_sim.http.post(
            f"{stripe_sim.url}/_sim/checkout/sessions/{first['sessionId']}/expire"
        )
        assert expired.status_code == 200, expired.text
        expire_in_billing(billing_database_url, first["sessionId"])
        second = await subscribe(billing, auth)
        assert second["sessionId"] != first["sessionId"]
        assert await subscribe(billing, auth) == second

        # Expired at Stripe before its time (dashboard, API): checkout.session.expired.
        await stripe_sim.stripe.v1.checkout.sessions.expire_async(second["sessionId"])
        for payload in await stripe_sim.event_payloads(second["sessionId"]):
            response = await billing.post(
                "/api/v1/webhook/stripe", content=payload, headers=sign(payload)
            )
            assert response.status_code == 200, response.text
        third = await subscribe(billing, auth)
    assert third["sessionId"] not in (first["sessionId"], second["sessionId"])
    at_stripe = {s["id"]: s["status"] for s in await sessions_at_stripe(stripe_sim, user)}
    assert at_stripe == {
        first["sessionId"]: "expired",
        second["sessionId"]: "expired",
        third["sessionId"]: "open",
    }
    assert rows(billing_database_url, user) == [
        (first["sessionId"], "expired"),
        (second["sessionId"], "expired"),
        (third["sessionId"], "open"),
    ]


async def test_a_completed_session_is_not_handed_out_again(
    billing_settings, stripe_sim, as_user, billing_database_url, sign
):
    user, auth = as_user()
    async with app_client(create_app(billing_settings(stripe_sim.url))) as billing:

        async def deliver(object_id: str) -> None:
            for payload in await stripe_sim.event_payloads(object_id):
                response = await billing.post(
                    "/api/v1/webhook/stripe", content=payload, headers=sign(payload)
                )
                assert response.status_code == 200, response.text

        paid = await subscribe(billing, auth)
        await stripe_sim.pay(paid["checkoutUrl"])
        await deliver(paid["sessionId"])
        assert rows(billing_database_url, user) == [(paid["sessionId"], "complete")]
        # Pro now; then the subscription ends at once: Basic, and free to subscribe again.
        session = await stripe_sim.stripe.v1.checkout.sessions.retrieve_async(paid["sessionId"])
        await stripe_sim.stripe.v1.subscriptions.cancel_async(str(session.subscription))
        await deliver(str(session.subscription))
        status = await billing.get("/api/v1/subscription/status", headers=auth)
        assert status.json()["data"]["tier"] == "BASIC"
        again = await subscribe(billing, auth)
    assert again["sessionId"] != paid["sessionId"]


async def test_a_create_that_failed_is_retried_with_the_same_reservation(
    billing_settings, stripe_sim, as_user, billing_database_url
):
    """Stripe unreachable during the create: the reservation stays, and the next request
    creates the session for it (same idempotency key), not a second one."""
    user, auth = as_user()
    customer = await stripe_sim.stripe.v1.customers.create_async(params={"metadata": {}})
    with psycopg.connect(billing_database_url) as conn:
        conn.execute(
            "INSERT INTO billing.customers (user_id, stripe_customer_id) VALUES (%s, %s)",
            (user, customer.id),
        )
    down = billing_settings("http://127.0.0.1:1", stripe_timeout_seconds=1)
    async with app_client(create_app(down)) as billing:
        response = await billing.post("/api/v1/subscribe/pro", headers=auth)
        assert response.status_code == 503, response.text
    assert rows(billing_database_url, user) == [(None, "open")]
    async with app_client(create_app(billing_settings(stripe_sim.url))) as billing:
        created = await subscribe(billing, auth)
    assert rows(billing_database_url, user) == [(created["sessionId"], "open")]
    assert len(await sessions_at_stripe(stripe_sim, user)) == 1


async def test_a_reservation_too_old_for_stripe_is_abandoned_for_a_new_one(
    billing_settings, stripe_sim, as_user, billing_database_url
):
    """A reservation whose create never went through, and whose expiry is now closer than
    Stripe accepts (30 minutes), cannot be created any more: a new one takes its place."""
    user, auth = as_user()
    soon = datetime.now(UTC) + timedelta(minutes=20)
    with psycopg.connect(billing_database_url) as conn:
        conn.execute(
            "INSERT INTO billing.checkout_sessions (id, user_id, expires_at) VALUES (%s, %s, %s)",
            (uuid.uuid4(), user, soon),
        )
    async with app_client(create_app(billing_settings(stripe_sim.url))) as billing:
        created = await subscribe(billing, auth)
    assert rows(billing_database_url, user) == [
        (None, "abandoned"),
        (created["sessionId"], "open"),
    ]
    assert len(await sessions_at_stripe(stripe_sim, user)) == 1

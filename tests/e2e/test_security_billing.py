"""Billing holes from the security review, reproduced as an attacker would, through the
public API of the whole stack (the gateway, billing, chat, auth and the Stripe simulator
reached with the real stripe SDK; webhooks signed and sent through the gateway)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from typing import Any

import httpx
import psycopg
import pytest
import stripe

from dev.stack import REPO_ROOT, Stack
from shared.testing.accounts import sign_up_and_in
from shared.testing.wait import eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


class User:
    """A signed-in user of the public API."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.id = ""
        self.headers: dict[str, str] = {}

    async def sign_in(self) -> User:
        account = await sign_up_and_in(self.api)
        self.id, self.headers = account.user_id, account.headers
        return self

    async def subscribe(self) -> dict[str, str]:
        response = await self.api.post("/api/v1/subscribe/pro", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def tiers(self) -> dict[str, str]:
        """The tier as billing, chat and auth each tell it."""
        status = await self.api.get("/api/v1/subscription/status", headers=self.headers)
        usage = await self.api.get("/api/v1/usage", headers=self.headers)
        me = await self.api.get("/api/v1/auth/me", headers=self.headers)
        return {
            "billing": status.json()["data"]["tier"],
            "chat": usage.json()["data"]["tier"],
            "auth": me.json()["data"]["user"]["currentSubscription"]["tier"],
        }


@pytest.fixture
async def user(api) -> User:
    return await User(api).sign_in()


@pytest.fixture
def stripe_client(stack: Stack) -> stripe.StripeClient:
    """The real SDK against the stack's simulator (as the Stripe Dashboard would act)."""
    return stripe.StripeClient("sk_test_e2e", base_addresses={"api": stack.url("stripe-sim")})


async def sessions_of(stripe_sim: httpx.AsyncClient, user: User) -> dict[str, str]:
    """The user's Checkout Sessions at Stripe: id -> status."""
    state = (await stripe_sim.get("/_sim/state")).json()
    return {
        s["id"]: s["status"]
        for s in state["checkout_sessions"]
        if s["client_reference_id"] == user.id
    }


def billing_rows(database_url: str, user: User) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT stripe_session_id, status FROM billing.checkout_sessions"
            " WHERE user_id = %s ORDER BY created_at",
            (user.id,),
        ).fetchall()


async def test_one_user_cannot_open_more_than_one_checkout_session(
    user, stripe_sim, stripe_client, database_url
):
    # The attacker calls subscribe again and again, and many times at once.
    first = await user.subscribe()
    repeated = [await user.subscribe() for _ in range(5)]
    racing = await asyncio.gather(*(user.subscribe() for _ in range(10)))
    for data in (*repeated, *racing):
        assert data == first
    assert await sessions_of(stripe_sim, user) == {first["sessionId"]: "open"}

    # Expired at Stripe (checkout.session.expired reaches billing): a new one, and only one.
    await stripe_client.v1.checkout.sessions.expire_async(first["sessionId"])

    async def closed() -> bool:
        return billing_rows(database_url, user) == [(first["sessionId"], "expired")]

    await eventually(closed, timeout=20, interval=0.1, what="checkout.session.expired applied")
    second = await user.subscribe()
    assert second["sessionId"] != first["sessionId"]
    assert (await asyncio.gather(*(user.subscribe() for _ in range(5)))) == [second] * 5

    # Its time up (at Stripe and for billing): a new one again.
    moved = await stripe_sim.post(f"/_sim/checkout/sessions/{second['sessionId']}/expire")
    assert moved.status_code == 200, moved.text
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE billing.checkout_sessions SET expires_at = now() - interval '1 second'"
            " WHERE stripe_session_id = %s",
            (second["sessionId"],),
        )
    third = await user.subscribe()
    assert third["sessionId"] not in (first["sessionId"], second["sessionId"])
    at_stripe = await sessions_of(stripe_sim, user)
    assert at_stripe == {
        first["sessionId"]: "expired",
        second["sessionId"]: "expired",
        third["sessionId"]: "open",
    }


async def test_a_subscription_to_another_price_does_not_make_the_user_pro(
    user, stripe_sim, stripe_client, database_url
):
    # A cheap price of another product in the same Stripe account, and a paid, active
    # subscription to it that names the user (as a dashboard payment link would).
    cheap = await stripe_client.v1.prices.create_async(
        params={
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Sticker club"},
        }
    )
    customer = await stripe_client.v1.customers.create_async(
        params={"metadata": {"userId": user.id}}
    )
    session = await stripe_client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "client_reference_id": user.id,
            "line_items": [{"price": cheap.id, "quantity": 1}],
            "subscription_data": {"metadata": {"userId": user.id}},
            "success_url": "http://localhost/success",
            "cancel_url": "http://localhost/cancel",
        }
    )
    paid = await stripe_sim.post(f"{session.url}/pay", follow_redirects=False)
    assert paid.status_code == 303, paid.text

    def projected_everywhere() -> bool:
        """Billing applied the subscription, and chat and auth the SubscriptionChanged."""
        with psycopg.connect(database_url) as conn:
            return all(
                conn.execute(f"SELECT 1 FROM {table} WHERE user_id = %s", (user.id,)).fetchone()
                is not None
                for table in (
                    "billing.subscriptions",
                    "chat.tier_projection",
                    "auth.tier_projection",
                )
            )

    await eventually(projected_everywhere, timeout=20, interval=0.1, what="the projections")
    assert await user.tiers() == {"billing": "BASIC", "chat": "BASIC", "auth": "BASIC"}

    # The Pro price through billing's own Checkout still makes them Pro, everywhere.
    checkout = await user.subscribe()
    paid = await stripe_sim.post(f"{checkout['checkoutUrl']}/pay", follow_redirects=False)
    assert paid.status_code == 303, paid.text

    async def pro_everywhere() -> bool:
        return set((await user.tiers()).values()) == {"PRO"}

    await eventually(pro_everywhere, timeout=20, interval=0.1, what="PRO in billing, chat, auth")


def start(module: str, tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m <module> serve`` as an operator starts it: no APP_ENV, so production."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    return subprocess.run(
        [sys.executable, "-m", module, "serve"],
        env=keep | {"PYTHONPATH": str(REPO_ROOT)} | env,
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_the_stripe_simulator_and_weak_webhook_secrets(tmp_path):
    good = {
        "JWT_SECRET": secrets.token_urlsafe(48),
        "STRIPE_SECRET_KEY": "sk_live_" + secrets.token_urlsafe(24),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_urlsafe(24),
    }
    simulator = start("billing", tmp_path, **good, STRIPE_API_BASE="http://127.0.0.1:12111")
    assert simulator.returncode == 2, simulator.stderr
    assert "unset STRIPE_API_BASE" in simulator.stderr
    without_key = {k: v for k, v in good.items() if k != "STRIPE_SECRET_KEY"}
    keyless = start("billing", tmp_path, **without_key)
    assert keyless.returncode == 2
    assert "STRIPE_SECRET_KEY is required in production" in keyless.stderr
    weak = start("billing", tmp_path, **(good | {"STRIPE_WEBHOOK_SECRET": "whsec_replace_me"}))
    assert weak.returncode == 2
    assert "STRIPE_WEBHOOK_SECRET must be at least 32 bytes" in weak.stderr
    for done in (simulator, keyless, weak):
        assert "Invalid configuration" in done.stderr and "Traceback" not in done.stderr


def test_production_refuses_the_gemini_simulator(tmp_path):
    simulator = start(
        "ai_worker",
        tmp_path,
        GOOGLE_GEMINI_API_KEY="AIza" + secrets.token_urlsafe(26),
        GEMINI_BASE_URL="http://127.0.0.1:8765",
    )
    assert simulator.returncode == 2, simulator.stderr
    assert "unset GEMINI_BASE_URL" in simulator.stderr
    keyless = start("ai_worker", tmp_path)
    assert keyless.returncode == 2
    assert "GOOGLE_GEMINI_API_KEY is required in production" in keyless.stderr
    for done in (simulator, keyless):
        assert "Invalid configuration" in done.stderr and "Traceback" not in done.stderr

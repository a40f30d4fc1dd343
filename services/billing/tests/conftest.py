from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from billing.settings import Settings
from dev.stripe_sim.app import SimConfig
from dev.stripe_sim.app import create_app as create_stripe_sim
from dev.stripe_sim.store import PriceSpec
from shared.migrations import MESSAGING, migrate
from shared.testing.asgi import served

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
# Random-looking, as any secret outside development must be (shared.secrets).
WEBHOOK_SECRET = "whsec_bt_R7kQ2mZx9Wc4Lp8Vn3Hs6Tj1Df5Gy0Ba"
PRO_PRICE = "price_pro_monthly"
# Another product's price, as one created in the Stripe dashboard would be.
OTHER_PRICE = "price_team_addon"


@pytest.fixture(scope="session")
def billing_database_url(database_url: str) -> str:
    migrate(database_url, "billing", [MESSAGING, MIGRATIONS])
    return database_url


@pytest.fixture
def billing_settings(
    billing_database_url: str, redis_url: str, jwt_secret: str
) -> Callable[..., Settings]:
    """Billing's settings for a test (app_env test), against ``stripe_api_base``."""

    def make(stripe_api_base: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": billing_database_url,
            "redis_url": redis_url,
            "jwt_secret": jwt_secret,
            "app_env": "test",
            "stripe_api_base": stripe_api_base,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_pro_price_id": PRO_PRICE,
            "reprocess_interval_seconds": 3600,
        }
        return Settings(_env_file=None, **(values | overrides))

    return make


def signed(payload: bytes) -> dict[str, str]:
    """Headers of a webhook POST of ``payload`` signed as Stripe signs it."""
    t = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{t}.".encode() + payload, hashlib.sha256)
    return {"Stripe-Signature": f"t={t},v1={mac.hexdigest()}", "Content-Type": "application/json"}


@pytest.fixture
def sign() -> Callable[[bytes], dict[str, str]]:
    return signed


class StripeSim:
    """The Stripe simulator on a real socket: the real SDK, its pages and its controls."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http
        self.stripe = stripe.StripeClient("sk_test_billing", base_addresses={"api": url})

    async def state(self) -> dict[str, Any]:
        return (await self.http.get(f"{self.url}/_sim/state")).json()

    async def events(self) -> list[dict[str, Any]]:
        return (await self.http.get(f"{self.url}/_sim/events")).json()["events"]

    async def pay(self, checkout_url: str) -> None:
        response = await self.http.post(f"{checkout_url}/pay")
        assert response.status_code in (200, 303), response.text

    async def checkout(self, user_id: str, price: str) -> str:
        """A Checkout Session for ``price`` made outside billing (a dashboard link, an
        old integration), for a customer of the user's; paid. Returns the subscription id."""
        customer = await self.stripe.v1.customers.create_async(
            params={"metadata": {"userId": user_id}}
        )
        session = await self.stripe.v1.checkout.sessions.create_async(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "client_reference_id": user_id,
                "line_items": [{"price": price, "quantity": 1}],
                "subscription_data": {"metadata": {"userId": user_id}},
                "success_url": "http://localhost/success",
                "cancel_url": "http://localhost/cancel",
            }
        )
        await self.pay(str(session.url))
        done = await self.stripe.v1.checkout.sessions.retrieve_async(session.id)
        return str(done.subscription)

    async def event_payloads(self, object_id: str) -> list[bytes]:
        """Every event naming ``object_id``, oldest first, as the bytes Stripe would POST."""
        return [
            json.dumps(e["payload"]).encode()
            for e in await self.events()
            if object_id in json.dumps(e["payload"]["data"]["object"])
        ]


@pytest.fixture
async def stripe_sim() -> AsyncIterator[StripeSim]:
    """A simulator of its own that knows the Pro price and another product's price; its
    events are recorded, not sent (a test posts them to billing)."""
    config = SimConfig(prices=(PriceSpec(PRO_PRICE), PriceSpec(OTHER_PRICE, unit_amount=100)))
    async with served(create_stripe_sim(config)) as url, httpx.AsyncClient(timeout=10) as http:
        yield StripeSim(url, http)

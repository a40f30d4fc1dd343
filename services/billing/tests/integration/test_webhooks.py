"""Billing against the Stripe simulator on a real socket: an event whose handling fails
answers 5xx (so Stripe retries), stays stored, and is applied later by reprocessing."""

import json

import httpx
import psycopg
import pytest
import stripe

from billing import service
from billing.app import create_app
from dev.stripe_sim.app import SimConfig
from dev.stripe_sim.app import create_app as create_stripe_sim
from shared.db import Database
from shared.testing.asgi import app_client, served

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def a_paid_subscription_event(
    sim_url: str, type_: str = "customer.subscription.created"
) -> bytes:
    """Create and pay a subscription at the simulator; the event of ``type_`` it recorded,
    as bytes."""
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": sim_url})
    customer = await client.v1.customers.create_async(params={"metadata": {"userId": "u"}})
    user_id = "7f0c2a44-2f4e-4d3b-9a59-3c1b5f0e8d21"
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "client_reference_id": user_id,
            "line_items": [{"price": "price_pro_monthly", "quantity": 1}],
            "subscription_data": {"metadata": {"userId": user_id}},
            "success_url": "http://localhost/success",
            "cancel_url": "http://localhost/cancel",
        }
    )
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{session.url}/pay")).status_code in (200, 303)
        events = (await http.get(f"{sim_url}/_sim/events")).json()["events"]
    wanted = next(e for e in events if e["type"] == type_)
    return json.dumps(wanted["payload"]).encode()


def event_row(database_url: str, event_id: str):
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT processed_at IS NOT NULL, attempts, last_error IS NOT NULL"
            " FROM billing.stripe_events WHERE id = %s",
            (event_id,),
        ).fetchone()


async def test_failed_event_answers_5xx_and_is_reprocessed_later(
    billing_database_url, billing_settings, sign
):
    async with served(create_stripe_sim(SimConfig())) as sim_url:
        payload = await a_paid_subscription_event(sim_url)
        event_id = json.loads(payload)["id"]

        # Stripe's API unreachable while the webhook arrives: 5xx, the event kept.
        down = billing_settings("http://127.0.0.1:1")
        async with app_client(create_app(down)) as billing:
            response = await billing.post(
                "/api/v1/webhook/stripe", content=payload, headers=sign(payload)
            )
        assert response.status_code >= 500
        assert response.json()["status"] == "error"
        assert event_row(billing_database_url, event_id) == (False, 1, True)

        # Stripe reachable again: the stored event is applied by reprocessing.
        up = billing_settings(sim_url)
        app = create_app(up)
        async with app_client(app) as billing:
            applied = await service.reprocess_stored(
                Database(app.state.pool), app.state.billing, older_than=0
            )
            assert applied == 1
            assert event_row(billing_database_url, event_id)[0] is True
            # Stripe's retry of the same event is a 200 no-op now.
            again = await billing.post(
                "/api/v1/webhook/stripe", content=payload, headers=sign(payload)
            )
            assert again.status_code == 200
            assert again.json() == {"received": True}
    with psycopg.connect(billing_database_url) as conn:
        (status,) = conn.execute(
            "SELECT status FROM billing.subscriptions WHERE stripe_subscription_id = %s",
            (json.loads(payload)["data"]["object"]["id"],),
        ).fetchone()
    assert status == "active"


async def test_invoice_payment_succeeded_makes_the_user_pro_like_invoice_paid(
    billing_database_url, billing_settings, sign
):
    """The Node service's renewal event: a Stripe endpoint set up for it works with us."""
    async with served(create_stripe_sim(SimConfig())) as sim_url:
        paid = json.loads(await a_paid_subscription_event(sim_url, "invoice.paid"))
        event = {**paid, "id": f"{paid['id']}_succeeded", "type": "invoice.payment_succeeded"}
        payload = json.dumps(event).encode()
        async with app_client(create_app(billing_settings(sim_url))) as billing:
            response = await billing.post(
                "/api/v1/webhook/stripe", content=payload, headers=sign(payload)
            )
        assert response.status_code == 200, response.text
    subscription_id = service.subscription_id_of(event)
    assert subscription_id
    with psycopg.connect(billing_database_url) as conn:
        row = conn.execute(
            "SELECT status FROM billing.subscriptions WHERE stripe_subscription_id = %s",
            (subscription_id,),
        ).fetchone()
    assert row == ("active",)


async def test_webhook_without_signature_is_400_json(billing_settings, sign):
    settings = billing_settings("http://127.0.0.1:1")
    async with app_client(create_app(settings)) as billing:
        response = await billing.post("/api/v1/webhook/stripe", content=b"{}")
        assert response.status_code == 400
        assert response.json()["code"] == "missing_signature"
        garbage = b"not json"
        response = await billing.post(
            "/api/v1/webhook/stripe", content=garbage, headers=sign(garbage)
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_event"

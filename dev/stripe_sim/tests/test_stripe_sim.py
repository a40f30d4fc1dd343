"""The Stripe simulator, driven by the real stripe SDK over a real socket, with its webhooks
received (and verified with `stripe.Webhook.construct_event`) by a small app on another one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
import uvicorn
from fastapi import FastAPI, Request, Response

from dev.stripe_sim import API_VERSION, SimConfig, create_app
from shared.testing.wait import eventually

SECRET = "whsec_test_stripe_sim"
PRICE = "price_pro_monthly"
DAY = 86_400
REPO_ROOT = Path(__file__).resolve().parents[3]

# stripe's HTTPXClient (the async fallback) passes bytes as `data=`, which httpx 0.28 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def _wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    """Runs the app on a real 127.0.0.1 socket in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait_until(lambda: server.started or not thread.is_alive(), 10, "the server to start")
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Receiver:
    """Records every webhook POST; answers the statuses in `plan` first, then 200."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)

    def clear(self) -> None:
        self.received.clear()
        self.plan.clear()

    def events(self, *, ok_only: bool = True) -> list[stripe.Event]:
        """The deliveries as verified events (construct_event raises on a bad signature)."""
        return [
            stripe.Webhook.construct_event(r["body"], r["signature"], SECRET)
            for r in self.received
            if r["status"] == 200 or not ok_only
        ]

    def types(self) -> list[str]:
        return [e.type for e in self.events()]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    app = FastAPI()

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        status = rec.plan.pop(0) if rec.plan else 200
        rec.received.append(
            {
                "body": await request.body(),
                "signature": request.headers.get("stripe-signature"),
                "content_type": request.headers.get("content-type"),
                "user_agent": request.headers.get("user-agent"),
                "status": status,
            }
        )
        return Response(status_code=status)

    with _serve(app) as url:
        rec.url = f"{url}/webhook"
        yield rec


@pytest.fixture(scope="module")
def sim_url(receiver: Receiver) -> Iterator[str]:
    config = SimConfig(
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        retry_delays=(0.05, 0.1, 0.2),
        pay_wait_seconds=5,
    )
    with _serve(create_app(config)) as url:
        yield url


@pytest.fixture(autouse=True)
def _reset(sim_url: str, receiver: Receiver) -> None:
    httpx.post(f"{sim_url}/_sim/reset").raise_for_status()
    receiver.clear()


@pytest.fixture
def client(sim_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_sim", base_addresses={"api": sim_url}, max_network_retries=0
    )


def _control(sim_url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{sim_url}/_sim/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def _session_params(customer_id: str, **extra: Any) -> Any:
    return {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": "user-1",
        "line_items": [{"price": PRICE, "quantity": 1}],
        "success_url": "http://app.test/billing/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://app.test/billing/cancel",
        "subscription_data": {"metadata": {"userId": "user-1"}},
        "metadata": {"userId": "user-1"},
        **extra,
    }


def _session(client: stripe.StripeClient, customer_id: str, **extra: Any) -> Any:
    return client.v1.checkout.sessions.create(params=_session_params(customer_id, **extra))


def _paid_subscription(client: stripe.StripeClient, receiver: Receiver) -> tuple[Any, Any]:
    """A customer who went through Checkout and paid: (session, subscription)."""
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    session = _session(client, customer.id)
    assert httpx.post(session.url + "/pay").status_code == 303
    subscription = client.v1.subscriptions.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).subscription
    )
    receiver.clear()
    return session, subscription


@dataclass
class Sim:
    """The async side: the SDK's `*_async` calls and plain HTTP to the pages and controls."""

    url: str
    http: httpx.AsyncClient
    stripe: stripe.StripeClient
    receiver: Receiver

    async def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(f"{self.url}/_sim/{path}", json=body)
        response.raise_for_status()
        return response.json()

    async def events(self) -> list[dict[str, Any]]:
        return (await self.http.get(f"{self.url}/_sim/events")).json()["events"]

    async def attempts(self, event_id: str) -> list[dict[str, Any]]:
        return next(e for e in await self.events() if e["id"] == event_id)["attempts"]

    async def received(self, count: int) -> list[stripe.Event]:
        """Waits for `count` successful deliveries; the verified events."""
        await eventually(
            lambda: len(self.receiver.events()) >= count, timeout=5, what=f"{count} webhooks"
        )
        events = self.receiver.events()
        assert len(events) == count, [e.type for e in events]
        return events

    async def session(self, customer_id: str, **extra: Any) -> Any:
        params = _session_params(customer_id, **extra)
        return await self.stripe.v1.checkout.sessions.create_async(params=params)

    async def subscription(self, sub_id: str) -> Any:
        return await self.stripe.v1.subscriptions.retrieve_async(sub_id)

    async def paid_subscription(self) -> Any:
        """A customer who went through Checkout and paid; the webhooks so far forgotten."""
        customer = await self.stripe.v1.customers.create_async(params={"email": "a@example.com"})
        session = await self.session(customer.id)
        assert (await self.http.post(session.url + "/pay")).status_code == 303
        done = await self.stripe.v1.checkout.sessions.retrieve_async(session.id)
        self.receiver.clear()
        return await self.subscription(done.subscription)


@pytest.fixture
async def sim(sim_url: str, client: stripe.StripeClient, receiver: Receiver) -> AsyncIterator[Sim]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield Sim(sim_url, http, client, receiver)


def _period(subscription: Any) -> tuple[int, int]:
    item = subscription["items"].data[0]
    return item.current_period_start, item.current_period_end


# --- API ----------------------------------------------------------------------------------------


def test_customer_create_replays_for_the_same_idempotency_key(
    client: stripe.StripeClient, sim_url: str
) -> None:
    params: Any = {"email": "ada@example.com", "phone": "+15550100", "metadata": {"userId": "u1"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": "cus:u1"})
    again = client.v1.customers.create(params=params, options={"idempotency_key": "cus:u1"})

    assert first.id.startswith("cus_") and again.id == first.id
    assert (first.email, first.phone, first.metadata.to_dict()) == (
        "ada@example.com",
        "+15550100",
        {"userId": "u1"},
    )
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert client.v1.customers.retrieve(first.id).email == "ada@example.com"
    state = httpx.get(f"{sim_url}/_sim/state").json()
    assert [c["id"] for c in state["customers"]] == [first.id]

    with pytest.raises(stripe.IdempotencyError) as other_params:
        client.v1.customers.create(
            params={"email": "bob@example.com"}, options={"idempotency_key": "cus:u1"}
        )
    assert other_params.value.http_status == 400
    assert "same parameters" in str(other_params.value)
    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        client.v1.billing_portal.sessions.create(
            params={"customer": first.id}, options={"idempotency_key": "cus:u1"}
        )


async def test_async_calls_and_a_session_with_a_hosted_url(sim: Sim) -> None:
    customer = await sim.stripe.v1.customers.create_async(params={"email": "ada@example.com"})
    session = await sim.stripe.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "client_reference_id": "user-1",
            "line_items": [{"price": PRICE, "quantity": 1}],
            "success_url": "http://app.test/ok?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://app.test/cancel",
            "metadata": {"userId": "user-1"},
        },
        options={"idempotency_key": "checkout:user-1:1"},
    )
    fetched = await sim.stripe.v1.checkout.sessions.retrieve_async(session.id)

    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert session.url == f"{sim.url}/checkout/{session.id}"
    assert (session.mode, session.status, session.payment_status) == (
        "subscription",
        "open",
        "unpaid",
    )
    assert (session.customer, session.client_reference_id) == (customer.id, "user-1")
    assert session.metadata.to_dict() == {"userId": "user-1"}
    assert session.subscription is None and session.amount_total == 1000
    assert session.success_url == "http://app.test/ok?session_id={CHECKOUT_SESSION_ID}"
    assert fetched.to_dict() == session.to_dict()
    price = await sim.stripe.v1.prices.retrieve_async(PRICE)
    assert (price.unit_amount, price.currency, price.recurring.interval) == (1000, "usd", "month")

    page = await sim.http.get(session.url)
    assert page.status_code == 200
    assert f"action='/checkout/{session.id}/pay'" in page.text
    assert "http://app.test/cancel" in page.text


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"line_items": [{"price": "price_nope"}]}, "line_items[0][price]", "resource_missing"),
        ({"line_items": [{"quantity": 1}]}, "line_items[0][price]", None),
        ({"line_items": None}, "line_items", None),
        ({"mode": "sometimes"}, "mode", None),
        ({"mode": None}, "mode", None),
        ({"customer": "cus_missing"}, "customer", "resource_missing"),
        ({"line_items": [{"price": PRICE, "quantity": 0}]}, "line_items[0][quantity]", None),
        ({"not_a_stripe_param": "x"}, "not_a_stripe_param", None),
    ],
)
def test_checkout_validation_errors_name_the_param(
    client: stripe.StripeClient, sim_url: str, change: dict[str, Any], param: str, code: str | None
) -> None:
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _session(client, customer.id, **change)

    assert raised.value.http_status == 400
    assert (raised.value.param, raised.value.code) == (param, code)
    assert raised.value.error.type == "invalid_request_error"
    assert httpx.get(f"{sim_url}/_sim/state").json()["checkout_sessions"] == []


def test_unknown_objects_are_404_resource_missing(client: stripe.StripeClient) -> None:
    for call in (
        lambda: client.v1.prices.retrieve("price_nope"),
        lambda: client.v1.subscriptions.retrieve("sub_nope"),
        lambda: client.v1.customers.retrieve("cus_nope"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            call()
        assert (raised.value.http_status, raised.value.code) == (404, "resource_missing")
        assert "No such" in str(raised.value)


def test_an_api_key_is_required(sim_url: str) -> None:
    bare = httpx.post(f"{sim_url}/v1/customers", data={"email": "a@example.com"})
    assert bare.status_code == 401
    assert bare.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in bare.json()["error"]["message"]

    for key in ("not_a_key", "sk_live_real"):
        bad = stripe.StripeClient(key, base_addresses={"api": sim_url}, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError):
            bad.v1.customers.create(params={"email": "a@example.com"})
    assert httpx.get(f"{sim_url}/_sim/state").json()["customers"] == []
    unknown = httpx.get(f"{sim_url}/v1/charges", headers={"Authorization": "Bearer sk_test_x"})
    assert unknown.status_code == 404 and "Unrecognized request URL" in unknown.text


# --- Checkout -----------------------------------------------------------------------------------


async def test_pay_creates_the_subscription_and_sends_three_signed_webhooks_in_order(
    sim: Sim, receiver: Receiver
) -> None:
    customer = await sim.stripe.v1.customers.create_async(params={"email": "ada@example.com"})
    session = await sim.session(customer.id)
    before = int(time.time())

    paid = await sim.http.post(session.url + "/pay")

    assert paid.status_code == 303
    assert paid.headers["location"] == (f"http://app.test/billing/success?session_id={session.id}")
    # Pay waits for the first delivery attempts, so they are in before the redirect.
    assert receiver.types() == [
        "customer.subscription.created",
        "checkout.session.completed",
        "invoice.paid",
    ]
    created, completed, invoice_paid = receiver.events()
    assert all(r["user_agent"].startswith("Stripe/1.0") for r in receiver.received)
    assert receiver.received[0]["content_type"] == "application/json; charset=utf-8"
    assert {e.api_version for e in receiver.events()} == {API_VERSION}
    assert {e.livemode for e in receiver.events()} == {False}
    assert created.request.to_dict() == {"id": None, "idempotency_key": None}

    done = await sim.stripe.v1.checkout.sessions.retrieve_async(session.id)
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.subscription.startswith("sub_") and done.url is None
    assert completed.data.object.subscription == done.subscription
    assert completed.data.object.client_reference_id == "user-1"
    assert completed.data.object.customer == customer.id

    sub = await sim.subscription(done.subscription)
    start, end = _period(sub)
    assert sub.status == "active" and sub.customer == customer.id
    assert before <= start <= int(time.time()) and end - start == 30 * DAY
    assert sub.metadata.to_dict() == {"userId": "user-1"}
    assert sub.cancel_at_period_end is False and sub.latest_invoice.startswith("in_")
    assert sub["items"].data[0].price.id == PRICE
    assert created.data.object.id == sub.id and created.data.object.status == "active"

    invoice = invoice_paid.data.object
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.parent.subscription_details.metadata.to_dict() == {"userId": "user-1"}
    assert (invoice.id, invoice.status, invoice.amount_paid) == (sub.latest_invoice, "paid", 1000)
    assert invoice.billing_reason == "subscription_create"
    assert (invoice.lines.data[0].period.start, invoice.lines.data[0].period.end) == (start, end)
    assert (await sim.stripe.v1.invoices.retrieve_async(invoice.id)).status == "paid"

    again = await sim.http.post(session.url + "/pay")
    assert again.status_code == 303 and again.headers["location"] == paid.headers["location"]
    assert len(await sim.events()) == 3
    state = (await sim.http.get(f"{sim.url}/_sim/state")).json()
    assert [s["id"] for s in state["subscriptions"]] == [sub.id]


def test_a_session_can_be_expanded(client: stripe.StripeClient, receiver: Receiver) -> None:
    session, sub = _paid_subscription(client, receiver)

    full = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription", "subscription.latest_invoice"]}
    )

    assert full.subscription.id == sub.id
    assert full.subscription.latest_invoice.parent.subscription_details.subscription == sub.id


# --- Subscription lifecycle ---------------------------------------------------------------------


async def test_renew_extends_the_period_with_a_paid_invoice(sim: Sim) -> None:
    sub = await sim.paid_subscription()
    start, end = _period(sub)

    answer = await sim.control(f"subscriptions/{sub.id}/renew")

    types = [e["type"] for e in answer["events"]]
    assert types == ["customer.subscription.updated", "invoice.paid"]
    updated, paid = await sim.received(2)
    renewed = await sim.subscription(sub.id)
    assert _period(renewed) == (end, end + 30 * DAY)
    assert renewed.latest_invoice == paid.data.object.id != sub.latest_invoice
    assert updated.data.object.id == sub.id
    old_item = updated.data.previous_attributes["items"].data[0]
    assert (old_item.current_period_start, old_item.current_period_end) == (start, end)
    assert updated.data.previous_attributes.latest_invoice == sub.latest_invoice
    invoice = paid.data.object
    assert (invoice.status, invoice.billing_reason) == ("paid", "subscription_cycle")
    assert invoice.parent.subscription_details.subscription == sub.id
    line = invoice.lines.data[0]
    assert (line.period.start, line.period.end) == (end, end + 30 * DAY)


async def test_a_failed_payment_makes_it_past_due_until_paid(sim: Sim) -> None:
    sub = await sim.paid_subscription()

    await sim.control(f"subscriptions/{sub.id}/fail_payment")
    failed, updated = await sim.received(2)
    assert failed.type == "invoice.payment_failed"
    assert updated.type == "customer.subscription.updated"
    assert (failed.data.object.status, failed.data.object.attempt_count) == ("open", 1)
    assert failed.data.object.parent.subscription_details.subscription == sub.id
    assert updated.data.object.status == "past_due"
    assert updated.data.previous_attributes.status == "active"
    end = _period(sub)[1]  # the failed renewal still starts the next period, as at Stripe
    assert _period(updated.data.object) == (end, end + 30 * DAY)
    assert (await sim.subscription(sub.id)).status == "past_due"

    sim.receiver.clear()
    await sim.control(f"subscriptions/{sub.id}/fail_payment")
    [again] = await sim.received(1)
    assert again.type == "invoice.payment_failed"
    assert (again.data.object.id, again.data.object.attempt_count) == (failed.data.object.id, 2)

    sim.receiver.clear()
    answer = await sim.control(f"subscriptions/{sub.id}/renew")
    types = [e["type"] for e in answer["events"]]
    assert types == ["invoice.paid", "customer.subscription.updated"]
    paid, active = await sim.received(2)
    assert (paid.data.object.id, paid.data.object.status) == (failed.data.object.id, "paid")
    assert active.data.object.status == "active"
    assert active.data.previous_attributes.to_dict() == {"status": "past_due"}
    assert _period(await sim.subscription(sub.id)) == _period(updated.data.object)


async def test_portal_cancel_at_period_end_then_cancel_now(sim: Sim) -> None:
    sub = await sim.paid_subscription()
    portal = await sim.stripe.v1.billing_portal.sessions.create_async(
        params={"customer": sub.customer, "return_url": "http://app.test/account"}
    )
    assert portal.id.startswith("bps_") and portal.url == f"{sim.url}/portal/{portal.id}"
    assert (portal.customer, portal.return_url) == (sub.customer, "http://app.test/account")
    page = (await sim.http.get(portal.url)).text
    assert "Cancel at period end" in page and "Cancel now" in page

    action = f"{sim.url}/portal/{portal.id}/subscriptions/{sub.id}/cancel"
    later = await sim.http.post(action, data={"at_period_end": "true"})
    assert (later.status_code, later.headers["location"]) == (303, "http://app.test/account")
    [updated] = await sim.received(1)
    assert updated.type == "customer.subscription.updated"
    assert updated.data.object.cancel_at_period_end is True
    assert updated.data.object.cancel_at == _period(sub)[1]
    assert updated.data.previous_attributes.cancel_at_period_end is False
    assert "Don't cancel" in (await sim.http.get(portal.url)).text

    now = await sim.http.post(action, data={"at_period_end": "false"})
    assert now.status_code == 303
    deleted = (await sim.received(2))[1]
    assert deleted.type == "customer.subscription.deleted"
    canceled = await sim.subscription(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at is not None
    assert deleted.data.object.status == "canceled"
    assert "previous_attributes" not in deleted.data


async def test_api_update_and_cancel_name_the_request(sim: Sim) -> None:
    sub = await sim.paid_subscription()
    subscriptions = sim.stripe.v1.subscriptions

    scheduled = await subscriptions.update_async(
        sub.id, params={"cancel_at_period_end": True}, options={"idempotency_key": "end:1"}
    )
    assert scheduled.cancel_at_period_end is True
    resumed = await subscriptions.update_async(sub.id, params={"cancel_at_period_end": False})
    assert resumed.cancel_at_period_end is False and resumed.cancel_at is None
    canceled = await subscriptions.cancel_async(sub.id)
    assert canceled.status == "canceled"

    first, second, third = await sim.received(3)
    assert [e.type for e in (first, second, third)] == [
        "customer.subscription.updated",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    assert first.request.idempotency_key == "end:1" and first.request.id.startswith("req_")
    assert first.request.id == scheduled.last_response.request_id
    assert second.data.previous_attributes.cancel_at_period_end is True
    with pytest.raises(stripe.InvalidRequestError):
        await subscriptions.update_async(sub.id, params={"cancel_at_period_end": True})


async def test_cancel_now_by_delete_with_an_idempotency_key_then_again_is_404(sim: Sim) -> None:
    sub = await sim.paid_subscription()
    subscriptions = sim.stripe.v1.subscriptions

    canceled = await subscriptions.cancel_async(sub.id, options={"idempotency_key": "erase:1"})

    assert canceled.status == "canceled" and canceled.ended_at is not None
    assert canceled.cancel_at_period_end is False  # now, not at the period's end
    [deleted] = await sim.received(1)
    assert deleted.type == "customer.subscription.deleted"
    assert deleted.request.idempotency_key is None  # Stripe keeps keys of POSTs only
    # A second cancel, the key repeated or not: Stripe's 404, and nothing else happens.
    for options in ({"idempotency_key": "erase:1"}, {}):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await subscriptions.cancel_async(sub.id, options=options)  # type: ignore[arg-type]
        assert refused.value.http_status == 404 and refused.value.code == "resource_missing"
    assert (await sim.subscription(sub.id)).status == "canceled"
    assert len(sim.receiver.events()) == 1


def test_expire_moves_the_period_into_the_past(
    client: stripe.StripeClient, sim_url: str, receiver: Receiver
) -> None:
    _, sub = _paid_subscription(client, receiver)

    answer = _control(sim_url, f"subscriptions/{sub.id}/expire", {"seconds_ago": 60})

    start, end = _period(client.v1.subscriptions.retrieve(sub.id))
    assert answer["events"] == []
    assert abs(end - (time.time() - 60)) < 5 and end - start == 30 * DAY


def test_a_session_expires_at_its_expires_at_with_an_event(
    client: stripe.StripeClient, sim_url: str, receiver: Receiver
) -> None:
    customer = client.v1.customers.create()
    in_an_hour = int(time.time()) + 3600
    session = _session(client, customer.id, expires_at=in_an_hour)
    assert (session.status, session.expires_at) == ("open", in_an_hour)

    answer = _control(sim_url, f"checkout/sessions/{session.id}/expire", {"seconds_ago": 5})

    assert [e["type"] for e in answer["events"]] == ["checkout.session.expired"]
    expired = client.v1.checkout.sessions.retrieve(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    assert abs(expired.expires_at - (time.time() - 5)) < 5
    paid = httpx.post(f"{sim_url}/checkout/{session.id}/pay")
    assert paid.status_code == 400 and "expired" in paid.text
    _wait_until(lambda: len(receiver.received) == 1, 5, "the expired event's delivery")
    again = httpx.post(f"{sim_url}/_sim/checkout/sessions/{session.id}/expire")
    assert again.status_code == 400


def test_a_session_past_its_expires_at_is_expired_by_the_next_request() -> None:
    """Time passing is enough: whatever request comes next finds the session expired."""
    app = create_app(SimConfig())
    now = [int(time.time())]
    app.state.sim.store.clock = lambda: now[0]
    with _serve(app) as url:
        client = stripe.StripeClient("sk_test_sim", base_addresses={"api": url})
        customer = client.v1.customers.create()
        session = _session(client, customer.id, expires_at=now[0] + 3600)
        now[0] += 3599
        assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
        now[0] += 1

        assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
        events = httpx.get(f"{url}/_sim/events").json()["events"]
        assert [e["type"] for e in events] == ["checkout.session.expired"]
        assert events[0]["object_id"] == session.id
        assert httpx.post(f"{session.url}/pay").status_code == 400


def test_a_session_expires_after_24_hours_by_default(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    session = _session(client, customer.id)
    assert abs(session.expires_at - (time.time() + DAY)) < 5


@pytest.mark.parametrize("expires_in", [29 * 60, DAY + 60])
def test_expires_at_outside_30_minutes_to_24_hours_is_refused(
    client: stripe.StripeClient, expires_in: int
) -> None:
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _session(client, customer.id, expires_at=int(time.time()) + expires_in)
    assert raised.value.param == "expires_at"


def test_a_price_created_through_the_api_can_be_subscribed_to(
    client: stripe.StripeClient, sim_url: str, receiver: Receiver
) -> None:
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Team add-on"},
        }
    )
    assert price.id.startswith("price_") and price.id != PRICE
    assert (price.unit_amount, price.currency, price.recurring.interval) == (100, "usd", "month")
    assert price.product.startswith("prod_") and price.nickname is None
    assert client.v1.prices.retrieve(price.id).id == price.id

    customer = client.v1.customers.create()
    session = _session(client, customer.id, line_items=[{"price": price.id, "quantity": 1}])
    assert httpx.get(session.url).status_code == 200
    assert httpx.post(session.url + "/pay").status_code == 303
    subscription = client.v1.subscriptions.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).subscription
    )
    assert subscription["items"].data[0].price.id == price.id


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"unit_amount": 100, "recurring": {"interval": "month"}, "product": "prod_x"}, "currency"),
        ({"currency": "usd", "recurring": {"interval": "month"}, "product": "p"}, "unit_amount"),
        ({"currency": "usd", "unit_amount": 100, "product": "prod_x"}, "recurring"),
        ({"currency": "usd", "unit_amount": 100, "recurring": {"interval": "month"}}, "product"),
        (
            {
                "currency": "usd",
                "unit_amount": 100,
                "recurring": {"interval": "month"},
                "product": "prod_x",
                "tiers_mode": "graduated",
            },
            "tiers_mode",
        ),
    ],
)
def test_price_validation_names_the_param(
    client: stripe.StripeClient, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.prices.create(params=params)
    assert (raised.value.http_status, raised.value.param) == (400, param)


# --- Delivery controls --------------------------------------------------------------------------


async def test_the_same_event_redelivered_five_times_concurrently(sim: Sim) -> None:
    await sim.paid_subscription()
    event = next(e for e in await sim.events() if e["type"] == "checkout.session.completed")

    answer = await sim.control(f"events/{event['id']}/deliver", {"times": 5, "concurrent": True})

    assert [a["status"] for a in answer["attempts"]] == [200] * 5
    assert len(sim.receiver.received) == 5
    assert {e.id for e in sim.receiver.events()} == {event["id"]}
    assert len({r["body"] for r in sim.receiver.received}) == 1
    attempts = await sim.attempts(event["id"])
    assert [a["kind"] for a in attempts] == ["auto"] + ["manual"] * 5
    assert sorted(a["attempt"] for a in attempts) == [1, 2, 3, 4, 5, 6]


async def test_hold_then_deliver_shuffled(sim: Sim) -> None:
    await sim.control("hold", {"hold": True})
    customer = await sim.stripe.v1.customers.create_async()
    session = await sim.session(customer.id)
    assert (await sim.http.post(session.url + "/pay")).status_code == 303

    events = await sim.events()
    assert [e["attempts"] for e in events] == [[], [], []]
    await sim.control("hold", {"hold": False})
    assert sim.receiver.received == []  # releasing sends nothing by itself

    ids = [e["id"] for e in events]
    answer = await sim.control("deliver", {"events": ids, "order": "shuffled", "seed": 7})
    assert sorted(answer["order"]) == sorted(ids)
    assert [e.id for e in sim.receiver.events()] == answer["order"]

    sim.receiver.clear()
    await sim.control("deliver", {"events": ids, "order": "reversed"})
    assert [e.id for e in sim.receiver.events()] == ids[::-1]


async def test_deliver_without_a_list_sends_the_held_events_in_order(sim: Sim) -> None:
    sub = await sim.paid_subscription()
    await sim.control("hold", {"hold": True})
    await sim.control(f"subscriptions/{sub.id}/renew")
    await sim.control(f"subscriptions/{sub.id}/fail_payment")
    await sim.control("hold", {"hold": False})

    answer = await sim.control("deliver", {})

    assert sim.receiver.types() == [
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert [r["status"] for r in answer["results"]] == [200] * 4
    assert (await sim.control("deliver", {}))["order"] == []


async def test_a_failed_delivery_is_retried_and_every_attempt_recorded(sim: Sim) -> None:
    sub = await sim.paid_subscription()
    sim.receiver.plan.extend([500, 503])

    answer = await sim.control(f"subscriptions/{sub.id}/cancel", {"at_period_end": False})
    [event] = answer["events"]

    async def delivered() -> bool:  # as the simulator records it (after the answer came)
        return any(a["ok"] for a in await sim.attempts(event["id"]))

    await eventually(delivered, timeout=5, what="a successful retry")
    attempts = await sim.attempts(event["id"])
    assert [(a["kind"], a["status"]) for a in attempts] == [
        ("auto", 500),
        ("retry", 503),
        ("retry", 200),
    ]
    assert [r["status"] for r in sim.receiver.received] == [500, 503, 200]
    assert {e.id for e in sim.receiver.events(ok_only=False)} == {event["id"]}

    events = sim.stripe.v1.events
    listed = await events.list_async(params={"type": "customer.subscription.*", "limit": 1})
    assert [e.id for e in listed.data] == [event["id"]] and listed.has_more is True
    older = await events.list_async(
        params={"type": "customer.subscription.*", "starting_after": event["id"]}
    )
    assert [e.type for e in older.data] == ["customer.subscription.created"]
    assert older.has_more is False


async def test_an_unreachable_endpoint_is_recorded_as_an_error(sim: Sim) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    url = f"http://127.0.0.1:{port}/x"
    await sim.control("config", {"webhook_url": url, "retry_delays": [0.01]})
    await sim.paid_subscription()
    event = next(e for e in await sim.events() if e["type"] == "invoice.paid")

    async def retried() -> bool:
        return len(await sim.attempts(event["id"])) == 2

    await eventually(retried, timeout=5, what="the retry")
    attempts = await sim.attempts(event["id"])
    assert [(a["status"], a["url"]) for a in attempts] == [(None, url), (None, url)]
    assert all("ConnectError" in a["error"] for a in attempts)
    assert sim.receiver.received == []


# --- The command line ---------------------------------------------------------------------------


def test_the_command_line_serves_the_api(receiver: Receiver) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "PORT": str(port), "STRIPE_WEBHOOK_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.stripe_sim", "--price", "price_team:4900:eur:year"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz").status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None

        _wait_until(up, 15, "the simulator process")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": url})
        price = client.v1.prices.retrieve("price_team")
        assert (price.unit_amount, price.currency, price.recurring.interval) == (
            4900,
            "eur",
            "year",
        )
        config = httpx.get(f"{url}/_sim/config").json()
        assert config["webhook_secret"] == SECRET and config["webhook_url"] is None
        assert config["public_url"] == url
    finally:
        proc.terminate()
        proc.wait(10)

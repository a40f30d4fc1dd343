"""Pro subscriptions end to end: the gateway, billing, the Stripe simulator (the real stripe
SDK, signed webhooks through the gateway), and the tier reaching chat and auth."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
import psycopg
import pytest

from shared.testing.accounts import sign_up_and_in
from shared.testing.stripe import event_body, sign
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e


class Customer:
    """A user who pays: drives the API, the checkout page and the simulator's controls."""

    def __init__(self, api: httpx.AsyncClient, sim: httpx.AsyncClient) -> None:
        self.api, self.sim = api, sim
        self.headers: dict[str, str] = {}
        self.user_id = ""

    async def login(self) -> Customer:
        account = await sign_up_and_in(self.api)
        self.user_id, self.headers = account.user_id, account.headers
        return self

    async def send(self, content: str = "hello") -> httpx.Response:
        room = await self.api.post("/api/v1/chatroom", json={"name": "r"}, headers=self.headers)
        room_id = room.json()["data"]["chatroom"]["id"]
        return await self.api.post(
            f"/api/v1/chatroom/{room_id}/message", json={"content": content}, headers=self.headers
        )

    async def status(self) -> dict:
        response = await self.api.get("/api/v1/subscription/status", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def usage(self) -> dict:
        return (await self.api.get("/api/v1/usage", headers=self.headers)).json()["data"]

    async def me(self) -> dict:
        response = await self.api.get("/api/v1/auth/me", headers=self.headers)
        return response.json()["data"]["user"]["currentSubscription"]

    async def subscribe(self) -> dict:
        response = await self.api.post("/api/v1/subscribe/pro", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def pay(self) -> str:
        """Subscribe, then press Pay on the checkout page; returns the subscription id."""
        checkout = await self.subscribe()
        page = await self.sim.get(checkout["checkoutUrl"])
        assert page.status_code == 200 and "Pay" in page.text
        paid = await self.sim.post(checkout["checkoutUrl"] + "/pay", follow_redirects=False)
        assert paid.status_code == 303, paid.text
        assert checkout["sessionId"] in paid.headers["location"]
        return await self.subscription_id()

    async def subscription_id(self) -> str:
        state = (await self.sim.get("/_sim/state")).json()
        mine = [s for s in state["subscriptions"] if s["metadata"].get("userId") == self.user_id]
        assert mine, "no subscription for this user at the simulator"
        return mine[-1]["id"]

    async def until(self, what: str, check: Callable[[], Awaitable[bool]]) -> None:
        await eventually(check, timeout=20, interval=0.1, what=what)

    async def until_tier(self, tier: str) -> None:
        async def reached() -> bool:
            return (await self.status())["tier"] == tier and (await self.usage())["tier"] == tier

        await self.until(f"tier {tier} in billing and chat", reached)


@pytest.fixture
async def customer(api, stripe_sim) -> Customer:
    return await Customer(api, stripe_sim).login()


async def test_the_whole_subscription_lifecycle(customer, basic_limit, stripe_sim):
    # Basic, at the limit.
    for _ in range(basic_limit):
        assert (await customer.send()).status_code == 201
    assert (await customer.send()).status_code == 429
    assert (await customer.status())["tier"] == "BASIC"

    # Subscribe and pay on the checkout page: Pro within seconds, everywhere.
    subscription = await customer.pay()
    await customer.until_tier("PRO")
    me = await customer.me()
    assert me["tier"] == "PRO" and me["status"] == "active"
    for _ in range(basic_limit + 2):
        assert (await customer.send()).status_code == 201
    first_end = datetime.fromisoformat((await customer.status())["currentPeriodEnd"])

    # Renewal extends the period.
    assert (await stripe_sim.post(f"/_sim/subscriptions/{subscription}/renew")).status_code == 200

    async def renewed() -> bool:
        end = (await customer.status())["currentPeriodEnd"]
        return datetime.fromisoformat(end) > first_end

    await customer.until("the renewed period", renewed)

    # A failed payment: past_due, still Pro within the grace period, never locked out.
    failed = await stripe_sim.post(f"/_sim/subscriptions/{subscription}/fail_payment")
    assert failed.status_code == 200

    async def past_due() -> bool:
        return (await customer.status())["status"] == "past_due"

    await customer.until("past_due", past_due)
    assert (await customer.status())["tier"] == "PRO"
    assert (await customer.send()).status_code == 201
    assert (await customer.api.get("/api/v1/auth/me", headers=customer.headers)).status_code == 200

    # Cancel at period end (through the Billing Portal): Pro until the end.
    portal = await customer.api.post("/api/v1/subscription/portal", headers=customer.headers)
    assert portal.status_code == 200
    portal_page = await stripe_sim.get(portal.json()["data"]["url"])
    assert portal_page.status_code == 200
    await stripe_sim.post(
        f"/_sim/subscriptions/{subscription}/cancel", json={"at_period_end": True}
    )

    async def cancelling() -> bool:
        return (await customer.status())["cancelAtPeriodEnd"] is True

    await customer.until("cancel at period end", cancelling)
    assert (await customer.status())["tier"] == "PRO"

    # Cancel now: Basic and limited again; nothing locks the user out.
    await stripe_sim.post(
        f"/_sim/subscriptions/{subscription}/cancel", json={"at_period_end": False}
    )
    await customer.until_tier("BASIC")
    assert (await customer.me())["tier"] == "BASIC"
    assert (await customer.send()).status_code == 429
    assert (await customer.api.get("/api/v1/chatroom", headers=customer.headers)).status_code == 200


async def test_already_pro_cannot_subscribe_again(customer):
    await customer.pay()
    await customer.until_tier("PRO")
    response = await customer.api.post("/api/v1/subscribe/pro", headers=customer.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "already_pro"


async def test_parallel_subscribe_creates_one_customer(customer, stripe_sim, database_url):
    responses = await asyncio.gather(
        *(customer.api.post("/api/v1/subscribe/pro", headers=customer.headers) for _ in range(4))
    )
    assert [r.status_code for r in responses] == [200] * 4
    state = (await stripe_sim.get("/_sim/state")).json()
    mine = [c for c in state["customers"] if c["metadata"].get("userId") == customer.user_id]
    assert len(mine) == 1
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT stripe_customer_id FROM billing.customers WHERE user_id = %s",
            (customer.user_id,),
        ).fetchall()
    assert rows == [(mine[0]["id"],)]


async def billing_events_for(stack_redis, user_id: str) -> int:
    entries = await stack_redis.xrange("billing.events")
    return sum(1 for _, f in entries if json.loads(f["envelope"])["payload"]["userId"] == user_id)


async def test_an_event_delivered_five_times_at_once_changes_state_once(
    customer, stripe_sim, stack_redis, database_url
):
    await stripe_sim.post("/_sim/hold", json={"hold": True})
    try:
        subscription = await customer.pay()
    finally:
        await stripe_sim.post("/_sim/hold", json={"hold": False})
    events = (await stripe_sim.get("/_sim/events")).json()["events"]
    created = next(
        e
        for e in events
        if e["type"] == "customer.subscription.created"
        and e["payload"]["data"]["object"]["id"] == subscription
    )
    response = await stripe_sim.post(
        f"/_sim/events/{created['id']}/deliver", json={"times": 5, "concurrent": True}
    )
    assert response.status_code == 200
    await customer.until_tier("PRO")

    async def announced() -> bool:
        return await billing_events_for(stack_redis, customer.user_id) >= 1

    await customer.until("SubscriptionChanged", announced)

    def outbox_published() -> bool:  # a duplicate would be there, published or not
        with psycopg.connect(database_url) as conn:
            (left,) = conn.execute(
                "SELECT count(*) FROM billing.outbox WHERE published_at IS NULL"
            ).fetchone()
        return left == 0

    await eventually(outbox_published, what="billing's outbox to be published")
    assert await billing_events_for(stack_redis, customer.user_id) == 1
    with psycopg.connect(database_url) as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM billing.stripe_events WHERE id = %s", (created["id"],)
        ).fetchone()
        (snapshots,) = conn.execute(
            "SELECT count(*) FROM billing.subscription_snapshots WHERE event_id = %s",
            (created["id"],),
        ).fetchone()
    assert (stored, snapshots) == (1, 1)


async def test_a_shuffled_lifecycle_ends_in_the_same_state_as_stripe(
    customer, stripe_sim, database_url
):
    await stripe_sim.post("/_sim/hold", json={"hold": True})
    try:
        subscription = await customer.pay()
        for step in ("renew", "fail_payment"):
            await stripe_sim.post(f"/_sim/subscriptions/{subscription}/{step}")
        await stripe_sim.post(
            f"/_sim/subscriptions/{subscription}/cancel", json={"at_period_end": True}
        )
    finally:
        await stripe_sim.post("/_sim/hold", json={"hold": False})
    events = (await stripe_sim.get("/_sim/events")).json()["events"]
    mine = [
        e["id"]
        for e in events
        if json.dumps(e["payload"]["data"]["object"]).find(subscription) >= 0
    ]
    assert len(mine) >= 6
    await stripe_sim.post("/_sim/deliver", json={"events": mine, "order": "shuffled", "seed": 7})
    truth = next(
        s
        for s in (await stripe_sim.get("/_sim/state")).json()["subscriptions"]
        if s["id"] == subscription
    )

    async def converged() -> bool:
        status = await customer.status()
        return status["status"] == truth["status"] and status["cancelAtPeriodEnd"] is True

    await customer.until("the projection to match Stripe", converged)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, cancel_at_period_end, extract(epoch FROM current_period_end)::bigint"
            " FROM billing.subscriptions WHERE stripe_subscription_id = %s",
            (subscription,),
        ).fetchone()
    item = truth["items"]["data"][0]
    assert row == (truth["status"], truth["cancel_at_period_end"], item["current_period_end"])
    assert (await customer.status())["tier"] == "PRO"  # past_due within the grace period


def stored(database_url: str, event_id: str) -> tuple | None:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT processed_at IS NOT NULL FROM billing.stripe_events WHERE id = %s",
            (event_id,),
        ).fetchone()


async def test_bad_signatures_are_400_and_store_nothing(api, stack, database_url):
    secret = stack.env["STRIPE_WEBHOOK_SECRET"]
    cases = {
        "missing": None,
        "wrong secret": lambda body: sign(body, "whsec_wrong"),
        "expired": lambda body: sign(body, secret, int(time.time()) - 3600),
        "tampered": "tampered",
    }
    for name, how in cases.items():
        event_id, body = event_body()
        headers = {"Content-Type": "application/json"}
        if how == "tampered":
            headers["Stripe-Signature"] = sign(body, secret)
            body = body.replace(b"sub_nothing", b"sub_other__")
        elif how is not None:
            headers["Stripe-Signature"] = how(body)
        response = await api.post("/api/v1/webhook/stripe", content=body, headers=headers)
        assert response.status_code == 400, name
        assert response.json()["status"] == "fail", name
        assert response.headers["content-type"].startswith("application/json")
        assert stored(database_url, event_id) is None, name


async def test_an_unknown_event_type_is_acknowledged_and_ignored(api, stack, database_url):
    event_id, body = event_body("customer.tax_id.created")
    response = await api.post(
        "/api/v1/webhook/stripe",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, stack.env["STRIPE_WEBHOOK_SECRET"]),
        },
    )
    assert response.status_code == 200
    assert response.json() == {"received": True}
    assert stored(database_url, event_id) == (True,)


async def test_rebuild_from_the_event_log_gives_the_same_projection(
    customer, stripe_sim, stack, database_url
):
    subscription = await customer.pay()
    await stripe_sim.post(f"/_sim/subscriptions/{subscription}/renew")
    await stripe_sim.post(f"/_sim/subscriptions/{subscription}/fail_payment")

    async def past_due() -> bool:
        return (await customer.status())["status"] == "past_due"

    await customer.until("past_due", past_due)

    async def quiet() -> bool:
        """No webhook of this subscription in flight at the simulator or stored unprocessed:
        a late delivery would otherwise add a snapshot between the two reads below."""
        events = (await stripe_sim.get("/_sim/events")).json()["events"]
        if any(e.get("in_flight") and subscription in json.dumps(e["payload"]) for e in events):
            return False
        with psycopg.connect(database_url) as conn:
            (pending,) = conn.execute(
                "SELECT count(*) FROM billing.stripe_events"
                " WHERE processed_at IS NULL AND payload::text LIKE %s",
                (f"%{subscription}%",),
            ).fetchone()
        return pending == 0

    await customer.until("every webhook of the subscription applied", quiet)

    def projection() -> list:
        """This user's part of the projection (other tests' late webhooks may still move
        theirs; the rebuild recomputes all of it)."""
        with psycopg.connect(database_url) as conn:
            subs = conn.execute(
                "SELECT * FROM billing.subscriptions WHERE user_id = %s"
                " ORDER BY stripe_subscription_id",
                (customer.user_id,),
            ).fetchall()
            plans = conn.execute(
                "SELECT * FROM billing.plans WHERE user_id = %s", (customer.user_id,)
            ).fetchall()
        return [subs, plans]

    before = projection()
    done = await asyncio.to_thread(stack.command, "billing", "rebuild")
    assert done.returncode == 0, done.stderr
    assert projection() == before


async def test_each_tier_is_answered_by_its_model_from_the_next_prompt(customer, simulator):
    """GEMINI_MODEL_BASIC, then GEMINI_MODEL_PRO once paid: what the simulator was asked,
    what the reply says it was, and what GET /models offers."""

    async def asked_for(content: str) -> tuple[str, str]:
        sent = await customer.send(content)
        assert sent.status_code == 201, sent.text
        data = sent.json()["data"]
        room = data["message"]["chatroomId"]

        async def answered() -> list[dict]:
            requests = (await simulator.get("/_sim/requests")).json()["requests"]
            return [r for r in requests if r["contents"][-1]["parts"][0]["text"] == content]

        await customer.until("the simulator to be asked", answered)
        detail = await customer.api.get(f"/api/v1/chatroom/{room}", headers=customer.headers)
        (reply,) = [
            m for m in detail.json()["data"]["chatroom"]["messages"] if m["role"] == "GEMINI"
        ]
        return (await answered())[-1]["model"], reply["model"]

    models = await customer.api.get("/api/v1/models", headers=customer.headers)
    assert models.json()["data"] == {
        "tier": "BASIC",
        "default": "gemini-2.5-flash",
        "allowed": ["gemini-2.5-flash"],
    }
    assert await asked_for(f"basic {uuid.uuid4()}") == ("gemini-2.5-flash", "gemini-2.5-flash")
    await customer.pay()
    await customer.until_tier("PRO")
    models = await customer.api.get("/api/v1/models", headers=customer.headers)
    assert models.json()["data"]["allowed"] == ["gemini-2.5-pro", "gemini-2.5-flash"]
    assert await asked_for(f"pro {uuid.uuid4()}") == ("gemini-2.5-pro", "gemini-2.5-pro")

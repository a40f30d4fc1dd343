"""Account deletion (UserDeleted on auth.events): billing cancels the user's Stripe
subscription at once, through the simulator and the real SDK, and erases every row, outbox
event and billing.events entry about them; a repeated event changes nothing more, a
webhook about the canceled subscription afterwards recreates nothing, and a billing that
was down when the user was deleted catches up."""

import json
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from billing import erasure
from billing.app import create_app
from shared.db import Database
from shared.erasure import digest
from shared.events import UserDeleted, encode
from shared.events.envelope import to_json
from shared.testing.asgi import app_client
from shared.testing.fixtures import mark_user_unrevoked
from shared.testing.wait import eventually, handled
from shared.tokens import issue_access_token, token_state_key

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

AUTH_EVENTS = "auth.events"


class ProUser:
    """A user who paid for Pro through billing's Checkout at the simulator, every webhook
    delivered to billing."""

    def __init__(self, user_id: str, customer_id: str, subscription_id: str) -> None:
        self.id = user_id
        self.customer_id = customer_id
        self.subscription_id = subscription_id

    @property
    def traces(self) -> list[str]:
        """Every identifier that links a row or entry to the person."""
        return [self.id, self.customer_id, self.subscription_id]


async def deliver(billing: httpx.AsyncClient, sign, payloads: list[bytes]) -> None:
    for payload in payloads:
        response = await billing.post(
            "/api/v1/webhook/stripe", content=payload, headers=sign(payload)
        )
        assert response.status_code == 200, response.text


async def checkout(billing, redis_url, jwt_secret) -> tuple[str, dict]:
    """A new user's POST /subscribe/pro: (their id, the Checkout Session's data)."""
    user = str(uuid.uuid4())
    mark_user_unrevoked(redis_url, user)
    token = issue_access_token(jwt_secret, user, ttl_seconds=600).token
    response = await billing.post(
        "/api/v1/subscribe/pro", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return user, response.json()["data"]


async def pro_user(billing, stripe_sim, sign, redis_url, jwt_secret) -> ProUser:
    user, checkout_data = await checkout(billing, redis_url, jwt_secret)
    await stripe_sim.pay(checkout_data["checkoutUrl"])
    session = await stripe_sim.stripe.v1.checkout.sessions.retrieve_async(
        checkout_data["sessionId"]
    )
    subscription_id = str(session.subscription)
    await deliver(billing, sign, await stripe_sim.event_payloads(subscription_id))
    return ProUser(user, str(session.customer), subscription_id)


async def emit_deleted(redis, user_id: str, envelope=None):
    """Put UserDeleted on auth.events as auth's relay would; returns the envelope."""
    envelope = envelope or encode(
        UserDeleted(user_id=uuid.UUID(user_id), deleted_at=datetime.now(UTC)), producer="auth"
    )
    await redis.xadd(AUTH_EVENTS, {"type": envelope.type, "envelope": to_json(envelope)})
    return envelope


def rows_naming(database_url: str, needles: list[str]) -> dict[str, int]:
    """For each table of the billing schema, how many rows mention any of ``needles``."""
    found: dict[str, int] = {}
    with psycopg.connect(database_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'billing' AND table_type = 'BASE TABLE'"
            )
        ]
        for table in tables:
            (count,) = conn.execute(
                f"SELECT count(*) FROM billing.{table} AS t"
                " WHERE row_to_json(t)::text ILIKE ANY(%s)",
                ([f"%{n}%" for n in needles],),
            ).fetchone()
            if count:
                found[table] = count
    return found


async def redis_naming(redis, needles: list[str]) -> list[str]:
    """Keys whose name, or whose stream entries, mention any of ``needles`` (UserDeleted,
    which carries the id only, stays: a consumer that was down must still find it)."""
    hits = []
    async for key in redis.scan_iter(count=1000):
        if any(n in key for n in needles):
            hits.append(key)
        elif await redis.type(key) == "stream":
            for _, fields in await redis.xrange(key):
                if fields.get("type") == "UserDeleted":
                    continue
                if any(n in json.dumps(fields) for n in needles):
                    hits.append(key)
                    break
    return hits


async def nothing_left(redis, database_url: str, user: ProUser) -> None:
    assert rows_naming(database_url, user.traces) == {}
    assert await redis_naming(redis, user.traces) == []


async def subscription_status(stripe_sim, subscription_id: str) -> tuple[str, bool]:
    sub = await stripe_sim.stripe.v1.subscriptions.retrieve_async(subscription_id)
    return sub.status, sub.cancel_at_period_end


async def cancels_at_stripe(stripe_sim, subscription_id: str) -> int:
    requests = (await stripe_sim.http.get(f"{stripe_sim.url}/_sim/requests")).json()
    path = f"/v1/subscriptions/{subscription_id}"
    return sum(1 for r in requests["requests"] if r["method"] == "DELETE" and r["path"] == path)


@pytest.fixture
def settings(billing_settings, stripe_sim):
    return billing_settings(stripe_sim.url, claim_idle_seconds=1)


async def billing_events_published(redis, user_id: str) -> bool:
    entries = await redis.xrange("billing.events")
    return any(user_id in fields["envelope"] for _, fields in entries)


async def test_deleted_pro_user_is_canceled_now_and_nothing_of_them_is_left(
    settings, stripe_sim, sign, redis, redis_url, jwt_secret, billing_database_url
):
    other_app = create_app(settings)
    async with app_client(other_app) as billing:
        user = await pro_user(billing, stripe_sim, sign, redis_url, jwt_secret)
        other = await pro_user(billing, stripe_sim, sign, redis_url, jwt_secret)
        await eventually(lambda: billing_events_published(redis, user.id), what="relay")
        assert rows_naming(billing_database_url, user.traces)  # the test can fail

        await emit_deleted(redis, user.id)
        await handled(redis, AUTH_EVENTS, "billing")

    assert await subscription_status(stripe_sim, user.subscription_id) == ("canceled", False)
    assert await cancels_at_stripe(stripe_sim, user.subscription_id) == 1
    await nothing_left(redis, billing_database_url, user)
    assert not await redis.exists(token_state_key(user.id))
    # Only a digest remains, which names nobody.
    with psycopg.connect(billing_database_url) as conn:
        kinds = conn.execute(
            "SELECT kind FROM billing.erased_subjects WHERE digest = ANY(%s) ORDER BY kind",
            ([digest(t) for t in user.traces],),
        ).fetchall()
    assert kinds == [("customer",), ("user",)]
    # The other user is untouched.
    assert await subscription_status(stripe_sim, other.subscription_id) == ("active", False)
    assert set(rows_naming(billing_database_url, other.traces)) >= {
        "customers",
        "subscriptions",
        "plans",
        "subscription_snapshots",
        "stripe_events",
        "outbox",
    }


async def test_event_delivered_twice_and_a_second_deletion_change_nothing_more(
    settings, stripe_sim, sign, redis, redis_url, jwt_secret, billing_database_url
):
    async with app_client(create_app(settings)) as billing:
        user = await pro_user(billing, stripe_sim, sign, redis_url, jwt_secret)
        envelope = await emit_deleted(redis, user.id)
        await emit_deleted(redis, user.id, envelope)  # the same event again, at once
        await handled(redis, AUTH_EVENTS, "billing")
        # Deliveries handled side by side may each ask Stripe (the second gets Stripe's
        # 404, which is no failure); the subscription ends once.
        canceled = [
            p
            for p in await stripe_sim.event_payloads(user.subscription_id)
            if json.loads(p)["type"] == "customer.subscription.deleted"
        ]
        assert len(canceled) == 1
        asked = await cancels_at_stripe(stripe_sim, user.subscription_id)

        # Later deliveries: the same event, another UserDeleted of the same user.
        await emit_deleted(redis, user.id, envelope)
        await emit_deleted(redis, user.id)
        await handled(redis, AUTH_EVENTS, "billing")

    assert await cancels_at_stripe(stripe_sim, user.subscription_id) == asked  # not asked again
    assert await subscription_status(stripe_sim, user.subscription_id) == ("canceled", False)
    await nothing_left(redis, billing_database_url, user)


async def test_webhooks_after_the_deletion_recreate_nothing(
    settings, stripe_sim, sign, redis, redis_url, jwt_secret, billing_database_url
):
    async with app_client(create_app(settings)) as billing:
        user = await pro_user(billing, stripe_sim, sign, redis_url, jwt_secret)
        before = await stripe_sim.event_payloads(user.subscription_id)
        await emit_deleted(redis, user.id)
        await handled(redis, AUTH_EVENTS, "billing")

        # What Stripe sends next: customer.subscription.deleted for our cancel, and the
        # earlier events again (a redelivery), and one more naming only the customer.
        after = await stripe_sim.event_payloads(user.subscription_id)
        [canceled] = [p for p in after if p not in before]
        assert json.loads(canceled)["type"] == "customer.subscription.deleted"
        assert json.loads(canceled)["data"]["object"]["metadata"]["userId"] == user.id
        customer_updated = {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "object": "event",
            "type": "customer.updated",
            "created": int(datetime.now(UTC).timestamp()),
            "data": {"object": {"id": user.customer_id, "object": "customer", "phone": "+91"}},
        }
        await deliver(billing, sign, [canceled, *before, json.dumps(customer_updated).encode()])

    await nothing_left(redis, billing_database_url, user)
    with psycopg.connect(billing_database_url) as conn:
        (stored,) = conn.execute(
            "SELECT payload FROM billing.stripe_events WHERE id = %s",
            (json.loads(canceled)["id"],),
        ).fetchone()
    # Kept as a record that it came (a redelivery stays a duplicate), without its content.
    assert stored["redacted"] is True and stored["data"] == {"object": {}}


async def test_a_crash_after_the_stripe_cancel_is_finished_by_the_next_delivery(
    settings, stripe_sim, sign, redis, redis_url, jwt_secret, billing_database_url
):
    """The cancel went through, then the process died before its transaction committed:
    the event is delivered again and the erasure completes (Stripe's 404 for the second
    cancel is no failure)."""
    app = create_app(settings)
    async with app_client(app) as billing:
        user = await pro_user(billing, stripe_sim, sign, redis_url, jwt_secret)
        # The step before the transaction ran; the transaction never committed.
        await erasure.cancel_at_stripe(
            Database(app.state.pool), app.state.billing, uuid.UUID(user.id)
        )
        assert await subscription_status(stripe_sim, user.subscription_id) == ("canceled", False)
        assert rows_naming(billing_database_url, user.traces)  # not erased yet
        await emit_deleted(redis, user.id)
        await handled(redis, AUTH_EVENTS, "billing")

    assert await cancels_at_stripe(stripe_sim, user.subscription_id) == 2
    await nothing_left(redis, billing_database_url, user)


async def test_billing_down_when_the_user_was_deleted_catches_up(
    settings, stripe_sim, sign, redis, redis_url, jwt_secret, billing_database_url
):
    async with app_client(create_app(settings)) as billing:
        user = await pro_user(billing, stripe_sim, sign, redis_url, jwt_secret)
        await eventually(lambda: billing_events_published(redis, user.id), what="relay")
    # Billing is not running: auth deletes the user meanwhile.
    await emit_deleted(redis, user.id)
    assert await subscription_status(stripe_sim, user.subscription_id) == ("active", False)

    async with app_client(create_app(settings)):
        await handled(redis, AUTH_EVENTS, "billing")

    assert await subscription_status(stripe_sim, user.subscription_id) == ("canceled", False)
    await nothing_left(redis, billing_database_url, user)


async def test_what_only_stripe_knows_yet_is_ended_too(
    settings, stripe_sim, sign, redis, redis_url, jwt_secret, billing_database_url
):
    """Deleted right after paying, before any webhook came: billing finds the subscription
    by listing the customer's at Stripe. Deleted with an unpaid Checkout open: it is
    expired, so it can no longer be paid."""

    async with app_client(create_app(settings)) as billing:
        paid, paid_checkout = await checkout(billing, redis_url, jwt_secret)
        await stripe_sim.pay(paid_checkout["checkoutUrl"])  # its webhooks are not delivered
        unpaid, unpaid_checkout = await checkout(billing, redis_url, jwt_secret)
        await emit_deleted(redis, paid)
        await emit_deleted(redis, unpaid)
        await handled(redis, AUTH_EVENTS, "billing")

    sessions = stripe_sim.stripe.v1.checkout.sessions
    done = await sessions.retrieve_async(paid_checkout["sessionId"])
    assert await subscription_status(stripe_sim, str(done.subscription)) == ("canceled", False)
    left_open = await sessions.retrieve_async(unpaid_checkout["sessionId"])
    assert left_open.status == "expired"
    for user, session in ((paid, done), (unpaid, left_open)):
        assert rows_naming(billing_database_url, [user, str(session.customer)]) == {}

"""Only a subscription to the configured Pro price makes a user Pro: a subscription to any
other price of the same Stripe account (another product, a cheap price made in the
dashboard) leaves them Basic, in live handling, in what SubscriptionChanged tells chat and
auth, and after a rebuild."""

import uuid
from datetime import UTC, datetime

import pytest

from billing import service
from billing.app import create_app
from shared.db import Database
from shared.events import SubscriptionChanged, decode
from shared.testing.asgi import app_client
from shared.testing.fixtures import mark_user_unrevoked
from shared.tiers import derive_tier
from shared.tokens import issue_access_token

OTHER_PRICE = "price_team_addon"
PRO_PRICE = "price_pro_monthly"

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def announced(pool, user_id: uuid.UUID) -> list[SubscriptionChanged]:
    """The SubscriptionChanged events billing wrote for the user, oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT envelope FROM outbox WHERE type = 'SubscriptionChanged'"
            " AND envelope -> 'payload' ->> 'userId' = %s ORDER BY id",
            (str(user_id),),
        )
        return [decode(row[0])[1] for row in await cur.fetchall()]  # type: ignore[misc]


def tier_a_consumer_derives(event: SubscriptionChanged) -> str:
    """What chat and auth derive from the event (shared.tiers), now."""
    now = datetime.now(UTC)
    return derive_tier(event.status, event.current_period_end, now, event.grace_until)


async def test_another_price_leaves_the_user_basic_live_and_after_rebuild_and_pro_counts(
    billing_settings, stripe_sim, sign, redis_url, jwt_secret
):
    user = uuid.uuid4()
    mark_user_unrevoked(redis_url, str(user))
    token = issue_access_token(jwt_secret, str(user), ttl_seconds=600).token
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(billing_settings(stripe_sim.url))
    async with app_client(app) as billing:

        async def deliver(subscription_id: str) -> None:
            payloads = await stripe_sim.event_payloads(subscription_id)
            assert len(payloads) == 3  # subscription created, checkout completed, invoice paid
            for payload in payloads:
                response = await billing.post(
                    "/api/v1/webhook/stripe", content=payload, headers=sign(payload)
                )
                assert response.status_code == 200, response.text

        async def tier() -> str:
            response = await billing.get("/api/v1/subscription/status", headers=auth)
            assert response.status_code == 200, response.text
            return response.json()["data"]["tier"]

        ctx = app.state.billing

        # A paid, active subscription, but to another price.
        await deliver(await stripe_sim.checkout(str(user), OTHER_PRICE))
        assert await tier() == "BASIC"
        events = await announced(app.state.pool, user)
        assert events, "the change is announced, so a consumer holding PRO would drop it"
        assert tier_a_consumer_derives(events[-1]) == "BASIC"
        assert events[-1].tier == "BASIC"
        await service.rebuild(Database(app.state.pool), ctx)
        assert await tier() == "BASIC"

        # The Pro price: Pro, announced as such, and still after a rebuild.
        pro = await stripe_sim.checkout(str(user), PRO_PRICE)
        await deliver(pro)
        assert await tier() == "PRO"
        last = (await announced(app.state.pool, user))[-1]
        assert tier_a_consumer_derives(last) == "PRO"
        item = (await stripe_sim.stripe.v1.subscriptions.retrieve_async(pro))["items"]["data"][0]
        assert (last.current_period_start, last.current_period_end) == (
            datetime.fromtimestamp(item["current_period_start"], UTC),
            datetime.fromtimestamp(item["current_period_end"], UTC),
        )
        response = await billing.get("/api/v1/subscription/status", headers=auth)
        assert response.json()["data"]["status"] == "active"
        await service.rebuild(Database(app.state.pool), ctx)
        assert await tier() == "PRO"

"""What the metrics tests do to the running stack, and how they read the services' /metrics:
shared by test_metrics.py (each service counts it), test_observe.py (every dashboard query
has data in Prometheus) and test_dashboards.py."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from dev.stack import Stack
from shared.testing.accounts import Account, sign_up_and_in
from shared.testing.stripe import event_body, sign
from shared.testing.wait import eventually

SERVICES = ("gateway", "auth", "chat", "billing", "ai-worker")


async def scrape(stack: Stack) -> dict[str, str]:
    """Service -> its /metrics, read on its own port."""
    async with httpx.AsyncClient(timeout=10) as client:
        out = {}
        for name in SERVICES:
            response = await client.get(stack.url(name) + "/metrics")
            assert response.status_code == 200, (name, response.text[:200])
            out[name] = response.text
        return out


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


@dataclass
class Chatter:
    """A signed-in person sending prompts through the gateway."""

    api: httpx.AsyncClient
    account: Account

    async def room(self) -> str:
        created = await self.api.post(
            "/api/v1/chatroom", json={"name": "metrics"}, headers=self.account.headers
        )
        assert created.status_code == 201, created.text
        return created.json()["data"]["chatroom"]["id"]

    async def send(self, room_id: str, content: str) -> httpx.Response:
        return await self.api.post(
            f"/api/v1/chatroom/{room_id}/message",
            json={"content": content},
            headers=self.account.headers,
        )

    async def prompt(self, content: str) -> str:
        """Send ``content`` to a new room; the reply's status once it has finished."""
        room_id = await self.room()
        sent = await self.send(room_id, content)
        assert sent.status_code == 201, sent.text
        reply_id = sent.json()["data"]["reply"]["id"]
        status = ""

        async def finished() -> bool:
            nonlocal status
            r = await self.api.get(f"/api/v1/chatroom/{room_id}", headers=self.account.headers)
            messages = r.json()["data"]["chatroom"]["messages"]
            status = next(m for m in messages if m["id"] == reply_id)["status"]
            return status not in ("queued", "streaming")

        await eventually(finished, timeout=30, what="the reply to finish")
        return status


async def webhook(api: httpx.AsyncClient, stack: Stack, body: bytes) -> httpx.Response:
    """``body`` delivered as Stripe would: signed with the stack's webhook secret."""
    signature = sign(body, stack.env["STRIPE_WEBHOOK_SECRET"])
    return await api.post(
        "/api/v1/webhook/stripe",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )


async def every_outcome(
    api: httpx.AsyncClient, stack: Stack, stack_redis: Redis, basic_limit: int
) -> None:
    """One new person's prompts: one completed, one Gemini refuses (400: failed, its quota
    unit back), the day filled, then a 429; codes asked for until refused (429); an entry of
    chat.events nobody can decode (a dead letter); a Stripe webhook applied, and one billing
    cannot apply (502: its subscription is unknown to Stripe; it stays stored, unapplied)."""
    chatter = Chatter(api, await sign_up_and_in(api))
    assert await chatter.prompt("hello metrics") == "completed"
    assert await chatter.prompt("[sim:400] refused by the model") == "failed"

    async def refunded() -> bool:
        usage = await api.get("/api/v1/usage", headers=chatter.account.headers)
        return usage.json()["data"]["used"] == 1

    await eventually(refunded, what="the failed prompt's unit to come back")
    for _ in range(basic_limit - 1):
        assert (await chatter.send(await chatter.room(), "filling the day")).status_code == 201
    assert (await chatter.send(await chatter.room(), "one too many")).status_code == 429

    for _ in range(10):
        number = {"mobileNumber": chatter.account.number}
        if (await api.post("/api/v1/auth/send-otp", json=number)).status_code == 429:
            break
    else:
        raise AssertionError("ten codes for one number in a row were never refused")

    await stack_redis.xadd("chat.events", {"type": "MessageQueued", "envelope": "{}"})
    _, ignored = event_body("customer.tax_id.created")
    assert (await webhook(api, stack, ignored)).status_code == 200
    _, unknown_subscription = event_body("customer.subscription.updated")
    assert (await webhook(api, stack, unknown_subscription)).status_code == 502

"""Issue 12: each service's /metrics counts what happened — a prompt, a quota 429, a Gemini
failure, a dead-lettered event, a webhook — read straight from each service's own port."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dev.stack import Stack
from shared.testing.accounts import sign_up_and_in
from shared.testing.stripe import event_body, sign
from shared.testing.wait import eventually

SERVICES = ("gateway", "auth", "chat", "billing", "ai-worker")


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


async def scrape(stack: Stack) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as client:
        out = {}
        for name in SERVICES:
            response = await client.get(stack.url(name) + "/metrics")
            assert response.status_code == 200, (name, response.text[:200])
            out[name] = response.text
        return out


async def test_each_service_counts_what_happened(api, stack, stack_redis, basic_limit):
    before = await scrape(stack)
    account = await sign_up_and_in(api)
    headers = {"Authorization": f"Bearer {account.token}"}

    async def room() -> str:
        created = await api.post("/api/v1/chatroom", json={"name": "metrics"}, headers=headers)
        return created.json()["data"]["chatroom"]["id"]

    async def send(room_id: str, content: str) -> httpx.Response:
        return await api.post(
            f"/api/v1/chatroom/{room_id}/message", json={"content": content}, headers=headers
        )

    async def final(room_id: str, reply_id: str) -> str:
        status = ""

        async def done() -> bool:
            nonlocal status
            r = await api.get(f"/api/v1/chatroom/{room_id}", headers=headers)
            reply = next(m for m in r.json()["data"]["chatroom"]["messages"] if m["id"] == reply_id)
            status = reply["status"]
            return status not in ("queued", "streaming")

        await eventually(done, timeout=30, what="the reply to finish")
        return status

    # A prompt that completes, and one that Gemini refuses (400: failed, quota unit back).
    ok_room, failing_room = await room(), await room()
    sent = await send(ok_room, "hello metrics")
    assert sent.status_code == 201
    assert await final(ok_room, sent.json()["data"]["reply"]["id"]) == "completed"
    sent = await send(failing_room, "[sim:400] refused by the model")
    assert sent.status_code == 201
    assert await final(failing_room, sent.json()["data"]["reply"]["id"]) == "failed"

    async def refunded() -> bool:
        usage = await api.get("/api/v1/usage", headers=headers)
        return usage.json()["data"]["used"] == 1

    await eventually(refunded, what="the failed prompt's unit to come back")
    # Fill the day, then one more: 429.
    for _ in range(basic_limit - 1):
        assert (await send(await room(), "filling the day")).status_code == 201
    assert (await send(await room(), "one too many")).status_code == 429

    # A dead letter: an entry no consumer can decode.
    await stack_redis.xadd("chat.events", {"type": "MessageQueued", "envelope": "{}"})
    # A verified webhook.
    _, body = event_body("customer.tax_id.created")
    signature = sign(body, stack.env["STRIPE_WEBHOOK_SECRET"])
    webhook = await api.post(
        "/api/v1/webhook/stripe",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )
    assert webhook.status_code == 200

    after: dict[str, str] = {}

    def grew(service: str, name: str, by: float = 1, **labels: str) -> bool:
        return value(after[service], name, **labels) - value(before[service], name, **labels) >= by

    async def counted() -> bool:
        after.update(await scrape(stack))
        return grew("ai-worker", "stream_dead_lettered_total", stream="chat.events")

    await eventually(counted, timeout=15, what="the dead letter to be counted")

    assert grew("auth", "auth_otps_sent_total")
    assert grew(
        "gateway", "http_requests_total", route="/api/v1/chatroom/{id}/message", status="201"
    )
    assert grew(
        "gateway", "http_requests_total", route="/api/v1/chatroom/{id}/message", status="429"
    )
    assert grew("chat", "http_requests_total", route="/api/v1/chatroom/{chatroom_id}/message")
    assert grew("chat", "chat_prompts_total", by=basic_limit + 1, outcome="accepted")
    assert grew("chat", "chat_prompts_total", outcome="daily_limit")
    assert grew("chat", "stream_events_handled_total", stream="ai.events", outcome="ok")
    assert grew("ai-worker", "ai_generation_seconds_count", status="completed")
    assert grew("ai-worker", "ai_generation_seconds_count", status="failed")
    assert grew("ai-worker", "ai_gemini_errors_total", code="400")
    assert grew("ai-worker", "ai_time_to_first_token_seconds_count")
    assert grew("ai-worker", "ai_tokens_total", kind="output")
    assert value(after["ai-worker"], "stream_dead_letters", stream="chat.events") >= 1
    assert grew("billing", "billing_webhook_events_total", type="other", outcome="applied")
    # Lag and the outbox are read when scraped: present, whatever their value.
    assert "stream_group_lag" in after["chat"] and "outbox_backlog" in after["chat"]
    assert "billing_reprocess_backlog" in after["billing"]


async def test_metrics_are_not_served_to_the_internet_through_the_gateway(api):
    """The gateway's port is public: its own /metrics answers 403 to a public peer. (The
    test client is on loopback, so here the gateway must not route /metrics anywhere.)"""
    response = await api.get("/api/v1/metrics")
    assert response.status_code == 404

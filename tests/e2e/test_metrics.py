"""Issue 12: each service's /metrics counts what happened — a prompt, a quota 429, a Gemini
failure, a dead-lettered event, webhooks, a refused code (tests/e2e/traffic.py) — read
straight from each service's own port."""

from __future__ import annotations

from shared.testing.wait import eventually
from tests.e2e.traffic import every_outcome, scrape, value


async def test_each_service_counts_what_happened(api, stack, stack_redis, basic_limit):
    before = await scrape(stack)
    await every_outcome(api, stack, stack_redis, basic_limit)

    after: dict[str, str] = {}

    def grew(service: str, name: str, by: float = 1, **labels: str) -> bool:
        return value(after[service], name, **labels) - value(before[service], name, **labels) >= by

    async def counted() -> bool:
        after.update(await scrape(stack))
        return grew("ai-worker", "stream_dead_lettered_total", stream="chat.events")

    await eventually(counted, timeout=15, what="the dead letter to be counted")

    assert grew("auth", "auth_otps_sent_total")
    assert grew("auth", "auth_throttled_total", limit="otp-number")
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
    assert grew("billing", "billing_webhook_events_total", outcome="failed")
    assert grew("gateway", "http_requests_total", route="/api/v1/webhook/stripe", status="502")
    # Lag and the outbox are read when scraped: present, whatever their value.
    assert "stream_group_lag" in after["chat"] and "outbox_backlog" in after["chat"]
    assert "billing_reprocess_backlog" in after["billing"]


async def test_metrics_are_not_served_to_the_internet_through_the_gateway(api):
    """The gateway's port is public: its own /metrics answers 403 to a public peer. (The
    test client is on loopback, so here the gateway must not route /metrics anywhere.)"""
    response = await api.get("/api/v1/metrics")
    assert response.status_code == 404

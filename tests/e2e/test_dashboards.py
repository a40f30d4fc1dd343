"""Issue 12: every metric the Grafana dashboard and the alerting rules in deploy/observability
read is one a service really exposes at /metrics (a renamed or misspelt metric would leave a
panel empty and an alert silent)."""

from __future__ import annotations

import httpx
import pytest

from deploy.tests.observability import dashboard_exprs, exposed_names, rule_exprs, unknown_names
from dev.stack import Stack
from shared.testing.accounts import sign_up_and_in
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "auth", "chat", "billing", "ai-worker")


async def exposed(stack: Stack) -> set[str]:
    """What any of the five services' /metrics exposes."""
    names: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for service in SERVICES:
            response = await client.get(stack.url(service) + "/metrics")
            assert response.status_code == 200, (service, response.text[:200])
            names |= exposed_names(response.text)
    return names


async def replied(api: httpx.AsyncClient) -> None:
    """A prompt through the gateway, answered: the HTTP, stream and ai-worker histograms
    have samples (families without any still have their # TYPE line)."""
    account = await sign_up_and_in(api)
    created = await api.post(
        "/api/v1/chatroom", json={"name": "dashboards"}, headers=account.headers
    )
    room = created.json()["data"]["chatroom"]["id"]
    sent = await api.post(
        f"/api/v1/chatroom/{room}/message", json={"content": "hello"}, headers=account.headers
    )
    assert sent.status_code == 201, sent.text
    reply_id = sent.json()["data"]["reply"]["id"]

    async def completed() -> bool:
        r = await api.get(f"/api/v1/chatroom/{room}", headers=account.headers)
        messages = r.json()["data"]["chatroom"]["messages"]
        return next(m for m in messages if m["id"] == reply_id)["status"] == "completed"

    await eventually(completed, timeout=30, what="the reply to complete")


async def test_every_metric_the_dashboard_and_the_alerts_read_is_exposed(api, stack):
    await replied(api)
    names = await exposed(stack)
    assert "ai_time_to_first_token_seconds_bucket" in names  # the scrape was read
    for source, exprs in (("dashboard", dashboard_exprs()), ("alerts", rule_exprs())):
        missing = unknown_names(exprs, names)
        assert not missing, f"{source} reads metrics no service exposes: {missing}"

"""Issue 12: Prometheus as `make observe` runs it (dev/observe.py), scraping the running
stack with the alert rules loaded, has data for every query of the Grafana dashboard once
the stack has done everything the services count (tests/e2e/traffic.py)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from deploy.observability import as_promql, dashboard_exprs, load_rules, rule_exprs
from dev.observe import Prometheus, scrape_targets
from dev.stack import Stack, free_port
from shared.testing.wait import eventually
from tests.e2e.traffic import SERVICES, every_outcome

pytestmark = pytest.mark.e2e

# Grafana's $__rate_interval: longer than this test, so each rate covers all it did.
WINDOW = "1m"


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[Prometheus]:
    targets = scrape_targets(stack)
    assert set(targets) == set(SERVICES)
    with Prometheus(targets, tmp_path, free_port(), scrape_interval="1s") as running:
        yield running


@pytest.fixture
async def prom(prometheus: Prometheus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=prometheus.url, timeout=10) as client:
        yield client


async def query(prom: httpx.AsyncClient, expr: str) -> list[dict]:
    response = await prom.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, (expr, response.text)
    return response.json()["data"]["result"]


async def scraped_after(prom: httpx.AsyncClient, moment: float) -> None:
    """Wait until Prometheus has scraped every service after ``moment`` (a Unix time)."""

    async def scraped() -> bool:
        oldest = await query(prom, "min(timestamp(up))")
        return bool(oldest) and float(oldest[0]["value"][1]) > moment

    await eventually(scraped, timeout=10, what="Prometheus to scrape every service again")


async def test_every_dashboard_query_has_data_and_every_rule_is_evaluated(
    prom, api, stack, stack_redis, basic_limit
):
    async def all_up() -> bool:
        return len(await query(prom, "up == 1")) == len(SERVICES)

    await eventually(all_up, timeout=15, what="Prometheus to scrape every service")
    # Twice: Prometheus first sees a series (a status, a code, an outcome counted for the
    # first time) at its first value, so only what the second round adds shows in a rate.
    await every_outcome(api, stack, stack_redis, basic_limit)
    await scraped_after(prom, time.time())
    await every_outcome(api, stack, stack_redis, basic_limit)

    # Polled, not slept: a rate needs two scrapes after what it counts.
    waiting = {where: as_promql(expr, WINDOW) for where, expr in dashboard_exprs().items()}

    async def every_panel_has_data() -> bool:
        for where, expr in list(waiting.items()):
            values = [float(sample["value"][1]) for sample in await query(prom, expr)]
            values = [v for v in values if math.isfinite(v)]  # a quantile of nothing is NaN
            # A gauge may well be 0 (no lag); a rate must have seen what was done.
            if any(v > 0 for v in values) if "rate(" in expr else values:
                del waiting[where]
        return not waiting

    try:
        await eventually(every_panel_has_data, timeout=20, interval=0.5, what="data")
    except AssertionError:
        pytest.fail("dashboard queries without data: " + json.dumps(waiting, indent=1))

    groups = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
    assert {g["name"] for g in groups} == {g["name"] for g in load_rules()["groups"]}
    assert {rule["name"] for g in groups for rule in g["rules"]} == set(rule_exprs())

    async def evaluated() -> bool:
        groups = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
        health = {r["name"]: (r["health"], r.get("lastError")) for g in groups for r in g["rules"]}
        assert all(h != "err" for h, _ in health.values()), health
        return all(h == "ok" for h, _ in health.values())

    await eventually(evaluated, timeout=10, what="every alert rule to be evaluated")
    # The dead letter makes its alert pending (it fires after a minute).
    alerts = (await prom.get("/api/v1/alerts")).json()["data"]["alerts"]
    dead_letters = [a["labels"] for a in alerts if a["labels"]["alertname"] == "StreamDeadLetters"]
    assert any(labels["stream"] == "chat.events" for labels in dead_letters), alerts

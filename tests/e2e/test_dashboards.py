"""Issue 12: every metric the Grafana dashboard and the alerting rules in deploy/observability
read is one a service really exposes at /metrics (a renamed or misspelt metric would leave a
panel empty and an alert silent)."""

from __future__ import annotations

import pytest

from deploy.observability import dashboard_exprs, exposed_names, rule_exprs, unknown_names
from shared.testing.accounts import sign_up_and_in
from tests.e2e.traffic import Chatter, scrape

pytestmark = pytest.mark.e2e


async def test_every_metric_the_dashboard_and_the_alerts_read_is_exposed(api, stack):
    # A prompt answered: the HTTP, stream and ai-worker histograms have samples (families
    # without any still have their # TYPE line).
    assert await Chatter(api, await sign_up_and_in(api)).prompt("hello") == "completed"
    names: set[str] = set()
    for exposition in (await scrape(stack)).values():
        names |= exposed_names(exposition)
    assert "ai_time_to_first_token_seconds_bucket" in names  # the scrape was read
    for source, exprs in (("dashboard", dashboard_exprs()), ("alerts", rule_exprs())):
        missing = unknown_names(exprs, names)
        assert not missing, f"{source} reads metrics no service exposes: {missing}"

"""deploy/observability: the Prometheus alerting rules and the Grafana dashboard, checked
offline. That every metric they read exists is checked against the running services by
tests/e2e/test_dashboards.py."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from deploy.observability import (
    ALERTS,
    all_panels,
    as_promql,
    dashboard_exprs,
    exposed_names,
    load_dashboard,
    load_rules,
    metric_names,
    rule_exprs,
    unknown_names,
)

# Prometheus's duration syntax (model.ParseDuration): units largest first, each once.
DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"critical", "warning", "info"}
DATASOURCE = "${datasource}"
PANEL_TYPES = {"timeseries", "stat"}


def is_duration(value: object) -> bool:
    return isinstance(value, str) and value not in ("", "0") and bool(DURATION.match(value))


def balanced(expr: str) -> bool:
    """Brackets nest and close (outside strings): the syntax check we can do without promtool."""
    closing = {")": "(", "]": "[", "}": "{"}
    stack = []
    for char in re.sub(r'"(?:\\.|[^"\\])*"', "", expr):
        if char in "([{":
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            return False
    return not stack


def test_every_alerting_rule_is_complete():
    rules = load_rules()
    assert set(rules) == {"groups"}
    groups = rules["groups"]
    assert len({g["name"] for g in groups}) == len(groups), "group names must be unique"
    alerts = []
    for group in groups:
        assert group["rules"], f"group {group['name']} has no rules"
        for rule in group["rules"]:
            where = rule.get("alert", rule)
            assert set(rule) <= RULE_KEYS, (where, set(rule) - RULE_KEYS)
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule.get("alert", "")), where
            assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), where
            assert balanced(rule["expr"]), where
            assert is_duration(rule.get("for")), (where, rule.get("for"))
            assert rule.get("labels", {}).get("severity") in SEVERITIES, where
            for key in ("summary", "description"):
                assert str(rule.get("annotations", {}).get(key, "")).strip(), (where, key)
            alerts.append(rule["alert"])
    assert len(set(alerts)) == len(alerts), "alert names must be unique"


def test_the_rules_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool, (
        "promtool is not on PATH: `make test` installs Debian's prometheus package for it"
        " (as root with apt-get); elsewhere install your distribution's prometheus"
    )
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_reads_prometheus_through_its_datasource_variable():
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", {"uid": DATASOURCE})["uid"] == DATASOURCE


def test_every_panel_has_queries_and_a_place_of_its_own():
    panels = all_panels(load_dashboard())
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        title, grid = panel["title"], panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, title
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = title
        if panel["type"] == "row":
            continue
        assert panel["type"] in PANEL_TYPES, title
        targets = panel.get("targets", [])
        assert targets, f"{title} has no query"
        assert len({t["refId"] for t in targets}) == len(targets), title
        for target in targets:
            assert target.get("expr", "").strip(), (title, target["refId"])
            assert balanced(target["expr"]), (title, target["refId"])


def test_every_query_reads_a_metric():
    for where, expr in {**rule_exprs(), **dashboard_exprs()}.items():
        assert metric_names(expr), where


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("max by (stream, group) (stream_group_lag) > 100", {"stream_group_lag"}),
        (
            'sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))'
            " / sum(rate(x[5m])) by (job)",
            {"http_requests_total", "x"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
        ),
        ("a > bool 1e3 and on (job) b offset 5m unless ignoring(x) c", {"a", "b", "c"}),
        ('label_replace(up, "dst", "$1", "src", "(.*)")', {"up"}),
    ],
)
def test_metric_names_are_read_from_promql(expr, names):
    assert metric_names(expr) == names


def test_a_query_of_a_metric_nobody_exposes_is_found():
    registry = CollectorRegistry()
    Counter("requests_total", "r", ["status"], registry=registry)  # no sample yet
    Histogram("duration_seconds", "d", registry=registry)
    exposed = exposed_names(generate_latest(registry).decode())
    exprs = {
        "ok": "sum(rate(requests_total[5m])) + sum(rate(duration_seconds_count[5m]))",
        "quantile": "histogram_quantile(0.5, rate(duration_seconds_bucket[5m]))",
        "typo": "sum(rate(request_total[5m]))",
        "not a histogram": "rate(requests_total_count[5m])",
    }
    assert unknown_names(exprs, exposed) == {
        "typo": {"request_total"},
        "not a histogram": {"requests_total_count"},
    }


@pytest.mark.parametrize(
    ("expr", "promql"),
    [
        ("rate(x[$__rate_interval])", "rate(x[1m])"),
        ("rate(x[${__interval}]) / rate(y[$__range])", "rate(x[1m]) / rate(y[1m])"),
        (
            'label_replace(up, "dst", "$1", "src", "(.*)")',
            'label_replace(up, "dst", "$1", "src", "(.*)")',
        ),
    ],
)
def test_grafana_range_variables_become_the_given_window(expr, promql):
    assert as_promql(expr, "1m") == promql


def test_a_grafana_variable_without_a_value_is_an_error():
    with pytest.raises(ValueError, match=r"\$job"):
        as_promql('up{job="$job"}', "1m")

"""The alerting rules and the Grafana dashboard beside this module, and the metric names
their PromQL reads: `make observe` loads the rules and graphs the queries (dev/observe.py);
checked offline by deploy/tests/test_observability.py, against every service's live
/metrics by tests/e2e/test_dashboards.py, run on Prometheus scraping the stack by
tests/e2e/test_observe.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

OBSERVABILITY = Path(__file__).resolve().parent
ALERTS = OBSERVABILITY / "alerts.yaml"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"


def load_rules() -> dict[str, Any]:
    return yaml.safe_load(ALERTS.read_text())


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside a collapsed row too."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def rule_exprs() -> dict[str, str]:
    """Alert name -> its expression."""
    return {
        rule["alert"]: rule["expr"] for group in load_rules()["groups"] for rule in group["rules"]
    }


def dashboard_exprs() -> dict[str, str]:
    """ "<panel title> <refId>" -> the target's expression."""
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in all_panels(load_dashboard())
        for target in panel.get("targets", [])
    }


# A loose reading of PromQL, enough to find the metric names an expression reads: what is
# left once strings, label matchers, ranges, grouping clauses and Grafana's variables are
# gone are identifiers, and those that are neither a keyword nor a function (an identifier
# followed by "(") are metric names.
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` reads, as written (``x_bucket`` stays ``x_bucket``)."""
    text = _STRING.sub(" ", expr)
    for pattern in (_VARIABLE, _MATCHERS, _RANGE, _GROUPING):
        text = pattern.sub(" ", text)
    return {
        name
        for name, call in _IDENTIFIER.findall(text)
        if not call and name.lower() not in _KEYWORDS
    }


_GRAFANA_RANGE = re.compile(r"\$\{?(?:__rate_interval|__interval|__range)\b\}?")
_GRAFANA_VARIABLE = re.compile(r"\$\{?[A-Za-z_]\w*")


def as_promql(expr: str, window: str) -> str:
    """``expr`` as Prometheus can run it: Grafana's range variables ($__rate_interval,
    $__interval, $__range) become ``window`` (e.g. "1m"); any other variable ($job) is an
    error ($1 in label_replace is none)."""
    promql = _GRAFANA_RANGE.sub(window, expr)
    if left := _GRAFANA_VARIABLE.search(promql):
        raise ValueError(f"no value for the Grafana variable {left.group(0)} in {expr!r}")
    return promql


_TYPE = re.compile(r"^# TYPE (\S+) (\w+)$", re.MULTILINE)
_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def exposed_names(exposition: str) -> set[str]:
    """The names a query can read from a Prometheus text exposition: every family in a
    ``# TYPE`` line (there even before its first sample), and a histogram's series."""
    names = set()
    for family, kind in _TYPE.findall(exposition):
        names.add(family)
        names.update(family + suffix for suffix in _SUFFIXES.get(kind, ()))
    return names


def unknown_names(exprs: dict[str, str], exposed: Iterable[str]) -> dict[str, set[str]]:
    """Where -> the metric names it reads that nothing exposes (empty when all exist)."""
    known = set(exposed)
    missing = {where: metric_names(expr) - known for where, expr in exprs.items()}
    return {where: names for where, names in missing.items() if names}

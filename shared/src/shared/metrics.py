"""Prometheus metrics: one registry per process (every service runs one uvicorn process; a
pod is scaled by replicas, never by forking workers), served at ``/metrics`` on the
service's own port by :func:`metrics_endpoint`.

Counters and histograms are updated where things happen; gauges that describe state held
elsewhere (a consumer group's lag, the outbox backlog) are read when Prometheus scrapes, by
the async *collectors* a service registers with :func:`on_scrape`.

Only peers on private or loopback addresses may read ``/metrics``: Prometheus runs inside
the cluster, and the gateway's port is public (its peer address is the client's own, see
FORWARDED_ALLOW_IPS), where route names and error rates are nobody else's business.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import Forbidden

log = structlog.get_logger(__name__)

# Latency buckets for a request or an event: 1 ms to 10 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template (never the raw path), method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of its body; a stream's whole life).",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
# A path that matched no route: one label value, so a scanner cannot grow the series.
UNMATCHED = "unmatched"

EVENTS_HANDLED = Counter(
    "stream_events_handled_total",
    "Stream entries a consumer group handled, by outcome (ok, failed, skipped).",
    ["stream", "group", "outcome"],
)
EVENT_DURATION = Histogram(
    "stream_event_handle_seconds",
    "Time a consumer took to handle one entry.",
    ["stream", "group"],
    buckets=LATENCY_BUCKETS,
)
REDELIVERIES = Counter(
    "stream_redeliveries_total",
    "Entries a consumer took over after they sat unacknowledged past the deadline.",
    ["stream", "group"],
)
DEAD_LETTERED = Counter(
    "stream_dead_lettered_total",
    "Entries moved to <stream>.dlq (undecodable, or failed too many times).",
    ["stream", "group"],
)
GROUP_LAG = Gauge(
    "stream_group_lag",
    "Entries of the stream the group has not read yet (XINFO GROUPS lag).",
    ["stream", "group"],
)
GROUP_PENDING = Gauge(
    "stream_group_pending",
    "Entries the group has read but not acknowledged (XINFO GROUPS pending).",
    ["stream", "group"],
)
DEAD_LETTERS = Gauge(
    "stream_dead_letters",
    "Entries now in <stream>.dlq, waiting for an operator (dlq list | replay | purge).",
    ["stream"],
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published.")
OUTBOX_LAG = Gauge(
    "outbox_lag_seconds", "Age of the oldest unpublished outbox row (0 when there is none)."
)
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published to their stream.")

Collector = Callable[[], Awaitable[None]]
_collectors: list[Collector] = []
SCRAPE_TIMEOUT = 2.0


def on_scrape(collector: Collector) -> Callable[[], None]:
    """Run ``collector`` before each scrape (to set gauges); returns the way to remove it."""
    _collectors.append(collector)
    return lambda: _collectors.remove(collector) if collector in _collectors else None


_PRIVATE = [
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
    )
]


def _private(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(address in net for net in _PRIVATE if net.version == address.version)


async def _collect(collector: Collector) -> None:
    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT):
            await collector()
    except Exception as exc:  # a gauge left as it was is better than no metrics at all
        log.warning(
            "metrics.collector_failed",
            collector=getattr(collector, "__qualname__", "?"),
            error=repr(exc),
        )


async def metrics_endpoint(request: Request) -> Response:
    """The Prometheus text format, for peers on private networks only (403 otherwise)."""
    if not _private(request.client.host if request.client else None):
        raise Forbidden("Metrics are served to the cluster's own network only.")
    await asyncio.gather(*(_collect(c) for c in list(_collectors)))
    return Response(content=generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def route_of(scope: Mapping[str, Any]) -> str:
    """The route template a request matched: what the app put in ``scope["metrics_route"]``
    (the gateway's route table), else the Starlette route's path, else UNMATCHED."""
    template: str | None = scope.get("metrics_route")
    if template:
        return template
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED

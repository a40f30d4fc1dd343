"""billing's own Prometheus metrics (shared.metrics has the HTTP, consumer and outbox ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WEBHOOK_EVENTS = Counter(
    "billing_webhook_events_total",
    "Verified Stripe events received, by type (the handled ones; `other` for the rest) and"
    " outcome (applied, duplicate, failed: kept for the reprocessing loop).",
    ["type", "outcome"],
)
REPROCESS_BACKLOG = Gauge(
    "billing_reprocess_backlog", "Stored Stripe events not applied yet (failed or in progress)."
)

"""chat's own Prometheus metrics (shared.metrics has the HTTP, consumer and outbox ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PROMPTS = Counter(
    "chat_prompts_total",
    "Prompts sent to a chatroom, by outcome: accepted, reply_pending (409), daily_limit (429).",
    ["outcome"],
)
OPEN_STREAMS = Gauge("chat_open_reply_streams", "SSE reply streams this process is sending now.")

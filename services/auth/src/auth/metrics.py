"""auth's own Prometheus metrics (shared.metrics has the HTTP, consumer and outbox ones)."""

from __future__ import annotations

from prometheus_client import Counter

OTPS_SENT = Counter("auth_otps_sent_total", "One-time codes delivered, by purpose.", ["purpose"])
VERIFICATION_FAILURES = Counter(
    "auth_verification_failures_total",
    "One-time codes refused, by reason (invalid_otp, otp_expired, otp_attempts_exceeded).",
    ["reason"],
)
THROTTLED = Counter(
    "auth_throttled_total",
    "Requests refused by a rate limit or attempt budget, by limit (never the number or IP).",
    ["limit"],
)

"""Stripe webhooks for tests: a signature as Stripe computes it, and a bare event."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event_body(event_type: str = "customer.subscription.updated") -> tuple[str, bytes]:
    event_id = f"evt_test_{uuid.uuid4().hex[:16]}"
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": {"id": "sub_nothing", "object": "subscription"}},
    }
    return event_id, json.dumps(body).encode()

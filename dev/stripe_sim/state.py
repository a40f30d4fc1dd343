"""The simulator's configuration and state, and the JSON error it answers with."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from dev.stripe_sim.errors import StripeError
from dev.stripe_sim.store import Change, EventRecord, PriceSpec, Store
from dev.stripe_sim.webhooks import Deliverer, Target

log = logging.getLogger("dev.stripe_sim")

DEFAULT_PORT = 12111
DEFAULT_SECRET = "whsec_stripe_sim_dev_secret"
MAX_RECORDS = 1000


@dataclass(frozen=True)
class SimConfig:
    prices: tuple[PriceSpec, ...] = (PriceSpec("price_pro_monthly"),)
    webhook_url: str | None = None  # None: events are recorded, not sent
    webhook_secret: str = DEFAULT_SECRET
    public_url: str | None = None  # base of checkout/portal URLs; None: the request's base URL
    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)  # waits before each retry of a failure
    delivery_timeout: float = 10.0  # seconds for one webhook POST
    pay_wait_seconds: float = 10.0  # Pay awaits first delivery attempts up to this long
    period_days: int = 30

    def __post_init__(self) -> None:
        if not self.prices:
            raise ValueError("give at least one price")
        if len({p.id for p in self.prices}) != len(self.prices):
            raise ValueError("price ids must be unique")
        if any(d < 0 for d in self.retry_delays) or self.pay_wait_seconds < 0:
            raise ValueError("delays must not be negative")
        if self.delivery_timeout <= 0 or self.period_days < 1:
            raise ValueError("delivery_timeout and period_days must be positive")
        if not self.webhook_secret:
            raise ValueError("the webhook secret must not be empty")
        for url in (self.webhook_url, self.public_url):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url!r}")

    def public(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["prices"] = [p.id for p in self.prices]
        return out


@dataclass
class StoredResponse:
    """The first response to an idempotency key, replayed for the same request."""

    method: str
    path: str
    params: list[tuple[str, str]]
    status: int
    body: bytes
    request_id: str
    at: float = field(default_factory=time.time)


class SimState:
    """Everything `/_sim/reset` puts back: config, objects, events, idempotency keys, hold."""

    def __init__(self, config: SimConfig) -> None:
        self.startup = config
        self.config = config
        self.store = Store(config.prices, config.period_days)
        self.deliverer = Deliverer(self.target)
        self.reset()

    def reset(self) -> None:
        self.config = self.startup
        self.store.reset()
        self.deliverer.reset()
        self.idempotency: dict[tuple[str, str], StoredResponse] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self.warned_versions: set[str] = set()

    def target(self) -> Target:
        c = self.config
        return Target(c.webhook_url, c.webhook_secret, c.retry_delays, c.delivery_timeout)

    def emit(
        self,
        changes: list[Change],
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[list[EventRecord], asyncio.Task[Any] | None]:
        """Makes the changes events and starts delivering them (unless held)."""
        records = self.store.publish(
            changes,
            pending_webhooks=1 if self.config.webhook_url else 0,
            request_id=request_id,
            idempotency_key=idempotency_key,
        )
        return records, self.deliverer.dispatch(records)

    def public_url(self, request: Request) -> str:
        return (self.config.public_url or str(request.base_url)).rstrip("/")


def error_response(exc: StripeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def sim_error(status: int, message: str) -> JSONResponse:
    return error_response(StripeError(status, message))

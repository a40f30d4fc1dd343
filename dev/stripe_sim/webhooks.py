"""Signed webhook delivery: Stripe's `Stripe-Signature` scheme, retries, every attempt recorded."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from dev.stripe_sim.store import EventRecord

log = logging.getLogger("dev.stripe_sim")

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def signature_header(body: bytes, secret: str, timestamp: int) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Stripe signs."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Target:
    """Where and how events go; read afresh for every attempt (`/_sim/config` can change it)."""

    url: str | None
    secret: str
    retry_delays: tuple[float, ...]
    timeout: float


class Deliverer:
    """Sends events in the background. First attempts of one action's events go in creation
    order, one at a time; a failed one is retried on its own task (so it does not hold up the
    rest, and arrives late and out of order, as from Stripe)."""

    def __init__(self, target: Callable[[], Target]) -> None:
        self.target = target
        self.held = False
        self.tasks: set[asyncio.Task[Any]] = set()

    def reset(self) -> None:
        self.held = False
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def dispatch(self, records: Sequence[EventRecord]) -> asyncio.Task[Any] | None:
        """Delivers new events in the background, unless held or no URL is configured."""
        if not records or self.held or not self.target().url:
            return None
        return self.spawn(self._in_order(list(records)))

    async def _in_order(self, records: list[EventRecord]) -> None:
        for record in records:
            attempt = await self.attempt(record, "auto")
            if not attempt["ok"] and self.target().retry_delays:
                self.spawn(self._retry(record))

    async def _retry(self, record: EventRecord) -> None:
        for delay in self.target().retry_delays:
            await asyncio.sleep(delay)
            if (await self.attempt(record, "retry"))["ok"]:
                return

    async def deliver(self, record: EventRecord, kind: str, *, retry: bool) -> dict[str, Any]:
        """One attempt now; with `retry`, failures go on being retried in the background."""
        attempt = await self.attempt(record, kind)
        if retry and not attempt["ok"] and self.target().retry_delays:
            self.spawn(self._retry(record))
        return attempt

    async def attempt(self, record: EventRecord, kind: str) -> dict[str, Any]:
        """POSTs the event's exact bytes, freshly signed; records and returns the attempt."""
        target = self.target()
        record.started += 1
        attempt: dict[str, Any] = {
            "attempt": record.started,
            "kind": kind,  # auto (first, on creation), retry, manual (a /_sim/ deliver)
            "at": time.time(),
            "url": target.url,
            "status": None,
            "ok": False,
            "error": None,
            "duration_ms": 0.0,
        }
        started = time.perf_counter()
        try:
            if not target.url:
                raise RuntimeError("no webhook URL configured")
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                "Accept": "*/*; q=0.5, application/xml",
                "Cache-Control": "no-cache",
                "Stripe-Signature": signature_header(record.body, target.secret, int(time.time())),
            }
            async with httpx.AsyncClient(timeout=target.timeout) as client:
                response = await client.post(target.url, content=record.body, headers=headers)
            attempt["status"] = response.status_code
            attempt["ok"] = 200 <= response.status_code < 300
        except (httpx.HTTPError, RuntimeError) as exc:
            attempt["error"] = f"{type(exc).__name__}: {exc}".rstrip(": ")
        attempt["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        record.attempts.append(attempt)
        log.info(
            "webhook %s %s attempt %d (%s) -> %s",
            record.type,
            record.id,
            attempt["attempt"],
            kind,
            attempt["status"] or attempt["error"],
        )
        return attempt

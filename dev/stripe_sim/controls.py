"""The `/_sim/` controls: move subscriptions through time, deliver events at will, inspect
and reset."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dev.stripe_sim.errors import StripeError, missing
from dev.stripe_sim.state import SimState, error_response, sim_error
from dev.stripe_sim.store import Change

log = logging.getLogger("dev.stripe_sim")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CancelBody(_Body):
    at_period_end: bool


class FailBody(_Body):
    advance_period: bool = True


class ExpireBody(_Body):
    seconds_ago: int = Field(default=1, ge=0)


class RedeliverBody(_Body):
    times: int = Field(default=1, ge=1, le=100)
    concurrent: bool = False
    retry: bool = False  # a failed attempt is retried in the background, as on creation


class DeliverBody(_Body):
    events: list[str] | None = None  # None: every event never attempted (e.g. held ones)
    order: Literal["as_given", "shuffled", "reversed"] = "as_given"
    seed: int | None = None
    retry: bool = False


class HoldBody(_Body):
    hold: bool


class ConfigBody(_Body):
    webhook_url: str | None = None
    webhook_secret: str | None = None
    public_url: str | None = None
    retry_delays: list[float] | None = None
    delivery_timeout: float | None = None
    pay_wait_seconds: float | None = None


def router(state: SimState) -> APIRouter:
    """The `/_sim/` routes."""
    store = state.store
    router = APIRouter()

    # --- Controls ------------------------------------------------------------------------------

    def control(changes_of: Callable[[], list[Change]], sid: str) -> Response:
        try:
            records, _ = state.emit(changes_of())
        except StripeError as exc:
            return error_response(exc)
        return JSONResponse(
            {
                "subscription": store.subscriptions[sid],
                "events": [{"id": r.id, "type": r.type} for r in records],
            }
        )

    @router.post("/_sim/subscriptions/{sid}/renew")
    async def renew(sid: str) -> Response:
        return control(lambda: store.renew(sid), sid)

    @router.post("/_sim/subscriptions/{sid}/fail_payment")
    async def fail_payment(sid: str, body: FailBody | None = None) -> Response:
        advance = (body or FailBody()).advance_period
        return control(lambda: store.fail_payment(sid, advance_period=advance), sid)

    @router.post("/_sim/subscriptions/{sid}/cancel")
    async def cancel(sid: str, body: CancelBody) -> Response:
        if body.at_period_end:
            return control(lambda: store.set_cancel_at_period_end(sid, True), sid)
        return control(lambda: store.cancel_now(sid), sid)

    @router.post("/_sim/subscriptions/{sid}/expire")
    async def expire(sid: str, body: ExpireBody | None = None) -> Response:
        seconds_ago = (body or ExpireBody()).seconds_ago

        def move() -> list[Change]:
            store.expire(sid, seconds_ago)
            return []  # no event: the period has ended, the renewal has not come (yet)

        return control(move, sid)

    @router.post("/_sim/checkout/sessions/{sid}/expire")
    async def expire_session_now(sid: str, body: ExpireBody | None = None) -> Response:
        seconds_ago = (body or ExpireBody()).seconds_ago
        try:
            store.move_session_expiry(sid, seconds_ago)
        except StripeError as exc:
            return error_response(exc)
        records, _ = state.emit(store.expire_due_sessions())
        return JSONResponse(
            {
                "checkout_session": store.sessions[sid],
                "events": [{"id": r.id, "type": r.type} for r in records],
            }
        )

    @router.get("/_sim/events")
    async def events(type: str | None = None) -> dict[str, Any]:
        records = [r for r in store.events.values() if type is None or r.type == type]
        return {"events": [r.summary() for r in records], "held": state.deliverer.held}

    @router.get("/_sim/events/{eid}")
    async def event(eid: str) -> Response:
        if eid not in store.events:
            return error_response(missing("event", eid))
        return JSONResponse(store.events[eid].summary())

    def no_url() -> JSONResponse | None:
        if state.config.webhook_url:
            return None
        return sim_error(400, "No webhook URL is configured: set one with POST /_sim/config.")

    @router.post("/_sim/events/{eid}/deliver")
    async def redeliver(eid: str, body: RedeliverBody | None = None) -> Response:
        body = body or RedeliverBody()
        if eid not in store.events:
            return error_response(missing("event", eid))
        if (error := no_url()) is not None:
            return error
        record = store.events[eid]
        if body.concurrent:
            attempts = await asyncio.gather(
                *(
                    state.deliverer.deliver(record, "manual", retry=body.retry)
                    for _ in range(body.times)
                )
            )
        else:
            attempts = [
                await state.deliverer.deliver(record, "manual", retry=body.retry)
                for _ in range(body.times)
            ]
        return JSONResponse({"id": eid, "type": record.type, "attempts": list(attempts)})

    @router.post("/_sim/deliver")
    async def deliver(body: DeliverBody | None = None) -> Response:
        body = body or DeliverBody()
        if body.events is None:
            ids = [r.id for r in store.events.values() if r.started == 0]
        else:
            ids = list(body.events)
            unknown = [i for i in ids if i not in store.events]
            if unknown:
                return sim_error(404, f"No such events: {', '.join(unknown)}")
        if (error := no_url()) is not None:
            return error
        if body.order == "reversed":
            ids.reverse()
        elif body.order == "shuffled":
            random.Random(body.seed).shuffle(ids)
        results = []
        for eid in ids:  # one at a time, so the receiver sees exactly this order
            record = store.events[eid]
            attempt = await state.deliverer.deliver(record, "manual", retry=body.retry)
            results.append({"id": eid, "type": record.type, **attempt})
        return JSONResponse({"order": ids, "results": results})

    @router.post("/_sim/hold")
    async def hold(body: HoldBody) -> dict[str, bool]:
        state.deliverer.held = body.hold
        return {"held": body.hold}

    @router.get("/_sim/config")
    async def get_config() -> dict[str, Any]:
        return state.config.public()

    @router.post("/_sim/config")
    async def set_config(body: ConfigBody) -> Response:
        changes = body.model_dump(exclude_unset=True)
        if "retry_delays" in changes:
            changes["retry_delays"] = tuple(changes["retry_delays"] or ())
        try:
            state.config = dataclasses.replace(state.config, **changes)
        except (ValueError, TypeError) as exc:
            return sim_error(400, str(exc))
        return JSONResponse(state.config.public())

    @router.get("/_sim/state")
    async def get_state() -> dict[str, Any]:
        return {**store.snapshot(), "held": state.deliverer.held}

    @router.get("/_sim/requests")
    async def requests() -> dict[str, list[dict[str, Any]]]:
        return {"requests": list(state.requests)}

    @router.post("/_sim/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return router

"""The hosted pages: Checkout (pay) and the Billing Portal (cancel, resume)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from dev.stripe_sim.errors import StripeError
from dev.stripe_sim.forms import get_bool, parse_form, parse_pairs
from dev.stripe_sim.pages import checkout_page, message_page, portal_page
from dev.stripe_sim.state import SimState
from dev.stripe_sim.store import Change

log = logging.getLogger("dev.stripe_sim")


def router(state: SimState) -> APIRouter:
    """The `/checkout/` and `/portal/` pages."""
    store = state.store
    router = APIRouter()

    # --- Hosted pages ------------------------------------------------------------------------

    def success_href(session: dict[str, Any]) -> str | None:
        url = session["success_url"]
        return url.replace("{CHECKOUT_SESSION_ID}", session["id"]) if url else None

    @router.get("/checkout/{sid}", response_class=HTMLResponse)
    async def checkout(sid: str) -> HTMLResponse:
        session = store.sessions.get(sid)
        if session is None:
            return HTMLResponse(message_page("Not found", f"No Checkout Session {sid}."), 404)
        items = [(store.prices[pid], q) for pid, q in store.session_items[sid]]
        html = checkout_page(session, items, f"/checkout/{sid}/pay", success_href(session))
        return HTMLResponse(html)

    @router.post("/checkout/{sid}/pay")
    async def pay(sid: str) -> Response:
        try:
            changes = store.pay_checkout_session(sid)
        except StripeError as exc:
            return HTMLResponse(message_page("Cannot pay", exc.message), exc.status)
        records, task = state.emit(changes)
        if task is not None and state.config.pay_wait_seconds > 0:
            # The success page then sees the webhooks' effect; a slow receiver only delays it.
            await asyncio.wait({task}, timeout=state.config.pay_wait_seconds)
        if records:
            log.info("checkout %s paid: %s", sid, ", ".join(r.type for r in records))
        session = store.sessions.get(sid)  # gone if /_sim/reset came while we waited
        href = success_href(session) if session else None
        if href is None:
            return HTMLResponse(message_page("Payment complete", "You can close this page."))
        return RedirectResponse(href, status_code=303)

    def portal_or_none(bid: str) -> dict[str, Any] | None:
        return store.portal_sessions.get(bid)

    @router.get("/portal/{bid}", response_class=HTMLResponse)
    async def portal(bid: str) -> HTMLResponse:
        session = portal_or_none(bid)
        if session is None:
            return HTMLResponse(message_page("Not found", f"No portal session {bid}."), 404)
        subs = [s for s in store.subscriptions.values() if s["customer"] == session["customer"]]
        return HTMLResponse(portal_page(session, list(reversed(subs))))

    async def portal_action(
        request: Request, bid: str, sub_id: str, act: Callable[[dict[str, Any]], list[Change]]
    ) -> Response:
        session = portal_or_none(bid)
        sub = store.subscriptions.get(sub_id)
        if session is None or sub is None or sub["customer"] != session["customer"]:
            return HTMLResponse(message_page("Not found", "No such subscription here."), 404)
        try:
            form = parse_form(parse_pairs(await request.body()))
            state.emit(act(form))
        except StripeError as exc:
            return HTMLResponse(message_page("Cannot change it", exc.message), exc.status)
        return RedirectResponse(session["return_url"] or f"/portal/{bid}", status_code=303)

    @router.post("/portal/{bid}/subscriptions/{sub_id}/cancel")
    async def portal_cancel(request: Request, bid: str, sub_id: str) -> Response:
        def act(form: dict[str, Any]) -> list[Change]:
            at_end = get_bool(form, "at_period_end")
            if at_end is None:
                raise StripeError(400, "Missing at_period_end (true or false).")
            if store.subscriptions[sub_id]["status"] == "canceled":
                return []  # a second click: nothing more to do
            if at_end:
                return store.set_cancel_at_period_end(sub_id, True)
            return store.cancel_now(sub_id)

        return await portal_action(request, bid, sub_id, act)

    @router.post("/portal/{bid}/subscriptions/{sub_id}/resume")
    async def portal_resume(request: Request, bid: str, sub_id: str) -> Response:
        return await portal_action(
            request, bid, sub_id, lambda _: store.set_cancel_at_period_end(sub_id, False)
        )

    return router

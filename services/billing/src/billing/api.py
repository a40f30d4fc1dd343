"""Billing routes: parse the request, call the use case, shape the response."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from billing import service
from billing.schemas import (
    CheckoutData,
    CheckoutOut,
    PortalData,
    PortalOut,
    StatusData,
    StatusOut,
    WebhookOut,
)
from billing.service import BillingContext
from shared.db import Db
from shared.schemas import error_responses
from shared.security import CurrentUser, CurrentUserId, from_app_state, user_id_of

Ctx = Annotated[BillingContext, Depends(from_app_state("billing"))]


router = APIRouter(prefix="/api/v1", tags=["billing"])


@router.post(
    "/subscribe/pro", response_model=CheckoutOut, responses=error_responses(401, 409, 502, 503)
)
async def subscribe_pro(claims: CurrentUser, db: Db, ctx: Ctx) -> CheckoutOut:
    session_id, url = await service.start_checkout(
        db, ctx, user_id_of(claims), claims.mobile_number
    )
    return CheckoutOut(
        message="Stripe Checkout session created.",
        data=CheckoutData(checkout_url=url, session_id=session_id),
    )


@router.get("/subscription/status", response_model=StatusOut, responses=error_responses(401))
async def subscription_status(user_id: CurrentUserId, db: Db) -> StatusOut:
    plan = await service.current_plan(db, user_id)
    if plan is None:
        return StatusOut(
            data=StatusData(
                tier="BASIC", status="none", current_period_end=None, cancel_at_period_end=False
            )
        )
    return StatusOut(
        data=StatusData(
            tier=plan.tier(datetime.now(UTC)),
            status=plan.status,
            current_period_end=plan.current_period_end,
            cancel_at_period_end=plan.cancel_at_period_end,
        )
    )


@router.post(
    "/subscription/portal", response_model=PortalOut, responses=error_responses(401, 404, 502)
)
async def subscription_portal(user_id: CurrentUserId, db: Db, ctx: Ctx) -> PortalOut:
    return PortalOut(data=PortalData(url=await service.portal_url(db, ctx, user_id)))


@router.post(
    "/webhook/stripe",
    response_model=WebhookOut,
    responses=error_responses(400, 500),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "id": "evt_1a2b3c",
                        "object": "event",
                        "type": "checkout.session.completed",
                        "data": {"object": {"id": "cs_test_a1b2c3", "object": "checkout.session"}},
                    },
                }
            },
        }
    },
)
async def stripe_webhook(request: Request, db: Db, ctx: Ctx) -> WebhookOut:
    """A Stripe event, verified over the raw body with ``Stripe-Signature``; stored once
    by its id. A failure to apply it answers 500, so Stripe delivers it again."""
    payload = await request.body()
    event = service.verify(payload, request.headers.get("stripe-signature"), ctx.settings)
    await service.receive(db, ctx, payload, event)
    return WebhookOut()

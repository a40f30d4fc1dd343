"""Request and response bodies of the billing API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.schemas import CamelModel, examples


class CheckoutData(CamelModel):
    checkout_url: str
    session_id: str


class CheckoutOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "message": "Stripe Checkout session created.",
            "data": {
                "checkoutUrl": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3",
                "sessionId": "cs_test_a1b2c3",
            },
        }
    )

    status: Literal["success"] = "success"
    message: str
    data: CheckoutData


class StatusData(CamelModel):
    tier: Literal["BASIC", "PRO"]
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool


class StatusOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "data": {
                "tier": "PRO",
                "status": "active",
                "currentPeriodEnd": "2027-01-01T09:00:00Z",
                "cancelAtPeriodEnd": False,
            },
        }
    )

    status: Literal["success"] = "success"
    data: StatusData


class PortalData(CamelModel):
    url: str


class PortalOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "data": {"url": "https://billing.stripe.com/p/session/test_a1b2c3"},
        }
    )

    status: Literal["success"] = "success"
    data: PortalData


class WebhookOut(CamelModel):
    model_config = examples({"received": True})

    received: bool = True

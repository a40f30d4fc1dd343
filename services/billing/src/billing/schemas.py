"""Request and response bodies of the billing API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.schemas import CamelModel


class CheckoutData(CamelModel):
    checkout_url: str
    session_id: str


class CheckoutOut(CamelModel):
    status: Literal["success"] = "success"
    message: str
    data: CheckoutData


class StatusData(CamelModel):
    tier: Literal["BASIC", "PRO"]
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool


class StatusOut(CamelModel):
    status: Literal["success"] = "success"
    data: StatusData


class PortalData(CamelModel):
    url: str


class PortalOut(CamelModel):
    status: Literal["success"] = "success"
    data: PortalData


class WebhookOut(CamelModel):
    received: bool = True

"""How a one-time code reaches the user: ``response`` (development), ``log`` or ``webhook``."""

from __future__ import annotations

import httpx
import structlog

from auth.phone import mask
from auth.settings import Settings
from shared.errors import ServiceUnavailable

log = structlog.get_logger(__name__)


class OtpSender:
    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.mode = settings.otp_delivery
        self.expires_minutes = settings.otp_expiration_minutes
        self.webhook_url = settings.otp_webhook_url
        self.http = http

    @property
    def returns_code(self) -> bool:
        return self.mode == "response"

    def _text(self, code: str, purpose: str) -> str:
        action = "reset your password" if purpose == "reset" else "log in"
        return (
            f"{code} is your Gemini code to {action}. It expires in {self.expires_minutes} minutes."
        )

    async def send(self, mobile_number: str, code: str, purpose: str) -> None:
        if self.mode == "response":
            log.info("otp.issued", delivery="response", mobile=mask(mobile_number), purpose=purpose)
        elif self.mode == "log":
            # The operator reads codes from the log: for staging and demos without an SMS gateway.
            log.warning("otp.delivered_to_log", mobile=mobile_number, purpose=purpose, code=code)
        else:
            await self._post(mobile_number, code, purpose)

    async def _post(self, mobile_number: str, code: str, purpose: str) -> None:
        assert self.http is not None and self.webhook_url
        payload = {"to": mobile_number, "message": self._text(code, purpose), "purpose": purpose}
        try:
            response = await self.http.post(self.webhook_url, json=payload)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.error("otp.webhook_failed", mobile=mask(mobile_number), error=repr(exc))
            raise ServiceUnavailable(
                "The code could not be sent right now. Please try again.",
                code="otp_delivery_failed",
            ) from exc
        log.info("otp.delivered", delivery="webhook", mobile=mask(mobile_number), purpose=purpose)

"""How a one-time code reaches the user: ``webhook`` (an SMS gateway; production), or
``response`` / ``log`` (development and tests only: the code in the API response or the log).

Nothing here logs a full number (masked), and only ``log`` delivery logs a code. The webhook
URL may carry credentials (user info, a token in the query): logs name only its host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

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
        action = "set a new password" if purpose == "reset" else "log in"
        return (
            f"{code} is your Gemini code to {action}. It expires in {self.expires_minutes} minutes."
        )

    async def send(self, mobile_number: str, code: str, purpose: str) -> None:
        if self.mode == "response":
            log.info("otp.issued", delivery="response", mobile=mask(mobile_number), purpose=purpose)
        elif self.mode == "log":
            # The operator reads codes from the log (development and tests; refused in
            # production by the settings).
            log.warning(
                "otp.delivered_to_log", mobile=mask(mobile_number), purpose=purpose, code=code
            )
        else:
            await self._post(mobile_number, code, purpose)

    async def _post(self, mobile_number: str, code: str, purpose: str) -> None:
        assert self.http is not None and self.webhook_url
        payload = {"to": mobile_number, "message": self._text(code, purpose), "purpose": purpose}
        try:
            response = await self.http.post(self.webhook_url, json=payload)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
            log.error(
                "otp.webhook_failed",
                mobile=mask(mobile_number),
                webhook=redact_url(self.webhook_url),
                error=type(exc).__name__,
                status=status,
            )
            raise ServiceUnavailable(
                "The code could not be sent right now. Please try again.",
                code="otp_delivery_failed",
            ) from exc
        log.info("otp.delivered", delivery="webhook", mobile=mask(mobile_number), purpose=purpose)


def redact_url(url: str) -> str:
    """``https://user:token@sms.example/send?key=…`` → ``https://sms.example/send``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"

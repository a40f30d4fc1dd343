from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.settings import ServiceSettings

OtpDelivery = Literal["response", "log", "webhook"]


class Settings(ServiceSettings):
    port: int = Field(default=8001, ge=1, le=65535)

    otp_expiration_minutes: int = Field(default=5, ge=1, le=10)
    # `response` returns the code in the API response: development only.
    otp_delivery: OtpDelivery | None = None
    otp_webhook_url: str | None = None
    otp_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    otp_resend_cooldown_seconds: int = Field(default=30, ge=0, le=3600)
    otp_sends_per_number_per_hour: int = Field(default=5, ge=1)
    otp_sends_per_ip_per_hour: int = Field(default=50, ge=1)
    login_failures_per_number_per_hour: int = Field(default=10, ge=1)
    default_phone_region: str = Field(default="IN", min_length=2, max_length=2)
    claim_idle_seconds: float = Field(default=60, ge=1)
    max_deliveries: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _check_otp_delivery(self) -> Settings:
        if self.otp_delivery is None:
            self.otp_delivery = "response" if self.app_env == "development" else "log"
        if self.otp_delivery == "response" and self.is_production:
            raise ValueError(
                "OTP_DELIVERY=response returns codes to anyone; it is refused in production"
            )
        if self.otp_delivery == "webhook" and not self.otp_webhook_url:
            raise ValueError("OTP_DELIVERY=webhook needs OTP_WEBHOOK_URL")
        return self

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.settings import SERVICE_PORTS, ConsumerSettings

OtpDelivery = Literal["response", "log", "webhook"]


class Settings(ConsumerSettings):
    port: int = Field(default=SERVICE_PORTS["auth"], ge=1, le=65535)

    otp_expiration_minutes: int = Field(default=5, ge=1, le=10)
    # `response` returns the code in the API response and `log` writes it to the log: both
    # for development and tests only. Production must choose a real delivery explicitly.
    otp_delivery: OtpDelivery | None = None
    otp_webhook_url: str | None = None
    otp_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    otp_resend_cooldown_seconds: int = Field(default=30, ge=0, le=3600)
    otp_sends_per_number_per_hour: int = Field(default=5, ge=1)
    otp_sends_per_ip_per_hour: int = Field(default=50, ge=1)
    # Wrong codes (verify-otp, reset-password, change-password) before the number, or the
    # client address, is locked out of code checks for the rest of the window.
    otp_failures_per_number_per_day: int = Field(default=20, ge=1)
    otp_failures_per_ip_per_hour: int = Field(default=100, ge=1)
    # Password logins that did not succeed (wrong password, unknown number), counted when
    # the attempt starts and forgiven when it succeeds.
    login_failures_per_number_per_hour: int = Field(default=10, ge=1)
    login_failures_per_ip_per_hour: int = Field(default=100, ge=1)
    signups_per_number_per_hour: int = Field(default=5, ge=1)
    signups_per_ip_per_hour: int = Field(default=20, ge=1)
    # Password hashes (argon2id, 19 MiB each) computed at once by this process; a request
    # that cannot start one within the wait answers 503 with Retry-After.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    password_hash_wait_seconds: float = Field(default=5.0, gt=0, le=60)
    default_phone_region: str = Field(default="IN", min_length=2, max_length=2)

    @model_validator(mode="after")
    def _check_otp_delivery(self) -> Settings:
        if self.is_production:
            if self.otp_delivery is None:
                raise ValueError(
                    "OTP_DELIVERY must be set in production: webhook, with OTP_WEBHOOK_URL "
                    "(the SMS gateway that texts each code)"
                )
            if self.otp_delivery != "webhook":
                raise ValueError(
                    f"OTP_DELIVERY={self.otp_delivery} puts codes where others can read them "
                    "(the API response or the log); production needs OTP_DELIVERY=webhook"
                )
        elif self.otp_delivery is None:
            self.otp_delivery = "response" if self.app_env == "development" else "log"
        if self.otp_delivery == "webhook" and not self.otp_webhook_url:
            raise ValueError("OTP_DELIVERY=webhook needs OTP_WEBHOOK_URL")
        return self

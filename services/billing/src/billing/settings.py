from __future__ import annotations

from pydantic import Field, model_validator

from shared.settings import SERVICE_PORTS, ConsumerSettings


class Settings(ConsumerSettings):
    port: int = Field(default=SERVICE_PORTS["billing"], ge=1, le=65535)

    # Required in production. Elsewhere, unset with STRIPE_API_BASE set (the simulator): a
    # test key is used.
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    # Only a subscription to this price makes a user Pro.
    stripe_pro_price_id: str = "price_pro_monthly"
    stripe_webhook_secret: str = ""
    # Another Stripe API endpoint (the simulator); refused in production. Unset: Stripe's.
    stripe_api_base: str | None = None
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    # Webhook timestamps older than this are refused (replays).
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1)
    client_url: str = "http://localhost:8000"
    # A Checkout Session expires this long after it was created; until then, or until it is
    # paid, POST /subscribe/pro hands the same one out again. Stripe takes 30 min to 24 h;
    # five minutes at each end leave room for latency and clock skew.
    checkout_session_ttl_minutes: int = Field(default=60, ge=35, le=1435)
    # A past_due subscription stays PRO this long after the payment failed.
    past_due_grace_hours: float = Field(default=72, ge=0)
    # Stored events still unprocessed after this long are processed again.
    reprocess_after_seconds: float = Field(default=30, gt=0)
    reprocess_interval_seconds: float = Field(default=15, gt=0)

    @model_validator(mode="after")
    def _check_stripe(self) -> Settings:
        if self.is_production:
            if self.stripe_api_base:
                raise ValueError(
                    "STRIPE_API_BASE is set, which points billing at a Stripe simulator;"
                    " production talks to Stripe itself: unset STRIPE_API_BASE and set"
                    " STRIPE_SECRET_KEY (APP_ENV=production)"
                )
            if not self.stripe_secret_key:
                raise ValueError(
                    "STRIPE_SECRET_KEY is required in production: set it to your Stripe"
                    " account's secret key (Dashboard > Developers > API keys)"
                )
        if not self.stripe_secret_key:
            if not self.stripe_api_base:
                raise ValueError(
                    "STRIPE_SECRET_KEY is required (or STRIPE_API_BASE for the simulator)"
                )
            self.stripe_secret_key = "sk_test_simulator"
        if not self.stripe_webhook_secret:
            raise ValueError(
                "STRIPE_WEBHOOK_SECRET is required to verify webhooks: set it to the signing"
                " secret Stripe shows for the webhook endpoint (whsec_...)"
            )
        try:
            self.refuse_weak_secret("STRIPE_WEBHOOK_SECRET", self.stripe_webhook_secret)
        except ValueError as exc:
            raise ValueError(
                f"{exc}; against Stripe itself, use the signing secret Stripe shows for the"
                " webhook endpoint (whsec_...)"
            ) from None
        return self

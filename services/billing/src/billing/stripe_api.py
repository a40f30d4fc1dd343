"""The Stripe calls billing makes, through the official SDK (``STRIPE_API_BASE`` points it
at the simulator in development and tests). Every POST carries an idempotency key."""

from __future__ import annotations

import json
from typing import Any

import stripe
import structlog
from stripe.params import CustomerCreateParams

from billing.settings import Settings
from shared.errors import AppError, ServiceUnavailable

log = structlog.get_logger(__name__)


class PaymentProviderError(AppError):
    status_code = 502
    code = "payment_provider_error"
    message = "The payment provider could not complete the request. Please try again."


def _translate(exc: stripe.StripeError) -> AppError:
    log.error("stripe.request_failed", error=type(exc).__name__, message=str(exc)[:300])
    if isinstance(exc, stripe.APIConnectionError):
        return ServiceUnavailable("The payment provider is unreachable. Please try again.")
    return PaymentProviderError()


class StripeApi:
    def __init__(self, settings: Settings) -> None:
        self.client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
            max_network_retries=2,
            http_client=stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds),
        )

    async def create_customer(self, user_id: str, mobile_number: str | None) -> str:
        params: CustomerCreateParams = {"metadata": {"userId": user_id}}
        if mobile_number:
            params["phone"] = mobile_number
        try:
            customer = await self.client.v1.customers.create_async(
                params=params,
                options={"idempotency_key": f"customer:{user_id}"},
            )
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return customer.id

    async def create_checkout_session(
        self,
        *,
        customer_id: str,
        user_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        expires_at: int,
        idempotency_key: str,
    ) -> tuple[str, str]:
        try:
            session = await self.client.v1.checkout.sessions.create_async(
                params={
                    "mode": "subscription",
                    "customer": customer_id,
                    "client_reference_id": user_id,
                    "line_items": [{"price": price_id, "quantity": 1}],
                    "subscription_data": {"metadata": {"userId": user_id}},
                    "metadata": {"userId": user_id},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                    "expires_at": expires_at,
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return session.id, str(session.url)

    async def create_portal_session(self, customer_id: str, return_url: str) -> str:
        try:
            portal = await self.client.v1.billing_portal.sessions.create_async(
                params={"customer": customer_id, "return_url": return_url}
            )
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return portal.url

    async def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as Stripe has it now (plain JSON-able dict)."""
        try:
            subscription = await self.client.v1.subscriptions.retrieve_async(subscription_id)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        # Stripe's own JSON: to_dict() would hold Decimals, which a JSON column refuses.
        response = subscription.last_response
        data: dict[str, Any] = (
            json.loads(response.body)
            if response is not None
            else json.loads(json.dumps(subscription.to_dict(), default=str))
        )
        return data

    async def live_subscriptions(self, customer_id: str) -> list[str]:
        """The ids of the customer's subscriptions that have not ended (Stripe's default
        list leaves canceled ones out)."""
        try:
            page = await self.client.v1.subscriptions.list_async(
                params={"customer": customer_id, "limit": 100}
            )
            return [sub.id async for sub in page.auto_paging_iter()]
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":  # the customer was deleted at Stripe
                return []
            raise _translate(exc) from exc
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    async def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> None:
        """End the subscription now (``DELETE /v1/subscriptions/{id}``: no further charge,
        not at the period's end). One that has ended already is left as it is: Stripe
        answers a second cancel with 404 ``resource_missing``, so the subscription is read
        again to tell that from a failure."""
        try:
            await self.client.v1.subscriptions.cancel_async(
                subscription_id, options={"idempotency_key": idempotency_key}
            )
            return
        except stripe.InvalidRequestError as exc:
            refused: stripe.StripeError = exc
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        try:
            status = (await self.get_subscription(subscription_id)).get("status")
        except PaymentProviderError:
            status = None
        if status not in ("canceled", "incomplete_expired"):
            raise _translate(refused) from refused
        log.info("stripe.subscription_already_ended", subscription_id=subscription_id)

    async def expire_checkout_session(self, session_id: str) -> None:
        """Close an open Checkout Session so it can no longer be paid. Stripe refuses one
        that is no longer open (completed or expired): nothing is left to close then."""
        try:
            await self.client.v1.checkout.sessions.expire_async(
                session_id, options={"idempotency_key": f"expire:{session_id}"}
            )
        except stripe.InvalidRequestError as exc:
            log.info("stripe.checkout_not_open", session_id=session_id, message=str(exc)[:200])
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

"""Errors in Stripe's wire shape, so the SDK raises the matching exception class."""

from __future__ import annotations

from typing import Any

# HTTP status -> what stripe-python raises (see _api_requestor.specific_v1_api_error):
# 400/404 InvalidRequestError (IdempotencyError when type is idempotency_error),
# 401 AuthenticationError, 402 CardError, 403 PermissionError, 429 RateLimitError, else APIError.


class StripeError(Exception):
    """An API error answered as `{"error": {"type", "message", "param"?, "code"?}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def missing(kind: str, object_id: str, param: str = "id", status: int = 404) -> StripeError:
    """Stripe's "No such customer: 'cus_x'" (404 on retrieve; 400 when named as a parameter)."""
    return StripeError(
        status, f"No such {kind}: '{object_id}'", param=param, code="resource_missing"
    )

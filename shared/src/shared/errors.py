"""The error model and the handlers that give every error the same JSON envelope.

Envelope (DESIGN §3)::

    {"status": "fail" | "error", "message": str, "code": str, "errors"?: [{"field", "message"}]}

``fail`` for 4xx, ``error`` for 5xx. Every path that can produce an error response (our own
``AppError``, request validation, malformed JSON, unknown routes, wrong methods, oversized
bodies, unhandled exceptions) goes through :func:`error_response`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class AppError(Exception):
    """An error the client should see, with a stable machine-readable ``code``."""

    status_code: int = 400
    code: str = "bad_request"
    message: str = "Bad request."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.errors = list(errors) if errors else None
        self.headers = dict(headers) if headers else None
        self.extra = dict(extra) if extra else None
        super().__init__(self.message)


class ValidationFailed(AppError):
    status_code = 400
    code = "validation_error"
    message = "The request is invalid."

    @classmethod
    def on(cls, field: str, message: str) -> ValidationFailed:
        """One field's error, in the same shape as request validation errors."""
        return cls(
            f"Invalid request: {field}: {message}", errors=[{"field": field, "message": message}]
        )


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    message = "You are not logged in! Please log in to get access."


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You do not have access to this resource."


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "Conflict."


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests. Try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        headers = {"Retry-After": str(max(1, retry_after))}
        extra = {"retryAfter": max(1, retry_after)}
        super().__init__(message, headers=headers, extra=extra, **kwargs)


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    message = "The service is temporarily unavailable. Try again shortly."


def error_body(
    status_code: int,
    code: str,
    message: str,
    errors: Sequence[Mapping[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "fail" if status_code < 500 else "error",
        "message": message,
        "code": code,
    }
    if errors:
        body["errors"] = [dict(e) for e in errors]
    if extra:
        body.update(extra)
    return body


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status_code, code, message, errors, extra),
        status_code=status_code,
        headers=dict(headers) if headers else None,
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def _field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or (str(loc[0]) if loc else "body")


def validation_errors(exc: RequestValidationError) -> tuple[str, str, list[dict[str, str]]]:
    """Turn FastAPI's validation errors into (code, message, errors) for the envelope."""
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        return "invalid_json", "The request body is not valid JSON.", []
    errors: list[dict[str, str]] = []
    for e in raw:
        loc = tuple(e.get("loc", ()))
        if loc == ("body",) and e.get("type") == "missing":
            errors.append({"field": "body", "message": "A JSON request body is required."})
            continue
        if loc == ("body",) and e.get("type") in ("dict_type", "model_attributes_type"):
            return (
                "invalid_json",
                "The request body must be a JSON object sent with Content-Type: application/json.",
                [],
            )
        message = str(e.get("msg", "Invalid value."))
        message = message.removeprefix("Value error, ")
        errors.append({"field": _field_name(loc), "message": message})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return "validation_error", f"Invalid request: {summary}", errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return error_response(
            exc.status_code,
            exc.code,
            exc.message,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        code, message, errors = validation_errors(exc)
        return error_response(400, code, message, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status_code = exc.status_code
        if status_code == 404:
            message = f"Cannot find {request.method} {request.url.path}"
        elif status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        elif isinstance(exc.detail, str) and exc.detail:
            message = exc.detail
        else:
            message = HTTPStatus(status_code).phrase
        code = _HTTP_CODES.get(status_code, "http_error")
        return error_response(status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.unhandled_error", method=request.method, path=request.url.path)
        return error_response(500, "internal_error", "Something went wrong. Please try again.")

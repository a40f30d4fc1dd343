"""A service's OpenAPI document as its errors really are.

FastAPI documents a 422 with its own error shape on every operation that takes parameters
or a body; ours answer those as a 400 in the error envelope (:mod:`shared.errors`). So the
422 goes, and every operation lists what the shared machinery can answer whatever the
route declares: 400 where a parameter or the body can fail validation, 413 where a body is
taken (``RequestGuardMiddleware``), 401 where a bearer token is needed. The statuses a
route answers itself it declares with :func:`shared.schemas.error_responses`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from shared.schemas import ErrorBody

_SCHEMA_REF = "#/components/schemas/"
_METHODS = ("get", "put", "post", "delete", "patch")
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
SHARED_ERRORS = {
    "400": "Invalid request: a parameter or the body failed validation, or the body is not JSON",
    "401": "Missing, invalid, expired or revoked bearer token",
    "413": "The request body is too large",
}


def _envelope(description: str) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": _SCHEMA_REF + ErrorBody.__name__}}}
    return {"description": description, "content": content}


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (changed in place) with the errors described above."""
    for item in document.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            validated = responses.pop("422", None) is not None
            has_body = "requestBody" in operation
            statuses = {
                "400": validated or has_body or bool(operation.get("parameters")),
                "401": bool(operation.get("security")),
                "413": has_body,
            }
            for status, applies in statuses.items():
                if applies:
                    responses.setdefault(status, _envelope(SHARED_ERRORS[status]))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    envelope = ErrorBody.model_json_schema(ref_template=_SCHEMA_REF + "{model}")
    for name, schema in envelope.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault(ErrorBody.__name__, envelope)
    return document


def install_openapi(app: FastAPI) -> None:
    """``app.openapi()`` returns the document with :func:`document_errors` applied."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

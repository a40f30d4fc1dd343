"""Pydantic bases for request and response bodies: camelCase on the wire, as in the
reference service, snake_case in Python."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
        coerce_numbers_to_str=True,
        extra="ignore",
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value: object) -> object:
        """PostgreSQL text cannot hold NUL: refuse it with a 400, not a 500 at the INSERT."""
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


def examples(*values: dict[str, Any]) -> ConfigDict:
    """``model_config`` of a body with these examples (as on the wire) in its JSON schema."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The error envelope (DESIGN §3), for the OpenAPI document."""

    status: Literal["fail", "error"]
    message: str
    code: str
    errors: list[FieldError] | None = None


def error_responses(*status_codes: int) -> dict[int | str, dict[str, object]]:
    """``responses=`` for a route: the listed statuses documented with the error envelope."""
    return {code: {"model": ErrorBody} for code in status_codes}

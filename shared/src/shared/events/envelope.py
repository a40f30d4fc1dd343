"""The event envelope, encoding and decoding (with upcasting of older versions)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shared import tracing

Payload = dict[str, Any]


class EventModel(BaseModel):
    """camelCase on the wire, frozen, and text kept exactly as sent (a reply that starts
    with an indented code block must reach chat unchanged)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class Event(EventModel):
    """Base of every domain event: a frozen fact, named in the past tense."""

    VERSION: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = Field(ge=1)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC), alias="occurredAt")
    producer: str
    correlation_id: str | None = Field(default=None, alias="correlationId")
    # W3C trace context (traceparent, tracestate) of the span that raised the event, when
    # tracing is on (shared/tracing.py): its consumers' spans join that trace.
    trace_context: dict[str, str] | None = Field(default=None, alias="traceContext")
    payload: Payload


class UnknownEventType(ValueError):
    pass


CATALOG: dict[str, type[Event]] = {}
# (type, version) -> function turning that version's payload into version + 1's.
UPCASTERS: dict[tuple[str, int], Callable[[Payload], Payload]] = {}


def register(cls: type[Event]) -> type[Event]:
    CATALOG[cls.type_name()] = cls
    return cls


def upcaster(type_name: str, from_version: int) -> Callable[[Callable[[Payload], Payload]], Any]:
    def decorate(fn: Callable[[Payload], Payload]) -> Callable[[Payload], Payload]:
        UPCASTERS[(type_name, from_version)] = fn
        return fn

    return decorate


def encode(event: Event, *, producer: str, correlation_id: str | None = None) -> Envelope:
    return Envelope(
        type=event.type_name(),
        version=event.VERSION,
        producer=producer,
        correlation_id=correlation_id,
        trace_context=tracing.current_context(),
        payload=event.model_dump(mode="json", by_alias=True),
    )


def to_json(envelope: Envelope) -> str:
    return envelope.model_dump_json(by_alias=True)


def decode(raw: str | bytes | Payload) -> tuple[Envelope, Event]:
    """Parse an envelope and its payload, upcasting an older version to the current one.

    Raises :class:`UnknownEventType` for a type outside the catalog and
    ``pydantic.ValidationError`` (a ``ValueError``) for anything malformed.
    """
    envelope = (
        Envelope.model_validate(raw) if isinstance(raw, dict) else Envelope.model_validate_json(raw)
    )
    cls = CATALOG.get(envelope.type)
    if cls is None:
        raise UnknownEventType(envelope.type)
    payload, version = dict(envelope.payload), envelope.version
    if version > cls.VERSION:
        raise ValueError(
            f"{envelope.type} v{version} is newer than this code knows (v{cls.VERSION})"
        )
    while version < cls.VERSION:
        step = UPCASTERS.get((envelope.type, version))
        if step is None:
            raise ValueError(f"no upcaster for {envelope.type} v{version}")
        payload, version = step(payload), version + 1
    return envelope, cls.model_validate(payload)


__all__ = [
    "CATALOG",
    "UPCASTERS",
    "Envelope",
    "Event",
    "UnknownEventType",
    "ValidationError",
    "decode",
    "encode",
    "register",
    "to_json",
    "upcaster",
]

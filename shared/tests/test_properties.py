"""Properties of the event envelope (round trip, upcasting) and of the tier rule."""

from __future__ import annotations

import types
import typing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo

from shared.events import CATALOG, UPCASTERS, Event, decode, encode
from shared.events.envelope import EventModel, register, to_json
from shared.tiers import PAID_STATUSES, derive_tier

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None)

# Aware datetimes in a few offsets (an event's instants are compared, not their offsets).
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(OFFSETS),
)


# -- a strategy for every catalog event, from its fields ---------------------------------


def _for_annotation(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_annotation(arg, metadata) for arg in args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(_for_annotation(args[0], []), max_size=3)
    if annotation is type(None):
        return st.none()
    if annotation is str:
        min_size = next((m.min_length for m in metadata if hasattr(m, "min_length")), 0)
        max_size = next((m.max_length for m in metadata if hasattr(m, "max_length")), None)
        # Any unicode (but lone surrogates, which JSON text cannot carry), whitespace included.
        return st.text(min_size=min_size, max_size=max_size)
    if annotation is int:
        ge = next((m.ge for m in metadata if hasattr(m, "ge")), None)
        return st.integers(min_value=ge, max_value=2**63 - 1)
    if annotation is bool:
        return st.booleans()
    if annotation is uuid.UUID:
        return st.uuids()
    if annotation is datetime:
        return aware_datetimes
    if isinstance(annotation, type) and issubclass(annotation, EventModel):
        return model_strategy(annotation)
    raise NotImplementedError(f"no strategy for {annotation!r}")


def _for_field(field: FieldInfo) -> st.SearchStrategy[Any]:
    return _for_annotation(field.annotation, field.metadata)


def model_strategy(cls: type[EventModel]) -> st.SearchStrategy[Any]:
    """``st.builds`` of the model with every field generated, the defaulted ones too."""
    return st.builds(
        cls, **{field.alias or name: _for_field(field) for name, field in cls.model_fields.items()}
    )


any_catalog_event = st.sampled_from(sorted(CATALOG)).flatmap(lambda n: model_strategy(CATALOG[n]))


@PROPERTY_SETTINGS
@given(event=any_catalog_event, correlation_id=st.none() | st.text())
def test_encode_then_decode_is_the_identity_for_every_catalog_event(
    event: Event, correlation_id: str | None
) -> None:
    envelope = encode(event, producer="props", correlation_id=correlation_id)
    decoded_envelope, decoded = decode(to_json(envelope))
    assert type(decoded) is type(event)
    assert decoded == event
    assert decoded_envelope == envelope
    # And from the parsed dict, as a consumer that already parsed the entry would.
    assert decode(envelope.model_dump(mode="json", by_alias=True))[1] == event


def test_every_catalog_event_has_a_strategy_for_every_field() -> None:
    for cls in CATALOG.values():
        for field in cls.model_fields.values():
            _for_field(field)


# -- upcasting: a test-local event at VERSION 3 with upcasters 1 -> 2 -> 3 ----------------


class NotePinned(Event):
    """v1: {body, wordCount: str}; v2: {text, words: int, lang}; v3: {text, words, language}."""

    VERSION: ClassVar[int] = 3
    text: str
    words: int
    language: str


def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {"text": payload["body"], "words": int(payload["wordCount"]), "lang": payload["lang"]}


def _v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in payload.items() if k != "lang"}
    return rest | {"language": payload["lang"]}


def _as_v2(event: NotePinned) -> dict[str, Any]:
    return {"text": event.text, "words": event.words, "lang": event.language}


def _as_v1(event: NotePinned) -> dict[str, Any]:
    return {"body": event.text, "wordCount": str(event.words), "lang": event.language}


@pytest.fixture(scope="module")
def note_pinned_registered() -> Iterator[None]:
    register(NotePinned)
    UPCASTERS[("NotePinned", 1)] = _v1_to_v2
    UPCASTERS[("NotePinned", 2)] = _v2_to_v3
    try:
        yield
    finally:
        CATALOG.pop("NotePinned")
        UPCASTERS.pop(("NotePinned", 1))
        UPCASTERS.pop(("NotePinned", 2))


@PROPERTY_SETTINGS
@given(event=model_strategy(NotePinned))
def test_decoding_an_older_version_gives_the_current_event(
    note_pinned_registered: None, event: NotePinned
) -> None:
    current = encode(event, producer="notes")
    assert current.version == 3
    wire = current.model_dump(mode="json", by_alias=True)
    _, from_current = decode(to_json(current))
    assert from_current == event
    for version, payload in ((1, _as_v1(event)), (2, _as_v2(event))):
        older = wire | {"version": version, "payload": payload}
        envelope, decoded = decode(older)
        assert envelope.version == version
        assert decoded == from_current


# -- the tier rule -----------------------------------------------------------------------

statuses = (
    st.sampled_from(
        ["active", "trialing", "past_due", "canceled", "incomplete", "incomplete_expired", "unpaid"]
    )
    | st.none()
    | st.text(max_size=12)
)
maybe_instant = st.none() | aware_datetimes


@PROPERTY_SETTINGS
@given(
    status=statuses,
    period_end=maybe_instant,
    grace_until=maybe_instant,
    now=aware_datetimes,
)
def test_pro_exactly_while_paid_and_in_period_or_past_due_in_grace(
    status: str | None,
    period_end: datetime | None,
    grace_until: datetime | None,
    now: datetime,
) -> None:
    in_period = status in PAID_STATUSES and period_end is not None and now < period_end
    in_grace = status == "past_due" and grace_until is not None and now < grace_until
    expected = "PRO" if in_period or in_grace else "BASIC"
    assert derive_tier(status, period_end, now, grace_until) == expected


@PROPERTY_SETTINGS
@given(now=aware_datetimes.filter(lambda d: d.year < 9999))
def test_the_period_end_and_the_grace_end_are_exclusive(now: datetime) -> None:
    later = now + timedelta(microseconds=1)
    assert derive_tier("active", now, now) == "BASIC"
    assert derive_tier("active", later, now) == "PRO"
    assert derive_tier("past_due", None, now, now) == "BASIC"
    assert derive_tier("past_due", None, now, later) == "PRO"

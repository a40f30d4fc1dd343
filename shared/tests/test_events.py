"""The event catalog, the envelope and upcasting."""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

import shared.events as events
from shared.events import (
    CATALOG,
    UPCASTERS,
    Event,
    MessageQueued,
    SubscriptionChanged,
    decode,
    encode,
)
from shared.events.envelope import register, to_json, upcaster

SAMPLES = Path(events.__file__).parent / "samples"


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.json"))


def test_every_catalog_version_has_a_sample():
    have = {p.stem for p in sample_files()}
    for name, cls in CATALOG.items():
        for version in range(1, cls.VERSION + 1):
            assert f"{name}.v{version}" in have, f"add samples/{name}.v{version}.json"


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.stem)
def test_every_sample_decodes_to_the_current_version(path):
    raw = path.read_text()
    envelope, event = decode(raw)
    name, version = path.stem.split(".v")
    assert envelope.type == name and envelope.version == int(version)
    assert type(event) is CATALOG[name]
    # Encoding the decoded event again gives a current-version envelope that decodes too.
    again = encode(event, producer=envelope.producer, correlation_id=envelope.correlation_id)
    assert decode(to_json(again))[1] == event


def test_round_trip_keeps_every_field():
    event = MessageQueued(
        reply_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
        chatroom_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        prompt="What is yoga?",
        history=[{"role": "user", "text": "hi"}, {"role": "model", "text": "hello"}],
    )
    envelope = encode(event, producer="chat", correlation_id="req-1")
    wire = json.loads(to_json(envelope))
    assert set(wire) == {
        "id",
        "type",
        "version",
        "occurredAt",
        "producer",
        "correlationId",
        "traceContext",  # null: tracing is off (shared/tests/test_tracing.py)
        "payload",
    }
    assert wire["payload"]["replyId"] == str(event.reply_id)
    decoded_envelope, decoded = decode(to_json(envelope))
    assert decoded == event
    assert decoded_envelope.correlation_id == "req-1"


def test_subscription_changed_from_before_the_period_start_still_decodes():
    wire = json.loads((SAMPLES / "SubscriptionChanged.v1.json").read_text())
    _, event = decode(json.dumps(wire))
    assert isinstance(event, SubscriptionChanged)
    assert event.current_period_start == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
    del wire["payload"]["currentPeriodStart"]  # as billing published it before 1.4.0
    _, older = decode(json.dumps(wire))
    assert isinstance(older, SubscriptionChanged)
    assert older.current_period_start is None
    assert older.current_period_end == event.current_period_end


def test_events_are_frozen():
    event = MessageQueued(
        reply_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
        chatroom_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        prompt="x",
    )
    with pytest.raises(ValidationError):
        event.prompt = "y"


def test_unknown_type_malformed_and_future_versions_are_refused():
    base = {"id": str(uuid.uuid4()), "version": 1, "producer": "x", "payload": {}}
    with pytest.raises(events.UnknownEventType):
        decode(base | {"type": "SomethingElse"})
    with pytest.raises(ValueError):
        decode("{not json")
    with pytest.raises(ValueError):
        decode(base | {"type": "MessageQueued"})  # payload misses required fields
    with pytest.raises(ValueError, match="newer"):
        decode(base | {"type": "MessageQueued", "version": 99})


def test_older_versions_are_upcast_step_by_step():
    class NoteTaken(Event):
        VERSION: ClassVar[int] = 3
        text: str
        words: int
        language: str

    register(NoteTaken)

    @upcaster("NoteTaken", 1)
    def v1_to_v2(payload):
        return {"text": payload["body"], "words": len(payload["body"].split())}

    @upcaster("NoteTaken", 2)
    def v2_to_v3(payload):
        return payload | {"language": "en"}

    try:
        raw = {
            "id": str(uuid.uuid4()),
            "type": "NoteTaken",
            "version": 1,
            "producer": "notes",
            "payload": {"body": "three little words"},
        }
        _, event = decode(raw)
        assert event == NoteTaken(text="three little words", words=3, language="en")
    finally:
        CATALOG.pop("NoteTaken")
        UPCASTERS.pop(("NoteTaken", 1))
        UPCASTERS.pop(("NoteTaken", 2))


def test_text_is_carried_exactly_as_sent():
    text = "\n    indented code first\n"
    event = MessageQueued(
        reply_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
        chatroom_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        prompt=text,
        history=[{"role": "model", "text": text}],
    )
    _, decoded = decode(to_json(encode(event, producer="chat")))
    assert decoded.prompt == text
    assert decoded.history[0].text == text

"""Writing an event straight to its Redis stream, and the streams' names and bounds.

Services with a database never publish this way while handling a request: they add the
event to their outbox (:mod:`shared.outbox`), whose relay publishes it. This module needs
only Redis, so a service without a database (the ai-worker) does not load the Postgres
driver to publish.
"""

from __future__ import annotations

from redis.asyncio.client import Pipeline

from shared.events.envelope import Event, encode, to_json

# Each stream keeps about this many entries (XADD MAXLEN ~).
STREAM_MAXLEN = 100_000


def stream_for(producer: str) -> str:
    return f"{producer}.events"


def queue_publish(
    pipe: Pipeline,
    event: Event,
    *,
    producer: str,
    stream: str,
    correlation_id: str | None = None,
) -> str:
    """XADD ``event`` to ``stream`` as part of the caller's pipeline; returns the event id.
    Only for services without a database (the ai-worker, whose stream is ``ai.events``),
    which emit an event and then ack the entry that caused it: a crash in between emits
    it twice, which consumers dedupe."""
    envelope = encode(event, producer=producer, correlation_id=correlation_id)
    pipe.xadd(
        stream,
        {"type": envelope.type, "envelope": to_json(envelope)},
        maxlen=STREAM_MAXLEN,
        approximate=True,
    )
    return str(envelope.id)

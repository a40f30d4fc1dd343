"""Domain events: the envelope, the event catalog, and decoding with upcasting.

Every event crossing a service boundary is a frozen pydantic model subclassing
:class:`Event`; its class name is its wire ``type`` and ``VERSION`` its schema version.
On the wire (a Redis Streams entry) an event travels in one envelope::

    {"id": uuid, "type": "MessageQueued", "version": 1, "occurredAt": iso-8601,
     "producer": "chat", "correlationId": request-id | null, "payload": {...}}

A consumer decodes any older version it meets: :data:`UPCASTERS` maps
``(type, version)`` to a function that turns that version's payload into the next one's.
"""

from shared.events.catalog import (
    ChatroomTitleSuggested,
    HistoryTurn,
    MessageQueued,
    ReplyCompleted,
    ReplyFailed,
    SubscriptionChanged,
    TokenUsage,
    UserDeleted,
    UserRegistered,
)
from shared.events.envelope import (
    CATALOG,
    UPCASTERS,
    Envelope,
    Event,
    UnknownEventType,
    decode,
    encode,
)

__all__ = [
    "CATALOG",
    "UPCASTERS",
    "ChatroomTitleSuggested",
    "Envelope",
    "Event",
    "HistoryTurn",
    "MessageQueued",
    "ReplyCompleted",
    "ReplyFailed",
    "SubscriptionChanged",
    "TokenUsage",
    "UnknownEventType",
    "UserDeleted",
    "UserRegistered",
    "decode",
    "encode",
]

"""From a consumed entry to a service's handler: the :class:`Delivery` each handler gets
with its event, and the processors a :class:`shared.consumer.StreamConsumer` runs.

:func:`inbox_processor` is the processor for services with a database: the event id goes
into the ``inbox`` table in the same transaction as the handler's effects, so a second
delivery of the same event changes nothing. :func:`direct_processor` is the ai-worker's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog

from shared.consumer import Processor
from shared.events.envelope import Envelope, Event

if TYPE_CHECKING:  # the ai-worker, which has no database, does not load the driver
    from psycopg_pool import AsyncConnectionPool

    from shared.db import Transaction

log = structlog.get_logger(__name__)

C = TypeVar("C")


@dataclass(frozen=True)
class Delivery(Generic[C]):
    """What a handler gets with its event: the consuming service's context and the
    envelope (``correlation_id``: the request that caused the event)."""

    ctx: C
    envelope: Envelope


@dataclass(frozen=True)
class InboxDelivery(Delivery[C]):
    """A delivery to a service with a database: ``tx`` is the transaction that also
    records the event in the inbox, so the handler's effects and "handled" commit
    together."""

    tx: Transaction


# Every consuming service has a module-level ``HANDLERS`` mapping of these: one signature,
# ``async def on_<event>(event, delivery)``, calling the service's use cases.
Handler = Callable[[Any, Delivery[C]], Awaitable[None]]
InboxHandler = Callable[[Any, InboxDelivery[C]], Awaitable[None]]


def inbox_processor(
    pool: AsyncConnectionPool,
    handlers: Mapping[type[Event], InboxHandler[C]],
    ctx: C,
    *,
    before: Mapping[type[Event], Handler[C]] | None = None,
) -> Processor:
    """``before``: for an event type whose handling calls an outside API (Stripe), the
    step that does so, run before the inbox transaction opens (so no transaction waits on
    the API) on every delivery, a repeated one too: it must be idempotent itself."""
    from shared.db import Database  # here: see TYPE_CHECKING above

    by_type = {cls.type_name(): handler for cls, handler in handlers.items()}
    first = {cls.type_name(): step for cls, step in (before or {}).items()}

    async def process(envelope: Envelope, event: Event, stream: str) -> None:
        if (step := first.get(envelope.type)) is not None:
            await step(event, Delivery(ctx, envelope))
        async with Database(pool).transaction() as tx:
            cur = await tx.conn.execute(
                "INSERT INTO inbox (event_id, type, stream) VALUES (%s, %s, %s)"
                " ON CONFLICT (event_id) DO NOTHING",
                (envelope.id, envelope.type, stream),
            )
            if cur.rowcount == 0:
                log.info(
                    "consumer.duplicate_skipped", event_id=str(envelope.id), type=envelope.type
                )
                return
            await by_type[envelope.type](event, InboxDelivery(ctx, envelope, tx))

    return process


def direct_processor(handlers: Mapping[type[Event], Handler[C]], ctx: C) -> Processor:
    """The processor of a service without a database (the ai-worker): its handlers make
    a second delivery of an event harmless themselves."""
    by_type = {cls.type_name(): handler for cls, handler in handlers.items()}

    async def process(envelope: Envelope, event: Event, stream: str) -> None:
        await by_type[envelope.type](event, Delivery(ctx, envelope))

    return process

"""Event handlers: thin doors into the use cases. ``HANDLERS`` run in the consumer's
transaction (with the inbox row); ``BEFORE`` holds the steps that call Stripe, run before
that transaction opens, on every delivery (shared.delivery.inbox_processor)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from billing import erasure
from billing.service import BillingContext
from shared.db import Database
from shared.delivery import Delivery, Handler, InboxDelivery, InboxHandler
from shared.events import Event, UserDeleted


@dataclass(frozen=True)
class ConsumerContext:
    """What billing's handlers need: the database (for the steps outside the consumer's
    transaction), the Stripe context and Redis."""

    db: Database
    billing: BillingContext
    redis: Redis


async def cancel_for_user_deleted(event: UserDeleted, delivery: Delivery[ConsumerContext]) -> None:
    ctx = delivery.ctx
    await erasure.cancel_at_stripe(ctx.db, ctx.billing, event.user_id)


async def on_user_deleted(event: UserDeleted, delivery: InboxDelivery[ConsumerContext]) -> None:
    await erasure.erase_user(delivery.tx, delivery.ctx.redis, event.user_id)


HANDLERS: dict[type[Event], InboxHandler[ConsumerContext]] = {UserDeleted: on_user_deleted}
BEFORE: dict[type[Event], Handler[ConsumerContext]] = {UserDeleted: cancel_for_user_deleted}

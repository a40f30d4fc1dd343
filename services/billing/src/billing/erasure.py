"""Account deletion in billing (``UserDeleted``, from auth).

Two steps, each safe to repeat, so a crash between them, or a second delivery, ends the
same way:

1. :func:`cancel_at_stripe`, before the consumer's transaction (no transaction waits on
   Stripe): record the user and their Stripe customers as erased (sha256 digests only,
   ``erased_subjects``), so every webhook handled from then on about them changes nothing;
   then end each of their subscriptions at once (not at the period's end) and close their
   open Checkout Sessions. The subscriptions are those the projection knows and those Stripe
   lists for their customers (a payment whose webhook has not arrived yet).
2. :func:`erase_user`, in the consumer's transaction (with the inbox row): delete their
   rows, empty the stored Stripe events about them, delete their events from the outbox
   and from ``billing.events`` (and its dead letters), and their token-state cache key.

What is kept, and why: README, "Account deletion" (what billing keeps).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis

from billing import erasure_repository, repository
from shared.db import Database, Transaction
from shared.erasure import digest, erase_from_outbox, erase_from_stream
from shared.publish import stream_for
from shared.tokens import token_state_key

if TYPE_CHECKING:
    from billing.service import BillingContext

log = structlog.get_logger(__name__)

STREAM = stream_for("billing")


async def cancel_at_stripe(db: Database, ctx: BillingContext, user_id: uuid.UUID) -> None:
    async with db.transaction() as tx:
        await repository.lock_user(tx.conn, user_id)
        held = await erasure_repository.holdings(tx.conn, user_id)
        await erasure_repository.remember(tx.conn, user_id, held.customers)
    subscriptions = set(held.subscriptions)
    for customer_id in held.customers:
        subscriptions.update(await ctx.stripe.live_subscriptions(customer_id))
    for subscription_id in sorted(subscriptions):
        await ctx.stripe.cancel_subscription(subscription_id, f"erase:{subscription_id}")
    for session_id in held.checkout_sessions:
        await ctx.stripe.expire_checkout_session(session_id)
    log.info(
        "billing.erasure_stripe_done",
        user_id=str(user_id),
        subscriptions_canceled=len(subscriptions),
        checkouts_closed=len(held.checkout_sessions),
    )


async def erase_user(tx: Transaction, redis: Redis, user_id: uuid.UUID) -> None:
    await repository.lock_user(tx.conn, user_id)
    held = await erasure_repository.holdings(tx.conn, user_id)
    await erasure_repository.remember(tx.conn, user_id, held.customers)
    rows = await erasure_repository.erase_user(tx.conn, user_id, held.customers)
    events = await erase_from_outbox(tx.conn, user_id)
    entries = await erase_from_stream(redis, STREAM, user_id)
    # The revocation cache billing fills on a miss (shared.revocation): a reader that
    # misses asks auth, which answers that the user is gone.
    await redis.delete(token_state_key(str(user_id)))
    log.info(
        "billing.user_erased",
        user_id=str(user_id),
        rows=rows,
        outbox_events=events,
        stream_entries=entries,
    )


def _subjects(event: dict[str, Any], snapshot: dict[str, Any] | None) -> list[str]:
    """Digests of the ids an event (and the subscription re-read for it) names a user by."""
    obj = event["data"]["object"]
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    values: list[Any] = [
        (obj.get("metadata") or {}).get("userId"),
        (details.get("metadata") or {}).get("userId"),
        obj.get("client_reference_id"),
        obj.get("customer"),
        obj.get("id") if obj.get("object") == "customer" else None,
    ]
    if snapshot is not None:
        values += [(snapshot.get("metadata") or {}).get("userId"), snapshot.get("customer")]
    ids = [v.get("id") if isinstance(v, dict) else v for v in values]
    return [digest(v) for v in ids if isinstance(v, str) and v]


async def drop_if_erased(
    tx: Transaction,
    event_id: str,
    event: dict[str, Any],
    snapshot: dict[str, Any] | None = None,
    user_id: uuid.UUID | None = None,
) -> bool:
    """True (and the stored event emptied and marked handled) when the event is about an
    erased user: it must not recreate a row or announce a plan."""
    subjects = _subjects(event, snapshot)
    if user_id is not None:
        await repository.lock_user(tx.conn, user_id)  # after an erasure that raced, if any
        subjects.append(digest(user_id))
    if not subjects or not await erasure_repository.any_erased(tx.conn, subjects):
        return False
    await erasure_repository.redact_event(tx.conn, event_id)
    log.info("billing.event_of_erased_user", event_id=event_id, type=event["type"])
    return True

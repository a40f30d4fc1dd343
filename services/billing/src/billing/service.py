"""Billing use cases: Checkout, status, the portal, and the Stripe event log."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
import structlog

from billing import erasure, metrics, repository
from billing.projection import Plan, apply_snapshot, plan_for, user_id_of
from billing.settings import Settings
from billing.stripe_api import StripeApi
from shared import outbox
from shared.db import Database, Transaction
from shared.errors import AppError, Conflict, NotFound
from shared.events import SubscriptionChanged

log = structlog.get_logger(__name__)

PRODUCER = "billing"
# Stripe refuses a Checkout Session that expires sooner than 30 minutes after its creation;
# one more minute for the time a create call takes.
STRIPE_MIN_CHECKOUT_TTL = timedelta(minutes=31)
# A Checkout Session billing created is closed by these events.
CHECKOUT_CLOSED = {"checkout.session.completed": "complete", "checkout.session.expired": "expired"}
HANDLED = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.expired",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        # What the Node service renewed on: an endpoint set up for it keeps working.
        "invoice.payment_succeeded",
        "invoice.payment_failed",
    }
)


@dataclass
class BillingContext:
    settings: Settings
    stripe: StripeApi

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.settings.past_due_grace_hours)


class BadWebhook(AppError):
    status_code = 400
    code = "invalid_webhook"


# -- Checkout, status, portal --------------------------------------------------------------


async def current_plan(db: Database, user_id: uuid.UUID) -> Plan | None:
    async with db.transaction() as tx:
        return await repository.get_plan(tx.conn, user_id)


async def start_checkout(
    db: Database,
    ctx: BillingContext,
    user_id: uuid.UUID,
    mobile_number: str | None,
) -> tuple[str, str]:
    """The user's open Checkout Session for Pro: (session id, url). A user has at most one
    open: until it expires or is completed, every call hands out the same one. The user's
    Stripe customer is created once, however many requests race (the idempotency key is the
    user's)."""
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        plan = await repository.get_plan(tx.conn, user_id)
        customer_id = await repository.customer_of(tx.conn, user_id)
    if plan is not None and plan.tier(now) == "PRO":
        raise Conflict("You are already on the Pro plan.", code="already_pro")
    if customer_id is None:
        created = await ctx.stripe.create_customer(str(user_id), mobile_number)
        async with db.transaction() as tx:
            customer_id = await repository.save_customer(tx.conn, user_id, created)
    session = await _open_checkout_session(db, ctx, user_id, now)
    if session.stripe_session_id is not None and session.url is not None:
        log.info(
            "billing.checkout_reused", user_id=str(user_id), session_id=session.stripe_session_id
        )
        return session.stripe_session_id, session.url
    client_url = ctx.settings.client_url.rstrip("/")
    session_id, url = await ctx.stripe.create_checkout_session(
        customer_id=customer_id,
        user_id=str(user_id),
        price_id=ctx.settings.stripe_pro_price_id,
        success_url=f"{client_url}/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{client_url}/cancel",
        expires_at=int(session.expires_at.timestamp()),
        # Keyed by the reservation, with parameters fixed by it: requests that race on it,
        # or retry it after a failure, get the one session Stripe created for it.
        idempotency_key=f"checkout:{session.id}",
    )
    async with db.transaction() as tx:
        await repository.record_checkout_session(tx.conn, session.id, session_id, url)
    log.info("billing.checkout_started", user_id=str(user_id), session_id=session_id)
    return session_id, url


async def _open_checkout_session(
    db: Database, ctx: BillingContext, user_id: uuid.UUID, now: datetime
) -> repository.CheckoutSession:
    """The user's open session, reserved now if they had none."""
    ttl = timedelta(minutes=ctx.settings.checkout_session_ttl_minutes)
    async with db.transaction() as tx:
        await repository.close_stale_checkout_sessions(
            tx.conn, user_id, now, create_by=now + STRIPE_MIN_CHECKOUT_TTL
        )
        return await repository.open_checkout_session(tx.conn, uuid.uuid4(), user_id, now + ttl)


async def portal_url(db: Database, ctx: BillingContext, user_id: uuid.UUID) -> str:
    async with db.transaction() as tx:
        customer_id = await repository.customer_of(tx.conn, user_id)
    if customer_id is None:
        raise NotFound("No billing account yet. Subscribe first.", code="no_billing_account")
    return await ctx.stripe.create_portal_session(customer_id, ctx.settings.client_url)


# -- webhooks ----------------------------------------------------------------------------


def verify(payload: bytes, signature: str | None, settings: Settings) -> dict[str, Any]:
    """The event, if ``signature`` proves Stripe sent exactly ``payload`` recently."""
    if not signature:
        raise BadWebhook("Missing Stripe-Signature header.", code="missing_signature")
    tolerance = settings.stripe_webhook_tolerance_seconds
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8", "replace"), signature, settings.stripe_webhook_secret, tolerance
        )
    except stripe.SignatureVerificationError as exc:
        raise BadWebhook(
            f"Webhook signature check failed: {exc}", code="invalid_signature"
        ) from exc
    # The library accepts timestamps from the future; we do not.
    timestamps = [p.split("=", 1)[1] for p in signature.split(",") if p.startswith("t=")]
    if timestamps and int(timestamps[0]) > datetime.now(UTC).timestamp() + tolerance:
        raise BadWebhook("Webhook timestamp is in the future.", code="invalid_signature")
    try:
        event = json.loads(payload)
        if not (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str)
            and isinstance(event.get("created"), int)
            and isinstance((event.get("data") or {}).get("object"), dict)
        ):
            raise ValueError("not a Stripe event")
    except ValueError as exc:
        raise BadWebhook("The webhook body is not a Stripe event.", code="invalid_event") from exc
    return event


def subscription_id_of(event: dict[str, Any]) -> str | None:
    obj = event["data"]["object"]
    kind = event["type"]
    if kind.startswith("customer.subscription."):
        subscription_id: str | None = obj.get("id")
        return subscription_id
    if kind == "checkout.session.completed":
        return obj.get("subscription") if obj.get("mode") == "subscription" else None
    if kind.startswith("invoice."):
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        return details.get("subscription")
    return None


async def receive(db: Database, ctx: BillingContext, payload: bytes, event: dict[str, Any]) -> bool:
    """Store a verified event once and apply it. False when it was a duplicate already
    applied. Raises when applying fails: the event stays stored, unprocessed, and Stripe's
    retry (or the reprocessing loop) applies it later."""
    created = datetime.fromtimestamp(int(event["created"]), UTC)
    async with db.transaction() as tx:
        stored = await repository.store_event(tx.conn, event["id"], event["type"], created, payload)
    log.info("billing.event_received", event_id=event["id"], type=event["type"], new=stored)
    kind = (
        event["type"] if event["type"] in HANDLED or event["type"] in CHECKOUT_CLOSED else "other"
    )
    try:
        applied = await process(db, ctx, event["id"])
    except Exception:
        metrics.WEBHOOK_EVENTS.labels(kind, "failed").inc()
        raise
    metrics.WEBHOOK_EVENTS.labels(kind, "applied" if applied else "duplicate").inc()
    return applied


async def process(db: Database, ctx: BillingContext, event_id: str) -> bool:
    """Apply one stored event, once. True when this call applied it."""
    async with db.transaction() as tx:
        stored = await repository.lock_event(tx.conn, event_id)
        if stored is None or stored.processed_at is not None:
            return False
        event = stored.payload
        if await erasure.drop_if_erased(tx, event_id, event):
            return True
    subscription_id = subscription_id_of(event) if event["type"] in HANDLED else None
    try:
        # Re-read the subscription from Stripe: the event is a trigger, not the truth, so
        # duplicates and any arrival order end in Stripe's current state.
        snapshot = await ctx.stripe.get_subscription(subscription_id) if subscription_id else None
        as_of = datetime.now(UTC)
        async with db.transaction() as tx:
            stored = await repository.lock_event(tx.conn, event_id)
            if stored is None or stored.processed_at is not None:
                return False
            if snapshot is not None:
                user_id = await _user_of(tx, event, snapshot)
                if await erasure.drop_if_erased(tx, event_id, event, snapshot, user_id):
                    return True
                if user_id is None:
                    log.error("billing.event_unattributable", event_id=event_id)
                else:
                    await repository.add_snapshot(tx.conn, event_id, user_id, as_of, snapshot)
                    await _refresh(tx, ctx, user_id, str(snapshot["id"]), announce=True)
            elif event["type"] not in HANDLED:
                log.info("billing.event_ignored", event_id=event_id, type=event["type"])
            if event["type"] in CHECKOUT_CLOSED:
                await _close_checkout(tx, event, CHECKOUT_CLOSED[event["type"]])
            await repository.mark_processed(tx.conn, event_id)
    except Exception as exc:
        async with db.transaction() as tx:
            await repository.record_failure(tx.conn, event_id, repr(exc))
        raise
    return True


async def _close_checkout(tx: Transaction, event: dict[str, Any], status: str) -> None:
    session_id = str(event["data"]["object"].get("id"))
    closed = await repository.close_checkout_session(tx.conn, session_id, status, datetime.now(UTC))
    log.info("billing.checkout_closed", session_id=session_id, status=status, ours=closed)


async def _user_of(
    tx: Transaction, event: dict[str, Any], snapshot: dict[str, Any]
) -> uuid.UUID | None:
    candidates = [user_id_of(snapshot), event["data"]["object"].get("client_reference_id")]
    for candidate in candidates:
        try:
            return uuid.UUID(str(candidate))
        except ValueError:
            continue
    customer = snapshot.get("customer")
    return await repository.user_of_customer(tx.conn, str(customer)) if customer else None


async def _refresh(
    tx: Transaction,
    ctx: BillingContext,
    user_id: uuid.UUID,
    subscription_id: str,
    *,
    announce: bool,
) -> None:
    """Derive the subscription from all its snapshots in ``as_of`` order, and the user's plan
    from their subscriptions; announce the plan if it changed.

    Folding every snapshot (not just applying the newest) keeps live handling identical to
    a rebuild even when a snapshot fetched earlier commits after a later one."""
    await repository.lock_user(tx.conn, user_id)
    subscription = None
    for snap in await repository.snapshots_of(tx.conn, subscription_id):
        subscription = (
            apply_snapshot(subscription, snap.snapshot, user_id, snap.as_of) or subscription
        )
    if subscription is None:
        return
    await repository.save_subscription(tx.conn, subscription)
    plan = plan_for(
        user_id,
        await repository.subscriptions_of(tx.conn, user_id),
        ctx.grace,
        ctx.settings.stripe_pro_price_id,
    )
    previous = await repository.get_plan(tx.conn, user_id)
    await repository.save_plan(tx.conn, plan, plan.tier(plan.as_of))
    if announce and not plan.announces_the_same_as(previous):
        now = datetime.now(UTC)
        await outbox.add(
            tx.conn,
            SubscriptionChanged(
                user_id=user_id,
                tier=plan.tier(now),
                status=plan.status,
                current_period_start=plan.current_period_start,
                current_period_end=plan.current_period_end,
                cancel_at_period_end=plan.cancel_at_period_end,
                grace_until=plan.grace_until,
                as_of=plan.as_of,
            ),
            producer=PRODUCER,
        )
        log.info(
            "billing.plan_changed", user_id=str(user_id), status=plan.status, tier=plan.tier(now)
        )


async def reprocess_stored(db: Database, ctx: BillingContext, older_than: float) -> int:
    """Apply stored events that are still unprocessed (a failed handler); returns how many
    were applied now."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    async with db.transaction() as tx:
        pending = await repository.unprocessed_events(tx.conn, cutoff)
    applied = 0
    for event_id in pending:
        try:
            applied += await process(db, ctx, event_id)
        except Exception as exc:  # logged and kept for the next round
            log.warning("billing.reprocess_failed", event_id=event_id, error=repr(exc))
    return applied


async def rebuild(db: Database, ctx: BillingContext) -> int:
    """Derive the projection again from the stored snapshots (no Stripe call, no event)."""
    async with db.transaction() as tx:
        await repository.clear_projection(tx.conn)
        snapshots = await repository.all_snapshots(tx.conn)
        subscriptions = {(s.stripe_subscription_id, s.user_id) for s in snapshots}
        for subscription_id, user_id in sorted(subscriptions, key=str):
            await _refresh(tx, ctx, user_id, subscription_id, announce=False)
    log.info("billing.projection_rebuilt", snapshots=len(snapshots))
    return len(snapshots)

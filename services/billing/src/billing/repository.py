"""All of billing's SQL. Functions take the connection first; none of them commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from billing.projection import Plan, Subscription


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    created: datetime
    payload: dict[str, Any]
    processed_at: datetime | None


@dataclass(frozen=True)
class CheckoutSession:
    """A Checkout Session billing created for a user (or, before Stripe answered, reserved:
    ``stripe_session_id`` is None until the create call returned)."""

    id: uuid.UUID
    user_id: uuid.UUID
    stripe_session_id: str | None
    url: str | None
    status: str
    expires_at: datetime


@dataclass(frozen=True)
class Snapshot:
    id: int
    event_id: str
    stripe_subscription_id: str
    user_id: uuid.UUID
    as_of: datetime
    snapshot: dict[str, Any]


# -- customers ---------------------------------------------------------------------------


async def customer_of(conn: AsyncConnection, user_id: uuid.UUID) -> str | None:
    cur = await conn.execute(
        "SELECT stripe_customer_id FROM customers WHERE user_id = %s", (user_id,)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def user_of_customer(conn: AsyncConnection, customer_id: str) -> uuid.UUID | None:
    cur = await conn.execute(
        "SELECT user_id FROM customers WHERE stripe_customer_id = %s", (customer_id,)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def save_customer(conn: AsyncConnection, user_id: uuid.UUID, customer_id: str) -> str:
    """Record the user's customer; the one already recorded wins (and is returned)."""
    await conn.execute(
        "INSERT INTO customers (user_id, stripe_customer_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        (user_id, customer_id),
    )
    return await customer_of(conn, user_id) or customer_id


# -- Checkout Sessions -------------------------------------------------------------------


async def close_stale_checkout_sessions(
    conn: AsyncConnection, user_id: uuid.UUID, now: datetime, create_by: datetime
) -> None:
    """Close the user's open session if its time is up: ``expired`` once ``expires_at`` has
    passed; ``abandoned`` for a reservation never created at Stripe that expires before
    ``create_by`` (Stripe would refuse to create it now)."""
    await conn.execute(
        "UPDATE checkout_sessions"
        " SET status = CASE WHEN stripe_session_id IS NULL THEN 'abandoned' ELSE 'expired' END,"
        "     closed_at = %s"
        " WHERE user_id = %s AND status = 'open'"
        "   AND (expires_at <= %s OR (stripe_session_id IS NULL AND expires_at < %s))",
        (now, user_id, now, create_by),
    )


async def open_checkout_session(
    conn: AsyncConnection, new_id: uuid.UUID, user_id: uuid.UUID, expires_at: datetime
) -> CheckoutSession:
    """The user's open session; reserved now (as ``new_id``) if they had none. One statement,
    so requests that race end with the same row (the partial unique index allows one open
    session per user; the row stays locked until commit)."""
    async with conn.cursor(row_factory=class_row(CheckoutSession)) as cur:
        await cur.execute(
            "INSERT INTO checkout_sessions (id, user_id, expires_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) WHERE status = 'open'"
            " DO UPDATE SET user_id = EXCLUDED.user_id"
            " RETURNING id, user_id, stripe_session_id, url, status, expires_at",
            (new_id, user_id, expires_at),
        )
        row = await cur.fetchone()
    assert row is not None  # INSERT ... ON CONFLICT DO UPDATE returns the row it wrote
    return row


async def record_checkout_session(
    conn: AsyncConnection, session_id: uuid.UUID, stripe_session_id: str, url: str
) -> None:
    """What Stripe created for the reservation (the same for every request that raced)."""
    await conn.execute(
        "UPDATE checkout_sessions SET stripe_session_id = %s, url = %s"
        " WHERE id = %s AND stripe_session_id IS NULL",
        (stripe_session_id, url, session_id),
    )


async def close_checkout_session(
    conn: AsyncConnection, stripe_session_id: str, status: str, now: datetime
) -> bool:
    """Stripe says the session is ``complete`` or ``expired``: True when that changed one of
    ours (a session made elsewhere, or a second delivery, changes nothing)."""
    cur = await conn.execute(
        "UPDATE checkout_sessions SET status = %s, closed_at = %s"
        " WHERE stripe_session_id = %s AND status NOT IN ('complete', %s)",
        (status, now, stripe_session_id, status),
    )
    return cur.rowcount == 1


# -- the event log -----------------------------------------------------------------------

# After this many failed attempts an event is left alone (its last_error says why): a
# payload that can never be applied must not be retried forever.
MAX_ATTEMPTS = 20


async def store_event(
    conn: AsyncConnection, event_id: str, type_: str, created: datetime, payload: bytes
) -> bool:
    """Store a received event once; False when it was already stored."""
    cur = await conn.execute(
        "INSERT INTO stripe_events (id, type, created, payload) VALUES (%s, %s, %s, %s::jsonb)"
        " ON CONFLICT (id) DO NOTHING",
        (event_id, type_, created, payload.decode()),
    )
    return cur.rowcount == 1


async def lock_event(conn: AsyncConnection, event_id: str) -> StoredEvent | None:
    """The stored event, locked: concurrent deliveries of it are handled one at a time."""
    async with conn.cursor(row_factory=class_row(StoredEvent)) as cur:
        await cur.execute(
            "SELECT id, type, created, payload, processed_at FROM stripe_events"
            " WHERE id = %s FOR UPDATE",
            (event_id,),
        )
        return await cur.fetchone()


async def mark_processed(conn: AsyncConnection, event_id: str) -> None:
    await conn.execute(
        "UPDATE stripe_events SET processed_at = clock_timestamp(), attempts = attempts + 1,"
        " last_error = NULL WHERE id = %s",
        (event_id,),
    )


async def record_failure(conn: AsyncConnection, event_id: str, error: str) -> None:
    await conn.execute(
        "UPDATE stripe_events SET attempts = attempts + 1, last_error = %s WHERE id = %s",
        (error[:2000], event_id),
    )


async def unprocessed_events(conn: AsyncConnection, received_before: datetime) -> list[str]:
    cur = await conn.execute(
        "SELECT id FROM stripe_events WHERE processed_at IS NULL AND received_at < %s"
        " AND attempts < %s ORDER BY created, received_at LIMIT 100",
        (received_before, MAX_ATTEMPTS),
    )
    return [row[0] for row in await cur.fetchall()]


# -- snapshots and the projection --------------------------------------------------------


async def add_snapshot(
    conn: AsyncConnection,
    event_id: str,
    user_id: uuid.UUID,
    as_of: datetime,
    snapshot: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO subscription_snapshots"
        " (event_id, stripe_subscription_id, user_id, as_of, snapshot)"
        " VALUES (%s, %s, %s, %s, %s)",
        (event_id, snapshot["id"], user_id, as_of, Jsonb(snapshot)),
    )


async def snapshots_of(conn: AsyncConnection, subscription_id: str) -> list[Snapshot]:
    """One subscription's snapshots, oldest first."""
    async with conn.cursor(row_factory=class_row(Snapshot)) as cur:
        await cur.execute(
            "SELECT id, event_id, stripe_subscription_id, user_id, as_of, snapshot"
            " FROM subscription_snapshots WHERE stripe_subscription_id = %s ORDER BY as_of, id",
            (subscription_id,),
        )
        return await cur.fetchall()


async def all_snapshots(conn: AsyncConnection) -> list[Snapshot]:
    async with conn.cursor(row_factory=class_row(Snapshot)) as cur:
        await cur.execute(
            "SELECT id, event_id, stripe_subscription_id, user_id, as_of, snapshot"
            " FROM subscription_snapshots ORDER BY as_of, id"
        )
        return await cur.fetchall()


_SUB = (
    "stripe_subscription_id, user_id, stripe_customer_id, status, current_period_start,"
    " current_period_end, cancel_at_period_end, ended_at, past_due_since, as_of, price_ids"
)


async def lock_user(conn: AsyncConnection, user_id: uuid.UUID) -> None:
    """Serialise projection updates of one user (two events of one user at once)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"billing:{user_id}",))


async def get_subscription(conn: AsyncConnection, subscription_id: str) -> Subscription | None:
    async with conn.cursor(row_factory=class_row(Subscription)) as cur:
        await cur.execute(
            f"SELECT {_SUB} FROM subscriptions WHERE stripe_subscription_id = %s",
            (subscription_id,),
        )
        return await cur.fetchone()


async def subscriptions_of(conn: AsyncConnection, user_id: uuid.UUID) -> list[Subscription]:
    async with conn.cursor(row_factory=class_row(Subscription)) as cur:
        await cur.execute(f"SELECT {_SUB} FROM subscriptions WHERE user_id = %s", (user_id,))
        return await cur.fetchall()


async def save_subscription(conn: AsyncConnection, sub: Subscription) -> None:
    await conn.execute(
        f"""
        INSERT INTO subscriptions ({_SUB}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (stripe_subscription_id) DO UPDATE SET
            user_id = EXCLUDED.user_id, stripe_customer_id = EXCLUDED.stripe_customer_id,
            status = EXCLUDED.status, current_period_start = EXCLUDED.current_period_start,
            current_period_end = EXCLUDED.current_period_end,
            cancel_at_period_end = EXCLUDED.cancel_at_period_end, ended_at = EXCLUDED.ended_at,
            past_due_since = EXCLUDED.past_due_since, as_of = EXCLUDED.as_of,
            price_ids = EXCLUDED.price_ids
        """,
        (
            sub.stripe_subscription_id,
            sub.user_id,
            sub.stripe_customer_id,
            sub.status,
            sub.current_period_start,
            sub.current_period_end,
            sub.cancel_at_period_end,
            sub.ended_at,
            sub.past_due_since,
            sub.as_of,
            list(sub.price_ids),
        ),
    )


_PLAN = (
    "user_id, stripe_subscription_id, status, current_period_start, current_period_end,"
    " cancel_at_period_end, grace_until, as_of"
)


async def get_plan(conn: AsyncConnection, user_id: uuid.UUID) -> Plan | None:
    async with conn.cursor(row_factory=class_row(Plan)) as cur:
        await cur.execute(f"SELECT {_PLAN} FROM plans WHERE user_id = %s", (user_id,))
        return await cur.fetchone()


async def save_plan(conn: AsyncConnection, plan: Plan, tier: str) -> None:
    await conn.execute(
        f"""
        INSERT INTO plans ({_PLAN}, tier) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (user_id) DO UPDATE SET
            stripe_subscription_id = EXCLUDED.stripe_subscription_id, status = EXCLUDED.status,
            current_period_start = EXCLUDED.current_period_start,
            current_period_end = EXCLUDED.current_period_end,
            cancel_at_period_end = EXCLUDED.cancel_at_period_end,
            grace_until = EXCLUDED.grace_until, as_of = EXCLUDED.as_of, tier = EXCLUDED.tier
        """,
        (
            plan.user_id,
            plan.stripe_subscription_id,
            plan.status,
            plan.current_period_start,
            plan.current_period_end,
            plan.cancel_at_period_end,
            plan.grace_until,
            plan.as_of,
            tier,
        ),
    )


async def clear_projection(conn: AsyncConnection) -> None:
    await conn.execute("DELETE FROM subscriptions")
    await conn.execute("DELETE FROM plans")


async def count_unprocessed(conn: AsyncConnection) -> int:
    """Stored events not applied yet, whether or not the reprocessing loop still tries."""
    cur = await conn.execute("SELECT count(*) FROM stripe_events WHERE processed_at IS NULL")
    row = await cur.fetchone()
    return int(row[0]) if row else 0

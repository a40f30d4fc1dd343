"""The SQL of account deletion (billing/erasure.py); the rest of billing's is in
repository.py. Functions take the connection first; none of them commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg import AsyncConnection

from shared.erasure import digest


@dataclass(frozen=True)
class Holdings:
    """What the user has at Stripe, as far as billing knows."""

    customers: list[str]
    # Not ended, as the projection has them (Stripe is asked for the customers' too).
    subscriptions: list[str]
    # Checkout Sessions billing created that are still open (could still be paid).
    checkout_sessions: list[str]


async def _column(conn: AsyncConnection, sql: str, user_id: uuid.UUID) -> list[str]:
    cur = await conn.execute(sql, {"user": user_id})
    return sorted({str(row[0]) for row in await cur.fetchall()})


async def holdings(conn: AsyncConnection, user_id: uuid.UUID) -> Holdings:
    return Holdings(
        customers=await _column(
            conn,
            "SELECT stripe_customer_id FROM customers WHERE user_id = %(user)s"
            " UNION SELECT stripe_customer_id FROM subscriptions WHERE user_id = %(user)s",
            user_id,
        ),
        subscriptions=await _column(
            conn,
            "SELECT stripe_subscription_id FROM subscriptions WHERE user_id = %(user)s"
            " AND status NOT IN ('canceled', 'incomplete_expired')",
            user_id,
        ),
        checkout_sessions=await _column(
            conn,
            "SELECT stripe_session_id FROM checkout_sessions WHERE user_id = %(user)s"
            " AND status = 'open' AND stripe_session_id IS NOT NULL",
            user_id,
        ),
    )


async def remember(conn: AsyncConnection, user_id: uuid.UUID, customers: list[str]) -> None:
    """Record the user and their customers as erased (digests only)."""
    digests = [digest(user_id), *(digest(c) for c in customers)]
    kinds = ["user"] + ["customer"] * len(customers)
    await conn.execute(
        "INSERT INTO erased_subjects (digest, kind)"
        " SELECT * FROM unnest(%s::text[], %s::text[]) ON CONFLICT DO NOTHING",
        (digests, kinds),
    )


async def any_erased(conn: AsyncConnection, digests: list[str]) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM erased_subjects WHERE digest = ANY(%s))", (digests,)
    )
    row = await cur.fetchone()
    return bool(row and row[0])


# A stored event, emptied: its id (so Stripe's redelivery stays a duplicate), type and time.
_STUB = (
    "jsonb_build_object('id', id, 'object', 'event', 'type', type,"
    " 'created', extract(epoch FROM created)::bigint,"
    " 'data', jsonb_build_object('object', '{}'::jsonb), 'redacted', true)"
)


async def redact_event(conn: AsyncConnection, event_id: str) -> None:
    """Empty a stored event and mark it handled."""
    await conn.execute(
        f"UPDATE stripe_events SET payload = {_STUB}, last_error = NULL,"
        " processed_at = COALESCE(processed_at, clock_timestamp()), attempts = attempts + 1"
        " WHERE id = %s",
        (event_id,),
    )


async def erase_user(conn: AsyncConnection, user_id: uuid.UUID, customers: list[str]) -> int:
    """Empty the stored events about the user (naming them, their customers or their
    subscriptions) and delete every row of theirs; how many rows changed."""
    params = {"user": user_id, "uid": str(user_id), "customers": customers}
    cur = await conn.execute(
        "SELECT stripe_subscription_id FROM subscriptions WHERE user_id = %(user)s"
        " UNION SELECT stripe_subscription_id FROM subscription_snapshots"
        " WHERE user_id = %(user)s",
        params,
    )
    params["subs"] = [row[0] for row in await cur.fetchall()]
    cur = await conn.execute(
        f"UPDATE stripe_events SET payload = {_STUB},"
        " processed_at = COALESCE(processed_at, clock_timestamp()), last_error = NULL"
        " WHERE NOT (payload ? 'redacted') AND ("
        "  id IN (SELECT event_id FROM subscription_snapshots WHERE user_id = %(user)s)"
        "  OR payload #>> '{data,object,metadata,userId}' = %(uid)s"
        "  OR payload #>> '{data,object,client_reference_id}' = %(uid)s"
        "  OR payload #>> '{data,object,customer}' = ANY(%(customers)s)"
        "  OR (payload #>> '{data,object,object}' = 'customer'"
        "      AND payload #>> '{data,object,id}' = ANY(%(customers)s))"
        "  OR payload #>> '{data,object,id}' = ANY(%(subs)s)"
        "  OR payload #>> '{data,object,subscription}' = ANY(%(subs)s)"
        "  OR payload #>> '{data,object,parent,subscription_details,subscription}'"
        "     = ANY(%(subs)s))",
        params,
    )
    changed = cur.rowcount
    for table in ("subscription_snapshots", "subscriptions", "plans", "checkout_sessions"):
        cur = await conn.execute(f"DELETE FROM {table} WHERE user_id = %(user)s", params)
        changed += cur.rowcount
    cur = await conn.execute("DELETE FROM customers WHERE user_id = %(user)s", params)
    return changed + cur.rowcount

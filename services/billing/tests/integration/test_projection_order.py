"""Live handling equals a rebuild even when snapshots commit out of order."""

import uuid
from datetime import UTC, datetime, timedelta

from billing import repository, service
from billing.service import BillingContext
from shared.db import Database, open_pool

T1 = datetime(2026, 11, 1, tzinfo=UTC)


def snapshot(sub_id: str, user_id: uuid.UUID, status: str) -> dict:
    start = int(T1.timestamp())
    return {
        "id": sub_id,
        "customer": "cus_order",
        "status": status,
        "cancel_at_period_end": False,
        "metadata": {"userId": str(user_id)},
        "items": {
            "data": [
                {
                    "current_period_start": start,
                    "current_period_end": start + 86400 * 30,
                    "price": {"id": "price_pro_monthly"},
                }
            ]
        },
    }


async def test_a_late_older_snapshot_gives_the_same_projection_as_a_rebuild(
    billing_database_url, billing_settings
):
    settings = billing_settings("http://127.0.0.1:1")
    ctx = BillingContext(settings=settings, stripe=None)  # type: ignore[arg-type]
    pool = await open_pool(billing_database_url, "billing", min_size=1, max_size=2)
    user, sub = uuid.uuid4(), f"sub_{uuid.uuid4().hex[:12]}"
    # Fetched at t1 (active), t2 (past_due) and t3 (past_due); t2 commits last.
    arrivals = [
        (T1, "active"),
        (T1 + timedelta(minutes=2), "past_due"),
        (T1 + timedelta(minutes=1), "past_due"),
    ]
    try:
        for as_of, status in arrivals:
            event_id = f"evt_{uuid.uuid4().hex[:12]}"
            async with Database(pool).transaction() as tx:
                await repository.store_event(tx.conn, event_id, "x", as_of, b"{}")
                await repository.mark_processed(tx.conn, event_id)  # not for the reprocessor
                await repository.add_snapshot(
                    tx.conn, event_id, user, as_of, snapshot(sub, user, status)
                )
                await service._refresh(tx, ctx, user, sub, announce=False)
        async with Database(pool).transaction() as tx:
            live = await repository.get_subscription(tx.conn, sub)
        assert live.past_due_since == T1 + timedelta(minutes=1)  # the fold, not arrival order
        await service.rebuild(Database(pool), ctx)
        async with Database(pool).transaction() as tx:
            assert await repository.get_subscription(tx.conn, sub) == live
    finally:
        await pool.close()

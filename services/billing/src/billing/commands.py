"""``python -m billing rebuild`` and ``python -m billing reprocess``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from billing import service
from billing.service import BillingContext
from billing.settings import Settings
from billing.stripe_api import StripeApi
from shared.db import Database, open_pool

SCHEMA = "billing"


async def _with_context(
    settings: Settings, action: Callable[[Database, BillingContext], Awaitable[int]]
) -> int:
    pool = await open_pool(settings.database_url, SCHEMA, min_size=1, max_size=2)
    try:
        ctx = BillingContext(settings=settings, stripe=StripeApi(settings))
        return await action(Database(pool), ctx)
    finally:
        await pool.close()


async def rebuild(settings: Settings) -> int:
    """Derive the subscription projection again from the stored event snapshots."""

    async def action(db: Database, ctx: BillingContext) -> int:
        count = await service.rebuild(db, ctx)
        print(f"projection rebuilt from {count} snapshots")
        return 0

    return await _with_context(settings, action)


async def reprocess(settings: Settings) -> int:
    """Apply every stored event that is still unprocessed."""

    async def action(db: Database, ctx: BillingContext) -> int:
        applied = await service.reprocess_stored(db, ctx, older_than=0)
        print(f"{applied} stored events applied")
        return 0

    return await _with_context(settings, action)

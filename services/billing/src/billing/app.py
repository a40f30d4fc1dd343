from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from billing import service
from billing.api import router
from billing.service import BillingContext
from billing.settings import Settings
from billing.stripe_api import StripeApi
from shared.aio import Background, sleep_unless
from shared.db import UnitOfWork, open_pool
from shared.http import create_app as create_service_app
from shared.http import database_and_redis_checks
from shared.outbox import OutboxRelay
from shared.redis import open_redis

SCHEMA = "billing"

log = structlog.get_logger(__name__)


def reprocessor(app: FastAPI, settings: Settings) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Applies stored events whose handling failed (Stripe retries too; this is sooner)."""

    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_unless(stop, settings.reprocess_interval_seconds)
            try:
                await service.reprocess_stored(
                    UnitOfWork(app.state.pool), app.state.billing, settings.reprocess_after_seconds
                )
            except Exception:
                log.exception("billing.reprocessor_failed")

    return loop


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(
            settings.database_url,
            SCHEMA,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
        )
        redis = open_redis(settings.redis_url)
        app.state.pool, app.state.redis = pool, redis
        app.state.billing = BillingContext(settings=settings, stripe=StripeApi(settings))
        background = Background()
        relay = OutboxRelay(pool, redis, database_url=settings.database_url, schema=SCHEMA)
        app.state.relay = relay
        background.start("outbox-relay", relay.run)
        background.start("reprocessor", reprocessor(app, settings))
        try:
            yield
        finally:
            await background.shutdown(grace=10)
            await redis.aclose()
            await pool.close()

    app = create_service_app(
        title="Gemini Backend: billing",
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=database_and_redis_checks,
    )
    app.state.settings = settings
    app.include_router(router)
    return app

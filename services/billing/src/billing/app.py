from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from billing import metrics, repository, service
from billing.api import router
from billing.handlers import BEFORE, HANDLERS, ConsumerContext
from billing.service import BillingContext
from billing.settings import Settings
from billing.stripe_api import StripeApi
from shared.aio import sleep_unless
from shared.db import Database
from shared.http import create_app as create_service_app
from shared.http import database_and_redis_checks
from shared.metrics import on_scrape
from shared.runtime import service_runtime

SCHEMA = "billing"
# auth.events: UserDeleted (billing cancels the user's subscription and erases their rows).
CONSUMES = ["auth.events"]

log = structlog.get_logger(__name__)


def reprocessor(app: FastAPI, settings: Settings) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Applies stored events whose handling failed (Stripe retries too; this is sooner)."""

    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_unless(stop, settings.reprocess_interval_seconds)
            try:
                await service.reprocess_stored(
                    Database(app.state.pool), app.state.billing, settings.reprocess_after_seconds
                )
            except Exception:
                log.exception("billing.reprocessor_failed")

    return loop


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, SCHEMA) as runtime:
            app.state.billing = BillingContext(settings=settings, stripe=StripeApi(settings))
            runtime.consume(
                "billing",
                CONSUMES,
                HANDLERS,
                ConsumerContext(Database(runtime.pool), app.state.billing, runtime.redis),
                claim_idle_seconds=settings.claim_idle_seconds,
                max_deliveries=settings.max_deliveries,
                before=BEFORE,
            )
            runtime.background.start("reprocessor", reprocessor(app, settings))

            async def backlog() -> None:
                async with runtime.pool.connection() as conn:
                    metrics.REPROCESS_BACKLOG.set(await repository.count_unprocessed(conn))

            remove_collector = on_scrape(backlog)
            try:
                yield
            finally:
                remove_collector()

    app = create_service_app(
        title="Gemini Backend: billing",
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=database_and_redis_checks,
        readiness_details=settings.show_readiness_details,
    )
    app.state.settings = settings
    app.include_router(router)
    return app

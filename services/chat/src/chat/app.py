from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import structlog
from fastapi import FastAPI

from chat import service
from chat.api import router
from chat.handlers import handlers
from chat.service import ChatContext
from chat.settings import Settings
from chat.streaming import StreamSlots
from shared.aio import sleep_unless
from shared.db import UnitOfWork
from shared.http import create_app as create_service_app
from shared.http import database_and_redis_checks
from shared.runtime import service_runtime

SCHEMA = "chat"
CONSUMES = ["ai.events", "billing.events"]

log = structlog.get_logger(__name__)


def reconciler(app: FastAPI, settings: Settings) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Every interval: queue again replies stuck past the deadline; and when Redis lost
    its data (restart without persistence, flush), every pending reply at once."""

    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                now = datetime.now(UTC)
                cutoff = now - timedelta(seconds=settings.reconcile_after_seconds)
                if await service.redis_lost_data(app.state.redis):
                    # Also on the very first start against this Redis: harmless then.
                    log.warning("chat.redis_marker_missing_requeueing_all_pending")
                    cutoff = now
                while await service.requeue_stale_replies(
                    UnitOfWork(app.state.pool), settings, cutoff
                ):
                    pass
            except Exception:
                log.exception("chat.reconciler_failed")
            await sleep_unless(stop, settings.reconcile_interval_seconds)

    return loop


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, SCHEMA) as runtime:
            app.state.chat = ctx = ChatContext(
                settings=settings,
                redis=runtime.redis,
                streams=StreamSlots(runtime.redis, settings),
            )
            runtime.consume(
                "chat",
                CONSUMES,
                handlers(ctx),
                claim_idle_seconds=settings.claim_idle_seconds,
                max_deliveries=settings.max_deliveries,
            )
            runtime.background.start("reconciler", reconciler(app, settings))
            yield

    app = create_service_app(
        title="Gemini Backend: chat",
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=database_and_redis_checks,
        readiness_details=settings.show_readiness_details,
    )
    app.state.settings = settings
    app.include_router(router)
    return app

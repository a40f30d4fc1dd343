from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from chat import reconciler
from chat.api import router
from chat.branch_api import router as branch_router
from chat.context import ChatContext
from chat.handlers import HANDLERS
from chat.model_api import router as model_router
from chat.search_api import router as search_router
from chat.settings import Settings
from chat.share_api import router as share_router
from chat.stream_slots import StreamSlots
from shared.http import create_app as create_service_app
from shared.http import database_and_redis_checks
from shared.runtime import service_runtime

SCHEMA = "chat"
CONSUMES = ["ai.events", "billing.events", "auth.events"]

log = structlog.get_logger(__name__)


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
                HANDLERS,
                ctx,
                claim_idle_seconds=settings.claim_idle_seconds,
                max_deliveries=settings.max_deliveries,
            )
            runtime.background.start(
                "reconciler", reconciler.loop(runtime.pool, runtime.redis, settings)
            )
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
    app.include_router(search_router)
    app.include_router(share_router)
    app.include_router(model_router)
    app.include_router(branch_router)
    return app

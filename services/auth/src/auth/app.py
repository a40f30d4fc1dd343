from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from auth.api import internal, router
from auth.delivery import OtpSender
from auth.handlers import HANDLERS
from auth.service import AuthContext
from auth.settings import Settings
from auth.throttle import Throttle
from shared.aio import Background
from shared.consumer import StreamConsumer, consumer_name, inbox_processor
from shared.db import open_pool
from shared.http import create_app as create_service_app
from shared.http import database_and_redis_checks
from shared.outbox import OutboxRelay
from shared.redis import open_redis

SCHEMA = "auth"


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
        http = httpx.AsyncClient(timeout=settings.otp_webhook_timeout_seconds)
        app.state.pool = pool
        app.state.redis = redis
        app.state.auth = AuthContext(
            settings=settings,
            redis=redis,
            throttle=Throttle(settings),
            sender=OtpSender(settings, http),
        )
        relay = OutboxRelay(pool, redis, database_url=settings.database_url, schema=SCHEMA)
        consumer = StreamConsumer(
            redis,
            group="auth",
            name=consumer_name("auth"),
            streams=["billing.events"],
            types={cls.type_name() for cls in HANDLERS},
            process=inbox_processor(pool, HANDLERS),
            claim_idle_ms=int(settings.claim_idle_seconds * 1000),
            max_deliveries=settings.max_deliveries,
        )
        app.state.relay, app.state.consumer = relay, consumer
        background = Background()
        background.start("outbox-relay", relay.run)
        background.start("consumer", consumer.run)
        try:
            yield
        finally:
            await background.shutdown(grace=10)
            await http.aclose()
            await redis.aclose()
            await pool.close()

    app = create_service_app(
        title="Gemini Backend: auth",
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=database_and_redis_checks,
    )
    app.state.settings = settings
    app.include_router(router)
    app.include_router(internal)
    return app

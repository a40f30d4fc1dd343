from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from auth.api import internal, router
from auth.delivery import OtpSender
from auth.service import AuthContext
from auth.settings import Settings
from auth.throttle import Throttle
from shared.db import open_pool
from shared.http import create_app as create_service_app
from shared.http import database_and_redis_checks
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
        try:
            yield
        finally:
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

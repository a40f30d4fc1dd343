from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from auth.api import internal, router
from auth.context import AuthContext
from auth.delivery import OtpSender
from auth.handlers import HANDLERS
from auth.passwords import Hashing
from auth.sessions import token_lookup
from auth.settings import Settings
from auth.throttle import Throttle
from shared.http import create_app as create_service_app
from shared.http import database_and_redis_checks
from shared.runtime import service_runtime

SCHEMA = "auth"
CONSUMES = ["billing.events", "auth.events"]  # auth.events: its own UserDeleted


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            service_runtime(app, settings, SCHEMA, token_lookup=token_lookup) as runtime,
            httpx.AsyncClient(timeout=settings.otp_webhook_timeout_seconds) as http,
        ):
            app.state.auth = ctx = AuthContext(
                settings=settings,
                redis=runtime.redis,
                throttle=Throttle(settings, runtime.redis),
                sender=OtpSender(settings, http),
                hashing=Hashing(
                    settings.password_hash_concurrency, settings.password_hash_wait_seconds
                ),
            )
            runtime.consume(
                "auth",
                CONSUMES,
                HANDLERS,
                ctx,
                claim_idle_seconds=settings.claim_idle_seconds,
                max_deliveries=settings.max_deliveries,
            )
            yield

    app = create_service_app(
        title="Gemini Backend: auth",
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=database_and_redis_checks,
        readiness_details=settings.show_readiness_details,
    )
    app.state.settings = settings
    app.include_router(router)
    app.include_router(internal)
    return app

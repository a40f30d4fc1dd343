from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ai_worker.generation import ReplyGenerator, create_client, http_session
from ai_worker.handlers import AUTH_STREAM, CHAT_STREAM, build_consumer
from ai_worker.service import RESULT_STREAM, WorkerContext
from ai_worker.settings import Settings
from ai_worker.stops import StopWatcher
from shared.aio import Background
from shared.errors import error_response
from shared.events import UserDeleted
from shared.http import ReadinessCheck
from shared.http import create_app as create_service_app
from shared.redis import open_redis

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings,
    *,
    streams: Sequence[str] = (CHAT_STREAM,),
    result_stream: str = RESULT_STREAM,
    deletion_streams: Sequence[str] = (AUTH_STREAM,),
) -> FastAPI:
    """Health endpoints on PORT; the lifespan runs the consumer loop. On shutdown it stops
    reading and lets in-flight replies finish for up to SHUTDOWN_GRACE_SECONDS.

    ``/livez`` (the liveness probe) answers 503 once the consumer loop has ended while the
    worker is not stopping. The loop survives Redis outages and is started again when it
    crashes (``shared.aio.Background``), so its end means the process is beyond that: only
    a restart mends it. ``/healthz`` says the process answers, nothing more. A second
    consumer reads UserDeleted from ``deletion_streams`` (auth.events): it is watched the
    same way."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = open_redis(settings.redis_url)
        session = http_session()
        client = create_client(settings, session)
        stops = StopWatcher(redis)
        ctx = WorkerContext(
            settings=settings,
            redis=redis,
            generator=ReplyGenerator(client, redis, settings),
            result_stream=result_stream,
            stops=stops,
        )
        consumer = build_consumer(redis, ctx, streams=streams)
        deletions = build_consumer(redis, ctx, streams=deletion_streams, event=UserDeleted)
        # Like every service's loops: a loop that crashes is logged and started again.
        background = Background()
        background.start("stop-watcher", stops.run)

        async def consume(stop: asyncio.Event) -> None:
            await consumer.run(stop, shutdown_timeout=settings.shutdown_grace_seconds)

        task = background.start("consumer", consume)
        deletions_task = background.start("deletion-consumer", deletions.run)
        app.state.redis, app.state.consumer, app.state.consumer_task = redis, consumer, task
        app.state.consumer_tasks = (task, deletions_task)
        app.state.stop = background.stop
        log.info(
            "worker.started",
            model=settings.gemini_model,
            simulator=settings.gemini_base_url,
            concurrency=settings.ai_worker_concurrency,
        )
        try:
            yield
        finally:
            # In-flight replies get SHUTDOWN_GRACE_SECONDS (consumer.run); then the loops end.
            await background.shutdown(grace=settings.shutdown_grace_seconds + 5)
            await client.aio.aclose()
            await session.close()
            await redis.aclose()
            log.info("worker.stopped")

    def readiness(app: FastAPI) -> dict[str, ReadinessCheck]:
        async def redis() -> None:
            await app.state.redis.ping()

        async def consumer() -> None:
            if any(task.done() for task in app.state.consumer_tasks):
                raise RuntimeError("a consumer loop has stopped")

        return {"redis": redis, "consumer": consumer}

    app = create_service_app(
        title="Gemini Backend: ai-worker",
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=readiness,
        readiness_details=settings.show_readiness_details,
        openapi_url=None,
        docs_url=None,
    )
    app.state.settings = settings

    @app.get("/livez", include_in_schema=False)
    async def livez() -> JSONResponse:
        tasks: tuple[asyncio.Task[None], ...] = getattr(app.state, "consumer_tasks", ())
        if any(task.done() for task in tasks) and not app.state.stop.is_set():
            return error_response(503, "consumer_stopped", "The consumer loop has stopped.")
        return JSONResponse({"status": "success", "message": "Alive."})

    return app

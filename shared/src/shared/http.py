"""The HTTP scaffolding every service uses: app factory, middleware, health routes.

Middleware order, outermost first (each a plain ASGI class: every layer costs every
request some time, so there are two, and the gateway adds CORS between them):

1. :class:`RequestLogMiddleware`: reads or makes ``X-Request-ID``, puts it on every
   response, and writes one ``http.request`` log line per request.
2. :class:`RequestGuardMiddleware`: 413 for bodies over ``MAX_BODY_BYTES``, whether the
   size is announced in ``Content-Length`` or only discovered while reading, a JSON 500
   for anything that escaped the exception handlers (so even those carry the request id),
   and 499 in the access log, not an error, for a client that left before its body came.
"""

from __future__ import annotations

import gc
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import structlog
from asgi_correlation_id.context import correlation_id
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing
from shared.errors import error_body, install_error_handlers
from shared.metrics import HTTP_DURATION, HTTP_REQUESTS, metrics_endpoint, route_of
from shared.openapi import install_openapi
from shared.version import __version__

log = structlog.get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
# The user and password of a URL (scheme://user:password@host), which an error may quote.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


# How long a service keeps an idle HTTP connection open (uvicorn's default). A client of a
# service that reuses connections (the gateway's forwarding, every token look-up) must give
# them up sooner, CLIENT_KEEP_ALIVE_SECONDS, or it may send a request on one the service is
# closing at that moment: "Can not write request body" or "Server disconnected without
# sending a response", a 502 or 503 for a request that did nothing wrong.
SERVER_KEEP_ALIVE_SECONDS = 5
CLIENT_KEEP_ALIVE_SECONDS = SERVER_KEEP_ALIVE_SECONDS - 1
# The status logged for a request whose client left before it was read.
CLIENT_CLOSED_REQUEST = 499
CLIENT_CLOSED_BODY = error_body(
    CLIENT_CLOSED_REQUEST, "client_closed_request", "The client closed the request."
)


def _is_request_id(value: str) -> bool:
    """Accept client request ids that are short and printable; replace anything else."""
    return 0 < len(value) <= 128 and all(c.isalnum() or c in "-_.:" for c in value)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestLogMiddleware:
    """Outermost: the request id and the access log line.

    The id is the client's ``X-Request-ID`` when it is short and printable, else a new one;
    it is in ``correlation_id`` while the request is handled (so on every log line and
    event it causes) and on every response. One ``http.request`` line per request (not for
    the health probes), written after the response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if request_id is None or not _is_request_id(request_id):
            request_id = uuid.uuid4().hex
        context = correlation_id.set(request_id)
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope["path"]
            if path not in _UNLOGGED:
                elapsed = time.perf_counter() - started
                method = scope["method"]
                route = route_of(scope)
                HTTP_REQUESTS.labels(route, method, str(status)).inc()
                HTTP_DURATION.labels(route, method).observe(elapsed)
                log.info(
                    "http.request",
                    method=method,
                    path=scope.get(_LOGGED_PATH, path),
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            correlation_id.reset(context)


# The probes and the scrape: neither logged nor counted (they would drown the rest).
_UNLOGGED = frozenset({"/healthz", "/readyz", "/livez", "/metrics"})
_LOGGED_PATH = "logged_path"


def redact_path(scope: Scope, template: str) -> None:
    """Log and trace this request under its route ``template``, never its path: the path
    holds a secret (a share link's token opens the chat to whoever reads it)."""
    scope[_LOGGED_PATH] = template
    tracing.redact_url(template)


class RequestGuardMiddleware:
    """413 for bodies over ``MAX_BODY_BYTES`` (announced in ``Content-Length`` or found while
    reading), a JSON 500 for anything that escaped the exception handlers, and 499 for a
    client that disconnected while its body was read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes or declared < 0:
                    status = 413 if declared > self.max_bytes else 400
                    code = "payload_too_large" if status == 413 else "bad_request"
                    message = (
                        f"The request body is larger than {self.max_bytes} bytes."
                        if status == 413
                        else "Invalid Content-Length header."
                    )
                    await _send_json(send, status, error_body(status, code, message))
                    return
                break
        received = 0
        max_bytes = self.max_bytes
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # fastapi.HTTPException, not our AppError: FastAPI turns any other
                    # exception raised while it reads the body into a generic 400.
                    raise HTTPException(413, f"The request body is larger than {max_bytes} bytes.")
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except ClientDisconnect:
            # The client went away before its request was read (a page left, a call
            # cancelled): nothing went wrong here and nobody is left to answer. The access
            # line says 499, nginx's "client closed request".
            log.info("request.client_disconnected", method=scope["method"], path=scope["path"])
            if not response_started:
                await _send_json(send, CLIENT_CLOSED_REQUEST, CLIENT_CLOSED_BODY)
        except Exception:
            log.exception("request.unhandled_error", method=scope["method"], path=scope["path"])
            if not response_started:
                await _send_json(
                    send,
                    500,
                    error_body(500, "internal_error", "Something went wrong. Please try again."),
                )


def database_and_redis_checks(app: FastAPI) -> dict[str, ReadinessCheck]:
    """The readiness checks of a service with ``app.state.pool`` and ``app.state.redis``."""

    async def postgres() -> None:
        async with app.state.pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def redis() -> None:
        await app.state.redis.ping()

    return {"postgres": postgres, "redis": redis}


def _without_credentials(text: str) -> str:
    return _URL_CREDENTIALS.sub("***@", text)


async def _run_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    """``ok`` or ``down: <error class>`` per check; every failure is logged."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await check()
            results[name] = "ok"
        except Exception as exc:  # a readiness probe reports, it never raises
            results[name] = f"down: {type(exc).__name__}"
            log.warning(
                "readyz.check_failed",
                check=name,
                error_type=type(exc).__name__,
                error=_without_credentials(str(exc)),
            )
    return results


def frozen_after_startup(
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """``lifespan``, and once it has started, every object then alive put out of the cyclic
    garbage collector's reach (``gc.freeze``). The ~100,000 objects of the imports and the
    start-up live as long as the process, yet each full collection walked them all: 25-60 ms
    on the benchmark machine, a pause for every request in flight, which was most of the
    p99 of a cached read (BENCHMARKS.md). Reference counting still frees them if dropped."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app) if lifespan else nullcontext():
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()  # for a process that starts apps again: the tests

    return run


def create_app(
    *,
    title: str,
    max_body_bytes: int,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: Callable[[FastAPI], Mapping[str, ReadinessCheck]] | None = None,
    readiness_details: bool,
    version: str = __version__,
    openapi_url: str | None = "/openapi.json",
    docs_url: str | None = "/docs",
    public: bool = False,
) -> FastAPI:
    """A FastAPI app with our middleware, error envelope and ``/healthz`` + ``/readyz``.

    ``version`` (the release, :mod:`shared.version`) is in the OpenAPI document and in
    ``/healthz``'s body.

    ``readiness(app)`` returns the named checks ``/readyz`` runs; each raises when its
    dependency is down. ``/readyz`` lists each check's result only with
    ``readiness_details`` (``settings.show_readiness_details``); without, it says ready or
    not ready and nothing else, and the log names what failed. ``public``: the app faces
    the internet (the gateway; see :func:`shared.tracing.instrument_app`).
    """
    app = FastAPI(
        title=title,
        version=version,
        lifespan=frozen_after_startup(lifespan),
        openapi_url=openapi_url,
        docs_url=docs_url,
        redoc_url=None,
        # operationId: the route's name (its function's), which links refer to.
        generate_unique_id_function=lambda route: route.name,
        # Tracing is shared.tracing's (OpenTelemetry's FastAPI instrumentation) and metrics
        # are Prometheus's: FastAPI's own telemetry would only look up three OpenTelemetry
        # providers on every request to find it has nothing to do.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestGuardMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestLogMiddleware)
    tracing.instrument_app(app, public=public)  # outermost: its span covers the whole request

    # Prometheus, on the service's own port (the gateway does not route it anywhere).
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "success", "message": "Server is healthy!", "version": version}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results = await _run_checks(readiness(app) if readiness else {})
        ok = all(result == "ok" for result in results.values())
        if ok:
            body: dict[str, Any] = {"status": "success", "message": "Ready."}
        else:
            body = error_body(503, "not_ready", "A dependency is not available.")
        if readiness_details:
            body["data"] = {"checks": results}
        return JSONResponse(body, status_code=200 if ok else 503)

    return app

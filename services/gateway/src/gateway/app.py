from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from gateway.authentication import authenticate, open_token_states
from gateway.openapi import TITLE, MergedOpenAPI
from gateway.proxy import Proxy, unavailable
from gateway.routes import ROUTE_TABLE, ROUTES
from gateway.settings import Settings
from shared.errors import error_response
from shared.http import ReadinessCheck
from shared.http import create_app as create_service_app
from shared.redis import open_redis

POOL_SIZE = 100
PROBE_TIMEOUT_SECONDS = 3.0
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "X-Request-ID", "Last-Event-ID"]
# The web client: plain files, no build step. Its pages are the paths it routes itself.
STATIC_DIR = Path(__file__).resolve().parent / "static"
CLIENT_PAGES = ("/", "/login", "/success", "/cancel", "/c/{chatroom_id}")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# No hashed file names, so the browser revalidates every file (a 304 while unchanged).
CLIENT_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


class UpstreamNotReady(Exception):
    pass


class _CORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a rejected preflight answered in the JSON error envelope."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        return error_response(
            400,
            "cors_rejected",
            bytes(response.body).decode(),
            headers={k: v for k, v in response.headers.items() if k.lower() != "content-length"},
        )


async def gateway_endpoint(request: Request) -> Response:
    """Every request that is not the gateway's own: route, authenticate, forward."""
    route = ROUTE_TABLE.resolve(request.method, request.scope["path"])
    state = request.app.state
    proxy: Proxy = state.proxy
    if route.upstream not in proxy.urls:
        raise unavailable(route.upstream)
    if route.requires_auth:
        await authenticate(
            request.headers.get("authorization"), state.settings.jwt_secret, state.token_states
        )
    return await proxy.forward(request, route.upstream)


class _AnyMethod:
    """Wraps an endpoint as an ASGI app: Starlette routes every method to an app, where it
    would allow only GET for a plain function (the route table answers 404 and 405)."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _ClientFiles(StaticFiles):
    """``/static/...``: the web client's files (404/405 raised, so in the JSON envelope)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(CLIENT_HEADERS)
        return response


async def client_page(_: Request) -> FileResponse:
    """Every page of the web client is its index.html; the client renders the path."""
    headers = {**CLIENT_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=headers)


async def openapi_endpoint(request: Request) -> JSONResponse:
    return JSONResponse(await request.app.state.openapi.document())


async def docs_endpoint(_: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{TITLE} - Swagger UI")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE),
            trust_env=False,
            # One session serves every user: never keep one user's cookies for the next.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Pass bodies and headers through as they are: no decompression, and no
            # Accept/Accept-Encoding/User-Agent/Content-Type the client did not send.
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
        redis = open_redis(settings.redis_url)
        token_states_scope = AsyncExitStack()
        app.state.session = session
        app.state.redis = redis
        app.state.proxy = Proxy(session, settings)
        app.state.token_states = await token_states_scope.enter_async_context(
            open_token_states(redis, settings)
        )
        app.state.openapi = MergedOpenAPI(
            session, app.state.proxy.urls, settings.upstream_connect_timeout_seconds
        )
        try:
            yield
        finally:
            await token_states_scope.aclose()
            await session.close()
            await redis.aclose()

    def readiness(app: FastAPI) -> dict[str, ReadinessCheck]:
        session: aiohttp.ClientSession = app.state.session
        timeout = aiohttp.ClientTimeout(
            total=PROBE_TIMEOUT_SECONDS, sock_connect=settings.upstream_connect_timeout_seconds
        )

        async def redis() -> None:
            await app.state.redis.ping()

        def upstream(url: str) -> ReadinessCheck:
            async def check() -> None:
                async with session.get(f"{url}/readyz", timeout=timeout) as resp:
                    if resp.status != 200:
                        raise UpstreamNotReady(f"{url}/readyz answered {resp.status}")

            return check

        checks: dict[str, ReadinessCheck] = {"redis": redis}
        for name, url in app.state.proxy.urls.items():
            checks[name] = upstream(url)
        return checks

    app = create_service_app(
        title=TITLE,
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=readiness,
        openapi_url=None,  # the gateway serves the merged document instead
        docs_url=None,
    )
    app.state.settings = settings
    # CORS inside the request-id middleware, so preflights carry X-Request-ID too, and
    # outside the rest, so the 413s and 500s those produce carry the CORS headers.
    position = next(
        i for i, m in enumerate(app.user_middleware) if m.cls is CorrelationIdMiddleware
    )
    app.user_middleware.insert(
        position + 1,
        Middleware(
            _CORSMiddleware,
            allow_origins=[settings.client_url],
            allow_credentials=True,
            allow_methods=sorted({route.method for route in ROUTES}),
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
        ),
    )
    app.add_route("/openapi.json", openapi_endpoint, methods=["GET"], include_in_schema=False)
    app.add_route("/docs", docs_endpoint, methods=["GET"], include_in_schema=False)
    for page in CLIENT_PAGES:
        app.add_route(page, client_page, methods=["GET"], include_in_schema=False)
    app.router.routes.append(Mount("/static", _ClientFiles(directory=STATIC_DIR)))
    # Last: everything else, any method, goes through the route table.
    app.router.routes.append(Route("/{path:path}", _AnyMethod(gateway_endpoint)))
    return app

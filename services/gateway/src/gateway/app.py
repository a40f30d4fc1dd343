from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from gateway.authentication import authenticate, open_token_states
from gateway.openapi import TITLE, MergedOpenAPI
from gateway.proxy import Proxy, unavailable, upstream_session
from gateway.routes import PREFIX as API_PREFIX
from gateway.routes import ROUTE_TABLE, ROUTES
from gateway.settings import Settings
from gateway.share_page import share_page
from shared import tracing
from shared.errors import error_response
from shared.http import ReadinessCheck, RequestLogMiddleware, redact_path
from shared.http import create_app as create_service_app
from shared.metrics import UNMATCHED
from shared.redis import open_redis
from shared.revocation import CHECKED_HEADER

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
# /docs and /redoc: Swagger UI and ReDoc from the pinned fastapi-offline package's copies
# (swagger-ui-dist, redoc's standalone bundle) and our own pages and init script, all
# served by the gateway: no script from anywhere else.
SWAGGER_PAGE_DIR = Path(__file__).resolve().parent / "swagger"
REDOC_PAGE_DIR = Path(__file__).resolve().parent / "redoc"
DOCS_DIST_DIR = Path(str(files("fastapi_offline") / "static"))
DOCS_FILES = {
    "swagger-ui-bundle.js": DOCS_DIST_DIR / "swagger-ui-bundle.js",
    "swagger-ui.css": DOCS_DIST_DIR / "swagger-ui.css",
    "swagger-init.js": SWAGGER_PAGE_DIR / "swagger-init.js",
}
REDOC_FILES = {"redoc.standalone.js": DOCS_DIST_DIR / "redoc.standalone.js"}
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "font-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# ReDoc writes its styles into <style> elements (styled-components) and searches in a
# worker it starts from a blob: its scripts are still our own file only.
REDOC_CONTENT_SECURITY_POLICY = DOCS_CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'; worker-src blob:"
)


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
    request.scope["metrics_route"] = UNMATCHED
    route = ROUTE_TABLE.resolve(request.method, request.scope["path"])
    request.scope["metrics_route"] = route.path
    if route.secret_path:
        redact_path(request.scope, route.path)
    tracing.name_route(request.method, route.path)
    state = request.app.state
    proxy: Proxy = state.proxy
    if route.upstream not in proxy.urls:
        raise unavailable(route.upstream)
    checked: list[tuple[str, str]] = []
    if route.requires_auth:
        value = await authenticate(
            request.headers.get("authorization"), state.settings.jwt_secret, state.token_states
        )
        checked.append((CHECKED_HEADER, value))
    return await proxy.forward(request, route, checked)


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


def docs_page(page: Path, policy: str) -> Callable[[Request], Awaitable[FileResponse]]:
    """An API documentation page for the merged document, under ``policy``."""
    headers = {**CLIENT_HEADERS, "Content-Security-Policy": policy}

    async def endpoint(_: Request) -> FileResponse:
        return FileResponse(page, media_type="text/html", headers=headers)

    return endpoint


def docs_file(path: Path) -> Callable[[Request], Awaitable[FileResponse]]:
    async def endpoint(_: Request) -> FileResponse:
        return FileResponse(path, headers=CLIENT_HEADERS)

    return endpoint


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = upstream_session(settings.upstream_pool_size)
        stream_session = upstream_session(settings.stream_pool_size)
        redis = open_redis(settings.redis_url)
        token_states_scope = AsyncExitStack()
        app.state.session = session
        app.state.redis = redis
        app.state.proxy = Proxy(session, stream_session, settings)
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
            await stream_session.close()
            await session.close()
            await redis.aclose()

    def readiness(app: FastAPI) -> dict[str, ReadinessCheck]:
        """The gateway's own dependencies only: its Redis (token revocation). Not the
        upstreams, nor their databases: one of those down would take every gateway pod out
        of the load balancer at once, and the routes that still work with them. A request
        to a down upstream gets its own 503."""

        async def redis() -> None:
            await app.state.redis.ping()

        return {"redis": redis}

    app = create_service_app(
        title=TITLE,
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        readiness=readiness,
        readiness_details=settings.show_readiness_details,
        openapi_url=None,  # the gateway serves the merged document instead
        docs_url=None,
        public=True,
    )
    app.state.settings = settings
    # CORS inside the request-id middleware, so preflights carry X-Request-ID too, and
    # outside the rest, so the 413s and 500s those produce carry the CORS headers.
    position = next(
        i for i, (cls, _, _) in enumerate(app.user_middleware) if cls is RequestLogMiddleware
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
    docs = (
        ("/docs", SWAGGER_PAGE_DIR, DOCS_CONTENT_SECURITY_POLICY, DOCS_FILES),
        ("/redoc", REDOC_PAGE_DIR, REDOC_CONTENT_SECURITY_POLICY, REDOC_FILES),
    )
    for prefix, page_dir, policy, static in docs:
        endpoint = docs_page(page_dir / "index.html", policy)
        app.add_route(prefix, endpoint, methods=["GET"], include_in_schema=False)
        for name, path in static.items():
            app.add_route(
                f"{prefix}/static/{name}", docs_file(path), methods=["GET"], include_in_schema=False
            )
    for page in CLIENT_PAGES:
        app.add_route(page, client_page, methods=["GET"], include_in_schema=False)
    app.add_route("/s/{token}", share_page, methods=["GET"], include_in_schema=False)
    app.router.routes.append(Mount("/static", _ClientFiles(directory=STATIC_DIR)))
    # The API (every route of the table is under /api/v1) goes through the route table,
    # matched first: the gateway's own pages above are never under /api, and an API
    # request no longer tries each of them on the way. Last: everything else too, for
    # the table's 404 and 405.
    forward = _AnyMethod(gateway_endpoint)
    app.router.routes.insert(0, Route(API_PREFIX + "/{path:path}", forward))
    app.router.routes.append(Route("/{path:path}", forward))
    return app

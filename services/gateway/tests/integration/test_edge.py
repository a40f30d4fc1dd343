"""CORS, readiness and the merged OpenAPI document."""

from html.parser import HTMLParser
from typing import Any

import structlog

from shared.version import __version__


async def test_cors_preflight_from_the_client_origin_is_allowed(gateway, client_url) -> None:
    response = await gateway.options(
        "/api/v1/chatroom",
        headers={
            "Origin": client_url,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == client_url
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["x-request-id"]


async def test_cors_preflight_from_another_origin_is_refused(gateway) -> None:
    response = await gateway.options(
        "/api/v1/chatroom",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "cors_rejected"
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["x-request-id"]


async def test_cors_headers_on_responses_come_from_the_gateway_only(gateway, client_url) -> None:
    allowed = await gateway.post(
        "/api/v1/auth/login", json={}, headers={"Origin": client_url, "X-Fake": "hop"}
    )
    assert allowed.headers.get_list("access-control-allow-origin") == [client_url]
    exposed = allowed.headers["access-control-expose-headers"].lower()
    for name in ("x-request-id", "retry-after", "x-ratelimit-limit", "x-ratelimit-reset"):
        assert name in exposed
    other = await gateway.post(
        "/api/v1/auth/login", json={}, headers={"Origin": "https://evil.example", "X-Fake": "hop"}
    )
    assert "access-control-allow-origin" not in other.headers  # the upstream's "*" is dropped


async def test_readyz_checks_the_gateways_own_redis_only(gateway) -> None:
    response = await gateway.get("/readyz")
    assert response.status_code == 200
    assert response.json()["data"]["checks"] == {"redis": "ok"}


async def test_readyz_stays_ready_while_an_upstream_is_not_ready_or_down(
    gateway_factory, services, dead_url
) -> None:
    """An upstream's outage (its database, say) must not take every gateway pod out of
    the load balancer: what still works is served, what does not answers 503."""
    services["billing"].ready_status = 503
    async with gateway_factory(auth_url=dead_url) as gateway:
        ready = await gateway.get("/readyz")
        to_auth = await gateway.post("/api/v1/auth/login", json={})
        to_billing = await gateway.post("/api/v1/webhook/stripe", content=b"{}")
    assert ready.status_code == 200, ready.text
    assert ready.json()["data"]["checks"] == {"redis": "ok"}
    assert to_auth.status_code == 503
    assert to_billing.status_code == 201


async def test_readyz_is_503_when_the_gateways_redis_is_down(gateway_factory, dead_url) -> None:
    dead_redis = dead_url.replace("http://", "redis://") + "/0"
    async with gateway_factory(redis_url=dead_redis) as gateway:
        with structlog.testing.capture_logs() as logs:
            response = await gateway.get("/readyz")
    assert response.status_code == 503
    assert response.json()["data"]["checks"]["redis"].startswith("down")
    assert [e["check"] for e in logs if e["event"] == "readyz.check_failed"] == ["redis"]


async def test_readyz_names_no_internals_when_details_are_off(gateway_factory, dead_url) -> None:
    dead_redis = dead_url.replace("http://", "redis://") + "/0"
    async with gateway_factory(readyz_details=False, redis_url=dead_redis) as gateway:
        with structlog.testing.capture_logs() as logs:
            down = await gateway.get("/readyz")
    async with gateway_factory(readyz_details=False) as gateway:
        up = await gateway.get("/readyz")
    assert down.status_code == 503
    assert down.json() == {
        "status": "error",
        "code": "not_ready",
        "message": "A dependency is not available.",
    }
    assert down.headers["x-request-id"]
    assert up.status_code == 200
    assert up.json() == {"status": "success", "message": "Ready."}
    # The operator still learns which one, and why, from the log.
    failures = [e for e in logs if e["event"] == "readyz.check_failed"]
    assert [e["check"] for e in failures] == ["redis"]


async def test_readyz_names_no_internals_in_production_by_default(gateway_factory) -> None:
    async with gateway_factory(app_env="production") as gateway:
        hidden = await gateway.get("/readyz")
    async with gateway_factory(app_env="production", readyz_details=True) as gateway:
        shown = await gateway.get("/readyz")
    assert hidden.json() == {"status": "success", "message": "Ready."}
    assert set(shown.json()["data"]["checks"]) == {"redis"}


async def test_healthz(gateway) -> None:
    response = await gateway.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    assert response.json()["version"] == __version__


def service_doc(paths: dict[str, Any], error_schema: dict[str, Any]) -> dict[str, Any]:
    ok = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": {path: {method: {"responses": {"400": ok}}} for path, method in paths.items()},
        "components": {
            "schemas": {"Error": error_schema},
            "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def test_merged_openapi_has_every_available_service_and_names_the_missing(
    gateway, services
) -> None:
    services["auth"].openapi = service_doc(
        {"/api/v1/auth/signup": "post", "/internal/users/{user_id}/token-state": "get"},
        {"type": "object", "properties": {"message": {"type": "string"}}},
    )
    services["chat"].openapi = service_doc(
        {"/api/v1/chatroom/{chatroomId}": "get"},
        {"type": "object", "properties": {"detail": {"type": "string"}}},
    )
    services["billing"].openapi = None  # answers 500
    response = await gateway.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["info"] == {"title": "Gemini Backend API", "version": __version__}
    assert set(doc["paths"]) == {
        "/healthz",
        "/readyz",
        "/api/v1/auth/signup",
        "/api/v1/chatroom/{chatroomId}",
    }
    assert doc["x-unavailable-services"] == ["billing"]
    assert set(doc["components"]["schemas"]) == {"auth_Error", "chat_Error"}
    chat_op = doc["paths"]["/api/v1/chatroom/{chatroomId}"]["get"]
    assert chat_op["security"] == [{"HTTPBearer": []}]
    schema = chat_op["responses"]["400"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/chat_Error"}
    assert "security" not in doc["paths"]["/api/v1/auth/signup"]["post"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

    # Cached: a second request does not ask the services again.
    fetches = services["auth"].openapi_fetches
    assert (await gateway.get("/openapi.json")).json() == doc
    assert services["auth"].openapi_fetches == fetches == 1


async def test_docs_serve_swagger_ui_from_the_gateway_itself_under_a_strict_csp(gateway) -> None:
    response = await gateway.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = policy(response.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    page = ResourceLinks()
    page.feed(response.text)
    assert page.inline_scripts == 0
    assert page.scripts and page.stylesheets
    for url in page.scripts + page.stylesheets:
        assert url.startswith("/docs/static/"), url  # same origin, nothing from a CDN
        served = await gateway.get(url)
        assert served.status_code == 200, url
        kind = "javascript" if url.endswith(".js") else "css"
        assert kind in served.headers["content-type"], url
        assert served.headers["x-content-type-options"] == "nosniff"
    init = await gateway.get(page.scripts[-1])
    assert '"/openapi.json"' in init.text


async def test_redoc_serves_the_pinned_bundle_from_the_gateway_itself(gateway) -> None:
    response = await gateway.get("/redoc")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = policy(response.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]
    assert csp["default-src"] == ["'none'"]
    page = ResourceLinks()
    page.feed(response.text)
    assert page.inline_scripts == 0
    assert page.scripts == ["/redoc/static/redoc.standalone.js"]  # same origin, no CDN
    assert 'spec-url="/openapi.json"' in response.text
    bundle = await gateway.get(page.scripts[0])
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert bundle.headers["x-content-type-options"] == "nosniff"


async def test_docs_static_serves_only_its_own_files(gateway) -> None:
    for path in ("/docs/static/redoc.standalone.js", "/docs/static/../app.py", "/docs/static/"):
        response = await gateway.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


class ResourceLinks(HTMLParser):
    """The scripts and stylesheets a page loads, and how many inline scripts it has."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.inline_scripts = 0
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            if named.get("src"):
                self.scripts.append(named["src"] or "")
            else:
                self._in_inline_script = True
        elif tag == "link" and named.get("rel") == "stylesheet":
            self.stylesheets.append(named.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_inline_script:
            self.inline_scripts += 1
            self._in_inline_script = False

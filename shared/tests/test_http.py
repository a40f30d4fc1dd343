"""The error envelope and middleware every service gets from shared.http.create_app."""

import gc
from contextlib import asynccontextmanager

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from shared.errors import Conflict, RateLimited
from shared.http import create_app
from shared.testing.asgi import app_client
from shared.version import __version__


class Body(BaseModel):
    name: str = Field(max_length=5)


def make_app(ready: bool = True, readiness_details: bool = True) -> FastAPI:
    async def check() -> None:
        if not ready:
            raise ConnectionError("down: postgresql://app:hunter2@db.internal:5432/app")

    app = create_app(
        title="t",
        max_body_bytes=1024,
        readiness=lambda app: {"db": check},
        readiness_details=readiness_details,
    )

    @app.post("/items")
    async def create(body: Body) -> dict:
        return {"name": body.name}

    @app.get("/conflict")
    async def conflict() -> dict:
        raise Conflict("Taken.", code="taken")

    @app.get("/limited")
    async def limited() -> dict:
        raise RateLimited("Slow down.", retry_after=7)

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        return {"size": len(await request.body())}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
async def client():
    async with app_client(make_app()) as c:
        yield c


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert body["status"] == ("fail" if status < 500 else "error")
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


async def test_validation_error_is_400_with_field_errors(client):
    body = assert_envelope(
        await client.post("/items", json={"name": "much too long"}), 400, "validation_error"
    )
    assert body["errors"][0]["field"] == "name"


async def test_malformed_json_is_400(client):
    response = await client.post(
        "/items", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_envelope(response, 400, "invalid_json")


async def test_non_object_body_is_400(client):
    assert_envelope(await client.post("/items", json=[1, 2]), 400, "invalid_json")
    assert_envelope(await client.post("/items", content=b"name=x"), 400, "invalid_json")


async def test_missing_body_is_400(client):
    body = assert_envelope(await client.post("/items"), 400, "validation_error")
    assert body["errors"] == [{"field": "body", "message": "A JSON request body is required."}]


async def test_unknown_route_is_404(client):
    body = assert_envelope(await client.get("/nope"), 404, "not_found")
    assert body["message"] == "Cannot find GET /nope"


async def test_wrong_method_is_405_with_allow(client):
    response = await client.get("/items")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


async def test_declared_oversized_body_is_413(client):
    response = await client.post(
        "/items", content=b"x" * 2048, headers={"content-type": "application/json"}
    )
    assert_envelope(response, 413, "payload_too_large")


async def test_streamed_oversized_body_is_413(client):
    async def chunks():
        for _ in range(10):
            yield b"x" * 512

    response = await client.post("/items", content=chunks())
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "payload_too_large")


async def test_app_error_keeps_code_and_headers(client):
    assert_envelope(await client.get("/conflict"), 409, "taken")
    response = await client.get("/limited")
    body = assert_envelope(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "7"
    assert body["retryAfter"] == 7


async def test_unhandled_exception_is_500_envelope_without_internals(client):
    response = await client.get("/boom")
    body = assert_envelope(response, 500, "internal_error")
    assert "secret" not in response.text
    assert body["status"] == "error"


async def test_a_client_that_leaves_mid_body_is_logged_as_499_not_as_an_error():
    """The gateway reads each body itself: a client gone before its body came (a page
    left) is the client's doing, a 499 in the access log and no error with a traceback."""
    sent: list[dict] = []
    messages = iter(
        [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]
    )

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/raw",
        "raw_path": b"/raw",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    with structlog.testing.capture_logs() as logs:
        await make_app()(scope, receive, send)
    events = {entry["event"]: entry for entry in logs}
    assert "request.unhandled_error" not in events
    assert events["request.client_disconnected"]["path"] == "/raw"
    assert events["http.request"]["status"] == 499
    assert sent[0]["status"] == 499


async def test_client_request_id_is_kept_and_bad_one_replaced(client):
    response = await client.get("/nope", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    response = await client.get("/nope", headers={"x-request-id": "bad id with spaces"})
    assert response.headers["x-request-id"] != "bad id with spaces"


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {
        "status": "success",
        "message": "Server is healthy!",  # the Node service's body, which its clients read
        "version": __version__,
    }
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["data"]["checks"] == {"db": "ok"}


async def test_readyz_reports_a_dependency_down():
    async with app_client(make_app(ready=False)) as c:
        response = await c.get("/readyz")
    body = assert_envelope(response, 503, "not_ready")
    assert body["data"]["checks"]["db"].startswith("down")


async def test_readyz_without_details_names_nothing_and_logs_the_failure_without_secrets():
    async with app_client(make_app(ready=False, readiness_details=False)) as c:
        with structlog.testing.capture_logs() as logs:
            response = await c.get("/readyz")
    body = assert_envelope(response, 503, "not_ready")
    assert "data" not in body
    assert "db" not in response.text
    [failure] = [e for e in logs if e["event"] == "readyz.check_failed"]
    assert (failure["check"], failure["error_type"]) == ("db", "ConnectionError")
    assert "db.internal" in failure["error"]
    assert "hunter2" not in failure["error"]
    async with app_client(make_app(readiness_details=False)) as c:
        ready = await c.get("/readyz")
    assert ready.json() == {"status": "success", "message": "Ready."}


async def test_startup_puts_what_lives_on_out_of_the_collectors_reach():
    """After the service's own start-up, the objects then alive are frozen (gc.freeze): a
    full collection no longer walks them, so it no longer pauses requests for tens of ms."""
    started = []

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started.append(True)
        yield

    app = create_app(title="t", max_body_bytes=1024, lifespan=lifespan, readiness_details=False)
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            assert started  # the service's own start-up ran first
            frozen = gc.get_freeze_count()
            walked = sum(len(gc.get_objects(g)) for g in range(3))
            assert frozen > 0 and walked < frozen
    finally:
        gc.unfreeze()

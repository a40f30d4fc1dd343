"""The OpenAPI documents, built in process: each service's, and the gateway's merge of them
(what /openapi.json serves). They must say what the API really answers: errors in the
envelope with every status a route can return, the stream as server-sent events, examples
that are valid, the bearer scheme on exactly the routes that need a token.
tests/fuzz checks the same document against the running stack."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import schemathesis

from auth.app import create_app as auth_app
from auth.settings import Settings as AuthSettings
from billing.app import create_app as billing_app
from billing.settings import Settings as BillingSettings
from chat.app import create_app as chat_app
from chat.settings import Settings as ChatSettings
from gateway.openapi import GATEWAY_PATHS, merge_documents
from gateway.routes import ROUTE_TABLE, ROUTES

METHODS = ("get", "put", "post", "delete", "patch")
BODY_METHODS = ("post", "put", "patch")
API = "/api/v1"
# The routes that count attempts or prompts and answer 429 over the limit.
THROTTLED = {
    ("post", f"{API}/auth/{name}")
    for name in (
        "signup",
        "send-otp",
        "verify-otp",
        "login",
        "forgot-password",
        "reset-password",
        "change-password",
    )
} | {
    ("post", f"{API}/chatroom/{{chatroom_id}}/message"),
    ("post", f"{API}/chatroom/{{chatroom_id}}/message/{{reply_id}}/regenerate"),
    ("get", f"{API}/chatroom/{{chatroom_id}}/message/{{reply_id}}/stream"),
}
STREAM = f"{API}/chatroom/{{chatroom_id}}/message/{{reply_id}}/stream"


@pytest.fixture(scope="module")
def services(jwt_secret: str) -> dict[str, dict[str, Any]]:
    common: dict[str, Any] = {"_env_file": None, "jwt_secret": jwt_secret, "app_env": "test"}
    billing = BillingSettings(
        **common,
        stripe_api_base="http://127.0.0.1:9",
        stripe_webhook_secret="whsec_contract_Vb7Qm2Xs9Kd4Lp8Rz3Nw6Ty1Hc5Jf0Ga",
        stripe_pro_price_id="price_contract",
    )
    return {
        "auth": auth_app(AuthSettings(**common)).openapi(),
        "chat": chat_app(ChatSettings(**common)).openapi(),
        "billing": billing_app(billing).openapi(),
    }


@pytest.fixture(scope="module")
def merged(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return merge_documents(services, [])


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def validate(document: dict[str, Any], instance: Any, schema: dict[str, Any]) -> None:
    """``instance`` against ``schema``, whose ``$ref``s point into ``document``."""
    jsonschema.validate(instance, {**schema, "components": document["components"]})


def test_the_merged_document_is_valid_openapi_with_unique_operation_ids(merged) -> None:
    schemathesis.openapi.from_dict(merged).validate()
    ids = [operation["operationId"] for _, _, operation in operations(merged)]
    assert len(ids) == len(set(ids))


def test_no_operation_documents_fastapis_422(services, merged) -> None:
    for document in [*services.values(), merged]:
        for method, path, operation in operations(document):
            assert "422" not in operation["responses"], (method, path)
        schemas = document["components"]["schemas"]
        assert not {"HTTPValidationError", "ValidationError"} & set(schemas)


def test_every_operation_lists_the_errors_it_can_answer_in_the_envelope(merged) -> None:
    for method, path, operation in operations(merged):
        responses = operation["responses"]
        statuses = set(responses)
        label = f"{method.upper()} {path}"
        if operation.get("parameters") or "requestBody" in operation:
            assert "400" in statuses, label
        if "requestBody" in operation:
            assert "413" in statuses, label
        if operation.get("security"):
            assert "401" in statuses, label
        if (method, path) in THROTTLED:
            assert "429" in statuses, label
        if path not in GATEWAY_PATHS:
            assert {"502", "503", "504"} <= statuses, label
        for status in statuses:
            if int(status) < 400:
                continue
            [(media, content)] = responses[status]["content"].items()
            assert media == "application/json", (label, status)
            envelope = resolve(merged, content["schema"])
            assert envelope["required"] == ["status", "message", "code"], (label, status)
            assert set(envelope["properties"]) == {"status", "message", "code", "errors"}


def test_only_the_routes_that_need_a_token_have_the_bearer_scheme(services, merged) -> None:
    scheme = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for document in [*services.values(), merged]:
        assert document["components"]["securitySchemes"]["HTTPBearer"].items() >= scheme.items()
    documented = operations(merged)
    routed = {ROUTE_TABLE.lookup(method.upper(), path)[0] for method, path, _ in documented}
    assert routed == {None, *ROUTES}  # None: the gateway's own /healthz and /readyz
    for method, path, operation in documented:
        route, _ = ROUTE_TABLE.lookup(method.upper(), path)
        if route is not None and route.requires_auth:
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
        else:
            assert "security" not in operation, (method, path)
    public = {(m, p) for m, p, op in documented if "security" not in op}
    assert public == {
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", f"{API}/shared/{{token}}"),  # a share link's snapshot, read by its holder
        *(
            ("post", f"{API}/{name}")
            for name in (
                "auth/signup",
                "auth/send-otp",
                "auth/verify-otp",
                "auth/login",
                "auth/forgot-password",
                "auth/reset-password",
                "webhook/stripe",
            )
        ),
    }


def test_the_reply_stream_is_documented_as_server_sent_events(merged) -> None:
    ok = merged["paths"][STREAM]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream"}
    for event in ("token", "reset", "done"):
        assert f"`{event}`" in ok["description"]
    media = ok["content"]["text/event-stream"]
    events = [
        dict(line.split(": ", 1) for line in block.splitlines())
        for block in media["example"].split("\n\n")
        if block
    ]
    assert [event["event"] for event in events] == ["token", "token", "done"]
    for event in events:  # each event, and the JSON in its data, as schemathesis checks them
        validate(merged, event, media["schema"])
        [kind] = [
            s
            for s in media["schema"]["oneOf"]
            if s["properties"]["event"]["const"] == event["event"]
        ]
        validate(merged, json.loads(event["data"]), kind["properties"]["data"]["contentSchema"])


def examples_of(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """The examples of a request or response body: the media type's and its schema's."""
    found = [media["example"]] if "example" in media else []
    found += [example["value"] for example in media.get("examples", {}).values()]
    schema = media["schema"]
    for option in [schema, *schema.get("anyOf", [])]:  # anyOf: an optional body
        found += resolve(document, option).get("examples", [])
    return found


def test_every_body_has_examples_that_match_its_schema(merged) -> None:
    for method, path, operation in operations(merged):
        label = f"{method.upper()} {path}"
        bodies = []
        if method in BODY_METHODS and "requestBody" in operation:
            bodies.append(("request", operation["requestBody"]["content"]["application/json"]))
        for status, response in operation["responses"].items():
            json_body = response.get("content", {}).get("application/json")
            if status.startswith("2") and json_body:
                bodies.append((status, json_body))
        for what, media in bodies:
            found = examples_of(merged, media)
            assert found, f"{label} {what}: no example"
            for example in found:
                validate(merged, example, media["schema"])


def test_a_created_room_links_to_the_operations_on_its_id(merged) -> None:
    created = merged["paths"][f"{API}/chatroom"]["post"]["responses"]["201"]
    [example] = examples_of(merged, created["content"]["application/json"])
    by_id = {op["operationId"]: (method, path, op) for method, path, op in operations(merged)}
    linked = set()
    for link in created["links"].values():
        method, path, target = by_id[link["operationId"]]
        names = {p["name"] for p in target["parameters"] if p["in"] == "path"}
        assert link["parameters"] == {"chatroom_id": "$response.body#/data/chatroom/id"}
        assert names == {"chatroom_id"}
        assert example["data"]["chatroom"]["id"]  # what the pointer reads
        linked.add((method, path))
    room = f"{API}/chatroom/{{chatroom_id}}"
    assert linked == {("get", room), ("patch", room), ("delete", room), ("post", f"{room}/message")}

from typing import Any

from gateway.openapi import merge_documents
from shared.version import __version__


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def op(schema: str, **extra: Any) -> dict[str, Any]:
    content = {"application/json": {"schema": ref(schema)}}
    return {"responses": {"200": {"description": "OK", "content": content}}, **extra}


def doc(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


ERROR_A = {"type": "object", "properties": {"message": {"type": "string"}}}
ERROR_B = {"type": "object", "properties": {"detail": {"type": "string"}}}
SHARED = {"type": "object", "properties": {"x": {"type": "integer"}}}


def test_paths_of_every_service_are_merged_with_the_gateways_health_routes() -> None:
    merged = merge_documents(
        {
            "auth": doc({"/api/v1/auth/signup": {"post": op("Same")}}, {"Same": SHARED}),
            "chat": doc({"/api/v1/chatroom": {"get": op("Same")}}, {"Same": dict(SHARED)}),
        },
        ["billing"],
    )
    assert merged["info"] == {"title": "Gemini Backend API", "version": __version__}
    assert set(merged["paths"]) == {
        "/healthz",
        "/readyz",
        "/api/v1/auth/signup",
        "/api/v1/chatroom",
    }
    assert merged["components"]["schemas"] == {"Same": SHARED}  # identical: kept once
    assert merged["x-unavailable-services"] == ["billing"]
    assert merged["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_clashing_schemas_are_prefixed_and_their_refs_rewritten() -> None:
    merged = merge_documents(
        {
            "auth": doc({"/api/v1/auth/login": {"post": op("Error")}}, {"Error": ERROR_A}),
            "chat": doc({"/api/v1/usage": {"get": op("Error")}}, {"Error": ERROR_B}),
        },
        [],
    )
    schemas = merged["components"]["schemas"]
    assert schemas == {"auth_Error": ERROR_A, "chat_Error": ERROR_B}
    login = merged["paths"]["/api/v1/auth/login"]["post"]["responses"]["200"]
    usage = merged["paths"]["/api/v1/usage"]["get"]["responses"]["200"]
    assert login["content"]["application/json"]["schema"] == ref("auth_Error")
    assert usage["content"]["application/json"]["schema"] == ref("chat_Error")


def test_identical_schemas_referring_to_clashing_ones_are_renamed_too() -> None:
    wrapper = {"type": "object", "properties": {"error": ref("Error")}}
    merged = merge_documents(
        {
            "auth": doc({}, {"Error": ERROR_A, "Wrapper": wrapper}),
            "chat": doc({}, {"Error": ERROR_B, "Wrapper": wrapper}),
        },
        [],
    )
    schemas = merged["components"]["schemas"]
    assert schemas["auth_Wrapper"]["properties"]["error"] == ref("auth_Error")
    assert schemas["chat_Wrapper"]["properties"]["error"] == ref("chat_Error")
    assert "Wrapper" not in schemas


def test_only_routed_operations_are_kept_and_protected_ones_need_the_bearer() -> None:
    merged = merge_documents(
        {
            "auth": doc(
                {
                    "/internal/users/{user_id}/token-state": {"get": op("S")},
                    "/api/v1/auth/me": {"get": op("S"), "put": op("S")},
                    "/api/v1/chatroom": {"get": op("S")},  # routed, but to chat
                },
                {"S": SHARED},
            )
        },
        [],
    )
    assert set(merged["paths"]) == {"/healthz", "/readyz", "/api/v1/auth/me"}
    me = merged["paths"]["/api/v1/auth/me"]
    assert set(me) == {"get"}
    assert me["get"]["security"] == [{"HTTPBearer": []}]


def test_the_gateways_own_errors_are_documented_on_every_proxied_operation() -> None:
    documented_401 = {"description": "Unauthorized", "content": {}}
    me = op("S")
    me["responses"]["401"] = documented_401
    merged = merge_documents(
        {
            "auth": doc(
                {
                    "/api/v1/auth/me": {"get": me},
                    "/api/v1/auth/signup": {"post": op("S", requestBody={"content": {}})},
                },
                {"S": SHARED},
            )
        },
        [],
    )
    me_responses = merged["paths"]["/api/v1/auth/me"]["get"]["responses"]
    signup_responses = merged["paths"]["/api/v1/auth/signup"]["post"]["responses"]
    assert set(me_responses) == {"200", "401", "502", "503", "504"}
    assert me_responses["401"] == documented_401  # the service's own is kept
    assert set(signup_responses) == {"200", "413", "502", "503", "504"}
    envelope = signup_responses["413"]["content"]["application/json"]["schema"]
    assert envelope["required"] == ["status", "message", "code"]
    assert "$ref" not in str(envelope)
    assert merged["components"]["schemas"] == {"S": SHARED}
    assert set(merged["paths"]["/healthz"]["get"]["responses"]) == {"200"}

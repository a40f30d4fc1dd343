"""One OpenAPI document for the whole API, merged from every deployed service's own.

Services mount their routes at the public ``/api/v1/...`` paths, so their paths merge
unchanged. Only operations the route table actually routes are kept (a service's internal
routes never show up), and every route that needs a JWT at the gateway is marked with the
bearer scheme. Component schemas with the same name merge when they are identical; when
they differ, each service's copy is renamed ``<service>_<Name>`` and its ``$ref``s follow.
A service that is down is left out and named under ``x-unavailable-services``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any

import aiohttp
import structlog

from gateway.routes import ROUTE_TABLE
from shared.openapi import SHARED_ERRORS
from shared.schemas import ErrorBody
from shared.version import __version__

log = structlog.get_logger(__name__)

TITLE = "Gemini Backend API"
CACHE_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 5.0
BEARER_SCHEME = "HTTPBearer"
_SCHEMA_REF = "#/components/schemas/"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# What the gateway itself may answer for a proxied operation, whatever the service documents.
_GATEWAY_ERRORS = {
    "502": "The service sent an invalid response",
    "503": "The service is unavailable",
    "504": "The service did not answer in time",
}
_AUTH_ERROR = {"401": SHARED_ERRORS["401"]}
_BODY_ERROR = {"413": SHARED_ERRORS["413"]}


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return _inline_refs(defs[node["$ref"].removeprefix("#/$defs/")], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def _error_envelope() -> dict[str, Any]:
    """The error envelope's JSON schema, self-contained: no component to merge or clash."""
    schema = ErrorBody.model_json_schema()
    inlined: dict[str, Any] = _inline_refs(schema, schema.pop("$defs", {}))
    return inlined


ERROR_ENVELOPE = _error_envelope()


def _error(description: str) -> dict[str, Any]:
    """A response in the error envelope."""
    content = {"application/json": {"schema": copy.deepcopy(ERROR_ENVELOPE)}}
    return {"description": description, "content": content}


_OK = {"200": {"description": "OK"}}
GATEWAY_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "tags": ["health"],
            "summary": "Liveness",
            "operationId": "healthz",
            "responses": _OK,
        }
    },
    "/readyz": {
        "get": {
            "tags": ["health"],
            "summary": "Readiness: the gateway's own Redis answers (not the services behind it)",
            "operationId": "readyz",
            "responses": {**_OK, "503": _error("A dependency is not available")},
        }
    },
}


def _add_gateway_errors(operation: dict[str, Any], requires_auth: bool) -> None:
    """Document the gateway's own error answers on an operation that does not already."""
    errors = dict(_GATEWAY_ERRORS)
    if requires_auth:
        errors |= _AUTH_ERROR
    if "requestBody" in operation:
        errors |= _BODY_ERROR
    responses = operation.setdefault("responses", {})
    for status, description in errors.items():
        responses.setdefault(status, _error(description))


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    """A copy of ``node`` with ``$ref``s to renamed schemas pointing at their new names."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_SCHEMA_REF):
                name = value.removeprefix(_SCHEMA_REF)
                out[key] = _SCHEMA_REF + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _canonical(node: Any) -> str:
    return json.dumps(node, sort_keys=True)


def _schema_renames(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per service, the schemas to rename because another service defines them differently.

    Repeated until stable: two identical schemas that refer to a renamed one differ after
    all, since their references now point at different schemas.
    """
    schemas = {svc: doc.get("components", {}).get("schemas", {}) for svc, doc in docs.items()}
    owners: dict[str, list[str]] = {}
    for svc, defined in schemas.items():
        for name in defined:
            owners.setdefault(name, []).append(svc)
    clashing: set[str] = set()
    while True:
        renames = {
            svc: {n: f"{svc}_{n}" for n in defined if n in clashing}
            for svc, defined in schemas.items()
        }
        found = {
            name
            for name, svcs in owners.items()
            if len(svcs) > 1
            and name not in clashing
            and len({_canonical(_rewrite_refs(schemas[s][name], renames[s])) for s in svcs}) > 1
        }
        if not found:
            return renames
        clashing |= found


def merge_documents(docs: dict[str, dict[str, Any]], unavailable: list[str]) -> dict[str, Any]:
    """The merged document from each service's OpenAPI document (``docs`` by service name)."""
    paths: dict[str, Any] = copy.deepcopy(GATEWAY_PATHS)
    components: dict[str, dict[str, Any]] = {}
    renames = _schema_renames(docs)
    for svc, raw in docs.items():
        doc = _rewrite_refs(raw, renames[svc])
        for path, item in doc.get("paths", {}).items():
            operations = {}
            for method in _METHODS:
                if method not in item:
                    continue
                route, _ = ROUTE_TABLE.lookup(method.upper(), path)
                if route is None or route.upstream != svc:
                    continue
                operation = item[method]
                if route.requires_auth and not operation.get("security"):
                    operation["security"] = [{BEARER_SCHEME: []}]
                _add_gateway_errors(operation, route.requires_auth)
                operations[method] = operation
            if operations:
                common = {k: v for k, v in item.items() if k not in _METHODS}
                paths.setdefault(path, {}).update(common | operations)
        for section, entries in doc.get("components", {}).items():
            merged = components.setdefault(section, {})
            for name, value in entries.items():
                merged.setdefault(
                    renames[svc].get(name, name) if section == "schemas" else name, value
                )
    components.setdefault("securitySchemes", {}).setdefault(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": __version__},
        "paths": paths,
        "components": components,
        "x-unavailable-services": sorted(unavailable),
    }


class MergedOpenAPI:
    """The merged document, fetched from the services at most every ``CACHE_SECONDS``."""

    def __init__(
        self, session: aiohttp.ClientSession, urls: dict[str, str], connect_timeout: float
    ) -> None:
        self.session = session
        self.urls = urls
        self.timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS, connect=connect_timeout)
        self._lock = asyncio.Lock()
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            if self._document is None or time.monotonic() - self._fetched_at > CACHE_SECONDS:
                self._document = await self._build()
                self._fetched_at = time.monotonic()
            return self._document

    async def _build(self) -> dict[str, Any]:
        names = list(self.urls)
        results = await asyncio.gather(
            *(self._fetch(name) for name in names), return_exceptions=True
        )
        docs: dict[str, dict[str, Any]] = {}
        unavailable: list[str] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, dict):
                docs[name] = result
            else:
                log.warning("openapi.service_unavailable", upstream=name, error=repr(result))
                unavailable.append(name)
        return merge_documents(docs, unavailable)

    async def _fetch(self, name: str) -> dict[str, Any]:
        url = f"{self.urls[name]}/openapi.json"
        async with self.session.get(url, timeout=self.timeout) as resp:
            resp.raise_for_status()
            doc = await resp.json(content_type=None)
        if not isinstance(doc, dict):
            raise ValueError("not an OpenAPI document")
        return doc

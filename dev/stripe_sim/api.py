"""The Stripe API subset (`/v1/...`): each call checked against the parameters Stripe
accepts, answered from the store, recorded."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response

from dev.stripe_sim import params as P
from dev.stripe_sim.errors import StripeError, missing
from dev.stripe_sim.forms import fingerprint, get_bool, get_int, get_str, parse_form, parse_pairs
from dev.stripe_sim.state import SimState, StoredResponse
from dev.stripe_sim.store import API_VERSION, Change, Store, new_id

log = logging.getLogger("dev.stripe_sim")


@dataclass
class Call:
    """One API request, authenticated and parsed."""

    params: dict[str, Any]
    request_id: str
    idempotency_key: str | None
    base_url: str
    ignored: list[str] = field(default_factory=list)

    def check(
        self, allowed: frozenset[str], simulated: frozenset[str], rejected: Iterable[str] = ()
    ) -> None:
        """Stripe rejects unknown parameters. Real ones the simulator does not model are
        ignored (and logged), except those in `rejected`, which would change the outcome."""
        for name in self.params:
            if name not in allowed:
                raise StripeError(400, f"Received unknown parameter: {name}", param=name)
            if name in rejected:
                message = f"The simulator does not simulate the parameter {name}."
                raise StripeError(400, message, param=name)
            if name not in simulated:
                self.ignored.append(name)


@dataclass
class Result:
    object: dict[str, Any]
    changes: list[Change] = field(default_factory=list)


Handler = Callable[[Call], Result]
RouteHandler = Callable[..., Result]  # (call, **path parameters)


# API plumbing ------------------------------------------------------------------------------------


def _redact(key: str) -> str:
    prefix, _, rest = key.rpartition("_")
    if not prefix:
        return "*" * max(len(key) - 4, 0) + key[-4:]
    return f"{prefix}_{'*' * max(len(rest) - 4, 0)}{rest[-4:]}"


def _api_key(request: Request) -> str:
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details.",
        )
    scheme, _, value = header.partition(" ")
    key = value.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    elif scheme.lower() != "bearer":
        raise StripeError(401, "Invalid Authorization header: use Bearer auth with an API key.")
    if key.startswith(("sk_live_", "rk_live_")):
        raise StripeError(401, "The Stripe simulator accepts test-mode keys only (sk_test_...).")
    if not key.startswith(("sk_test_", "rk_test_")) or len(key) <= len("sk_test_"):
        raise StripeError(401, f"Invalid API Key provided: {_redact(key)}")
    return key


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, indent=2, ensure_ascii=False).encode()


def _expand(store: Store, obj: dict[str, Any], expand: Any) -> dict[str, Any]:
    """Replaces the ids at `expand` paths ("subscription", "subscription.latest_invoice",
    "data.customer" in lists) with the objects."""
    if expand is None:
        return obj
    paths = expand if isinstance(expand, list) else [expand]
    for path in paths:
        if not isinstance(path, str) or not path:
            raise StripeError(400, "Invalid array: expand", param="expand")
        _expand_path(store, obj, path.split("."), path)
    return obj


def _expand_path(store: Store, node: Any, parts: list[str], path: str) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict) and head == "data" and isinstance(node.get("data"), list):
        for item in node["data"]:
            _expand_path(store, item, rest, path)
        return
    if not isinstance(node, dict) or head not in node:
        raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
    value = node[head]
    if isinstance(value, str):
        found = store.find(value)
        if found is None:
            raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        value = node[head] = copy.deepcopy(found)
    if value is not None:
        _expand_path(store, value, rest, path)


def _page(objects: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """A list response over `objects` (newest first): limit, starting_after, ending_before."""
    limit = get_int(params, "limit", minimum=1)
    limit = 10 if limit is None else limit
    if limit > 100:
        raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
    ids = [o["id"] for o in objects]
    after, before = get_str(params, "starting_after"), get_str(params, "ending_before")
    if after is not None:
        if after not in ids:
            raise missing("object", after, "starting_after", 400)
        chunk = objects[ids.index(after) + 1 :]
        data, has_more = chunk[:limit], len(chunk) > limit
    elif before is not None:
        if before not in ids:
            raise missing("object", before, "ending_before", 400)
        chunk = objects[: ids.index(before)]
        data, has_more = chunk[-limit:], len(chunk) > limit
    else:
        data, has_more = objects[:limit], len(objects) > limit
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


async def _api(state: SimState, request: Request, handler: Handler) -> Response:
    """Auth, parsing, idempotency keys, expansion, events, errors: around one API handler."""
    request_id = new_id("req_", 14)
    version = request.headers.get("stripe-version", API_VERSION)
    headers = {"Request-Id": request_id, "Stripe-Version": version}
    method, path = request.method, request.url.path
    if version != API_VERSION and version not in state.warned_versions:
        state.warned_versions.add(version)
        log.warning("Stripe-Version %s requested; objects follow %s", version, API_VERSION)
    record: dict[str, Any] = {
        "at": time.time(),
        "method": method,
        "path": path,
        "params": None,
        "status": None,
        "request_id": request_id,
        "idempotency_key": None,
        "replayed": False,
        "stripe_version": request.headers.get("stripe-version"),
        "ignored_params": [],
    }
    state.requests.append(record)
    try:
        api_key = _api_key(request)
        raw = await request.body() if method == "POST" else request.url.query
        pairs = parse_pairs(raw)
        params = parse_form(pairs)
        record["params"] = params
        key = request.headers.get("idempotency-key") if method == "POST" else None
        record["idempotency_key"] = key
        if key is not None:
            replay = _replay(state, api_key, key, method, path, pairs)
            if replay is not None:
                record.update(status=replay.status, replayed=True)
                log.info("%s %s %d (idempotent replay)", method, path, replay.status)
                return Response(
                    replay.body,
                    replay.status,
                    media_type="application/json",
                    headers={
                        **headers,
                        "Idempotent-Replayed": "true",
                        "Original-Request": replay.request_id,
                    },
                )
        call = Call(params, request_id, key, state.public_url(request))
        result = handler(call)
        record["ignored_params"] = call.ignored
        if call.ignored:
            log.warning("%s %s: parameters not simulated, ignored: %s", method, path, call.ignored)
        state.emit(result.changes, request_id, key)  # done: announce it whatever comes next
        body = _json(_expand(state.store, copy.deepcopy(result.object), params.get("expand")))
        status = 200
        if key is not None:
            state.idempotency[(api_key, key)] = StoredResponse(
                method, path, fingerprint(pairs), status, body, request_id
            )
    except StripeError as exc:
        body, status = _json(exc.body(request_id)), exc.status
    record["status"] = status
    log.info("%s %s %d", method, path, status)
    return Response(body, status, media_type="application/json", headers=headers)


def _replay(
    state: SimState,
    api_key: str,
    key: str,
    method: str,
    path: str,
    pairs: list[tuple[str, str]],
) -> StoredResponse | None:
    if len(key) > 255:
        message = "Idempotency keys can be up to 255 characters long."
        raise StripeError(400, message, type="idempotency_error")
    stored = state.idempotency.get((api_key, key))
    if stored is None:
        return None
    if (stored.method, stored.path) != (method, path):
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used for the same endpoint they were "
            f"first used for ('{stored.method} {stored.path}' vs '{method} {path}'). Try using "
            f"a key other than '{key}' if you meant to execute a different request.",
            type="idempotency_error",
        )
    if stored.params != fingerprint(pairs):
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
            type="idempotency_error",
        )
    return stored


# Control bodies ----------------------------------------------------------------------------------


def _type_matches(event_type: str, pattern: str) -> bool:
    """Stripe's `type` filter: an exact type, or a prefix with `*` ("invoice.*")."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def router(state: SimState) -> APIRouter:
    """The `/v1/` routes, and a Stripe-shaped 404 for any other."""
    store = state.store
    router = APIRouter()

    # --- API ---------------------------------------------------------------------------------

    def route(method: str, path: str) -> Callable[[RouteHandler], RouteHandler]:
        def register(handler: RouteHandler) -> RouteHandler:
            async def endpoint(request: Request) -> Response:
                args = request.path_params
                return await _api(state, request, lambda call: handler(call, **args))

            router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)
            return handler

        return register

    @route("POST", "/v1/customers")
    def create_customer(call: Call) -> Result:
        call.check(P.CUSTOMER_ALLOWED, P.CUSTOMER_SIMULATED)
        return Result(store.create_customer(call.params))

    @route("GET", "/v1/customers/{cid}")
    def get_customer(call: Call, cid: str) -> Result:
        call.check(P.RETRIEVE, P.RETRIEVE)
        return Result(store.customer(cid))

    @route("POST", "/v1/customers/{cid}")
    def update_customer(call: Call, cid: str) -> Result:
        call.check(P.CUSTOMER_ALLOWED, P.CUSTOMER_SIMULATED)
        return Result(store.update_customer(cid, call.params))

    @route("POST", "/v1/prices")
    def create_price(call: Call) -> Result:
        call.check(P.PRICE_ALLOWED, P.PRICE_SIMULATED, P.PRICE_REJECTED)
        return Result(store.create_price(call.params))

    @route("GET", "/v1/prices/{pid}")
    def get_price(call: Call, pid: str) -> Result:
        call.check(P.RETRIEVE, P.RETRIEVE)
        return Result(store.price(pid))

    @route("POST", "/v1/checkout/sessions")
    def create_session(call: Call) -> Result:
        call.check(P.SESSION_ALLOWED, P.SESSION_SIMULATED)
        return Result(store.create_checkout_session(call.params, call.base_url))

    @route("GET", "/v1/checkout/sessions/{sid}")
    def get_session(call: Call, sid: str) -> Result:
        call.check(P.RETRIEVE, P.RETRIEVE)
        return Result(store.session(sid))

    @route("POST", "/v1/checkout/sessions/{sid}/expire")
    def expire_session(call: Call, sid: str) -> Result:
        call.check(P.RETRIEVE, P.RETRIEVE)
        session, changes = store.expire_checkout_session(sid)
        return Result(session, changes)

    @route("GET", "/v1/subscriptions")
    def list_subscriptions(call: Call) -> Result:
        call.check(P.SUBSCRIPTION_LIST_ALLOWED, P.SUBSCRIPTION_LIST_SIMULATED)
        customer, price = get_str(call.params, "customer"), get_str(call.params, "price")
        status = get_str(call.params, "status")
        subs = [
            s
            for s in reversed(store.subscriptions.values())
            if (customer is None or s["customer"] == customer)
            and (price is None or any(i["price"]["id"] == price for i in s["items"]["data"]))
            and (s["status"] == status if status not in (None, "all") else True)
            and (status is not None or s["status"] != "canceled")
        ]
        return Result(_page(subs, call.params, "/v1/subscriptions"))

    @route("GET", "/v1/subscriptions/{sid}")
    def get_subscription(call: Call, sid: str) -> Result:
        call.check(P.RETRIEVE, P.RETRIEVE)
        return Result(store.subscription(sid))

    @route("POST", "/v1/subscriptions/{sid}")
    def update_subscription(call: Call, sid: str) -> Result:
        call.check(
            P.SUBSCRIPTION_UPDATE_ALLOWED,
            P.SUBSCRIPTION_UPDATE_SIMULATED,
            P.SUBSCRIPTION_UPDATE_REJECTED,
        )
        changes = store.update_subscription(sid, call.params)
        return Result(store.subscription(sid), changes)

    @route("DELETE", "/v1/subscriptions/{sid}")
    def cancel_subscription(call: Call, sid: str) -> Result:
        call.check(P.SUBSCRIPTION_CANCEL_ALLOWED, P.SUBSCRIPTION_CANCEL_SIMULATED)
        details = call.params.get("cancellation_details") or {}
        if not isinstance(details, dict):
            message = "Invalid hash: cancellation_details"
            raise StripeError(400, message, param="cancellation_details")
        given = {k: get_str(details, k) for k in ("comment", "feedback") if k in details}
        if store.subscription(sid)["status"] == "canceled":
            # Stripe's answer to cancelling a canceled subscription (it "is akin to being
            # deleted already", though it can still be retrieved): 404 resource_missing.
            raise missing("subscription", sid)
        changes = store.cancel_now(sid)
        store.subscriptions[sid]["cancellation_details"].update(given)
        return Result(store.subscription(sid), changes)

    @route("GET", "/v1/invoices/{iid}")
    def get_invoice(call: Call, iid: str) -> Result:
        call.check(P.RETRIEVE, P.RETRIEVE)
        return Result(store.invoice(iid))

    @route("POST", "/v1/billing_portal/sessions")
    def create_portal_session(call: Call) -> Result:
        call.check(P.PORTAL_ALLOWED, P.PORTAL_SIMULATED)
        return Result(store.create_portal_session(call.params, call.base_url))

    @route("GET", "/v1/events")
    def list_events(call: Call) -> Result:
        call.check(P.EVENT_LIST_ALLOWED, P.EVENT_LIST_SIMULATED)
        types = call.params.get("types")
        wanted = set(types) if isinstance(types, list) else None
        one = get_str(call.params, "type")
        success = get_bool(call.params, "delivery_success")
        records = [
            r
            for r in reversed(store.events.values())
            if (wanted is None or r.type in wanted)
            and (one is None or _type_matches(r.type, one))
            and (success is None or r.delivered == success)
        ]
        return Result(_page([r.payload for r in records], call.params, "/v1/events"))

    @route("GET", "/v1/events/{eid}")
    def get_event(call: Call, eid: str) -> Result:
        call.check(P.RETRIEVE, P.RETRIEVE)
        if eid not in store.events:
            raise missing("event", eid)
        return Result(store.events[eid].payload)

    async def unrecognized(request: Request, path: str) -> Response:
        def fail(call: Call) -> Result:
            raise StripeError(
                404,
                f"Unrecognized request URL ({request.method}: /v1/{path}). The Stripe "
                "simulator serves only the subset the product uses (see dev/stripe_sim).",
            )

        return await _api(state, request, fail)

    router.add_api_route(
        "/v1/{path:path}",
        unrecognized,
        methods=["GET", "POST", "DELETE"],
        include_in_schema=False,
    )

    return router

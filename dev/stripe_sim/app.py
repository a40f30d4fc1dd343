"""The simulator's HTTP app: the Stripe API subset, hosted pages and `/_sim/` controls."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import dataclasses
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from dev.stripe_sim import params as P
from dev.stripe_sim.errors import StripeError, missing
from dev.stripe_sim.forms import fingerprint, get_bool, get_int, get_str, parse_form, parse_pairs
from dev.stripe_sim.pages import checkout_page, message_page, portal_page
from dev.stripe_sim.store import API_VERSION, Change, EventRecord, PriceSpec, Store, new_id
from dev.stripe_sim.webhooks import Deliverer, Target

log = logging.getLogger("dev.stripe_sim")

DEFAULT_PORT = 12111
DEFAULT_SECRET = "whsec_stripe_sim_dev_secret"
MAX_RECORDS = 1000


@dataclass(frozen=True)
class SimConfig:
    prices: tuple[PriceSpec, ...] = (PriceSpec("price_pro_monthly"),)
    webhook_url: str | None = None  # None: events are recorded, not sent
    webhook_secret: str = DEFAULT_SECRET
    public_url: str | None = None  # base of checkout/portal URLs; None: the request's base URL
    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)  # waits before each retry of a failure
    delivery_timeout: float = 10.0  # seconds for one webhook POST
    pay_wait_seconds: float = 10.0  # Pay awaits first delivery attempts up to this long
    period_days: int = 30

    def __post_init__(self) -> None:
        if not self.prices:
            raise ValueError("give at least one price")
        if len({p.id for p in self.prices}) != len(self.prices):
            raise ValueError("price ids must be unique")
        if any(d < 0 for d in self.retry_delays) or self.pay_wait_seconds < 0:
            raise ValueError("delays must not be negative")
        if self.delivery_timeout <= 0 or self.period_days < 1:
            raise ValueError("delivery_timeout and period_days must be positive")
        if not self.webhook_secret:
            raise ValueError("the webhook secret must not be empty")
        for url in (self.webhook_url, self.public_url):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url!r}")

    def public(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["prices"] = [p.id for p in self.prices]
        return out


@dataclass
class _Stored:
    """The first response to an idempotency key, replayed for the same request."""

    method: str
    path: str
    params: list[tuple[str, str]]
    status: int
    body: bytes
    request_id: str
    at: float = field(default_factory=time.time)


class SimState:
    """Everything `/_sim/reset` puts back: config, objects, events, idempotency keys, hold."""

    def __init__(self, config: SimConfig) -> None:
        self.startup = config
        self.config = config
        self.store = Store(config.prices, config.period_days)
        self.deliverer = Deliverer(self.target)
        self.reset()

    def reset(self) -> None:
        self.config = self.startup
        self.store.reset()
        self.deliverer.reset()
        self.idempotency: dict[tuple[str, str], _Stored] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self.warned_versions: set[str] = set()

    def target(self) -> Target:
        c = self.config
        return Target(c.webhook_url, c.webhook_secret, c.retry_delays, c.delivery_timeout)

    def emit(
        self,
        changes: list[Change],
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[list[EventRecord], asyncio.Task[Any] | None]:
        """Makes the changes events and starts delivering them (unless held)."""
        records = self.store.publish(
            changes,
            pending_webhooks=1 if self.config.webhook_url else 0,
            request_id=request_id,
            idempotency_key=idempotency_key,
        )
        return records, self.deliverer.dispatch(records)

    def public_url(self, request: Request) -> str:
        return (self.config.public_url or str(request.base_url)).rstrip("/")


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
            state.idempotency[(api_key, key)] = _Stored(
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
) -> _Stored | None:
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


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CancelBody(_Body):
    at_period_end: bool


class FailBody(_Body):
    advance_period: bool = True


class ExpireBody(_Body):
    seconds_ago: int = Field(default=1, ge=0)


class RedeliverBody(_Body):
    times: int = Field(default=1, ge=1, le=100)
    concurrent: bool = False
    retry: bool = False  # a failed attempt is retried in the background, as on creation


class DeliverBody(_Body):
    events: list[str] | None = None  # None: every event never attempted (e.g. held ones)
    order: Literal["as_given", "shuffled", "reversed"] = "as_given"
    seed: int | None = None
    retry: bool = False


class HoldBody(_Body):
    hold: bool


class ConfigBody(_Body):
    webhook_url: str | None = None
    webhook_secret: str | None = None
    public_url: str | None = None
    retry_delays: list[float] | None = None
    delivery_timeout: float | None = None
    pay_wait_seconds: float | None = None


def _error_response(exc: StripeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _sim_error(status: int, message: str) -> JSONResponse:
    return _error_response(StripeError(status, message))


# The app -----------------------------------------------------------------------------------------


def create_app(config: SimConfig | None = None) -> FastAPI:
    """The simulator as an ASGI app; its state is `app.state.sim` (a SimState)."""
    state = SimState(config or SimConfig())
    store = state.store

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.deliverer.reset()  # stop retries in flight

    app = FastAPI(title="Stripe API simulator", version="1", lifespan=lifespan)
    app.state.sim = state

    @app.middleware("http")
    async def expire_due_sessions(
        request: Request, call_next: Callable[[Request], Any]
    ) -> Response:
        """Sessions whose `expires_at` has come are expired (with their event) before any
        request sees them, as if Stripe had done it on time."""
        state.emit(store.expire_due_sessions())
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # --- API ---------------------------------------------------------------------------------

    def route(method: str, path: str) -> Callable[[RouteHandler], RouteHandler]:
        def register(handler: RouteHandler) -> RouteHandler:
            async def endpoint(request: Request) -> Response:
                args = request.path_params
                return await _api(state, request, lambda call: handler(call, **args))

            app.add_api_route(path, endpoint, methods=[method], include_in_schema=False)
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

    app.add_api_route(
        "/v1/{path:path}",
        unrecognized,
        methods=["GET", "POST", "DELETE"],
        include_in_schema=False,
    )

    # --- Hosted pages ------------------------------------------------------------------------

    def success_href(session: dict[str, Any]) -> str | None:
        url = session["success_url"]
        return url.replace("{CHECKOUT_SESSION_ID}", session["id"]) if url else None

    @app.get("/checkout/{sid}", response_class=HTMLResponse)
    async def checkout(sid: str) -> HTMLResponse:
        session = store.sessions.get(sid)
        if session is None:
            return HTMLResponse(message_page("Not found", f"No Checkout Session {sid}."), 404)
        items = [(store.prices[pid], q) for pid, q in store.session_items[sid]]
        html = checkout_page(session, items, f"/checkout/{sid}/pay", success_href(session))
        return HTMLResponse(html)

    @app.post("/checkout/{sid}/pay")
    async def pay(sid: str) -> Response:
        try:
            changes = store.pay_checkout_session(sid)
        except StripeError as exc:
            return HTMLResponse(message_page("Cannot pay", exc.message), exc.status)
        records, task = state.emit(changes)
        if task is not None and state.config.pay_wait_seconds > 0:
            # The success page then sees the webhooks' effect; a slow receiver only delays it.
            await asyncio.wait({task}, timeout=state.config.pay_wait_seconds)
        if records:
            log.info("checkout %s paid: %s", sid, ", ".join(r.type for r in records))
        session = store.sessions.get(sid)  # gone if /_sim/reset came while we waited
        href = success_href(session) if session else None
        if href is None:
            return HTMLResponse(message_page("Payment complete", "You can close this page."))
        return RedirectResponse(href, status_code=303)

    def portal_or_none(bid: str) -> dict[str, Any] | None:
        return store.portal_sessions.get(bid)

    @app.get("/portal/{bid}", response_class=HTMLResponse)
    async def portal(bid: str) -> HTMLResponse:
        session = portal_or_none(bid)
        if session is None:
            return HTMLResponse(message_page("Not found", f"No portal session {bid}."), 404)
        subs = [s for s in store.subscriptions.values() if s["customer"] == session["customer"]]
        return HTMLResponse(portal_page(session, list(reversed(subs))))

    async def portal_action(
        request: Request, bid: str, sub_id: str, act: Callable[[dict[str, Any]], list[Change]]
    ) -> Response:
        session = portal_or_none(bid)
        sub = store.subscriptions.get(sub_id)
        if session is None or sub is None or sub["customer"] != session["customer"]:
            return HTMLResponse(message_page("Not found", "No such subscription here."), 404)
        try:
            form = parse_form(parse_pairs(await request.body()))
            state.emit(act(form))
        except StripeError as exc:
            return HTMLResponse(message_page("Cannot change it", exc.message), exc.status)
        return RedirectResponse(session["return_url"] or f"/portal/{bid}", status_code=303)

    @app.post("/portal/{bid}/subscriptions/{sub_id}/cancel")
    async def portal_cancel(request: Request, bid: str, sub_id: str) -> Response:
        def act(form: dict[str, Any]) -> list[Change]:
            at_end = get_bool(form, "at_period_end")
            if at_end is None:
                raise StripeError(400, "Missing at_period_end (true or false).")
            if store.subscriptions[sub_id]["status"] == "canceled":
                return []  # a second click: nothing more to do
            if at_end:
                return store.set_cancel_at_period_end(sub_id, True)
            return store.cancel_now(sub_id)

        return await portal_action(request, bid, sub_id, act)

    @app.post("/portal/{bid}/subscriptions/{sub_id}/resume")
    async def portal_resume(request: Request, bid: str, sub_id: str) -> Response:
        return await portal_action(
            request, bid, sub_id, lambda _: store.set_cancel_at_period_end(sub_id, False)
        )

    # --- Controls ------------------------------------------------------------------------------

    def control(changes_of: Callable[[], list[Change]], sid: str) -> Response:
        try:
            records, _ = state.emit(changes_of())
        except StripeError as exc:
            return _error_response(exc)
        return JSONResponse(
            {
                "subscription": store.subscriptions[sid],
                "events": [{"id": r.id, "type": r.type} for r in records],
            }
        )

    @app.post("/_sim/subscriptions/{sid}/renew")
    async def renew(sid: str) -> Response:
        return control(lambda: store.renew(sid), sid)

    @app.post("/_sim/subscriptions/{sid}/fail_payment")
    async def fail_payment(sid: str, body: FailBody | None = None) -> Response:
        advance = (body or FailBody()).advance_period
        return control(lambda: store.fail_payment(sid, advance_period=advance), sid)

    @app.post("/_sim/subscriptions/{sid}/cancel")
    async def cancel(sid: str, body: CancelBody) -> Response:
        if body.at_period_end:
            return control(lambda: store.set_cancel_at_period_end(sid, True), sid)
        return control(lambda: store.cancel_now(sid), sid)

    @app.post("/_sim/subscriptions/{sid}/expire")
    async def expire(sid: str, body: ExpireBody | None = None) -> Response:
        seconds_ago = (body or ExpireBody()).seconds_ago

        def move() -> list[Change]:
            store.expire(sid, seconds_ago)
            return []  # no event: the period has ended, the renewal has not come (yet)

        return control(move, sid)

    @app.post("/_sim/checkout/sessions/{sid}/expire")
    async def expire_session_now(sid: str, body: ExpireBody | None = None) -> Response:
        seconds_ago = (body or ExpireBody()).seconds_ago
        try:
            store.move_session_expiry(sid, seconds_ago)
        except StripeError as exc:
            return _error_response(exc)
        records, _ = state.emit(store.expire_due_sessions())
        return JSONResponse(
            {
                "checkout_session": store.sessions[sid],
                "events": [{"id": r.id, "type": r.type} for r in records],
            }
        )

    @app.get("/_sim/events")
    async def events(type: str | None = None) -> dict[str, Any]:
        records = [r for r in store.events.values() if type is None or r.type == type]
        return {"events": [r.summary() for r in records], "held": state.deliverer.held}

    @app.get("/_sim/events/{eid}")
    async def event(eid: str) -> Response:
        if eid not in store.events:
            return _error_response(missing("event", eid))
        return JSONResponse(store.events[eid].summary())

    def no_url() -> JSONResponse | None:
        if state.config.webhook_url:
            return None
        return _sim_error(400, "No webhook URL is configured: set one with POST /_sim/config.")

    @app.post("/_sim/events/{eid}/deliver")
    async def redeliver(eid: str, body: RedeliverBody | None = None) -> Response:
        body = body or RedeliverBody()
        if eid not in store.events:
            return _error_response(missing("event", eid))
        if (error := no_url()) is not None:
            return error
        record = store.events[eid]
        if body.concurrent:
            attempts = await asyncio.gather(
                *(
                    state.deliverer.deliver(record, "manual", retry=body.retry)
                    for _ in range(body.times)
                )
            )
        else:
            attempts = [
                await state.deliverer.deliver(record, "manual", retry=body.retry)
                for _ in range(body.times)
            ]
        return JSONResponse({"id": eid, "type": record.type, "attempts": list(attempts)})

    @app.post("/_sim/deliver")
    async def deliver(body: DeliverBody | None = None) -> Response:
        body = body or DeliverBody()
        if body.events is None:
            ids = [r.id for r in store.events.values() if r.started == 0]
        else:
            ids = list(body.events)
            unknown = [i for i in ids if i not in store.events]
            if unknown:
                return _sim_error(404, f"No such events: {', '.join(unknown)}")
        if (error := no_url()) is not None:
            return error
        if body.order == "reversed":
            ids.reverse()
        elif body.order == "shuffled":
            random.Random(body.seed).shuffle(ids)
        results = []
        for eid in ids:  # one at a time, so the receiver sees exactly this order
            record = store.events[eid]
            attempt = await state.deliverer.deliver(record, "manual", retry=body.retry)
            results.append({"id": eid, "type": record.type, **attempt})
        return JSONResponse({"order": ids, "results": results})

    @app.post("/_sim/hold")
    async def hold(body: HoldBody) -> dict[str, bool]:
        state.deliverer.held = body.hold
        return {"held": body.hold}

    @app.get("/_sim/config")
    async def get_config() -> dict[str, Any]:
        return state.config.public()

    @app.post("/_sim/config")
    async def set_config(body: ConfigBody) -> Response:
        changes = body.model_dump(exclude_unset=True)
        if "retry_delays" in changes:
            changes["retry_delays"] = tuple(changes["retry_delays"] or ())
        try:
            state.config = dataclasses.replace(state.config, **changes)
        except (ValueError, TypeError) as exc:
            return _sim_error(400, str(exc))
        return JSONResponse(state.config.public())

    @app.get("/_sim/state")
    async def get_state() -> dict[str, Any]:
        return {**store.snapshot(), "held": state.deliverer.held}

    @app.get("/_sim/requests")
    async def requests() -> dict[str, list[dict[str, Any]]]:
        return {"requests": list(state.requests)}

    @app.post("/_sim/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return app


def _type_matches(event_type: str, pattern: str) -> bool:
    """Stripe's `type` filter: an exact type, or a prefix with `*` ("invoice.*")."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern

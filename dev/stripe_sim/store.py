"""In-memory Stripe state: objects in the shapes of API version 2026-10-28.endive.

Objects are kept as the JSON dicts the API returns. The operations run without awaiting, so
under asyncio each one is atomic. An operation that Stripe would announce returns its events
as `Change`s (type, a snapshot of the object, previous_attributes); `Store.publish` makes
them events.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from dev.stripe_sim.errors import StripeError, missing
from dev.stripe_sim.forms import get_int, get_metadata, get_str, merge_metadata

API_VERSION = "2026-10-28.endive"
DAY = 86_400
_ALNUM = string.ascii_letters + string.digits
_INTERVALS = ("day", "week", "month", "year")
_CURRENCY_SIGNS = {"usd": "$", "eur": "€", "gbp": "£", "inr": "₹"}


def new_id(prefix: str, length: int = 24) -> str:
    """An id shaped like Stripe's: `sub_1Q...` (a prefix, then random letters and digits)."""
    return prefix + "1" + "".join(secrets.choice(_ALNUM) for _ in range(length - 1))


def money(amount: int, currency: str) -> str:
    sign = _CURRENCY_SIGNS.get(currency, currency.upper() + " ")
    return f"{sign}{amount / 100:,.2f}"


@dataclass(frozen=True)
class PriceSpec:
    """A recurring price the simulator knows: `--price ID[:AMOUNT[:CURRENCY[:INTERVAL]]]`."""

    id: str
    unit_amount: int = 1000
    currency: str = "usd"
    interval: str = "month"

    def __post_init__(self) -> None:
        if not self.id or any(c in self.id for c in " /?#"):
            raise ValueError(f"bad price id {self.id!r}")
        if self.unit_amount < 0:
            raise ValueError("a price's amount must not be negative")
        if self.interval not in _INTERVALS:
            raise ValueError(f"a price's interval is one of {', '.join(_INTERVALS)}")

    @classmethod
    def parse(cls, text: str) -> PriceSpec:
        parts = text.strip().split(":")
        if len(parts) > 4:
            raise ValueError(f"bad price {text!r}: use ID[:AMOUNT[:CURRENCY[:INTERVAL]]]")
        try:
            amount = int(parts[1]) if len(parts) > 1 and parts[1] else 1000
        except ValueError:
            raise ValueError(f"bad price {text!r}: the amount is in cents, an integer") from None
        currency = parts[2].lower() if len(parts) > 2 and parts[2] else "usd"
        interval = parts[3] if len(parts) > 3 and parts[3] else "month"
        return cls(parts[0], amount, currency, interval)


class Change(NamedTuple):
    """An event to publish: its type, the object as it is now, and what changed."""

    type: str
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


@dataclass
class EventRecord:
    """An event and every delivery attempt of it (for `/_sim/events`)."""

    id: str
    type: str
    payload: dict[str, Any]
    body: bytes  # the exact bytes sent (and signed) on every delivery
    attempts: list[dict[str, Any]] = field(default_factory=list)  # in order of completion
    started: int = 0  # attempts begun (numbers them, finished or not)

    @property
    def delivered(self) -> bool:
        return any(a["ok"] for a in self.attempts)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "created": self.payload["created"],
            "object_id": self.payload["data"]["object"].get("id"),
            "delivered": self.delivered,
            "in_flight": self.started - len(self.attempts),
            "attempts": list(self.attempts),
            "payload": self.payload,
        }


def _time() -> int:
    return int(time.time())


class Store:
    """Customers, prices, Checkout and portal sessions, subscriptions, invoices and events."""

    def __init__(
        self,
        prices: Sequence[PriceSpec],
        period_days: int = 30,
        clock: Callable[[], int] = _time,
    ) -> None:
        self.price_specs = tuple(prices)
        self.period_seconds = period_days * DAY
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        now = self.clock()
        self.customers: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {p.id: _price(p, now) for p in self.price_specs}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.session_items: dict[str, list[tuple[str, int]]] = {}
        self.session_sub_metadata: dict[str, dict[str, str]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.events: dict[str, EventRecord] = {}

    # Lookups ---------------------------------------------------------------------------------

    def customer(self, cid: str, param: str = "id", status: int = 404) -> dict[str, Any]:
        if cid not in self.customers:
            raise missing("customer", cid, param, status)
        return self.customers[cid]

    def price(self, pid: str, param: str = "id", status: int = 404) -> dict[str, Any]:
        if pid not in self.prices:
            raise missing("price", pid, param, status)
        return self.prices[pid]

    def session(self, sid: str) -> dict[str, Any]:
        if sid not in self.sessions:
            raise missing("checkout.session", sid)
        return self.sessions[sid]

    def subscription(self, sid: str) -> dict[str, Any]:
        if sid not in self.subscriptions:
            raise missing("subscription", sid)
        return self.subscriptions[sid]

    def invoice(self, iid: str) -> dict[str, Any]:
        if iid not in self.invoices:
            raise missing("invoice", iid)
        return self.invoices[iid]

    def find(self, object_id: str) -> dict[str, Any] | None:
        """Any object by id (for `expand`)."""
        for table in (
            self.customers,
            self.prices,
            self.sessions,
            self.subscriptions,
            self.invoices,
            self.portal_sessions,
        ):
            if object_id in table:
                return table[object_id]
        return None

    # Customers ---------------------------------------------------------------------------------

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        customer = {
            "id": new_id("cus_", 14),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": now,
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": get_str(params, "description"),
            "discount": None,
            "email": get_str(params, "email"),
            "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": merge_metadata({}, get_metadata(params)),
            "name": get_str(params, "name"),
            "next_invoice_sequence": 1,
            "phone": get_str(params, "phone"),
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        self.customers[customer["id"]] = customer
        return customer

    def update_customer(self, cid: str, params: dict[str, Any]) -> dict[str, Any]:
        customer = self.customer(cid)
        for name in ("email", "name", "phone", "description"):
            if name in params:
                customer[name] = get_str(params, name)
        customer["metadata"] = merge_metadata(customer["metadata"], get_metadata(params))
        return customer

    # Checkout ----------------------------------------------------------------------------------

    def create_checkout_session(self, params: dict[str, Any], public_url: str) -> dict[str, Any]:
        mode = get_str(params, "mode", required=True)
        if mode not in ("payment", "setup", "subscription"):
            message = "Invalid mode: must be one of payment, setup, or subscription"
            raise StripeError(400, message, param="mode")
        if mode != "subscription":
            raise StripeError(400, "The simulator supports mode=subscription only.", param="mode")
        if params.get("ui_mode") not in (None, "hosted"):
            raise StripeError(400, "The simulator supports ui_mode=hosted only.", param="ui_mode")
        customer_id = get_str(params, "customer")
        customer_email = get_str(params, "customer_email")
        if customer_id:
            self.customer(customer_id, param="customer", status=400)
            if customer_email:
                message = "You may only specify one of these parameters: customer, customer_email."
                raise StripeError(400, message, param="customer_email")
        items = self._line_items(params)
        reference = get_str(params, "client_reference_id")
        if reference is not None and len(reference) > 200:
            message = "client_reference_id can have up to 200 characters."
            raise StripeError(400, message, param="client_reference_id")
        subscription_data = params.get("subscription_data") or {}
        if not isinstance(subscription_data, dict):
            raise StripeError(400, "Invalid hash: subscription_data", param="subscription_data")
        sub_metadata = merge_metadata({}, get_metadata(subscription_data))
        now = self.clock()
        expires_at = get_int(params, "expires_at") or now + DAY
        if not now + 30 * 60 <= expires_at <= now + DAY:
            message = "expires_at must be between 30 minutes and 24 hours from now."
            raise StripeError(400, message, param="expires_at")
        prices = [self.prices[pid] for pid, _ in items]
        amount = sum(p["unit_amount"] * q for p, (_, q) in zip(prices, items, strict=True))
        sid = new_id("cs_test_", 58)
        session = {
            "id": sid,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": amount,
            "amount_total": amount,
            "billing_address_collection": None,
            "cancel_url": get_str(params, "cancel_url"),
            "client_reference_id": reference,
            "created": now,
            "currency": prices[0]["currency"],
            "customer": customer_id,
            "customer_creation": None if customer_id else "always",
            "customer_details": {"email": customer_email} if customer_email else None,
            "customer_email": customer_email,
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": None,
            "livemode": False,
            "locale": None,
            "metadata": merge_metadata({}, get_metadata(params)),
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": get_str(params, "success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{public_url.rstrip('/')}/checkout/{sid}",
        }
        self.sessions[sid] = session
        self.session_items[sid] = items
        self.session_sub_metadata[sid] = sub_metadata
        return session

    # Prices ------------------------------------------------------------------------------------

    def create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        """A recurring price, as the Dashboard or `POST /v1/prices` makes one."""
        currency = get_str(params, "currency", required=True)
        assert currency is not None
        unit_amount = get_int(params, "unit_amount", minimum=0)
        if unit_amount is None:
            raise StripeError(400, "Missing required param: unit_amount.", param="unit_amount")
        recurring = params.get("recurring")
        if not isinstance(recurring, dict):
            message = "The simulator knows recurring prices only: give recurring[interval]."
            raise StripeError(400, message, param="recurring")
        interval = get_str(recurring, "interval", required=True)
        if interval not in _INTERVALS:
            message = f"Invalid recurring[interval]: must be one of {', '.join(_INTERVALS)}"
            raise StripeError(400, message, param="recurring[interval]")
        product = get_str(params, "product")
        product_data = params.get("product_data")
        if (product is None) == (product_data is None):
            message = "You must specify either `product` or `product_data` when creating a price."
            raise StripeError(400, message, param="product")
        if product_data is not None:
            if not isinstance(product_data, dict):
                raise StripeError(400, "Invalid hash: product_data", param="product_data")
            get_str(product_data, "name", required=True)
            product = new_id("prod_", 14)
        price = _price(PriceSpec(new_id("price_"), unit_amount, currency.lower(), interval), 0)
        price.update(
            created=self.clock(),
            product=product,
            nickname=get_str(params, "nickname"),
            lookup_key=get_str(params, "lookup_key"),
            metadata=merge_metadata({}, get_metadata(params)),
        )
        self.prices[price["id"]] = price
        return price

    def _line_items(self, params: dict[str, Any]) -> list[tuple[str, int]]:
        line_items = params.get("line_items")
        if line_items in (None, ""):
            message = "Missing required param: line_items. In subscription mode you must give one."
            raise StripeError(400, message, param="line_items")
        if not isinstance(line_items, list):
            raise StripeError(400, "Invalid array: line_items", param="line_items")
        items: list[tuple[str, int]] = []
        for i, item in enumerate(line_items):
            where = f"line_items[{i}]"
            if not isinstance(item, dict):
                raise StripeError(400, f"Invalid hash: {where}", param=where)
            if "price_data" in item:
                message = "The simulator knows configured prices only, not price_data."
                raise StripeError(400, message, param=f"{where}[price_data]")
            pid = get_str(item, "price")
            if pid is None:
                raise StripeError(
                    400, f"Missing required param: {where}[price].", param=f"{where}[price]"
                )
            price = self.price(pid, param=f"{where}[price]", status=400)
            quantity = get_int(item, "quantity", minimum=1, param=f"{where}[quantity]")
            if items and price["currency"] != self.prices[items[0][0]]["currency"]:
                message = "All line items must have the same currency."
                raise StripeError(400, message, param=f"{where}[price]")
            items.append((pid, 1 if quantity is None else quantity))
        if not items:
            raise StripeError(400, "Missing required param: line_items.", param="line_items")
        return items

    def expire_due_sessions(self) -> list[Change]:
        """Stripe expires an open session at its `expires_at` (then sends
        checkout.session.expired); the simulator does so before serving each request."""
        now = self.clock()
        due = [
            sid
            for sid, session in self.sessions.items()
            if session["status"] == "open" and session["expires_at"] <= now
        ]
        return [change for sid in due for change in self.expire_checkout_session(sid)[1]]

    def move_session_expiry(self, sid: str, seconds_ago: int) -> dict[str, Any]:
        """Moves an open session's `expires_at` that many seconds into the past (for "time
        is up" tests); `expire_due_sessions` then expires it."""
        session = self.session(sid)
        if session["status"] != "open":
            message = f"Only an open Checkout Session can expire; {sid} is {session['status']}."
            raise StripeError(400, message)
        session["expires_at"] = self.clock() - seconds_ago
        return session

    def expire_checkout_session(self, sid: str) -> tuple[dict[str, Any], list[Change]]:
        session = self.session(sid)
        if session["status"] != "open":
            message = (
                "Only Checkout Sessions with a status of `open` can be expired; "
                f"{sid} is {session['status']}."
            )
            raise StripeError(400, message)
        session.update(status="expired", url=None)
        return session, [Change("checkout.session.expired", session)]

    def pay_checkout_session(self, sid: str) -> list[Change]:
        """Completes an open session: a customer if needed, an active subscription, a paid
        invoice. A completed session pays nothing again (no changes)."""
        session = self.session(sid)
        if session["status"] == "complete":
            return []
        if session["status"] == "expired":
            raise StripeError(400, "This Checkout Session has expired.")
        if session["customer"]:
            customer = self.customers[session["customer"]]
        else:
            customer = self.create_customer({"email": session["customer_email"]})
        now = self.clock()
        sub = self._new_subscription(
            customer, self.session_items[sid], self.session_sub_metadata[sid], now
        )
        invoice = self._new_invoice(
            sub, "subscription_create", usage=(now, now), paid=True, created=now
        )
        sub["latest_invoice"] = invoice["id"]
        session.update(
            customer=customer["id"],
            customer_details={
                "address": None,
                "email": customer["email"],
                "name": customer["name"],
                "phone": customer["phone"],
                "tax_exempt": "none",
                "tax_ids": [],
            },
            invoice=invoice["id"],
            payment_status="paid",
            status="complete",
            subscription=sub["id"],
            url=None,
        )
        return [
            Change("customer.subscription.created", sub),
            Change("checkout.session.completed", session),
            Change("invoice.paid", invoice),
        ]

    # Portal ------------------------------------------------------------------------------------

    def create_portal_session(self, params: dict[str, Any], public_url: str) -> dict[str, Any]:
        cid = get_str(params, "customer", required=True)
        assert cid is not None
        self.customer(cid, param="customer", status=400)
        if params.get("flow_data") is not None:
            message = "The simulator does not simulate portal flows (flow_data)."
            raise StripeError(400, message, param="flow_data")
        bid = new_id("bps_", 24)
        portal = {
            "id": bid,
            "object": "billing_portal.session",
            "configuration": "bpc_simulator",
            "created": self.clock(),
            "customer": cid,
            "flow": None,
            "livemode": False,
            "locale": None,
            "on_behalf_of": None,
            "return_url": get_str(params, "return_url"),
            "url": f"{public_url.rstrip('/')}/portal/{bid}",
        }
        self.portal_sessions[bid] = portal
        return portal

    # Subscriptions -----------------------------------------------------------------------------

    def _new_subscription(
        self,
        customer: dict[str, Any],
        items: list[tuple[str, int]],
        metadata: dict[str, str],
        now: int,
    ) -> dict[str, Any]:
        sid = new_id("sub_")
        prices = [self.prices[pid] for pid, _ in items]
        data = [
            {
                "id": new_id("si_", 14),
                "object": "subscription_item",
                "billing_thresholds": None,
                "created": now,
                "current_period_end": now + self.period_seconds,
                "current_period_start": now,
                "discounts": [],
                "metadata": {},
                "price": copy.deepcopy(price),
                "quantity": quantity,
                "subscription": sid,
                "tax_rates": [],
            }
            for price, (_, quantity) in zip(prices, items, strict=True)
        ]
        sub = {
            "id": sid,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": now,
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": now,
            "currency": prices[0]["currency"],
            "customer": customer["id"],
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {
                "object": "list",
                "data": data,
                "has_more": False,
                "total_count": len(data),
                "url": f"/v1/subscription_items?subscription={sid}",
            },
            "latest_invoice": None,
            "livemode": False,
            "metadata": dict(metadata),
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": now,
            "status": "active",
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        }
        customer["currency"] = sub["currency"]
        self.subscriptions[sid] = sub
        return sub

    def _new_invoice(
        self,
        sub: dict[str, Any],
        billing_reason: str,
        *,
        usage: tuple[int, int],
        paid: bool,
        created: int,
    ) -> dict[str, Any]:
        """An invoice for the subscription's current period. As Stripe does, the invoice's own
        period_start/end is the usage period before it (equal instants for the first invoice);
        the service period is on each line (`lines.data[].period`)."""
        customer = self.customers[sub["customer"]]
        iid = new_id("in_")
        lines = []
        for item in sub["items"]["data"]:
            price, quantity = item["price"], item["quantity"]
            amount = price["unit_amount"] * quantity
            each = money(price["unit_amount"], price["currency"])
            lines.append(
                {
                    "id": new_id("il_", 24),
                    "object": "line_item",
                    "amount": amount,
                    "currency": price["currency"],
                    "description": f"{quantity} × {price['nickname'] or price['id']} (at {each} / "
                    f"{price['recurring']['interval']})",
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": iid,
                    "livemode": False,
                    "metadata": dict(sub["metadata"]),
                    "parent": {
                        "invoice_item_details": None,
                        "subscription_item_details": {
                            "invoice_item": None,
                            "proration": False,
                            "proration_details": {"credited_items": None},
                            "subscription": sub["id"],
                            "subscription_item": item["id"],
                        },
                        "type": "subscription_item_details",
                    },
                    "period": {
                        "end": item["current_period_end"],
                        "start": item["current_period_start"],
                    },
                    "pretax_credit_amounts": [],
                    "pricing": {
                        "price_details": {"price": price["id"], "product": price["product"]},
                        "type": "price_details",
                        "unit_amount_decimal": str(price["unit_amount"]),
                    },
                    "quantity": quantity,
                    "subscription": sub["id"],
                    "taxes": [],
                }
            )
        total = sum(line["amount"] for line in lines)
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        invoice = {
            "id": iid,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Stripe Simulator",
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": total if paid else 0,
            "amount_remaining": 0 if paid else total,
            "attempt_count": 1,
            "attempted": True,
            "auto_advance": not paid,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "created": created,
            "currency": sub["currency"],
            "customer": customer["id"],
            "customer_email": customer["email"],
            "customer_name": customer["name"],
            "customer_phone": customer["phone"],
            "description": None,
            "discounts": [],
            "due_date": None,
            "effective_at": created,
            "ending_balance": 0,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{iid}/lines",
            },
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": None if paid else created + 3 * DAY,
            "number": number,
            "parent": {
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(sub["metadata"]),
                    "subscription": sub["id"],
                },
                "type": "subscription_details",
            },
            "period_end": usage[1],
            "period_start": usage[0],
            "starting_balance": 0,
            "status": "paid" if paid else "open",
            "status_transitions": {
                "finalized_at": created,
                "marked_uncollectible_at": None,
                "paid_at": created if paid else None,
                "voided_at": None,
            },
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "total": total,
            "total_discount_amounts": [],
            "total_excluding_tax": total,
            "total_taxes": [],
            "webhooks_delivered_at": None,
        }
        self.invoices[iid] = invoice
        return invoice

    def set_cancel_at_period_end(self, sid: str, value: bool) -> list[Change]:
        """Schedules (or unschedules) the end at the period's end; no change: no event."""
        sub = self.subscription(sid)
        _not_canceled(sub)
        if sub["cancel_at_period_end"] == value:
            return []
        previous = {
            "cancel_at": sub["cancel_at"],
            "cancel_at_period_end": sub["cancel_at_period_end"],
            "canceled_at": sub["canceled_at"],
            "cancellation_details": {"reason": sub["cancellation_details"]["reason"]},
        }
        sub["cancel_at_period_end"] = value
        sub["cancel_at"] = period(sub)[1] if value else None
        sub["canceled_at"] = self.clock() if value else None
        sub["cancellation_details"]["reason"] = "cancellation_requested" if value else None
        return [Change("customer.subscription.updated", sub, previous)]

    def update_subscription(self, sid: str, params: dict[str, Any]) -> list[Change]:
        """cancel_at_period_end, metadata and cancellation_details[comment|feedback]."""
        sub = self.subscription(sid)
        cancel = params.get("cancel_at_period_end")
        if sub["status"] == "canceled" and cancel is not None:
            message = (
                "A canceled subscription can only update its cancellation_details and metadata."
            )
            raise StripeError(400, message)
        if cancel is not None and cancel not in ("true", "false"):
            raise StripeError(400, f"Invalid boolean: {cancel}", param="cancel_at_period_end")
        metadata = merge_metadata(sub["metadata"], get_metadata(params))
        details = params.get("cancellation_details") or {}
        if not isinstance(details, dict):
            message = "Invalid hash: cancellation_details"
            raise StripeError(400, message, param="cancellation_details")
        new_details = {
            key: get_str(details, key) for key in ("comment", "feedback") if key in details
        }
        # Validated: now change.
        previous: dict[str, Any] = {}
        if cancel is not None:
            for change in self.set_cancel_at_period_end(sid, cancel == "true"):
                previous.update(change.previous_attributes or {})
        if metadata != sub["metadata"]:
            previous["metadata"] = sub["metadata"]
            sub["metadata"] = metadata
        for key, value in new_details.items():
            if value != sub["cancellation_details"][key]:
                previous.setdefault("cancellation_details", {})[key] = sub["cancellation_details"][
                    key
                ]
                sub["cancellation_details"][key] = value
        if not previous:
            return []
        return [Change("customer.subscription.updated", sub, previous)]

    def cancel_now(self, sid: str, *, at: int | None = None) -> list[Change]:
        """Ends the subscription now (or at `at`): status canceled, event `...deleted`."""
        sub = self.subscription(sid)
        _not_canceled(sub)
        now = self.clock()
        sub.update(
            status="canceled",
            ended_at=now if at is None else at,
            canceled_at=sub["canceled_at"] or now,
            cancel_at=None if at is None else sub["cancel_at"],
        )
        sub["cancellation_details"]["reason"] = "cancellation_requested"
        return [Change("customer.subscription.deleted", sub)]

    def renew(self, sid: str) -> list[Change]:
        """The period's end comes: the next period is paid for. An open (failed) invoice is
        paid instead, without moving the period again. A subscription set to cancel at the
        period end ends there instead, as Stripe does."""
        sub = self.subscription(sid)
        _not_canceled(sub)
        if sub["cancel_at_period_end"]:
            return self.cancel_now(sid, at=period(sub)[1])
        latest = self.invoices.get(sub["latest_invoice"] or "")
        now = self.clock()
        if latest is not None and latest["status"] == "open":
            latest.update(
                status="paid",
                amount_paid=latest["amount_due"],
                amount_remaining=0,
                attempt_count=latest["attempt_count"] + 1,
                auto_advance=False,
                next_payment_attempt=None,
            )
            latest["status_transitions"]["paid_at"] = now
            changes = [Change("invoice.paid", latest)]
            self.customers[sub["customer"]]["delinquent"] = False
            if sub["status"] != "active":
                previous = {"status": sub["status"]}
                sub["status"] = "active"
                changes.append(Change("customer.subscription.updated", sub, previous))
            return changes
        previous = self._advance(sub)
        invoice = self._new_invoice(
            sub, "subscription_cycle", usage=previous["_usage"], paid=True, created=now
        )
        del previous["_usage"]
        previous["latest_invoice"] = sub["latest_invoice"]
        sub["latest_invoice"] = invoice["id"]
        if sub["status"] != "active":
            previous["status"] = sub["status"]
            sub["status"] = "active"
        return [
            Change("customer.subscription.updated", sub, previous),
            Change("invoice.paid", invoice),
        ]

    def fail_payment(self, sid: str, *, advance_period: bool = True) -> list[Change]:
        """A renewal payment fails. With the latest invoice already open, that invoice's
        attempt fails again (attempt_count + 1). Otherwise the period moves on (Stripe starts
        the next period even when its invoice is unpaid) unless `advance_period` is false,
        and a new open invoice is created. The subscription becomes past_due."""
        sub = self.subscription(sid)
        _not_canceled(sub)
        now = self.clock()
        latest = self.invoices.get(sub["latest_invoice"] or "")
        previous: dict[str, Any] = {}
        if latest is not None and latest["status"] == "open":
            latest["attempt_count"] += 1
            latest["next_payment_attempt"] = now + 3 * DAY
            invoice = latest
        else:
            if advance_period:
                previous = self._advance(sub)
                usage = previous.pop("_usage")
            else:
                usage = (period(sub)[0], period(sub)[0])
            invoice = self._new_invoice(
                sub, "subscription_cycle", usage=usage, paid=False, created=now
            )
            previous["latest_invoice"] = sub["latest_invoice"]
            sub["latest_invoice"] = invoice["id"]
        self.customers[sub["customer"]]["delinquent"] = True
        changes = [Change("invoice.payment_failed", invoice)]
        if sub["status"] != "past_due":
            previous["status"] = sub["status"]
            sub["status"] = "past_due"
        if previous:
            changes.append(Change("customer.subscription.updated", sub, previous))
        return changes

    def _advance(self, sub: dict[str, Any]) -> dict[str, Any]:
        """Moves every item one period on; returns previous_attributes (and `_usage`)."""
        old_items = copy.deepcopy(sub["items"]["data"])
        start, end = period(sub)
        for item in sub["items"]["data"]:
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += self.period_seconds
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = period(sub)[1]
        return {"items": {"data": old_items}, "_usage": (start, end)}

    def expire(self, sid: str, seconds_ago: int = 1) -> dict[str, Any]:
        """Moves the current period into the past: it ended `seconds_ago` seconds ago."""
        sub = self.subscription(sid)
        end = self.clock() - seconds_ago
        for item in sub["items"]["data"]:
            item["current_period_end"] = end
            item["current_period_start"] = end - self.period_seconds
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = end
        return sub

    # Events ----------------------------------------------------------------------------------

    def publish(
        self,
        changes: Sequence[Change],
        *,
        pending_webhooks: int,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[EventRecord]:
        records = []
        for change in changes:
            data: dict[str, Any] = {"object": copy.deepcopy(change.object)}
            if change.previous_attributes is not None:
                data["previous_attributes"] = copy.deepcopy(change.previous_attributes)
            payload = {
                "id": new_id("evt_"),
                "object": "event",
                "api_version": API_VERSION,
                "created": self.clock(),
                "data": data,
                "livemode": False,
                "pending_webhooks": pending_webhooks,
                "request": {"id": request_id, "idempotency_key": idempotency_key},
                "type": change.type,
            }
            # Stripe sends pretty-printed JSON; a receiver must verify these exact bytes.
            body = json.dumps(payload, indent=2, ensure_ascii=False).encode()
            record = EventRecord(payload["id"], change.type, payload, body)
            self.events[record.id] = record
            records.append(record)
        return records

    def snapshot(self) -> dict[str, Any]:
        return {
            "customers": list(self.customers.values()),
            "prices": list(self.prices.values()),
            "checkout_sessions": list(self.sessions.values()),
            "portal_sessions": list(self.portal_sessions.values()),
            "subscriptions": list(self.subscriptions.values()),
            "invoices": list(self.invoices.values()),
        }


def period(sub: dict[str, Any]) -> tuple[int, int]:
    """The current period, which API 2026-10-28.endive has on the items, not the subscription."""
    item = sub["items"]["data"][0]
    return item["current_period_start"], item["current_period_end"]


def _not_canceled(sub: dict[str, Any]) -> None:
    if sub["status"] == "canceled":
        message = (
            f"The subscription {sub['id']} is canceled; a canceled subscription cannot change."
        )
        raise StripeError(400, message)


def _price(spec: PriceSpec, now: int) -> dict[str, Any]:
    return {
        "id": spec.id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": now,
        "currency": spec.currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": spec.id,
        "product": "prod_" + spec.id.removeprefix("price_"),
        "recurring": {
            "interval": spec.interval,
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": spec.unit_amount,
        "unit_amount_decimal": str(spec.unit_amount),
    }

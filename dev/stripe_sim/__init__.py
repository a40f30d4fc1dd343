"""A local Stripe API simulator that the real stripe-python SDK talks to.

Serve it with `python -m dev.stripe_sim --port 12111 --webhook-url http://127.0.0.1:8003/webhook
--webhook-secret whsec_...`, or in-process with `create_app(SimConfig(...))`, and point the SDK
at it: `stripe.StripeClient("sk_test_anything", base_addresses={"api": "http://127.0.0.1:12111"})`.
State is in memory. Objects follow API version 2026-10-28.endive (what stripe 16.1.0 sends): the
billing period is on the items (`items.data[0].current_period_start/end`), an invoice names its
subscription at `parent.subscription_details.subscription`, and `customer.subscription.updated`
events carry `data.previous_attributes`.

API (form-encoded bodies, `Authorization: Bearer sk_test_...`, errors in Stripe's shape; every
POST honours `Idempotency-Key`: the same key and parameters replay the first answer with
`Idempotent-Replayed: true`, other parameters or another endpoint give 400 idempotency_error;
error answers are not stored, so a corrected retry with the same key goes through):
  POST /v1/customers, GET|POST /v1/customers/{id}, POST /v1/prices (recurring; product or
  product_data), GET /v1/prices/{id}
  POST /v1/checkout/sessions (mode=subscription; expires_at 30 min to 24 h ahead, default
  24 h), GET /v1/checkout/sessions/{id}, POST /v1/checkout/sessions/{id}/expire
  An open session expires at its expires_at, as at Stripe: before serving any request the
  simulator expires those due (status expired, url null) and sends checkout.session.expired.
  GET /v1/subscriptions, GET|POST|DELETE /v1/subscriptions/{id} (POST: cancel_at_period_end,
  metadata, cancellation_details), GET /v1/invoices/{id}, POST /v1/billing_portal/sessions,
  GET /v1/events, GET /v1/events/{id}. `expand[]` works on id fields.
Unknown parameters are rejected as Stripe does; real ones not simulated are ignored (logged, and
listed per request in /_sim/requests), except those that would change the outcome (400).

Pages (plain HTML forms; work with curl too):
  GET /checkout/{cs_id}, POST /checkout/{cs_id}/pay   pay: a customer (if the session had
      none), an active subscription (period now..now+30 days, metadata from subscription_data),
      a paid invoice; events customer.subscription.created, checkout.session.completed,
      invoice.paid; then 303 to success_url with {CHECKOUT_SESSION_ID} filled in. Paying again
      only redirects. Pay waits (up to pay_wait_seconds) for those events' first delivery
      attempts, so the success page sees their effect; retries happen later, in the background.
  GET /portal/{bps_id}   the customer's subscriptions, with "Cancel at period end", "Cancel now"
      (and "Don't cancel" once scheduled); POST /portal/{bps_id}/subscriptions/{sub}/cancel
      (form at_period_end=true|false) and .../resume; then 303 to return_url.

Controls (JSON bodies; answers {"subscription": ..., "events": [{"id", "type"}]}):
  POST /_sim/subscriptions/{id}/renew          the next period is paid: items move on one period,
      a paid invoice; customer.subscription.updated (previous_attributes: items, latest_invoice,
      status if it was past_due) then invoice.paid. With an open (failed) invoice: that invoice
      is paid, the period stays. With cancel_at_period_end: the subscription ends at the period
      end instead (customer.subscription.deleted), as at Stripe.
  POST /_sim/subscriptions/{id}/fail_payment   {"advance_period": true}  the renewal payment
      fails: items move on one period (unless false) and an open invoice (attempt_count 1); with
      an open invoice already, its attempt_count + 1. Status past_due. invoice.payment_failed,
      then customer.subscription.updated (previous_attributes status: active, ...) when the
      subscription changed.
  POST /_sim/subscriptions/{id}/cancel   {"at_period_end": true|false}   as the portal does
  POST /_sim/subscriptions/{id}/expire   {"seconds_ago": 1}   the current period ended that long
      ago (no event; for "period ended" tests)
  POST /_sim/checkout/sessions/{id}/expire   {"seconds_ago": 1}   an open session's expires_at
      was that long ago: it expires now (checkout.session.expired); answers
      {"checkout_session": ..., "events": [...]}
  GET  /_sim/events[?type=T]   {"events": [...], "held"}: every event, oldest first, as
      {id, type, created, object_id, delivered, in_flight, attempts, payload}; an attempt is
      {attempt, kind: auto|retry|manual, at, url, status (HTTP, or null), ok, error, duration_ms}
  GET  /_sim/events/{id}
  POST /_sim/events/{id}/deliver   {"times": 5, "concurrent": true, "retry": false}   the same
      event (same bytes, fresh signature) N more times; answers the attempts
  POST /_sim/deliver   {"events": [ids], "order": "as_given"|"shuffled"|"reversed", "seed": 1,
      "retry": false}   one attempt each, one after another in that order; no "events": every
      event never attempted yet (e.g. created while held)
  POST /_sim/hold   {"hold": true|false}   while held, new events are recorded but not sent;
      releasing sends nothing by itself (use /_sim/deliver)
  GET|POST /_sim/config   {"webhook_url", "webhook_secret", "public_url", "retry_delays",
      "delivery_timeout", "pay_wait_seconds"}
  GET  /_sim/state    customers, prices, checkout and portal sessions, subscriptions, invoices
  GET  /_sim/requests the last 1000 API requests (params, status, idempotency key, replayed)
  POST /_sim/reset    forget everything; back to the startup config; stop retries
  GET  /healthz

Webhooks: POST of the event's exact JSON bytes to the webhook URL with `Stripe-Signature:
t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. They are sent after the triggering request
has been answered (except Pay, above); one action's events go in order, one at a time. A non-2xx
answer or a connection error is retried after each of retry_delays (default 0.5, 1, 2 s) on its
own task, so later events are not held up. No webhook URL: events are recorded, not sent.
"""

from dev.stripe_sim.app import DEFAULT_PORT, DEFAULT_SECRET, SimConfig, SimState, create_app
from dev.stripe_sim.store import API_VERSION, PriceSpec
from dev.stripe_sim.webhooks import signature_header

__all__ = [
    "API_VERSION",
    "DEFAULT_PORT",
    "DEFAULT_SECRET",
    "PriceSpec",
    "SimConfig",
    "SimState",
    "create_app",
    "signature_header",
]

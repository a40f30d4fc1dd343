-- Stripe customers, the Stripe event log, and the subscription projection derived from it.

CREATE TABLE customers (
    user_id             uuid PRIMARY KEY,
    stripe_customer_id  text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customers_stripe_customer_id_key UNIQUE (stripe_customer_id)
);

-- Every Stripe event received, once (append-only; the event id is Stripe's).
CREATE TABLE stripe_events (
    id            text PRIMARY KEY,
    type          text NOT NULL,
    created       timestamptz NOT NULL,
    payload       jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX stripe_events_unprocessed_idx ON stripe_events (received_at) WHERE processed_at IS NULL;

-- The subscription as Stripe reported it while handling an event (re-read from the API:
-- an event is a trigger, and events arrive in any order). Ordered by as_of, these are
-- what the projection is folded from, so it can be rebuilt without calling Stripe.
CREATE TABLE subscription_snapshots (
    id                      bigserial PRIMARY KEY,
    event_id                text NOT NULL REFERENCES stripe_events (id),
    stripe_subscription_id  text NOT NULL,
    user_id                 uuid NOT NULL,
    as_of                   timestamptz NOT NULL,
    snapshot                jsonb NOT NULL
);
CREATE INDEX subscription_snapshots_order_idx ON subscription_snapshots (as_of, id);

-- The projection: one row per Stripe subscription, the newest snapshot applied.
CREATE TABLE subscriptions (
    stripe_subscription_id  text PRIMARY KEY,
    user_id                 uuid NOT NULL,
    stripe_customer_id      text NOT NULL,
    status                  text NOT NULL,
    current_period_start    timestamptz,
    current_period_end      timestamptz,
    cancel_at_period_end    boolean NOT NULL DEFAULT false,
    ended_at                timestamptz,
    past_due_since          timestamptz,
    as_of                   timestamptz NOT NULL
);
CREATE INDEX subscriptions_user_idx ON subscriptions (user_id);

-- The plan last announced (SubscriptionChanged) per user: a new event only on a change.
CREATE TABLE plans (
    user_id                 uuid PRIMARY KEY,
    stripe_subscription_id  text,
    tier                    text NOT NULL,
    status                  text NOT NULL,
    current_period_end      timestamptz,
    cancel_at_period_end    boolean NOT NULL DEFAULT false,
    grace_until             timestamptz,
    as_of                   timestamptz NOT NULL
);

-- The Checkout Sessions billing created, so a user has at most one open at a time: while
-- one is open (not expired, not completed) POST /subscribe/pro hands it out again.
CREATE TABLE checkout_sessions (
    -- Also the Stripe idempotency key of the create call (checkout:<id>): requests that
    -- race on one reservation get the same session from Stripe.
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL,
    stripe_session_id   text,
    url                 text,
    status              text NOT NULL DEFAULT 'open',
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at          timestamptz NOT NULL,
    closed_at           timestamptz,
    CONSTRAINT checkout_sessions_status_check
        CHECK (status IN ('open', 'complete', 'expired', 'abandoned')),
    CONSTRAINT checkout_sessions_stripe_session_id_key UNIQUE (stripe_session_id)
);
-- At most one open session per user, whatever races.
CREATE UNIQUE INDEX checkout_sessions_one_open_per_user_idx
    ON checkout_sessions (user_id) WHERE status = 'open';

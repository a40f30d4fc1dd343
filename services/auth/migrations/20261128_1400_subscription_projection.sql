-- Projection of billing's SubscriptionChanged, for currentSubscription in /me.

CREATE TABLE subscriptions (
    user_id               uuid PRIMARY KEY,
    status                text NOT NULL,
    current_period_end    timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    grace_until           timestamptz,
    as_of                 timestamptz NOT NULL
);

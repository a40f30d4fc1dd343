-- The tier projection: each user's subscription as billing's SubscriptionChanged last
-- said it (applied only when newer: as_of), kept by every service that derives the tier
-- (auth for /me, chat for the quota). Its SQL is shared/tiers.py; a service includes this
-- folder in its migrations (shared.migrations.TIER_PROJECTION) to have the table.
CREATE TABLE tier_projection (
    user_id               uuid PRIMARY KEY,
    status                text NOT NULL,
    current_period_start  timestamptz,
    current_period_end    timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    grace_until           timestamptz,
    as_of                 timestamptz NOT NULL
);

-- Users whose account was deleted (UserDeleted), by a SHA-256 of their id: a
-- SubscriptionChanged that arrives after the deletion (billing's stream is read beside
-- auth's) must not bring a tier projection row back. The id itself is not kept.
CREATE TABLE erased_users (
    user_hash  bytea PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);

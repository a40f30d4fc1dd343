-- Users whose account was deleted (UserDeleted), by their digest (shared.erasure.digest:
-- the sha256 of the id, as billing's erased_subjects keeps it): a SubscriptionChanged
-- that arrives after the deletion (billing's stream is read beside auth's) must not bring
-- a tier projection row back. The id itself is not kept.
CREATE TABLE erased_users (
    digest     text PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);

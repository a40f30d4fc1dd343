-- Account deletion: the users billing erased, and their Stripe customers, as sha256 digests
-- of the ids (shared.erasure.digest), never the ids themselves. A Stripe webhook that names
-- one later (the deleted subscription's customer.subscription.deleted, a final invoice) is
-- stored without its payload and changes nothing: no row, no SubscriptionChanged.
CREATE TABLE erased_subjects (
    digest      text PRIMARY KEY,
    kind        text NOT NULL,
    erased_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT erased_subjects_kind_check CHECK (kind IN ('user', 'customer'))
);

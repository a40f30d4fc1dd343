-- The projection folds one subscription's snapshots in order on every event.
CREATE INDEX subscription_snapshots_subscription_idx
    ON subscription_snapshots (stripe_subscription_id, as_of, id);

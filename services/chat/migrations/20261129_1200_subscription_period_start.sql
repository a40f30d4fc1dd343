-- The subscriptions projection is written by shared.tiers.project_subscription_changed, the
-- same for auth and chat, which now stores SubscriptionChanged's period start as well.
ALTER TABLE subscriptions ADD COLUMN current_period_start timestamptz;

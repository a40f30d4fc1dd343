-- currentPeriodStart in /me: SubscriptionChanged now carries the period start. Rows projected
-- before this change keep NULL until billing's next SubscriptionChanged for the user.
ALTER TABLE subscriptions ADD COLUMN current_period_start timestamptz;

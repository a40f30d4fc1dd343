-- SubscriptionChanged now carries the period start, so the announced plan keeps it.
ALTER TABLE plans ADD COLUMN current_period_start timestamptz;

-- Plans saved before this change: the start of the subscription the plan was derived from,
-- as `python -m billing rebuild` derives it.
UPDATE plans AS p
   SET current_period_start = s.current_period_start
  FROM subscriptions AS s
 WHERE s.stripe_subscription_id = p.stripe_subscription_id;

-- The tier projection now lives in the table shared/sql/tiers defines for every service
-- that keeps one: its rows move there, and this service's own copy of the table goes.
INSERT INTO tier_projection
    (user_id, status, current_period_start, current_period_end, cancel_at_period_end,
     grace_until, as_of)
SELECT user_id, status, current_period_start, current_period_end, cancel_at_period_end,
       grace_until, as_of
  FROM subscriptions;

DROP TABLE subscriptions;

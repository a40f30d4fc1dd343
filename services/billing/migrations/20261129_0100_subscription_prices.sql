-- Only a subscription to the Pro price (STRIPE_PRO_PRICE_ID) makes a user Pro, so the
-- projection keeps the prices of each subscription's items.
ALTER TABLE subscriptions ADD COLUMN price_ids text[] NOT NULL DEFAULT '{}';

-- Rows projected before this change: the prices of the newest snapshot (the one the row was
-- folded to), as `python -m billing rebuild` derives them from the event log.
UPDATE subscriptions AS s
   SET price_ids = COALESCE(
           (SELECT array_agg(items.item -> 'price' ->> 'id' ORDER BY items.ord)
              FROM (SELECT ss.snapshot FROM subscription_snapshots AS ss
                     WHERE ss.stripe_subscription_id = s.stripe_subscription_id
                     ORDER BY ss.as_of DESC, ss.id DESC
                     LIMIT 1) AS newest,
                   jsonb_array_elements(newest.snapshot -> 'items' -> 'data')
                       WITH ORDINALITY AS items (item, ord)
             WHERE items.item -> 'price' ->> 'id' IS NOT NULL),
           '{}');

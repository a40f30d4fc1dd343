-- The relay is woken by a NOTIFY on outbox_<schema> at commit. A statement trigger sends
-- it with the INSERT itself, so adding an event costs one statement, not two round trips.
-- (Postgres folds identical notifications of one transaction into one.)

CREATE FUNCTION outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify
    AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

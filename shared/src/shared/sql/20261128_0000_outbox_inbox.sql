-- The transactional outbox and the consumer inbox, in every schema that produces or
-- consumes events (DESIGN §4). Applied by shared.migrations before the service's own files.

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL,
    stream        text NOT NULL,
    type          text NOT NULL,
    envelope      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Set only after XADD returned. Published rows are kept: they are the event log.
    published_at  timestamptz,
    publish_count integer NOT NULL DEFAULT 0,
    CONSTRAINT outbox_event_id_key UNIQUE (event_id)
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_created_at_idx ON outbox (created_at);

-- Event ids already handled by this service: written in the handler's transaction.
CREATE TABLE inbox (
    event_id     uuid PRIMARY KEY,
    type         text NOT NULL,
    stream       text NOT NULL,
    handled_at   timestamptz NOT NULL DEFAULT now()
);

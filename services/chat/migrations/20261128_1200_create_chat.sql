-- Chatrooms, messages (prompts and replies), the daily quota and the tier projection.

CREATE TABLE chatrooms (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT chatrooms_name_length CHECK (char_length(name) BETWEEN 1 AND 200)
);
CREATE INDEX chatrooms_user_created_idx ON chatrooms (user_id, created_at DESC, id DESC);

CREATE TABLE messages (
    id             uuid PRIMARY KEY,
    -- Orders a chatroom's messages; a prompt and its reply share a transaction timestamp.
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    chatroom_id    uuid NOT NULL REFERENCES chatrooms (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL,
    role           text NOT NULL,
    content        text NOT NULL DEFAULT '',
    status         text NOT NULL,
    reply_to       uuid REFERENCES messages (id) ON DELETE CASCADE,
    error_code     text,
    error          text,
    finish_reason  text,
    prompt_tokens  integer,
    output_tokens  integer,
    -- The UTC day whose quota unit this reply took; given back if the reply fails.
    quota_day      date,
    attempts       integer NOT NULL DEFAULT 1,
    queued_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at   timestamptz,
    CONSTRAINT messages_role_check CHECK (role IN ('USER', 'GEMINI')),
    CONSTRAINT messages_status_check
        CHECK (status IN ('queued', 'generating', 'completed', 'failed', 'blocked', 'cancelled'))
);
CREATE UNIQUE INDEX messages_seq_key ON messages (seq);
CREATE INDEX messages_chatroom_seq_idx ON messages (chatroom_id, seq);
-- At most one reply being produced per chatroom: a second concurrent send conflicts here.
CREATE UNIQUE INDEX messages_one_pending_reply
    ON messages (chatroom_id) WHERE role = 'GEMINI' AND status IN ('queued', 'generating');
CREATE INDEX messages_pending_idx
    ON messages (queued_at) WHERE status IN ('queued', 'generating');

CREATE TABLE daily_usage (
    user_id  uuid NOT NULL,
    day      date NOT NULL,
    used     integer NOT NULL,
    CONSTRAINT daily_usage_pkey PRIMARY KEY (user_id, day),
    CONSTRAINT daily_usage_used_check CHECK (used >= 0)
);

-- Projection of billing's SubscriptionChanged; the tier is derived from it at read time.
CREATE TABLE subscriptions (
    user_id               uuid PRIMARY KEY,
    status                text NOT NULL,
    current_period_end    timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    grace_until           timestamptz,
    as_of                 timestamptz NOT NULL
);

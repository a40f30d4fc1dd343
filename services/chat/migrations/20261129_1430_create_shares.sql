-- Share links: a read-only snapshot of a chatroom, read without logging in at /s/<token>.
-- Only the SHA-256 of the token is stored, so a copy of the database opens no live link;
-- the owner gets the token once, when the link is made.

CREATE TABLE shares (
    id           uuid PRIMARY KEY,
    token_hash   bytea NOT NULL,
    chatroom_id  uuid NOT NULL REFERENCES chatrooms (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL,
    -- {"title": str, "messages": [{"role", "content", "createdAt"}]}: no ids, no user.
    snapshot     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at   timestamptz,
    CONSTRAINT shares_token_hash_key UNIQUE (token_hash),
    CONSTRAINT shares_token_hash_length CHECK (octet_length(token_hash) = 32)
);
-- One live link per chatroom: making another revokes the one before.
CREATE UNIQUE INDEX shares_one_live_per_chatroom ON shares (chatroom_id) WHERE revoked_at IS NULL;

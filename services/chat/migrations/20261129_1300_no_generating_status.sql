-- A reply is queued until it is final: nothing ever set the `generating` status (the token
-- stream shows that a reply is being written), so it goes from the table's rules and from
-- the partial indexes over pending replies.
UPDATE messages SET status = 'queued' WHERE status = 'generating';

ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('queued', 'completed', 'failed', 'blocked', 'cancelled'));

DROP INDEX messages_one_pending_reply;
CREATE UNIQUE INDEX messages_one_pending_reply
    ON messages (chatroom_id) WHERE role = 'GEMINI' AND status = 'queued';

DROP INDEX messages_pending_idx;
CREATE INDEX messages_pending_idx ON messages (queued_at) WHERE status = 'queued';

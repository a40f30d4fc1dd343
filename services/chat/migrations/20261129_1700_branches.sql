-- Branches: a chat is a tree. Each message has its parent (a reply's: its prompt, as
-- reply_to says; a prompt's: the reply it follows, NULL for a room's first prompt), so an
-- edited prompt and a regenerated reply are siblings of what they replace, which is kept.
-- A room's current path is its leaf (the newest message the user is on) and its ancestors.
ALTER TABLE messages ADD COLUMN parent_id uuid REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE chatrooms ADD COLUMN leaf_id uuid;

-- Every existing chat carried over as it reads today: a reply hangs under its prompt, a
-- prompt under the last reply before it that was not regenerated (only a room's last reply
-- could be regenerated, so that is the reply the prompt was sent after), and the room is on
-- its newest message.
UPDATE messages SET parent_id = reply_to WHERE role = 'GEMINI';
UPDATE messages p
   SET parent_id = (SELECT r.id FROM messages r
                     WHERE r.chatroom_id = p.chatroom_id AND r.role = 'GEMINI'
                       AND r.seq < p.seq AND r.superseded_by IS NULL
                     ORDER BY r.seq DESC LIMIT 1)
 WHERE p.role = 'USER';
UPDATE chatrooms c
   SET leaf_id = (SELECT m.id FROM messages m WHERE m.chatroom_id = c.id
                   ORDER BY m.seq DESC LIMIT 1);

CREATE INDEX messages_parent_idx ON messages (parent_id);

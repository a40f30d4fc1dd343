-- Regenerated replies keep the one they replaced; rooms created without a name get an
-- automatic title from their first exchange (until the user renames them).

ALTER TABLE messages
    ADD COLUMN superseded_by uuid REFERENCES messages (id) ON DELETE SET NULL;

ALTER TABLE chatrooms
    ADD COLUMN auto_title boolean NOT NULL DEFAULT false;

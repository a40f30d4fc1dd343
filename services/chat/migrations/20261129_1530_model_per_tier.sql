-- A model per tier: the Gemini model a chatroom chose among those its user's tier allows
-- (NULL: the tier's own), and the model each reply was asked of (NULL: replies from before,
-- answered by the worker's GEMINI_MODEL). Existing rows keep NULL: nothing changes for them.
ALTER TABLE chatrooms
    ADD COLUMN model text CHECK (char_length(model) BETWEEN 1 AND 200);
ALTER TABLE messages
    ADD COLUMN model text CHECK (char_length(model) BETWEEN 1 AND 200);

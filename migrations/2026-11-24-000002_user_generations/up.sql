-- A per-user counter that every committed write for the user increases, in the same
-- transaction as the write. Cached query answers are keyed by it, so an answer computed
-- before a write can never be served after it.
CREATE TABLE user_generations (
    user_id    uuid PRIMARY KEY,
    generation bigint NOT NULL
);

-- Who owns each session id, keyed by the id alone: ingest's ownership check and the
-- reads of one session by id (GET/DELETE /api/sessions/{id}/) find the owner here, then
-- the session under its owner. On one server it takes the place of an index on
-- sessions (session_id); on Citus it is distributed by session id (`sessions` is by
-- user), so that those look-ups reach only the shards that hold the ids.
CREATE TABLE session_owners (
    session_id uuid PRIMARY KEY,
    user_id    uuid NOT NULL
);
-- In a block: on Citus, a statement on a distributed table among other statements of
-- one query string (a migration is one) fails when Citus passes the string on to the
-- workers; in a block each statement is a string of its own.
DO $$
BEGIN
    INSERT INTO session_owners (session_id, user_id)
    SELECT DISTINCT ON (session_id) session_id, user_id FROM sessions
    ORDER BY session_id, created_at;
    DROP INDEX IF EXISTS sessions_session_id_idx;
END
$$;

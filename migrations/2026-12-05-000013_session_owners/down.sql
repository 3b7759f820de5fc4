-- In a block, as in up.sql, for Citus.
DO $$
BEGIN
    CREATE INDEX sessions_session_id_idx ON sessions (session_id);
    DROP TABLE session_owners;
END
$$;

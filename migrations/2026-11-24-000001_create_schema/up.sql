-- The catalogue of series. Metric types are shared by all users (a reference table
-- under Citus), so their unique key is the series name alone.
CREATE TABLE metric_types (
    id          serial PRIMARY KEY,
    series      varchar(255) NOT NULL UNIQUE,
    schema      jsonb NOT NULL,
    description text NOT NULL DEFAULT '',
    kind        text NULL CHECK (kind IN ('measure', 'count', 'sample')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row, bumped by every change to metric_types: replicas compare it to the version
-- of the validators they hold and reload when it moved.
CREATE TABLE catalogue_version (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL
);
INSERT INTO catalogue_version (id, version) VALUES (true, 1);

CREATE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalogue_version SET version = version + 1 WHERE id;
    RETURN NULL;
END $$;

CREATE TRIGGER metric_types_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metric_types
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();

-- A session belongs to one user. The key includes user_id (distribution by user);
-- that a session_id is never reused by another user is enforced by the ingest
-- transaction under an advisory lock on the session id.
CREATE TABLE sessions (
    user_id    uuid NOT NULL,
    session_id uuid NOT NULL,
    start_ts   timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, session_id)
);
CREATE INDEX sessions_session_id_idx ON sessions (session_id);
CREATE INDEX sessions_user_created_idx ON sessions (user_id, created_at DESC, session_id);

-- Points. `value` is the JSON exactly as sent; `num` is the number a query aggregates
-- (a bare number, or the object's numeric "value" field), and `fields` /
-- `field_values` hold the object's other numeric fields ({r, g, b}), so that no query
-- parses JSON. The primary key doubles as the index every query walks:
-- (user, series, time) ranges, and backwards for "latest as of".
--
-- With TimescaleDB the table is a hypertable with 1-week chunks; without it, a table
-- range-partitioned by week whose partitions the service creates on demand.
DO $migration$
DECLARE
    columns text := $cols$
        user_id      uuid NOT NULL,
        series_id    integer NOT NULL,
        time         timestamptz NOT NULL,
        session_id   uuid NOT NULL,
        num          double precision NULL,
        fields       text[] NULL,
        field_values double precision[] NULL,
        value        json NOT NULL,
        PRIMARY KEY (user_id, series_id, time, session_id) INCLUDE (num)
    $cols$;
BEGIN
    -- Only when the server preloads it: CREATE EXTENSION of a TimescaleDB that is not in
    -- shared_preload_libraries is FATAL (it ends the connection), past any handler here.
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        IF current_setting('shared_preload_libraries') ~ '(^|[\s,])timescaledb([\s,]|$)' THEN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS timescaledb;
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'timescaledb is installed but cannot be loaded (%); using native partitions', SQLERRM;
            END;
        ELSE
            RAISE WARNING 'timescaledb is installed but not in shared_preload_libraries; using native partitions';
        END IF;
    END IF;

    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE format('CREATE TABLE points (%s)', columns);
        -- No default index on time: the primary key serves every read, and a second
        -- index would cost every insert.
        EXECUTE $ts$SELECT create_hypertable('points', 'time', chunk_time_interval => interval '1 week',
                                              create_default_indexes => false)$ts$;
    ELSE
        EXECUTE format('CREATE TABLE points (%s) PARTITION BY RANGE (time)', columns);
    END IF;
END
$migration$;

-- Hours the rollup job could not refresh (e.g. sums that overflow float8): set aside so
-- the job goes on with every other key, retried with backoff from `retry_at`. Their
-- invalidations stay, so queries keep reading those hours from raw points.
CREATE TABLE rollup_failures (
    user_id   uuid        NOT NULL,
    series_id integer     NOT NULL,
    hour      timestamptz NOT NULL,
    attempts  integer     NOT NULL,
    retry_at  timestamptz NOT NULL,
    error     text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, series_id, hour)
);

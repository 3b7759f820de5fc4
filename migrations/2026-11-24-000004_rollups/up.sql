-- Hourly rollups per user, series and numeric field ('' is the main number, `num`).
-- first/last are the values of the earliest/latest point of the hour (ties on time:
-- the smallest first, the largest last), as the raw query path defines them.
CREATE TABLE rollup_hourly (
    user_id    uuid NOT NULL,
    series_id  integer NOT NULL,
    field      text NOT NULL,
    hour       timestamptz NOT NULL,
    n          bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    first_time timestamptz NOT NULL,
    first      double precision NOT NULL,
    last_time  timestamptz NOT NULL,
    last       double precision NOT NULL,
    PRIMARY KEY (user_id, series_id, hour, field)
);

-- Hours whose rollup is out of date: written by every change to points in the same
-- transaction (ingest, session deletion), consumed by the rollup job. While a row is
-- here, queries read that hour from raw points.
CREATE TABLE rollup_invalidations (
    user_id    uuid NOT NULL,
    series_id  integer NOT NULL,
    hour       timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, series_id, hour)
);
CREATE INDEX rollup_invalidations_created_idx ON rollup_invalidations (created_at);

-- Everything already stored needs a first rollup.
INSERT INTO rollup_invalidations (user_id, series_id, hour)
SELECT DISTINCT user_id, series_id, date_trunc('hour', time) FROM points;

-- Daily rollups (UTC days) next to the hourly ones, with the same columns: the rollup job
-- recomputes a day from its hourly rows whenever it refreshes one of its hours. A query
-- reads a day from here when the whole day lies in one of its buckets and none of its
-- hours awaits refresh.
CREATE TABLE rollup_daily (
    user_id    uuid NOT NULL,
    series_id  integer NOT NULL,
    field      text NOT NULL,
    day        timestamptz NOT NULL,
    n          bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    first_time timestamptz NOT NULL,
    first      double precision NOT NULL,
    last_time  timestamptz NOT NULL,
    last       double precision NOT NULL,
    PRIMARY KEY (user_id, series_id, day, field)
);

-- Whole values per hour and per day, for series without numbers (strings, other
-- objects): how many points, and the stored JSON of the first and the last (by time,
-- then session id: the order the raw path uses).
CREATE TABLE rollup_values_hourly (
    user_id       uuid NOT NULL,
    series_id     integer NOT NULL,
    hour          timestamptz NOT NULL,
    n             bigint NOT NULL,
    first_time    timestamptz NOT NULL,
    first_session uuid NOT NULL,
    first         json NOT NULL,
    last_time     timestamptz NOT NULL,
    last_session  uuid NOT NULL,
    last          json NOT NULL,
    PRIMARY KEY (user_id, series_id, hour)
);

CREATE TABLE rollup_values_daily (
    user_id       uuid NOT NULL,
    series_id     integer NOT NULL,
    day           timestamptz NOT NULL,
    n             bigint NOT NULL,
    first_time    timestamptz NOT NULL,
    first_session uuid NOT NULL,
    first         json NOT NULL,
    last_time     timestamptz NOT NULL,
    last_session  uuid NOT NULL,
    last          json NOT NULL,
    PRIMARY KEY (user_id, series_id, day)
);

-- The new tables start empty: every stored hour is refreshed once more, which fills them.
INSERT INTO rollup_invalidations (user_id, series_id, hour)
SELECT DISTINCT user_id, series_id, date_trunc('hour', time) FROM points
ON CONFLICT DO NOTHING;

-- The job takes the oldest invalidations first and, among equally old ones (a bulk write,
-- the statement above), neighbouring hours together, so that a day is recomputed once
-- for many of its hours rather than once per hour.
DROP INDEX rollup_invalidations_created_idx;
CREATE INDEX rollup_invalidations_order_idx
    ON rollup_invalidations (created_at, user_id, series_id, hour);

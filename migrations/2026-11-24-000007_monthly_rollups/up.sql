-- Monthly rollups (UTC months) above the daily ones, with the same columns: the rollup
-- job recomputes a month from its daily rows whenever it refreshes one of its hours. A
-- query reads a month from here when the whole month lies in one of its buckets and none
-- of its hours awaits refresh (a month-level query over two years reads 24 rows, not 730).
CREATE TABLE rollup_monthly (
    user_id    uuid NOT NULL,
    series_id  integer NOT NULL,
    field      text NOT NULL,
    month      timestamptz NOT NULL,
    n          bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    first_time timestamptz NOT NULL,
    first      double precision NOT NULL,
    last_time  timestamptz NOT NULL,
    last       double precision NOT NULL,
    PRIMARY KEY (user_id, series_id, month, field)
);

CREATE TABLE rollup_values_monthly (
    user_id       uuid NOT NULL,
    series_id     integer NOT NULL,
    month         timestamptz NOT NULL,
    n             bigint NOT NULL,
    first_time    timestamptz NOT NULL,
    first_session uuid NOT NULL,
    first         json NOT NULL,
    last_time     timestamptz NOT NULL,
    last_session  uuid NOT NULL,
    last          json NOT NULL,
    PRIMARY KEY (user_id, series_id, month)
);

-- Filled from the daily rows as they stand. A month holding an hour that awaits refresh
-- is not read from here until that hour is refreshed, which recomputes the month.
INSERT INTO rollup_monthly
    (user_id, series_id, field, month, n, sum, min, max, first_time, first, last_time, last)
SELECT user_id, series_id, field, date_trunc('month', day, 'UTC'), sum(n), sum(sum), min(min), max(max),
       min(first_time), (array_agg(first ORDER BY first_time, first))[1],
       max(last_time), (array_agg(last ORDER BY last_time DESC, last DESC))[1]
FROM rollup_daily
GROUP BY user_id, series_id, field, date_trunc('month', day, 'UTC');

INSERT INTO rollup_values_monthly
    (user_id, series_id, month, n, first_time, first_session, first, last_time, last_session, last)
SELECT user_id, series_id, date_trunc('month', day, 'UTC'), sum(n),
       min(first_time), (array_agg(first_session ORDER BY first_time, first_session))[1],
       (array_agg(first ORDER BY first_time, first_session))[1],
       max(last_time), (array_agg(last_session ORDER BY last_time DESC, last_session DESC))[1],
       (array_agg(last ORDER BY last_time DESC, last_session DESC))[1]
FROM rollup_values_daily
GROUP BY user_id, series_id, date_trunc('month', day, 'UTC');

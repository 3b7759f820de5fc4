-- Quantile sketches in the numeric rollups, for `approx=true` percentiles: per row, the
-- counts of its numbers by DDSketch key (relative accuracy 1%), packed as
-- `key << 40 | count`, ascending. NULL where the row holds at most two numbers: its min
-- and max are those numbers (a sparse series has about one hourly row per point, and
-- most of them keep no sketch).
--
-- The rows made before hold none, so every row holding more than two numbers is made
-- again by the rollup job: the hours of such hourly rows, and one hour of each such
-- day and month (refreshing an hour recomputes its day and month). Until then those
-- hours await the job like any other, so queries read them from raw points or by a
-- finer level and no row without its sketch is read. Rows of at most two numbers are
-- right as they are.
--
-- In a block: on Citus, a statement on a distributed table among other statements of
-- one query string fails when Citus passes the string on to the workers.
DO $$
BEGIN
    ALTER TABLE rollup_hourly ADD COLUMN sketch bigint[];
    ALTER TABLE rollup_daily ADD COLUMN sketch bigint[];
    ALTER TABLE rollup_monthly ADD COLUMN sketch bigint[];
    INSERT INTO rollup_invalidations (user_id, series_id, hour)
    SELECT user_id, series_id, hour FROM rollup_hourly WHERE n > 2
    UNION
    SELECT user_id, series_id, day FROM rollup_daily WHERE n > 2
    UNION
    SELECT user_id, series_id, month FROM rollup_monthly WHERE n > 2;
END
$$;

-- In a block, as in up.sql, for Citus.
DO $$
BEGIN
    ALTER TABLE rollup_hourly DROP COLUMN sketch;
    ALTER TABLE rollup_daily DROP COLUMN sketch;
    ALTER TABLE rollup_monthly DROP COLUMN sketch;
END
$$;

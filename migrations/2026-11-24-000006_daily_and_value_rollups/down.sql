DROP TABLE IF EXISTS rollup_values_daily;
DROP TABLE IF EXISTS rollup_values_hourly;
DROP TABLE IF EXISTS rollup_daily;
DROP INDEX IF EXISTS rollup_invalidations_order_idx;
CREATE INDEX IF NOT EXISTS rollup_invalidations_created_idx ON rollup_invalidations (created_at);

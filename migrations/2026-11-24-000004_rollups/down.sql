DROP TABLE IF EXISTS rollup_invalidations;
DROP TABLE IF EXISTS rollup_hourly;

DROP TABLE IF EXISTS rollup_values_daily;
DROP TABLE IF EXISTS rollup_values_hourly;
DROP TABLE IF EXISTS rollup_daily;

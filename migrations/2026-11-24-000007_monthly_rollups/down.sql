DROP TABLE IF EXISTS rollup_values_monthly;
DROP TABLE IF EXISTS rollup_monthly;

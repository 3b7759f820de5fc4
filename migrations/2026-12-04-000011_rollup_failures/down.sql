DROP TABLE IF EXISTS rollup_failures;

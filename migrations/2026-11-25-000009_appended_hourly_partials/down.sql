-- Hours with appended rows go back to one row each by the rollup job's recomputation.
INSERT INTO rollup_invalidations (user_id, series_id, hour)
    SELECT DISTINCT user_id, series_id, hour FROM rollup_invalidations WHERE hourly_exact;
DELETE FROM rollup_invalidations WHERE hourly_exact;
ALTER TABLE rollup_invalidations DROP COLUMN hourly_exact;
DELETE FROM rollup_hourly a USING rollup_hourly b
WHERE a.user_id = b.user_id AND a.series_id = b.series_id AND a.hour = b.hour AND a.field = b.field
  AND a.ctid > b.ctid;
DELETE FROM rollup_values_hourly a USING rollup_values_hourly b
WHERE a.user_id = b.user_id AND a.series_id = b.series_id AND a.hour = b.hour AND a.ctid > b.ctid;
DROP INDEX rollup_hourly_key_idx;
ALTER TABLE rollup_hourly ADD PRIMARY KEY (user_id, series_id, hour, field);
DROP INDEX rollup_values_hourly_key_idx;
ALTER TABLE rollup_values_hourly ADD PRIMARY KEY (user_id, series_id, hour);

DELETE FROM rollup_invalidations a USING rollup_invalidations b
WHERE a.user_id = b.user_id AND a.series_id = b.series_id AND a.hour = b.hour
  AND (a.created_at, a.ctid) > (b.created_at, b.ctid);
DROP INDEX rollup_invalidations_key_idx;
ALTER TABLE rollup_invalidations ADD PRIMARY KEY (user_id, series_id, hour);

-- The sessions examples/mixed_load.rs wrote (the only ones without start_ts) go, their
-- hours awaiting refresh again, so that the next run measures the loaded data alone.
BEGIN;
CREATE TEMP TABLE gone AS SELECT user_id, session_id FROM sessions WHERE start_ts IS NULL;
INSERT INTO rollup_invalidations (user_id, series_id, hour)
    SELECT DISTINCT p.user_id, p.series_id, date_bin('1 hour', p.time, '2000-01-03T00:00:00Z')
    FROM points p JOIN gone g USING (user_id, session_id) WHERE p.time > now() - interval '1 day';
DELETE FROM points p USING gone g
    WHERE p.user_id = g.user_id AND p.session_id = g.session_id AND p.time > now() - interval '1 day';
DELETE FROM sessions s USING gone g WHERE s.user_id = g.user_id AND s.session_id = g.session_id;
COMMIT;

-- Ingest appends its invalidations instead of upserting them: with a unique key, a write
-- to an hour the rollup job was refreshing waited (ON CONFLICT on a row the job had
-- locked) until the job committed, which put the job's whole batch on the write's
-- latency. Duplicates are harmless: the job deletes every row of the keys it takes
-- before it recomputes them (so a write committed before that delete is in the
-- recomputation, and a later one leaves its row for the next run), and readers take
-- DISTINCT hours.
ALTER TABLE rollup_invalidations DROP CONSTRAINT rollup_invalidations_pkey;
CREATE INDEX rollup_invalidations_key_idx ON rollup_invalidations (user_id, series_id, hour);

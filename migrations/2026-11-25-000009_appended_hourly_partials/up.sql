-- Writes that only add points (batches of new sessions) append their partial aggregates
-- to the hourly rollups in the writing transaction, one more row per (user, series,
-- hour[, field]) each: every aggregate kept is decomposable, and readers and the rollup
-- job already combine rows, so an hour's rows add up to its points at once and queries
-- read the hour from them instead of raw points. The invalidation such a write leaves says
-- so (hourly_exact): only the day and the month holding the hour await the job, which
-- recomputes the hour from raw points (one row again) and then its day and month.
ALTER TABLE rollup_hourly DROP CONSTRAINT rollup_hourly_pkey;
CREATE INDEX rollup_hourly_key_idx ON rollup_hourly (user_id, series_id, hour, field);
ALTER TABLE rollup_values_hourly DROP CONSTRAINT rollup_values_hourly_pkey;
CREATE INDEX rollup_values_hourly_key_idx ON rollup_values_hourly (user_id, series_id, hour);
ALTER TABLE rollup_invalidations ADD COLUMN hourly_exact boolean NOT NULL DEFAULT false;

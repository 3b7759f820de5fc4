-- One row per background job run: which process ran it, when, and how it ended. The
-- advisory lock makes runs of one job never overlap, across replicas; this log shows it.
CREATE TABLE job_runs (
    id          bigserial PRIMARY KEY,
    job         text NOT NULL,
    instance    text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    ok          boolean NOT NULL,
    summary     text NOT NULL DEFAULT ''
);
CREATE INDEX job_runs_job_started_idx ON job_runs (job, started_at DESC);

-- create_hypertable's default index on `time` served no read (the primary key serves them
-- all) and cost every insert; hypertables made since are created without it.
DROP INDEX IF EXISTS points_time_idx;

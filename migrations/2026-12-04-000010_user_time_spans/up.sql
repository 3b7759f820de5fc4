-- The times each user's points lie within, widened by every write in its transaction
-- and never narrowed by deletions: a superset of the user's stored times. Reads of one
-- user bound their time range by it, so PostgreSQL plans (and locks) only the partitions
-- that can hold the user's points, however many partitions other users' data made.
ALTER TABLE user_generations
    ADD COLUMN first_time timestamptz NULL,
    ADD COLUMN last_time  timestamptz NULL;

INSERT INTO user_generations AS g (user_id, generation, first_time, last_time)
SELECT user_id, 1, min(time), max(time) FROM points GROUP BY user_id
ON CONFLICT (user_id) DO UPDATE
    SET first_time = excluded.first_time, last_time = excluded.last_time;

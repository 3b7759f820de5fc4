ALTER TABLE user_generations DROP COLUMN IF EXISTS first_time, DROP COLUMN IF EXISTS last_time;

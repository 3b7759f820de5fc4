-- Not recreated: nothing reads it.
SELECT 1;

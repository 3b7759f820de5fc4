DROP TABLE IF EXISTS user_generations;

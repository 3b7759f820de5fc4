DROP TABLE IF EXISTS points;
DROP TABLE IF EXISTS sessions;
DROP TRIGGER IF EXISTS metric_types_changed ON metric_types;
DROP FUNCTION IF EXISTS bump_catalogue_version();
DROP TABLE IF EXISTS catalogue_version;
DROP TABLE IF EXISTS metric_types;

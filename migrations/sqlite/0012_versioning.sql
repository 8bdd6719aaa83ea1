-- S3 versioning. A bucket's state: NULL (never enabled), Enabled or Suspended (once
-- enabled, a bucket never returns to NULL). Per version: whether it is its key's
-- "null" version (written while versioning was off or suspended: a later null
-- version replaces it), whether it is a delete marker (no parts), and when its
-- manifest was recorded (a key's versions are ordered by it, then by id: the last
-- is the key's latest, as recovery from the records orders them). Keep in step with
-- ../postgres/0012_versioning.sql.
ALTER TABLE buckets ADD COLUMN versioning TEXT;
ALTER TABLE versions ADD COLUMN null_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE versions ADD COLUMN delete_marker INTEGER NOT NULL DEFAULT 0;
ALTER TABLE versions ADD COLUMN recorded_at BIGINT NOT NULL DEFAULT 0;
UPDATE versions SET recorded_at = COALESCE(
    (SELECT MAX(r.at) FROM records r WHERE r.version_id = versions.id), versions.last_modified);
DROP INDEX versions_by_key;
CREATE INDEX versions_by_key ON versions (bucket, object_key, recorded_at DESC, id DESC);

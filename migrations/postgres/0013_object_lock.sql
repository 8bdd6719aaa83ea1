-- S3 object lock. A bucket's lock: NULL (off), else JSON of its default retention
-- ({} for none; {"mode": "GOVERNANCE", "days": 30}). Per version (and per upload,
-- for the version it makes): a retention mode and date (Unix ms) and a legal hold;
-- a version they protect cannot be deleted for good. An access key may be allowed
-- to bypass governance retention. Keep in step with ../sqlite/0013_object_lock.sql.
ALTER TABLE buckets ADD COLUMN object_lock TEXT;
ALTER TABLE versions ADD COLUMN lock_mode TEXT;
ALTER TABLE versions ADD COLUMN retain_until BIGINT;
ALTER TABLE versions ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN lock_mode TEXT;
ALTER TABLE uploads ADD COLUMN retain_until BIGINT;
ALTER TABLE uploads ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_keys ADD COLUMN bypass_governance INTEGER NOT NULL DEFAULT 0;

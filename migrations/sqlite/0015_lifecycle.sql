-- S3 lifecycle: a bucket's rules, as JSON (NULL: none). Keep in step with
-- ../postgres/0015_lifecycle.sql.
ALTER TABLE buckets ADD COLUMN lifecycle TEXT;

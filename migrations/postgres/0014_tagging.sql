-- S3 tagging: a version's tags (and an upload's, for the version it makes) and a
-- bucket's, each a JSON object of key to value; NULL: none. Keep in step with
-- ../sqlite/0014_tagging.sql.
ALTER TABLE versions ADD COLUMN tags TEXT;
ALTER TABLE uploads ADD COLUMN tags TEXT;
ALTER TABLE buckets ADD COLUMN tags TEXT;

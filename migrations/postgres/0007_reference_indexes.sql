-- Indexes for the questions every write and every collection asks: the other
-- versions of a key (a commit retires them) and whether anything still references a
-- seal (the collector asks before forgetting one). Without them each was a scan of
-- the whole table, per write and per collected seal. Keep in step with
-- ../sqlite/0007_reference_indexes.sql.
CREATE INDEX versions_by_key ON versions (bucket, object_key);
CREATE INDEX version_parts_by_seal ON version_parts (seal_id);
CREATE INDEX upload_parts_by_seal ON upload_parts (seal_id);

-- Records at the locations: what the gateway wrote there besides fragments, so that
-- the master key and the locations alone rebuild this store (`skyshard recover`).
-- m/<version>.<kek>: an object version's manifest; t/<id>.<kek>: a tombstone (every
-- manifest of its key recorded at or before its `at` is gone); c/<generation>.<kek>: the catalog
-- (tenants, buckets, keys, locations, policies). A live record is kept; a garbage
-- one is deleted at its locations by the collector, then forgotten. Keep in step with
-- ../sqlite/0010_records.sql.
CREATE TABLE records (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- manifest | tombstone | catalog
    state TEXT NOT NULL,              -- live | garbage
    version_id TEXT,                  -- a manifest's version
    bucket TEXT,                      -- manifests and tombstones: their key
    object_key BYTEA,
    at BIGINT NOT NULL,               -- when recorded; a tombstone: the latest manifest time it covers
    locations TEXT NOT NULL,          -- JSON array: where it was written
    digest TEXT NOT NULL DEFAULT '',  -- a catalog record: SHA-256 of what it holds
    size BIGINT NOT NULL DEFAULT 0,   -- bytes of each copy
    updated_at BIGINT NOT NULL
);
CREATE INDEX records_by_state ON records (state, kind, updated_at);
CREATE INDEX records_by_version ON records (version_id);
CREATE INDEX records_by_key ON records (bucket, object_key, kind);

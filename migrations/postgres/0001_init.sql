-- Skyshard metadata, PostgreSQL. Keep in step with ../sqlite/0001_init.sql.
-- Times are Unix milliseconds. Object keys are BYTEA so that they sort by bytes.

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret_sealed BYTEA NOT NULL,      -- the secret, AES-256-GCM under the master key
    kek_version INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

CREATE TABLE buckets (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One sealed, coded unit: a single-part object, or one part of a multipart upload.
CREATE TABLE seals (
    id TEXT PRIMARY KEY,              -- random; the codec's version id and the fragments' name
    state TEXT NOT NULL,              -- pending | stored | garbage
    size BIGINT NOT NULL,             -- plaintext bytes
    k INTEGER NOT NULL,
    n INTEGER NOT NULL,
    segment_size INTEGER NOT NULL,
    compression TEXT,                 -- NULL, zstd, lz4
    sealed_lens BYTEA,                 -- per-segment sealed lengths (u32 LE) when compressed
    wrapped_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX seals_by_state ON seals (state, updated_at);

CREATE TABLE fragments (
    seal_id TEXT NOT NULL REFERENCES seals (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    location TEXT NOT NULL,
    object_name TEXT NOT NULL,
    size BIGINT NOT NULL,
    state TEXT NOT NULL,              -- pending | stored | missing
    PRIMARY KEY (seal_id, idx)
);

CREATE TABLE versions (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    object_key BYTEA NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified BIGINT NOT NULL,
    content_type TEXT,
    headers TEXT NOT NULL,            -- JSON object of standard headers
    user_metadata TEXT NOT NULL,      -- JSON object of x-amz-meta-*
    checksum_algorithm TEXT,
    checksum_value TEXT,
    checksum_type TEXT,
    part_count INTEGER NOT NULL
);

CREATE TABLE version_parts (
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    seal_id TEXT NOT NULL REFERENCES seals (id),
    part_offset BIGINT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (version_id, part_number)
);

-- The visible version of each key.
CREATE TABLE objects (
    bucket TEXT NOT NULL,
    object_key BYTEA NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id),
    PRIMARY KEY (bucket, object_key)
);

CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    object_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    content_type TEXT,
    headers TEXT NOT NULL,
    user_metadata TEXT NOT NULL,
    checksum_algorithm TEXT
);
CREATE INDEX uploads_by_key ON uploads (bucket, object_key, id);

CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    seal_id TEXT NOT NULL REFERENCES seals (id),
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    checksum_value TEXT,
    last_modified BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Pack records: the manifests of a pack's members written as one record,
-- p/<pack>.<kek>, by the pack's writer. Each member keeps its own row, named as the
-- record and told apart by `member` (its version id; '' for every other record), so
-- that a record is one row or, for a pack record, one row per manifest it holds —
-- live while its version uses it, garbage after. A record is deleted at its
-- locations only when every row of its name is garbage. Keep in step with
-- ../postgres/0017_pack_records.sql.
CREATE TABLE records_new (
    name TEXT NOT NULL,
    member TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    version_id TEXT,
    bucket TEXT,
    object_key BLOB,
    at BIGINT NOT NULL,
    locations TEXT NOT NULL,
    digest TEXT NOT NULL DEFAULT '',
    size BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (name, member)
);
INSERT INTO records_new (name, member, kind, state, version_id, bucket, object_key, at, locations, digest, size, updated_at)
    SELECT name, '', kind, state, version_id, bucket, object_key, at, locations, digest, size, updated_at FROM records;
DROP TABLE records;
ALTER TABLE records_new RENAME TO records;
CREATE INDEX records_by_state ON records (state, kind, updated_at);
CREATE INDEX records_by_version ON records (version_id);
CREATE INDEX records_by_key ON records (bucket, object_key, kind);

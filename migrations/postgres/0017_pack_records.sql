-- Pack records: the manifests of a pack's members written as one record,
-- p/<pack>.<kek>, by the pack's writer. Each member keeps its own row, named as the
-- record and told apart by `member` (its version id; '' for every other record), so
-- that a record is one row or, for a pack record, one row per manifest it holds —
-- live while its version uses it, garbage after. A record is deleted at its
-- locations only when every row of its name is garbage. Keep in step with
-- ../sqlite/0017_pack_records.sql.
ALTER TABLE records ADD COLUMN member TEXT NOT NULL DEFAULT '';
ALTER TABLE records DROP CONSTRAINT records_pkey;
ALTER TABLE records ADD PRIMARY KEY (name, member);

-- Packs: small objects coded together. A pack is a seal whose segments are its
-- members (`slots` of them; 0 for an ordinary seal), each sealed under its own
-- key and id, which `pack_members` keeps; a version part in a pack names its slot.
-- Keep in step with ../postgres/0016_packs.sql.
ALTER TABLE seals ADD COLUMN slots INTEGER NOT NULL DEFAULT 0;
CREATE TABLE pack_members (
    pack_id TEXT NOT NULL REFERENCES seals (id) ON DELETE CASCADE,
    slot INTEGER NOT NULL,
    member_id TEXT NOT NULL,          -- random; the codec's version id of the member
                                      -- (a compaction moving it lists it twice a while)
    size BIGINT NOT NULL,             -- plaintext bytes
    wrapped_key BLOB NOT NULL,        -- its data key, wrapped under the master key
    PRIMARY KEY (pack_id, slot)
);
CREATE INDEX pack_members_by_member ON pack_members (member_id);
ALTER TABLE version_parts ADD COLUMN slot INTEGER;

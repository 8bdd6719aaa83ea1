-- Redundancy as maintained state. Each fragment records when it was last verified
-- (read back whole, every record's checksum and the header's identity checked; 0:
-- not since it was written). Each seal keeps its count of healthy (stored)
-- fragments: its margin is that count minus k, the fragments it can still lose.
-- Degraded seals (fewer than n healthy) form the repair queue, lowest margin first;
-- repair_after defers one whose repair just failed. Background passes (scrub,
-- sweep) keep their progress so that they resume where they stopped. Keep in step with
-- ../sqlite/0008_redundancy.sql.
ALTER TABLE fragments ADD COLUMN verified_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seals ADD COLUMN healthy BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seals ADD COLUMN repair_after BIGINT NOT NULL DEFAULT 0;
UPDATE seals SET healthy = (SELECT COUNT(*) FROM fragments f WHERE f.seal_id = seals.id AND f.state = 'stored');
CREATE INDEX seals_by_health ON seals (state, healthy, k);
CREATE INDEX seals_to_repair ON seals (healthy, created_at) WHERE state = 'stored' AND healthy < n;
CREATE TABLE passes (
    name TEXT PRIMARY KEY,            -- scrub | sweep
    cursor TEXT NOT NULL,             -- where the pass in progress stands ('' at the start)
    started_at BIGINT NOT NULL,       -- when the pass in progress began
    finished_at BIGINT NOT NULL,      -- when the last complete pass ended (0: never)
    checked BIGINT NOT NULL,          -- items looked at in this pass
    found BIGINT NOT NULL,            -- problems found in this pass
    updated_at BIGINT NOT NULL
);

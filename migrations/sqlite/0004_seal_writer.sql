-- The node that recorded a pending write. When that node starts again, its
-- pending writes from before the start are dead and collected at once; other
-- nodes' pending writes wait out `pipeline.pending_grace`.
ALTER TABLE seals ADD COLUMN writer TEXT NOT NULL DEFAULT '';

-- Multipart uploads as S3 completes them. Keep in step with the other backend.
-- The multipart upload that made a version, if one did: a CompleteMultipartUpload
-- sent again after its answer was lost is answered from it (as S3 does) instead of
-- NoSuchUpload.
ALTER TABLE versions ADD COLUMN upload_id TEXT;
-- How an upload's whole-object checksum is made: COMPOSITE (a checksum of the
-- parts' checksums, "-N") or FULL_OBJECT (the parts' CRCs combined: the CRC of the
-- whole object); NULL without a checksum.
ALTER TABLE uploads ADD COLUMN checksum_type TEXT;

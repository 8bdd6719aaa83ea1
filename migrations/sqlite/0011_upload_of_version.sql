-- The multipart upload that made a version, if one did: a CompleteMultipartUpload
-- sent again after its answer was lost is answered from it (as S3 does) instead of
-- NoSuchUpload.
ALTER TABLE versions ADD COLUMN upload_id TEXT;

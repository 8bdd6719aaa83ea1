//! CopyObject and UploadPartCopy: the source is read as GET reads it (its tenant,
//! its customer key, the `x-amz-copy-source-if-*` conditions), the target is
//! written as PUT or UploadPart writes it; the data path decides whether the copy
//! shares the source's seals or streams its bytes ([`crate::pipeline::copy`]).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksum::set_checksum;
use super::{S3Front, access, attrs_of, error, quoted, sse_c, timestamp, unix_secs};
use crate::meta::{ChecksumAlgorithm, Manifest, VersionRow, WriteCondition};
use crate::pipeline::{self, CopyRequest, CopySource as Source, CustomerKey, PutTarget};

/// The `x-amz-copy-source-if-*` headers of a copy.
struct SourceConditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

impl SourceConditions<'_> {
    /// S3's rules: a matching If-Match overrides a failing If-Unmodified-Since, a
    /// failing If-None-Match overrides a passing If-Modified-Since; any failure is
    /// 412 (never 304: a copy has nothing to say "not modified" about).
    fn check(&self, v: &VersionRow) -> S3Result<()> {
        let matches = |c: &ETagCondition| match c {
            ETagCondition::Any => true,
            ETagCondition::ETag(t) => t.value() == v.etag,
        };
        let modified = v.last_modified / 1000;
        let held = match (self.if_match, self.if_unmodified_since) {
            (Some(c), _) => matches(c),
            (None, Some(t)) => modified <= unix_secs(t),
            (None, None) => true,
        } && match (self.if_none_match, self.if_modified_since) {
            (Some(c), _) => !matches(c),
            (None, Some(t)) => modified > unix_secs(t),
            (None, None) => true,
        };
        match held {
            true => Ok(()),
            false => {
                Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"))
            }
        }
    }
}

/// A byte range of `x-amz-copy-source-range`: `bytes=first-last`, inside `size`.
fn copy_range(value: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let malformed = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the \
             zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = value.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(malformed)?;
    let (first, last) = (first.parse::<u64>().map_err(|_| malformed())?, last.parse::<u64>().map_err(|_| malformed())?);
    if first > last {
        return Err(malformed());
    }
    if last >= size {
        return Err(s3_error!(InvalidRange, "The requested range is not satisfiable"));
    }
    Ok(first..last + 1)
}

/// The source of a CopyObject or UploadPartCopy request (both inputs name its
/// customer key and conditions alike), read by `front` ([`S3Front::copy_source`]).
macro_rules! source_of {
    ($front:expr, $req:expr) => {{
        let i = &$req.input;
        let customer = $front.customer_key(
            i.copy_source_sse_customer_algorithm.as_deref(),
            i.copy_source_sse_customer_key.as_deref(),
            i.copy_source_sse_customer_key_md5.as_deref(),
        )?;
        let conditions = SourceConditions {
            if_match: i.copy_source_if_match.as_ref(),
            if_none_match: i.copy_source_if_none_match.as_ref(),
            if_modified_since: i.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: i.copy_source_if_unmodified_since.as_ref(),
        };
        $front.copy_source(&$req, &i.copy_source, conditions, customer).await
    }};
}

impl S3Front {
    /// The source of a copy: its bucket (of the requester's tenant), its version
    /// (the one named, else the latest) read in one snapshot, its customer key checked, its conditions met.
    async fn copy_source<T>(
        &self,
        req: &S3Request<T>,
        source: &CopySource,
        conditions: SourceConditions<'_>,
        customer: Option<std::sync::Arc<CustomerKey>>,
    ) -> S3Result<Source> {
        let CopySource::Bucket { bucket, key, version_id } = source else {
            return Err(s3_error!(NotImplemented, "Copies from access points are not supported."));
        };
        let row = self.gw.meta.bucket(bucket).await.map_err(error::meta)?.ok_or_else(|| s3_error!(NoSuchBucket))?;
        if *row.tenant != *access::tenant(req)? {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let manifest: Manifest = self.read_version(bucket, key, version_id.as_deref()).await?;
        sse_c::admit(manifest.version.attrs.customer_key.as_deref(), customer.as_deref())?;
        conditions.check(&manifest.version)?;
        Ok(Source { manifest, policy: row.policy.clone(), customer, range: None })
    }

    pub(super) async fn op_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = &req.input;
        let bucket = self.bucket(&req.extensions, &i.bucket).await?;
        let policy = self.policy(&bucket)?;
        let customer = sse_c::customer_key_of!(self, i)?;
        let source = source_of!(self, req)?;
        let v = &source.manifest.version;
        let replace = i.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if let Some(d) = &i.metadata_directive
            && !matches!(d.as_str(), MetadataDirective::COPY | MetadataDirective::REPLACE)
        {
            return Err(s3_error!(InvalidArgument, "Unknown metadata directive."));
        }
        // A version named is another object than the key's latest (copying one
        // onto its key is how an older version is restored).
        let named = match &i.copy_source {
            CopySource::Bucket { version_id, .. } => version_id.as_deref().map(str::to_string),
            _ => None,
        };
        let onto_itself = v.bucket == i.bucket && v.key == i.key.as_bytes() && named.is_none();
        let source_version = named.or_else(|| (!v.null_version).then(|| v.id.to_string()));
        let same_encryption = match (&source.customer, &customer) {
            (None, None) => true,
            (Some(a), Some(b)) => a.key_md5() == b.key_md5(),
            _ => false,
        };
        if onto_itself && !replace && same_encryption && i.storage_class.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the \
                 object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let asked = i.checksum_algorithm.as_ref().and_then(|a| ChecksumAlgorithm::from_name(a.as_str()));
        let checksum = asked.or(v.attrs.checksum_algorithm);
        let mut attrs = match replace {
            true => attrs_of!(i.clone(), checksum),
            false => crate::meta::ObjectAttrs { checksum_algorithm: checksum, customer_key: None, ..v.attrs.clone() },
        };
        attrs.customer_key = sse_c::check_of(customer.as_deref(), self.gw.offload.random.as_ref())?;
        // Tags: the source's (COPY, the default), or those of `x-amz-tagging` (REPLACE).
        attrs.tags = match i.tagging_directive.as_ref().map(TaggingDirective::as_str) {
            None | Some(TaggingDirective::COPY) => v.attrs.tags.clone(),
            Some(TaggingDirective::REPLACE) => super::tagging::from_header(i.tagging.as_deref())?,
            Some(_) => return Err(s3_error!(InvalidArgument, "Unknown tagging directive.")),
        };
        // The copy's own lock (as asked, or its bucket's default), never the source's.
        let lock = super::lock::requested(
            &bucket,
            i.object_lock_mode.as_ref(),
            i.object_lock_retain_until_date.as_ref(),
            i.object_lock_legal_hold_status.as_ref(),
        )?;
        let target = PutTarget::Object {
            bucket: i.bucket.clone(),
            key: i.key.as_bytes().to_vec(),
            attrs,
            condition: WriteCondition::Any,
            lock,
        };
        let request = CopyRequest {
            source,
            policy,
            tenant: bucket.tenant_number,
            checksum,
            target,
            customer: customer.clone(),
            requester: super::requester(&req.credentials),
        };
        let done = pipeline::copy(&self.gw.pipeline, request).await.map_err(error::pipeline)?;
        let mut result = CopyObjectResult {
            e_tag: Some(quoted(&done.etag)),
            last_modified: Some(timestamp(done.last_modified)),
            ..Default::default()
        };
        if let Some((alg, value)) = done.checksum {
            set_checksum!(result, alg, value);
            result.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        let mut out = CopyObjectOutput {
            copy_object_result: Some(result),
            version_id: done.version_shown,
            copy_source_version_id: source_version,
            ..Default::default()
        };
        sse_c::set_sse!(out, customer.as_deref());
        Ok(S3Response::new(out))
    }

    pub(super) async fn op_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = &req.input;
        let upload = self.upload_of(&req.extensions, &i.bucket, &i.key, &i.upload_id).await?;
        let customer = sse_c::customer_key_of!(self, i)?;
        sse_c::admit(upload.attrs.customer_key.as_deref(), customer.as_deref())?;
        let number = super::multipart::part_number(i.part_number)?;
        let bucket = self.bucket(&req.extensions, &upload.bucket).await?;
        let policy = self.policy(&bucket)?;
        let mut source = source_of!(self, req)?;
        let size = source.manifest.version.size;
        let range = match &i.copy_source_range {
            Some(r) => copy_range(r, size)?,
            None => 0..size,
        };
        if range.end - range.start > 5 << 30 {
            return Err(s3_error!(EntityTooLarge, "A part is at most 5 GiB."));
        }
        source.range = Some(range);
        let request = CopyRequest {
            source,
            policy,
            tenant: bucket.tenant_number,
            checksum: upload.attrs.checksum_algorithm,
            target: PutTarget::Part { upload: upload.id, number },
            customer: customer.clone(),
            requester: super::requester(&req.credentials),
        };
        let done = pipeline::copy(&self.gw.pipeline, request).await.map_err(error::pipeline)?;
        let mut result = CopyPartResult {
            e_tag: Some(quoted(&done.etag)),
            last_modified: Some(timestamp(done.last_modified)),
            ..Default::default()
        };
        if let Some((alg, value)) = done.checksum {
            set_checksum!(result, alg, value);
        }
        let mut out = UploadPartCopyOutput { copy_part_result: Some(result), ..Default::default() };
        sse_c::set_sse!(out, customer.as_deref());
        Ok(S3Response::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_are_checked_as_s3_checks_them() {
        assert_eq!(copy_range("bytes=0-9", 10).expect("whole"), 0..10);
        assert_eq!(copy_range("bytes=5-5", 10).expect("one byte"), 5..6);
        for bad in ["0-9", "bytes=9-0", "bytes=-5", "bytes=1-", "bytes=a-b", "bytes=0-1,3-4"] {
            let e = copy_range(bad, 10).expect_err(bad);
            assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidArgument, "{bad}");
        }
        assert_eq!(copy_range("bytes=0-10", 10).expect_err("past the end").code(), &s3s::S3ErrorCode::InvalidRange);
    }
}

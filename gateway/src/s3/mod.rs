//! The S3 front end, on s3s: s3s parses requests, verifies SigV4 (headers,
//! presigned query strings, aws-chunked bodies) and serialises responses; this module
//! translates: S3 inputs into calls of the data path ([`crate::pipeline`]) and the
//! metadata store, their results and errors into S3 outputs and error codes. No data
//! path logic lives here.
//!
//! | file | operations |
//! |---|---|
//! | `bucket.rs` | ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation |
//! | `object.rs` | PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects |
//! | `copy.rs` | CopyObject, UploadPartCopy |
//! | `attributes.rs` | GetObjectAttributes |
//! | `list.rs` | ListObjectsV2, ListObjects, ListObjectVersions (of unversioned buckets) |
//! | `multipart.rs` | Create/UploadPart/Complete/Abort, ListParts, ListMultipartUploads |
//! | `checksum.rs`, `body.rs`, `error.rs` | wire names of checksums, request bodies, S3 error codes |

pub mod access;
mod attributes;
pub mod body;
mod bucket;
pub mod checksum;
mod copy;
pub mod error;
mod form;
pub mod host;
mod lifecycle;
pub mod limits;
mod list;
mod lock;
mod multipart;
mod object;
mod protect;
pub mod rate;
mod sse_c;
mod tagging;
pub mod telemetry;
mod versioning;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::config::Policy;
use crate::meta::{BucketRow, ChecksumAlgorithm, ObjectAttrs};
use crate::pipeline::Expected;
use crate::state::Gateway;

/// The S3 service.
#[derive(Debug, Clone)]
pub struct S3Front {
    gw: Arc<Gateway>,
}

impl S3Front {
    /// The S3 operations over `gw`.
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self { gw }
    }

    /// The bucket `name`, as the access check read it for this request
    /// (`extensions`), or from the store.
    async fn bucket(&self, extensions: &http::Extensions, name: &str) -> S3Result<BucketRow> {
        let row = match extensions.get::<access::NamedBucket>() {
            Some(named) if named.name == name => named.row.clone(),
            _ => self.gw.meta.bucket(name).await.map_err(error::meta)?,
        };
        row.ok_or_else(|| s3_error!(NoSuchBucket))
    }

    /// The customer key (SSE-C) a request gives; refused over plain HTTP.
    fn customer_key(
        &self,
        algorithm: Option<&str>,
        key: Option<&str>,
        key_md5: Option<&str>,
    ) -> S3Result<Option<Arc<crate::pipeline::CustomerKey>>> {
        sse_c::given(algorithm, key, key_md5, !self.gw.settings.tls.plain_http)
    }

    fn policy(&self, bucket: &BucketRow) -> S3Result<Policy> {
        self.gw.catalog.view().policies.get(&bucket.policy).cloned().ok_or_else(|| {
            error::internal(format!("bucket {} uses policy {} which is not configured", bucket.name, bucket.policy))
        })
    }
}

/// Milliseconds since the epoch as an S3 timestamp.
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// Seconds since the epoch of an S3 timestamp.
fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// A quoted ETag.
/// The access key of a request (its share of the transfer slots).
fn requester(credentials: &Option<s3s::auth::Credentials>) -> Option<Arc<str>> {
    credentials.as_ref().map(|c| Arc::from(c.access_key.as_str()))
}

/// What every object here is: encrypted at rest with AES-256 under a key of its
/// own (SSE-S3 in S3's words), said in every response that describes an object.
fn sse_s3() -> s3s::dto::ServerSideEncryption {
    s3s::dto::ServerSideEncryption::from_static(s3s::dto::ServerSideEncryption::AES256)
}

fn quoted(etag: &str) -> ETag {
    ETag::Strong(etag.to_string())
}

/// The standard headers kept with an object, by name.
const KEPT_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// The descriptive fields of a PutObject or CreateMultipartUpload input (both have
/// the same ones), with the checksum asked for.
macro_rules! attrs_of {
    ($input:expr, $checksum:expr) => {{
        let i = $input;
        $crate::s3::attrs(
            [i.cache_control, i.content_disposition, i.content_encoding, i.content_language],
            i.content_type,
            i.expires.as_ref(),
            i.metadata.map(|m| m.into_iter().collect()),
            $checksum,
        )
    }};
}
use attrs_of;

/// Collects descriptive fields: the kept standard headers (in [`KEPT_HEADERS`]
/// order), Content-Type, Expires, user metadata and the checksum algorithm.
fn attrs(
    kept: [Option<String>; 4],
    content_type: Option<String>,
    expires: Option<&Timestamp>,
    metadata: Option<BTreeMap<String, String>>,
    checksum: Option<ChecksumAlgorithm>,
) -> ObjectAttrs {
    let mut headers = BTreeMap::new();
    for (k, v) in KEPT_HEADERS.iter().zip(kept) {
        let v = match *k {
            "content-encoding" => v.and_then(|v| stored_encoding(&v)),
            _ => v,
        };
        if let Some(v) = v {
            headers.insert((*k).to_string(), v);
        }
    }
    if let Some(e) = expires {
        let mut buf = Vec::new();
        if e.format(TimestampFormat::HttpDate, &mut buf).is_ok() {
            headers.insert("expires".into(), String::from_utf8_lossy(&buf).into_owned());
        }
    }
    ObjectAttrs {
        content_type,
        headers,
        user_metadata: metadata.unwrap_or_default(),
        checksum_algorithm: checksum,
        customer_key: None,
        tags: BTreeMap::new(),
    }
}

/// The Content-Encoding kept with an object: the one sent without `aws-chunked`,
/// which describes how this request's body was framed, not the object (S3 drops it
/// too); `None` if nothing else was given.
fn stored_encoding(sent: &str) -> Option<String> {
    let kept: Vec<&str> =
        sent.split(',').map(str::trim).filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked")).collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// The digests a PUT or UploadPart gave for its body: Content-MD5 (a malformed one
/// is refused before the body is read) and the value of the checksum asked for.
fn expected<T>(
    req: &S3Request<T>,
    content_md5: Option<&str>,
    checksum: Option<ChecksumAlgorithm>,
) -> S3Result<Expected> {
    use base64::Engine as _;
    // An empty `Content-MD5:` is a digest that cannot match (s3s reads it as none).
    let content_md5 = match content_md5 {
        None if req.headers.contains_key("content-md5") => return Err(invalid_digest()),
        None => None,
        Some(v) => match base64::engine::general_purpose::STANDARD.decode(v.trim()) {
            Ok(d) => Some(<[u8; 16]>::try_from(d.as_slice()).map_err(|_| invalid_digest())?),
            Err(_) => return Err(invalid_digest()),
        },
    };
    Ok(Expected { content_md5, checksum: checksum.map(|alg| self::checksum::given(req, alg)) })
}

fn invalid_digest() -> s3s::S3Error {
    s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid.")
}

/// The length of a request's payload: `Content-Length`, or for an `aws-chunked`
/// body sent with `Transfer-Encoding: chunked` (boto3 over HTTPS does this) the
/// signed `x-amz-decoded-content-length` (s3s checks the decoded body against it).
fn content_length(len: Option<i64>, headers: &http::HeaderMap) -> S3Result<u64> {
    const MAX_OBJECT: u64 = 5 << 40; // 5 TiB, as S3
    let streaming =
        headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("STREAMING-"));
    let decoded = || {
        headers.get("x-amz-decoded-content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok())
    };
    let len = match len {
        Some(l) => Some(l),
        None if streaming => decoded(),
        None => None,
    };
    let len = len.ok_or_else(|| s3_error!(MissingContentLength))?;
    let len = u64::try_from(len).map_err(|_| s3_error!(InvalidArgument, "negative Content-Length"))?;
    if len > MAX_OBJECT {
        return Err(s3_error!(EntityTooLarge));
    }
    Ok(len)
}

#[async_trait::async_trait]
impl S3 for S3Front {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.op_list_buckets(req).await
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.op_create_bucket(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.extensions, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.op_delete_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.extensions, &req.input.bucket).await?;
        let region = &self.gw.settings.region;
        let location_constraint = (region != "us-east-1").then(|| BucketLocationConstraint::from(region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.op_put_object(req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.op_get_object(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.op_head_object(req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.op_copy_object(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.op_upload_part_copy(req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.op_get_object_tagging(req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.op_put_object_tagging(req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.op_delete_object_tagging(req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        self.op_put_bucket_tagging(req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        self.op_get_bucket_tagging(req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.op_delete_bucket_tagging(req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.op_get_object_attributes(req).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.op_delete_object(req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.op_delete_objects(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.op_list_objects_v2(req).await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        self.op_put_bucket_lifecycle_configuration(req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.op_get_bucket_lifecycle_configuration(req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.op_delete_bucket_lifecycle(req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        self.op_put_object_lock_configuration(req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        self.op_get_object_lock_configuration(req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        self.op_put_object_retention(req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        self.op_get_object_retention(req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        self.op_put_object_legal_hold(req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        self.op_get_object_legal_hold(req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.op_put_bucket_versioning(req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.op_get_bucket_versioning(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.op_list_object_versions(req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.op_list_objects(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.op_create_multipart_upload(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.op_upload_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.op_complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.op_abort_multipart_upload(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.op_list_parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.op_list_multipart_uploads(req).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aws_chunked_is_not_kept_as_the_objects_encoding() {
        assert_eq!(super::stored_encoding("aws-chunked"), None);
        assert_eq!(super::stored_encoding("gzip,aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(super::stored_encoding("aws-chunked, br").as_deref(), Some("br"));
        assert_eq!(super::stored_encoding("gzip").as_deref(), Some("gzip"));
    }
}

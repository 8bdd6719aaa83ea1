//! Object operations.

use futures::StreamExt as _;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::checksum::set_checksum;
use super::{
    S3Front, attrs_of, body, checksum, content_length, error, expected, lock, quoted, sse_c, timestamp, unix_secs,
    versioning,
};
use crate::meta::{BucketRow, DeleteCondition, VersionRow, WriteCondition};
use crate::pipeline::{self, PutRequest, PutTarget};

/// Evaluates If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since
/// (RFC 9110 order). `head_or_get`: a failed If-None-Match means 304 rather than 412.
fn check_conditions(
    v: &VersionRow,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == v.etag,
    };
    let modified_secs = v.last_modified / 1000;
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since
        && modified_secs > unix_secs(t)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(not_modified(v));
        }
    } else if let Some(t) = if_modified_since
        && modified_secs <= unix_secs(t)
    {
        return Err(not_modified(v));
    }
    Ok(())
}

/// 304 Not Modified, with the headers S3 sends with it: the object's ETag,
/// Last-Modified, and the caching headers it was stored with.
fn not_modified(v: &VersionRow) -> S3Error {
    let mut e = S3Error::new(S3ErrorCode::NotModified);
    e.set_status_code(http::StatusCode::NOT_MODIFIED);
    let mut headers = http::HeaderMap::new();
    let mut put = |name: http::HeaderName, value: &str| {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put(http::header::ETAG, &format!("\"{}\"", v.etag));
    let mut date = Vec::new();
    if timestamp(v.last_modified).format(TimestampFormat::HttpDate, &mut date).is_ok() {
        put(http::header::LAST_MODIFIED, &String::from_utf8_lossy(&date));
    }
    for (name, kept) in [(http::header::CACHE_CONTROL, "cache-control"), (http::header::EXPIRES, "expires")] {
        if let Some(value) = v.attrs.headers.get(kept) {
            put(name, value);
        }
    }
    e.set_headers(headers);
    e
}

/// The condition of a PUT, CopyObject or CompleteMultipartUpload: `If-None-Match: *`
/// (the key must hold nothing) or `If-Match: <etag>`. S3 implements no other form.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(WriteCondition::Any),
        (None, Some(ETagCondition::Any)) => Ok(WriteCondition::Absent),
        (Some(ETagCondition::ETag(t)), None) => Ok(WriteCondition::ETag(t.value().to_string())),
        _ => Err(s3_error!(
            NotImplemented,
            "A header you provided implies functionality that is not implemented: conditional writes take \
             If-None-Match: * or If-Match: <etag>, one of them."
        )),
    }
}

/// Refuses a conditional write at once if its condition already fails, before its
/// body is read (the commit checks it again, atomically).
pub(super) async fn precheck(front: &S3Front, bucket: &str, key: &[u8], condition: &WriteCondition) -> S3Result<()> {
    if *condition == WriteCondition::Any {
        return Ok(());
    }
    let current = front.gw.meta.current_version(bucket, key).await.map_err(error::meta)?;
    condition.check(current.as_ref().map(|(v, _)| v.etag.as_str())).map_err(error::meta)
}

/// The conditions of a DeleteObject or of one DeleteObjects entry.
fn delete_condition(
    etag: Option<&ETag>,
    last_modified: Option<&Timestamp>,
    size: Option<i64>,
) -> S3Result<DeleteCondition> {
    let etag = etag.map(|t| t.value().to_string());
    let size = size.map(|s| u64::try_from(s).map_err(|_| s3_error!(InvalidArgument, "negative x-amz-if-match-size")));
    Ok(DeleteCondition { etag, last_modified_secs: last_modified.map(unix_secs), size: size.transpose()? })
}

fn header(v: &VersionRow, name: &str) -> Option<String> {
    v.attrs.headers.get(name).cloned()
}

fn expires(v: &VersionRow) -> Option<Timestamp> {
    v.attrs.headers.get("expires").and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

impl S3Front {
    pub(super) async fn op_put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let bucket = self.bucket(&req.extensions, &req.input.bucket).await?;
        let policy = self.policy(&bucket)?;
        let condition = write_condition(req.input.if_match.as_ref(), req.input.if_none_match.as_ref())?;
        precheck(self, &bucket.name, req.input.key.as_bytes(), &condition).await?;
        let len = content_length(req.input.content_length, &req.headers)?;
        let checksum = checksum::requested(&req.headers, req.input.checksum_algorithm.as_ref());
        let expect = expected(&req, req.input.content_md5.as_deref(), checksum)?;
        let mut i = req.input;
        let lock = lock::requested(
            &bucket,
            i.object_lock_mode.as_ref(),
            i.object_lock_retain_until_date.as_ref(),
            i.object_lock_legal_hold_status.as_ref(),
        )?;
        let customer = sse_c::customer_key_of!(self, i)?;
        let body = body::stream(i.body.take().ok_or_else(|| s3_error!(IncompleteBody))?);
        let (bucket_name, key) = (std::mem::take(&mut i.bucket), std::mem::take(&mut i.key));
        let tags = super::tagging::from_header(i.tagging.as_deref())?;
        let mut attrs = attrs_of!(i, checksum);
        attrs.customer_key = sse_c::check_of(customer.as_deref(), self.gw.offload.random.as_ref())?;
        attrs.tags = tags;
        let target = PutTarget::Object { bucket: bucket_name, key: key.into_bytes(), attrs, condition, lock };
        let request = PutRequest {
            policy,
            tenant: bucket.tenant_number,
            len,
            body,
            checksum,
            expect,
            target,
            customer: customer.clone(),
            requester: super::requester(&req.credentials),
        };
        let stored = pipeline::put(&self.gw.pipeline, request).await.map_err(error::pipeline)?;
        let mut out = PutObjectOutput {
            e_tag: Some(quoted(&stored.etag)),
            version_id: stored.version_shown,
            ..Default::default()
        };
        sse_c::set_sse!(out, customer.as_deref());
        if let Some((alg, value)) = stored.checksum {
            set_checksum!(out, alg, value);
            out.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        Ok(S3Response::new(out))
    }

    /// The version of a key a HEAD (or GetObjectAttributes) describes — version
    /// `version_id`, else the latest — with its bucket and its parts (number, byte
    /// range).
    pub(super) async fn version(
        &self,
        extensions: &http::Extensions,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(BucketRow, VersionRow, Vec<(u32, std::ops::Range<u64>)>)> {
        let row = self.bucket(extensions, bucket).await?;
        let current = match version_id {
            None => self.gw.meta.current_version(bucket, key.as_bytes()).await.map_err(error::meta)?,
            Some(_) => None,
        };
        let (v, parts) = match current {
            Some((v, parts)) => (v, parts.iter().map(|p| (p.number, p.offset..p.offset + p.size)).collect()),
            // Named, or a key without a visible version: as a read answers.
            None => {
                let m = self.read_version(bucket, key, version_id).await?;
                let parts = m.parts.iter().map(|p| (p.number, p.offset..p.offset + p.size)).collect();
                (m.version, parts)
            }
        };
        Ok((row, v, parts))
    }

    /// The byte range to serve: the requested `Range`, or a part (`partNumber`).
    fn range(
        size: u64,
        parts: &[(u32, std::ops::Range<u64>)],
        range: Option<&Range>,
        part_number: Option<i32>,
    ) -> S3Result<Option<std::ops::Range<u64>>> {
        if let Some(n) = part_number {
            if range.is_some() {
                return Err(s3_error!(
                    InvalidRequest,
                    "Cannot specify both Range header and partNumber query parameter."
                ));
            }
            let p = parts.iter().find(|(number, _)| i64::from(*number) == i64::from(n));
            return p.map(|(_, r)| Some(r.clone())).ok_or_else(|| s3_error!(InvalidPart));
        }
        match range {
            None => Ok(None),
            Some(r) => {
                r.check(size).map(Some).map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))
            }
        }
    }

    pub(super) async fn op_get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let i = &req.input;
        let bucket = self.bucket(&req.extensions, &i.bucket).await?;
        let manifest = self.read_version(&i.bucket, &i.key, i.version_id.as_deref()).await?;
        let v = manifest.version.clone();
        let customer = sse_c::customer_key_of!(self, i)?;
        sse_c::admit(v.attrs.customer_key.as_deref(), customer.as_deref())?;
        check_conditions(
            &v,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let parts: Vec<(u32, std::ops::Range<u64>)> =
            manifest.parts.iter().map(|p| (p.number, p.offset..p.offset + p.size)).collect();
        let range = Self::range(v.size, &parts, i.range.as_ref(), i.part_number)?;
        let size = v.size;
        let span = range.clone().unwrap_or(0..size);
        let body = pipeline::get(
            &self.gw.pipeline,
            manifest,
            span.clone(),
            customer.clone(),
            super::requester(&req.credentials),
        )
        .await
        .map_err(error::pipeline)?;
        let mut out = GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some((span.end - span.start) as i64),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(quoted(&v.etag)),
            last_modified: Some(timestamp(v.last_modified)),
            content_type: i.response_content_type.clone().or_else(|| Some(content_type(&v))),
            cache_control: i.response_cache_control.clone().or_else(|| header(&v, "cache-control")),
            content_disposition: i.response_content_disposition.clone().or_else(|| header(&v, "content-disposition")),
            content_encoding: i.response_content_encoding.clone().or_else(|| header(&v, "content-encoding")),
            content_language: i.response_content_language.clone().or_else(|| header(&v, "content-language")),
            expires: i.response_expires.clone().or_else(|| expires(&v)),
            metadata: (!v.attrs.user_metadata.is_empty()).then(|| v.attrs.user_metadata.clone().into_iter().collect()),
            parts_count: (v.part_count > 1).then_some(v.part_count as i32),
            version_id: versioning::shown(&bucket, &v),
            tag_count: (!v.attrs.tags.is_empty()).then_some(v.attrs.tags.len() as i32),
            ..Default::default()
        };
        sse_c::set_sse!(out, customer.as_deref());
        lock::set_lock!(out, v);
        if let Some(r) = &range {
            out.content_range = Some(format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1)));
        }
        // The whole object's checksum describes the whole object only: never send it
        // with a range (clients would check it against the part they got).
        let wants = i.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        if wants
            && range.is_none()
            && let (Some(alg), Some(value)) = (v.attrs.checksum_algorithm, v.checksum_value.clone())
        {
            set_checksum!(out, alg, value);
            out.checksum_type = v.checksum_type.clone().map(ChecksumType::from);
        }
        let mut resp = S3Response::new(out);
        if range.is_some() {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    pub(super) async fn op_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = &req.input;
        let (bucket, v, parts) = self.version(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let customer = sse_c::customer_key_of!(self, i)?;
        sse_c::admit(v.attrs.customer_key.as_deref(), customer.as_deref())?;
        check_conditions(
            &v,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let range = Self::range(v.size, &parts, i.range.as_ref(), i.part_number)?;
        let size = v.size;
        let span = range.clone().unwrap_or(0..size);
        let mut out = HeadObjectOutput {
            content_length: Some((span.end - span.start) as i64),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(quoted(&v.etag)),
            last_modified: Some(timestamp(v.last_modified)),
            content_type: Some(content_type(&v)),
            cache_control: header(&v, "cache-control"),
            content_disposition: header(&v, "content-disposition"),
            content_encoding: header(&v, "content-encoding"),
            content_language: header(&v, "content-language"),
            expires: expires(&v),
            metadata: (!v.attrs.user_metadata.is_empty()).then(|| v.attrs.user_metadata.clone().into_iter().collect()),
            parts_count: (v.part_count > 1).then_some(v.part_count as i32),
            version_id: versioning::shown(&bucket, &v),
            ..Default::default()
        };
        sse_c::set_sse!(out, customer.as_deref());
        lock::set_lock!(out, v);
        if let Some(r) = &range {
            out.content_range = Some(format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1)));
        }
        let wants = i.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        if wants
            && range.is_none()
            && let (Some(alg), Some(value)) = (v.attrs.checksum_algorithm, v.checksum_value.clone())
        {
            set_checksum!(out, alg, value);
            out.checksum_type = v.checksum_type.clone().map(ChecksumType::from);
        }
        Ok(S3Response::new(out))
    }

    pub(super) async fn op_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = &req.input;
        self.bucket(&req.extensions, &i.bucket).await?;
        let if_match = match &i.if_match {
            Some(ETagCondition::ETag(t)) => Some(t),
            _ => None,
        };
        let condition = delete_condition(if_match, i.if_match_last_modified_time.as_ref(), i.if_match_size)?;
        let bypass = self.bypass(&req, i.bypass_governance_retention).await?;
        let deleted = delete_one(self, &i.bucket, &i.key, i.version_id.as_deref(), &condition, bypass).await?;
        let out = DeleteObjectOutput {
            delete_marker: deleted.marker.then_some(true),
            version_id: deleted.version,
            ..Default::default()
        };
        Ok(S3Response::with_status(out, http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn op_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        const MAX_KEYS: usize = 1000;
        const DELETES_IN_FLIGHT: usize = 16;
        self.bucket(&req.extensions, &req.input.bucket).await?;
        let d = &req.input.delete;
        if d.objects.len() > MAX_KEYS {
            return Err(s3_error!(MalformedXML, "A DeleteObjects request names at most 1000 keys."));
        }
        let quiet = d.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        // Each delete writes its tombstone: many at once, answered in order.
        let mut entries = Vec::with_capacity(d.objects.len());
        for o in &d.objects {
            let condition = delete_condition(o.e_tag.as_ref(), o.last_modified_time.as_ref(), o.size)?;
            entries.push((o.key.clone(), o.version_id.clone(), condition));
        }
        let bucket = &req.input.bucket;
        let bypass = self.bypass(&req, req.input.bypass_governance_retention).await?;
        let results: Vec<(String, Option<String>, S3Result<pipeline::Deleted>)> = futures::stream::iter(entries)
            .map(|(key, version, condition)| async move {
                let r = delete_one(self, bucket, &key, version.as_deref(), &condition, bypass).await;
                (key, version, r)
            })
            .buffered(DELETES_IN_FLIGHT)
            .collect()
            .await;
        for (key, version, r) in results {
            match r {
                Ok(d) => {
                    if !quiet {
                        // A marker added: its id is the DeleteMarkerVersionId; a
                        // version deleted: its id is the VersionId.
                        let marker_id = d.marker.then(|| d.version.clone()).flatten();
                        deleted.push(DeletedObject {
                            key: Some(key),
                            version_id: version,
                            delete_marker: d.marker.then_some(true),
                            delete_marker_version_id: marker_id,
                        });
                    }
                }
                Err(e) => {
                    errors.push(Error {
                        key: Some(key),
                        version_id: version,
                        code: Some(e.code().as_str().to_string()),
                        message: Some(
                            e.message().unwrap_or("We encountered an internal error. Please try again.").into(),
                        ),
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }
}

/// Deletes `key` of `bucket`: version `version_id` for good (unless its object
/// lock protects it), or (none named) the key as its bucket's versioning says
/// (`pipeline::delete`).
async fn delete_one(
    front: &S3Front,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    condition: &DeleteCondition,
    bypass_governance: bool,
) -> S3Result<pipeline::Deleted> {
    let pipeline = &front.gw.pipeline;
    let done = match version_id {
        Some(v) => {
            let which = versioning::version_ref(v)?;
            pipeline::delete_version(pipeline, bucket, key.as_bytes(), which, bypass_governance).await
        }
        None => pipeline::delete(pipeline, bucket, key.as_bytes(), condition).await,
    };
    done.map_err(error::pipeline)
}

/// The Content-Type an object is served with: the one it was stored with, or, as S3
/// serves an object stored without one, `binary/octet-stream`.
fn content_type(v: &VersionRow) -> String {
    v.attrs.content_type.clone().unwrap_or_else(|| "binary/octet-stream".into())
}

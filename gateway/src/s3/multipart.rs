//! Multipart uploads. Each part is a seal of its own (own data key, own fragments);
//! completing an upload makes a version whose parts are those seals, in one
//! transaction. Parts uploaded but left out, replaced parts and aborted uploads
//! become garbage for the collector.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksum::{get_checksum, set_checksum};
use super::{S3Front, attrs_of, body, checksum, content_length, error, expected, quoted, sse_c, timestamp};
use crate::meta::{ChecksumAlgorithm, UploadId, UploadRow, now_ms};

use crate::pipeline::{self, CompleteRequest, MAX_PART_NUMBER, PutRequest, PutTarget};

impl S3Front {
    pub(super) async fn upload_of(
        &self,
        extensions: &http::Extensions,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<UploadRow> {
        self.bucket(extensions, bucket).await?;
        // An id that is not one of ours names no upload.
        let Ok(id) = upload_id.parse::<UploadId>() else { return Err(s3_error!(NoSuchUpload)) };
        match self.gw.meta.upload(id).await.map_err(error::meta)? {
            Some(u) if u.bucket == bucket && u.key == key.as_bytes() => Ok(u),
            _ => Err(s3_error!(NoSuchUpload)),
        }
    }

    pub(super) async fn op_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let b = self.bucket(&req.extensions, &i.bucket).await?;
        let lock = super::lock::requested(
            &b,
            i.object_lock_mode.as_ref(),
            i.object_lock_retain_until_date.as_ref(),
            i.object_lock_legal_hold_status.as_ref(),
        )?;
        let checksum = i.checksum_algorithm.as_ref().and_then(|a| ChecksumAlgorithm::from_name(a.as_str()));
        let checksum_type = upload_checksum_type(checksum, i.checksum_type.as_ref().map(|t| t.as_str()))?;
        let id = UploadId::generate(self.gw.offload.random.as_ref()).map_err(error::internal)?;
        let customer = sse_c::customer_key_of!(self, i)?;
        let mut output = CreateMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            upload_id: Some(id.to_string()),
            checksum_algorithm: i.checksum_algorithm.clone(),
            checksum_type: checksum_type.map(|t| ChecksumType::from(t.to_string())),
            ..Default::default()
        };
        sse_c::set_sse!(output, customer.as_deref());
        let (bucket, key) = (i.bucket.clone(), i.key.as_bytes().to_vec());
        let tags = super::tagging::from_header(i.tagging.as_deref())?;
        let mut attrs = attrs_of!(i, checksum);
        attrs.tags = tags;
        attrs.customer_key = sse_c::check_of(customer.as_deref(), self.gw.offload.random.as_ref())?;
        let checksum_type = checksum_type.map(str::to_string);
        let row = UploadRow { id, bucket, key, created_at: now_ms(), attrs, checksum_type, lock };
        self.gw.meta.create_upload(&row).await.map_err(error::meta)?;
        Ok(S3Response::new(output))
    }

    pub(super) async fn op_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let upload = self.upload_of(&req.extensions, &req.input.bucket, &req.input.key, &req.input.upload_id).await?;
        // Every part of an upload begun with a customer key is written with it.
        let customer = sse_c::customer_key_of!(self, req.input)?;
        sse_c::admit(upload.attrs.customer_key.as_deref(), customer.as_deref())?;
        let number = part_number(req.input.part_number)?;
        let bucket = self.bucket(&req.extensions, &upload.bucket).await?;
        let policy = self.policy(&bucket)?;
        let len = content_length(req.input.content_length, &req.headers)?;
        if len > 5 << 30 {
            return Err(s3_error!(EntityTooLarge, "A part is at most 5 GiB."));
        }
        // The parts of an upload with a checksum all have one of its algorithm.
        let asked = checksum::requested(&req.headers, req.input.checksum_algorithm.as_ref());
        let checksum = match (upload.attrs.checksum_algorithm, asked) {
            (Some(a), Some(b)) if a != b => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    a.as_str().to_ascii_lowercase(),
                    b.as_str().to_ascii_lowercase()
                ));
            }
            (upload_alg, asked) => upload_alg.or(asked),
        };
        let expect = expected(&req, req.input.content_md5.as_deref(), checksum)?;
        let mut req = req;
        let body = body::stream(req.input.body.take().ok_or_else(|| s3_error!(IncompleteBody))?);
        let target = PutTarget::Part { upload: upload.id, number };
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
        let mut out = UploadPartOutput { e_tag: Some(quoted(&stored.etag)), ..Default::default() };
        sse_c::set_sse!(out, customer.as_deref());
        if let Some((alg, value)) = stored.checksum {
            set_checksum!(out, alg, value);
        }
        Ok(S3Response::new(out))
    }

    pub(super) async fn op_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        let condition = super::object::write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
        let upload = match self.upload_of(&req.extensions, &i.bucket, &i.key, &i.upload_id).await {
            Ok(u) => u,
            Err(e) => {
                // Completed already (its answer was lost, the client sends it again):
                // the same answer again, as S3 gives.
                let done = match i.upload_id.parse::<UploadId>() {
                    Ok(id) => self.gw.meta.completed_by(&i.bucket, i.key.as_bytes(), id).await.map_err(error::meta)?,
                    Err(_) => None,
                };
                let Some(v) = done else { return Err(e) };
                let mut out = completed(&i.bucket, &i.key, &v.etag);
                if let Some(b) = self.gw.meta.bucket(&i.bucket).await.map_err(error::meta)? {
                    out.version_id = super::versioning::shown(&b, &v);
                }
                return Ok(S3Response::new(out));
            }
        };
        super::object::precheck(self, &i.bucket, i.key.as_bytes(), &condition).await?;
        let wanted = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if wanted.is_empty() {
            return Err(s3_error!(MalformedXML, "You must specify at least one part."));
        }
        let mut parts = Vec::with_capacity(wanted.len());
        let mut part_checksums = std::collections::BTreeMap::new();
        let alg = upload.attrs.checksum_algorithm;
        for w in &wanted {
            let number = w.part_number.ok_or_else(|| s3_error!(MalformedXML, "A part lacks its PartNumber."))?;
            // Out of range: not a part of ours (InvalidPart), unless the order is wrong first.
            let number = u32::try_from(number).unwrap_or(u32::MAX);
            parts.push((number, w.e_tag.as_ref().map(|t| t.value().to_string()).unwrap_or_default()));
            if let Some(c) = alg.and_then(|a| get_checksum!(w, a)) {
                part_checksums.insert(number, c);
            }
        }
        let checksum = alg.and_then(|a| get_checksum!(i, a));
        let request = CompleteRequest { upload, parts, condition, part_checksums, checksum };
        let done = pipeline::complete(&self.gw.pipeline, request).await.map_err(error::pipeline)?;
        let mut out = completed(&i.bucket, &i.key, &done.etag);
        out.version_id = done.version_shown;
        if let Some((alg, value, kind)) = done.checksum {
            set_checksum!(out, alg, value);
            out.checksum_type = Some(ChecksumType::from(kind));
        }
        Ok(S3Response::new(out))
    }

    pub(super) async fn op_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = req.input;
        let upload = self.upload_of(&req.extensions, &i.bucket, &i.key, &i.upload_id).await?;
        if !self.gw.meta.abort_upload(upload.id).await.map_err(error::meta)? {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(S3Response::with_status(AbortMultipartUploadOutput::default(), http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn op_list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        let upload = self.upload_of(&req.extensions, &i.bucket, &i.key, &i.upload_id).await?;
        let max = i.max_parts.unwrap_or(1000).clamp(0, 1000);
        let after = i.part_number_marker.unwrap_or(0).max(0);
        let mut parts = self
            .gw
            .meta
            .upload_parts(upload.id, u32::try_from(after).unwrap_or(0), i64::from(max) + 1)
            .await
            .map_err(error::meta)?;
        let truncated = parts.len() > max as usize;
        parts.truncate(max as usize);
        let alg = upload.attrs.checksum_algorithm;
        let listed: Vec<Part> = parts
            .iter()
            .map(|p| {
                let mut part = Part {
                    part_number: Some(p.number as i32),
                    e_tag: Some(quoted(&p.etag)),
                    size: Some(p.size as i64),
                    last_modified: Some(timestamp(p.last_modified)),
                    ..Default::default()
                };
                if let (Some(a), Some(v)) = (alg, p.checksum_value.clone()) {
                    set_checksum!(part, a, v);
                }
                part
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload.id.to_string()),
            max_parts: Some(max),
            part_number_marker: Some(after),
            is_truncated: Some(truncated),
            next_part_number_marker: if truncated { parts.last().map(|p| p.number as i32) } else { None },
            parts: Some(listed),
            ..Default::default()
        }))
    }

    pub(super) async fn op_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        self.bucket(&req.extensions, &i.bucket).await?;
        let max = i.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = i.prefix.clone().unwrap_or_default();
        let mut key_marker = i.key_marker.clone().unwrap_or_default().into_bytes();
        let mut id_marker = i.upload_id_marker.clone().unwrap_or_default();
        if i.upload_id_marker.is_none() && !key_marker.is_empty() {
            // Without an upload id marker, listing resumes after every upload of the key.
            id_marker = "\u{10FFFF}".into();
        }
        let mut uploads = Vec::new();
        let mut truncated = false;
        'scan: loop {
            let batch =
                self.gw.meta.list_uploads(&i.bucket, &key_marker, &id_marker, 1000).await.map_err(error::meta)?;
            if batch.is_empty() {
                break;
            }
            for u in batch {
                key_marker = u.key.clone();
                id_marker = u.id.to_string();
                if !u.key.starts_with(prefix.as_bytes()) {
                    if u.key.as_slice() > prefix.as_bytes()
                        && !u.key.starts_with(prefix.as_bytes())
                        && !uploads.is_empty()
                    {
                        break 'scan;
                    }
                    continue;
                }
                if uploads.len() == max {
                    truncated = true;
                    break 'scan;
                }
                uploads.push(u);
            }
        }
        let last = uploads.last().cloned();
        let listed: Vec<MultipartUpload> = uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(String::from_utf8_lossy(&u.key).into_owned()),
                upload_id: Some(u.id.to_string()),
                initiated: Some(timestamp(u.created_at)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated
                .then(|| last.as_ref().map(|u| String::from_utf8_lossy(&u.key).into_owned()))
                .flatten(),
            next_upload_id_marker: truncated.then(|| last.as_ref().map(|u| u.id.to_string())).flatten(),
            uploads: Some(listed),
            ..Default::default()
        }))
    }
}

/// The answer to a CompleteMultipartUpload that made a version with `etag`.
fn completed(bucket: &str, key: &str, etag: &str) -> CompleteMultipartUploadOutput {
    CompleteMultipartUploadOutput {
        server_side_encryption: Some(super::sse_s3()),
        bucket: Some(bucket.to_string()),
        key: Some(key.to_string()),
        e_tag: Some(quoted(etag)),
        location: Some(format!("/{bucket}/{key}")),
        ..Default::default()
    }
}

/// A part number as UploadPart and UploadPartCopy take it: 1 to 10,000.
pub(super) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

/// How an upload's whole-object checksum is made, as S3 decides it: COMPOSITE by
/// default, FULL_OBJECT for CRC64NVME (which has no composite form); FULL_OBJECT
/// only for the CRCs (SHA digests cannot be combined).
fn upload_checksum_type(alg: Option<ChecksumAlgorithm>, asked: Option<&str>) -> S3Result<Option<&'static str>> {
    const FULL: &str = ChecksumType::FULL_OBJECT;
    const COMPOSITE: &str = ChecksumType::COMPOSITE;
    let Some(alg) = alg else {
        return match asked {
            None => Ok(None),
            Some(_) => Err(s3_error!(InvalidRequest, "The x-amz-checksum-type header needs x-amz-checksum-algorithm.")),
        };
    };
    let crc = matches!(alg, ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc64Nvme);
    match asked {
        None if alg == ChecksumAlgorithm::Crc64Nvme => Ok(Some(FULL)),
        None => Ok(Some(COMPOSITE)),
        Some(FULL) if crc => Ok(Some(FULL)),
        Some(COMPOSITE) if alg != ChecksumAlgorithm::Crc64Nvme => Ok(Some(COMPOSITE)),
        Some(t) => Err(s3_error!(
            InvalidRequest,
            "The {} checksum algorithm does not support the {t} checksum type.",
            alg.as_str()
        )),
    }
}

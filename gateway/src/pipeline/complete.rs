//! Completing a multipart upload: the parts a client names, checked against those
//! it uploaded as S3 checks them, become one version in one transaction, after its
//! manifest reached the locations. No data moves: each part is already a seal of
//! its own.

use std::collections::BTreeMap;

use super::checksum::{etag_digest, multipart_checksum, multipart_etag};
use super::{Digest, PipelineCtx, PipelineError};
use crate::meta::{PartRow, UploadRow, VersionId, VersionRow, WriteCondition, now_ms};

/// Smallest part but the last, as S3 requires.
pub const MIN_PART: u64 = 5 << 20;
/// Highest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// A completion: the upload and the parts the client named, in its order, each
/// with the ETag it gave (quotes allowed).
#[derive(Debug, Clone)]
pub struct CompleteRequest {
    /// The upload.
    pub upload: UploadRow,
    /// Part numbers and ETags, as listed.
    pub parts: Vec<(u32, String)>,
    /// What the key must hold when the version commits.
    pub condition: WriteCondition,
    /// The parts' checksums the client listed (base64), by part number: each must
    /// be the one its part was uploaded with.
    pub part_checksums: BTreeMap<u32, String>,
    /// The whole object's checksum the client gave, if any: it must be the one
    /// computed from the parts.
    pub checksum: Option<String>,
}

/// What a completion made visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteOutcome {
    /// The new version.
    pub version: VersionId,
    /// Its `x-amz-version-id` (`None` in a bucket never versioned).
    pub version_shown: Option<String>,
    /// Its ETag: the digest of the parts' digests, `-N`.
    pub etag: String,
    /// Its size.
    pub size: u64,
    /// Its checksum (base64, `-N` when composite) and how it was made.
    pub checksum: Option<(crate::meta::ChecksumAlgorithm, String, String)>,
}

/// Completes an upload: the listed parts must be in ascending order, uploaded with
/// the ETags given, and all but the last at least [`MIN_PART`]. A concurrent
/// completion or abort of the same upload makes this one [`PipelineError::NoSuchUpload`].
pub async fn complete(ctx: &PipelineCtx, req: CompleteRequest) -> Result<CompleteOutcome, PipelineError> {
    let CompleteRequest { upload, parts: mut wanted, condition, part_checksums, checksum: given } = req;
    // Order first, as S3 does: a misordered list is InvalidPartOrder whatever else.
    // A part listed twice in a row (a client retrying its list) counts once.
    if wanted.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err(PipelineError::PartOrder);
    }
    wanted.dedup_by(|b, a| a.0 == b.0 && a.1.trim().trim_matches('"') == b.1.trim().trim_matches('"'));
    if wanted.windows(2).any(|w| w[1].0 == w[0].0) {
        return Err(PipelineError::PartOrder);
    }
    let stored = ctx.meta.upload_parts(upload.id, 0, i64::from(MAX_PART_NUMBER)).await?;
    let mut parts = Vec::with_capacity(wanted.len());
    let mut part_sums = Vec::with_capacity(wanted.len());
    let mut digests = Vec::with_capacity(wanted.len());
    let mut offset = 0u64;
    for (pos, (number, given)) in wanted.iter().enumerate() {
        let Some(have) = stored.iter().find(|p| p.number == *number) else {
            // Its parts go with the upload: a completed or aborted one has none.
            return Err(match ctx.meta.upload(upload.id).await? {
                Some(_) => PipelineError::InvalidPart(*number),
                None => PipelineError::NoSuchUpload,
            });
        };
        if given.trim().trim_matches('"') != have.etag {
            return Err(PipelineError::InvalidPart(*number));
        }
        if pos + 1 < wanted.len() && have.size < MIN_PART {
            return Err(PipelineError::PartTooSmall(*number));
        }
        digests.push(etag_digest(&have.etag).ok_or_else(|| {
            PipelineError::Meta(crate::meta::MetaError::Corrupt(format!("part {number}: ETag is not a digest")))
        })?);
        if let Some(c) = part_checksums.get(number)
            && have.checksum_value.as_deref().map(str::trim) != Some(c.trim())
        {
            return Err(PipelineError::InvalidPart(*number));
        }
        part_sums.push((have.checksum_value.clone(), have.size, *number));
        parts.push(PartRow { number: *number, seal_id: have.seal_id, offset, size: have.size, member: None });
        offset += have.size;
    }
    let etag = multipart_etag(ctx.etag, &digests);
    let checksum = match upload.attrs.checksum_algorithm {
        None => None,
        Some(alg) => {
            let full = upload.checksum_type.as_deref() == Some("FULL_OBJECT");
            let mut sums = Vec::with_capacity(part_sums.len());
            for (value, size, number) in &part_sums {
                sums.push((value.as_deref().ok_or(PipelineError::InvalidPart(*number))?, *size));
            }
            let value = multipart_checksum(alg, full, &sums).ok_or(PipelineError::InvalidPart(part_sums[0].2))?;
            let kind = if full { "FULL_OBJECT" } else { "COMPOSITE" };
            Some((alg, value, kind.to_string()))
        }
    };
    if let Some(g) = &given {
        let bare = |v: &str| v.trim().split('-').next().unwrap_or_default().to_string();
        match &checksum {
            Some((alg, value, _)) if bare(value) != bare(g) => {
                return Err(PipelineError::BadDigest(Digest::Checksum(*alg)));
            }
            _ => {}
        }
    }
    let mut version = VersionRow {
        id: VersionId::generate(ctx.offload.random.as_ref())?,
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        size: offset,
        etag: etag.clone(),
        last_modified: now_ms(),
        attrs: upload.attrs.clone(),
        checksum_value: checksum.as_ref().map(|c| c.1.clone()),
        checksum_type: checksum.as_ref().map(|c| c.2.clone()),
        part_count: parts.len() as u32,
        null_version: true,
        delete_marker: false,
        recorded_at: 0,
        lock: upload.lock,
    };
    let mut seals = Vec::with_capacity(parts.len());
    for p in &parts {
        let seal = ctx.meta.seal(p.seal_id).await?.ok_or(PipelineError::NoSuchUpload)?;
        seals.push(seal);
    }
    let with_seals: Vec<(PartRow, &crate::meta::Seal)> = parts.iter().cloned().zip(seals.iter()).collect();
    let recorded = super::record::record_version(ctx, &mut version, &with_seals).await?;
    let record = &recorded.row;
    let committed = ctx.meta.complete_upload(upload.id, &version, &parts, Some(record), &condition).await;
    match super::record::unless_committed(ctx, record, committed).await? {
        Some(_) => {
            Ok(CompleteOutcome { version: version.id, version_shown: recorded.shown, etag, size: offset, checksum })
        }
        None => {
            super::record::forget(ctx, record).await;
            Err(PipelineError::NoSuchUpload)
        }
    }
}

//! A copy (CopyObject, UploadPartCopy): a new object version, or a part of an
//! upload, made of an existing version's bytes.
//!
//! A whole-object copy that keeps the bytes as they are sealed — the same tenant
//! (its cache key), the same policy (its placement), the same data key (no customer
//! key on either side, or the same one) and the same checksum — shares the source's
//! seals: no fragment is read or written; the copy writes its own manifest and
//! commits. A seal stays until no version uses it (`MetaStore::copy_version`), so
//! that deleting either side keeps the other whole. Every other copy streams the
//! source through a read into a write ([`super::put`]) under one transfer slot.

use std::ops::Range;
use std::sync::Arc;

use futures::StreamExt as _;

use super::put::{PutOutcome, PutRequest, PutTarget};
use super::{CustomerKey, PipelineCtx, PipelineError};
use crate::config::Policy;
use crate::meta::{ChecksumAlgorithm, Manifest, MetaError, ObjectAttrs, PartRow, Seal, VersionId, VersionRow, now_ms};

/// What is copied.
#[derive(Debug, Clone)]
pub struct CopySource {
    /// The source version, as read (one snapshot).
    pub manifest: Manifest,
    /// The policy of the source's bucket.
    pub policy: String,
    /// The source's customer key (SSE-C), checked by the caller.
    pub customer: Option<Arc<CustomerKey>>,
    /// The bytes copied (UploadPartCopy's range); `None`: all.
    pub range: Option<Range<u64>>,
}

/// A copy.
#[derive(Debug)]
pub struct CopyRequest {
    /// The source.
    pub source: CopySource,
    /// The target's policy.
    pub policy: Policy,
    /// The target's tenant number.
    pub tenant: u32,
    /// The checksum the copy keeps.
    pub checksum: Option<ChecksumAlgorithm>,
    /// What the copy becomes.
    pub target: PutTarget,
    /// The target's customer key (SSE-C).
    pub customer: Option<Arc<CustomerKey>>,
    /// The access key that asked.
    pub requester: Option<Arc<str>>,
}

/// What a copy made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// ETag (hex, no quotes).
    pub etag: String,
    /// The checksum kept, base64.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
    /// The version made visible (`None` for a part).
    pub version: Option<VersionId>,
    /// Its `x-amz-version-id` (`None` in a bucket never versioned, and for a part).
    pub version_shown: Option<String>,
    /// Its Last-Modified, Unix ms.
    pub last_modified: i64,
    /// Whether it shares the source's seals (nothing was read or written).
    pub shared: bool,
}

/// Copies `req`: shared where the module documentation says, else streamed.
pub async fn copy(ctx: &Arc<PipelineCtx>, req: CopyRequest) -> Result<CopyOutcome, PipelineError> {
    if shares(&req) {
        return share(ctx, req).await;
    }
    let CopyRequest { source, policy, tenant, checksum, target, customer, requester } = req;
    let span = source.range.clone().unwrap_or(0..source.manifest.version.size);
    let len = span.end - span.start;
    let bytes = super::get::read_range(ctx, source.manifest, span, source.customer, None).await?;
    let body = bytes.map(|r| r.map_err(|e| Box::new(e) as super::BoxError)).boxed();
    let request =
        PutRequest { policy, tenant, len, body, checksum, expect: Default::default(), target, customer, requester };
    let PutOutcome { etag, checksum, version, version_shown, .. } = super::put(ctx, request).await?;
    Ok(CopyOutcome { etag, checksum, version, version_shown, last_modified: now_ms(), shared: false })
}

/// Whether `req` can share its source's seals.
fn shares(req: &CopyRequest) -> bool {
    let src = &req.source;
    let v = &src.manifest.version;
    let same_key = match (v.attrs.customer_key.as_deref(), req.customer.as_deref()) {
        (None, None) => true,
        (Some(check), Some(key)) => key.matches(check),
        _ => false,
    };
    matches!(req.target, PutTarget::Object { .. })
        && src.range.is_none()
        && src.manifest.tenant_number == req.tenant
        && src.policy == req.policy.name
        && same_key
        && req.checksum == v.attrs.checksum_algorithm
}

/// A copy sharing the source's seals: its manifest, then its commit, which fails
/// (and leaves nothing) if the source's last version went meanwhile.
async fn share(ctx: &PipelineCtx, req: CopyRequest) -> Result<CopyOutcome, PipelineError> {
    let PutTarget::Object { bucket, key, attrs, condition, lock } = req.target else {
        return Err(PipelineError::Task("a part copy cannot share seals".into()));
    };
    let source = req.source.manifest;
    let v = &source.version;
    let mut version = VersionRow {
        id: VersionId::generate(ctx.offload.random.as_ref())?,
        bucket,
        key,
        size: v.size,
        etag: v.etag.clone(),
        last_modified: now_ms(),
        attrs: ObjectAttrs { checksum_algorithm: v.attrs.checksum_algorithm, ..attrs },
        checksum_value: v.checksum_value.clone(),
        checksum_type: v.checksum_type.clone(),
        part_count: v.part_count,
        null_version: true,
        delete_marker: false,
        recorded_at: 0,
        lock,
    };
    let parts: Vec<PartRow> = source.parts.iter().map(|p| p.row()).collect();
    let with_seals: Vec<(PartRow, &Seal)> = parts.iter().cloned().zip(source.parts.iter().map(|p| &p.seal)).collect();
    let recorded = super::record::record_version(ctx, &mut version, &with_seals).await?;
    let record = &recorded.row;
    let committed = ctx.meta.copy_version(&version, &parts, record, &condition).await;
    if super::record::unless_committed(ctx, record, committed).await?.is_none() {
        super::record::forget(ctx, record).await;
        return Err(MetaError::NoSuchKey.into());
    }
    let checksum = version.attrs.checksum_algorithm.zip(version.checksum_value.clone());
    Ok(CopyOutcome {
        etag: version.etag,
        checksum,
        version: Some(version.id),
        version_shown: recorded.shown,
        last_modified: version.last_modified,
        shared: true,
    })
}

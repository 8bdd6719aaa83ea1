//! A write, end to end: a single-part object, or one part of a multipart upload.
//!
//! 1. The seal and its planned fragments are recorded `pending` (a crash from here
//!    on leaves garbage for the collector, never a partial object).
//! 2. The body streams into `n` fragments at the placed locations (`write.rs`).
//! 3. The write quorum must have landed, and the body must match every digest the
//!    client gave (Content-MD5, a checksum in a header or a trailer).
//! 4. An object's manifest is written to the locations (`record.rs`), then one
//!    transaction records the fragments and makes the object version (or the
//!    upload's part) visible. Anything short of that — an error, the client going
//!    away — discards the seal ([`DiscardOnDrop`]).

use std::sync::Arc;

use codec::ObjectEncoder;
use offload::aead::DataKey;
use tracing::{debug, warn};

use super::checksum::{HashResult, Hashes};
use super::write::{Plan, write_fragments};
use super::{BodyStream, Digest, PipelineCtx, PipelineError, fragment_name};
use crate::backend::FragmentRef;
use crate::config::Policy;
use crate::meta::{
    ChecksumAlgorithm, Compression, Fragment, FragmentState, MetaStore, ObjectAttrs, PartRow, Retention, Seal,
    SealFinish, SealId, SealState, UploadId, UploadPartRow, VersionId, VersionRow, WriteCondition, now_ms,
};

/// What becomes of a written seal.
#[derive(Debug, Clone)]
#[expect(clippy::large_enum_variant, reason = "one per request, moved into the write, never copied around")]
pub enum PutTarget {
    /// A whole object: the version of `key` in `bucket`.
    Object {
        /// Bucket.
        bucket: String,
        /// Key bytes.
        key: Vec<u8>,
        /// Descriptive fields.
        attrs: ObjectAttrs,
        /// What the key must hold when the version commits.
        condition: WriteCondition,
        /// The version's object lock.
        lock: Retention,
    },
    /// Part `number` of a multipart upload.
    Part {
        /// The upload.
        upload: UploadId,
        /// Part number (1–10,000).
        number: u32,
    },
}

/// The client's value of a checksum, read once the body has ended (an aws-chunked
/// trailer arrives after the body); `None` if it gave none.
pub type GivenChecksum = Box<dyn FnOnce() -> Option<String> + Send>;

/// The digests a client gave for its body: each is checked, and a mismatch stores
/// nothing.
#[derive(Default)]
pub struct Expected {
    /// `Content-MD5`.
    pub content_md5: Option<[u8; 16]>,
    /// The checksum of the algorithm asked for.
    pub checksum: Option<GivenChecksum>,
}

impl std::fmt::Debug for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expected")
            .field("content_md5", &self.content_md5.is_some())
            .field("checksum", &self.checksum.is_some())
            .finish()
    }
}

/// A write.
pub struct PutRequest {
    /// Where the fragments go and how they are coded.
    pub policy: Policy,
    /// The owning tenant's number (the key of its fragments in the local cache).
    pub tenant: u32,
    /// Bytes the body carries.
    pub len: u64,
    /// The body.
    pub body: BodyStream,
    /// The checksum to compute and keep, if one was asked for.
    pub checksum: Option<ChecksumAlgorithm>,
    /// Digests to check the body against.
    pub expect: Expected,
    /// What the seal becomes.
    pub target: PutTarget,
    /// The customer's key (SSE-C), which masks the data key stored.
    pub customer: Option<std::sync::Arc<super::CustomerKey>>,
    /// The access key that asked (its share of the transfer slots).
    pub requester: Option<std::sync::Arc<str>>,
}

impl std::fmt::Debug for PutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutRequest").field("len", &self.len).field("target", &self.target).finish_non_exhaustive()
    }
}

/// What a write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The seal written.
    pub seal: SealId,
    /// ETag (hex, no quotes).
    pub etag: String,
    /// The checksum computed, base64, if one was asked for.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
    /// The version made visible (`None` for a part).
    pub version: Option<VersionId>,
    /// Its `x-amz-version-id` (`None` in a bucket never versioned, and for a part).
    pub version_shown: Option<String>,
    /// Fragments that landed.
    pub stored: usize,
}

/// Marks a pending seal as garbage unless the write completed — also when the request
/// future is dropped halfway (the client went away).
struct DiscardOnDrop {
    meta: Option<MetaStore>,
    seal: SealId,
}

impl DiscardOnDrop {
    fn disarm(mut self) {
        self.meta = None;
    }
}

impl Drop for DiscardOnDrop {
    fn drop(&mut self) {
        if let Some(meta) = self.meta.take() {
            let seal = self.seal;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = meta.discard_seal(seal).await {
                        warn!(%seal, error = %e, "could not mark an abandoned write as garbage; the collector will find it");
                    }
                });
            }
        }
    }
}

/// Writes `req` end to end; see the module documentation.
pub async fn put(ctx: &Arc<PipelineCtx>, req: PutRequest) -> Result<PutOutcome, PipelineError> {
    let r = if packs(&req) { put_packed(ctx, req).await } else { put_inner(ctx, req).await };
    if let Err(PipelineError::WriteQuorum { .. }) = &r {
        ctx.quorum_failures.write.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    r
}

/// Whether `req` goes into a pack: a whole object no larger than its policy's
/// `pack_threshold`, not compressed, without an object lock (whose retention the
/// locations enforce per fragment).
fn packs(req: &PutRequest) -> bool {
    let PutTarget::Object { lock, .. } = &req.target else { return false };
    req.len <= req.policy.pack_threshold && req.policy.compression.is_none() && lock.mode.is_none() && !lock.legal_hold
}

/// Writes a small object through a pack (`pack.rs`): read and checked whole, sealed
/// under its own key, coded with whatever else is waiting; the pack's writer
/// records and commits it with the others (each under its own condition).
async fn put_packed(ctx: &Arc<PipelineCtx>, req: PutRequest) -> Result<PutOutcome, PipelineError> {
    let PutRequest { policy, tenant, len, body, checksum, expect, target, customer, requester } = req;
    let PutTarget::Object { bucket, key: object_key, attrs, condition, lock } = target else {
        return Err(PipelineError::Task("only whole objects are packed".into()));
    };
    let _permit =
        ctx.transfers.acquire(tenant, requester.as_ref()).await.map_err(|e| PipelineError::Task(e.to_string()))?;
    let mut hashes =
        Hashes::new(ctx.etag, checksum, expect.content_md5.is_some(), ctx.offload.crc32c.clone(), &ctx.hashes);
    let data = super::pack::read_whole(body, len, |chunk| hashes.update(chunk)).await?;
    let hashes = hashes.finish();
    // A body that does not match its digests never enters a pack.
    check_digests(&hashes, expect)?;
    let (id, key, wrapped_key) = new_key(ctx, customer.as_deref())?;
    let version = single_part_version(
        ctx,
        (bucket, object_key),
        len,
        &hashes,
        ObjectAttrs { checksum_algorithm: checksum, ..attrs },
        lock,
    )?;
    let (done, committed) = tokio::sync::oneshot::channel();
    let commit = super::pack::Commit { version, condition };
    let waiting = super::pack::Waiting { id, key, wrapped_key, body: data, policy, commit, done };
    ctx.packer.submit(ctx, tenant, waiting);
    let c = committed.await.map_err(|_| PipelineError::Task("the pack writer stopped".into()))??;
    debug!(pack = %c.pack, bytes = len, "packed object written");
    Ok(PutOutcome {
        seal: c.pack,
        etag: hashes.etag,
        checksum: hashes.checksum,
        version: Some(c.version),
        version_shown: c.shown,
        stored: c.stored,
    })
}

async fn put_inner(ctx: &Arc<PipelineCtx>, req: PutRequest) -> Result<PutOutcome, PipelineError> {
    let PutRequest { policy, tenant, len, body, checksum, expect, target, customer, requester } = req;
    let _permit =
        ctx.transfers.acquire(tenant, requester.as_ref()).await.map_err(|e| PipelineError::Task(e.to_string()))?;
    let (id, key, wrapped_key) = new_key(ctx, customer.as_deref())?;
    let params = policy.params;
    let matrix = ctx.matrices.get(params.k(), params.n(), &ctx.offload)?;
    let compression = policy.compression.filter(|_| len <= ctx.config.compress_max_object.0);
    // Only locations taking new fragments (not draining, drained or removed).
    let catalog = ctx.catalog.view();
    let places = ctx.placement.place(&catalog.writable(&policy), &id.0, &catalog.locations, &ctx.health)?;
    let encoder = ObjectEncoder::new(&ctx.offload, params, compression, id.codec(), &key, matrix, len)?;
    drop(key);
    let fragments: Vec<Fragment> = (0u8..)
        .zip(places)
        .map(|(index, location)| Fragment {
            index,
            location,
            name: fragment_name(id, index),
            size: 0,
            state: FragmentState::Pending,
            verified_at: 0,
        })
        .collect();
    let seal = Seal {
        id,
        state: SealState::Pending,
        size: len,
        params,
        compression: Compression::of(compression),
        sealed_lens: None,
        wrapped_key,
        created_at: now_ms(),
        slots: 0,
        fragments,
    };
    ctx.meta.insert_pending_seal(&seal, ctx.node.id()).await?;
    let guard = DiscardOnDrop { meta: Some(ctx.meta.clone()), seal: id };

    let refs = seal
        .fragments
        .iter()
        .map(|f| FragmentRef { location: f.location.clone(), name: f.name.clone(), len: 0, tenant: Some(tenant) })
        .collect();
    let hashes = Hashes::new(ctx.etag, checksum, expect.content_md5.is_some(), ctx.offload.crc32c.clone(), &ctx.hashes);
    let quorum = usize::from(policy.write_quorum);
    let plan = Plan { encoder, params, compressed: compression.is_some(), refs, len, quorum };
    let written = write_fragments(ctx, plan, body, hashes).await?;

    let mut fin = SealFinish { sealed_lens: written.sealed_lens, ..SealFinish::default() };
    let behind = written.behind;
    let late = |i: usize| behind.as_ref().is_some_and(|b| b.indexes().contains(&i));
    for (i, (f, landed)) in seal.fragments.iter().zip(&written.landed).enumerate() {
        match landed {
            Some(bytes) => {
                ctx.health.succeeded(&f.location);
                fin.stored.push((f.index, *bytes));
            }
            None => {
                if !late(i) {
                    ctx.health.failed(&f.location);
                }
                fin.missing.push(f.index);
            }
        }
    }
    if behind.is_some() {
        // Recorded missing until they land; repair waits for them meanwhile.
        fin.repair_after = now_ms().saturating_add(ctx.config.pending_grace.0.as_millis() as i64);
    }
    if fin.stored.len() < quorum {
        return Err(PipelineError::WriteQuorum { needed: quorum, landed: fin.stored.len() });
    }
    let hashes = written.hashes;
    check_digests(&hashes, expect)?;

    let (version, version_shown) = match target {
        PutTarget::Object { bucket, key, attrs, condition, lock } => {
            let attrs = ObjectAttrs { checksum_algorithm: checksum, ..attrs };
            let mut version = single_part_version(ctx, (bucket, key), len, &hashes, attrs, lock)?;
            let part = PartRow { number: 1, seal_id: id, offset: 0, size: len, member: None };
            let landed: Vec<Fragment> = seal
                .fragments
                .iter()
                .filter_map(|f| {
                    let (_, size) = fin.stored.iter().find(|(i, _)| *i == f.index)?;
                    Some(Fragment { state: FragmentState::Stored, size: *size, ..f.clone() })
                })
                .collect();
            let written = Seal { sealed_lens: fin.sealed_lens.clone(), fragments: landed, ..seal.clone() };
            let recorded = super::record::record_version(ctx, &mut version, &[(part.clone(), &written)]).await?;
            let record = &recorded.row;
            let committed = ctx.meta.commit_object(id, &fin, &version, &part, Some(record), &condition).await;
            super::record::unless_committed(ctx, record, committed).await?;
            (Some(version.id), recorded.shown)
        }
        PutTarget::Part { upload, number } => {
            let part = UploadPartRow {
                number,
                seal_id: id,
                size: len,
                etag: hashes.etag.clone(),
                checksum_value: hashes.checksum.as_ref().map(|c| c.1.clone()),
                last_modified: now_ms(),
            };
            if !ctx.meta.commit_part(upload, &fin, &part).await? {
                // The upload went away meanwhile; the commit discarded the seal.
                guard.disarm();
                return Err(PipelineError::NoSuchUpload);
            }
            (None, None)
        }
    };
    guard.disarm();
    if let Some(b) = behind {
        b.finish_in_background(ctx.clone(), id, seal.fragments.clone());
    }
    debug!(seal = %id, bytes = len, stored = fin.stored.len(), "seal written");
    Ok(PutOutcome {
        seal: id,
        etag: hashes.etag,
        checksum: hashes.checksum,
        version,
        version_shown,
        stored: fin.stored.len(),
    })
}

/// A new seal id and data key, the key wrapped under the master key (masked by the
/// customer's first, under SSE-C).
fn new_key(
    ctx: &PipelineCtx,
    customer: Option<&super::CustomerKey>,
) -> Result<(SealId, DataKey, codec::WrappedKey), PipelineError> {
    let random = ctx.offload.random.as_ref();
    let id = SealId::generate(random)?;
    let key = DataKey::generate(random)?;
    let wrapped = match customer {
        Some(c) => ctx.master.wrap(&c.mask(&key, id), &id.codec(), random)?,
        None => ctx.master.wrap(&key, &id.codec(), random)?,
    };
    Ok((id, key, wrapped))
}

/// The version a single-part write of `len` bytes makes of `key` in `bucket`.
fn single_part_version(
    ctx: &PipelineCtx,
    (bucket, key): (String, Vec<u8>),
    len: u64,
    hashes: &HashResult,
    attrs: ObjectAttrs,
    lock: Retention,
) -> Result<VersionRow, PipelineError> {
    Ok(VersionRow {
        id: VersionId::generate(ctx.offload.random.as_ref())?,
        bucket,
        key,
        size: len,
        etag: hashes.etag.clone(),
        last_modified: now_ms(),
        attrs,
        checksum_value: hashes.checksum.as_ref().map(|c| c.1.clone()),
        checksum_type: hashes.checksum.as_ref().map(|_| "FULL_OBJECT".to_string()),
        part_count: 1,
        null_version: true,
        delete_marker: false,
        recorded_at: 0,
        lock,
    })
}

/// Checks the body against the digests the client gave.
fn check_digests(hashes: &HashResult, expect: Expected) -> Result<(), PipelineError> {
    if let Some(md5) = expect.content_md5
        && hashes.md5 != Some(md5)
    {
        return Err(PipelineError::BadDigest(Digest::ContentMd5));
    }
    if let Some((alg, computed)) = &hashes.checksum
        && let Some(given) = expect.checksum.and_then(|given| given())
        && given.trim() != computed
    {
        return Err(PipelineError::BadDigest(Digest::Checksum(*alg)));
    }
    Ok(())
}

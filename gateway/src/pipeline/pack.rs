//! Packs: small objects written close in time, coded together.
//!
//! Each small object is read whole, hashed and checked against the client's digests
//! on its own request, then sealed under its own data key and id (so that one can be
//! dropped, or shown to someone, without the others) and coded as one segment of a
//! pack: one fragment set, one pending record, `n` uploads for all the objects that
//! were waiting. The pack's writer then writes its members' manifests as one pack
//! record (`p/<pack>`, `n - k + 1` copies) and commits the members' versions in
//! one transaction, each under its own condition (`MetaStore::commit_packed`): a
//! failed condition
//! leaves a dead slot, never a failed neighbour, and its manifest is taken out of
//! the record again before its client hears of it.
//!
//! Group commit without a timer: a queue per tenant and policy has at most one pack
//! in flight; whatever arrives meanwhile rides in the next one. A lone PUT on an
//! idle gateway is a pack of one and waits for nothing.
//!
//! A pack is an ordinary seal to everything that moves fragments: its fragments'
//! segments are its members' records, bound to the pack and the slot, so repair,
//! scrub and drains recode them without any key; the collector takes a pack when no
//! version uses any of its members, or, still pending, when none committed within
//! `pipeline.pending_grace`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use codec::fragment::{FragmentHeader, FragmentLayout};
use codec::{ObjectEncoder, WrappedKey};
use futures::StreamExt;
use offload::AlignedBuf;
use offload::aead::DataKey;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::uploads::{Behind, Uploads};
use super::{PipelineCtx, PipelineError, fragment_name};
use crate::backend::FragmentRef;
use crate::config::Policy;
use crate::ledger::ManifestRecord;
use crate::meta::{
    BucketRow, Compression, Fragment, FragmentState, PackMember, PartRow, RecordRow, Seal, SealFinish, SealId,
    SealState, VersionId, VersionRow, Versioning, WriteCondition, now_ms,
};
use crate::placement::PlacementError;

/// Members of one pack, at most.
const MAX_MEMBERS: usize = 256;

/// Plaintext bytes of one pack, at most (a pack is built in memory; a member larger
/// than this still goes, alone).
const MAX_BYTES: usize = 8 << 20;

/// An object waiting for its pack.
pub(super) struct Waiting {
    /// Its own id.
    pub(super) id: SealId,
    /// Its data key.
    pub(super) key: DataKey,
    /// The key, wrapped (masked by the customer's first, under SSE-C).
    pub(super) wrapped_key: WrappedKey,
    /// Its bytes.
    pub(super) body: Bytes,
    /// The policy it is written under.
    pub(super) policy: Policy,
    /// Its version, to record and commit.
    pub(super) commit: Commit,
    /// How that went.
    pub(super) done: oneshot::Sender<Result<Committed, PipelineError>>,
}

/// The version a member becomes.
pub(super) struct Commit {
    /// The version (whether it is its key's `null` one, and when it was recorded,
    /// are set when it is).
    pub(super) version: VersionRow,
    /// What its key must hold when it commits.
    pub(super) condition: WriteCondition,
}

/// A member committed.
#[derive(Debug, Clone)]
pub(super) struct Committed {
    /// Its pack.
    pub(super) pack: SealId,
    /// Fragments of the pack stored.
    pub(super) stored: usize,
    /// Its version.
    pub(super) version: VersionId,
    /// `x-amz-version-id`.
    pub(super) shown: Option<String>,
}

/// Which objects may share a pack: one tenant (the cache's key, and what a
/// tenant's removal deletes), one policy as it stands.
type QueueKey = (u32, String, u8, u8, u32);

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A pack of this queue is being written: the next one waits for it.
    leading: bool,
}

/// The packing queues, one per tenant and policy.
#[derive(Default)]
pub struct Packer {
    queues: Mutex<HashMap<QueueKey, Queue>>,
    /// Packs written (whose write quorum landed).
    pub written: AtomicU64,
    /// Objects in those packs (over `written`: the mean members per pack).
    pub members: AtomicU64,
    /// Packs rewritten by compaction.
    pub compacted: AtomicU64,
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer").finish_non_exhaustive()
    }
}

impl Packer {
    /// Queues `w` for a pack of `tenant`'s; starts writing one if none is in flight.
    pub(super) fn submit(&self, ctx: &Arc<PipelineCtx>, tenant: u32, w: Waiting) {
        let p = &w.policy.params;
        let key = (tenant, w.policy.name.clone(), p.k(), p.n(), p.segment_size());
        let lead = {
            let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let q = queues.entry(key.clone()).or_default();
            q.waiting.push(w);
            !std::mem::replace(&mut q.leading, true)
        };
        if lead {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                while let Some(batch) = ctx.packer.next_batch(&key) {
                    write_pack(&ctx, tenant, batch).await;
                }
            });
        }
    }

    /// The next pack's members, or `None` (and the queue idle) if none wait.
    fn next_batch(&self, key: &QueueKey) -> Option<Vec<Waiting>> {
        let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let q = queues.get_mut(key)?;
        if q.waiting.is_empty() {
            q.leading = false;
            return None;
        }
        let (mut count, mut bytes) = (0, 0);
        for w in &q.waiting {
            if count == MAX_MEMBERS || (count > 0 && bytes + w.body.len() > MAX_BYTES) {
                break;
            }
            count += 1;
            bytes += w.body.len();
        }
        Some(q.waiting.drain(..count).collect())
    }
}

/// Writes one pack of `batch`, records and commits its members, and tells each
/// how it went.
async fn write_pack(ctx: &Arc<PipelineCtx>, tenant: u32, batch: Vec<Waiting>) {
    let (members, commits): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|w| ((w.id, w.key, w.wrapped_key, w.body, w.policy), (w.commit, w.done))).unzip();
    match pack_and_upload(ctx, tenant, members).await {
        Ok(Packed { seal, fin, members, behind }) => {
            debug!(pack = %seal.id, members = members.len(), "pack written");
            ctx.packer.written.fetch_add(1, Ordering::Relaxed);
            ctx.packer.members.fetch_add(members.len() as u64, Ordering::Relaxed);
            commit_members(ctx, &seal, &fin, &members, commits).await;
            if let Some((b, planned)) = behind {
                b.finish_in_background(ctx.clone(), seal.id, planned);
            }
        }
        Err(e) => {
            for (_, tx) in commits {
                let _ = tx.send(Err(again(&e)));
            }
        }
    }
}

/// Writes the pack record of `members` where the pack's fragments landed, then
/// commits their versions in one transaction, each under its own condition. A
/// member whose
/// commit failed is taken out of the record again (the record goes if none
/// committed) before its client hears of it, so that a recovery never brings back
/// a write its client was told failed (best effort, as for a manifest of its own).
async fn commit_members(
    ctx: &PipelineCtx,
    seal: &Seal,
    fin: &SealFinish,
    members: &[PackMember],
    commits: Vec<(Commit, oneshot::Sender<Result<Committed, PipelineError>>)>,
) {
    // Each member's bucket, read once per pack (one deleted meanwhile fails its
    // members).
    let mut buckets: HashMap<String, Option<BucketRow>> = HashMap::new();
    let mut ready = Vec::with_capacity(commits.len());
    for (m, (c, tx)) in members.iter().zip(commits) {
        if !buckets.contains_key(&c.version.bucket) {
            let b = ctx.meta.bucket(&c.version.bucket).await.unwrap_or_else(|e| {
                warn!(error = %e, "the bucket of a pack's member not read");
                None
            });
            buckets.insert(c.version.bucket.clone(), b);
        }
        match buckets[&c.version.bucket].clone() {
            Some(b) => ready.push((m, c, b, tx)),
            None => drop(tx.send(Err(PipelineError::Meta(crate::meta::MetaError::NoSuchBucket)))),
        }
    }
    let mut commits = ready;
    let at = now_ms();
    let mut manifests = Vec::with_capacity(commits.len());
    let mut parts = Vec::with_capacity(commits.len());
    for (m, c, b, _) in &mut commits {
        c.version.null_version = Versioning::writes_null(b.versioning);
        c.version.recorded_at = at;
        let part = PartRow { number: 1, seal_id: seal.id, offset: 0, size: m.size, member: Some((*m).clone()) };
        manifests.push(ManifestRecord::of(at, &b.tenant, &b.policy, &c.version, &[(part.clone(), seal)]));
        parts.push(part);
    }
    if commits.is_empty() {
        return;
    }
    let row = match super::record::write_pack_record(ctx, seal, at, manifests.clone()).await {
        Ok(row) => row,
        Err(e) => {
            for (.., tx) in commits {
                let _ = tx.send(Err(again(&e)));
            }
            return;
        }
    };
    let rows: Vec<RecordRow> = commits
        .iter()
        .map(|(_, c, ..)| {
            let v = &c.version;
            RecordRow {
                version_id: Some(v.id),
                bucket: Some(v.bucket.clone()),
                key: Some(v.key.clone()),
                ..row.clone()
            }
        })
        .collect();
    let batch: Vec<_> = commits
        .iter()
        .zip(&parts)
        .zip(&rows)
        .map(|(((_, c, ..), part), r)| (&c.version, part, r, &c.condition))
        .collect();
    let outcomes = match ctx.meta.commit_packed(seal.id, fin, &batch).await {
        Ok(o) => o.into_iter().map(|r| r.map_err(PipelineError::from)).collect(),
        Err(e) => {
            let e = PipelineError::from(e);
            commits.iter().map(|_| Err(again(&e))).collect::<Vec<_>>()
        }
    };
    let results: Vec<_> = commits.into_iter().zip(outcomes).map(|((_, c, b, tx), r)| (c, b, tx, r)).collect();
    let kept: Vec<ManifestRecord> =
        manifests.into_iter().zip(&results).filter(|(_, (.., r))| r.is_ok()).map(|(m, _)| m).collect();
    if kept.len() < results.len() {
        super::record::rewrite_pack_record(ctx, seal, at, kept, &row).await;
    }
    for (c, b, tx, r) in results {
        let r = r.map(|_| Committed {
            pack: seal.id,
            stored: fin.stored.len(),
            version: c.version.id,
            shown: b.versioning.map(|_| c.version.shown_id()),
        });
        let _ = tx.send(r);
    }
}

/// The same error for each member of a failed pack.
fn again(e: &PipelineError) -> PipelineError {
    match e {
        PipelineError::WriteQuorum { needed, landed } => {
            PipelineError::WriteQuorum { needed: *needed, landed: *landed }
        }
        PipelineError::Placement(p) => PipelineError::Placement(PlacementError { n: p.n, reason: p.reason.clone() }),
        other => PipelineError::Task(format!("pack: {other}")),
    }
}

type Member = (SealId, DataKey, WrappedKey, Bytes, Policy);

/// A pack whose write quorum landed.
struct Packed {
    /// The pack, with the fragments that landed.
    seal: Seal,
    fin: SealFinish,
    members: Vec<PackMember>,
    /// Uploads still going, and every fragment planned.
    behind: Option<(Behind, Vec<Fragment>)>,
}

/// Seals and codes `members` into one pack, records it pending, uploads its `n`
/// fragments; the pack with what landed, once the write quorum did.
async fn pack_and_upload(ctx: &Arc<PipelineCtx>, tenant: u32, members: Vec<Member>) -> Result<Packed, PipelineError> {
    let policy = members.first().map(|m| m.4.clone()).ok_or_else(|| PipelineError::Task("empty pack".into()))?;
    let params = policy.params;
    let random = ctx.offload.random.as_ref();
    let id = SealId::generate(random)?;
    // The pack's own key seals nothing (each member has its own); it is kept so
    // that a pack is a seal like any other.
    let wrapped_key = ctx.master.wrap(&DataKey::generate(random)?, &id.codec(), random)?;
    let catalog = ctx.catalog.view();
    let places = ctx.placement.place(&catalog.writable(&policy), &id.0, &catalog.locations, &ctx.health)?;
    let matrix = ctx.matrices.get(params.k(), params.n(), &ctx.offload)?;
    let bytes: usize = members.iter().map(|m| m.3.len()).sum();

    let pack_members: Vec<PackMember> = (0u32..)
        .zip(&members)
        .map(|(slot, m)| PackMember { slot, id: m.0, size: m.3.len() as u64, wrapped_key: m.2.clone() })
        .collect();
    let offload = ctx.offload.clone();
    let crc = ctx.offload.crc32c.clone();
    let code = move || -> Result<(Vec<Bytes>, Vec<u32>), PipelineError> {
        let n = params.n();
        let slots = members.len() as u64;
        let mut fragments: Vec<BytesMut> = (0..n)
            .map(|index| {
                let h = FragmentHeader {
                    k: params.k(),
                    n,
                    index,
                    segment_size: params.segment_size(),
                    segment_count: slots,
                    version: id.codec(),
                };
                BytesMut::from(&h.to_bytes(crc.as_ref())[..])
            })
            .collect();
        let mut lens = Vec::with_capacity(members.len());
        for (slot, (member, key, _, body, _)) in (0u64..).zip(&members) {
            let mut enc =
                ObjectEncoder::new(&offload, params, None, member.codec(), key, matrix.clone(), body.len() as u64)?
                    .in_pack(id.codec(), slot)?;
            let e = enc.encode_segment(AlignedBuf::from_slice(body))?;
            lens.push(e.sealed_len());
            for (i, f) in fragments.iter_mut().enumerate() {
                f.extend_from_slice(e.record(i));
            }
        }
        Ok((fragments.into_iter().map(BytesMut::freeze).collect(), lens))
    };
    // A few kilobytes are coded here; more on the blocking pool.
    let (fragments, lens) =
        if bytes <= super::write::INLINE_MAX as usize { code()? } else { tokio::task::spawn_blocking(code).await?? };
    let flen = FragmentLayout::from_sealed_lens(params.k(), lens.iter().copied()).fragment_len();
    if fragments.iter().any(|f| f.len() as u64 != flen) {
        return Err(PipelineError::Task("pack fragments do not match their layout".into()));
    }
    let planned: Vec<Fragment> = (0u8..)
        .zip(places)
        .map(|(index, location)| Fragment {
            index,
            location,
            name: fragment_name(id, index),
            size: flen,
            state: FragmentState::Pending,
            verified_at: 0,
        })
        .collect();
    let mut seal = Seal {
        id,
        state: SealState::Pending,
        size: bytes as u64,
        params,
        compression: Compression::None,
        sealed_lens: Some(lens),
        wrapped_key,
        created_at: now_ms(),
        slots: pack_members.len() as u32,
        fragments: planned,
    };
    ctx.meta.insert_pending_pack(&seal, &pack_members, ctx.node.id()).await?;

    let stall = ctx.config.stall_timeout.0;
    let started = std::time::Instant::now();
    let uploads = seal.fragments.iter().zip(fragments).map(|(f, bytes)| {
        let at = FragmentRef { location: f.location.clone(), name: f.name.clone(), len: flen, tenant: Some(tenant) };
        let (store, health) = (ctx.store.clone(), ctx.health.clone());
        async move {
            let body = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) }).boxed();
            let started = std::time::Instant::now();
            // A location that stops taking data is given up on, as a streamed
            // write's is (`pipeline.stall_timeout`).
            match tokio::time::timeout(stall, store.put(&at, body)).await {
                Ok(Ok(())) => {
                    // A small write takes about a round trip: its location's latency.
                    health.observe_latency(&at.location, started.elapsed());
                    Some(flen)
                }
                Ok(Err(e)) => {
                    warn!(location = %at.location, error = %e, "pack fragment upload failed");
                    None
                }
                Err(_) => {
                    warn!(location = %at.location, "pack fragment upload gave up: its location stopped taking data");
                    None
                }
            }
        }
    });
    let quorum = usize::from(policy.write_quorum);
    let (landed, behind) = Uploads::spawn(uploads).settle(quorum, started).await;
    let late = |i: usize| behind.as_ref().is_some_and(|b| b.indexes().contains(&i));
    let mut fin = SealFinish::default();
    for (i, (f, bytes)) in seal.fragments.iter_mut().zip(landed).enumerate() {
        if bytes.is_some() {
            ctx.health.succeeded(&f.location);
            fin.stored.push((f.index, flen));
            f.state = FragmentState::Stored;
        } else {
            if !late(i) {
                ctx.health.failed(&f.location);
            }
            fin.missing.push(f.index);
        }
    }
    if fin.stored.len() < quorum {
        ctx.quorum_failures.write.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = ctx.meta.discard_seal(id).await {
            warn!(pack = %id, error = %e, "could not mark a failed pack as garbage; the collector will find it");
        }
        return Err(PipelineError::WriteQuorum { needed: quorum, landed: fin.stored.len() });
    }
    let behind = behind.map(|b| {
        // Recorded missing until they land; repair waits for them meanwhile.
        fin.repair_after = now_ms().saturating_add(ctx.config.pending_grace.0.as_millis() as i64);
        (b, seal.fragments.clone())
    });
    seal.fragments.retain(|f| f.state == FragmentState::Stored);
    Ok(Packed { seal, fin, members: pack_members, behind })
}

/// Reads a body of exactly `len` bytes whole, handing each chunk to `hash`.
pub(super) async fn read_whole(
    mut body: super::BodyStream,
    len: u64,
    mut hash: impl FnMut(&[u8]),
) -> Result<Bytes, PipelineError> {
    let mut buf = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(PipelineError::Body)?;
        let got = (buf.len() + chunk.len()) as u64;
        if got > len {
            return Err(PipelineError::BodyLength { expected: len, got });
        }
        hash(&chunk);
        buf.extend_from_slice(&chunk);
    }
    if buf.len() as u64 != len {
        return Err(PipelineError::BodyLength { expected: len, got: buf.len() as u64 });
    }
    Ok(buf.freeze())
}

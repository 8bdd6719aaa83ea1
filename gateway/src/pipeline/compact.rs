//! Compaction: a pack whose dead members (objects deleted or overwritten since)
//! weigh more than `durability.compact_dead_percent` of it is rewritten with its
//! live members only, and the old one is collected.
//!
//! Nothing is decrypted, nor even decoded: each new fragment is the old fragment of
//! the same index with the dead members' records left out and the live ones' bound
//! to the new pack and slot (`codec::fragment::rebind_record`, which refuses a
//! record failing its old checksum), so no key is needed and a location's fragment
//! stays a combination of the same symbols. In order, so that a crash anywhere
//! loses nothing, even with the database lost afterwards:
//!
//! 1. the new pack is recorded pending, and its `n` fragments are written;
//! 2. the moved versions' manifests name the new pack, and where each was before (a
//!    recovery uses the old place if the new pack's fragments are not there: a
//!    compaction cut short): those in the old pack's record go into a record of the
//!    new pack's (written later, so a recovery prefers it), those of their own are
//!    rewritten in place;
//! 3. one transaction makes the new pack stored, points exactly those versions at
//!    it, moves their rows to the new record and makes the old pack garbage if
//!    nothing else uses it.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use codec::fragment::{FragmentHeader, FragmentLayout, rebind_record};
use offload::aead::DataKey;
use tracing::{debug, warn};

use super::read::{FragReader, ReadFault, fragment_failed, fragment_layout, fragment_ref};
use super::{PipelineCtx, PipelineError, fragment_name};
use crate::backend::FragmentRef;
use crate::ledger::{self, ManifestRecord, PackRecord};
use crate::meta::{
    Compression, Fragment, FragmentState, LiveMember, MetaError, PackMember, RecordRow, Seal, SealFinish, SealId,
    SealState, VersionId, now_ms,
};

/// Compacts up to `limit` packs created before `before` whose dead share is at
/// least `dead_percent`; returns how many were rewritten.
pub async fn compact_once(
    ctx: &PipelineCtx,
    dead_percent: u8,
    before: i64,
    limit: i64,
) -> Result<usize, PipelineError> {
    let mut done = 0;
    for pack in ctx.meta.packs_to_compact(before, dead_percent, limit).await? {
        match compact_pack(ctx, &pack).await {
            Ok(true) => {
                done += 1;
                ctx.packer.compacted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => warn!(pack = %pack.id, error = %e, "pack not compacted; it stays as it is"),
        }
    }
    Ok(done)
}

/// Rewrites `pack` with its live members; `false` if it was left as it is (no
/// live member, a fragment missing — repair comes first —, or a location failing).
pub async fn compact_pack(ctx: &PipelineCtx, pack: &Seal) -> Result<bool, PipelineError> {
    let live = ctx.meta.live_members(pack.id).await?;
    let n = pack.params.n();
    if live.is_empty() || pack.healthy() < usize::from(n) {
        return Ok(false);
    }
    let lens = pack.sealed_lens.as_deref().unwrap_or_default();
    let new_lens: Vec<u32> = live
        .iter()
        .map(|(m, _)| lens.get(m.slot as usize).copied())
        .collect::<Option<_>>()
        .ok_or_else(|| MetaError::Corrupt(format!("pack {}: a member beyond its slots", pack.id)))?;
    let random = ctx.offload.random.as_ref();
    let id = SealId::generate(random)?;
    let flen = FragmentLayout::from_sealed_lens(pack.params.k(), new_lens.iter().copied()).fragment_len();

    // 1. The new fragments, each from the old one of its index.
    let layout = fragment_layout(pack)?;
    let built =
        futures::future::join_all(pack.fragments.iter().map(|f| rebuilt(ctx, pack, &layout, f, &live, id))).await;
    let mut fragments = Vec::with_capacity(built.len());
    for (f, b) in pack.fragments.iter().zip(built) {
        match b {
            Ok(bytes) if bytes.len() as u64 == flen => fragments.push(bytes),
            Ok(_) => return Err(PipelineError::Task(format!("pack {}: a rebuilt fragment's length", pack.id))),
            Err(fault) => {
                fragment_failed(ctx, pack, f, &fault).await;
                return Ok(false);
            }
        }
    }
    let members: Vec<PackMember> = (0u32..).zip(&live).map(|(slot, (m, _))| PackMember { slot, ..m.clone() }).collect();
    let mut seal = Seal {
        id,
        state: SealState::Pending,
        size: members.iter().map(|m| m.size).sum(),
        params: pack.params,
        compression: Compression::None,
        sealed_lens: Some(new_lens),
        // As a pack's own key seals nothing, a compacted pack's does not either.
        wrapped_key: ctx.master.wrap(&DataKey::generate(random)?, &id.codec(), random)?,
        created_at: now_ms(),
        slots: members.len() as u32,
        fragments: pack
            .fragments
            .iter()
            .map(|f| Fragment {
                index: f.index,
                location: f.location.clone(),
                name: fragment_name(id, f.index),
                size: flen,
                state: FragmentState::Pending,
                verified_at: 0,
            })
            .collect(),
    };
    ctx.meta.insert_pending_pack(&seal, &members, ctx.node.id()).await?;
    let uploads = seal.fragments.iter().zip(fragments).map(|(f, bytes)| {
        let at = FragmentRef { location: f.location.clone(), name: f.name.clone(), len: flen, tenant: None };
        async move {
            let body =
                futures::StreamExt::boxed(futures::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) }));
            let r = tokio::time::timeout(ctx.config.stall_timeout.0, ctx.locations.put(&at, body)).await;
            matches!(r, Ok(Ok(())))
        }
    });
    let landed = futures::future::join_all(uploads).await;
    if landed.iter().any(|ok| !ok) {
        // Every fragment or none: a compaction never lowers a pack's redundancy.
        ctx.meta.discard_seal(id).await?;
        return Ok(false);
    }
    seal.fragments.iter_mut().for_each(|f| f.state = FragmentState::Stored);
    let fin = SealFinish { stored: seal.fragments.iter().map(|f| (f.index, flen)).collect(), ..SealFinish::default() };

    // 2. The manifests, each naming the new place and the old one.
    let mut moves: Vec<(u32, u32, Vec<VersionId>)> = Vec::new();
    let mut in_records: BTreeMap<String, Vec<(VersionId, usize)>> = BTreeMap::new();
    for (i, ((old, versions), new)) in live.iter().zip(&members).enumerate() {
        let mut moved = Vec::new();
        for v in versions {
            match ctx.meta.manifest_record(*v).await? {
                Some(r) if r.name.starts_with("p/") => in_records.entry(r.name).or_default().push((*v, i)),
                _ => match restate_manifest(ctx, *v, pack, old, &seal, new).await {
                    Ok(true) => moved.push(*v),
                    Ok(false) => {}
                    Err(e) => warn!(version = %v, error = %e, "manifest not rewritten: the version stays in its pack"),
                },
            }
        }
        moves.push((old.slot, new.slot, moved));
    }
    let records = match move_records(ctx, pack, &seal, &live, &members, &in_records).await {
        Ok(r) => r,
        Err(e) => {
            ctx.meta.discard_seal(id).await?;
            return Err(e);
        }
    };
    let records: Vec<(String, RecordRow, Vec<String>)> = records
        .into_iter()
        .map(|(name, row, held)| {
            for (v, i) in &held {
                moves[*i].2.push(*v);
            }
            (name, row, held.iter().map(|(v, _)| v.to_string()).collect())
        })
        .collect();
    if moves.iter().all(|(_, _, v)| v.is_empty()) {
        ctx.meta.discard_seal(id).await?;
        return Ok(false);
    }
    // 3. One transaction.
    let moved = ctx.meta.commit_compaction(pack.id, id, &fin, &moves, &records).await?;
    // A change of lock or tags that read the old place before the switch may have
    // rewritten a manifest since: looked at once more (a no-op when none did).
    for ((old, _), new) in live.iter().zip(&members) {
        for v in moves.iter().filter(|(from, ..)| *from == old.slot).flat_map(|(_, _, v)| v) {
            if let Err(e) = restate_manifest(ctx, *v, pack, old, &seal, new).await {
                warn!(version = %v, error = %e, "manifest not checked again after a compaction");
            }
        }
    }
    debug!(from = %pack.id, to = %id, members = members.len(), versions = moved, "pack compacted");
    Ok(true)
}

/// Fragment `f` of `pack` (laid out as `layout`) read whole and rebuilt as the fragment of the same index
/// of pack `id` holding the `live` members only.
async fn rebuilt(
    ctx: &PipelineCtx,
    pack: &Seal,
    layout: &FragmentLayout,
    f: &Fragment,
    live: &[LiveMember],
    id: SealId,
) -> Result<Bytes, ReadFault> {
    let whole = layout.fragment_len();
    let stream = ctx.locations.get(&fragment_ref(f, whole, None), 0..whole).await.map_err(ReadFault::Transfer)?;
    let mut reader = FragReader::new(f.index, stream);
    reader.check_header(ctx, pack).await?;
    let (k, n, max) = (pack.params.k(), pack.params.n(), pack.params.max_sealed_len());
    let header = FragmentHeader {
        k,
        n,
        index: f.index,
        segment_size: pack.params.segment_size(),
        segment_count: live.len() as u64,
        version: id.codec(),
    };
    let crc = ctx.offload.crc32c.as_ref();
    let mut out = BytesMut::from(&header.to_bytes(crc)[..]);
    let mut next = 0u64;
    for slot in 0..layout.count() {
        let range = layout.record_range(slot);
        let record = reader.next_record((range.end - range.start) as usize).await.map_err(ReadFault::Transfer)?;
        if live.get(next as usize).is_some_and(|(m, _)| u64::from(m.slot) == slot) {
            let moved = rebind_record(&record, k, max, (&pack.id.codec(), slot), (&id.codec(), next), crc)
                .map_err(|e| ReadFault::Corrupt(format!("slot {slot}: {e}")))?;
            out.extend_from_slice(&moved);
            next += 1;
        }
    }
    Ok(out.freeze())
}

/// The manifests of `versions` (each with its index in `live` and `members`) read
/// from their pack records (`in_records`, by name), moved to `new` and written as
/// the new pack's record; for the commit, each old record with the new one's row
/// and the versions it now holds (with their indexes).
async fn move_records(
    ctx: &PipelineCtx,
    old: &Seal,
    new: &Seal,
    live: &[LiveMember],
    members: &[PackMember],
    in_records: &BTreeMap<String, Vec<(VersionId, usize)>>,
) -> Result<Vec<(String, RecordRow, Vec<(VersionId, usize)>)>, PipelineError> {
    let mut manifests = Vec::new();
    let mut names = Vec::new();
    for (name, versions) in in_records {
        let Some(row) = ctx.meta.record_named(name).await? else { continue };
        let bytes = ledger::read(ctx.locations.as_ref(), name, row.size, &row.locations).await?;
        let record: PackRecord = ctx.ledger.open(name, &bytes)?;
        let mut held = Vec::new();
        for mut m in record.manifests() {
            let Some((v, i)) = versions.iter().find(|(v, _)| v.to_string() == m.version_id) else { continue };
            if move_part(&mut m, old, &live[*i].0, new, &members[*i]) {
                manifests.push(m);
                held.push((*v, *i));
            }
        }
        names.push((name.clone(), held));
    }
    if manifests.is_empty() {
        return Ok(Vec::new());
    }
    let row = super::record::write_pack_record(ctx, new, now_ms(), manifests).await?;
    Ok(names.into_iter().map(|(name, held)| (name, row.clone(), held)).collect())
}

/// Makes `m`'s part in `old` (slot `from`) name `new` (slot `to`), and where it was
/// before; `false` if it has no such part.
fn move_part(m: &mut ManifestRecord, old: &Seal, from: &PackMember, new: &Seal, to: &PackMember) -> bool {
    let old_id = old.id.to_string();
    let Some(part) =
        m.parts.iter_mut().find(|p| p.seal.id == old_id && p.member.as_ref().is_some_and(|x| x.slot == from.slot))
    else {
        return false;
    };
    let mut before = part.clone();
    before.previous = None;
    part.seal = ledger::records::RecordSeal::of(new);
    part.member = Some(ledger::records::RecordMember::of(to));
    part.previous = Some(Box::new(before));
    true
}

/// Rewrites version `v`'s manifest of its own, every copy, so that its part in
/// `old` (slot `from`) names `new` (slot `to`), and where it was before. `false` if
/// the version has no manifest of its own (one from before manifests, or one in a
/// pack record) or no such part.
async fn restate_manifest(
    ctx: &PipelineCtx,
    v: VersionId,
    old: &Seal,
    from: &PackMember,
    new: &Seal,
    to: &PackMember,
) -> Result<bool, PipelineError> {
    let Some(row) = ctx.meta.manifest_record(v).await?.filter(|r| !r.name.starts_with("p/")) else {
        return Ok(false);
    };
    let bytes = ledger::read(ctx.locations.as_ref(), &row.name, row.size, &row.locations).await?;
    let mut m: ManifestRecord = ctx.ledger.open(&row.name, &bytes)?;
    if !move_part(&mut m, old, from, new, to) {
        return Ok(false);
    }
    let sealed = ctx.ledger.seal(&row.name, &m)?;
    let size = sealed.len() as u64;
    ledger::write(ctx.locations.as_ref(), &row.name, sealed, &row.locations, row.locations.len()).await?;
    ctx.meta.set_record_size(&row.name, size).await?;
    Ok(true)
}

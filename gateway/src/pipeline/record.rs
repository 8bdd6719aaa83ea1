//! The records a write or a delete leaves at the locations before it becomes
//! visible (see [`crate::ledger`]): a version's manifest, a delete's tombstone; and
//! the collection of records no longer needed.

use std::collections::{BTreeSet, HashMap};

use super::{PipelineCtx, PipelineError};
use crate::backend::FragmentRef;
use tracing::warn;

use crate::ledger::{self, Kind, LedgerError, ManifestRecord, PackRecord, RecordSeal, TombstoneRecord};
use crate::meta::{
    DeleteCondition, FragmentState, MetaError, PartRow, RecordKind, RecordRow, Seal, VersionId, VersionRef, VersionRow,
    Versioning, WriteCondition, now_ms,
};

impl From<LedgerError> for PipelineError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Quorum { needed, landed, .. } => PipelineError::WriteQuorum { needed, landed },
            LedgerError::Meta(m) => PipelineError::Meta(m),
            LedgerError::Transfer(t) => PipelineError::Transfer(t),
            other => PipelineError::Task(other.to_string()),
        }
    }
}

/// A manifest written: its row for the commit, and the version id S3 shows for
/// the version (`None` in a bucket whose versioning was never enabled).
pub(super) struct Recorded {
    /// The record's row.
    pub row: RecordRow,
    /// `x-amz-version-id`.
    pub shown: Option<String>,
}

/// Writes the manifest of `version`, made of `parts` (each with its seal, whose
/// stored fragments say where the record goes). The bucket's versioning state
/// decides whether the version is its key's `null` version; `version` is set so,
/// and to when it was recorded.
pub(super) async fn record_version(
    ctx: &PipelineCtx,
    version: &mut VersionRow,
    parts: &[(PartRow, &Seal)],
) -> Result<Recorded, PipelineError> {
    let bucket = ctx.meta.bucket(&version.bucket).await?.ok_or(PipelineError::Meta(MetaError::NoSuchBucket))?;
    version.null_version = Versioning::writes_null(bucket.versioning);
    version.recorded_at = now_ms();
    let (mut locations, mut k) = where_fragments_are(parts);
    if parts.is_empty() {
        // A delete marker: where the key's latest version is recorded, or, for a
        // key without one, at every location.
        let (at, marker_k) = marker_locations(ctx, &version.bucket, &version.key).await?;
        locations.extend(at);
        k = marker_k;
    }
    if let Some(lock) = super::locks::fragment_lock(&version.lock) {
        let seals: Vec<&Seal> = parts.iter().map(|(_, seal)| *seal).collect();
        super::locks::lock_seals(ctx, &seals, lock).await;
    }
    let row = write_manifest(ctx, &bucket, version, parts, locations.into_iter().collect(), k).await?;
    Ok(Recorded { row, shown: bucket.versioning.map(|_| version.shown_id()) })
}

/// The locations holding stored fragments of `parts`, and their largest `k`.
fn where_fragments_are(parts: &[(PartRow, &Seal)]) -> (BTreeSet<String>, usize) {
    let mut locations = BTreeSet::new();
    let mut k = 1;
    for (_, seal) in parts {
        k = k.max(usize::from(seal.params.k()));
        locations
            .extend(seal.fragments.iter().filter(|f| f.state == FragmentState::Stored).map(|f| f.location.clone()));
    }
    (locations, k)
}

/// The `k` of a version made of `parts` (its first seal's; 1 for none).
async fn k_of(ctx: &PipelineCtx, parts: &[PartRow]) -> Result<usize, MetaError> {
    Ok(match parts.first() {
        Some(p) => ctx.meta.seal(p.seal_id).await?.map_or(1, |s| usize::from(s.params.k())),
        None => 1,
    })
}

/// Where a delete marker's manifest goes, and the `k` whose quorum of copies it
/// needs: as the key's latest version's manifest, else every location (k of 1).
async fn marker_locations(ctx: &PipelineCtx, bucket: &str, key: &[u8]) -> Result<(Vec<String>, usize), PipelineError> {
    if let Some((latest, parts)) = ctx.meta.current_version(bucket, key).await?
        && let Some(m) = ctx.meta.manifest_record(latest.id).await?
    {
        let k = k_of(ctx, &parts).await?;
        return Ok((m.locations, k));
    }
    Ok((ctx.catalog.view().locations.keys().cloned().collect(), 1))
}

/// Seals and writes `version`'s manifest to `locations`, as many copies as it
/// takes for one to remain whenever `k` fragments do (repair and drains add one
/// where they put a fragment: `follow_fragment`).
async fn write_manifest(
    ctx: &PipelineCtx,
    bucket: &crate::meta::BucketRow,
    version: &VersionRow,
    parts: &[(PartRow, &Seal)],
    locations: Vec<String>,
    k: usize,
) -> Result<RecordRow, PipelineError> {
    let at = version.recorded_at;
    let name = ctx.ledger.name(Kind::Manifest, &version.id.to_string());
    let record = ManifestRecord::of(at, &bucket.tenant, &bucket.policy, version, parts);
    let sealed = ctx.ledger.seal(&name, &record)?;
    let size = sealed.len() as u64;
    let copies = ledger::quorum(locations.len(), k);
    let landed = ledger::write_copies(ctx.locations.as_ref(), &name, sealed, &locations, copies).await?;
    Ok(RecordRow {
        size,
        name,
        kind: RecordKind::Manifest,
        version_id: Some(version.id),
        bucket: Some(version.bucket.clone()),
        key: Some(version.key.clone()),
        at,
        locations: landed,
        digest: String::new(),
    })
}

/// Writes the pack record of `manifests` (of members of `seal`, recorded `at`)
/// where the pack's fragments landed, as many copies as a manifest of its own
/// gets; its row, which each member's version makes its own.
pub(super) async fn write_pack_record(
    ctx: &PipelineCtx,
    seal: &Seal,
    at: i64,
    manifests: Vec<ManifestRecord>,
) -> Result<RecordRow, PipelineError> {
    let name = ctx.ledger.name(Kind::Pack, &seal.id.to_string());
    let sealed = seal_pack_record(ctx, &name, seal, at, manifests)?;
    let size = sealed.len() as u64;
    let locations: Vec<String> = seal
        .fragments
        .iter()
        .filter(|f| f.state == FragmentState::Stored)
        .map(|f| f.location.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let copies = ledger::quorum(locations.len(), usize::from(seal.params.k()));
    let landed = ledger::write_copies(ctx.locations.as_ref(), &name, sealed, &locations, copies).await?;
    Ok(RecordRow {
        size,
        name,
        kind: RecordKind::Manifest,
        version_id: None,
        bucket: None,
        key: None,
        at,
        locations: landed,
        digest: String::new(),
    })
}

/// The pack record `name` of `manifests` (members of `seal`), written at `at`,
/// sealed.
fn seal_pack_record(
    ctx: &PipelineCtx,
    name: &str,
    seal: &Seal,
    at: i64,
    manifests: Vec<ManifestRecord>,
) -> Result<bytes::Bytes, PipelineError> {
    let record = PackRecord::of(at, RecordSeal::of(seal), manifests).map_err(PipelineError::Task)?;
    Ok(ctx.ledger.seal(name, &record)?)
}

/// Writes the pack record `row` again with `kept` only (members whose commit
/// failed taken out), or deletes it if none is kept. Best effort: it is logged.
pub(super) async fn rewrite_pack_record(
    ctx: &PipelineCtx,
    seal: &Seal,
    at: i64,
    kept: Vec<ManifestRecord>,
    row: &RecordRow,
) {
    let store = ctx.locations.as_ref();
    if kept.is_empty() {
        ledger::delete(store, &row.name, &row.locations).await;
        return;
    }
    let done = async {
        let sealed = seal_pack_record(ctx, &row.name, seal, at, kept)?;
        let size = sealed.len() as u64;
        ledger::write(store, &row.name, sealed, &row.locations, row.locations.len()).await?;
        ctx.meta.set_record_size(&row.name, size).await?;
        Ok::<_, PipelineError>(())
    };
    if let Err(e) = done.await {
        warn!(record = %row.name, error = %e, "pack record not rewritten without a member that failed to commit");
    }
}

/// Passes on the result of committing the version of manifest `record`; if the
/// commit failed (a condition did not hold, the database failed), the manifest's
/// copies go too, so that a recovery never brings back a write its client was
/// told failed. Best effort: the records sweep removes what this leaves.
pub(super) async fn unless_committed<T>(
    ctx: &PipelineCtx,
    record: &RecordRow,
    committed: Result<T, MetaError>,
) -> Result<T, PipelineError> {
    if committed.is_err() {
        forget(ctx, record).await;
    }
    Ok(committed?)
}

/// Deletes the copies of a manifest whose version was never committed.
pub(super) async fn forget(ctx: &PipelineCtx, record: &RecordRow) {
    ledger::delete(ctx.locations.as_ref(), &record.name, &record.locations).await;
}

/// Writes manifests for up to `batch` visible versions that have none (written by
/// a version of the gateway from before manifests); returns how many were written.
pub async fn backfill(ctx: &PipelineCtx, batch: i64) -> Result<usize, PipelineError> {
    let mut written = 0;
    for (bucket, key) in ctx.meta.versions_without_manifest(batch).await? {
        let Some(m) = ctx.meta.manifest(&bucket, &key).await? else { continue };
        let parts: Vec<(PartRow, &Seal)> = m.parts.iter().map(|p| (p.row(), &p.seal)).collect();
        let bucket = ctx.meta.bucket(&m.version.bucket).await?.ok_or(MetaError::NoSuchBucket)?;
        let (locations, k) = where_fragments_are(&parts);
        let row = write_manifest(ctx, &bucket, &m.version, &parts, locations.into_iter().collect(), k).await?;
        if ctx.meta.add_manifest_record(&row).await? {
            written += 1;
        } else {
            ledger::delete(ctx.locations.as_ref(), &row.name, &row.locations).await;
        }
    }
    Ok(written)
}

/// What a delete did, as S3 answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The version deleted, or the delete marker added (`x-amz-version-id`);
    /// `None` in a bucket whose versioning was never enabled.
    pub version: Option<String>,
    /// A delete marker was added, or the version deleted was one
    /// (`x-amz-delete-marker`).
    pub marker: bool,
}

/// Deletes a key if its object meets `condition`. In a bucket whose versioning
/// was never enabled, its one version goes (a tombstone is written where its
/// manifest is, then the delete is committed, of that version only); otherwise a
/// delete marker becomes its latest version (in a suspended bucket, replacing the
/// key's `null` version).
pub async fn delete(
    ctx: &PipelineCtx,
    bucket: &str,
    key: &[u8],
    condition: &DeleteCondition,
) -> Result<Deleted, PipelineError> {
    let b = ctx.meta.bucket(bucket).await?.ok_or(PipelineError::Meta(MetaError::NoSuchBucket))?;
    if b.versioning.is_some() {
        return add_marker(ctx, bucket, key, condition).await;
    }
    // A writer that replaced the version meanwhile: try again with the new one.
    for _ in 0..4 {
        let Some((current, parts)) = ctx.meta.current_version(bucket, key).await? else {
            return match condition.is_any() {
                true => Ok(Deleted::default()),
                false => Err(MetaError::NoSuchKey.into()),
            };
        };
        if !condition.holds(&current) {
            return Err(MetaError::Precondition("the object does not meet the delete's conditions").into());
        }
        let row = write_tombstone(ctx, &current, &parts, false).await?;
        if ctx.meta.delete_object(bucket, key, Some(current.id), Some(&row)).await?.is_some() {
            return Ok(Deleted::default());
        }
        // Not recorded: the tombstone goes (it covers only versions already
        // replaced; the sweep removes it if this fails).
        ledger::delete(ctx.locations.as_ref(), &row.name, &row.locations).await;
    }
    Err(PipelineError::Meta(MetaError::Conflict("the key kept changing under the delete".into())))
}

/// Adds a delete marker as the latest version of a key whose object meets
/// `condition` (its manifest recorded first, like a version's).
async fn add_marker(
    ctx: &PipelineCtx,
    bucket: &str,
    key: &[u8],
    condition: &DeleteCondition,
) -> Result<Deleted, PipelineError> {
    let mut write_condition = WriteCondition::Any;
    if !condition.is_any() {
        let (current, _) = ctx.meta.current_version(bucket, key).await?.ok_or(MetaError::NoSuchKey)?;
        if !condition.holds(&current) {
            return Err(MetaError::Precondition("the object does not meet the delete's conditions").into());
        }
        // Still that object when the marker is committed.
        write_condition = WriteCondition::ETag(current.etag);
    }
    let mut marker = VersionRow {
        id: VersionId::generate(ctx.offload.random.as_ref())?,
        bucket: bucket.to_string(),
        key: key.to_vec(),
        size: 0,
        etag: String::new(),
        last_modified: now_ms(),
        attrs: Default::default(),
        checksum_value: None,
        checksum_type: None,
        part_count: 0,
        null_version: false,
        delete_marker: true,
        recorded_at: 0,
        lock: Default::default(),
    };
    let recorded = record_version(ctx, &mut marker, &[]).await?;
    let committed = ctx.meta.commit_marker(&marker, Some(&recorded.row), &write_condition).await;
    unless_committed(ctx, &recorded.row, committed).await?;
    Ok(Deleted { version: recorded.shown, marker: true })
}

/// Deletes version `which` of a key for good: a tombstone of that version alone
/// is written where its manifest is, then the delete is committed. A version the
/// key does not have is deleted already; one its object lock protects is not
/// deleted (`Locked`; governance retention gives way to `bypass_governance`).
pub async fn delete_version(
    ctx: &PipelineCtx,
    bucket: &str,
    key: &[u8],
    which: VersionRef,
    bypass_governance: bool,
) -> Result<Deleted, PipelineError> {
    let shown = |v: &VersionRow| Deleted { version: Some(v.shown_id()), marker: v.delete_marker };
    let Some(m) = ctx.meta.version_manifest(bucket, key, which).await? else {
        let version = match which {
            VersionRef::Null => "null".to_string(),
            VersionRef::Id(id) => id.to_string(),
        };
        return Ok(Deleted { version: Some(version), marker: false });
    };
    let parts: Vec<PartRow> = m.parts.iter().map(|p| p.row()).collect();
    let v = m.version;
    // Refused before anything is written (and again in the delete's transaction).
    if let Some(why) = v.lock.blocks(now_ms(), bypass_governance) {
        return Err(MetaError::Locked(why).into());
    }
    let row = write_tombstone(ctx, &v, &parts, true).await?;
    match ctx.meta.delete_version(bucket, key, v.id, Some(&row), bypass_governance).await {
        Ok(Some(_)) => Ok(shown(&v)),
        done => {
            // Gone meanwhile, or locked meanwhile: so is this tombstone's reason.
            ledger::delete(ctx.locations.as_ref(), &row.name, &row.locations).await;
            done.map(|_| shown(&v)).map_err(Into::into)
        }
    }
}

/// Changes what is kept of version `id` of a key besides its data — its object
/// lock and tags — to what `change` makes of the version (or refuses, with why).
/// Its manifest at the locations is rewritten first, every copy, so that a
/// recovery keeps the change; then the change commits. `None` if the key has no
/// such version.
pub async fn restate(
    ctx: &PipelineCtx,
    bucket: &str,
    key: &[u8],
    id: VersionId,
    change: impl Fn(&VersionRow) -> Result<VersionRow, MetaError>,
) -> Result<Option<VersionRow>, PipelineError> {
    // A concurrent change meanwhile: again, from what it made.
    for _ in 0..4 {
        let Some(m) = ctx.meta.version_manifest(bucket, key, VersionRef::Id(id)).await? else { return Ok(None) };
        let old = &m.version;
        let new = change(old)?;
        if new == *old {
            return Ok(Some(new));
        }
        if let Some(lock) = super::locks::fragment_lock(&new.lock)
            && super::locks::fragment_lock(&old.lock) != Some(lock)
        {
            let seals: Vec<&Seal> = m.parts.iter().map(|p| &p.seal).collect();
            super::locks::lock_seals(ctx, &seals, lock).await;
        }
        if let Some(row) = ctx.meta.manifest_record(id).await? {
            let b = ctx.meta.bucket(bucket).await?.ok_or(MetaError::NoSuchBucket)?;
            let parts: Vec<(PartRow, &Seal)> = m.parts.iter().map(|p| (p.row(), &p.seal)).collect();
            let record = ManifestRecord::of(row.at, &b.tenant, &b.policy, &new, &parts);
            // A manifest in a pack record becomes one of its own (a pack record
            // is written once, by one writer).
            let name = match row.name.starts_with("p/") {
                true => ctx.ledger.name(Kind::Manifest, &id.to_string()),
                false => row.name.clone(),
            };
            let sealed = ctx.ledger.seal(&name, &record)?;
            let size = sealed.len() as u64;
            ledger::write(ctx.locations.as_ref(), &name, sealed, &row.locations, row.locations.len()).await?;
            if name != row.name {
                let own = RecordRow { name: name.clone(), size, ..row.clone() };
                if !ctx.meta.split_record(&row.name, id, &own).await? {
                    // Moved meanwhile (a compaction) or gone: from the start.
                    ledger::delete(ctx.locations.as_ref(), &name, &row.locations).await;
                    continue;
                }
            }
        }
        let lock_set = new.lock == old.lock || ctx.meta.set_lock(id, &old.lock, &new.lock).await?;
        let tags_set =
            new.attrs.tags == old.attrs.tags || ctx.meta.set_tags(id, &old.attrs.tags, &new.attrs.tags).await?;
        if lock_set && tags_set {
            return Ok(Some(new));
        }
    }
    Err(PipelineError::Meta(MetaError::Conflict("the object's lock or tags kept changing".into())))
}

/// Writes the tombstone of `version` (made of `parts`) wherever its manifest is
/// (every copy of it must meet the tombstone): of that version alone when
/// `only_version`, else of every manifest of its key recorded up to it.
async fn write_tombstone(
    ctx: &PipelineCtx,
    version: &VersionRow,
    parts: &[PartRow],
    only_version: bool,
) -> Result<RecordRow, PipelineError> {
    let manifest = ctx.meta.manifest_record(version.id).await?;
    let k = k_of(ctx, parts).await?;
    // Where the manifest is; a version from before manifests: everywhere.
    let (locations, covers) = match &manifest {
        Some(m) => (m.locations.clone(), m.at),
        None => (ctx.catalog.view().locations.keys().cloned().collect(), now_ms()),
    };
    let name = ctx.ledger.name(Kind::Tombstone, &ctx.ledger.random_id()?);
    let record = TombstoneRecord {
        format: ledger::FORMAT,
        at: now_ms(),
        covers,
        bucket: version.bucket.clone(),
        key: ledger::records::key_hex(&version.key),
        version_id: version.id.to_string(),
        only_version,
    };
    let sealed = ctx.ledger.seal(&name, &record)?;
    let size = sealed.len() as u64;
    let needed = match &manifest {
        Some(_) => locations.len(),
        None => ledger::quorum(locations.len(), k),
    };
    let landed = ledger::write(ctx.locations.as_ref(), &name, sealed, &locations, needed).await?;
    Ok(RecordRow {
        size,
        name,
        kind: RecordKind::Tombstone,
        version_id: None,
        bucket: Some(version.bucket.clone()),
        key: Some(version.key.clone()),
        at: covers,
        locations: landed,
        digest: String::new(),
    })
}

/// After a fragment of `seal` was written to `location` (a repair, a drain): the
/// manifests of the versions using the seal get a copy there, so that their copies
/// follow the fragments as locations are lost and replaced (a copy recorded there but
/// gone, with a replaced disk, is made again). A copy is read from
/// `avoid` (a location being drained, perhaps gone) only when no other has one.
/// Best effort.
pub async fn follow_fragment(ctx: &PipelineCtx, seal: crate::meta::SealId, location: &str, avoid: Option<&str>) {
    let records = match ctx.meta.manifest_records_of_seal(seal).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%seal, error = %e, "manifests of a moved fragment not found");
            return;
        }
    };
    for r in records {
        if r.locations.iter().any(|l| l == location) {
            // Recorded there: a fragment rebuilt in place may mean a disk replaced,
            // taking the copy with it. Made again only if it is gone.
            let lost = matches!(
                ledger::read(ctx.locations.as_ref(), &r.name, r.size, &[location.to_string()]).await,
                Err(ledger::LedgerError::Transfer(crate::backend::TransferError::NotFound))
            );
            if !lost {
                continue;
            }
        }
        let copied = async {
            let mut holders = r.locations.clone();
            holders.sort_by_key(|l| Some(l.as_str()) == avoid);
            let bytes = ledger::read(ctx.locations.as_ref(), &r.name, r.size, &holders).await?;
            ledger::write(ctx.locations.as_ref(), &r.name, bytes, &[location.to_string()], 1).await?;
            ctx.meta.add_record_location(&r.name, location).await?;
            Ok::<_, LedgerError>(())
        };
        if let Err(e) = copied.await {
            tracing::warn!(record = %r.name, location, error = %e, "manifest not copied where its fragment went");
        }
    }
}

/// Moves every record off `from` (a drain): each manifest or tombstone gets a copy
/// at the first of `targets` that has none, then the copy at `from` is deleted.
/// Returns the records moved; those that failed stay (the drain tries again).
pub async fn rehome_records(ctx: &PipelineCtx, from: &str, targets: &[String]) -> Result<(usize, usize), MetaError> {
    let (mut moved, mut failed) = (0, 0);
    let mut after = String::new();
    loop {
        let page = ctx.meta.records_at(from, &after, 256).await?;
        let Some(last) = page.last() else { break };
        after = last.name.clone();
        for r in page {
            let target = match r.kind {
                RecordKind::Catalog => None,
                _ => targets.iter().find(|t| !r.locations.contains(t)).cloned(),
            };
            let done = async {
                if let Some(t) = &target {
                    let mut holders = r.locations.clone();
                    holders.sort_by_key(|l| l == from);
                    let bytes = ledger::read(ctx.locations.as_ref(), &r.name, r.size, &holders).await?;
                    ledger::write(ctx.locations.as_ref(), &r.name, bytes, std::slice::from_ref(t), 1).await?;
                }
                let mut locations: Vec<String> = r.locations.iter().filter(|l| *l != from).cloned().collect();
                locations.extend(target.clone());
                ctx.meta.set_record_locations(&r.name, &locations).await?;
                ledger::delete(ctx.locations.as_ref(), &r.name, &[from.to_string()]).await;
                Ok::<_, LedgerError>(())
            };
            match done.await {
                Ok(()) => moved += 1,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(record = %r.name, from, error = %e, "record not moved off a draining location");
                }
            }
        }
    }
    Ok((moved, failed))
}

/// Deletes up to `batch` records no longer needed at their locations (in bulk, as
/// fragments are), and forgets those gone everywhere; the others keep only the
/// locations still to do. Returns how many were forgotten.
pub async fn collect_records(ctx: &PipelineCtx, batch: i64) -> Result<usize, MetaError> {
    let records = ctx.meta.collectable_records(batch).await?;
    if records.is_empty() {
        return Ok(0);
    }
    let refs = records
        .iter()
        .flat_map(|r| {
            r.locations.iter().map(|l| FragmentRef { location: l.clone(), name: r.name.clone(), len: 0, tenant: None })
        })
        .collect();
    let mut left: HashMap<String, Vec<String>> = HashMap::new();
    for f in super::cleanup::delete_fragments(ctx, refs).await {
        left.entry(f.name).or_default().push(f.location);
    }
    let gone: Vec<String> = records.iter().filter(|r| !left.contains_key(&r.name)).map(|r| r.name.clone()).collect();
    // Not in the way of the rest: their turn comes again after the others'.
    ctx.meta.postpone_records(&left.into_iter().collect::<Vec<_>>()).await?;
    ctx.meta.forget_records(&gone).await?;
    Ok(gone.len())
}

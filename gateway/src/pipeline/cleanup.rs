//! Garbage collection: deleting the fragments of seals nothing references — retired
//! versions, aborted or replaced parts, and writes that died: pending for longer than
//! `pipeline.pending_grace`, or pending from before this process started when this
//! node wrote them (or, on a single-node SQLite store, whoever did).

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt as _;
use tracing::debug;

use super::PipelineCtx;
use super::read::fragment_ref;
use crate::backend::{BATCH_DELETE_MAX, FragmentRef, TransferError};
use crate::meta::{Backend, DeadWrites, MetaError, SealId, now_ms};

/// Batch deletes in flight at once (each up to 1,000 names at one location).
const BATCHES_IN_FLIGHT: usize = 8;
/// Single deletes in flight at once per batch, at a location that cannot delete in
/// bulk.
const SINGLES_IN_FLIGHT: usize = 8;

/// Collects up to `batch` seals once: their fragments deleted (in bulk where the
/// location can, else many at once), then the seals whose fragments are all gone
/// forgotten in one transaction; and up to `batch` records no longer needed.
/// Returns how many seals were forgotten.
pub async fn collect_once(ctx: &PipelineCtx, dead: &DeadWrites<'_>, batch: i64) -> Result<usize, MetaError> {
    let (read, seals): (Vec<_>, Vec<_>) =
        ctx.meta.collectable_seals(dead, batch).await?.into_iter().partition(|s| ctx.reads.held(s.id));
    if !read.is_empty() {
        // Still streamed to a client: the next round, after the others.
        ctx.meta.postpone_collection(&read.iter().map(|s| s.id).collect::<Vec<_>>()).await?;
    }
    let mut owner = HashMap::new();
    let mut refs = Vec::new();
    for seal in &seals {
        for f in &seal.fragments {
            let r = fragment_ref(f, f.size, None);
            owner.insert((r.location.clone(), r.name.clone()), seal.id);
            refs.push(r);
        }
    }
    let failed: HashSet<SealId> = delete_fragments(ctx, refs)
        .await
        .into_iter()
        .filter_map(|r| owner.get(&(r.location, r.name)).copied())
        .collect();
    let gone: Vec<SealId> = seals.iter().map(|s| s.id).filter(|id| !failed.contains(id)).collect();
    if !failed.is_empty() {
        // Not in the way of the rest: their turn comes again after the others'.
        ctx.meta.postpone_collection(&failed.into_iter().collect::<Vec<_>>()).await?;
    }
    let forgotten = ctx.meta.forget_seals(&gone).await?;
    // The records of what was retired go the same way (their own batch).
    super::record::collect_records(ctx, batch).await?;
    Ok(forgotten)
}

/// Deletes fragments: each location's in batches of up to 1,000 names where it can
/// delete in bulk (S3 `DeleteObjects`, the edge store), one by one where it cannot
/// (Swift through TempURLs); a fragment that is not there counts as deleted.
/// Returns those that could not be deleted.
pub async fn delete_fragments(ctx: &PipelineCtx, refs: Vec<FragmentRef>) -> Vec<FragmentRef> {
    let mut by_location: BTreeMap<String, Vec<FragmentRef>> = BTreeMap::new();
    for r in refs {
        by_location.entry(r.location.clone()).or_default().push(r);
    }
    let batches: Vec<(String, Vec<FragmentRef>)> = by_location
        .into_iter()
        .flat_map(|(location, refs)| {
            refs.chunks(BATCH_DELETE_MAX).map(|c| (location.clone(), c.to_vec())).collect::<Vec<_>>()
        })
        .collect();
    futures::stream::iter(batches)
        .map(|(location, refs)| delete_batch(ctx, location, refs))
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

/// One batch at one location; what could not be deleted.
async fn delete_batch(ctx: &PipelineCtx, location: String, refs: Vec<FragmentRef>) -> Vec<FragmentRef> {
    let names: Vec<String> = refs.iter().map(|r| r.name.clone()).collect();
    match ctx.store.delete_batch(&location, &names).await {
        Ok(failed) if failed.is_empty() => Vec::new(),
        Ok(failed) => {
            debug!(location = %location, failed = failed.len(), first = ?failed.first(), "fragment deletes failed; will retry");
            let failed: HashSet<String> = failed.into_iter().map(|(name, _)| name).collect();
            refs.into_iter().filter(|r| failed.contains(&r.name)).collect()
        }
        Err(TransferError::Unsupported(_)) => {
            futures::stream::iter(refs)
                .map(|r| async move {
                    match ctx.store.delete(&r).await {
                        Ok(()) => None,
                        Err(e) => {
                            debug!(location = %r.location, error = %e, "fragment delete failed; will retry");
                            ctx.health.failed(&r.location);
                            Some(r)
                        }
                    }
                })
                .buffer_unordered(SINGLES_IN_FLIGHT)
                .filter_map(std::future::ready)
                .collect()
                .await
        }
        Err(e) => {
            debug!(location = %location, error = %e, "batch delete failed; will retry");
            ctx.health.failed(&location);
            refs
        }
    }
}

/// The pending writes this node can tell are dead now: those older than
/// `pipeline.pending_grace`, and those from before this process started that this
/// node wrote — or anyone wrote, on an embedded SQLite store, which has no other
/// writer.
pub fn dead_writes(ctx: &PipelineCtx) -> DeadWrites<'_> {
    let started = ctx.node.started_ms();
    let mut before = now_ms() - ctx.config.pending_grace.0.as_millis() as i64;
    if ctx.meta.backend() == Backend::Sqlite {
        before = before.max(started);
    }
    let retired_before = now_ms() - ctx.config.retired_grace.0.as_millis() as i64;
    DeadWrites { before, writer: ctx.node.id(), writer_before: started, retired_before }
}

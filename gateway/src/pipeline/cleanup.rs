//! Garbage collection: deleting the fragments of seals nothing references — retired
//! versions, aborted or replaced parts, and writes that died: pending for longer than
//! `pipeline.pending_grace`, or pending from before this process started when this
//! node wrote them (or, on a single-node SQLite store, whoever did).

use futures::StreamExt as _;
use tracing::debug;

use super::PipelineCtx;
use super::read::fragment_ref;
use crate::backend::FragmentRef;
use crate::meta::{Backend, DeadWrites, MetaError, SealId, now_ms};

/// Deletes in flight at once while collecting.
const DELETES_IN_FLIGHT: usize = 32;

/// Collects up to `batch` seals once: their fragments deleted, many at once, then
/// the seals whose fragments are all gone forgotten in one transaction. Returns
/// how many were forgotten.
pub async fn collect_once(ctx: &PipelineCtx, dead: &DeadWrites<'_>, batch: i64) -> Result<usize, MetaError> {
    let seals = ctx.meta.collectable_seals(dead, batch).await?;
    let deletes: Vec<(SealId, FragmentRef)> = seals
        .iter()
        .flat_map(|seal| seal.fragments.iter().map(move |f| (seal.id, fragment_ref(f, f.size, None))))
        .collect();
    let results: Vec<Option<SealId>> = futures::stream::iter(deletes)
        .map(|(seal, at)| delete_fragment(ctx, seal, at))
        .buffer_unordered(DELETES_IN_FLIGHT)
        .collect()
        .await;
    let failed: std::collections::HashSet<SealId> = results.into_iter().flatten().collect();
    let gone: Vec<SealId> = seals.iter().map(|s| s.id).filter(|id| !failed.contains(id)).collect();
    if !failed.is_empty() {
        // Not in the way of the rest: their turn comes again after the others'.
        ctx.meta.postpone_collection(&failed.into_iter().collect::<Vec<_>>()).await?;
    }
    ctx.meta.forget_seals(&gone).await
}

/// Deletes one fragment of `seal`; the seal back if that failed.
async fn delete_fragment(ctx: &PipelineCtx, seal: SealId, at: FragmentRef) -> Option<SealId> {
    match ctx.store.delete(&at).await {
        Ok(()) => None,
        Err(e) => {
            debug!(%seal, location = %at.location, error = %e, "fragment delete failed; will retry");
            ctx.health.failed(&at.location);
            Some(seal)
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
    DeadWrites { before, writer: ctx.node.id(), writer_before: started }
}

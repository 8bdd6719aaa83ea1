//! Garbage collection: deleting the fragments of seals nothing references — retired
//! versions, aborted or replaced parts, and writes that died: pending for longer than
//! `pipeline.pending_grace`, or pending from before this process started when this
//! node wrote them (or, on a single-node SQLite store, whoever did).

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::PipelineCtx;
use super::read::fragment_ref;
use crate::meta::{Backend, DeadWrites, MetaError, now_ms};

/// Collects up to `batch` seals once. Returns how many were forgotten.
pub async fn collect_once(ctx: &PipelineCtx, dead: &DeadWrites<'_>, batch: i64) -> Result<usize, MetaError> {
    let mut forgotten = 0;
    for seal in ctx.meta.collectable_seals(dead, batch).await? {
        let mut all_gone = true;
        for f in &seal.fragments {
            if let Err(e) = ctx.store.delete(&fragment_ref(f, f.size, None)).await {
                debug!(seal = %seal.id, location = %f.location, error = %e, "fragment delete failed; will retry");
                ctx.health.failed(&f.location);
                all_gone = false;
            }
        }
        if all_gone && ctx.meta.forget_seal(seal.id).await? {
            forgotten += 1;
        }
    }
    Ok(forgotten)
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

/// Runs the collector every `pipeline.gc_interval` until the process ends.
pub fn spawn_collector(ctx: Arc<PipelineCtx>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = ctx.config.gc_interval.0;
        // Replicas sharing a database collect one at a time: the one holding the
        // `gc` lease (renewed each round, lost after three missed rounds). The
        // holder is this node's id, kept in its data directory, so that a restarted
        // replica takes its own lease back at once.
        let holder = ctx.node.id();
        let ttl = (3 * interval).max(Duration::from_secs(10)).as_millis() as i64;
        loop {
            match ctx.meta.acquire_lease("gc", holder, ttl).await {
                Ok(true) => match collect_once(&ctx, &dead_writes(&ctx), 256).await {
                    Ok(0) => {}
                    Ok(n) => info!(seals = n, "garbage collected"),
                    Err(e) => warn!(error = %e, "garbage collection failed"),
                },
                Ok(false) => {}
                Err(e) => warn!(error = %e, "garbage collection lease unavailable"),
            }
            tokio::time::sleep(interval.max(Duration::from_millis(100))).await;
        }
    })
}

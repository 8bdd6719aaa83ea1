//! Garbage collection: deleting the fragments of seals nothing references — retired
//! versions, aborted or replaced parts, and writes that died: pending for longer than
//! `pipeline.pending_grace`, or pending from before this process started when this
//! node wrote them (or, on a single-node SQLite store, whoever did).

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::backend::Method;
use crate::meta::{Backend, DeadWrites, MetaError, now_ms};
use crate::state::Gateway;

/// Collects up to `batch` seals once. Returns how many were forgotten.
pub async fn collect_once(gw: &Gateway, dead: &DeadWrites<'_>, batch: i64) -> Result<usize, MetaError> {
    let ttl = gw.settings.pipeline.presign_ttl.0;
    let mut forgotten = 0;
    for (seal, frags) in gw.meta.collectable_seals(dead, batch).await? {
        let mut all_gone = true;
        for f in &frags {
            if let Some(cache) = &gw.cache {
                cache.remove(&f.object_name);
            }
            let url = match gw.presigner.presign(&f.location, Method::Delete, &f.object_name, ttl) {
                Ok(u) => u,
                Err(e) => {
                    warn!(seal = %seal.id, location = %f.location, error = %e, "cannot delete a fragment: location not configured");
                    all_gone = false;
                    continue;
                }
            };
            if let Err(e) = gw.transfer.delete(&f.location, url).await {
                debug!(seal = %seal.id, location = %f.location, error = %e, "fragment delete failed; will retry");
                gw.health.failed(&f.location);
                all_gone = false;
            }
        }
        if all_gone && gw.meta.forget_seal(&seal.id).await? {
            forgotten += 1;
        }
    }
    Ok(forgotten)
}

/// The pending writes this node can tell are dead now: those older than
/// `pipeline.pending_grace`, and those from before this process started that this
/// node wrote — or anyone wrote, on an embedded SQLite store, which has no other
/// writer.
pub fn dead_writes(gw: &Gateway) -> DeadWrites<'_> {
    let started = gw.node.started_ms();
    let mut before = now_ms() - gw.settings.pipeline.pending_grace.0.as_millis() as i64;
    if gw.meta.backend() == Backend::Sqlite {
        before = before.max(started);
    }
    DeadWrites { before, writer: gw.node.id(), writer_before: started }
}

/// Runs the collector every `pipeline.gc_interval` until the process ends.
pub fn spawn_collector(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = gw.settings.pipeline.gc_interval.0;
        // Replicas sharing a database collect one at a time: the one holding the
        // `gc` lease (renewed each round, lost after three missed rounds). The
        // holder is this node's id, kept in its data directory, so that a restarted
        // replica takes its own lease back at once.
        let holder = gw.node.id();
        let ttl = (3 * interval).max(Duration::from_secs(10)).as_millis() as i64;
        loop {
            match gw.meta.acquire_lease("gc", holder, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::time::sleep(interval.max(Duration::from_millis(100))).await;
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "garbage collection lease unavailable");
                    tokio::time::sleep(interval.max(Duration::from_millis(100))).await;
                    continue;
                }
            }
            match collect_once(&gw, &dead_writes(&gw), 256).await {
                Ok(0) => {}
                Ok(n) => info!(seals = n, "garbage collected"),
                Err(e) => warn!(error = %e, "garbage collection failed"),
            }
            tokio::time::sleep(interval.max(Duration::from_millis(100))).await;
        }
    })
}

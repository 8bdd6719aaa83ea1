//! Garbage collection: deleting the fragments of seals nothing references — retired
//! versions, aborted or replaced parts, and writes that died (pending for longer than
//! `pipeline.pending_grace`, or, on a single-node SQLite store, pending from before
//! this process started).

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::backend::Method;
use crate::meta::{MetaError, now_ms};
use crate::state::Gateway;

/// Collects up to `batch` seals once. Returns how many were forgotten.
pub async fn collect_once(gw: &Gateway, pending_before: i64, batch: i64) -> Result<usize, MetaError> {
    let ttl = gw.settings.pipeline.presign_ttl.0;
    let mut forgotten = 0;
    for (seal, frags) in gw.meta.collectable_seals(pending_before, batch).await? {
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

/// This node's id: `<data_dir>/node.id`, created on first use.
pub(crate) fn node_id(data_dir: &std::path::Path, random: &dyn offload::random::SecureRandom) -> String {
    let path = data_dir.join("node.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return id.trim().to_string();
        }
    }
    let id = crate::keys::random_token(random, 16, crate::keys::SECRET_ALPHABET)
        .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
    if let Err(e) = std::fs::write(&path, &id) {
        warn!(error = %e, "cannot keep the node id; a restart will wait for the gc lease to expire");
    }
    id
}

/// Runs the collector every `pipeline.gc_interval` until the process ends.
/// `started_ms` is when this process started; `single_node` says whether pending
/// seals from before it are certainly dead (an embedded SQLite store has no other
/// writer).
pub fn spawn_collector(gw: Arc<Gateway>, started_ms: i64, single_node: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = gw.settings.pipeline.gc_interval.0;
        let grace = gw.settings.pipeline.pending_grace.0.as_millis() as i64;
        // Replicas sharing a database collect one at a time: the one holding the
        // `gc` lease (renewed each round, lost after three missed rounds). The
        // holder is this node's id, kept in its data directory, so that a restarted
        // replica takes its own lease back at once.
        let holder = node_id(&gw.settings.data_dir, gw.offload.random.as_ref());
        let ttl = (3 * interval).max(Duration::from_secs(10)).as_millis() as i64;
        loop {
            match gw.meta.acquire_lease("gc", &holder, ttl).await {
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
            let mut cutoff = now_ms() - grace;
            if single_node {
                cutoff = cutoff.max(started_ms);
            }
            match collect_once(&gw, cutoff, 256).await {
                Ok(0) => {}
                Ok(n) => info!(seals = n, "garbage collected"),
                Err(e) => warn!(error = %e, "garbage collection failed"),
            }
            tokio::time::sleep(interval.max(Duration::from_millis(100))).await;
        }
    })
}

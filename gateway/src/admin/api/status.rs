//! Status of the gateway and of its fragment cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;
use crate::admin::Admin;
use crate::admin::problem::Problem;

/// The fragment cache.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CacheStatus {
    /// Bytes of blocks.
    pub capacity_bytes: u64,
    /// Bytes of blocks in use.
    pub used_bytes: u64,
    /// Fragments cached.
    pub entries: u64,
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered.
    pub misses: u64,
    /// Blocks that failed their check.
    pub integrity_errors: u64,
    /// Eviction policy.
    pub policy: String,
}

/// Stored seals at one margin.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarginInfo {
    /// Healthy fragments minus k: fragments each can still lose (0: one more loss
    /// makes it unreadable; negative: unreadable until repaired).
    pub margin: i64,
    /// Seals (single-part objects and parts of multipart objects).
    pub objects: i64,
    /// Their plaintext bytes.
    pub bytes: i64,
}

/// A background scrub pass.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScrubInfo {
    /// Fragments checked in the pass in progress.
    pub checked: i64,
    /// Problems found in it (fragments missing or corrupt).
    pub found: i64,
    /// When the pass in progress began, Unix milliseconds.
    pub started_at: i64,
    /// When the last complete pass ended, Unix milliseconds (0: none yet).
    pub last_full_pass: i64,
}

/// Redundancy: objects by margin, the repair queue and what the upkeep did since
/// this process started.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Redundancy {
    /// Stored seals by margin, lowest first.
    pub margins: Vec<MarginInfo>,
    /// Seals in the repair queue (fewer than n healthy fragments).
    pub repair_queue_objects: i64,
    /// Fragments they miss.
    pub repair_queue_fragments: i64,
    /// Fragments rebuilt per second over the last minute.
    pub repair_fragments_per_second: f64,
    /// Bytes rebuilt per second over the last minute.
    pub repair_bytes_per_second: f64,
    /// Fragments rebuilt since start.
    pub rebuilt: u64,
    /// Fragments found good again when checked before a rebuild, since start.
    pub restored: u64,
    /// Rebuilds that failed since start (each retried after the backoff).
    pub repair_failures: u64,
    /// The background scrub, once it has started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrub: Option<ScrubInfo>,
    /// Orphan fragments deleted from locations since start.
    pub orphans_deleted: u64,
    /// Seals collected since start.
    pub collected: u64,
}

async fn redundancy(admin: &Admin) -> ApiResult<Redundancy> {
    use crate::durability::Stats;
    let meta = &admin.gw.meta;
    let margins = meta.margins().await?;
    let (objects, fragments) = meta.repair_backlog().await?;
    let scrub = meta.pass(crate::durability::scrub::BACKGROUND).await?.map(|p| ScrubInfo {
        checked: p.checked,
        found: p.found,
        started_at: p.started_at,
        last_full_pass: p.finished_at,
    });
    let s = &admin.gw.upkeep.stats;
    let (fps, bps) = s.repair_rate();
    Ok(Redundancy {
        margins: margins.iter().map(|m| MarginInfo { margin: m.margin, objects: m.seals, bytes: m.bytes }).collect(),
        repair_queue_objects: objects,
        repair_queue_fragments: fragments,
        repair_fragments_per_second: fps,
        repair_bytes_per_second: bps,
        rebuilt: Stats::get(&s.rebuilt),
        restored: Stats::get(&s.restored),
        repair_failures: Stats::get(&s.repair_failures),
        scrub,
        orphans_deleted: Stats::get(&s.orphans_deleted),
        collected: Stats::get(&s.collected),
    })
}

/// The gateway at a glance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// Skyshard version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Locations by state.
    pub locations: BTreeMap<String, usize>,
    /// Locations with recent failures.
    pub unhealthy_locations: Vec<String>,
    /// Policies.
    pub policies: usize,
    /// Catalog entries of the API left out because they no longer check.
    pub invalid_catalog_entries: Vec<String>,
    /// Jobs queued or running.
    pub live_jobs: usize,
    /// The fragment cache, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    /// Objects by margin, repair and scrub.
    pub redundancy: Redundancy,
    /// CPU time of this process, seconds.
    pub process_cpu_seconds: f64,
}

fn cache_status(admin: &Admin) -> Option<CacheStatus> {
    use std::sync::atomic::Ordering::Relaxed;
    let cache = admin.gw.cache.as_ref()?;
    let block = crate::cache::device::BLOCK as u64;
    Some(CacheStatus {
        capacity_bytes: cache.capacity_blocks() * block,
        used_bytes: cache.used_blocks() * block,
        entries: cache.len() as u64,
        hits: cache.stats.hits.load(Relaxed),
        misses: cache.stats.misses.load(Relaxed),
        integrity_errors: cache.stats.integrity_errors.load(Relaxed),
        policy: admin.gw.settings.cache.policy.as_str().to_string(),
    })
}

/// Shows the gateway's status.
#[utoipa::path(get, path = "/v1/status", tag = "status",
    responses((status = 200, description = "Status", body = Status)))]
pub async fn status(State(admin): State<Arc<Admin>>) -> ApiResult<Json<Status>> {
    let view = admin.gw.catalog.view();
    let mut locations = BTreeMap::new();
    for name in view.locations.keys() {
        *locations.entry(view.state(name).as_str().to_string()).or_insert(0) += 1;
    }
    let unhealthy = view.locations.keys().filter(|l| admin.gw.health.failures(l) > 0).cloned().collect();
    let live_jobs = admin.gw.meta.live_job_count().await?.max(0) as usize;
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        database: format!("{:?}", admin.gw.meta.backend()).to_lowercase(),
        locations,
        unhealthy_locations: unhealthy,
        policies: view.policies.len(),
        invalid_catalog_entries: view.invalid.clone(),
        live_jobs,
        cache: cache_status(&admin),
        redundancy: redundancy(&admin).await?,
        process_cpu_seconds: crate::admin::process_cpu_seconds(),
    }))
}

/// Shows the fragment cache.
#[utoipa::path(get, path = "/v1/cache", tag = "status",
    responses((status = 200, description = "The cache", body = CacheStatus)))]
pub async fn cache(State(admin): State<Arc<Admin>>) -> ApiResult<Json<CacheStatus>> {
    cache_status(&admin).map(Json).ok_or_else(|| Problem::not_found("no fragment cache is configured"))
}

/// A backup of the metadata store: one snapshot (the catalog, and every visible
/// version with its seals and fragments), sealed under a key derived from the master
/// key, streamed. `skyshard recover --from-backup FILE` restores it.
#[utoipa::path(get, path = "/v1/backup", tag = "status",
    responses((status = 200, description = "The sealed backup", content_type = "application/octet-stream")))]
pub async fn backup(State(admin): State<Arc<Admin>>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let gw = admin.gw.clone();
    tokio::spawn(async move {
        let send = |b: bytes::Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        match crate::ledger::backup::write(&gw.pipeline.ledger, &gw.meta, send).await {
            Ok(n) => tracing::info!(versions = n, "backup streamed"),
            Err(e) => {
                tracing::warn!(error = %e, "backup failed");
                // The reader sees the body end early: the file has no last frame.
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let body = axum::body::Body::from_stream(crate::pipeline::ReceiverStream::new(rx));
    ([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

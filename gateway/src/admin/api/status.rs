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
        process_cpu_seconds: crate::admin::process_cpu_seconds(),
    }))
}

/// Shows the fragment cache.
#[utoipa::path(get, path = "/v1/cache", tag = "status",
    responses((status = 200, description = "The cache", body = CacheStatus)))]
pub async fn cache(State(admin): State<Arc<Admin>>) -> ApiResult<Json<CacheStatus>> {
    cache_status(&admin).map(Json).ok_or_else(|| Problem::not_found("no fragment cache is configured"))
}

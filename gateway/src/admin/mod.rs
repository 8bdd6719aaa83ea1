//! The admin endpoint, on a listener of its own (default: the S3 address, next
//! port) over the same TLS.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /metrics` | none | OpenMetrics text: S3 requests, latency and bytes per operation; per-location requests, errors, latency and fragments; per-engine bytes and CPU time; chosen and rejected engines; process CPU and memory; location health; cache figures |
//! | `GET /health` | none | liveness: `ok` or `degraded`, with the locations that failed recently |
//! | `GET /ready` | none | readiness: the metadata store answers and the default policy can place a write |
//! | `/v1/…` | bearer token | the REST API ([`api`]; OpenAPI in [`openapi`]) |
//!
//! Metrics and health reveal no secret and no object name; the API is for operators.

pub mod api;
pub mod openapi;
pub mod problem;
pub mod token;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use offload::meter::{EngineUsage, Meters};
use offload::{Capabilities, Selection};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::state::Gateway;

/// What the admin endpoint reports on.
#[derive(Debug)]
pub struct Admin {
    gw: Arc<Gateway>,
    credentials: crate::auth::CredentialStore,
    caps: Capabilities,
    selection: Selection,
    registry: Registry,
    placement: Arc<PlacementCounts>,
}

impl Admin {
    /// The admin service of `gw`, whose engines were chosen as `selection` on a
    /// machine with `caps`.
    pub fn new(
        gw: Arc<Gateway>,
        caps: Capabilities,
        selection: Selection,
        s3: &crate::s3::telemetry::S3Metrics,
        credentials: crate::auth::CredentialStore,
    ) -> Arc<Self> {
        let mut registry = Registry::with_prefix("skyshard");
        s3.register(&mut registry);
        gw.transfer.stats.register(&mut registry);
        registry.register_collector(Box::new(OffloadCollector {
            meters: gw.offload.meters.clone(),
            selection: selection.clone(),
        }));
        registry.register_collector(Box::new(ProcessCollector { started: Instant::now() }));
        registry.register_collector(Box::new(HealthCollector { gw: gw.clone() }));
        if let Some(cache) = &gw.cache {
            registry.register_collector(Box::new(CacheCollector { cache: cache.clone() }));
        }
        let placement = Arc::new(PlacementCounts::default());
        registry.register_collector(Box::new(PlacementCollector { counts: placement.clone() }));
        Arc::new(Self { gw, credentials, caps, selection, registry, placement })
    }

    /// The routes.
    pub fn router(self: Arc<Self>) -> axum::Router {
        use axum::routing::{post, put};
        let v1 = axum::Router::new()
            .route("/v1/locations", get(api::list_locations).post(api::add_location))
            .route(
                "/v1/locations/{name}",
                get(api::get_location).put(api::update_location).delete(api::remove_location),
            )
            .route("/v1/locations/{name}/drain", post(api::drain_location))
            .route("/v1/locations/{name}/activate", post(api::activate_location))
            .route("/v1/policies", get(api::list_policies))
            .route("/v1/policies/{name}", get(api::get_policy).put(api::put_policy).delete(api::delete_policy))
            .route("/v1/tenants", get(api::list_tenants).post(api::create_tenant))
            .route("/v1/tenants/{name}", get(api::get_tenant).delete(api::delete_tenant))
            .route("/v1/keys", get(api::list_keys).post(api::create_key))
            .route("/v1/keys/{id}", axum::routing::delete(api::delete_key))
            .route("/v1/keys/{id}/revoke", post(api::revoke_key))
            .route("/v1/keys/{id}/rotate", post(api::rotate_key))
            .route("/v1/buckets", get(api::list_buckets))
            .route("/v1/buckets/{name}", get(api::get_bucket))
            .route("/v1/buckets/{name}/policy", put(api::assign_policy))
            .route("/v1/objects", get(api::inspect_object))
            .route("/v1/jobs", get(api::list_jobs).post(api::create_job))
            .route("/v1/jobs/{id}", get(api::get_job))
            .route("/v1/jobs/{id}/cancel", post(api::cancel_job))
            .route("/v1/status", get(api::status))
            .route("/v1/cache", get(api::cache))
            .route_layer(axum::middleware::from_fn_with_state(self.clone(), problem::require_token));
        axum::Router::new()
            .route("/metrics", get(metrics))
            .route("/health", get(health))
            .route("/ready", get(ready))
            .route("/v1/offload", get(offload_report))
            .merge(v1)
            .fallback(problem::not_found)
            .with_state(self)
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    admin.placement.refresh(&admin.gw).await;
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &admin.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded\n").into_response(),
    }
}

/// Liveness, and the locations that failed recently.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// `ok`, or `degraded` when a location failed recently.
    pub status: String,
    /// Locations and their recent consecutive failures.
    pub locations: Vec<LocationHealth>,
}

/// A location's recent failures.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LocationHealth {
    /// Location.
    pub name: String,
    /// Consecutive failures in the last 30 s.
    pub failures: u32,
}

/// Liveness (no token needed).
#[utoipa::path(get, path = "/health", tag = "status", security(()),
    responses((status = 200, description = "Alive", body = HealthReport)))]
pub async fn health(State(admin): State<Arc<Admin>>) -> Json<HealthReport> {
    let locations: Vec<LocationHealth> = admin
        .gw
        .settings
        .locations
        .keys()
        .map(|name| LocationHealth { name: name.clone(), failures: admin.gw.health.failures(name) })
        .collect();
    let status = if locations.iter().any(|l| l.failures > 0) { "degraded" } else { "ok" };
    Json(HealthReport { status: status.into(), locations })
}

/// Readiness.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
}

/// Readiness (no token needed): the metadata store answers and the default policy
/// has enough active locations for a write. 503 otherwise.
#[utoipa::path(get, path = "/ready", tag = "status", security(()),
    responses((status = 200, description = "Ready", body = Readiness)))]
pub async fn ready(State(admin): State<Arc<Admin>>) -> Result<Json<Readiness>, problem::Problem> {
    let unavailable = |d: String| problem::Problem::new(StatusCode::SERVICE_UNAVAILABLE, d);
    admin.gw.meta.admin_token_count().await.map_err(|e| unavailable(format!("metadata store: {e}")))?;
    let view = admin.gw.catalog.view();
    let name = &admin.gw.settings.default_policy;
    let policy = view.policies.get(name).ok_or_else(|| unavailable(format!("no policy {name:?}")))?;
    let usable = view.writable(policy).locations.len();
    if usable < usize::from(policy.params.n()) {
        return Err(unavailable(format!(
            "policy {name:?} writes {} fragments but only {usable} of its locations are active",
            policy.params.n()
        )));
    }
    Ok(Json(Readiness { status: "ready".into() }))
}

/// The offload engines: what the machine offers, what was chosen, what it cost.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OffloadReport {
    /// What the machine offers.
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
    /// The engines chosen, and those passed over with the reason.
    #[schema(value_type = Object)]
    pub selection: Selection,
    /// Per-engine bytes and CPU time since start.
    #[schema(value_type = Vec<Object>)]
    pub usage: Vec<EngineUsage>,
    /// CPU time of the whole process since start (user and system), in seconds.
    pub process_cpu_seconds: f64,
}

/// Shows the offload engines and their CPU cost per byte (no token needed: like
/// `/metrics`, it holds no secret and no name).
#[utoipa::path(get, path = "/v1/offload", tag = "status", security(()),
    responses((status = 200, description = "The offload report", body = OffloadReport)))]
pub async fn offload_report(State(admin): State<Arc<Admin>>) -> Json<OffloadReport> {
    Json(OffloadReport {
        capabilities: admin.caps.clone(),
        selection: admin.selection.clone(),
        usage: admin.gw.offload.meters.snapshot(),
        process_cpu_seconds: process_cpu_seconds(),
    })
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes one metric family of constant values.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else { return Ok(()) };
    let mut metric = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: M,
) -> Result<(), std::fmt::Error> {
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

/// Per-engine usage from the offload meters, and the engine selection.
#[derive(Debug)]
struct OffloadCollector {
    meters: Arc<Meters>,
    selection: Selection,
}

impl Collector for OffloadCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let usage = self.meters.snapshot();
        let labels = |u: &EngineUsage| vec![("job", label(u.job)), ("engine", label(&u.engine))];
        family(
            &mut encoder,
            "offload_bytes",
            "Bytes processed by an offload engine (plaintext bytes for TLS, input bytes for coding and hashing).",
            usage.iter().map(|u| (labels(u), ConstCounter::new(u.bytes))),
        )?;
        family(
            &mut encoder,
            "offload_operations",
            "Calls into an offload engine.",
            usage.iter().map(|u| (labels(u), ConstCounter::new(u.ops))),
        )?;
        family(
            &mut encoder,
            "offload_busy_seconds",
            "Time the calling threads spent inside an offload engine (CPU time unless preempted; for TLS, record crypto plus the socket call).",
            usage.iter().map(|u| (labels(u), ConstCounter::new(u.busy_ns as f64 / 1e9))),
        )?;
        family(
            &mut encoder,
            "offload_ns_per_byte",
            "Nanoseconds of engine time per byte since start.",
            usage.iter().map(|u| (labels(u), ConstGauge::new(u.ns_per_byte))),
        )?;
        family(
            &mut encoder,
            "offload_engine_selected",
            "1 for the engine chosen for each job (pinned = named in the configuration).",
            self.selection.choices.iter().map(|c| {
                let l = vec![("job", label(c.job)), ("engine", label(&c.chosen)), ("pinned", c.pinned.to_string())];
                (l, ConstGauge::new(1i64))
            }),
        )?;
        family(
            &mut encoder,
            "offload_engine_rejected",
            "1 for each better-ranked engine `auto` passed over, with the reason.",
            self.selection.choices.iter().flat_map(|c| {
                c.rejected.iter().map(|r| {
                    let l = vec![("job", label(c.job)), ("engine", label(r.engine)), ("reason", label(&r.reason))];
                    (l, ConstGauge::new(1i64))
                })
            }),
        )
    }
}

/// Process CPU time, resident memory and uptime.
#[derive(Debug)]
struct ProcessCollector {
    started: Instant,
}

/// CPU time (user and system) of this process so far, in seconds.
pub fn process_cpu_seconds() -> f64 {
    cpu_time::ProcessTime::try_now().map(|t| t.as_duration().as_secs_f64()).unwrap_or(0.0)
}

/// Resident set size in bytes, from `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cpu = process_cpu_seconds();
        single(
            &mut encoder,
            "process_cpu_seconds",
            "CPU time (user and system) of the gateway process.",
            ConstCounter::new(cpu),
        )?;
        if let Some(rss) = resident_bytes() {
            let help = "Resident memory of the gateway process.";
            single(&mut encoder, "process_resident_memory_bytes", help, ConstGauge::new(rss as i64))?;
        }
        let uptime = ConstGauge::new(self.started.elapsed().as_secs_f64());
        single(&mut encoder, "uptime_seconds", "Seconds since the admin endpoint started.", uptime)
    }
}

/// Recent failures per location.
#[derive(Debug)]
struct HealthCollector {
    gw: Arc<Gateway>,
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let q = &self.gw.pipeline.quorum_failures;
        family(
            &mut encoder,
            "quorum_failures",
            "Writes that stored fewer fragments than the write quorum, and segment reads that found fewer than k usable.",
            [("write", q.write.load(Relaxed)), ("read", q.read.load(Relaxed))]
                .map(|(op, n)| (vec![("operation", op.to_string())], ConstCounter::new(n))),
        )?;
        family(
            &mut encoder,
            "location_recent_failures",
            "Consecutive failed operations at a location in the last 30 seconds (0 = healthy).",
            self.gw.catalog.view().locations.keys().map(|name| {
                (vec![("location", label(name))], ConstGauge::new(i64::from(self.gw.health.failures(name))))
            }),
        )
    }
}

/// How long fragment counts per location are reused: counting reads the whole
/// fragment index, so scrapes (perhaps by several Prometheus servers) share one
/// count for this long.
const PLACEMENT_TTL: std::time::Duration = std::time::Duration::from_secs(15);

/// Locations with their fragments and bytes.
type LocationCounts = Vec<(String, i64, i64)>;

/// Fragments and their bytes per location, as last counted, and when.
#[derive(Debug, Default)]
struct PlacementCounts {
    last: std::sync::RwLock<Option<(Instant, LocationCounts)>>,
}

impl PlacementCounts {
    /// Counts again if the last count is older than [`PLACEMENT_TTL`]. Every
    /// location of the catalog appears (0 when it holds nothing), and so does any
    /// other location the metadata still places fragments at.
    async fn refresh(&self, gw: &Gateway) {
        let fresh = self.last.read().ok().and_then(|l| l.as_ref().map(|(at, _)| at.elapsed() < PLACEMENT_TTL));
        if fresh == Some(true) {
            return;
        }
        let counted = match gw.meta.fragments_per_location().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count fragments per location; metrics keep the last count");
                return;
            }
        };
        let mut all: std::collections::BTreeMap<String, (i64, i64)> =
            gw.catalog.view().locations.keys().map(|l| (l.clone(), (0, 0))).collect();
        all.extend(counted.into_iter().map(|(l, n, b)| (l, (n, b))));
        let rows = all.into_iter().map(|(l, (n, b))| (l, n, b)).collect();
        if let Ok(mut last) = self.last.write() {
            *last = Some((Instant::now(), rows));
        }
    }
}

/// Fragments and bytes the metadata places at each location.
#[derive(Debug)]
struct PlacementCollector {
    counts: Arc<PlacementCounts>,
}

impl Collector for PlacementCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let rows = self.counts.last.read().ok().and_then(|l| l.as_ref().map(|(_, r)| r.clone())).unwrap_or_default();
        family(
            &mut encoder,
            "location_fragments",
            "Fragments the metadata places at a location (counted at most every 15 s).",
            rows.iter().map(|(l, n, _)| (vec![("location", label(l))], ConstGauge::new(*n))),
        )?;
        family(
            &mut encoder,
            "location_fragment_bytes",
            "Bytes of the fragments the metadata places at a location (counted at most every 15 s).",
            rows.iter().map(|(l, _, b)| (vec![("location", label(l))], ConstGauge::new(*b))),
        )
    }
}

/// The fragment cache's counters (its CRC32C and XTS CPU is in the offload meters).
#[derive(Debug)]
struct CacheCollector {
    cache: Arc<crate::cache::store::Cache>,
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.cache.stats;
        let counters = [
            ("cache_hits", "Fragment lookups the cache answered.", s.hits.load(Relaxed)),
            ("cache_misses", "Fragment lookups the cache could not answer.", s.misses.load(Relaxed)),
            ("cache_read_bytes", "Fragment bytes served from the cache.", s.bytes_read.load(Relaxed)),
            (
                "cache_location_read_bytes",
                "Fragment bytes GETs read from locations.",
                s.bytes_from_locations.load(Relaxed),
            ),
            ("cache_written_bytes", "Fragment bytes written into the cache.", s.bytes_written.load(Relaxed)),
            ("cache_evictions", "Entries evicted to make room.", s.evictions.load(Relaxed)),
            (
                "cache_integrity_errors",
                "Cache blocks that failed their check (each a miss).",
                s.integrity_errors.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            single(&mut encoder, name, help, ConstCounter::new(v))?;
        }
        let blocks = |n: u64| ConstGauge::new((n * crate::cache::device::BLOCK as u64) as i64);
        single(&mut encoder, "cache_used_bytes", "Bytes of cache blocks in use.", blocks(self.cache.used_blocks()))?;
        single(&mut encoder, "cache_capacity_bytes", "Bytes of cache blocks.", blocks(self.cache.capacity_blocks()))?;
        single(&mut encoder, "cache_entries", "Fragments cached.", ConstGauge::new(self.cache.len() as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"no "tls" ULP\n"#), r#"no \"tls\" ULP\\n"#);
        assert_eq!(label("a\nb"), "a\\nb");
    }

    #[test]
    fn offload_metrics_name_every_engine_and_the_rejections() {
        let caps = Capabilities { ktls: false, ktls_error: Some("no \"tls\" ULP".into()), ..offload::probe() };
        let (offload, selection) = offload::Offload::select(&offload::OffloadConfig::default(), &caps).expect("select");
        let crc = offload.crc32c.clone();
        crc.checksum(&[1u8; 4096]);
        let mut registry = Registry::with_prefix("skyshard");
        registry.register_collector(Box::new(OffloadCollector { meters: offload.meters.clone(), selection }));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let crc_line = format!(r#"skyshard_offload_bytes_total{{job="crc32c",engine="{}"}} 4096"#, crc.name());
        assert!(text.contains(&crc_line), "{text}");
        assert!(
            text.contains(r#"skyshard_offload_engine_rejected{job="tls",engine="ktls",reason="no \"tls\" ULP"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"skyshard_offload_engine_selected{job="tls",engine="rustls",pinned="false"} 1"#));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

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
mod metrics;
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
use offload::meter::EngineUsage;
use offload::{Capabilities, Selection};
use prometheus_client::registry::Registry;

use metrics::{
    CacheCollector, HealthCollector, OffloadCollector, PlacementCollector, PlacementCounts, ProcessCollector,
    RedundancyCollector, RedundancyCounts,
};
pub use metrics::{process_cpu_seconds, resident_bytes};

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
    redundancy: Arc<RedundancyCounts>,
}

impl Admin {
    /// The admin service of `gw`, whose engines were chosen as `selection` on a
    /// machine with `caps`.
    pub fn new(
        gw: Arc<Gateway>,
        caps: Capabilities,
        selection: Selection,
        s3: &crate::s3::telemetry::S3Metrics,
        connections: &crate::net::ConnMetrics,
        credentials: crate::auth::CredentialStore,
    ) -> Arc<Self> {
        let mut registry = Registry::with_prefix("skyshard");
        s3.register(&mut registry);
        connections.register(&mut registry);
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
        let redundancy = Arc::new(RedundancyCounts::default());
        registry.register_collector(Box::new(RedundancyCollector { counts: redundancy.clone(), gw: gw.clone() }));
        Arc::new(Self { gw, credentials, caps, selection, registry, placement, redundancy })
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
            .route("/v1/buckets/{name}/audit", get(api::audit_bucket))
            .route("/v1/objects", get(api::inspect_object))
            .route("/v1/objects/evidence", get(api::object_evidence))
            .route("/v1/evidence/key", get(api::evidence_key))
            .route("/v1/jobs", get(api::list_jobs).post(api::create_job))
            .route("/v1/jobs/{id}", get(api::get_job))
            .route("/v1/jobs/{id}/cancel", post(api::cancel_job))
            .route("/v1/status", get(api::status))
            .route("/v1/cache", get(api::cache))
            .route("/v1/backup", get(api::backup))
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
    admin.redundancy.refresh(&admin.gw).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(metrics::label(r#"no "tls" ULP\n"#), r#"no \"tls\" ULP\\n"#);
        assert_eq!(metrics::label("a\nb"), "a\\nb");
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

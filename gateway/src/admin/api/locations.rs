//! Storage locations: list, show, add, update, remove, drain, activate.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;
use crate::admin::Admin;
use crate::admin::problem::{ApiJson, Problem};
use crate::catalog::{CatalogView, LocationSpec, LocationState, Origin};
use crate::meta::{CatalogRow, JobKind};

/// A location: its definition, state, health and what it holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LocationInfo {
    /// Name.
    pub name: String,
    /// `config` (change it in the file) or `api`.
    pub origin: Origin,
    /// `active`, `draining`, `drained` or `removed`.
    pub state: LocationState,
    /// Definition (the secret is never shown).
    pub definition: LocationSpec,
    /// Consecutive failures in the last 30 s (0 = healthy).
    pub recent_failures: u32,
    /// Moving average of request latency in milliseconds (0 before any request).
    pub latency_ms: f64,
    /// Requests since this replica started.
    pub requests: u64,
    /// Failed requests since this replica started.
    pub errors: u64,
    /// Fragments the metadata places here.
    pub fragments: i64,
    /// Their bytes.
    pub fragment_bytes: i64,
    /// Whether the location itself enforces object lock retention on fragments
    /// (a `skyshard edge` store: deletes before a locked fragment's date are
    /// refused there, whoever signs them); elsewhere only the gateway does.
    pub enforces_retention: bool,
}

/// A location as the API knows it: one of the catalog's, unless it was removed. (A
/// removed location of the configuration file stays there until the file is
/// edited, but to the API it is gone; `activate` brings it back.)
pub(super) fn shown_location<'a>(view: &'a CatalogView, name: &str) -> ApiResult<&'a crate::config::Location> {
    match view.locations.get(name) {
        Some(_) if view.state(name) == LocationState::Removed => Err(Problem::not_found(format!(
            "location {name:?} was removed; the configuration file still names it (delete it there, or activate it again)"
        ))),
        Some(l) => Ok(l),
        None => Err(Problem::not_found(format!("no location {name:?}"))),
    }
}

async fn location_info(admin: &Admin, view: &CatalogView, name: &str) -> ApiResult<LocationInfo> {
    let loc = shown_location(view, name)?;
    let recent = admin.gw.transfer.stats.recent(name);
    let (fragments, fragment_bytes) = admin.gw.meta.fragments_at_count(name).await?;
    Ok(LocationInfo {
        name: name.to_string(),
        origin: view.location_origins.get(name).copied().unwrap_or(Origin::Config),
        state: view.state(name),
        definition: LocationSpec::of(loc),
        recent_failures: admin.gw.health.failures(name),
        latency_ms: recent.latency_ms,
        requests: recent.requests,
        errors: recent.errors,
        fragments,
        fragment_bytes,
        enforces_retention: loc.kind == crate::config::LocationKind::Edge,
    })
}

/// Lists locations.
#[utoipa::path(get, path = "/v1/locations", tag = "locations", params(PageQuery),
    responses((status = 200, description = "A page of locations", body = LocationPage)))]
pub async fn list_locations(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<LocationPage>> {
    let Query(q) = q?;
    let view = admin.gw.catalog.view();
    let shown = view.locations.keys().filter(|n| view.state(n) != LocationState::Removed);
    let (names, next) = q.page(shown.map(|n| (n.clone(), n.clone())))?;
    let mut items = Vec::with_capacity(names.len());
    for n in &names {
        items.push(location_info(&admin, &view, n).await?);
    }
    Ok(LocationPage::of((items, next)))
}

/// Shows a location.
#[utoipa::path(get, path = "/v1/locations/{name}", tag = "locations",
    params(("name" = String, Path, description = "Location name")),
    responses((status = 200, description = "The location", body = LocationInfo)))]
pub async fn get_location(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<LocationInfo>> {
    let Path(name) = name?;
    Ok(Json(location_info(&admin, &admin.gw.catalog.view(), &name).await?))
}

async fn seal_location(admin: &Admin, spec: &LocationSpec, secret: &str) -> ApiResult<CatalogRow> {
    let mut shown = spec.clone();
    shown.secret = None;
    let definition = serde_json::to_string(&shown).map_err(Problem::internal)?;
    let secret_sealed = admin.gw.catalog.seal_secret(&spec.name, secret, admin.gw.offload.random.as_ref())?;
    Ok(CatalogRow { name: spec.name.clone(), definition, secret_sealed })
}

/// Adds a location. It takes fragments of the policies that name it (or of
/// policies over every location) from the next write on.
#[utoipa::path(post, path = "/v1/locations", tag = "locations", request_body = LocationSpec,
    responses((status = 201, description = "Added", body = LocationInfo)))]
pub async fn add_location(
    State(admin): State<Arc<Admin>>,
    ApiJson(body): ApiJson<LocationSpec>,
) -> ApiResult<(StatusCode, Json<LocationInfo>)> {
    let spec = body;
    let secret = spec.secret.clone().ok_or_else(|| Problem::bad_request("secret is required"))?;
    spec.check().map_err(|e| Problem::bad_request(e.to_string()))?;
    let view = admin.gw.catalog.view();
    if view.locations.contains_key(&spec.name) || admin.gw.meta.fragments_at_count(&spec.name).await?.0 > 0 {
        return Err(Problem::conflict(format!("location {:?} exists or holds fragments", spec.name)));
    }
    let row = seal_location(&admin, &spec, &secret).await?;
    if !admin.gw.meta.put_catalog(false, &row, true).await? {
        return Err(Problem::conflict(format!("location {:?} exists", spec.name)));
    }
    admin.gw.meta.set_location_state(&spec.name, LocationState::Active).await?;
    let view = admin.gw.refresh_catalog().await?;
    Ok((StatusCode::CREATED, Json(location_info(&admin, &view, &spec.name).await?)))
}

/// Changes a location added through the API (endpoint, credentials, tier…). Its
/// name cannot change; without `secret` the stored one is kept.
#[utoipa::path(put, path = "/v1/locations/{name}", tag = "locations", request_body = LocationSpec,
    params(("name" = String, Path, description = "Location name")),
    responses((status = 200, description = "Updated", body = LocationInfo)))]
pub async fn update_location(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<LocationSpec>,
) -> ApiResult<Json<LocationInfo>> {
    let Path(name) = name?;
    let mut spec = body;
    let view = admin.gw.catalog.view();
    let current = shown_location(&view, &name)?;
    if view.location_origins.get(&name) != Some(&Origin::Api) {
        return Err(Problem::conflict(format!("location {name:?} comes from the configuration file; change it there")));
    }
    if spec.name != name {
        return Err(Problem::bad_request("a location's name cannot change: fragments record it"));
    }
    if spec.kind != current.kind {
        return Err(Problem::bad_request("a location's kind cannot change"));
    }
    let secret = spec.secret.clone().unwrap_or_else(|| current.secret.to_string());
    spec.secret = Some(secret.clone());
    spec.check().map_err(|e| Problem::bad_request(e.to_string()))?;
    let row = seal_location(&admin, &spec, &secret).await?;
    if !admin.gw.meta.put_catalog(false, &row, false).await? {
        return Err(Problem::not_found(format!("no location {name:?}")));
    }
    let view = admin.gw.refresh_catalog().await?;
    Ok(Json(location_info(&admin, &view, &name).await?))
}

/// Removes a location that holds no fragment (drain it first). A location of the
/// configuration file is marked `removed` (delete it from the file too); the API
/// answers 404 for it from then on, as for any removed location.
#[utoipa::path(delete, path = "/v1/locations/{name}", tag = "locations",
    params(("name" = String, Path, description = "Location name")),
    responses((status = 204, description = "Removed")))]
pub async fn remove_location(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(name) = name?;
    let view = admin.gw.catalog.view();
    shown_location(&view, &name)?;
    let (left, _) = admin.gw.meta.fragments_at_count(&name).await?;
    if left > 0 {
        return Err(Problem::conflict(format!(
            "location {name:?} holds {left} fragments; drain it first (POST /v1/locations/{name}/drain)"
        )));
    }
    if admin.gw.meta.live_job(JobKind::Drain, &name).await?.is_some() {
        return Err(Problem::conflict(format!("a drain of {name:?} is running")));
    }
    let users: Vec<&String> = view
        .policies
        .iter()
        .filter(|(p, policy)| {
            view.policy_origins.get(*p) == Some(&Origin::Api)
                && !policy.all_locations
                && policy.locations.contains(&name)
        })
        .map(|(p, _)| p)
        .collect();
    if !users.is_empty() {
        return Err(Problem::conflict(format!("policies {users:?} name location {name:?}; change them first")));
    }
    admin.gw.meta.set_location_state(&name, LocationState::Removed).await?;
    if view.location_origins.get(&name) == Some(&Origin::Api) {
        admin.gw.meta.delete_catalog(false, &name).await?;
    }
    admin.gw.refresh_catalog().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts moving every fragment off a location (a `drain` job); it takes no new
/// fragments meanwhile.
#[utoipa::path(post, path = "/v1/locations/{name}/drain", tag = "locations",
    params(("name" = String, Path, description = "Location name")),
    responses((status = 202, description = "Drain job started", body = JobInfo)))]
pub async fn drain_location(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<(StatusCode, Json<JobInfo>)> {
    let Path(name) = name?;
    start_job(&admin, "drain", Some(&name)).await.map(|j| (StatusCode::ACCEPTED, Json(j)))
}

/// Puts a drained (or draining, with no drain running) location back in service,
/// or a removed one that the configuration file still names.
#[utoipa::path(post, path = "/v1/locations/{name}/activate", tag = "locations",
    params(("name" = String, Path, description = "Location name")),
    responses((status = 200, description = "Active", body = LocationInfo)))]
pub async fn activate_location(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<LocationInfo>> {
    let Path(name) = name?;
    if !admin.gw.catalog.view().locations.contains_key(&name) {
        return Err(Problem::not_found(format!("no location {name:?}")));
    }
    if admin.gw.meta.live_job(JobKind::Drain, &name).await?.is_some() {
        return Err(Problem::conflict(format!("a drain of {name:?} is running; cancel it first")));
    }
    admin.gw.meta.set_location_state(&name, LocationState::Active).await?;
    let view = admin.gw.refresh_catalog().await?;
    Ok(Json(location_info(&admin, &view, &name).await?))
}

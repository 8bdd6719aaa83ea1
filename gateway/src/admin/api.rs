//! The admin REST API, `/v1`: locations, placement policies, tenants, access keys,
//! buckets, object placement, background jobs and status. JSON in and out; errors as
//! `application/problem+json`; every list is paged (`limit`, `cursor` → `next_cursor`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Admin;
use super::problem::{ApiJson, Problem};
use crate::catalog::{CatalogView, LocationSpec, LocationState, Origin, PolicySpec};
use crate::meta::{BucketRow, CatalogRow, JobKind, JobRow, TenantRow};

type ApiResult<T> = Result<T, Problem>;

/// Largest page.
const MAX_LIMIT: u32 = 1000;
/// Page size when none is asked for.
const DEFAULT_LIMIT: u32 = 100;

/// Paging of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> ApiResult<usize> {
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            l @ 1..=MAX_LIMIT => Ok(l as usize),
            l => Err(Problem::bad_request(format!("limit {l}: use 1 to {MAX_LIMIT}"))),
        }
    }

    /// One page of `items` (sorted by their key): those after the cursor.
    fn page<T>(&self, items: impl IntoIterator<Item = (String, T)>) -> ApiResult<(Vec<T>, Option<String>)> {
        let limit = self.limit()?;
        let mut out = Vec::new();
        let mut next = None;
        for (key, item) in items.into_iter().filter(|(k, _)| self.cursor.as_ref().is_none_or(|c| k > c)) {
            if out.len() == limit {
                break;
            }
            next = Some(key);
            out.push(item);
        }
        if out.len() < limit {
            next = None;
        }
        Ok((out, next))
    }
}

macro_rules! page_type {
    ($name:ident, $item:ty, $what:literal) => {
        #[doc = concat!("A page of ", $what, ".")]
        #[derive(Debug, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            /// The items.
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; absent on the last page.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next_cursor: Option<String>,
        }

        impl $name {
            fn of((items, next_cursor): (Vec<$item>, Option<String>)) -> Json<Self> {
                Json(Self { items, next_cursor })
            }
        }
    };
}

page_type!(LocationPage, LocationInfo, "locations");
page_type!(PolicyPage, PolicyInfo, "policies");
page_type!(TenantPage, TenantInfo, "tenants");
page_type!(KeyPage, KeyInfo, "access keys");
page_type!(BucketPage, BucketInfo, "buckets");
page_type!(JobPage, JobInfo, "jobs");

// ---- locations ---------------------------------------------------------------------

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
}

/// A location as the API knows it: one of the catalog's, unless it was removed. (A
/// removed location of the configuration file stays there until the file is
/// edited, but to the API it is gone; `activate` brings it back.)
fn shown_location<'a>(view: &'a CatalogView, name: &str) -> ApiResult<&'a crate::config::Location> {
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

// ---- policies ----------------------------------------------------------------------

/// A placement policy and the buckets that use it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyInfo {
    /// Name.
    pub name: String,
    /// `config` or `api`.
    pub origin: Origin,
    /// Definition.
    pub definition: PolicySpec,
    /// Buckets whose new writes use it.
    pub buckets: Vec<String>,
}

async fn policy_info(admin: &Admin, view: &CatalogView, name: &str) -> ApiResult<PolicyInfo> {
    let p = view.policies.get(name).ok_or_else(|| Problem::not_found(format!("no policy {name:?}")))?;
    Ok(PolicyInfo {
        name: name.to_string(),
        origin: view.policy_origins.get(name).copied().unwrap_or(Origin::Config),
        definition: PolicySpec::of(p),
        buckets: admin.gw.meta.buckets_using(name).await?,
    })
}

/// Lists policies.
#[utoipa::path(get, path = "/v1/policies", tag = "policies", params(PageQuery),
    responses((status = 200, description = "A page of policies", body = PolicyPage)))]
pub async fn list_policies(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<PolicyPage>> {
    let Query(q) = q?;
    let view = admin.gw.catalog.view();
    let (names, next) = q.page(view.policies.keys().map(|n| (n.clone(), n.clone())))?;
    let mut items = Vec::with_capacity(names.len());
    for n in &names {
        items.push(policy_info(&admin, &view, n).await?);
    }
    Ok(PolicyPage::of((items, next)))
}

/// Shows a policy.
#[utoipa::path(get, path = "/v1/policies/{name}", tag = "policies",
    params(("name" = String, Path, description = "Policy name")),
    responses((status = 200, description = "The policy", body = PolicyInfo)))]
pub async fn get_policy(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<PolicyInfo>> {
    let Path(name) = name?;
    Ok(Json(policy_info(&admin, &admin.gw.catalog.view(), &name).await?))
}

fn check_name(what: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Problem::bad_request(format!("{what} name {name:?}: 1-64 letters, digits, - and _")));
    }
    Ok(())
}

/// Creates or replaces a policy of the API. Objects keep the placement they were
/// written with; new writes of the buckets using it follow the new definition.
#[utoipa::path(put, path = "/v1/policies/{name}", tag = "policies", request_body = PolicySpec,
    params(("name" = String, Path, description = "Policy name")),
    responses((status = 200, description = "Replaced", body = PolicyInfo),
        (status = 201, description = "Created", body = PolicyInfo)))]
pub async fn put_policy(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<PolicySpec>,
) -> ApiResult<(StatusCode, Json<PolicyInfo>)> {
    let Path(name) = name?;
    let spec = body;
    check_name("policy", &name)?;
    let view = admin.gw.catalog.view();
    if view.policy_origins.get(&name) == Some(&Origin::Config) {
        return Err(Problem::conflict(format!("policy {name:?} comes from the configuration file; change it there")));
    }
    spec.check(&name, &view.locations).map_err(|e| Problem::bad_request(e.to_string()))?;
    let row = CatalogRow {
        name: name.clone(),
        definition: serde_json::to_string(&spec).map_err(Problem::internal)?,
        secret_sealed: Vec::new(),
    };
    let created = admin.gw.meta.put_catalog(true, &row, true).await?;
    if !created && !admin.gw.meta.put_catalog(true, &row, false).await? {
        return Err(Problem::conflict(format!("policy {name:?} changed concurrently; retry")));
    }
    let view = admin.gw.refresh_catalog().await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(policy_info(&admin, &view, &name).await?)))
}

/// Deletes a policy of the API that no bucket uses.
#[utoipa::path(delete, path = "/v1/policies/{name}", tag = "policies",
    params(("name" = String, Path, description = "Policy name")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_policy(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(name) = name?;
    let view = admin.gw.catalog.view();
    match view.policy_origins.get(&name) {
        None => return Err(Problem::not_found(format!("no policy {name:?}"))),
        Some(Origin::Config) => {
            return Err(Problem::conflict(format!("policy {name:?} comes from the configuration file")));
        }
        Some(Origin::Api) => {}
    }
    let users = admin.gw.meta.buckets_using(&name).await?;
    if !users.is_empty() {
        return Err(Problem::conflict(format!("buckets {users:?} use policy {name:?}; assign them another first")));
    }
    admin.gw.meta.delete_catalog(true, &name).await?;
    admin.gw.refresh_catalog().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- tenants -----------------------------------------------------------------------

/// A tenant: the owner of access keys and buckets. Its keys see and reach only its
/// buckets.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantInfo {
    /// Name.
    pub name: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Access keys.
    pub keys: i64,
    /// Buckets.
    pub buckets: i64,
}

impl From<TenantRow> for TenantInfo {
    fn from(t: TenantRow) -> Self {
        TenantInfo { name: t.name, created_at: t.created_at, keys: t.keys, buckets: t.buckets }
    }
}

/// A tenant to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    /// Name (1-63 of `a-z`, `0-9` and `-`).
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*$")]
    pub name: String,
}

/// Selects the items of one tenant.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantFilter {
    /// Only those of this tenant.
    pub tenant: Option<String>,
}

/// Lists tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, description = "A page of tenants", body = TenantPage)))]
pub async fn list_tenants(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<TenantPage>> {
    let Query(q) = q?;
    let tenants = admin.gw.meta.tenants().await?;
    Ok(TenantPage::of(q.page(tenants.into_iter().map(|t| (t.name.clone(), TenantInfo::from(t))))?))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = TenantCreate,
    responses((status = 201, description = "Created", body = TenantInfo)))]
pub async fn create_tenant(
    State(admin): State<Arc<Admin>>,
    ApiJson(body): ApiJson<TenantCreate>,
) -> ApiResult<(StatusCode, Json<TenantInfo>)> {
    crate::config::check_tenant_name(&body.name).map_err(|e| Problem::bad_request(e.to_string()))?;
    if !admin.gw.meta.create_tenant(&body.name).await? {
        return Err(Problem::conflict(format!("tenant {:?} exists", body.name)));
    }
    Ok((StatusCode::CREATED, Json(tenant_info(&admin, &body.name).await?)))
}

async fn tenant_info(admin: &Admin, name: &str) -> ApiResult<TenantInfo> {
    let t = admin.gw.meta.tenant(name).await?.ok_or_else(|| Problem::not_found(format!("no tenant {name:?}")))?;
    Ok(t.into())
}

/// Shows a tenant.
#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 200, description = "The tenant", body = TenantInfo)))]
pub async fn get_tenant(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<TenantInfo>> {
    let Path(name) = name?;
    Ok(Json(tenant_info(&admin, &name).await?))
}

/// Deletes a tenant that owns no key and no bucket.
#[utoipa::path(delete, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_tenant(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(name) = name?;
    if name == crate::config::DEFAULT_TENANT {
        return Err(Problem::conflict("the default tenant stays"));
    }
    match admin.gw.meta.delete_tenant(&name).await? {
        None => Err(Problem::not_found(format!("no tenant {name:?}"))),
        Some(false) => Err(Problem::conflict(format!("tenant {name:?} still has keys or buckets; delete them first"))),
        Some(true) => Ok(StatusCode::NO_CONTENT),
    }
}

// ---- access keys -------------------------------------------------------------------

/// An S3 access key (the secret is shown only when created or rotated).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// Access key id.
    pub access_key_id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// Whether requests signed with it are accepted.
    pub enabled: bool,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

impl From<crate::meta::AccessKeyRow> for KeyInfo {
    fn from(k: crate::meta::AccessKeyRow) -> Self {
        KeyInfo { access_key_id: k.id, tenant: k.tenant, enabled: k.enabled, created_at: k.created_at }
    }
}

/// A new key pair or secret. Shown once: keep it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewKey {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// The tenant it acts for.
    pub tenant: String,
}

/// What to create (both generated when absent).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    /// Access key id (3-128 of `A-Za-z0-9_-`).
    #[schema(min_length = 3, max_length = 128, pattern = "^[A-Za-z0-9_-]+$")]
    pub access_key_id: Option<String>,
    /// Secret (8-128 printable characters).
    #[schema(min_length = 8, max_length = 128)]
    pub secret_access_key: Option<String>,
    /// The tenant it acts for (`default` when absent); it must exist.
    pub tenant: Option<String>,
}

/// Lists access keys.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(PageQuery, TenantFilter),
    responses((status = 200, description = "A page of keys", body = KeyPage)))]
pub async fn list_keys(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<PageQuery>, QueryRejection>,
    f: Result<Query<TenantFilter>, QueryRejection>,
) -> ApiResult<Json<KeyPage>> {
    let (Query(q), Query(f)) = (q?, f?);
    let keys = admin.credentials.list(f.tenant.as_deref()).await?;
    Ok(KeyPage::of(q.page(keys.into_iter().map(|k| (k.id.clone(), KeyInfo::from(k))))?))
}

/// Creates an access key.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyCreate,
    responses((status = 201, description = "Created; the secret is shown this once", body = NewKey)))]
pub async fn create_key(
    State(admin): State<Arc<Admin>>,
    ApiJson(body): ApiJson<KeyCreate>,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    let req = body;
    let bad = |e: crate::config::ConfigError| Problem::bad_request(e.to_string());
    if let Some(id) = &req.access_key_id {
        crate::config::check_access_key_id(id).map_err(bad)?;
    }
    if let Some(secret) = &req.secret_access_key {
        crate::config::check_secret_access_key(secret).map_err(bad)?;
    }
    let tenant = req.tenant.as_deref().unwrap_or(crate::config::DEFAULT_TENANT);
    let (id, secret) =
        admin.credentials.create(req.access_key_id.as_deref(), req.secret_access_key.as_deref(), tenant).await?;
    let new = NewKey { access_key_id: id, secret_access_key: secret.to_string(), tenant: tenant.to_string() };
    Ok((StatusCode::CREATED, Json(new)))
}

async fn key_info(admin: &Admin, id: &str) -> ApiResult<KeyInfo> {
    let k = admin.gw.meta.access_key(id).await?.ok_or_else(|| Problem::not_found(format!("no access key {id:?}")))?;
    Ok(k.into())
}

/// Revokes (disables) an access key; requests signed with it fail from now on
/// (on other replicas within 5 seconds).
#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys",
    params(("id" = String, Path, description = "Access key id")),
    responses((status = 200, description = "Revoked", body = KeyInfo)))]
pub async fn revoke_key(
    State(admin): State<Arc<Admin>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<KeyInfo>> {
    let Path(id) = id?;
    if !admin.credentials.set_enabled(&id, false).await? {
        return Err(Problem::not_found(format!("no access key {id:?}")));
    }
    Ok(Json(key_info(&admin, &id).await?))
}

/// Gives an access key a new secret; the old one stops working.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path, description = "Access key id")),
    responses((status = 200, description = "The new secret, shown this once", body = NewKey)))]
pub async fn rotate_key(
    State(admin): State<Arc<Admin>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<NewKey>> {
    let Path(id) = id?;
    let secret =
        admin.credentials.rotate(&id).await?.ok_or_else(|| Problem::not_found(format!("no access key {id:?}")))?;
    let tenant = key_info(&admin, &id).await?.tenant;
    Ok(Json(NewKey { access_key_id: id, secret_access_key: secret.to_string(), tenant }))
}

/// Deletes an access key.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Access key id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_key(
    State(admin): State<Arc<Admin>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(id) = id?;
    if !admin.credentials.delete(&id).await? {
        return Err(Problem::not_found(format!("no access key {id:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- buckets and objects -----------------------------------------------------------

/// Fragments of a bucket at one location.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LocationUsage {
    /// Location.
    pub location: String,
    /// Fragments.
    pub fragments: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// A bucket and its usage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BucketInfo {
    /// Name.
    pub name: String,
    /// The tenant that owns it.
    pub tenant: String,
    /// Placement policy of its new writes.
    pub policy: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Objects.
    pub objects: i64,
    /// Their bytes (plaintext).
    pub bytes: i64,
    /// Fragments per location.
    pub locations: Vec<LocationUsage>,
}

async fn bucket_info(admin: &Admin, b: BucketRow) -> ApiResult<BucketInfo> {
    let u = admin.gw.meta.bucket_usage(&b.name).await?;
    Ok(BucketInfo {
        name: b.name,
        tenant: b.tenant,
        policy: b.policy,
        created_at: b.created_at,
        objects: u.objects,
        bytes: u.bytes,
        locations: u
            .fragments
            .into_iter()
            .map(|(location, fragments, bytes)| LocationUsage { location, fragments, bytes })
            .collect(),
    })
}

/// Lists buckets with their usage.
#[utoipa::path(get, path = "/v1/buckets", tag = "buckets", params(PageQuery, TenantFilter),
    responses((status = 200, description = "A page of buckets", body = BucketPage)))]
pub async fn list_buckets(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<PageQuery>, QueryRejection>,
    f: Result<Query<TenantFilter>, QueryRejection>,
) -> ApiResult<Json<BucketPage>> {
    let (Query(q), Query(f)) = (q?, f?);
    let buckets = match &f.tenant {
        Some(t) => admin.gw.meta.buckets_of(t).await?,
        None => admin.gw.meta.buckets().await?,
    };
    let (rows, next) = q.page(buckets.into_iter().map(|b| (b.name.clone(), b)))?;
    let mut items = Vec::with_capacity(rows.len());
    for b in rows {
        items.push(bucket_info(&admin, b).await?);
    }
    Ok(BucketPage::of((items, next)))
}

/// Shows a bucket's usage.
#[utoipa::path(get, path = "/v1/buckets/{name}", tag = "buckets",
    params(("name" = String, Path, description = "Bucket name")),
    responses((status = 200, description = "The bucket", body = BucketInfo)))]
pub async fn get_bucket(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<BucketInfo>> {
    let Path(name) = name?;
    let b = admin.gw.meta.bucket(&name).await?.ok_or_else(|| Problem::not_found(format!("no bucket {name:?}")))?;
    Ok(Json(bucket_info(&admin, b).await?))
}

/// A policy to assign.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyAssignment {
    /// Policy name.
    pub policy: String,
}

/// Assigns a policy to a bucket: its new writes follow it (objects keep theirs).
#[utoipa::path(put, path = "/v1/buckets/{name}/policy", tag = "buckets", request_body = PolicyAssignment,
    params(("name" = String, Path, description = "Bucket name")),
    responses((status = 200, description = "Assigned", body = BucketInfo)))]
pub async fn assign_policy(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<PolicyAssignment>,
) -> ApiResult<Json<BucketInfo>> {
    let Path(name) = name?;
    let a = body;
    if !admin.gw.catalog.view().policies.contains_key(&a.policy) {
        return Err(Problem::bad_request(format!("no policy {:?}", a.policy)));
    }
    if !admin.gw.meta.set_bucket_policy(&name, &a.policy).await? {
        return Err(Problem::not_found(format!("no bucket {name:?}")));
    }
    let b = admin.gw.meta.bucket(&name).await?.ok_or_else(|| Problem::not_found(format!("no bucket {name:?}")))?;
    Ok(Json(bucket_info(&admin, b).await?))
}

/// Which object to inspect.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ObjectQuery {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

/// Where one fragment lives.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FragmentInfo {
    /// Fragment index.
    pub index: i64,
    /// Location.
    pub location: String,
    /// The location's state.
    pub location_state: LocationState,
    /// Bytes.
    pub size: i64,
    /// `pending`, `stored` or `missing`.
    pub state: String,
}

/// One part (one coded seal) of an object.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartInfo {
    /// Part number.
    pub part_number: i64,
    /// Offset in the object.
    pub offset: i64,
    /// Bytes (plaintext).
    pub size: i64,
    /// The seal's id (also the fragments' name at their locations).
    pub seal: String,
    /// Fragments needed.
    pub k: i64,
    /// Fragments written.
    pub n: i64,
    /// `zstd` or `lz4` when compressed.
    pub compression: Option<String>,
    /// Its fragments.
    pub fragments: Vec<FragmentInfo>,
}

/// Where an object's fragments live.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ObjectInfo {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id.
    pub version: String,
    /// Bytes.
    pub size: i64,
    /// ETag.
    pub etag: String,
    /// Last modified, Unix milliseconds.
    pub last_modified: i64,
    /// Parts in order.
    pub parts: Vec<PartInfo>,
}

/// Shows where each fragment of an object lives and its state.
#[utoipa::path(get, path = "/v1/objects", tag = "buckets", params(ObjectQuery),
    responses((status = 200, description = "The object's placement", body = ObjectInfo)))]
pub async fn inspect_object(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<ObjectQuery>, QueryRejection>,
) -> ApiResult<Json<ObjectInfo>> {
    let Query(q) = q?;
    let manifest = admin
        .gw
        .meta
        .manifest(&q.bucket, q.key.as_bytes())
        .await?
        .ok_or_else(|| Problem::not_found(format!("no object {:?} in bucket {:?}", q.key, q.bucket)))?;
    let view = admin.gw.catalog.view();
    let parts = manifest
        .parts
        .into_iter()
        .map(|p| PartInfo {
            part_number: i64::from(p.number),
            offset: p.offset as i64,
            size: p.size as i64,
            seal: p.seal.id.to_string(),
            k: i64::from(p.seal.params.k()),
            n: i64::from(p.seal.params.n()),
            compression: p.seal.compression.column().map(String::from),
            fragments: p
                .seal
                .fragments
                .into_iter()
                .map(|f| FragmentInfo {
                    index: i64::from(f.index),
                    location_state: view.state(&f.location),
                    location: f.location,
                    size: f.size as i64,
                    state: f.state.to_string(),
                })
                .collect(),
        })
        .collect();
    let version = manifest.version;
    Ok(Json(ObjectInfo {
        bucket: q.bucket,
        key: q.key,
        version: version.id.to_string(),
        size: version.size as i64,
        etag: version.etag,
        last_modified: version.last_modified,
        parts,
    }))
}

// ---- jobs --------------------------------------------------------------------------

/// A background job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobInfo {
    /// Id.
    pub id: String,
    /// `drain` or `gc`.
    pub kind: String,
    /// The location of a drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `queued`, `running`, `cancelling`, `cancelled`, `succeeded` or `failed`.
    pub state: String,
    /// Items to do, as far as known.
    pub total: i64,
    /// Items done.
    pub done: i64,
    /// Items that failed in the current pass (retried).
    pub failed: i64,
    /// Last progress or outcome message.
    pub message: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

impl From<JobRow> for JobInfo {
    fn from(j: JobRow) -> Self {
        Self {
            id: j.id,
            kind: j.kind.to_string(),
            location: Some(j.target).filter(|t| !t.is_empty()),
            state: j.state.to_string(),
            total: j.total,
            done: j.done,
            failed: j.failed,
            message: j.message,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// A job to start.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCreate {
    /// `drain` (needs `location`) or `gc`.
    #[schema(pattern = "^(drain|gc)$")]
    pub kind: String,
    /// The location to drain.
    pub location: Option<String>,
}

async fn start_job(admin: &Admin, kind: &str, location: Option<&str>) -> ApiResult<JobInfo> {
    let Ok(kind) = kind.parse::<JobKind>() else {
        let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(Problem::bad_request(format!("job kind {kind:?}: use one of {known:?}")));
    };
    let target = match (kind, location) {
        (JobKind::Drain, Some(l)) => {
            shown_location(&admin.gw.catalog.view(), l)?;
            l
        }
        (JobKind::Drain, None) => return Err(Problem::bad_request("a drain needs a location")),
        (JobKind::Gc, None) => "",
        (JobKind::Gc, Some(_)) => return Err(Problem::bad_request("gc takes no location")),
    };
    if let Some(live) = admin.gw.meta.live_job(kind, target).await? {
        return Err(Problem::conflict(format!("job {} ({kind}) is already {}", live.id, live.state)));
    }
    let id = crate::keys::random_token(admin.gw.offload.random.as_ref(), 16, crate::keys::KEY_ID_ALPHABET)
        .map_err(Problem::internal)?
        .to_lowercase();
    admin.gw.meta.insert_job(&id, kind, target).await?;
    if kind == JobKind::Drain {
        // New writes avoid it from now on (other replicas at their next refresh).
        admin.gw.meta.set_location_state(target, LocationState::Draining).await?;
        admin.gw.refresh_catalog().await?;
    }
    let job = admin.gw.meta.job(&id).await?.ok_or_else(|| Problem::internal("job vanished"))?;
    Ok(job.into())
}

/// Lists jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(PageQuery),
    responses((status = 200, description = "A page of jobs", body = JobPage)))]
pub async fn list_jobs(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    let Query(q) = q?;
    let limit = q.limit()?;
    let rows = admin.gw.meta.jobs(q.cursor.as_deref(), limit as i64 + 1).await?;
    let more = rows.len() > limit;
    let items: Vec<JobInfo> = rows.into_iter().take(limit).map(JobInfo::from).collect();
    let next = if more { items.last().map(|j| j.id.clone()) } else { None };
    Ok(JobPage::of((items, next)))
}

/// Starts a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobCreate,
    responses((status = 202, description = "Started", body = JobInfo)))]
pub async fn create_job(
    State(admin): State<Arc<Admin>>,
    ApiJson(body): ApiJson<JobCreate>,
) -> ApiResult<(StatusCode, Json<JobInfo>)> {
    let req = body;
    start_job(&admin, &req.kind, req.location.as_deref()).await.map(|j| (StatusCode::ACCEPTED, Json(j)))
}

/// Shows a job and its progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobInfo)))]
pub async fn get_job(
    State(admin): State<Arc<Admin>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<JobInfo>> {
    let Path(id) = id?;
    let job = admin.gw.meta.job(&id).await?.ok_or_else(|| Problem::not_found(format!("no job {id:?}")))?;
    Ok(Json(job.into()))
}

/// Cancels a job (a running one stops after its current item).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job after the request", body = JobInfo)))]
pub async fn cancel_job(
    State(admin): State<Arc<Admin>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<JobInfo>> {
    let Path(id) = id?;
    let job = admin.gw.meta.cancel_job(&id).await?.ok_or_else(|| Problem::not_found(format!("no job {id:?}")))?;
    Ok(Json(job.into()))
}

// ---- status ------------------------------------------------------------------------

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
        policy: admin.gw.settings.cache.policy.clone(),
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
        process_cpu_seconds: super::process_cpu_seconds(),
    }))
}

/// Shows the fragment cache.
#[utoipa::path(get, path = "/v1/cache", tag = "status",
    responses((status = 200, description = "The cache", body = CacheStatus)))]
pub async fn cache(State(admin): State<Arc<Admin>>) -> ApiResult<Json<CacheStatus>> {
    cache_status(&admin).map(Json).ok_or_else(|| Problem::not_found("no fragment cache is configured"))
}

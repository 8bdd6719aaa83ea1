//! Placement policies: list, show, create or replace, delete.

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

use crate::catalog::{CatalogView, Origin, PolicySpec};
use crate::meta::CatalogRow;

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

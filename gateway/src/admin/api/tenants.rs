//! Tenants: the owners of access keys and buckets.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::*;
use crate::admin::Admin;
use crate::admin::problem::{ApiJson, Problem};
use crate::meta::TenantRow;

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

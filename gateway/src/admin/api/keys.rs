//! S3 access keys: list, create, revoke, rotate, delete.

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
    /// Whether it may bypass governance retention.
    pub bypass_governance: bool,
}

impl From<crate::meta::AccessKeyRow> for KeyInfo {
    fn from(k: crate::meta::AccessKeyRow) -> Self {
        KeyInfo {
            access_key_id: k.id,
            tenant: k.tenant,
            enabled: k.enabled,
            created_at: k.created_at,
            bypass_governance: k.bypass_governance,
        }
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
    /// It may delete versions under governance retention, and shorten or remove
    /// that retention, with `x-amz-bypass-governance-retention: true` (never
    /// compliance retention or a legal hold). Default: no.
    pub bypass_governance: Option<bool>,
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
    let bypass = req.bypass_governance.unwrap_or(false);
    let (id, secret) = admin
        .credentials
        .create(req.access_key_id.as_deref(), req.secret_access_key.as_deref(), tenant, bypass)
        .await?;
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

//! Buckets: usage and policy.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;
use crate::admin::Admin;
use crate::admin::problem::{ApiJson, Problem};
use crate::meta::BucketRow;

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

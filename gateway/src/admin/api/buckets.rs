//! Buckets (usage, policy) and where an object's fragments are.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::*;
use crate::admin::Admin;
use crate::admin::problem::{ApiJson, Problem};
use crate::catalog::LocationState;
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
    /// `pending`, `stored`, `missing`, `corrupt` or `repairing`.
    pub state: String,
    /// When it was last read back whole and found good, Unix milliseconds (0: not
    /// since it was written).
    pub verified_at: i64,
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
    /// Healthy fragments minus k: how many more it can lose.
    pub margin: i64,
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
            margin: p.seal.margin(),
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
                    verified_at: f.verified_at,
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

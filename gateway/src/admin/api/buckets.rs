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

/// One object's placement checked against its bucket's policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditItem {
    /// Key.
    pub key: String,
    /// Its current version.
    pub version: String,
    /// Parts (coded seals).
    pub parts: i64,
    /// The least margin of its parts (healthy fragments minus k).
    pub margin: i64,
    /// Whether every part keeps every constraint.
    pub kept: bool,
    /// Each constraint a part does not keep: `part N: rule (found)`.
    pub broken: Vec<String>,
}

/// A page of a bucket's audit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The bucket's policy, whose constraints are checked.
    pub policy: String,
    /// Its constraints, in words (`none`: every placement keeps them).
    pub constraints: String,
    /// The objects checked.
    pub items: Vec<AuditItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Checks the current version of every object in a bucket (a page at a time)
/// against the sovereignty constraints of the bucket's policy, as its fragments
/// are placed now.
#[utoipa::path(get, path = "/v1/buckets/{name}/audit", tag = "buckets",
    params(("name" = String, Path, description = "Bucket name"), PageQuery),
    responses((status = 200, description = "A page of objects checked", body = AuditPage)))]
pub async fn audit_bucket(
    State(admin): State<Arc<Admin>>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let (Path(name), Query(q)) = (name?, q?);
    let limit = q.limit()?;
    let b = admin.gw.meta.bucket(&name).await?.ok_or_else(|| Problem::not_found(format!("no bucket {name:?}")))?;
    let view = admin.gw.catalog.view();
    let none = crate::config::Constraints::default();
    let constraints = view.policies.get(&b.policy).map_or(&none, |p| &p.constraints);
    let from = match &q.cursor {
        Some(c) => hex::decode(c).map_err(|_| Problem::bad_request(format!("cursor {c:?}: not one this API gave")))?,
        None => Vec::new(),
    };
    let listed = admin.gw.meta.list_objects(&name, &from, q.cursor.is_some(), limit as i64 + 1).await?;
    let more = listed.len() > limit;
    let mut items = Vec::with_capacity(limit);
    let mut last = None;
    for o in listed.into_iter().take(limit) {
        last = Some(hex::encode(&o.key));
        // Deleted since it was listed: nothing to check.
        let Some(m) = admin.gw.meta.manifest(&name, &o.key).await? else { continue };
        let mut broken = Vec::new();
        for p in &m.parts {
            for c in placement_checks(&view, constraints, &p.seal).into_iter().filter(|c| !c.satisfied) {
                broken.push(format!("part {}: {} ({})", p.number, c.rule, c.found));
            }
        }
        items.push(AuditItem {
            key: String::from_utf8_lossy(&o.key).into_owned(),
            version: m.version.id.to_string(),
            parts: m.parts.len() as i64,
            margin: m.parts.iter().map(|p| p.seal.margin()).min().unwrap_or(0),
            kept: broken.is_empty(),
            broken,
        });
    }
    let next_cursor = if more { last } else { None };
    Ok(Json(AuditPage { policy: b.policy, constraints: constraints.to_string(), items, next_cursor }))
}

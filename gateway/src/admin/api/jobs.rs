//! Background jobs: list, start, show, cancel.

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
use crate::catalog::LocationState;
use crate::meta::{JobKind, JobRow};

/// A background job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobInfo {
    /// Id.
    pub id: String,
    /// `drain`, `gc`, `repair`, `scrub` or `sweep`.
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
    /// `drain` (needs `location`), `gc`, `repair`, `scrub`, `sweep`, or `rekey` (a
    /// master key rotation: a new key version now, everything re-wrapped under it).
    #[schema(pattern = "^(drain|gc|repair|scrub|sweep|rekey)$")]
    pub kind: String,
    /// The location to drain.
    pub location: Option<String>,
}

pub(super) async fn start_job(admin: &Admin, kind: &str, location: Option<&str>) -> ApiResult<JobInfo> {
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
        (JobKind::Gc | JobKind::Repair | JobKind::Scrub | JobKind::Sweep | JobKind::Rekey, None) => "",
        (_, Some(_)) => return Err(Problem::bad_request(format!("a {kind} job takes no location"))),
    };
    if let Some(live) = admin.gw.meta.live_job(kind, target).await? {
        return Err(Problem::conflict(format!("job {} ({kind}) is already {}", live.id, live.state)));
    }
    let id = crate::keys::random_token(admin.gw.offload.random.as_ref(), 16, crate::keys::KEY_ID_ALPHABET)
        .map_err(Problem::internal)?
        .to_lowercase();
    if kind == JobKind::Rekey {
        // The new version seals from now on; the job re-wraps what the old sealed.
        crate::rekey::begin(&admin.gw).map_err(|e| match e {
            crate::rekey::RekeyError::Configured => Problem::conflict(e.to_string()),
            other => Problem::internal(other),
        })?;
    }
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

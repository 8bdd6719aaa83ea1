//! Where an object's fragments are, their state, and how they are locked.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::*;
use crate::admin::Admin;
use crate::admin::problem::Problem;
use crate::catalog::{CatalogView, LocationState};
use crate::config::{Check, Constraints, Location};
use crate::evidence::{ALGORITHM, Signed};
use crate::meta::{Seal, VersionRef};
use crate::pipeline::fragment_ref;
use crate::pipeline::locks::fragment_lock;

/// Which object to inspect.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ObjectQuery {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// A version id (as S3 shows it; `null` for the null version); the current
    /// version when absent.
    pub version: Option<String>,
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
    /// Who runs the location, as it states.
    pub provider: Option<String>,
    /// Whose law the location is under, as it states.
    pub jurisdiction: Option<String>,
    /// Bytes.
    pub size: i64,
    /// `pending`, `stored`, `missing`, `corrupt` or `repairing`.
    pub state: String,
    /// When it was last read back whole and found good, Unix milliseconds (0: not
    /// since it was written).
    pub verified_at: i64,
    /// The lock its location holds it under, asked of the location now (`null`:
    /// none, or a location that enforces no retention or did not answer).
    pub location_lock: Option<FragmentLockInfo>,
}

/// A fragment's lock at its location.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FragmentLockInfo {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    /// No delete before this, Unix seconds.
    pub until: u64,
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
    /// The bucket's policy's sovereignty constraints, each checked against where
    /// the fragments are now (empty: the policy has none).
    pub constraints: Vec<Check>,
    /// Fragments their locations hold locked at least as long as the version's
    /// retention (0 for a version without one).
    pub locked_fragments: i64,
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
    /// The bucket's placement policy, which repair and drains keep its fragments to.
    pub policy: Option<String>,
    /// Bytes.
    pub size: i64,
    /// ETag.
    pub etag: String,
    /// Last modified, Unix milliseconds.
    pub last_modified: i64,
    /// Its object lock: `GOVERNANCE` or `COMPLIANCE` retention…
    pub lock_mode: Option<String>,
    /// …until this, Unix milliseconds…
    pub retain_until: Option<i64>,
    /// …and whether a legal hold is on it.
    pub legal_hold: bool,
    /// Whether every part has at least `k` fragments locked at their locations as
    /// long as the version's retention: then no location, credential or gateway
    /// can destroy the version before its date. `false` without a retention.
    pub locked_at_k: bool,
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
    Ok(Json(object_info(&admin, q).await?))
}

/// What a signed report says.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvidenceReport {
    /// When it was made, Unix milliseconds.
    pub issued_at: i64,
    /// The object's placement, each fragment's location with who runs it and whose
    /// law it is under, and each constraint of its policy checked.
    pub object: ObjectInfo,
}

/// An object's placement, signed by the gateway.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    /// The report, to read (what `signed.payload` holds: check the signature, then
    /// trust the payload, not this copy).
    pub report: EvidenceReport,
    /// The signed report.
    pub signed: Signed,
}

/// The key evidence is signed with.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvidenceKey {
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The master key version it is derived from.
    pub key_version: u32,
    /// The public key (32 bytes, base64).
    pub public_key: String,
}

/// Signed evidence of where each fragment of an object is and which constraint of
/// its policy the placement keeps.
#[utoipa::path(get, path = "/v1/objects/evidence", tag = "buckets", params(ObjectQuery),
    responses((status = 200, description = "The object's placement, signed", body = Evidence)))]
pub async fn object_evidence(
    State(admin): State<Arc<Admin>>,
    q: Result<Query<ObjectQuery>, QueryRejection>,
) -> ApiResult<Json<Evidence>> {
    let Query(q) = q?;
    let report = EvidenceReport { issued_at: crate::meta::now_ms(), object: object_info(&admin, q).await? };
    let signed = admin.gw.evidence.sign(&report).map_err(|e| Problem::internal(format!("evidence: {e}")))?;
    Ok(Json(Evidence { report, signed }))
}

/// The public key evidence is signed with, to pin apart from the reports.
#[utoipa::path(get, path = "/v1/evidence/key", tag = "buckets",
    responses((status = 200, description = "The evidence signing key", body = EvidenceKey)))]
pub async fn evidence_key(State(admin): State<Arc<Admin>>) -> Json<EvidenceKey> {
    let s = &admin.gw.evidence;
    Json(EvidenceKey { algorithm: ALGORITHM.into(), key_version: s.version(), public_key: s.public_key() })
}

/// Each of `constraints` checked against where `seal`'s fragments are now.
pub(super) fn placement_checks(view: &CatalogView, constraints: &Constraints, seal: &Seal) -> Vec<Check> {
    let held: Vec<&Location> = seal.fragments.iter().filter_map(|f| view.locations.get(&f.location)).collect();
    constraints.report(&held)
}

async fn object_info(admin: &Admin, q: ObjectQuery) -> ApiResult<ObjectInfo> {
    let which = match q.version.as_deref() {
        Some(v) => Some(v.parse::<VersionRef>().map_err(|_| Problem::bad_request(format!("no version id {v:?}")))?),
        None => None,
    };
    let manifest = match which {
        Some(which) => admin.gw.meta.version_manifest(&q.bucket, q.key.as_bytes(), which).await?,
        None => admin.gw.meta.manifest(&q.bucket, q.key.as_bytes()).await?,
    };
    let manifest =
        manifest.ok_or_else(|| Problem::not_found(format!("no object {:?} in bucket {:?}", q.key, q.bucket)))?;
    let view = admin.gw.catalog.view();
    let policy = admin.gw.meta.bucket(&q.bucket).await?.map(|b| b.policy);
    let constraints = policy.as_ref().and_then(|p| view.policies.get(p)).map(|p| &p.constraints);
    let version = manifest.version;
    let wanted = fragment_lock(&version.lock);
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for p in manifest.parts {
        let asked = futures::future::join_all(p.seal.fragments.iter().map(|f| {
            let at = fragment_ref(f, f.size, None);
            let store = admin.gw.pipeline.locations.clone();
            async move { store.retention(&at).await.ok().flatten() }
        }))
        .await;
        let locked_fragments = match wanted {
            Some(w) => asked.iter().flatten().filter(|l| l.until >= w.until && (l.compliance || !w.compliance)).count(),
            None => 0,
        };
        let checks = constraints.map(|c| placement_checks(&view, c, &p.seal)).unwrap_or_default();
        parts.push(PartInfo {
            part_number: i64::from(p.number),
            offset: p.offset as i64,
            size: p.size as i64,
            seal: p.seal.id.to_string(),
            k: i64::from(p.seal.params.k()),
            n: i64::from(p.seal.params.n()),
            compression: p.seal.compression.column().map(String::from),
            margin: p.seal.margin(),
            constraints: checks,
            locked_fragments: locked_fragments as i64,
            fragments: p
                .seal
                .fragments
                .into_iter()
                .zip(asked)
                .map(|(f, lock)| {
                    let described = view.locations.get(&f.location);
                    FragmentInfo {
                        index: i64::from(f.index),
                        location_state: view.state(&f.location),
                        provider: described.and_then(|l| l.provider.clone()),
                        jurisdiction: described.and_then(|l| l.jurisdiction.clone()),
                        location: f.location,
                        size: f.size as i64,
                        state: f.state.to_string(),
                        verified_at: f.verified_at,
                        location_lock: lock.map(|l| FragmentLockInfo {
                            mode: if l.compliance { "COMPLIANCE" } else { "GOVERNANCE" }.into(),
                            until: l.until,
                        }),
                    }
                })
                .collect(),
        });
    }
    Ok(ObjectInfo {
        bucket: q.bucket,
        key: q.key,
        version: version.id.to_string(),
        policy,
        size: version.size as i64,
        etag: version.etag,
        last_modified: version.last_modified,
        lock_mode: version.lock.mode.map(|m| m.as_str().to_string()),
        retain_until: version.lock.until,
        legal_hold: version.lock.legal_hold,
        locked_at_k: wanted.is_some() && parts.iter().all(|p| p.locked_fragments >= p.k),
        parts,
    })
}

//! S3 versioning: a bucket's state, the version a read or delete names, delete
//! markers as S3 answers them, and ListObjectVersions.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::list::{Listing, Resume, after_marker, encoder, list_page, owner};
use super::{S3Front, error, quoted, timestamp};
use crate::meta::{BucketRow, ListedVersion, Manifest, VersionRef, VersionRow, Versioning};

/// The version a request names (`versionId`): `null`, or an id this gateway made.
pub(super) fn version_ref(id: &str) -> S3Result<VersionRef> {
    id.parse().map_err(|_| s3_error!(InvalidArgument, "Invalid version id specified"))
}

/// `x-amz-version-id` for `v` in `bucket`: none in a bucket never versioned.
pub(super) fn shown(bucket: &BucketRow, v: &VersionRow) -> Option<String> {
    bucket.versioning.map(|_| v.shown_id())
}

/// The answer to a read of a delete marker: 404 NoSuchKey for the key's latest,
/// 405 MethodNotAllowed for the marker named by its id; with the headers S3 sends.
fn marker_error(v: &VersionRow, named: bool) -> S3Error {
    let mut e = match named {
        true => {
            let mut e = S3Error::with_message(
                S3ErrorCode::MethodNotAllowed,
                "The specified method is not allowed against this resource.",
            );
            e.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
            e
        }
        false => s3_error!(NoSuchKey, "The specified key does not exist."),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Ok(id) = http::HeaderValue::from_str(&v.shown_id()) {
        headers.insert("x-amz-version-id", id);
    }
    let mut date = Vec::new();
    if timestamp(v.last_modified).format(TimestampFormat::HttpDate, &mut date).is_ok()
        && let Ok(d) = http::HeaderValue::from_bytes(&date)
    {
        headers.insert(http::header::LAST_MODIFIED, d);
    }
    e.set_headers(headers);
    e
}

impl S3Front {
    /// The version of `key` a read serves: `version_id`'s, else the latest; an
    /// absent key or version, or a delete marker, is the error S3 gives.
    pub(super) async fn read_version(&self, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<Manifest> {
        let meta = &self.gw.meta;
        let Some(id) = version_id else {
            if let Some(m) = meta.manifest(bucket, key.as_bytes()).await.map_err(error::meta)? {
                return Ok(m);
            }
            return Err(match meta.latest_marker(bucket, key.as_bytes()).await.map_err(error::meta)? {
                Some(marker) => marker_error(&marker, false),
                None => s3_error!(NoSuchKey, "The specified key does not exist."),
            });
        };
        let which = version_ref(id)?;
        let m = meta
            .version_manifest(bucket, key.as_bytes(), which)
            .await
            .map_err(error::meta)?
            .ok_or_else(|| s3_error!(NoSuchVersion, "The specified version does not exist."))?;
        if m.version.delete_marker {
            return Err(marker_error(&m.version, true));
        }
        Ok(m)
    }

    pub(super) async fn op_put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let i = &req.input;
        let bucket = self.bucket(&req.extensions, &i.bucket).await?;
        let c = &i.versioning_configuration;
        if c.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "MFA delete is not supported by this gateway (its deletes are guarded by object lock).",
            ));
        }
        let state = match c.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => return Err(s3_error!(MalformedXML, "The versioning status must be Enabled or Suspended.")),
        };
        if bucket.object_lock.is_some() && state != Versioning::Enabled {
            return Err(s3_error!(
                InvalidBucketState,
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
            ));
        }
        if bucket.versioning != Some(state) {
            if !self.gw.meta.set_versioning(&bucket.name, state).await.map_err(error::meta)? {
                return Err(s3_error!(NoSuchBucket));
            }
            self.gw.publish_catalog().await;
        }
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    pub(super) async fn op_get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let bucket = self.bucket(&req.extensions, &req.input.bucket).await?;
        let status = bucket.versioning.map(|v| BucketVersioningStatus::from(v.as_str().to_string()));
        Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
    }

    /// ListObjectVersions: every version and delete marker, by key, the newest of
    /// a key first (in a bucket never versioned, each object is its one `null`
    /// version).
    pub(super) async fn op_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let i = req.input;
        let Listing { bucket, max, prefix, delimiter } =
            self.listing(&req.extensions, &i.bucket, i.max_keys, i.prefix.as_ref(), i.delimiter.as_ref()).await?;
        let owner = owner(&bucket.tenant);
        let key_marker = i.key_marker.as_deref().filter(|m| !m.is_empty());
        let resume = match (key_marker, i.version_id_marker.as_deref().filter(|v| !v.is_empty())) {
            (Some(k), Some(v)) => {
                let which = version_ref(v)?;
                match self.gw.meta.find_version(&i.bucket, k.as_bytes(), which).await.map_err(error::meta)? {
                    Some(found) => Some(Resume::AfterVersion(k.as_bytes().to_vec(), Box::new(found.version))),
                    None => return Err(s3_error!(InvalidArgument, "Invalid version id specified")),
                }
            }
            (None, Some(_)) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "A version-id marker cannot be specified without a key marker."
                ));
            }
            (k, None) => after_marker(k, &prefix, delimiter.as_deref()),
        };
        let name = i.bucket.clone();
        let meta = &self.gw.meta;
        let fetch = |from: Resume| {
            let name = name.clone();
            async move {
                let r = match &from {
                    Resume::After(k) => meta.list_versions(&name, k, true, None, 1000).await,
                    Resume::From(k) => meta.list_versions(&name, k, false, None, 1000).await,
                    Resume::AfterVersion(k, v) => meta.list_versions(&name, k, true, Some(v), 1000).await,
                };
                r.map_err(error::meta)
            }
        };
        let page = list_page(fetch, prefix.as_bytes(), delimiter.as_deref().map(str::as_bytes), resume, max).await?;
        let enc = encoder(i.encoding_type.as_ref());
        let (mut versions, mut markers) = (Vec::new(), Vec::new());
        for ListedVersion { version: v, latest } in &page.items {
            if v.delete_marker {
                markers.push(DeleteMarkerEntry {
                    key: Some(enc(&v.key)),
                    version_id: Some(v.shown_id()),
                    is_latest: Some(*latest),
                    last_modified: Some(timestamp(v.last_modified)),
                    owner: Some(owner.clone()),
                });
                continue;
            }
            versions.push(ObjectVersion {
                key: Some(enc(&v.key)),
                version_id: Some(v.shown_id()),
                is_latest: Some(*latest),
                size: Some(v.size as i64),
                e_tag: Some(quoted(&v.etag)),
                last_modified: Some(timestamp(v.last_modified)),
                storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                owner: Some(owner.clone()),
                checksum_algorithm: v
                    .attrs
                    .checksum_algorithm
                    .map(|a| vec![ChecksumAlgorithm::from(a.as_str().to_string())]),
                checksum_type: v.checksum_type.clone().map(ChecksumType::from),
                ..Default::default()
            });
        }
        // Resumes after the last version listed, or past the last common prefix.
        let (next_key, next_version) = match (&page.resume, page.truncated) {
            (Some(Resume::AfterVersion(k, v)), true) => (Some(enc(k)), Some(v.shown_id())),
            (Some(_), true) => (page.last.as_deref().map(&enc), None),
            _ => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(prefix.as_bytes())),
            delimiter: delimiter.map(|d| enc(d.as_bytes())),
            key_marker: Some(i.key_marker.map(|m| enc(m.as_bytes())).unwrap_or_default()),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_key_marker: next_key,
            next_version_id_marker: next_version,
            encoding_type: i.encoding_type,
            versions: Some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            common_prefixes: Some(page.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect()),
            ..Default::default()
        }))
    }
}

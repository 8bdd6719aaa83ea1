//! S3 tagging: an object version's tags (set with `x-amz-tagging` on a write, or
//! by PutObjectTagging), a bucket's tags; S3's limits and errors.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::{S3Front, error};
use crate::meta::{BucketRow, VersionRow};

/// Tags an object version may have.
const OBJECT_TAGS: usize = 10;
/// Tags a bucket may have.
const BUCKET_TAGS: usize = 50;

fn invalid(msg: &'static str) -> S3Error {
    s3_error!(InvalidTag, "{msg}")
}

/// Checks tags against S3's rules: at most `max`, keys unique, 1-128 characters
/// and not `aws:`-prefixed, values at most 256, letters, digits, spaces and
/// `+ - = . _ : / @` only.
fn checked(pairs: Vec<(String, String)>, max: usize) -> S3Result<BTreeMap<String, String>> {
    if pairs.len() > max {
        return Err(match max {
            OBJECT_TAGS => {
                error::coded("BadRequest", http::StatusCode::BAD_REQUEST, "Object tags cannot be greater than 10")
            }
            _ => invalid("Bucket tag count cannot be greater than 50"),
        });
    }
    let allowed = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c));
    let mut tags = BTreeMap::new();
    for (k, v) in pairs {
        if k.is_empty() || k.chars().count() > 128 || !allowed(&k) {
            return Err(invalid("The TagKey you have provided is invalid"));
        }
        if v.chars().count() > 256 || !allowed(&v) {
            return Err(invalid("The TagValue you have provided is invalid"));
        }
        if k.starts_with("aws:") {
            return Err(invalid("Your TagKey cannot be prefixed with aws:"));
        }
        if tags.insert(k, v).is_some() {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(tags)
}

/// The tags `x-amz-tagging` gives a write (`k1=v1&k2=v2`, URL-encoded).
pub(super) fn from_header(header: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let Some(h) = header.filter(|h| !h.is_empty()) else { return Ok(BTreeMap::new()) };
    let pairs = form_urlencoded::parse(h.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    checked(pairs, OBJECT_TAGS)
}

fn from_set(set: Vec<Tag>, max: usize) -> S3Result<BTreeMap<String, String>> {
    let pairs = set.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect();
    checked(pairs, max)
}

fn to_set(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect()
}

impl S3Front {
    /// Changes the tags of the version a request names (else the latest).
    async fn retag(
        &self,
        extensions: &http::Extensions,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> S3Result<(BucketRow, VersionRow)> {
        let row = self.bucket(extensions, bucket).await?;
        let v = self.read_version(bucket, key, version_id).await?.version;
        let change = |v: &VersionRow| {
            let mut new = v.clone();
            new.attrs.tags = tags.clone();
            Ok(new)
        };
        let done = crate::pipeline::restate(&self.gw.pipeline, bucket, key.as_bytes(), v.id, change).await;
        let v = done.map_err(error::pipeline)?.ok_or_else(|| s3_error!(NoSuchVersion))?;
        Ok((row, v))
    }

    pub(super) async fn op_get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = &req.input;
        let bucket = self.bucket(&req.extensions, &i.bucket).await?;
        let v = self.read_version(&i.bucket, &i.key, i.version_id.as_deref()).await?.version;
        let version_id = super::versioning::shown(&bucket, &v);
        Ok(S3Response::new(GetObjectTaggingOutput { tag_set: to_set(&v.attrs.tags), version_id }))
    }

    pub(super) async fn op_put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let i = req.input;
        let tags = from_set(i.tagging.tag_set, OBJECT_TAGS)?;
        let (bucket, v) = self.retag(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref(), tags).await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id: super::versioning::shown(&bucket, &v) }))
    }

    pub(super) async fn op_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let i = &req.input;
        let none = BTreeMap::new();
        let (bucket, v) = self.retag(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref(), none).await?;
        let out = DeleteObjectTaggingOutput { version_id: super::versioning::shown(&bucket, &v) };
        Ok(S3Response::with_status(out, http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn op_put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let i = req.input;
        self.bucket(&req.extensions, &i.bucket).await?;
        let tags = from_set(i.tagging.tag_set, BUCKET_TAGS)?;
        self.set_bucket_tags(&i.bucket, &tags).await?;
        Ok(S3Response::with_status(PutBucketTaggingOutput::default(), http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn op_get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let i = &req.input;
        self.bucket(&req.extensions, &i.bucket).await?;
        let tags = self.gw.meta.bucket_tags(&i.bucket).await.map_err(error::meta)?.unwrap_or_default();
        if tags.is_empty() {
            return Err(error::coded("NoSuchTagSet", http::StatusCode::NOT_FOUND, "The TagSet does not exist"));
        }
        Ok(S3Response::new(GetBucketTaggingOutput { tag_set: to_set(&tags) }))
    }

    pub(super) async fn op_delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.bucket(&req.extensions, &req.input.bucket).await?;
        self.set_bucket_tags(&req.input.bucket, &BTreeMap::new()).await?;
        Ok(S3Response::with_status(DeleteBucketTaggingOutput::default(), http::StatusCode::NO_CONTENT))
    }

    /// Sets a bucket's tags and records the catalog (so that recovery keeps them).
    async fn set_bucket_tags(&self, bucket: &str, tags: &BTreeMap<String, String>) -> S3Result<()> {
        if !self.gw.meta.set_bucket_tags(bucket, tags).await.map_err(error::meta)? {
            return Err(s3_error!(NoSuchBucket));
        }
        self.gw.publish_catalog().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_held_to_s3s_limits() {
        let ok = from_header(Some("project=blue&cost%20centre=4%2F2")).expect("valid");
        assert_eq!(ok.get("cost centre").map(String::as_str), Some("4/2"));
        assert!(from_header(None).expect("none").is_empty());
        let code = |r: S3Result<BTreeMap<String, String>>| r.err().map(|e| e.code().as_str().to_string());
        let eleven: String = (0..11).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join("&");
        assert_eq!(code(from_header(Some(&eleven))).as_deref(), Some("BadRequest"));
        assert_eq!(code(from_header(Some("a=1&a=2"))).as_deref(), Some("InvalidTag"));
        assert_eq!(code(from_header(Some("aws:x=1"))).as_deref(), Some("InvalidTag"));
        assert_eq!(code(from_header(Some(&format!("{}=1", "k".repeat(129))))).as_deref(), Some("InvalidTag"));
        assert_eq!(code(from_header(Some(&format!("k={}", "v".repeat(257))))).as_deref(), Some("InvalidTag"));
        assert_eq!(code(from_header(Some("k=%3Cscript%3E"))).as_deref(), Some("InvalidTag"));
        assert_eq!(code(from_header(Some("=v"))).as_deref(), Some("InvalidTag"));
        let fifty = (0..50).map(|i| Tag { key: Some(format!("k{i}")), value: Some("v".into()) }).collect();
        assert_eq!(from_set(fifty, BUCKET_TAGS).expect("fifty").len(), 50);
    }
}

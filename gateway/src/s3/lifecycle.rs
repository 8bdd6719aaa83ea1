//! Put/Get/DeleteBucketLifecycleConfiguration: a bucket's rules, checked as S3
//! checks them and kept as [`crate::lifecycle::Rule`]s (the pass that applies
//! them is `crate::lifecycle`). Transitions to other storage classes are refused:
//! every object here is in one class.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{S3Front, error, timestamp};
use crate::lifecycle::{Filter, Rule};

fn positive(n: Option<i32>, what: &str) -> S3Result<Option<u32>> {
    match n {
        Some(n) if n > 0 => Ok(Some(n as u32)),
        Some(_) => Err(s3_error!(InvalidArgument, "'{what}' for a lifecycle rule must be a positive integer")),
        None => Ok(None),
    }
}

fn size(n: Option<i64>) -> S3Result<Option<u64>> {
    n.map(|n| u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "Object size filters must not be negative")))
        .transpose()
}

fn filter_of(r: &LifecycleRule) -> S3Result<Filter> {
    let mut f = Filter { prefix: r.prefix.clone().unwrap_or_default(), ..Default::default() };
    let Some(given) = &r.filter else { return Ok(f) };
    if r.prefix.is_some() {
        return Err(s3_error!(MalformedXML, "A rule has a Prefix or a Filter, not both."));
    }
    let tags = |set: Vec<Tag>| -> BTreeMap<String, String> {
        set.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect()
    };
    match &given.and {
        Some(and) => {
            f.prefix = and.prefix.clone().unwrap_or_default();
            f.tags = tags(and.tags.clone().unwrap_or_default());
            f.size_greater_than = size(and.object_size_greater_than)?;
            f.size_less_than = size(and.object_size_less_than)?;
        }
        None => {
            f.prefix = given.prefix.clone().unwrap_or_default();
            f.tags = tags(given.tag.clone().into_iter().collect());
            f.size_greater_than = size(given.object_size_greater_than)?;
            f.size_less_than = size(given.object_size_less_than)?;
        }
    }
    Ok(f)
}

/// A rule as S3 states it, checked.
fn rule_of(r: &LifecycleRule) -> S3Result<Rule> {
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Transitions are not supported: every object here is in one storage class.",
        ));
    }
    let id = r.id.clone().unwrap_or_default();
    if id.len() > 255 {
        return Err(s3_error!(InvalidArgument, "ID length should not exceed allowed limit of 255"));
    }
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(s3_error!(MalformedXML, "A rule's Status is Enabled or Disabled.")),
    };
    let mut rule = Rule { id, enabled, filter: filter_of(r)?, ..Default::default() };
    if let Some(e) = &r.expiration {
        rule.expiration_days = positive(e.days, "Days")?;
        rule.expiration_date = e.date.as_ref().map(|d| {
            let t = time::OffsetDateTime::from(d.clone());
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        });
        rule.expired_object_delete_marker = e.expired_object_delete_marker.unwrap_or(false);
        let given = [rule.expiration_days.is_some(), rule.expiration_date.is_some(), rule.expired_object_delete_marker];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(s3_error!(MalformedXML, "An Expiration has one of Days, Date or ExpiredObjectDeleteMarker."));
        }
        if rule.expired_object_delete_marker && (!rule.filter.tags.is_empty()) {
            return Err(s3_error!(InvalidArgument, "ExpiredObjectDeleteMarker cannot be specified with Tag filters."));
        }
    }
    if let Some(n) = &r.noncurrent_version_expiration {
        rule.noncurrent_days = positive(n.noncurrent_days, "NoncurrentDays")?;
        rule.newer_noncurrent_versions = positive(n.newer_noncurrent_versions, "NewerNoncurrentVersions")?;
        if rule.noncurrent_days.is_none() {
            return Err(s3_error!(MalformedXML, "A NoncurrentVersionExpiration needs NoncurrentDays."));
        }
    }
    if let Some(a) = &r.abort_incomplete_multipart_upload {
        rule.abort_incomplete_upload_days = positive(a.days_after_initiation, "DaysAfterInitiation")?;
        if !rule.filter.tags.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "AbortIncompleteMultipartUpload cannot be specified with Tag filters."
            ));
        }
    }
    if r.expiration.is_none()
        && r.noncurrent_version_expiration.is_none()
        && r.abort_incomplete_multipart_upload.is_none()
    {
        return Err(s3_error!(MalformedXML, "A lifecycle rule needs at least one action."));
    }
    Ok(rule)
}

/// A rule as S3 states it again.
fn stated(r: &Rule) -> LifecycleRule {
    let f = &r.filter;
    let tags: Vec<Tag> = f.tags.iter().map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect();
    let several = usize::from(!f.prefix.is_empty())
        + tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let greater = f.size_greater_than.map(|s| s as i64);
    let less = f.size_less_than.map(|s| s as i64);
    let filter = match several {
        0 | 1 if tags.len() <= 1 => LifecycleRuleFilter {
            prefix: Some(f.prefix.clone()),
            tag: tags.into_iter().next(),
            object_size_greater_than: greater,
            object_size_less_than: less,
            and: None,
        },
        _ => LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                tags: (!tags.is_empty()).then_some(tags),
                object_size_greater_than: greater,
                object_size_less_than: less,
            }),
            ..Default::default()
        },
    };
    let expiration = (r.expiration_days.is_some() || r.expiration_date.is_some() || r.expired_object_delete_marker)
        .then(|| LifecycleExpiration {
            days: r.expiration_days.map(|d| d as i32),
            date: r.expiration_date.map(timestamp),
            expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
        });
    LifecycleRule {
        id: Some(r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter: Some(filter),
        expiration,
        noncurrent_version_expiration: r.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: Some(d as i32),
            newer_noncurrent_versions: r.newer_noncurrent_versions.map(|n| n as i32),
        }),
        abort_incomplete_multipart_upload: r
            .abort_incomplete_upload_days
            .map(|d| AbortIncompleteMultipartUpload { days_after_initiation: Some(d as i32) }),
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}

impl S3Front {
    pub(super) async fn op_put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let i = &req.input;
        self.bucket(&req.extensions, &i.bucket).await?;
        let given = i.lifecycle_configuration.as_ref().map(|c| c.rules.as_slice()).unwrap_or_default();
        if given.is_empty() || given.len() > 1000 {
            return Err(s3_error!(MalformedXML, "A lifecycle configuration has 1 to 1,000 rules."));
        }
        let rules = given.iter().map(rule_of).collect::<S3Result<Vec<_>>>()?;
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).filter(|id| !id.is_empty()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(s3_error!(InvalidArgument, "Rule ID must be unique. Found same ID for more than one rule"));
        }
        let json = serde_json::to_string(&rules).map_err(error::internal)?;
        self.set_lifecycle(&i.bucket, Some(&json)).await?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    pub(super) async fn op_get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let i = &req.input;
        self.bucket(&req.extensions, &i.bucket).await?;
        let Some(json) = self.gw.meta.bucket_lifecycle(&i.bucket).await.map_err(error::meta)? else {
            let why = "The lifecycle configuration does not exist";
            return Err(error::coded("NoSuchLifecycleConfiguration", http::StatusCode::NOT_FOUND, why));
        };
        let rules: Vec<Rule> = serde_json::from_str(&json).map_err(error::internal)?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules.iter().map(stated).collect()),
            ..Default::default()
        }))
    }

    pub(super) async fn op_delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.bucket(&req.extensions, &req.input.bucket).await?;
        self.set_lifecycle(&req.input.bucket, None).await?;
        Ok(S3Response::with_status(DeleteBucketLifecycleOutput::default(), http::StatusCode::NO_CONTENT))
    }

    /// Sets a bucket's rules and records the catalog (so that recovery keeps them).
    async fn set_lifecycle(&self, bucket: &str, rules: Option<&str>) -> S3Result<()> {
        if !self.gw.meta.set_bucket_lifecycle(bucket, rules).await.map_err(error::meta)? {
            return Err(s3_error!(NoSuchBucket));
        }
        self.gw.publish_catalog().await;
        Ok(())
    }
}

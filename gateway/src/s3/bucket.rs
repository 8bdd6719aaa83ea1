//! Bucket operations.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{S3Front, access, error, timestamp};

impl S3Front {
    pub(super) async fn op_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        const MAX_BUCKETS: i32 = 10_000;
        let tenant = access::tenant(&req)?;
        let i = &req.input;
        let max = match i.max_buckets {
            None => usize::MAX,
            Some(n @ 1..=MAX_BUCKETS) => n as usize,
            Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be an integer from 1 to 10000")),
        };
        let prefix = i.prefix.as_deref().unwrap_or_default();
        // The token is the last name of the page before (names sort as bytes).
        let after = i.continuation_token.as_deref().filter(|t| !t.is_empty()).unwrap_or_default();
        let mut buckets: Vec<_> = self
            .gw
            .meta
            .buckets_of(&tenant)
            .await
            .map_err(error::meta)?
            .into_iter()
            .filter(|b| b.name.starts_with(prefix) && b.name.as_str() > after)
            .collect();
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        let more = buckets.len() > max;
        buckets.truncate(max);
        let continuation_token = more.then(|| buckets.last().map(|b| b.name.clone())).flatten();
        let buckets = buckets
            .into_iter()
            .map(|b| Bucket { name: Some(b.name), creation_date: Some(timestamp(b.created_at)), ..Default::default() })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(super::list::owner(&tenant)),
            continuation_token,
            prefix: i.prefix.clone(),
        }))
    }

    pub(super) async fn op_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let tenant = access::tenant(&req)?;
        let name = req.input.bucket;
        // s3s has refused invalid names already; this is a second line.
        if !s3s::path::check_bucket_name(&name) || !valid_new_name(&name) {
            return Err(s3_error!(InvalidBucketName, "The specified bucket is not valid."));
        }
        let policy = self.gw.settings.policy_for_new_bucket(&name);
        if !self.gw.meta.create_bucket(&name, policy, &tenant).await.map_err(error::meta)? {
            // Taken, perhaps a moment ago by a request the access check did not see.
            let owner = self.gw.meta.bucket(&name).await.map_err(error::meta)?.map(|b| b.tenant);
            return match owner {
                Some(o) if *o != *tenant => Err(s3_error!(BucketAlreadyExists)),
                // Already the caller's: S3 in us-east-1 answers 200, as for a new one.
                Some(_) => Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) })),
                None => Err(s3_error!(BucketAlreadyOwnedByYou)),
            };
        }
        if req.input.object_lock_enabled_for_bucket == Some(true) {
            // With versioning, as S3 does; no default retention until one is set.
            let set = self.gw.meta.set_object_lock(&name, &crate::meta::LockDefault::default()).await;
            if !set.map_err(error::meta)? {
                return Err(s3_error!(NoSuchBucket));
            }
        }
        tracing::info!(bucket = %name, tenant = %tenant, policy = %policy, "bucket created");
        self.gw.publish_catalog().await;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    pub(super) async fn op_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        match self.gw.meta.delete_bucket(&req.input.bucket).await.map_err(error::meta)? {
            None => Err(s3_error!(NoSuchBucket)),
            Some(false) => Err(s3_error!(BucketNotEmpty)),
            Some(true) => {
                self.gw.publish_catalog().await;
                Ok(S3Response::new(DeleteBucketOutput::default()))
            }
        }
    }
}

/// S3's rules for a new bucket's name beyond the characters and length s3s checks:
/// no label that begins or ends with a hyphen (`foo.-bar`), no empty label, not an
/// IPv4 address, none of the prefixes and suffixes S3 reserves.
fn valid_new_name(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let labels_ok = name.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    labels_ok
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !PREFIXES.iter().any(|p| name.starts_with(p))
        && !SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    #[test]
    fn new_bucket_names_follow_s3s_rules() {
        for good in ["abc", "my-bucket.2", "a.b.c", "x1-2-3"] {
            assert!(super::valid_new_name(good), "{good}");
        }
        for bad in ["foo.-bar", "foo-.bar", "a..b", "192.168.5.4", "xn--abc", "sthree-x", "b-s3alias", "b--ol-s3"] {
            assert!(!super::valid_new_name(bad), "{bad}");
        }
    }
}

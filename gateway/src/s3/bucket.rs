//! Bucket operations.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{S3Front, access, error, timestamp};

impl S3Front {
    pub(super) async fn op_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let tenant = access::tenant(&req)?;
        let buckets = self.gw.meta.buckets_of(&tenant).await.map_err(error::meta)?;
        let buckets = buckets
            .into_iter()
            .map(|b| Bucket { name: Some(b.name), creation_date: Some(timestamp(b.created_at)), ..Default::default() })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner { display_name: Some(tenant.to_string()), id: Some(tenant.to_string()) }),
            ..Default::default()
        }))
    }

    pub(super) async fn op_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let tenant = access::tenant(&req)?;
        let name = req.input.bucket;
        // s3s has refused invalid names already; this is a second line.
        if !s3s::path::check_bucket_name(&name) {
            return Err(s3_error!(InvalidBucketName));
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

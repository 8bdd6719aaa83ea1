//! Who may do what. Every request must be signed (s3s verified the signature
//! before this runs), and a key reaches only the buckets of its own tenant:
//! another tenant's bucket answers `AccessDenied`, as S3 does for a bucket of
//! another account, and creating a bucket whose name another tenant holds answers
//! `BucketAlreadyExists`. The tenant is left in the request's extensions for the
//! operations that need it (ListBuckets, CreateBucket).

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use super::error;
use crate::auth::CredentialStore;
use crate::meta::{BucketRow, MetaStore};

/// The tenant of the key that signed a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub Arc<str>);

/// The bucket a request names, as the access check read it (`row` is `None` when
/// there is no such bucket), so that the operation need not read it again.
#[derive(Debug, Clone)]
pub struct NamedBucket {
    /// The name in the request.
    pub name: String,
    /// The bucket, if it exists.
    pub row: Option<BucketRow>,
}

/// The access rules of the S3 endpoint.
#[derive(Debug, Clone)]
pub struct Tenancy {
    credentials: CredentialStore,
    meta: MetaStore,
    rates: Option<Arc<super::rate::KeyRates>>,
}

impl Tenancy {
    /// The rules over these keys and this metadata.
    pub fn new(credentials: CredentialStore, meta: MetaStore, rates: Option<super::rate::KeyRates>) -> Self {
        Self { credentials, meta, rates: rates.map(Arc::new) }
    }
}

#[async_trait::async_trait]
impl S3Access for Tenancy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        super::telemetry::record_operation(cx);
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        super::protect::check(cx.s3_op().name(), cx.headers())?;
        if let Some(rates) = &self.rates {
            rates.take(&credentials.access_key, std::time::Instant::now()).map_err(super::rate::slow_down)?;
        }
        let tenant = match self.credentials.tenant_of(&credentials.access_key).await {
            Ok(Some(t)) => t,
            // Revoked between the signature check and now.
            Ok(None) => return Err(s3_error!(InvalidAccessKeyId)),
            Err(e) => return Err(error::internal(e)),
        };
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket),
        };
        if let Some(name) = bucket {
            let row = self.meta.bucket(name).await.map_err(error::meta)?;
            if row.as_ref().is_some_and(|b| *b.tenant != *tenant) {
                if cx.s3_op().name() == "CreateBucket" {
                    return Err(s3_error!(BucketAlreadyExists));
                }
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
            let named = NamedBucket { name: name.to_string(), row };
            cx.extensions_mut().insert(named);
        }
        cx.extensions_mut().insert(Tenant(tenant));
        Ok(())
    }
}

/// The tenant [`Tenancy`] found for a request.
pub fn tenant<T>(req: &S3Request<T>) -> S3Result<Arc<str>> {
    req.extensions
        .get::<Tenant>()
        .map(|t| t.0.clone())
        .ok_or_else(|| error::internal("the request reached an operation without its tenant"))
}

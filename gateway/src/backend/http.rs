//! The real fragment store: each operation presigned for one fragment and one
//! method, then sent by the transfer client.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::transfer::{Transfer, TransferError};
use super::{FragmentBody, FragmentRef, FragmentStore, FragmentStream, Method, Presigner};

/// Fragments at locations reached through presigned URLs.
#[derive(Debug, Clone)]
pub struct PresignedStore {
    presigner: Arc<dyn Presigner>,
    transfer: Transfer,
    ttl: Duration,
}

impl PresignedStore {
    /// A store signing URLs valid for `ttl` with `presigner` and sending requests
    /// through `transfer`.
    pub fn new(presigner: Arc<dyn Presigner>, transfer: Transfer, ttl: Duration) -> Self {
        Self { presigner, transfer, ttl }
    }

    fn url(&self, at: &FragmentRef, method: Method) -> Result<url::Url, TransferError> {
        self.presigner
            .presign(&at.location, method, &at.name, self.ttl)
            .map_err(|e| TransferError::Unsigned(e.to_string()))
    }
}

#[async_trait::async_trait]
impl FragmentStore for PresignedStore {
    async fn put(&self, at: &FragmentRef, body: FragmentBody) -> Result<(), TransferError> {
        let url = self.url(at, Method::Put)?;
        self.transfer.put(&at.location, url, at.len, body).await
    }

    async fn get(&self, at: &FragmentRef, range: Range<u64>) -> Result<FragmentStream, TransferError> {
        let url = self.url(at, Method::Get)?;
        self.transfer.get(&at.location, url, Some(range)).await
    }

    async fn delete(&self, at: &FragmentRef) -> Result<(), TransferError> {
        let url = self.url(at, Method::Delete)?;
        self.transfer.delete(&at.location, url).await
    }
}

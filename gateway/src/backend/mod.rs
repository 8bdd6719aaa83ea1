//! Locations, seen from the data path, behind one seam: a [`FragmentStore`] puts,
//! reads (by range) and deletes fragments. The data path knows nothing else of a
//! location, so a test runs it on an in-memory store, and the fragment cache is a
//! layer around the real one (`crate::cache::layer`).
//!
//! The real store, [`http::PresignedStore`], is two parts: a [`Presigner`] turns
//! (location, method, fragment name) into a short-lived URL, and
//! [`transfer::Transfer`] moves bytes through such URLs. The presigner is the only
//! component holding location credentials; the transfer client only ever sees URLs,
//! so the two may run in different processes (a deployment can put the presigner
//! behind its own service).

mod error;
pub mod http;
#[cfg(test)]
pub(crate) mod memory;
pub mod presign;
mod replay;
pub mod stats;
pub mod transfer;

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use futures::stream::BoxStream;

pub use presign::{
    BATCH_DELETE_MAX, BatchDelete, Dialect, EdgeGrant, LocationSigner, Method, PresignError, Presigner, hmac_hex,
    hmac_payload, verify_edge,
};
pub use transfer::TransferError;

/// One fragment at its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRef {
    /// The location's name.
    pub location: String,
    /// The fragment's object name there (`<seal id>/<index>`: no bucket, no key).
    pub name: String,
    /// Its whole length in bytes.
    pub len: u64,
    /// The tenant whose key protects the fragment's blocks in the local cache;
    /// `None` for work done on no tenant's behalf (moving fragments, collecting),
    /// which is never cached on its way through.
    pub tenant: Option<u32>,
}

/// A retention a location enforces on one fragment: no delete before `until`
/// (Unix seconds) — none at all in compliance mode, and in governance mode none but
/// one signed to bypass it. A location only ever strengthens a fragment's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FragmentLock {
    /// Retained until, Unix seconds.
    pub until: u64,
    /// Compliance mode (no bypass), else governance.
    pub compliance: bool,
}

impl FragmentLock {
    /// The lock as a URL parameter: `C` (compliance) or `G`, then the date.
    pub fn param(&self) -> String {
        format!("{}{}", if self.compliance { 'C' } else { 'G' }, self.until)
    }

    /// Reads [`FragmentLock::param`]'s form.
    pub fn parse(s: &str) -> Option<Self> {
        let compliance = match s.as_bytes().first()? {
            b'C' => true,
            b'G' => false,
            _ => return None,
        };
        Some(Self { until: s[1..].parse().ok()?, compliance })
    }

    /// The stronger of two locks on one fragment: the later date, and compliance
    /// if either is.
    pub fn merge(self, other: Option<Self>) -> Self {
        match other {
            None => self,
            Some(o) => Self { until: self.until.max(o.until), compliance: self.compliance || o.compliance },
        }
    }

    /// What keeps a delete at `now` (Unix seconds) from happening, if anything;
    /// `bypass`: the delete was signed to bypass governance.
    pub fn blocks(&self, now: u64, bypass: bool) -> Option<String> {
        (self.until > now && (self.compliance || !bypass)).then(|| {
            format!("{} retention until {}", if self.compliance { "compliance" } else { "governance" }, self.until)
        })
    }
}

/// Fragment bytes read from a store.
pub type FragmentStream = BoxStream<'static, Result<Bytes, TransferError>>;

/// Fragment bytes to store.
pub type FragmentBody = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// An object found at a location by a listing (also the edge store's listing
/// format).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listed {
    /// Its name below the location's prefix (`<seal id>/<index>` for fragments).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Last modified, Unix milliseconds.
    pub modified: i64,
}

/// A page of a location's listing (also the edge store's listing format).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListPage {
    /// Objects in name order.
    pub objects: Vec<Listed>,
    /// Where the next page starts (`after`); `None` on the last page.
    pub next: Option<String>,
}

/// An edge store's batch delete request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteBatch {
    /// Names below the prefix (`<seal id>/<index>`).
    pub names: Vec<String>,
}

/// A name a batch delete could not delete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteFailure {
    /// The name.
    pub name: String,
    /// Why.
    pub error: String,
}

/// An edge store's answer to a batch delete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteBatchAnswer {
    /// What could not be deleted (a name that was not there was deleted).
    pub failed: Vec<DeleteFailure>,
}

/// An edge store's answer about a fragment's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockAnswer {
    /// The lock in force (`None`: none).
    pub lock: Option<FragmentLock>,
}

/// Where fragments are kept: every location, by name.
#[async_trait::async_trait]
pub trait FragmentStore: Send + Sync + fmt::Debug {
    /// Stores exactly `at.len` bytes of `body` as the fragment `at`; a body that
    /// fails or ends early stores nothing.
    async fn put(&self, at: &FragmentRef, body: FragmentBody) -> Result<(), TransferError>;

    /// Stores `body` as `at`, as [`FragmentStore::put`] does, replacing what the
    /// name holds: a record rewritten. (Fragments are written once; an edge store
    /// replaces nothing it holds locked.)
    async fn replace(&self, at: &FragmentRef, body: FragmentBody) -> Result<(), TransferError> {
        self.put(at, body).await
    }

    /// Bytes `range` of the fragment `at` (never past `at.len`), as they arrive.
    async fn get(&self, at: &FragmentRef, range: Range<u64>) -> Result<FragmentStream, TransferError>;

    /// Deletes the fragment `at`; one that is not there counts as deleted.
    async fn delete(&self, at: &FragmentRef) -> Result<(), TransferError>;

    /// A page of the objects at `location`, names after `after`. A location that
    /// cannot be listed refuses ([`TransferError::Unsupported`]).
    async fn list(&self, location: &str, after: Option<&str>) -> Result<ListPage, TransferError> {
        let _ = after;
        Err(TransferError::Unsupported(format!("{location} cannot be listed")))
    }

    /// Deletes the fragments `names` at `location` in one request (at most
    /// [`BATCH_DELETE_MAX`]); a fragment that is not there counts as deleted.
    /// Returns those that could not be deleted, with why. A location that cannot
    /// delete in bulk refuses ([`TransferError::Unsupported`]), and its fragments
    /// are deleted one by one.
    async fn delete_batch(&self, location: &str, names: &[String]) -> Result<Vec<(String, String)>, TransferError> {
        let _ = names;
        Err(TransferError::Unsupported(format!("{location} cannot delete in bulk")))
    }

    /// Locks the fragment `at` at its location with `lock` (merged with the lock it
    /// has: a location only ever strengthens one); answers the lock now in force. A
    /// location that enforces no retention refuses ([`TransferError::Unsupported`]).
    async fn retain(&self, at: &FragmentRef, lock: FragmentLock) -> Result<FragmentLock, TransferError> {
        let _ = lock;
        Err(TransferError::Unsupported(format!("{} enforces no retention", at.location)))
    }

    /// The lock the location holds the fragment `at` under (`None`: none). A
    /// location that enforces no retention refuses ([`TransferError::Unsupported`]).
    async fn retention(&self, at: &FragmentRef) -> Result<Option<FragmentLock>, TransferError> {
        Err(TransferError::Unsupported(format!("{} enforces no retention", at.location)))
    }

    /// Whether reading `at` needs no location (a local cache holds it): reads try
    /// such fragments first.
    fn is_local(&self, at: &FragmentRef) -> bool {
        let _ = at;
        false
    }
}

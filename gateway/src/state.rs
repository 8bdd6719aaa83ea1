//! The gateway's shared state: settings, engines, metadata, keys, the presigner and
//! the transfer client, and the small caches the data path needs.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::{CodecError, CodingMatrix, MasterKey};
use offload::{AlignedBuf, Offload};
use tokio::sync::Semaphore;

use crate::backend::Presigner;
use crate::backend::transfer::Transfer;
use crate::catalog::{Catalog, CatalogError, CatalogView};
use crate::config::Settings;
use crate::meta::MetaStore;
use crate::pipeline::checksum::HashMeters;
use crate::placement::Placement;

/// Everything a request needs.
pub struct Gateway {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Locations and policies in force.
    pub catalog: Arc<Catalog>,
    /// Offload engines.
    pub offload: Offload,
    /// Metadata.
    pub meta: MetaStore,
    /// The master key (wraps data keys and access key secrets).
    pub master: Arc<MasterKey>,
    /// Issues presigned URLs; the only holder of location credentials.
    pub presigner: Arc<dyn Presigner>,
    /// Moves bytes through presigned URLs.
    pub transfer: Transfer,
    /// Chooses locations for fragments.
    pub placement: Arc<dyn Placement>,
    /// Coefficient matrices, one per `(k, n)`.
    pub matrices: MatrixCache,
    /// Recent failures per location.
    pub health: Health,
    /// Requests moving object data at once.
    pub transfers: Arc<Semaphore>,
    /// Recycled segment and record buffers.
    pub buffers: BufferPool,
    /// Meters of the ETag and checksum functions.
    pub hashes: HashMeters,
    /// The local fragment cache, when configured.
    pub cache: Option<Arc<crate::cache::store::Cache>>,
    /// Writes and reads that failed for want of enough fragments.
    pub quorum_failures: QuorumFailures,
    /// This replica's identity (recorded on its pending writes, holds its leases).
    pub node: crate::node::Node,
}

/// Operations that failed for want of enough fragments.
#[derive(Debug, Default)]
pub struct QuorumFailures {
    /// Writes that stored fewer than the write quorum.
    pub write: std::sync::atomic::AtomicU64,
    /// Reads of a segment that found fewer than `k` usable fragments (or no
    /// combination that authenticates).
    pub read: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// Re-reads the catalog from the metadata store and hands new or changed
    /// locations to the presigner and the transfer client.
    pub async fn refresh_catalog(&self) -> Result<Arc<CatalogView>, CatalogError> {
        let before = self.catalog.view();
        let view = self.catalog.reload(&self.meta).await?;
        for (name, loc) in &view.locations {
            let changed = before.locations.get(name).is_none_or(|b| b.ca_file != loc.ca_file);
            if changed || !self.transfer.knows(name) {
                match crate::tls::location_client_config(loc, &self.offload.tls) {
                    Ok(config) => self.transfer.set_location(name, config),
                    Err(e) => tracing::warn!(location = %name, error = %e, "location TLS configuration unusable"),
                }
            }
        }
        self.presigner.set_locations(&view.locations);
        Ok(view)
    }
}

/// Verified coding matrices, drawn once per `(k, n)` and shared: coefficients are
/// public, and checking every `k`-subset of a 10-of-16 matrix takes milliseconds, too
/// long to repeat for every small object.
#[derive(Debug, Default)]
pub struct MatrixCache(Mutex<HashMap<(u8, u8), Arc<CodingMatrix>>>);

impl MatrixCache {
    /// The matrix for `k`-of-`n`, drawn on first use.
    pub fn get(&self, k: u8, n: u8, offload: &Offload) -> Result<Arc<CodingMatrix>, CodecError> {
        if let Some(m) = self.0.lock().ok().and_then(|c| c.get(&(k, n)).cloned()) {
            return Ok(m);
        }
        let m = Arc::new(CodingMatrix::generate(k, n, offload.random.as_ref())?);
        if let Ok(mut c) = self.0.lock() {
            return Ok(c.entry((k, n)).or_insert(m).clone());
        }
        Ok(m)
    }
}

/// Recent failures per location, so that reads try healthy locations first and
/// writes avoid locations that just failed when they have a choice.
#[derive(Debug, Default)]
pub struct Health(Mutex<HashMap<String, (u32, Instant)>>);

/// How long a failure counts against a location.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);

impl Health {
    /// Notes a failed operation at `location`.
    pub fn failed(&self, location: &str) {
        if let Ok(mut m) = self.0.lock() {
            let e = m.entry(location.to_string()).or_insert((0, Instant::now()));
            e.0 = e.0.saturating_add(1);
            e.1 = Instant::now();
        }
    }

    /// Notes a successful operation at `location`.
    pub fn succeeded(&self, location: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(location);
        }
    }

    /// Recent consecutive failures (0 = healthy).
    pub fn failures(&self, location: &str) -> u32 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(location).filter(|(_, t)| t.elapsed() < FAILURE_MEMORY).map(|(n, _)| *n))
            .unwrap_or(0)
    }
}

/// A bounded pool of aligned buffers, so that each segment does not cost fresh
/// pages (on these VMs a page fault costs about a microsecond: 1,500 of them per
/// 6 MiB of records).
#[derive(Debug, Clone)]
pub struct BufferPool {
    inner: Arc<Mutex<Vec<AlignedBuf>>>,
    max: usize,
}

impl BufferPool {
    /// A pool keeping at most `max` idle buffers.
    pub fn new(max: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Vec::new())), max }
    }

    /// An empty buffer, recycled when one is idle.
    pub fn take(&self) -> AlignedBuf {
        let mut b = self.inner.lock().ok().and_then(|mut v| v.pop()).unwrap_or_default();
        b.clear();
        b
    }

    /// Returns a buffer to the pool.
    pub fn give(&self, buf: AlignedBuf) {
        give(&self.inner, self.max, buf);
    }

    /// Shares `range` of `buf` as [`Bytes`]; the buffer returns to the pool when the
    /// bytes are dropped.
    pub fn share_one(&self, buf: AlignedBuf, range: Range<usize>) -> Bytes {
        self.whole(buf).slice(range)
    }

    /// Shares `buf` as [`Bytes`] (one slice per range); it returns to the pool when
    /// the last slice is dropped.
    pub fn share(&self, buf: AlignedBuf, ranges: &[Range<usize>]) -> Vec<Bytes> {
        let whole = self.whole(buf);
        ranges.iter().map(|r| whole.slice(r.clone())).collect()
    }

    fn whole(&self, buf: AlignedBuf) -> Bytes {
        Bytes::from_owner(Pooled { buf, pool: Arc::downgrade(&self.inner), max: self.max })
    }
}

fn give(pool: &Mutex<Vec<AlignedBuf>>, max: usize, buf: AlignedBuf) {
    if let Ok(mut v) = pool.lock()
        && v.len() < max
    {
        v.push(buf);
    }
}

struct Pooled {
    buf: AlignedBuf,
    pool: Weak<Mutex<Vec<AlignedBuf>>>,
    max: usize,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            give(&pool, self.max, std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_buffers_come_back_when_the_last_slice_goes() {
        let pool = BufferPool::new(2);
        let mut b = pool.take();
        b.extend_from_slice(b"hello world");
        let slices = pool.share(b, &[0..5, 6..11]);
        assert_eq!(&slices[1][..], b"world");
        assert!(pool.inner.lock().expect("lock").is_empty());
        drop(slices);
        assert_eq!(pool.inner.lock().expect("lock").len(), 1);
        assert!(pool.take().is_empty(), "recycled buffers come back empty");
    }

    #[test]
    fn health_forgets_success() {
        let h = Health::default();
        h.failed("a");
        h.failed("a");
        assert_eq!(h.failures("a"), 2);
        h.succeeded("a");
        assert_eq!(h.failures("a"), 0);
    }
}

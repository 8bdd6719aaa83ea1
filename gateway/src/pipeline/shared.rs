//! What writes and reads share across requests: coding matrices drawn once per
//! `(k, n)`, and recycled segment buffers.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use codec::{CodecError, CodingMatrix};
use offload::{AlignedBuf, Offload};

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
}

/// The seals this process's reads are streaming. An overwrite or a delete turns a
/// seal to garbage while a GET that read its manifest before still streams it; the
/// collector leaves a seal alone until its reads end, so that the GET returns the
/// version it began with, whole. (Other replicas' reads are not seen here.)
#[derive(Debug, Default)]
pub struct ReadLeases(Arc<Mutex<HashMap<crate::meta::SealId, usize>>>);

/// Seals held by one read, let go when dropped.
#[derive(Debug)]
pub struct ReadLease {
    leases: Arc<Mutex<HashMap<crate::meta::SealId, usize>>>,
    seals: Vec<crate::meta::SealId>,
}

impl ReadLeases {
    /// Holds `seals` until the lease is dropped.
    pub fn take(&self, seals: impl IntoIterator<Item = crate::meta::SealId>) -> ReadLease {
        let seals: Vec<_> = seals.into_iter().collect();
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for s in &seals {
            *m.entry(*s).or_default() += 1;
        }
        ReadLease { leases: self.0.clone(), seals }
    }

    /// Whether a read holds `seal`.
    pub fn held(&self, seal: crate::meta::SealId) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&seal)
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        let mut m = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        for s in &self.seals {
            if let Some(n) = m.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    m.remove(s);
                }
            }
        }
    }
}

/// The transfer slots (`pipeline.max_transfers`): requests moving object data at
/// once, shared between tenants and access keys so that no tenant holds more than
/// its share (`limits.transfers_per_tenant`), no key more than its own
/// (`limits.transfers_per_key`), and the others always find slots free.
#[derive(Debug)]
pub struct Transfers {
    global: Arc<tokio::sync::Semaphore>,
    per_tenant: usize,
    per_key: usize,
    tenants: Mutex<HashMap<u32, Arc<tokio::sync::Semaphore>>>,
    keys: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Semaphore>>>,
}

/// A transfer slot, given back on drop.
#[derive(Debug)]
pub struct TransferSlot {
    _key: Option<tokio::sync::OwnedSemaphorePermit>,
    _tenant: tokio::sync::OwnedSemaphorePermit,
    _global: tokio::sync::OwnedSemaphorePermit,
}

impl Transfers {
    /// `max` slots in all, at most `per_tenant` to one tenant and `per_key` to one
    /// access key.
    pub fn new(max: usize, per_tenant: usize, per_key: usize) -> Self {
        Self {
            global: Arc::new(tokio::sync::Semaphore::new(max)),
            per_tenant,
            per_key,
            tenants: Mutex::default(),
            keys: Mutex::default(),
        }
    }

    /// A slot for `tenant`, asked by access key `key`: first a place in the key's
    /// share, then in the tenant's (waiting there holds nothing of the others'),
    /// then one of the slots in all.
    pub async fn acquire(
        &self,
        tenant: u32,
        key: Option<&Arc<str>>,
    ) -> Result<TransferSlot, tokio::sync::AcquireError> {
        let key = match key {
            Some(k) => {
                let share = {
                    let mut m = self.keys.lock().unwrap_or_else(|e| e.into_inner());
                    m.entry(k.clone()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_key))).clone()
                };
                Some(share.acquire_owned().await?)
            }
            None => None,
        };
        let share = {
            let mut t = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            t.entry(tenant).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_tenant))).clone()
        };
        let tenant = share.acquire_owned().await?;
        let global = self.global.clone().acquire_owned().await?;
        Ok(TransferSlot { _key: key, _tenant: tenant, _global: global })
    }

    /// Slots free in all.
    pub fn available(&self) -> usize {
        self.global.available_permits()
    }
}

#[cfg(test)]
mod transfer_tests {
    use super::*;

    #[test]
    fn read_leases_hold_seals_until_the_last_read_ends() {
        let leases = ReadLeases::default();
        let (a, b) = (crate::meta::SealId([1; 16]), crate::meta::SealId([2; 16]));
        let first = leases.take([a, b]);
        let second = leases.take([a]);
        drop(first);
        assert!(leases.held(a) && !leases.held(b));
        drop(second);
        assert!(!leases.held(a));
    }

    #[tokio::test]
    async fn shares_per_key_and_per_tenant() {
        let t = Transfers::new(4, 3, 2);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("A"), Arc::from("B"));
        let _a1 = t.acquire(1, Some(&a)).await.expect("slot");
        let _a2 = t.acquire(1, Some(&a)).await.expect("slot");
        let wait = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, t.acquire(1, Some(&a))).await.is_err(), "key A is at its share");
        let _b1 = t.acquire(1, Some(&b)).await.expect("another key of the tenant");
        assert!(tokio::time::timeout(wait, t.acquire(1, Some(&b))).await.is_err(), "tenant 1 is at its share");
        let _c = t.acquire(2, None).await.expect("another tenant finds a slot");
        assert_eq!(t.available(), 0);
    }
}

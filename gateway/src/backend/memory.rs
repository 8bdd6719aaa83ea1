//! An in-memory fragment store for tests of the data path, with the faults a real
//! location has: down, refusing writes after some bytes, stalling, losing or
//! corrupting a fragment. It counts what was asked of each location.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;

use super::{FragmentBody, FragmentRef, FragmentStore, FragmentStream, ListPage, Listed, TransferError};

/// What a location does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Every request fails at once.
    Down,
    /// A write fails after taking this many bytes (reads and deletes work).
    FailPutAfter(u64),
    /// A write takes this many bytes, then stops reading without failing (as a
    /// location that hangs); reads and deletes work.
    StallPutAfter(u64),
    /// A write takes each piece of its body this many milliseconds late (a slow
    /// link); reads and deletes work.
    SlowPut(u64),
    /// A read answers this many milliseconds late.
    SlowGet(u64),
    /// A read delivers this many bytes, then nothing more, without failing.
    StallGetAfter(u64),
}

/// Requests a location received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) puts: u64,
    pub(crate) gets: u64,
    pub(crate) deletes: u64,
    /// Batch delete requests (their names count in `deletes`).
    pub(crate) batches: u64,
}

/// Fragments in memory, by location and name.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    objects: Mutex<BTreeMap<(String, String), Bytes>>,
    /// When objects were written, when a test set it (else: now).
    modified: Mutex<HashMap<(String, String), i64>>,
    faults: Mutex<HashMap<String, Fault>>,
    /// Locations that cannot delete in bulk (as Swift through TempURLs).
    unbatched: Mutex<std::collections::HashSet<String>>,
    counts: Mutex<HashMap<String, Counts>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    /// Makes `location` misbehave from now on (`None`: behave again).
    pub(crate) fn set_fault(&self, location: &str, fault: Option<Fault>) {
        match fault {
            Some(f) => lock(&self.faults).insert(location.to_string(), f),
            None => lock(&self.faults).remove(location),
        };
    }

    /// Requests `location` received so far.
    pub(crate) fn counts(&self, location: &str) -> Counts {
        lock(&self.counts).get(location).copied().unwrap_or_default()
    }

    /// The fragments a location holds, by name.
    pub(crate) fn names(&self, location: &str) -> Vec<String> {
        lock(&self.objects).keys().filter(|(l, _)| l == location).map(|(_, n)| n.clone()).collect()
    }

    /// Every fragment, with its location.
    pub(crate) fn all(&self) -> Vec<(String, String)> {
        lock(&self.objects).keys().cloned().collect()
    }

    /// The bytes of a fragment.
    pub(crate) fn bytes(&self, location: &str, name: &str) -> Option<Bytes> {
        lock(&self.objects).get(&(location.to_string(), name.to_string())).cloned()
    }

    /// Replaces a fragment's bytes (to forge or corrupt it).
    pub(crate) fn replace(&self, location: &str, name: &str, bytes: Vec<u8>) {
        lock(&self.objects).insert((location.to_string(), name.to_string()), Bytes::from(bytes));
    }

    /// Flips one bit of a stored fragment.
    pub(crate) fn flip(&self, location: &str, name: &str, byte: usize, bit: u8) {
        let mut objects = lock(&self.objects);
        if let Some(b) = objects.get_mut(&(location.to_string(), name.to_string())) {
            let mut v = b.to_vec();
            v[byte] ^= 1 << bit;
            *b = Bytes::from(v);
        }
    }

    /// Makes `location` refuse batch deletes.
    pub(crate) fn refuse_batches(&self, location: &str) {
        lock(&self.unbatched).insert(location.to_string());
    }

    /// Plants an object no seal knows of, written at `modified` (Unix ms).
    pub(crate) fn plant(&self, location: &str, name: &str, bytes: &[u8], modified: i64) {
        self.replace(location, name, bytes.to_vec());
        lock(&self.modified).insert((location.to_string(), name.to_string()), modified);
    }

    /// Loses a fragment.
    pub(crate) fn lose(&self, location: &str, name: &str) {
        lock(&self.objects).remove(&(location.to_string(), name.to_string()));
    }

    fn fault(&self, location: &str) -> Option<Fault> {
        lock(&self.faults).get(location).copied()
    }

    fn count(&self, location: &str, f: impl FnOnce(&mut Counts)) {
        f(lock(&self.counts).entry(location.to_string()).or_default());
    }
}

fn down() -> TransferError {
    TransferError::Unavailable("location down (test fault)".into())
}

/// Objects a listing page holds at most (small, so that tests page).
const LIST_PAGE: usize = 7;

#[async_trait::async_trait]
impl FragmentStore for MemoryStore {
    async fn list(&self, location: &str, after: Option<&str>) -> Result<ListPage, TransferError> {
        if self.fault(location) == Some(Fault::Down) {
            return Err(down());
        }
        let now = crate::meta::now_ms();
        let mut objects: Vec<Listed> = lock(&self.objects)
            .iter()
            .filter(|((l, n), _)| l == location && after.is_none_or(|a| n.as_str() > a))
            .map(|((_, n), b)| Listed {
                name: n.clone(),
                size: b.len() as u64,
                modified: *lock(&self.modified).get(&(location.to_string(), n.clone())).unwrap_or(&now),
            })
            .collect();
        let next = (objects.len() > LIST_PAGE).then(|| objects[LIST_PAGE - 1].name.clone());
        objects.truncate(LIST_PAGE);
        Ok(ListPage { objects, next })
    }

    async fn put(&self, at: &FragmentRef, mut body: FragmentBody) -> Result<(), TransferError> {
        self.count(&at.location, |c| c.puts += 1);
        let fault = self.fault(&at.location);
        if fault == Some(Fault::Down) {
            return Err(down());
        }
        let mut data = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| TransferError::Unavailable(format!("body: {e}")))?;
            data.extend_from_slice(&chunk);
            match fault {
                Some(Fault::FailPutAfter(n)) if data.len() as u64 >= n => {
                    return Err(TransferError::Unavailable("connection reset (test fault)".into()));
                }
                Some(Fault::StallPutAfter(n)) if data.len() as u64 >= n => {
                    // Stops reading: the writer's stall timeout must give up on us.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Some(Fault::SlowPut(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
                _ => {}
            }
        }
        if data.len() as u64 != at.len {
            return Err(TransferError::Refused { status: 400, detail: format!("{} of {} bytes", data.len(), at.len) });
        }
        lock(&self.objects).insert((at.location.clone(), at.name.clone()), Bytes::from(data));
        Ok(())
    }

    async fn get(&self, at: &FragmentRef, range: Range<u64>) -> Result<FragmentStream, TransferError> {
        self.count(&at.location, |c| c.gets += 1);
        let fault = self.fault(&at.location);
        match fault {
            Some(Fault::Down) => return Err(down()),
            Some(Fault::SlowGet(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
            _ => {}
        }
        let bytes = self.bytes(&at.location, &at.name).ok_or(TransferError::NotFound)?;
        let (start, end) = (range.start as usize, (range.end as usize).min(bytes.len()));
        if start > end {
            return Err(TransferError::Refused { status: 416, detail: "range".into() });
        }
        // Pieces of 64 KiB, as a network delivers them.
        let slice = bytes.slice(start..end);
        let pieces: Vec<Result<Bytes, TransferError>> =
            (0..slice.len()).step_by(64 << 10).map(|o| Ok(slice.slice(o..(o + (64 << 10)).min(slice.len())))).collect();
        if let Some(Fault::StallGetAfter(n)) = fault {
            // What fits in `n` bytes, then a stream that never ends.
            let first = slice.slice(..(n as usize).min(slice.len()));
            return Ok(futures::stream::once(async move { Ok(first) }).chain(futures::stream::pending()).boxed());
        }
        Ok(futures::stream::iter(pieces).boxed())
    }

    async fn delete(&self, at: &FragmentRef) -> Result<(), TransferError> {
        self.count(&at.location, |c| c.deletes += 1);
        if self.fault(&at.location) == Some(Fault::Down) {
            return Err(down());
        }
        self.lose(&at.location, &at.name);
        Ok(())
    }

    async fn delete_batch(&self, location: &str, names: &[String]) -> Result<Vec<(String, String)>, TransferError> {
        if lock(&self.unbatched).contains(location) {
            return Err(TransferError::Unsupported(format!("{location} cannot delete in bulk")));
        }
        self.count(location, |c| {
            c.batches += 1;
            c.deletes += names.len() as u64;
        });
        if self.fault(location) == Some(Fault::Down) {
            return Err(down());
        }
        for n in names {
            self.lose(location, n);
        }
        Ok(Vec::new())
    }
}

#[async_trait::async_trait]
impl crate::durability::watch::Prober for MemoryStore {
    async fn probe(&self, location: &str, _endpoint: &url::Url) -> Result<(), String> {
        if self.fault(location) == Some(Fault::Down) { Err("location down (test fault)".into()) } else { Ok(()) }
    }
}

//! The cache as a layer around the fragment store: the data path sees a
//! [`FragmentStore`] and nothing of the cache.
//!
//! - A read is served from the cache when it holds the whole fragment, switching to
//!   the location mid-stream if a block fails its check (or the entry is evicted
//!   meanwhile).
//! - A read of a whole fragment from its location fills the cache on the way
//!   (`cache.fill_on_read`), and an upload is written through (`cache.write_through`);
//!   an entry is kept only once the bytes passed in full, and for an upload only once
//!   the location stored them.
//! - A delete removes the entry too.
//!
//! Fills run on a blocking thread with bounded memory, each entry under its tenant's
//! key (the fragment's [`FragmentRef::tenant`]); work done on no tenant's behalf is
//! never cached.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::store::Cache;
use crate::backend::{FragmentBody, FragmentLock, FragmentRef, FragmentStore, FragmentStream, ListPage, TransferError};

/// Bytes read from the cache per step.
const CHUNK: u64 = 1 << 20;

/// A fragment store with the local cache in front of it.
#[derive(Debug)]
pub struct CachedStore {
    inner: Arc<dyn FragmentStore>,
    cache: Arc<Cache>,
    write_through: bool,
    fill_on_read: bool,
}

impl CachedStore {
    /// `inner` behind `cache`, filled by uploads when `write_through` and by whole
    /// reads when `fill_on_read`.
    pub fn new(inner: Arc<dyn FragmentStore>, cache: Arc<Cache>, write_through: bool, fill_on_read: bool) -> Self {
        Self { inner, cache, write_through, fill_on_read }
    }
}

/// Counts bytes read from locations while the cache is on.
fn count_remote(cache: &Arc<Cache>, inner: FragmentStream) -> FragmentStream {
    let cache = cache.clone();
    inner
        .inspect(move |item| {
            if let Ok(b) = item {
                cache.stats.bytes_from_locations.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        })
        .boxed()
}

#[async_trait::async_trait]
impl FragmentStore for CachedStore {
    async fn put(&self, at: &FragmentRef, body: FragmentBody) -> Result<(), TransferError> {
        let Some(tenant) = at.tenant.filter(|_| self.write_through) else { return self.inner.put(at, body).await };
        let (fill, commit) = fill(&self.cache, tenant, &at.name, at.len);
        // The cache keeps up or the upload waits for it: memory stays bounded. A fill
        // that stopped (no room, a device error) is dropped, the upload goes on.
        let teed = body
            .then(move |item| {
                let fill = fill.clone();
                async move {
                    if let Ok(b) = &item {
                        let _ = fill.send(b.clone()).await;
                    }
                    item
                }
            })
            .boxed();
        let r = self.inner.put(at, teed).await;
        if r.is_ok() {
            let _ = commit.send(true);
        }
        r
    }

    async fn get(&self, at: &FragmentRef, range: Range<u64>) -> Result<FragmentStream, TransferError> {
        if self.cache.lookup(&at.name).is_some_and(|len| len == at.len) {
            let (inner, cache, at) = (self.inner.clone(), self.cache.clone(), at.clone());
            return Ok(read(self.cache.clone(), at.name.clone(), range, move |rest| {
                Box::pin(async move { inner.get(&at, rest).await.map(|s| count_remote(&cache, s)) })
            }));
        }
        let whole = range.start == 0 && range.end == at.len;
        let stream = count_remote(&self.cache, self.inner.get(at, range).await?);
        Ok(match at.tenant {
            Some(tenant) if whole && self.fill_on_read => read_through(&self.cache, tenant, &at.name, at.len, stream),
            _ => stream,
        })
    }

    async fn delete(&self, at: &FragmentRef) -> Result<(), TransferError> {
        self.cache.remove(&at.name);
        self.inner.delete(at).await
    }

    async fn replace(&self, at: &FragmentRef, body: FragmentBody) -> Result<(), TransferError> {
        self.cache.remove(&at.name);
        self.inner.replace(at, body).await
    }

    async fn delete_batch(&self, location: &str, names: &[String]) -> Result<Vec<(String, String)>, TransferError> {
        for n in names {
            self.cache.remove(n);
        }
        self.inner.delete_batch(location, names).await
    }

    async fn list(&self, location: &str, after: Option<&str>) -> Result<ListPage, TransferError> {
        self.inner.list(location, after).await
    }

    async fn retain(&self, at: &FragmentRef, lock: FragmentLock) -> Result<FragmentLock, TransferError> {
        self.inner.retain(at, lock).await
    }

    async fn retention(&self, at: &FragmentRef) -> Result<Option<FragmentLock>, TransferError> {
        self.inner.retention(at).await
    }

    fn is_local(&self, at: &FragmentRef) -> bool {
        self.cache.contains(&at.name)
    }
}

/// Bytes `range` of the cached fragment `name`; if the cache cannot serve a piece
/// (a block failed its check, or the entry was evicted meanwhile), the rest comes
/// from `fallback`.
fn read<F>(cache: Arc<Cache>, name: String, range: Range<u64>, fallback: F) -> FragmentStream
where
    F: FnOnce(Range<u64>) -> futures::future::BoxFuture<'static, Result<FragmentStream, TransferError>>
        + Send
        + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes, TransferError>>(2);
    tokio::spawn(async move {
        let mut pos = range.start;
        while pos < range.end {
            let end = (pos + CHUNK).min(range.end);
            let (c, n) = (cache.clone(), name.clone());
            match tokio::task::spawn_blocking(move || c.read(&n, pos..end)).await {
                Ok(Ok(Some(bytes))) => {
                    if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                        return;
                    }
                    pos = end;
                }
                Ok(Err(e)) => {
                    debug!(error = %e, "cache read failed; reading from the location");
                    break;
                }
                _ => break,
            }
        }
        if pos < range.end {
            match fallback(pos..range.end).await {
                Ok(mut rest) => {
                    while let Some(item) = rest.next().await {
                        let failed = item.is_err();
                        if tx.send(item).await.is_err() || failed {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// Starts filling the entry `name` of `tenant`, `len` bytes long: its bytes go
/// through the returned sender, and the entry is kept only if the switch is sent
/// `true` after the last byte.
fn fill(cache: &Arc<Cache>, tenant: u32, name: &str, len: u64) -> (mpsc::Sender<Bytes>, oneshot::Sender<bool>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let (commit, commit_rx) = oneshot::channel::<bool>();
    let (cache, name) = (cache.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        let mut filler = match cache.begin(tenant, &name, len) {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "not cached");
                return;
            }
        };
        while let Some(b) = rx.blocking_recv() {
            if let Err(e) = filler.push(&b) {
                debug!(error = %e, "cache fill stopped");
                return;
            }
        }
        if commit_rx.blocking_recv() == Ok(true)
            && let Err(e) = filler.commit()
        {
            debug!(error = %e, "cache fill not committed");
        }
    });
    (tx, commit)
}

/// A whole-fragment read from a location, also filling the cache; the entry is
/// committed as soon as exactly `len` bytes have passed (the reader stops polling
/// once it has what it needs, so the stream's end may never be seen).
fn read_through(cache: &Arc<Cache>, tenant: u32, name: &str, len: u64, inner: FragmentStream) -> FragmentStream {
    let (tx, commit) = fill(cache, tenant, name, len);
    let state = (inner, Some((tx, commit)), 0u64);
    futures::stream::unfold(state, move |(mut inner, mut filling, seen)| async move {
        match inner.next().await {
            Some(Ok(b)) => {
                let seen = seen + b.len() as u64;
                if let Some((tx, _)) = &filling
                    && (seen > len || tx.send(b.clone()).await.is_err())
                {
                    filling = None;
                }
                if seen == len
                    && let Some((tx, commit)) = filling.take()
                {
                    drop(tx);
                    let _ = commit.send(true);
                }
                Some((Ok(b), (inner, filling, seen)))
            }
            Some(Err(e)) => Some((Err(e), (inner, None, seen))),
            None => None,
        }
    })
    .boxed()
}

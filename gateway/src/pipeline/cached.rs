//! Fragments through the local cache: a read is served from the cache when it holds
//! the fragment (switching to the location mid-stream if a block fails its check),
//! and fragments passing through — uploaded by a PUT, or read whole by a GET — are
//! written into it on a blocking thread, with bounded memory.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::ReceiverStream;
use crate::backend::transfer::TransferError;
use crate::cache::store::Cache;

/// Bytes read from the cache per step.
const CHUNK: u64 = 1 << 20;

/// The tenant whose key the cache uses (one until the gateway has tenants).
pub const TENANT: u32 = 0;

/// A fragment byte stream.
pub type FragmentStream = BoxStream<'static, Result<Bytes, TransferError>>;

/// Opens the rest of a fragment at its location, from a given range.
pub type Fallback = Box<dyn FnOnce(Range<u64>) -> BoxFuture<'static, Result<FragmentStream, TransferError>> + Send>;

/// Bytes `range` of the cached fragment `name`; if the cache cannot serve a piece
/// (a block failed its check, or the entry was evicted meanwhile), the rest comes
/// from `fallback`.
pub fn read(cache: Arc<Cache>, name: String, range: Range<u64>, fallback: Fallback) -> FragmentStream {
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
    ReceiverStream::new(rx).boxed()
}

/// Starts filling the entry `name`, `len` bytes long: its bytes go through the
/// returned sender, and the entry is kept only if the switch is sent `true` after
/// the last byte.
pub fn fill(cache: &Arc<Cache>, name: &str, len: u64) -> (mpsc::Sender<Bytes>, oneshot::Sender<bool>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let (commit, commit_rx) = oneshot::channel::<bool>();
    let (cache, name) = (cache.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        let mut filler = match cache.begin(TENANT, &name, len) {
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

/// A GET's whole-fragment read from a location, also filling the cache; the entry
/// is committed as soon as exactly `len` bytes have passed (the reader stops
/// polling once it has what it needs, so the stream's end may never be seen).
pub fn read_through(cache: &Arc<Cache>, name: &str, len: u64, inner: FragmentStream) -> FragmentStream {
    let (tx, commit) = fill(cache, name, len);
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

/// Counts bytes a GET read from locations while the cache is on.
pub fn count_remote(cache: &Arc<Cache>, inner: FragmentStream) -> FragmentStream {
    let cache = cache.clone();
    inner
        .inspect(move |item| {
            if let Ok(b) = item {
                cache.stats.bytes_from_locations.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        })
        .boxed()
}

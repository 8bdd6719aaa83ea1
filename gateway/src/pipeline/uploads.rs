//! A write's fragment uploads, settled at the pace of its write quorum rather than
//! its slowest location: once the quorum has landed, the rest get a short grace
//! to catch up, and those still going then finish in the background — the write
//! commits with them missing (so its redundancy is stated honestly meanwhile) and
//! each is recorded stored when it lands. Repair leaves such a seal alone until
//! `pipeline.pending_grace` has passed or an upload fails.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use super::PipelineCtx;
use crate::meta::{Fragment, SealId, now_ms};

/// Shortest wait for the uploads behind the quorum.
const MIN_GRACE: Duration = Duration::from_millis(50);

/// Uploads running, each reporting its bytes stored (or `None`) when it ends.
pub(super) struct Uploads {
    results: mpsc::UnboundedReceiver<(usize, Option<u64>)>,
    handles: Vec<Option<AbortHandle>>,
    /// Uploads that stored their fragment: one can end before the write's others
    /// keep up (a fast location answers once its last slice is in).
    stored: Vec<Arc<AtomicBool>>,
}

impl Uploads {
    /// Starts one task per upload, in fragment order.
    pub(super) fn spawn<F>(uploads: impl IntoIterator<Item = F>) -> Self
    where
        F: Future<Output = Option<u64>> + Send + 'static,
    {
        let (tx, results) = mpsc::unbounded_channel();
        let (mut handles, mut stored) = (Vec::new(), Vec::new());
        for (i, f) in uploads.into_iter().enumerate() {
            let (tx, done) = (tx.clone(), Arc::new(AtomicBool::new(false)));
            stored.push(done.clone());
            handles.push(Some(
                tokio::spawn(async move {
                    let r = f.await;
                    done.store(r.is_some(), Ordering::Release);
                    tx.send((i, r))
                })
                .abort_handle(),
            ));
        }
        Self { results, handles, stored }
    }

    /// Whether upload `i` has ended without storing its fragment (or was given up
    /// on).
    pub(super) fn failed(&self, i: usize) -> bool {
        self.handles[i].as_ref().is_none_or(AbortHandle::is_finished) && !self.stored[i].load(Ordering::Acquire)
    }

    /// Gives up on upload `i`.
    pub(super) fn abort(&mut self, i: usize) {
        if let Some(h) = self.handles[i].take() {
            h.abort();
        }
    }

    /// Waits for every upload not given up on, or — once `quorum` have landed — at
    /// most a grace of a quarter of the time the write took so far (at least
    /// [`MIN_GRACE`]) for the rest. Returns the bytes each stored (`None`: failed,
    /// given up on, or still going) and the uploads still going.
    pub(super) async fn settle(mut self, quorum: usize, started: Instant) -> (Vec<Option<u64>>, Option<Behind>) {
        let n = self.handles.len();
        let mut landed = vec![None; n];
        let mut left: Vec<usize> = (0..n).filter(|&i| self.handles[i].is_some()).collect();
        let mut deadline: Option<tokio::time::Instant> = None;
        while !left.is_empty() {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.results.recv()).await {
                    Ok(r) => r,
                    Err(_) => break,
                },
                None => self.results.recv().await,
            };
            let Some((i, bytes)) = next else { break };
            if !left.contains(&i) {
                continue;
            }
            left.retain(|&j| j != i);
            landed[i] = bytes;
            if deadline.is_none() && landed.iter().flatten().count() >= quorum {
                let grace = (started.elapsed() / 4).max(MIN_GRACE);
                deadline = Some(tokio::time::Instant::now() + grace);
            }
        }
        if left.is_empty() {
            return (landed, None);
        }
        if landed.iter().flatten().count() < quorum {
            // The write fails: nothing is to finish in the background.
            for &i in &left {
                self.abort(i);
            }
            return (landed, None);
        }
        let handles = std::mem::take(&mut self.handles);
        (landed, Some(Behind { results: Some(self.results), left, handles, started }))
    }
}

/// Uploads still going once a write's quorum landed: aborted if dropped before the
/// write commits.
pub(crate) struct Behind {
    results: Option<mpsc::UnboundedReceiver<(usize, Option<u64>)>>,
    left: Vec<usize>,
    handles: Vec<Option<AbortHandle>>,
    /// When the write started.
    started: Instant,
}

impl Drop for Behind {
    fn drop(&mut self) {
        for h in self.handles.iter().flatten() {
            h.abort();
        }
    }
}

impl Behind {
    /// The fragment indexes (positions) still being uploaded.
    pub(super) fn indexes(&self) -> &[usize] {
        &self.left
    }

    /// Once the write has committed: waits for the uploads in the background and
    /// records each fragment stored as it lands (`fragments[i]` is upload `i`'s
    /// fragment of `seal`). A failed one puts the seal in the repair queue at once.
    pub(super) fn finish_in_background(
        mut self,
        ctx: std::sync::Arc<PipelineCtx>,
        seal: SealId,
        fragments: Vec<Fragment>,
    ) {
        self.handles.clear();
        let (Some(mut results), mut left) = (self.results.take(), std::mem::take(&mut self.left)) else { return };
        let started = self.started;
        tokio::spawn(async move {
            let mut failed = false;
            while !left.is_empty() {
                let Some((i, bytes)) = results.recv().await else { break };
                left.retain(|&j| j != i);
                let Some(f) = fragments.get(i) else { continue };
                match bytes {
                    Some(bytes) => {
                        ctx.health.succeeded(&f.location);
                        // Uploads that kept up were paced by the write; a late one
                        // by its location: its rate is the location's.
                        ctx.health.observe_rate(&f.location, bytes, started.elapsed());
                        match ctx.meta.complete_fragment(seal, f.index, &f.location, bytes).await {
                            Ok(()) => debug!(%seal, fragment = f.index, location = %f.location, "late fragment stored"),
                            Err(e) => warn!(%seal, fragment = f.index, error = %e, "could not record a late fragment"),
                        }
                    }
                    None => {
                        ctx.health.failed(&f.location);
                        failed = true;
                    }
                }
            }
            // An upload that failed or never reported (its task was lost) is
            // repair's now.
            if (failed || !left.is_empty())
                && let Err(e) = ctx.meta.defer_repair(seal, now_ms()).await
            {
                warn!(%seal, error = %e, "could not queue a seal for repair; the next pass finds it");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_that_stored_its_fragment_and_ended_has_not_failed() {
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let uploads: Vec<std::pin::Pin<Box<dyn Future<Output = Option<u64>> + Send>>> = vec![
            Box::pin(async { Some(7) }),
            Box::pin(async { None }),
            Box::pin(async move { wait.await.ok().map(|()| 7) }),
        ];
        let u = Uploads::spawn(uploads);
        let ended = || u.handles.iter().take(2).flatten().all(AbortHandle::is_finished);
        while !ended() {
            tokio::task::yield_now().await;
        }
        assert!(!u.failed(0), "stored before the others: not failed");
        assert!(u.failed(1), "ended without storing");
        assert!(!u.failed(2), "still going");
        drop(release);
    }
}

//! AES-256-GCM on dedicated threads: the shape of a PCIe or DPU crypto accelerator.
//!
//! Work is submitted as *batches* of owned jobs into a bounded queue (its depth is the
//! number of batches in flight) and completes asynchronously: [`Pending`] is a future,
//! and can also be waited on from a blocking thread. The request threads only copy
//! descriptors; the sealing itself runs on the pool's threads, which is what moving
//! the work to a device would look like. The pool wraps any other [`AeadEngine`].

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use futures_channel::oneshot;

use crate::aead::{AeadEngine, AeadKey, DataKey, EngineError, Nonce, SealError, Tag};
use crate::buf::AlignedBuf;

/// What to do with a job's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AeadOp {
    /// Encrypt in place and produce a tag.
    Seal,
    /// Check the tag, then decrypt in place.
    Open(Tag),
}

/// One AEAD operation on an owned buffer.
pub(crate) struct AeadJob {
    /// The key to use.
    pub(crate) key: Arc<dyn AeadKey>,
    /// Seal or open.
    pub(crate) op: AeadOp,
    /// The nonce.
    pub(crate) nonce: Nonce,
    /// Associated data.
    pub(crate) aad: Vec<u8>,
    /// The buffer; only `range` is processed.
    pub(crate) buf: AlignedBuf,
    /// The bytes of `buf` to seal or open.
    pub(crate) range: Range<usize>,
}

impl fmt::Debug for AeadJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadJob").field("op", &self.op).field("range", &self.range).finish_non_exhaustive()
    }
}

/// A finished job: the buffer comes back, with the tag for a seal.
#[derive(Debug)]
pub(crate) struct AeadDone {
    /// The job, its buffer now sealed or opened.
    pub(crate) job: AeadJob,
    /// `Some(tag)` after a seal, `None` after a successful open.
    pub(crate) result: Result<Option<Tag>, SealError>,
}

struct Batch {
    jobs: Vec<AeadJob>,
    reply: oneshot::Sender<Vec<AeadDone>>,
}

/// Completion of a submitted batch, in submission order.
#[derive(Debug)]
pub(crate) struct Pending(oneshot::Receiver<Vec<AeadDone>>);

impl Pending {
    /// Blocks the current thread until the batch is done.
    pub(crate) fn wait(self) -> Result<Vec<AeadDone>, EngineError> {
        futures_executor::block_on(self)
    }
}

impl Future for Pending {
    type Output = Result<Vec<AeadDone>, EngineError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| r.map_err(|_| EngineError::Stopped { engine: "pool" }))
    }
}

/// A pool of sealing threads in front of another engine.
pub(crate) struct AeadPool {
    inner: Arc<dyn AeadEngine>,
    queue: Sender<Batch>,
    threads: usize,
    depth: usize,
}

impl fmt::Debug for AeadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadPool")
            .field("inner", &self.inner.name())
            .field("threads", &self.threads)
            .field("queue_depth", &self.depth)
            .finish()
    }
}

impl AeadPool {
    /// Starts `threads` workers (at least one) serving a queue of `depth` batches (at
    /// least one) with `inner`.
    pub(crate) fn new(inner: Arc<dyn AeadEngine>, threads: usize, depth: usize) -> Self {
        let (threads, depth) = (threads.max(1), depth.max(1));
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(depth);
        for i in 0..threads {
            let rx: Receiver<Batch> = rx.clone();
            // Workers end when every sender (the pool and its keys) is gone.
            let spawned = thread::Builder::new().name(format!("aead-pool-{i}")).spawn(move || {
                for batch in rx {
                    let done = batch.jobs.into_iter().map(run).collect();
                    // The submitter may have given up waiting; that is its business.
                    let _ = batch.reply.send(done);
                }
            });
            // A thread that cannot start only lowers the pool's width; with none at
            // all, submissions fail with `Stopped` once the receiver is dropped.
            drop(spawned);
        }
        Self { inner, queue: tx, threads, depth }
    }

    /// Queues a batch, blocking while the queue is full. (The engine's keys submit
    /// one job at a time; tests submit batches.)
    #[cfg(test)]
    pub(crate) fn submit(&self, jobs: Vec<AeadJob>) -> Result<Pending, EngineError> {
        submit(&self.queue, jobs)
    }
}

fn submit(queue: &Sender<Batch>, jobs: Vec<AeadJob>) -> Result<Pending, EngineError> {
    let (reply, rx) = oneshot::channel();
    queue.send(Batch { jobs, reply }).map_err(|_| EngineError::Stopped { engine: "pool" })?;
    Ok(Pending(rx))
}

fn run(mut job: AeadJob) -> AeadDone {
    let result = match job.buf.get_mut(job.range.clone()) {
        None => Err(SealError),
        Some(data) => match job.op {
            AeadOp::Seal => job.key.seal(&job.nonce, &job.aad, data).map(Some),
            AeadOp::Open(tag) => job.key.open(&job.nonce, &job.aad, data, &tag).map(|()| None),
        },
    };
    AeadDone { job, result }
}

impl AeadEngine for AeadPool {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn key(&self, key: &DataKey) -> Result<Arc<dyn AeadKey>, EngineError> {
        Ok(Arc::new(PoolKey { inner: self.inner.key(key)?, queue: self.queue.clone() }))
    }
}

/// A key whose synchronous calls go through the pool. The synchronous interface
/// borrows the caller's buffer, which cannot cross threads without `unsafe`, so it
/// copies in and out; callers that want the pool's speed submit owned
/// [`AeadJob`]s instead.
struct PoolKey {
    inner: Arc<dyn AeadKey>,
    queue: Sender<Batch>,
}

impl PoolKey {
    fn roundtrip(&self, op: AeadOp, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Option<Tag>, SealError> {
        let job = AeadJob {
            key: self.inner.clone(),
            op,
            nonce: *nonce,
            aad: aad.to_vec(),
            buf: AlignedBuf::from_slice(buf),
            range: 0..buf.len(),
        };
        let mut done = submit(&self.queue, vec![job]).and_then(Pending::wait).map_err(|_| SealError)?;
        let done = done.pop().ok_or(SealError)?;
        if done.result.is_ok() {
            buf.copy_from_slice(&done.job.buf);
        }
        done.result
    }
}

impl AeadKey for PoolKey {
    fn seal(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, SealError> {
        self.roundtrip(AeadOp::Seal, nonce, aad, buf)?.ok_or(SealError)
    }

    fn open(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), SealError> {
        self.roundtrip(AeadOp::Open(*tag), nonce, aad, buf).map(|_| ())
    }

    fn confidentiality_limit(&self) -> u64 {
        self.inner.confidentiality_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ring::RingAead;

    #[test]
    fn batches_complete_in_order_and_match_the_inner_engine() {
        let pool = AeadPool::new(Arc::new(RingAead), 2, 2);
        let key = DataKey::from_bytes([5; 32]);
        let pooled = RingAead.key(&key).expect("key");
        let jobs: Vec<AeadJob> = (0..16u8)
            .map(|i| AeadJob {
                key: pooled.clone(),
                op: AeadOp::Seal,
                nonce: Nonce([i; 12]),
                aad: vec![i],
                buf: AlignedBuf::from_slice(&vec![i; 1000 + usize::from(i)]),
                range: 0..1000 + usize::from(i),
            })
            .collect();
        // Two batches in flight at once, awaited as futures.
        let first = pool.submit(jobs[..8].iter().map(clone_job).collect()).expect("submit");
        let second = pool.submit(jobs[8..].iter().map(clone_job).collect()).expect("submit");
        let done: Vec<AeadDone> = futures_executor::block_on(async {
            let mut a = first.await.expect("first batch");
            a.extend(second.await.expect("second batch"));
            a
        });
        assert_eq!(done.len(), 16);
        let reference = RingAead.key(&key).expect("key");
        for (i, d) in done.iter().enumerate() {
            let mut expect = vec![i as u8; 1000 + i];
            let tag = reference.seal(&Nonce([i as u8; 12]), &[i as u8], &mut expect).expect("seal");
            assert_eq!(&d.job.buf[..], &expect[..], "job {i}");
            assert_eq!(d.result, Ok(Some(tag)));
        }
        // And back: open every sealed buffer through the pool.
        let opens: Vec<AeadJob> = done
            .into_iter()
            .map(|d| {
                let tag = d.result.expect("sealed").expect("tag");
                AeadJob { op: AeadOp::Open(tag), ..d.job }
            })
            .collect();
        for (i, d) in pool.submit(opens).expect("submit").wait().expect("opened").into_iter().enumerate() {
            assert_eq!(d.result, Ok(None));
            assert!(d.job.buf.iter().all(|&b| b == i as u8));
        }
    }

    #[test]
    fn a_bad_tag_or_range_fails_only_its_job() {
        let pool = AeadPool::new(Arc::new(RingAead), 1, 1);
        let key = RingAead.key(&DataKey::from_bytes([6; 32])).expect("key");
        let job = |op, range| AeadJob {
            key: key.clone(),
            op,
            nonce: Nonce([0; 12]),
            aad: Vec::new(),
            buf: AlignedBuf::zeroed(64),
            range,
        };
        let done = pool
            .submit(vec![job(AeadOp::Open(Tag([0; 16])), 0..64), job(AeadOp::Seal, 0..65), job(AeadOp::Seal, 0..64)])
            .expect("submit")
            .wait()
            .expect("done");
        assert_eq!(done[0].result, Err(SealError));
        assert_eq!(done[1].result, Err(SealError));
        assert!(matches!(done[2].result, Ok(Some(_))));
    }

    fn clone_job(j: &AeadJob) -> AeadJob {
        AeadJob {
            key: j.key.clone(),
            op: j.op,
            nonce: j.nonce,
            aad: j.aad.clone(),
            buf: j.buf.clone(),
            range: j.range.clone(),
        }
    }
}

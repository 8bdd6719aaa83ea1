//! The streaming half of a write: the client's body cut into segments, each sealed
//! and coded on the blocking pool, its records streamed to the `n` fragment
//! uploads, while a thread of its own hashes the body. Memory stays within a few
//! segments — bounded channels join the stages — plus, for a location slower than
//! the write quorum, what it has yet to take, within the gateway-wide lag buffer. A small body (up to [`INLINE_MAX`])
//! is hashed and coded on the request's own task instead: for a few kilobytes, the
//! hand-offs to other threads cost more CPU than the work.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use codec::fragment::FragmentLayout;
use codec::object::{EncodedSegment, Segmenter, segment_buffer_capacity};
use codec::{CodingParams, ObjectEncoder};
use futures::StreamExt;
use offload::AlignedBuf;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, warn};

use super::checksum::{HashResult, Hashes, spawn_hasher};
use super::uploads::{Behind, Uploads};
use super::{BodyStream, PipelineCtx, PipelineError};
use crate::backend::FragmentRef;

/// Bodies and segments up to this size are hashed and coded without leaving the
/// request's task (64 KiB: MD5 and AES-GCM take tens of microseconds, a thread
/// hand-off and its wake-ups a similar time, on every request).
pub(super) const INLINE_MAX: u64 = 64 * 1024;

/// What streaming a seal's fragments achieved.
pub(super) struct Written {
    /// Bytes stored per fragment (`None`: it did not land, or is still landing).
    pub(super) landed: Vec<Option<u64>>,
    /// Uploads still going once the write quorum landed.
    pub(super) behind: Option<Behind>,
    /// Sealed length of each segment, when compressed.
    pub(super) sealed_lens: Option<Vec<u32>>,
    /// ETag and checksum of the body.
    pub(super) hashes: HashResult,
}

/// How one seal is to be written.
pub(super) struct Plan {
    /// Seals and codes its segments.
    pub(super) encoder: ObjectEncoder,
    /// Its coding parameters.
    pub(super) params: CodingParams,
    /// Whether segments are compressed before sealing.
    pub(super) compressed: bool,
    /// Its fragments, one per index (lengths are filled in here).
    pub(super) refs: Vec<FragmentRef>,
    /// Plaintext bytes.
    pub(super) len: u64,
    /// Fragments that must land.
    pub(super) quorum: usize,
}

/// Streams `body` (exactly `plan.len` bytes) into the fragments of `plan`, hashing
/// it on the side with `hashes`. Gives up as soon as fewer than the quorum of
/// fragments can still land.
pub(super) async fn write_fragments(
    ctx: &PipelineCtx,
    plan: Plan,
    body: BodyStream,
    hashes: Hashes,
) -> Result<Written, PipelineError> {
    let Plan { encoder, params, compressed, mut refs, len, quorum } = plan;
    let n = refs.len();
    let hasher = if len <= INLINE_MAX { Hasher::Inline(Box::new(hashes)) } else { Hasher::thread(hashes) };
    let headers: Vec<Bytes> = (0..n).map(|i| Bytes::copy_from_slice(&encoder.header(i as u8))).collect();
    let cap = segment_buffer_capacity(&params);
    let depth = ctx.config.depth;
    let started = Instant::now();
    let layout = *encoder.layout();
    let (seg_tx, seg_rx) = mpsc::channel::<AlignedBuf>(depth);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<AlignedBuf>();
    let reader = read_body(body, layout, cap, len, hasher, seg_tx, back_rx);

    let ((landed, behind), sealed_lens, hasher) = if !compressed {
        let flen = FragmentLayout::uncompressed(&params, &layout).fragment_len();
        refs.iter_mut().for_each(|r| r.len = flen);
        let mut sinks = Sinks::start(ctx, &refs, headers, depth, quorum);
        let coder = async {
            // Owned here, so that the reader sees the channel close if coding stops.
            let (mut encoder, mut seg_rx, back_tx) = (encoder, seg_rx, back_tx);
            while let Some(seg) = seg_rx.recv().await {
                let (enc, encoded) = encode_segment(encoder, seg, ctx.buffers.take()).await?;
                encoder = enc;
                let (records, ranges, sealed) = encoded?.into_records();
                let _ = back_tx.send(sealed);
                sinks.send_all(ctx.buffers.share(records, &ranges)).await;
                if sinks.alive() < quorum {
                    return Err(PipelineError::WriteQuorum { needed: quorum, landed: sinks.alive() });
                }
            }
            Ok::<(), PipelineError>(())
        };
        let (read, coded) = tokio::join!(reader, coder);
        let hasher = read?;
        coded?;
        (sinks.finish(started).await, None, hasher)
    } else {
        // Compressed fragments' sizes are known only at the end: build them in memory
        // (bounded by `compress_max_object`), then upload.
        let coder = async {
            let (mut encoder, mut seg_rx, _back_tx) = (encoder, seg_rx, back_tx);
            let mut per_fragment: Vec<Vec<Bytes>> = vec![Vec::new(); n];
            let mut lens = Vec::new();
            while let Some(seg) = seg_rx.recv().await {
                let (enc, encoded) = encode_segment(encoder, seg, AlignedBuf::new()).await?;
                encoder = enc;
                let e = encoded?;
                lens.push(e.sealed_len());
                let (records, ranges, _) = e.into_records();
                for (f, b) in per_fragment.iter_mut().zip(ctx.buffers.share(records, &ranges)) {
                    f.push(b);
                }
            }
            Ok::<_, PipelineError>((per_fragment, lens))
        };
        let (read, coded) = tokio::join!(reader, coder);
        let hasher = read?;
        let (per_fragment, lens) = coded?;
        let flen = FragmentLayout::from_sealed_lens(params.k(), lens.iter().copied()).fragment_len();
        refs.iter_mut().for_each(|r| r.len = flen);
        let segments = per_fragment.first().map_or(0, Vec::len);
        let mut sinks = Sinks::start(ctx, &refs, headers, segments + 1, quorum);
        let mut per_fragment: Vec<std::vec::IntoIter<Bytes>> = per_fragment.into_iter().map(Vec::into_iter).collect();
        for _ in 0..segments {
            let slices: Vec<Bytes> = per_fragment.iter_mut().map(|it| it.next().unwrap_or_default()).collect();
            sinks.send_all(slices).await;
        }
        (sinks.finish(started).await, Some(lens), hasher)
    };
    let hashes = hasher.finish().await?;
    Ok(Written { landed, behind, sealed_lens, hashes })
}

/// Seals and codes one segment: on the blocking pool, or here if it is small.
async fn encode_segment(
    mut encoder: ObjectEncoder,
    seg: AlignedBuf,
    out: AlignedBuf,
) -> Result<(ObjectEncoder, Result<EncodedSegment, codec::CodecError>), tokio::task::JoinError> {
    if seg.len() as u64 <= INLINE_MAX {
        let r = encode(&mut encoder, seg, out);
        return Ok((encoder, r));
    }
    tokio::task::spawn_blocking(move || {
        let r = encode(&mut encoder, seg, out);
        (encoder, r)
    })
    .await
}

/// Where the body is hashed: a thread of its own fed through a channel, or, for a
/// small body, right here.
enum Hasher {
    Thread(mpsc::Sender<Bytes>, tokio::task::JoinHandle<HashResult>),
    Inline(Box<Hashes>),
}

impl Hasher {
    fn thread(hashes: Hashes) -> Self {
        let (tx, job) = spawn_hasher(hashes);
        Hasher::Thread(tx, job)
    }

    /// Hashes `chunk` (the thread keeps up or the body waits: hashing bounds memory too).
    async fn update(&mut self, chunk: &Bytes) -> Result<(), PipelineError> {
        match self {
            Hasher::Thread(tx, _) => {
                tx.send(chunk.clone()).await.map_err(|_| PipelineError::Task("hasher stopped".into()))
            }
            Hasher::Inline(h) => {
                h.update(chunk);
                Ok(())
            }
        }
    }

    async fn finish(self) -> Result<HashResult, PipelineError> {
        match self {
            Hasher::Thread(tx, job) => {
                drop(tx);
                Ok(job.await?)
            }
            Hasher::Inline(h) => Ok((*h).finish()),
        }
    }
}

fn encode(
    encoder: &mut ObjectEncoder,
    plaintext: AlignedBuf,
    out: AlignedBuf,
) -> Result<EncodedSegment, codec::CodecError> {
    let mut job = encoder.prepare(plaintext)?;
    let tag = encoder.seal(&mut job)?;
    encoder.finish(job, tag, out)
}

/// Reads the client's body into segments, hashing every chunk on the side; gives
/// back the hasher.
async fn read_body(
    mut body: BodyStream,
    layout: codec::SegmentLayout,
    cap: usize,
    len: u64,
    mut hasher: Hasher,
    seg_tx: mpsc::Sender<AlignedBuf>,
    back_rx: std::sync::mpsc::Receiver<AlignedBuf>,
) -> Result<Hasher, PipelineError> {
    let mut segmenter = Segmenter::new(layout, cap);
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(PipelineError::Body)?;
        got += chunk.len() as u64;
        if got > len {
            return Err(PipelineError::BodyLength { expected: len, got });
        }
        hasher.update(&chunk).await?;
        while let Ok(b) = back_rx.try_recv() {
            segmenter.recycle(b);
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            if let Some(seg) = segmenter.push(&mut rest)?
                && seg_tx.send(seg).await.is_err()
            {
                // The coder stopped (not enough locations): its error explains.
                return Ok(hasher);
            }
        }
    }
    if got != len {
        return Err(PipelineError::BodyLength { expected: len, got });
    }
    if let Some(seg) = segmenter.finish()? {
        let _ = seg_tx.send(seg).await;
    }
    Ok(hasher)
}

/// One slice queued for an upload; it holds its share of the lag buffer when its
/// location was behind as it was queued.
struct Queued {
    bytes: Bytes,
    _lag: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The `n` fragment uploads of one seal, each fed through a queue. Coding runs at
/// the pace of the write quorum's slowest location, not of every location's: a
/// location more than `depth` slices behind holds the slices it has yet to take in
/// the gateway's lag buffer (`pipeline.lag_buffer`, shared by all writes); once
/// that is spent it is given up on, and repair writes its fragment later.
struct Sinks {
    senders: Vec<Option<mpsc::UnboundedSender<Queued>>>,
    /// Slices queued for each upload and not yet taken by it.
    queued: Vec<Arc<AtomicUsize>>,
    uploads: Uploads,
    /// Ticks whenever an upload takes a slice or ends.
    progress: watch::Receiver<u64>,
    window: usize,
    quorum: usize,
    lag: Arc<Semaphore>,
}

impl Sinks {
    /// Starts one upload per fragment, each fed its header first; up to `depth`
    /// slices may wait for each before the lag buffer is used.
    fn start(ctx: &PipelineCtx, refs: &[FragmentRef], headers: Vec<Bytes>, depth: usize, quorum: usize) -> Self {
        let (tick, progress) = watch::channel(0u64);
        let tick = Arc::new(tick);
        let mut senders = Vec::with_capacity(refs.len());
        let mut queued = Vec::with_capacity(refs.len());
        let mut uploads = Vec::with_capacity(refs.len());
        for (at, header) in refs.iter().zip(headers) {
            let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
            let count = Arc::new(AtomicUsize::new(1));
            let _ = tx.send(Queued { bytes: header, _lag: None });
            let (store, at, tick, taken) = (ctx.store.clone(), at.clone(), tick.clone(), count.clone());
            uploads.push(async move {
                let feed = tick.clone();
                let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                    .map(move |q: Queued| {
                        taken.fetch_sub(1, Ordering::AcqRel);
                        feed.send_modify(|c| *c = c.wrapping_add(1));
                        Ok::<Bytes, std::io::Error>(q.bytes)
                    })
                    .boxed();
                let r = match store.put(&at, body).await {
                    Ok(()) => {
                        debug!(location = %at.location, bytes = at.len, "fragment stored");
                        Some(at.len)
                    }
                    Err(e) => {
                        warn!(location = %at.location, error = %e, "fragment upload failed");
                        None
                    }
                };
                tick.send_modify(|c| *c = c.wrapping_add(1));
                r
            });
            senders.push(Some(tx));
            queued.push(count);
        }
        let uploads = Uploads::spawn(uploads);
        Self { senders, queued, uploads, progress, window: depth.max(1) + 1, quorum, lag: ctx.lagging.clone() }
    }

    /// Uploads not given up on.
    fn alive(&self) -> usize {
        self.senders.iter().filter(|s| s.is_some()).count()
    }

    fn give_up(&mut self, i: usize, why: &str) {
        if self.senders[i].take().is_some() {
            warn!(fragment = i, "fragment upload given up: {why}");
            self.uploads.abort(i);
        }
    }

    /// Queues fragment `i` its slice, then waits until the write quorum's uploads
    /// are within `depth` slices (or fewer than the quorum are left).
    async fn send_all(&mut self, slices: Vec<Bytes>) {
        for (i, b) in slices.into_iter().enumerate() {
            let Some(tx) = &self.senders[i] else { continue };
            let lag = if self.queued[i].load(Ordering::Acquire) >= self.window {
                match self.lag.clone().try_acquire_many_owned(u32::try_from(b.len()).unwrap_or(u32::MAX)) {
                    Ok(p) => Some(p),
                    Err(_) => {
                        self.give_up(i, "its location is behind and the lag buffer is spent (repair writes it)");
                        continue;
                    }
                }
            } else {
                None
            };
            self.queued[i].fetch_add(1, Ordering::AcqRel);
            if tx.send(Queued { bytes: b, _lag: lag }).is_err() {
                self.give_up(i, "its upload ended early");
            }
        }
        loop {
            self.progress.borrow_and_update();
            for i in 0..self.senders.len() {
                // An upload that ended without storing its fragment failed.
                if self.senders[i].is_some() && self.uploads.failed(i) {
                    self.give_up(i, "its upload ended early");
                }
            }
            let keeping_up = (0..self.senders.len())
                .filter(|&i| self.senders[i].is_some() && self.queued[i].load(Ordering::Acquire) <= self.window)
                .count();
            if keeping_up >= self.quorum.min(self.alive()) {
                return;
            }
            // Uploads tick as they take data and when they end; a stalled location
            // ends its upload after `pipeline.stall_timeout`.
            if self.progress.changed().await.is_err() {
                return;
            }
        }
    }

    /// Ends every queue and settles the uploads ([`Uploads::settle`]).
    async fn finish(self, started: Instant) -> (Vec<Option<u64>>, Option<Behind>) {
        let Sinks { senders, uploads, quorum, .. } = self;
        drop(senders);
        uploads.settle(quorum, started).await
    }
}

//! The streaming half of a write: the client's body cut into segments, each sealed
//! and coded on the blocking pool, its records streamed to the `n` fragment
//! uploads, while a thread of its own hashes the body. Memory stays within a few
//! segments: bounded channels join the stages. A small body (up to [`INLINE_MAX`])
//! is hashed and coded on the request's own task instead: for a few kilobytes, the
//! hand-offs to other threads cost more CPU than the work.

use std::time::Duration;

use bytes::Bytes;
use codec::fragment::FragmentLayout;
use codec::object::{EncodedSegment, Segmenter, segment_buffer_capacity};
use codec::{CodingParams, ObjectEncoder};
use futures::StreamExt;
use offload::AlignedBuf;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::checksum::{HashResult, Hashes, spawn_hasher};
use super::{BodyStream, PipelineCtx, PipelineError, ReceiverStream};
use crate::backend::FragmentRef;

/// Bodies and segments up to this size are hashed and coded without leaving the
/// request's task (64 KiB: MD5 and AES-GCM take tens of microseconds, a thread
/// hand-off and its wake-ups a similar time, on every request).
pub(super) const INLINE_MAX: u64 = 64 * 1024;

/// What streaming a seal's fragments achieved.
pub(super) struct Written {
    /// Bytes stored per fragment (`None`: it did not land).
    pub(super) landed: Vec<Option<u64>>,
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
    let stall = ctx.config.stall_timeout.0;
    let layout = *encoder.layout();
    let (seg_tx, seg_rx) = mpsc::channel::<AlignedBuf>(depth);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<AlignedBuf>();
    let reader = read_body(body, layout, cap, len, hasher, seg_tx, back_rx);

    let (landed, sealed_lens, hasher) = if !compressed {
        let flen = FragmentLayout::uncompressed(&params, &layout).fragment_len();
        refs.iter_mut().for_each(|r| r.len = flen);
        let mut sinks = Sinks::start(ctx, &refs, headers, depth);
        let coder = async {
            // Owned here, so that the reader sees the channel close if coding stops.
            let (mut encoder, mut seg_rx, back_tx) = (encoder, seg_rx, back_tx);
            while let Some(seg) = seg_rx.recv().await {
                let (enc, encoded) = encode_segment(encoder, seg, ctx.buffers.take()).await?;
                encoder = enc;
                let (records, ranges, sealed) = encoded?.into_records();
                let _ = back_tx.send(sealed);
                sinks.send_all(ctx.buffers.share(records, &ranges), stall).await;
                if sinks.alive() < quorum {
                    return Err(PipelineError::WriteQuorum { needed: quorum, landed: sinks.alive() });
                }
            }
            Ok::<(), PipelineError>(())
        };
        let (read, coded) = tokio::join!(reader, coder);
        let hasher = read?;
        coded?;
        (sinks.finish().await, None, hasher)
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
        let mut sinks = Sinks::start(ctx, &refs, headers, segments + 1);
        let mut per_fragment: Vec<std::vec::IntoIter<Bytes>> = per_fragment.into_iter().map(Vec::into_iter).collect();
        for _ in 0..segments {
            let slices: Vec<Bytes> = per_fragment.iter_mut().map(|it| it.next().unwrap_or_default()).collect();
            sinks.send_all(slices, stall).await;
        }
        (sinks.finish().await, Some(lens), hasher)
    };
    let hashes = hasher.finish().await?;
    Ok(Written { landed, sealed_lens, hashes })
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

/// The `n` fragment uploads of one seal: a channel feeding each.
struct Sinks {
    senders: Vec<Option<mpsc::Sender<Bytes>>>,
    uploads: Vec<tokio::task::JoinHandle<Option<u64>>>,
}

impl Sinks {
    /// Starts one upload per fragment, each fed its header first.
    fn start(ctx: &PipelineCtx, refs: &[FragmentRef], headers: Vec<Bytes>, depth: usize) -> Self {
        let mut senders = Vec::with_capacity(refs.len());
        let mut uploads = Vec::with_capacity(refs.len());
        for (at, header) in refs.iter().zip(headers) {
            let (tx, rx) = mpsc::channel::<Bytes>(depth.max(1) + 1);
            // The header always fits: the channel is fresh.
            let _ = tx.try_send(header);
            let (store, at) = (ctx.store.clone(), at.clone());
            uploads.push(tokio::spawn(async move {
                let body = ReceiverStream::new(rx).map(Ok::<Bytes, std::io::Error>).boxed();
                match store.put(&at, body).await {
                    Ok(()) => {
                        debug!(location = %at.location, bytes = at.len, "fragment stored");
                        Some(at.len)
                    }
                    Err(e) => {
                        warn!(location = %at.location, error = %e, "fragment upload failed");
                        None
                    }
                }
            }));
            senders.push(Some(tx));
        }
        Self { senders, uploads }
    }

    /// Uploads not given up on. (A channel may be closed because its upload already
    /// finished with the last record: that is not a failure, so closure is not
    /// counted here; a failed upload shows when a send to it fails.)
    fn alive(&self) -> usize {
        self.senders.iter().filter(|s| s.is_some()).count()
    }

    /// Sends fragment `i` its slice; a location that cannot take it within `stall`
    /// is given up on (its upload then fails short of its length).
    async fn send_all(&mut self, slices: Vec<Bytes>, stall: Duration) {
        let sends = self.senders.iter().zip(slices).map(|(tx, b)| {
            let tx = tx.clone();
            async move {
                match tx {
                    Some(tx) => tokio::time::timeout(stall, tx.send(b)).await.is_ok_and(|r| r.is_ok()),
                    None => false,
                }
            }
        });
        let sent = futures::future::join_all(sends).await;
        for (i, (s, ok)) in self.senders.iter_mut().zip(sent).enumerate() {
            if !ok && s.is_some() {
                warn!(fragment = i, "fragment upload gave up: its location stopped taking data");
                *s = None;
            }
        }
    }

    /// Closes every channel and waits for the uploads: the bytes each stored, or
    /// `None` for each that failed or was given up on.
    async fn finish(self) -> Vec<Option<u64>> {
        let Sinks { senders, uploads } = self;
        let alive: Vec<bool> = senders.iter().map(Option::is_some).collect();
        drop(senders);
        let mut out = Vec::with_capacity(uploads.len());
        for (h, alive) in uploads.into_iter().zip(alive) {
            if alive {
                out.push(h.await.ok().flatten());
            } else {
                // Given up on: it may still be waiting on its location.
                h.abort();
                out.push(None);
            }
        }
        out
    }
}

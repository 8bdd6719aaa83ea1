//! Writing one seal: a single-part object, or one part of a multipart upload.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codec::fragment::FragmentLayout;
use codec::object::{EncodedSegment, Segmenter, segment_buffer_capacity};
use codec::{ObjectEncoder, VersionId};
use futures::{Stream, StreamExt};
use offload::AlignedBuf;
use offload::aead::DataKey;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::checksum::{ChecksumAlgorithm, HashResult, Hashes, spawn_hasher};
use super::{PipelineError, ReceiverStream, cached};
use crate::backend::Method;
use crate::config::Policy;
use crate::meta::{FragmentRow, FragmentState, MetaStore, SealRow, SealState, now_ms};
use crate::state::Gateway;

/// A stored seal, not yet referenced by any version.
#[derive(Debug, Clone)]
pub struct StoredSeal {
    /// The seal id.
    pub seal_id: String,
    /// Plaintext bytes.
    pub size: u64,
    /// ETag and checksum of the plaintext.
    pub hashes: HashResult,
    /// Fragments that landed.
    pub stored: usize,
}

/// Marks a pending seal as garbage unless the write completed — also when the request
/// future is dropped halfway (the client went away).
struct DiscardOnDrop {
    meta: Option<MetaStore>,
    seal_id: String,
}

impl DiscardOnDrop {
    fn disarm(mut self) {
        self.meta = None;
    }
}

impl Drop for DiscardOnDrop {
    fn drop(&mut self) {
        if let Some(meta) = self.meta.take() {
            let id = std::mem::take(&mut self.seal_id);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = meta.discard_seal(&id).await {
                        warn!(seal = %id, error = %e, "could not mark an abandoned write as garbage; the collector will find it");
                    }
                });
            }
        }
    }
}

/// Streams `body` (exactly `len` bytes) into a new seal placed by `policy`.
pub async fn put_seal<S>(
    gw: &Arc<Gateway>,
    policy: &Policy,
    len: u64,
    checksum: Option<ChecksumAlgorithm>,
    body: S,
) -> Result<StoredSeal, PipelineError>
where
    S: Stream<Item = Result<Bytes, String>> + Send + Unpin,
{
    let r = put_seal_inner(gw, policy, len, checksum, body).await;
    if let Err(PipelineError::WriteQuorum { .. }) = &r {
        gw.quorum_failures.write.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    r
}

async fn put_seal_inner<S>(
    gw: &Arc<Gateway>,
    policy: &Policy,
    len: u64,
    checksum: Option<ChecksumAlgorithm>,
    body: S,
) -> Result<StoredSeal, PipelineError>
where
    S: Stream<Item = Result<Bytes, String>> + Send + Unpin,
{
    let _permit = gw.transfers.acquire().await.map_err(|e| PipelineError::Task(e.to_string()))?;
    let random = gw.offload.random.clone();
    let seal = VersionId::generate(random.as_ref())?;
    let seal_hex = seal.to_hex();
    let key = DataKey::generate(random.as_ref())?;
    let wrapped = gw.master.wrap(&key, &seal, random.as_ref())?;
    let params = policy.params;
    let (k, n) = (usize::from(params.k()), usize::from(params.n()));
    let matrix = gw.matrices.get(params.k(), params.n(), &gw.offload)?;
    let compression = policy.compression.filter(|_| len <= gw.settings.pipeline.compress_max_object.0);
    // Only locations taking new fragments (not draining, drained or removed).
    let catalog = gw.catalog.view();
    let places = gw.placement.place(&catalog.writable(policy), &seal.0, &catalog.locations, &gw.health)?;
    let names: Vec<String> = (0..n).map(|i| format!("{seal_hex}/{i}")).collect();

    let encoder = ObjectEncoder::new(&gw.offload, params, compression, seal, &key, matrix, len)?;
    drop(key);
    let row = SealRow {
        id: seal_hex.clone(),
        state: SealState::Pending,
        size: len as i64,
        k: k as i64,
        n: n as i64,
        segment_size: i64::from(params.segment_size()),
        compression: compression.map(|a| format!("{a:?}").to_lowercase()),
        sealed_lens: None,
        wrapped_key: wrapped.0.to_vec(),
        created_at: now_ms(),
    };
    let fragments: Vec<FragmentRow> = (0..n)
        .map(|i| FragmentRow {
            idx: i as i64,
            location: places[i].clone(),
            object_name: names[i].clone(),
            size: 0,
            state: FragmentState::Pending,
        })
        .collect();
    gw.meta.insert_pending_seal(&row, &fragments, gw.node.id()).await?;
    let guard = DiscardOnDrop { meta: Some(gw.meta.clone()), seal_id: seal_hex.clone() };

    let hashes = Hashes::new(gw.settings.etag, checksum, gw.offload.crc32c.clone(), &gw.hashes);
    let (hash_tx, hash_job) = spawn_hasher(hashes);
    let headers: Vec<Bytes> = (0..n).map(|i| Bytes::copy_from_slice(&encoder.header(i as u8))).collect();
    let cap = segment_buffer_capacity(&params);
    let depth = gw.settings.pipeline.depth;

    let (results, sealed_lens) = if compression.is_none() {
        let flen = FragmentLayout::uncompressed(&params, encoder.layout()).fragment_len();
        let mut sinks = Sinks::start(gw, &places, &names, vec![flen; n], headers, depth)?;
        let quorum = usize::from(policy.write_quorum);
        let (seg_tx, seg_rx) = mpsc::channel::<AlignedBuf>(depth);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<AlignedBuf>();
        let reader = read_body(body, *encoder.layout(), cap, len, hash_tx, seg_tx, back_rx);
        let coder = async {
            // Owned here, so that the reader sees the channel close if coding stops.
            let mut encoder = encoder;
            let mut seg_rx = seg_rx;
            let back_tx = back_tx;
            while let Some(seg) = seg_rx.recv().await {
                let out = gw.buffers.take();
                let (enc, encoded) = tokio::task::spawn_blocking(move || {
                    let r = encode(&mut encoder, seg, out);
                    (encoder, r)
                })
                .await?;
                encoder = enc;
                let (records, ranges, sealed) = encoded?.into_records();
                let _ = back_tx.send(sealed);
                let slices = gw.buffers.share(records, &ranges);
                sinks.send_all(slices, gw.settings.pipeline.stall_timeout.0).await;
                if sinks.alive() < quorum {
                    return Err(PipelineError::WriteQuorum { needed: quorum, landed: sinks.alive() });
                }
            }
            Ok::<(), PipelineError>(())
        };
        let (read, coded) = tokio::join!(reader, coder);
        read?;
        coded?;
        (sinks.finish().await, None)
    } else {
        // Compressed fragments' sizes are known only at the end: build them in memory
        // (bounded by `compress_max_object`), then upload.
        let (seg_tx, seg_rx) = mpsc::channel::<AlignedBuf>(depth);
        let (_back_tx, back_rx) = std::sync::mpsc::channel::<AlignedBuf>();
        let reader = read_body(body, *encoder.layout(), cap, len, hash_tx, seg_tx, back_rx);
        let coder = async {
            let mut encoder = encoder;
            let mut seg_rx = seg_rx;
            let mut per_fragment: Vec<Vec<Bytes>> = vec![Vec::new(); n];
            let mut lens = Vec::new();
            while let Some(seg) = seg_rx.recv().await {
                let (enc, encoded) = tokio::task::spawn_blocking(move || {
                    let r = encode(&mut encoder, seg, AlignedBuf::new());
                    (encoder, r)
                })
                .await?;
                encoder = enc;
                let e = encoded?;
                lens.push(e.sealed_len());
                let (records, ranges, _) = e.into_records();
                for (f, b) in per_fragment.iter_mut().zip(gw.buffers.share(records, &ranges)) {
                    f.push(b);
                }
            }
            Ok::<_, PipelineError>((per_fragment, lens))
        };
        let (read, coded) = tokio::join!(reader, coder);
        read?;
        let (per_fragment, lens) = coded?;
        let layout = FragmentLayout::from_sealed_lens(params.k(), lens.iter().copied());
        let flen = layout.fragment_len();
        let mut sinks =
            Sinks::start(gw, &places, &names, vec![flen; n], headers, per_fragment.first().map_or(1, Vec::len) + 1)?;
        let segments = per_fragment.first().map_or(0, Vec::len);
        let mut per_fragment: Vec<std::vec::IntoIter<Bytes>> = per_fragment.into_iter().map(Vec::into_iter).collect();
        for _ in 0..segments {
            let slices: Vec<Bytes> = per_fragment.iter_mut().map(|it| it.next().unwrap_or_default()).collect();
            sinks.send_all(slices, gw.settings.pipeline.stall_timeout.0).await;
        }
        let lens_bytes: Vec<u8> = lens.iter().flat_map(|l| l.to_le_bytes()).collect();
        (sinks.finish().await, Some(lens_bytes))
    };
    let hashes = hash_job.await?;

    let stored: Vec<(i64, i64)> =
        results.iter().enumerate().filter_map(|(i, r)| r.map(|len| (i as i64, len as i64))).collect();
    let missing: Vec<i64> = results.iter().enumerate().filter(|(_, r)| r.is_none()).map(|(i, _)| i as i64).collect();
    for (i, r) in results.iter().enumerate() {
        match r {
            Some(_) => gw.health.succeeded(&places[i]),
            None => gw.health.failed(&places[i]),
        }
    }
    let quorum = usize::from(policy.write_quorum);
    if stored.len() < quorum {
        return Err(PipelineError::WriteQuorum { needed: quorum, landed: stored.len() });
    }
    gw.meta.finish_seal(&seal_hex, &stored, &missing, sealed_lens.as_deref()).await?;
    debug!(seal = %seal_hex, bytes = len, stored = stored.len(), "seal written");
    guard.disarm();
    Ok(StoredSeal { seal_id: seal_hex, size: len, hashes, stored: stored.len() })
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

/// Reads the client's body into segments, hashing every chunk on the side.
async fn read_body<S>(
    mut body: S,
    layout: codec::SegmentLayout,
    cap: usize,
    len: u64,
    hash_tx: mpsc::Sender<Bytes>,
    seg_tx: mpsc::Sender<AlignedBuf>,
    back_rx: std::sync::mpsc::Receiver<AlignedBuf>,
) -> Result<(), PipelineError>
where
    S: Stream<Item = Result<Bytes, String>> + Send + Unpin,
{
    let mut segmenter = Segmenter::new(layout, cap);
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(PipelineError::Body)?;
        got += chunk.len() as u64;
        if got > len {
            return Err(PipelineError::BodyLength { expected: len, got });
        }
        // The hasher keeps up or the body waits: hashing bounds memory too.
        if hash_tx.send(chunk.clone()).await.is_err() {
            return Err(PipelineError::Task("hasher stopped".into()));
        }
        while let Ok(b) = back_rx.try_recv() {
            segmenter.recycle(b);
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            if let Some(seg) = segmenter.push(&mut rest)?
                && seg_tx.send(seg).await.is_err()
            {
                // The coder stopped (not enough locations): its error explains.
                return Ok(());
            }
        }
    }
    if got != len {
        return Err(PipelineError::BodyLength { expected: len, got });
    }
    if let Some(seg) = segmenter.finish()? {
        let _ = seg_tx.send(seg).await;
    }
    Ok(())
}

/// The `n` fragment uploads of one seal: a channel feeding each presigned PUT.
struct Sinks {
    senders: Vec<Option<mpsc::Sender<Bytes>>>,
    uploads: Vec<tokio::task::JoinHandle<Option<u64>>>,
    /// Cache fills (write-through), one per fragment; dropped if the cache stops.
    fills: Vec<Option<mpsc::Sender<Bytes>>>,
}

impl Sinks {
    fn start(
        gw: &Arc<Gateway>,
        places: &[String],
        names: &[String],
        lens: Vec<u64>,
        headers: Vec<Bytes>,
        depth: usize,
    ) -> Result<Self, PipelineError> {
        let ttl = gw.settings.pipeline.presign_ttl.0;
        let mut senders = Vec::with_capacity(places.len());
        let mut uploads = Vec::with_capacity(places.len());
        let mut fills = Vec::with_capacity(places.len());
        for (i, header) in headers.into_iter().enumerate() {
            let url = gw.presigner.presign(&places[i], Method::Put, &names[i], ttl)?;
            let (tx, rx) = mpsc::channel::<Bytes>(depth.max(1) + 1);
            // The header always fits: the channel is fresh.
            let _ = tx.try_send(header.clone());
            let transfer = gw.transfer.clone();
            let len = lens[i];
            let location = places[i].clone();
            // Write-through: the fragment also goes into the cache (fed by
            // `send_all`), kept only if the location stored it.
            let (fill, commit) = match &gw.cache {
                Some(cache) if gw.settings.cache.write_through => {
                    let (fill, commit) = cached::fill(cache, &names[i], len);
                    let _ = fill.try_send(header.clone());
                    (Some(fill), Some(commit))
                }
                _ => (None, None),
            };
            fills.push(fill);
            uploads.push(tokio::spawn(async move {
                let body = ReceiverStream::new(rx).map(Ok::<Bytes, std::io::Error>);
                match transfer.put(&location, url, len, body).await {
                    Ok(()) => {
                        debug!(location = %location, bytes = len, "fragment stored");
                        if let Some(c) = commit {
                            let _ = c.send(true);
                        }
                        Some(len)
                    }
                    Err(e) => {
                        warn!(location = %location, error = %e, "fragment upload failed");
                        None
                    }
                }
            }));
            senders.push(Some(tx));
        }
        Ok(Self { senders, uploads, fills })
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
        let sends = self.senders.iter().zip(&self.fills).zip(slices).map(|((tx, fill), b)| {
            let (tx, fill) = (tx.clone(), fill.clone());
            async move {
                let cached = match &fill {
                    Some(f) => f.send(b.clone()).await.is_ok(),
                    None => false,
                };
                let sent = match tx {
                    Some(tx) => tokio::time::timeout(stall, tx.send(b)).await.is_ok_and(|r| r.is_ok()),
                    None => false,
                };
                (sent, cached)
            }
        });
        let results = futures::future::join_all(sends).await;
        for (fill, (_, cached)) in self.fills.iter_mut().zip(&results) {
            if !cached {
                *fill = None;
            }
        }
        let ok = results.into_iter().map(|(sent, _)| sent);
        for (i, (s, ok)) in self.senders.iter_mut().zip(ok).enumerate() {
            if !ok && s.is_some() {
                warn!(fragment = i, "fragment upload gave up: its location stopped taking data");
                *s = None;
            }
        }
    }

    /// Closes every channel and waits for the uploads: the bytes each stored, or
    /// `None` for each that failed.
    async fn finish(self) -> Vec<Option<u64>> {
        let Sinks { senders, uploads, fills } = self;
        drop(fills);
        let alive: Vec<bool> = senders.iter().map(Option::is_some).collect();
        drop(senders);
        let mut out = Vec::with_capacity(uploads.len());
        for (h, alive) in uploads.into_iter().zip(alive) {
            let r = h.await.ok().flatten();
            out.push(if alive { r } else { None });
        }
        out
    }
}

//! Reading objects back: for each part, `k` fragments streamed through presigned
//! range GETs (only the records of the segments asked for), decoded segment by
//! segment. A fragment that fails — unreachable, missing, truncated, corrupt — is
//! replaced by another from the segment where it failed; a segment that does not
//! authenticate is retried with a spare fragment so that a forged one is outvoted.
//! Bytes that did not authenticate are never returned.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use codec::fragment::{FragmentHeader, FragmentLayout, HEADER_LEN};
use codec::{CodecError, CodingParams, ObjectDecoder, SegmentLayout, VersionId, WrappedKey};
use futures::StreamExt;
use futures::stream::BoxStream;
use offload::AlignedBuf;
use tokio::sync::mpsc;
use tracing::warn;

use super::PipelineError;
pub use super::ReceiverStream;
use super::cached;
use crate::backend::Method;
use crate::backend::transfer::TransferError;
use crate::meta::{FragmentRow, FragmentState, PartRow, SealRow};
use crate::state::Gateway;

/// Parses a seal row's compression name.
fn compression(seal: &SealRow) -> Result<bool, PipelineError> {
    match seal.compression.as_deref() {
        None => Ok(false),
        Some("zstd" | "lz4") => Ok(true),
        Some(other) => Err(PipelineError::Meta(crate::meta::MetaError::Corrupt(format!("compression {other:?}")))),
    }
}

/// The byte layout of a seal's fragments.
pub(crate) fn fragment_layout(
    seal: &SealRow,
    params: &CodingParams,
    segs: &SegmentLayout,
) -> Result<FragmentLayout, PipelineError> {
    if !compression(seal)? {
        return Ok(FragmentLayout::uncompressed(params, segs));
    }
    let lens = seal.sealed_lens.as_deref().ok_or_else(|| {
        PipelineError::Meta(crate::meta::MetaError::Corrupt(format!("seal {} lacks segment lengths", seal.id)))
    })?;
    Ok(FragmentLayout::from_sealed_lens(
        params.k(),
        lens.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    ))
}

/// One fragment being read: a range GET split into records.
pub(crate) struct FragReader {
    frag: usize,
    stream: BoxStream<'static, Result<Bytes, TransferError>>,
    buf: BytesMut,
}

impl FragReader {
    /// A reader of fragment `frag` over `stream`.
    pub(crate) fn new(frag: usize, stream: BoxStream<'static, Result<Bytes, TransferError>>) -> Self {
        Self { frag, stream, buf: BytesMut::new() }
    }

    /// The fragment's index.
    pub(crate) fn frag(&self) -> usize {
        self.frag
    }

    /// The next `len` bytes.
    pub(crate) async fn next_record(&mut self, len: usize) -> Result<Bytes, TransferError> {
        while self.buf.len() < len {
            match self.stream.next().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                Some(Err(e)) => return Err(e),
                None => return Err(TransferError::Unavailable("fragment ended early".into())),
            }
        }
        Ok(self.buf.split_to(len).freeze())
    }
}

/// Opens a range GET of fragment records `range`. A read from the first record
/// also fetches the header before it and checks that it names the expected
/// version, index and coding parameters: a misplaced or foreign object is caught
/// before any record is decoded. (It also avoids a reopen-and-seek on stores
/// such as rclone's, which answer an offset range ~20 ms slower than one from 0.)
async fn open_fragment(
    gw: &Gateway,
    frag: usize,
    (location, name): (&str, &str),
    url: url::Url,
    (range, whole): (Range<u64>, u64),
    (version, index, params): (VersionId, u8, CodingParams),
) -> (usize, Result<FragReader, TransferError>) {
    let with_header = range.start == HEADER_LEN as u64;
    let ask = if with_header { 0..range.end } else { range };
    let r = async {
        let stream = fragment_stream(gw, location, name, url, ask, whole).await?;
        let mut reader = FragReader { frag, stream, buf: BytesMut::new() };
        if with_header {
            let bytes = reader.next_record(HEADER_LEN).await?;
            let h = FragmentHeader::parse(&bytes, gw.offload.crc32c.as_ref())
                .map_err(|e| TransferError::Protocol(format!("fragment header: {e}")))?;
            if h.version != version || h.index != index || h.k != params.k() || h.n != params.n() {
                return Err(TransferError::Protocol("fragment header names another object or index".into()));
            }
        }
        Ok(reader)
    };
    (frag, r.await)
}

/// Bytes `ask` of a fragment `whole` bytes long: from the cache when it holds the
/// fragment (the location takes over if a cached block fails its check), else from
/// the location — filling the cache when the read covers the whole fragment.
async fn fragment_stream(
    gw: &Gateway,
    location: &str,
    name: &str,
    url: url::Url,
    ask: Range<u64>,
    whole: u64,
) -> Result<cached::FragmentStream, TransferError> {
    let Some(cache) = &gw.cache else { return gw.transfer.get(location, url, Some(ask)).await };
    if cache.lookup(name).is_some_and(|len| len == whole) {
        let (transfer, location) = (gw.transfer.clone(), location.to_string());
        let c = cache.clone();
        let fallback: cached::Fallback = Box::new(move |rest| {
            Box::pin(async move { transfer.get(&location, url, Some(rest)).await.map(|s| cached::count_remote(&c, s)) })
        });
        return Ok(cached::read(cache.clone(), name.to_string(), ask, fallback));
    }
    let covers_whole = ask.start == 0 && ask.end == whole;
    let stream = cached::count_remote(cache, gw.transfer.get(location, url, Some(ask)).await?);
    Ok(if covers_whole && gw.settings.cache.fill_on_read {
        cached::read_through(cache, name, whole, stream)
    } else {
        stream
    })
}

/// Reads segments `first..=last` of one seal.
struct PartReader {
    gw: Arc<Gateway>,
    seal_id: String,
    frags: Vec<FragmentRow>,
    layout: FragmentLayout,
    decoder: Option<ObjectDecoder>,
    version: VersionId,
    params: CodingParams,
    k: usize,
    next: u64,
    last: u64,
    readers: Vec<FragReader>,
    unused: Vec<usize>,
    spares: usize,
}

impl PartReader {
    fn open(gw: Arc<Gateway>, step: Step) -> Result<Self, PipelineError> {
        let Step { seal, frags, first, last, .. } = step;
        let k = u8::try_from(seal.k).map_err(|_| PipelineError::Task("k out of range".into()))?;
        let n = u8::try_from(seal.n).map_err(|_| PipelineError::Task("n out of range".into()))?;
        let segment_size = u32::try_from(seal.segment_size).map_err(|_| PipelineError::Task("segment size".into()))?;
        let params = CodingParams::new(k, n, segment_size)?;
        let version = VersionId::from_hex(&seal.id)
            .ok_or_else(|| PipelineError::Meta(crate::meta::MetaError::Corrupt(format!("seal id {}", seal.id))))?;
        let key = gw.master.unwrap_key(&WrappedKey::from_bytes(&seal.wrapped_key)?, &version)?;
        let decoder = ObjectDecoder::new(&gw.offload, params, version, &key, seal.size as u64)?;
        let layout = fragment_layout(&seal, &params, decoder.layout())?;
        // Stored fragments only: cached first, then healthiest locations, then by index.
        let mut order: Vec<usize> = (0..frags.len()).filter(|&i| frags[i].state == FragmentState::Stored).collect();
        let cached = |i: usize| gw.cache.as_ref().is_some_and(|c| c.contains(&frags[i].object_name));
        order.sort_by_key(|&i| (!cached(i), gw.health.failures(&frags[i].location), frags[i].idx));
        order.reverse(); // popped from the back
        Ok(Self {
            gw,
            seal_id: seal.id,
            frags,
            layout,
            decoder: Some(decoder),
            version,
            params,
            k: usize::from(k),
            next: first,
            last,
            readers: Vec::new(),
            unused: order,
            spares: 0,
        })
    }

    /// Starts readers until `k + spares` are active (from segment `self.next`),
    /// opening them concurrently.
    async fn fill(&mut self) -> Result<(), PipelineError> {
        loop {
            let want = (self.k + self.spares).saturating_sub(self.readers.len()).min(self.unused.len());
            if want == 0 {
                return Ok(());
            }
            let range = self.layout.records_range(self.next, self.last);
            let mut opens = Vec::with_capacity(want);
            for _ in 0..want {
                let frag = self.unused.pop().expect("counted above");
                let f = &self.frags[frag];
                let url = self.gw.presigner.presign(
                    &f.location,
                    Method::Get,
                    &f.object_name,
                    self.gw.settings.pipeline.presign_ttl.0,
                )?;
                let expect = (self.version, u8::try_from(f.idx).unwrap_or(u8::MAX), self.params);
                let whole = self.layout.fragment_len();
                let at = (f.location.as_str(), f.object_name.as_str());
                opens.push(open_fragment(&self.gw, frag, at, url, (range.clone(), whole), expect));
            }
            for (frag, r) in futures::future::join_all(opens).await {
                match r {
                    Ok(reader) => self.readers.push(reader),
                    Err(e) => self.fragment_failed(frag, &e).await,
                }
            }
        }
    }

    async fn fragment_failed(&mut self, frag: usize, e: &TransferError) {
        fragment_failed(&self.gw, &self.seal_id, &self.frags[frag], e).await;
    }

    /// The next segment's plaintext, or `None` after the last.
    async fn next_segment(&mut self) -> Result<Option<AlignedBuf>, PipelineError> {
        let r = self.next_segment_inner().await;
        if let Err(PipelineError::ReadQuorum { .. } | PipelineError::Corrupt { .. }) = &r {
            self.gw.quorum_failures.read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    async fn next_segment_inner(&mut self) -> Result<Option<AlignedBuf>, PipelineError> {
        if self.next > self.last {
            return Ok(None);
        }
        let s = self.next;
        let len = (self.layout.record_range(s).end - self.layout.record_range(s).start) as usize;
        let mut got: BTreeMap<usize, Bytes> = BTreeMap::new();
        loop {
            self.fill().await?;
            let want: Vec<usize> =
                (0..self.readers.len()).filter(|&i| !got.contains_key(&self.readers[i].frag)).collect();
            let reads = futures::future::join_all(
                self.readers.iter_mut().enumerate().filter(|(i, _)| want.contains(i)).map(|(_, r)| {
                    let frag = r.frag;
                    async move { (frag, r.next_record(len).await) }
                }),
            )
            .await;
            let mut dead = Vec::new();
            for (frag, r) in reads {
                match r {
                    Ok(rec) => {
                        got.insert(frag, rec);
                    }
                    Err(e) => {
                        self.fragment_failed(frag, &e).await;
                        dead.push(frag);
                    }
                }
            }
            self.readers.retain(|r| !dead.contains(&r.frag));
            if got.len() < self.k {
                if self.unused.is_empty() {
                    return Err(PipelineError::ReadQuorum { segment: s, usable: got.len(), needed: self.k });
                }
                continue;
            }
            // Decode off the async threads.
            let records: Vec<(u8, Bytes)> =
                got.iter().map(|(&frag, b)| (self.frags[frag].idx as u8, b.clone())).collect();
            let mut decoder = self.decoder.take().ok_or_else(|| PipelineError::Task("decoder lost".into()))?;
            let out = self.gw.buffers.take();
            let (decoder, result) = tokio::task::spawn_blocking(move || {
                let refs: Vec<(u8, &[u8])> = records.iter().map(|(i, b)| (*i, &b[..])).collect();
                let r = decoder.decode_segment(s, &refs, out);
                (decoder, r)
            })
            .await?;
            self.decoder = Some(decoder);
            match result {
                Ok(seg) => {
                    for (idx, why) in &seg.rejected {
                        warn!(seal = %self.seal_id, fragment = idx, reason = %why, "fragment record rejected");
                        self.drop_fragment_idx(i64::from(*idx));
                    }
                    self.next += 1;
                    return Ok(Some(seg.data));
                }
                Err(CodecError::Insufficient { rejected, .. }) => {
                    // Corrupt records: drop their readers; replacements read segment s.
                    for (idx, why) in rejected {
                        warn!(seal = %self.seal_id, fragment = idx, reason = %why, "fragment record rejected");
                        let frag = self.drop_fragment_idx(i64::from(idx));
                        if let Some(f) = frag {
                            got.remove(&f);
                        }
                    }
                    if self.unused.is_empty() && self.readers.len() < self.k {
                        return Err(PipelineError::ReadQuorum {
                            segment: s,
                            usable: self.readers.len(),
                            needed: self.k,
                        });
                    }
                }
                Err(CodecError::Authentication { .. }) => {
                    // A forged record outvotes nothing once there is a spare.
                    if self.unused.is_empty() {
                        return Err(PipelineError::Corrupt { segment: s });
                    }
                    self.spares += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn drop_fragment_idx(&mut self, idx: i64) -> Option<usize> {
        let frag = self.frags.iter().position(|f| f.idx == idx)?;
        self.gw.health.failed(&self.frags[frag].location);
        self.readers.retain(|r| r.frag != frag);
        Some(frag)
    }
}

/// Notes a fragment that could not be read: its location's health, and its state
/// when the location no longer has it.
async fn fragment_failed(gw: &Gateway, seal_id: &str, f: &FragmentRow, e: &TransferError) {
    warn!(seal = %seal_id, fragment = f.idx, location = %f.location, error = %e, "fragment unreadable");
    gw.health.failed(&f.location);
    if matches!(e, TransferError::NotFound) {
        let _ = gw.meta.set_fragment_state(seal_id, f.idx, FragmentState::Missing).await;
    }
}

/// The reading of one part: its seal and fragments, its first and last segment,
/// and the bytes of those segments to keep (offset into the first, total count).
#[derive(Debug, Clone)]
struct Step {
    seal: SealRow,
    frags: Vec<FragmentRow>,
    first: u64,
    last: u64,
    skip: usize,
    take: u64,
}

/// A plan for reading bytes `range` of an object made of `parts`.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    steps: Vec<Step>,
}

impl ReadPlan {
    /// Plans reading `range` (object offsets, end exclusive) of an object whose parts
    /// have `segment_size`s as recorded in their seals.
    pub async fn new(gw: &Gateway, parts: &[PartRow], range: Range<u64>) -> Result<Self, PipelineError> {
        let mut steps = Vec::new();
        for p in parts {
            let (start, end) = (p.offset as u64, (p.offset + p.size) as u64);
            let (a, b) = (range.start.max(start), range.end.min(end));
            if a >= b {
                continue;
            }
            let (seal, frags) = gw.meta.seal(&p.seal_id).await?.ok_or_else(|| {
                PipelineError::Meta(crate::meta::MetaError::Corrupt(format!(
                    "version refers to missing seal {}",
                    p.seal_id
                )))
            })?;
            let segs = SegmentLayout::new(p.size as u64, seal.segment_size as u32);
            let (la, lb) = (a - start, b - start);
            let span = segs.segments_for(la, lb - 1);
            let skip = (la - segs.offset(*span.start())) as usize;
            steps.push(Step { seal, frags, first: *span.start(), last: *span.end(), skip, take: lb - la });
        }
        Ok(Self { steps })
    }

    /// Reads the first segment now (so that an unreadable object is an error before
    /// any response is sent), then streams the rest from a task. The stream ends
    /// with an error if a later segment cannot be read; the client then sees a
    /// truncated body, never wrong bytes.
    pub async fn start(self, gw: Arc<Gateway>) -> Result<ReceiverStream<Result<Bytes, std::io::Error>>, PipelineError> {
        let mut steps = self.steps.into_iter();
        let Some(step) = steps.next() else {
            let (_, rx) = mpsc::channel(1);
            return Ok(ReceiverStream::new(rx));
        };
        let permit = gw.transfers.clone().acquire_owned().await.map_err(|e| PipelineError::Task(e.to_string()))?;
        let (skip, take) = (step.skip, step.take);
        let mut reader = PartReader::open(gw.clone(), step)?;
        let head = reader.next_segment().await?;
        let depth = gw.settings.pipeline.depth;
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(depth);
        tokio::spawn(async move {
            let _permit = permit;
            let mut current = Some((reader, head, skip, take));
            loop {
                let Some((mut reader, mut pending, mut skip, mut left)) = current.take() else { break };
                loop {
                    let seg = match pending.take() {
                        Some(seg) => seg,
                        None => match reader.next_segment().await {
                            Ok(Some(seg)) => seg,
                            Ok(None) => break,
                            Err(e) => {
                                warn!(error = %e, "read failed mid-stream");
                                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                                return;
                            }
                        },
                    };
                    let lo = skip.min(seg.len());
                    let hi = (lo as u64 + left).min(seg.len() as u64) as usize;
                    skip = 0;
                    left -= (hi - lo) as u64;
                    let bytes = gw.buffers.share_one(seg, lo..hi);
                    if !bytes.is_empty() && tx.send(Ok(bytes)).await.is_err() {
                        return; // the client went away
                    }
                    if left == 0 {
                        break;
                    }
                }
                if let Some(step) = steps.next() {
                    let (skip, take) = (step.skip, step.take);
                    match PartReader::open(gw.clone(), step) {
                        Ok(r) => current = Some((r, None, skip, take)),
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}

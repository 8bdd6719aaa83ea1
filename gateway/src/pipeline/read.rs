//! Reading one seal: `k` fragments streamed by range (only the records of the
//! segments asked for), decoded segment by segment. A fragment that fails —
//! unreachable, missing, truncated, corrupt — is replaced by another from the
//! segment where it failed; a segment that does not authenticate is retried with a
//! spare fragment so that a forged one is outvoted. Bytes that did not authenticate
//! are never returned.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use codec::fragment::{FragmentHeader, FragmentLayout, HEADER_LEN};
use codec::{CodecError, ObjectDecoder, SegmentLayout};
use futures::StreamExt;
use offload::AlignedBuf;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use super::{PipelineCtx, PipelineError};
use crate::backend::{FragmentRef, FragmentStream, TransferError};
use crate::config::ReadOrder;
use crate::meta::{Compression, Fragment, FragmentState, MetaError, PackMember, Seal};
use crate::placement::Health;

/// The byte layout of a seal's fragments.
pub fn fragment_layout(seal: &Seal) -> Result<FragmentLayout, PipelineError> {
    let segs = SegmentLayout::new(seal.size, seal.params.segment_size());
    if seal.compression == Compression::None && seal.slots == 0 {
        return Ok(FragmentLayout::uncompressed(&seal.params, &segs));
    }
    // A pack's segments are its members, each as long as its sealed length.
    let count = if seal.slots > 0 { u64::from(seal.slots) } else { segs.count() };
    let lens = seal.sealed_lens.as_ref().ok_or_else(|| {
        PipelineError::Meta(MetaError::Corrupt(format!("seal {} lacks its segment lengths", seal.id)))
    })?;
    if lens.len() as u64 != count {
        return Err(PipelineError::Meta(MetaError::Corrupt(format!("seal {}: segment lengths", seal.id))));
    }
    Ok(FragmentLayout::from_sealed_lens(seal.params.k(), lens.iter().copied()))
}

/// The reference to fragment `f` of a seal whose fragments are `len` bytes long.
pub fn fragment_ref(f: &Fragment, len: u64, tenant: Option<u32>) -> FragmentRef {
    FragmentRef { location: f.location.clone(), name: f.name.clone(), len, tenant }
}

/// Why a fragment could not be used.
#[derive(Debug)]
pub(crate) enum ReadFault {
    /// The location did not deliver it: down, refused, or not there
    /// ([`TransferError::NotFound`]).
    Transfer(TransferError),
    /// What came is not the fragment: a header naming another object, index or
    /// code, or bytes that fail their check.
    Corrupt(String),
}

impl std::fmt::Display for ReadFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFault::Transfer(e) => e.fmt(f),
            ReadFault::Corrupt(why) => write!(f, "corrupt: {why}"),
        }
    }
}

/// One fragment being read: a range read split into records.
pub(crate) struct FragReader {
    index: u8,
    stream: FragmentStream,
    /// The record being put together from pieces.
    buf: BytesMut,
    /// What the stream delivered beyond the records taken so far.
    rest: Bytes,
}

impl FragReader {
    /// A reader of fragment `index` over `stream`.
    pub(crate) fn new(index: u8, stream: FragmentStream) -> Self {
        Self { index, stream, buf: BytesMut::new(), rest: Bytes::new() }
    }

    /// The fragment's index.
    pub(crate) fn index(&self) -> u8 {
        self.index
    }

    /// The next `len` bytes. A record inside one piece of the stream is a slice of
    /// it; one spread over several is copied once into a buffer of its size (never
    /// grown, so never copied again), and only up to its end: the bytes after it
    /// stay in the piece they came in for the next record.
    pub(crate) async fn next_record(&mut self, len: usize) -> Result<Bytes, TransferError> {
        if self.rest.len() >= len {
            return Ok(self.rest.split_to(len));
        }
        self.buf.reserve(len);
        loop {
            let take = (len - self.buf.len()).min(self.rest.len());
            self.buf.extend_from_slice(&self.rest.split_to(take));
            if self.buf.len() == len {
                return Ok(self.buf.split().freeze());
            }
            self.rest = match self.stream.next().await {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Err(e),
                None => return Err(TransferError::Unavailable("fragment ended early".into())),
            };
        }
    }

    /// Reads and checks the fragment's header: it must name `seal`'s version and
    /// coding parameters and this reader's index — a misplaced or foreign object is
    /// caught before any record is decoded.
    pub(crate) async fn check_header(&mut self, ctx: &PipelineCtx, seal: &Seal) -> Result<FragmentHeader, ReadFault> {
        let bytes = self.next_record(HEADER_LEN).await.map_err(ReadFault::Transfer)?;
        let h = FragmentHeader::parse(&bytes, ctx.offload.crc32c.as_ref())
            .map_err(|e| ReadFault::Corrupt(format!("fragment header: {e}")))?;
        if h.version != seal.id.codec() || h.index != self.index || h.k != seal.params.k() || h.n != seal.params.n() {
            return Err(ReadFault::Corrupt("fragment header names another object, index or code".into()));
        }
        Ok(h)
    }
}

/// Notes a fragment that could not be used. A location that failed to deliver is
/// the location's problem (its health); a location that says it has no such
/// object, or delivered bytes that are not the fragment, is the fragment's: it is
/// marked missing or corrupt, which puts its seal in the repair queue (repair checks
/// it again before rebuilding it, so one bad answer condemns nothing for ever).
/// Returns whether the fragment itself is damaged (missing or corrupt), rather
/// than its location failing.
pub(crate) async fn fragment_failed(ctx: &PipelineCtx, seal: &Seal, f: &Fragment, fault: &ReadFault) -> bool {
    warn!(seal = %seal.id, fragment = f.index, location = %f.location, error = %fault, "fragment unusable");
    let state = match fault {
        ReadFault::Transfer(TransferError::NotFound) => FragmentState::Missing,
        ReadFault::Corrupt(_) => FragmentState::Corrupt,
        ReadFault::Transfer(_) => {
            ctx.health.failed(&f.location);
            return false;
        }
    };
    if f.state == FragmentState::Stored
        && let Err(e) = ctx.meta.set_fragment_state(seal.id, f.index, state).await
    {
        warn!(seal = %seal.id, fragment = f.index, error = %e, "could not record a fragment's state");
    }
    true
}

/// Bytes after the header within which a range read starts from the fragment's
/// first byte instead.
const NEAR_START: u64 = 64 * 1024;

/// Opens a range read of records `range` of fragment `f` of `seal` (fragments
/// `whole` bytes long, owned by `tenant`). A read from the first record also
/// fetches the header before it and checks it, and so does one starting within
/// [`NEAR_START`] of it. (It also avoids a reopen-and-seek on stores such as
/// rclone's, which answer an offset range ~20 ms slower than one from 0.)
async fn open_fragment(
    ctx: &PipelineCtx,
    seal: &Seal,
    f: &Fragment,
    (tenant, whole): (u32, u64),
    range: Range<u64>,
) -> Result<FragReader, ReadFault> {
    // Records near the start (a small object's slot in a pack, say) are read from
    // the start too, the bytes before them dropped: cheaper than a seek.
    let with_header = range.start < HEADER_LEN as u64 + NEAR_START;
    let ask = if with_header { 0..range.end } else { range.clone() };
    let at = fragment_ref(f, whole, Some(tenant));
    let asked = Instant::now();
    let stream = ctx.store.get(&at, ask).await.map_err(ReadFault::Transfer)?;
    ctx.health.observe_latency(&f.location, asked.elapsed());
    let mut reader = FragReader::new(f.index, stream);
    if with_header {
        reader.check_header(ctx, seal).await?;
        let skip = range.start.saturating_sub(HEADER_LEN as u64) as usize;
        if skip > 0 {
            reader.next_record(skip).await.map_err(ReadFault::Transfer)?;
        }
    }
    Ok(reader)
}

/// What a fragment's read task hands its part reader.
enum Delivery {
    /// The record of segment `.0` (numbered within the part's seal).
    Record(u64, Bytes),
    /// The fragment could not be read (further).
    Failed(ReadFault),
}

/// One fragment being read by a task of its own, which reads its records in order
/// a little ahead of the decoder. Dropping it stops the task (and the request).
struct Active {
    /// Position in the seal's fragments.
    pos: usize,
    index: u8,
    rx: mpsc::Receiver<Delivery>,
    task: AbortHandle,
    /// The next segment it will deliver.
    next: u64,
    /// When it last delivered a record.
    delivered: Instant,
    /// Whether its location has answered (set by the task).
    answered: Arc<AtomicBool>,
    /// When it was asked, and how to tell its location's record.
    asked: Instant,
    health: Arc<Health>,
    location: String,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.task.abort();
        // A location dropped before it even answered took at least this long: its
        // record learns that much (otherwise a location too slow ever to answer
        // before the others would keep its last good figure, and be asked first).
        if !self.answered.load(Ordering::Acquire) {
            self.health.observe_latency(&self.location, self.asked.elapsed());
        }
    }
}

/// Records of a fragment's read task waiting for its part reader.
const AHEAD: usize = 2;

/// A straggler is hedged no sooner than this after the other fragments of its
/// segment arrived.
const HEDGE_FLOOR: Duration = Duration::from_millis(100);

/// Reads segments `first..=last` of one seal from the `k` fragments expected to
/// come fastest (by [`crate::placement::Health`]), plus `pipeline.read_spares`
/// more for a part of one segment. A fragment that fails is replaced from the
/// segment where it failed; one that falls behind the others is hedged — another
/// fragment is read from that segment on, within `pipeline.hedge_share` of extra
/// bytes, and whichever is behind afterwards is dropped. A segment that does not
/// authenticate is retried with a spare fragment so that a forged one is outvoted.
pub(super) struct PartReader {
    ctx: Arc<PipelineCtx>,
    seal: Arc<Seal>,
    tenant: u32,
    layout: Arc<FragmentLayout>,
    decoder: Option<ObjectDecoder>,
    /// The segment of the seal's fragments that is the part's first: its slot,
    /// when the seal is a pack; 0 otherwise.
    base: u64,
    k: usize,
    next: u64,
    last: u64,
    active: Vec<Active>,
    /// Fragments (positions in `seal.fragments`) not tried yet, best last.
    unused: Vec<usize>,
    /// Fragments read beyond `k`: spares asked for up front (a part of one
    /// segment) and after a segment failed to authenticate.
    spares: usize,
    /// Fragments being read to hedge a straggler of the current segment.
    hedges: usize,
    /// Extra bytes hedging may still cost.
    budget: u64,
    /// Fragments known missing or corrupt, by the metadata or by this read.
    damaged: std::collections::BTreeSet<u8>,
}

impl PartReader {
    /// A reader of segments `first..=last` of a part — `seal`, or its pack
    /// `member` — owned by tenant `tenant`, whose data key is masked by
    /// `customer`'s if it was written with one.
    pub(super) fn open(
        ctx: Arc<PipelineCtx>,
        (seal, member): (Seal, Option<PackMember>),
        tenant: u32,
        (first, last): (u64, u64),
        customer: Option<&super::CustomerKey>,
    ) -> Result<Self, PipelineError> {
        let (id, wrapped, size) = match &member {
            Some(m) => (m.id, &m.wrapped_key, m.size),
            None => (seal.id, &seal.wrapped_key, seal.size),
        };
        let mut key = ctx.master.unwrap_key(wrapped, &id.codec())?;
        if let Some(c) = customer {
            key = c.mask(&key, id);
        }
        let mut decoder = ObjectDecoder::new(&ctx.offload, seal.params, id.codec(), &key, size)?;
        let base = match &member {
            Some(m) => {
                decoder = decoder.in_pack(seal.id.codec(), u64::from(m.slot))?;
                u64::from(m.slot)
            }
            None => 0,
        };
        let layout = fragment_layout(&seal)?;
        let range = layout.records_range(base + first, base + last);
        let per_fragment = range.end - range.start;
        // Stored fragments first — local (cached) first, then healthy locations,
        // then those expected to deliver soonest (by band: equals by index) —, and
        // those the metadata has as missing or corrupt last: before giving up, a
        // read tries them too (one may be back).
        let whole = layout.fragment_len();
        let frags = &seal.fragments;
        let mut order: Vec<usize> = (0..frags.len()).filter(|&i| frags[i].state != FragmentState::Pending).collect();
        let local = |i: usize| ctx.store.is_local(&fragment_ref(&frags[i], whole, Some(tenant)));
        let random = ctx.config.read_order == ReadOrder::Random;
        let draw = || {
            let mut b = [0u8; 4];
            let _ = ctx.offload.random.fill(&mut b);
            u32::from_le_bytes(b)
        };
        order.sort_by_cached_key(|&i| {
            let speed = if random { draw() } else { ctx.health.rank(&frags[i].location, per_fragment) };
            (
                frags[i].state != FragmentState::Stored,
                !local(i),
                ctx.health.failures(&frags[i].location),
                speed,
                frags[i].index,
            )
        });
        order.reverse(); // popped from the back
        let damaged = frags.iter().filter(|f| f.state != FragmentState::Stored).map(|f| f.index).collect();
        let k = usize::from(seal.params.k());
        let spares = if first == last { usize::from(ctx.config.read_spares) } else { 0 };
        let budget = (ctx.config.hedge_share * (k as u64 * per_fragment) as f64) as u64;
        Ok(Self {
            k,
            ctx,
            seal: Arc::new(seal),
            tenant,
            layout: Arc::new(layout),
            decoder: Some(decoder),
            base,
            next: first,
            last,
            active: Vec::new(),
            unused: order,
            spares,
            hedges: 0,
            budget,
            damaged,
        })
    }

    /// Starts reading fragments until `k + spares + hedges` are being read, from
    /// segment `self.next` on.
    fn fill(&mut self) {
        while self.active.len() < self.k + self.spares + self.hedges {
            let Some(pos) = self.unused.pop() else { return };
            self.active.push(self.start(pos));
        }
    }

    /// Starts the task reading fragment `pos` from segment `self.next` on.
    fn start(&self, pos: usize) -> Active {
        let (tx, rx) = mpsc::channel(AHEAD);
        let (ctx, seal, layout) = (self.ctx.clone(), self.seal.clone(), self.layout.clone());
        let (tenant, base, from, last) = (self.tenant, self.base, self.next, self.last);
        let (index, location) = (seal.fragments[pos].index, seal.fragments[pos].location.clone());
        let answered = Arc::new(AtomicBool::new(false));
        let answer = answered.clone();
        let task = tokio::spawn(async move {
            let f = &seal.fragments[pos];
            let whole = layout.fragment_len();
            let range = layout.records_range(base + from, base + last);
            let opened = open_fragment(&ctx, &seal, f, (tenant, whole), range).await;
            answer.store(true, Ordering::Release);
            let mut reader = match opened {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Delivery::Failed(e)).await;
                    return;
                }
            };
            for s in from..=last {
                let record = layout.record_range(base + s);
                let len = (record.end - record.start) as usize;
                let started = Instant::now();
                let d = match reader.next_record(len).await {
                    Ok(b) => {
                        ctx.health.observe_rate(&f.location, len as u64, started.elapsed());
                        Delivery::Record(s, b)
                    }
                    Err(e) => Delivery::Failed(ReadFault::Transfer(e)),
                };
                let failed = matches!(d, Delivery::Failed(_));
                if tx.send(d).await.is_err() || failed {
                    return;
                }
            }
        })
        .abort_handle();
        let now = Instant::now();
        let health = self.ctx.health.clone();
        Active { pos, index, rx, task, next: self.next, delivered: now, answered, asked: now, health, location }
    }

    /// The next delivery of a fragment that has yet to deliver segment `s`, or
    /// `None` at `deadline`. A fragment whose task ended without a word failed.
    async fn delivery(&mut self, s: u64, deadline: Option<Instant>) -> Option<(usize, Delivery)> {
        let wait = futures::future::poll_fn(|cx| {
            for (i, a) in self.active.iter_mut().enumerate() {
                if a.next > s {
                    continue;
                }
                if let std::task::Poll::Ready(d) = a.rx.poll_recv(cx) {
                    let d = d.unwrap_or_else(|| {
                        Delivery::Failed(ReadFault::Transfer(TransferError::Unavailable("read stopped".into())))
                    });
                    return std::task::Poll::Ready((i, d));
                }
            }
            std::task::Poll::Pending
        });
        match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), wait).await.ok(),
            None => Some(wait.await),
        }
    }

    /// The next segment's plaintext, or `None` after the last.
    pub(super) async fn next_segment(&mut self) -> Result<Option<AlignedBuf>, PipelineError> {
        let r = self.next_segment_inner().await;
        if let Err(PipelineError::ReadQuorum { .. } | PipelineError::Corrupt { .. }) = &r {
            self.ctx.quorum_failures.read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    async fn next_segment_inner(&mut self) -> Result<Option<AlignedBuf>, PipelineError> {
        if self.next > self.last {
            return Ok(None);
        }
        let s = self.next;
        let record = self.layout.record_range(self.base + s);
        let len = (record.end - record.start) as usize;
        let started = Instant::now();
        let mut hedge_at: Option<Instant> = None;
        let mut got: BTreeMap<u8, Bytes> = BTreeMap::new();
        // Records to decode from: `k`, one more each time the segment failed to
        // authenticate.
        let mut want = self.k;
        loop {
            self.fill();
            if got.len() < want {
                let waiting = self.active.iter().filter(|a| a.next <= s).count();
                if waiting == 0 {
                    if self.unused.is_empty() {
                        if want > self.k {
                            return Err(PipelineError::Corrupt { segment: s });
                        }
                        return Err(PipelineError::ReadQuorum {
                            segment: s,
                            usable: got.len(),
                            needed: self.k,
                            damaged: self.damaged.len(),
                        });
                    }
                    self.hedges += 1;
                    continue;
                }
                match self.delivery(s, hedge_at).await {
                    Some((i, Delivery::Record(seg, b))) => {
                        let a = &mut self.active[i];
                        a.next = seg + 1;
                        a.delivered = Instant::now();
                        self.damaged.remove(&a.index);
                        if seg == s {
                            got.insert(a.index, b);
                        } else {
                            // A record of a segment already decoded: the cost of
                            // having hedged.
                            self.budget = self.budget.saturating_sub(b.len() as u64);
                        }
                        if got.len() + 1 == want && hedge_at.is_none() && !self.unused.is_empty() {
                            hedge_at = Some(Instant::now() + started.elapsed().max(HEDGE_FLOOR));
                        }
                    }
                    Some((i, Delivery::Failed(fault))) => {
                        let a = self.active.remove(i);
                        if fragment_failed(&self.ctx, &self.seal, &self.seal.fragments[a.pos], &fault).await {
                            self.damaged.insert(a.index);
                        }
                    }
                    None => {
                        // The last fragment needed is late: read another from here,
                        // if the budget allows (a hedge costs about a record of each).
                        hedge_at = None;
                        let cost = 2 * len as u64;
                        if self.budget >= cost && !self.unused.is_empty() {
                            self.budget -= cost;
                            self.hedges += 1;
                            debug!(seal = %self.seal.id, segment = s, "hedging a straggling fragment");
                        }
                    }
                }
                continue;
            }
            // Decode off the async threads.
            let records: Vec<(u8, Bytes)> = got.iter().map(|(&i, b)| (i, b.clone())).collect();
            let mut decoder = self.decoder.take().ok_or_else(|| PipelineError::Task("decoder lost".into()))?;
            let out = self.ctx.buffers.take();
            let (decoder, result) = tokio::task::spawn_blocking(move || {
                let refs: Vec<(u8, &[u8])> = records.iter().map(|(i, b)| (*i, &b[..])).collect();
                let r = decoder.decode_segment(s, &refs, out);
                (decoder, r)
            })
            .await?;
            self.decoder = Some(decoder);
            match result {
                Ok(seg) => {
                    for (index, why) in &seg.rejected {
                        self.reject(*index, why).await;
                    }
                    self.next += 1;
                    self.trim(len);
                    return Ok(Some(seg.data));
                }
                Err(CodecError::Insufficient { rejected, .. }) => {
                    // Corrupt records: drop their readers; replacements read segment s.
                    for (index, why) in rejected {
                        self.reject(index, &why).await;
                        got.remove(&index);
                    }
                }
                Err(CodecError::Authentication { .. }) => {
                    // A forged record outvotes nothing once there is a spare.
                    want = got.len() + 1;
                    self.spares += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// After a segment (of records `len` bytes long): hedging is over, and the
    /// fragments furthest behind (the latest to deliver among equals) are dropped
    /// until `k + spares` are read.
    fn trim(&mut self, len: usize) {
        self.hedges = 0;
        while self.active.len() > self.k + self.spares {
            let Some(worst) = (0..self.active.len()).max_by_key(|&i| {
                let a = &self.active[i];
                (std::cmp::Reverse(a.next), a.delivered)
            }) else {
                return;
            };
            let a = self.active.remove(worst);
            if a.next < self.next {
                // It did not deliver a record in all that time: its location moves
                // at most that fast, and keeps a request waiting at least that long.
                let waited = a.delivered.elapsed();
                self.ctx.health.observe_rate(&a.location, len as u64, waited);
                self.ctx.health.observe_latency(&a.location, waited);
            }
            debug!(seal = %self.seal.id, fragment = a.index, "dropped a fragment read that fell behind");
        }
    }

    /// Drops the reader of a fragment whose record was rejected, and marks it
    /// corrupt (once).
    async fn reject(&mut self, index: u8, why: &impl std::fmt::Display) {
        self.active.retain(|a| a.index != index);
        if !self.damaged.insert(index) {
            return;
        }
        if let Some(f) = self.seal.fragment(index) {
            let fault = ReadFault::Corrupt(why.to_string());
            fragment_failed(&self.ctx, &self.seal, f, &fault).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pieces: &[&[u8]]) -> FragReader {
        let pieces: Vec<Result<Bytes, TransferError>> = pieces.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
        FragReader::new(0, futures::stream::iter(pieces).boxed())
    }

    #[tokio::test]
    async fn records_come_whole_whatever_the_pieces() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        // Records inside a piece, across two and across many; the last one ends
        // exactly with the stream.
        let mut r = reader(&[&data[..300], &data[300..310], &data[310..311], &data[311..1000]]);
        let mut at = 0;
        for len in [100, 150, 50, 11, 600, 89] {
            let got = r.next_record(len).await.expect("record");
            assert_eq!(&got[..], &data[at..at + len], "record at {at}");
            at += len;
        }
        assert_eq!(at, data.len());
        assert!(r.next_record(0).await.expect("nothing").is_empty());
        assert!(matches!(r.next_record(1).await, Err(TransferError::Unavailable(_))), "the stream ended");
    }

    #[tokio::test]
    async fn a_record_cut_short_is_an_error() {
        let mut r = reader(&[b"abc", b"de"]);
        assert!(matches!(r.next_record(6).await, Err(TransferError::Unavailable(_))));
    }
}

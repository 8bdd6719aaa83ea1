//! Reading one seal: `k` fragments streamed by range (only the records of the
//! segments asked for), decoded segment by segment. A fragment that fails —
//! unreachable, missing, truncated, corrupt — is replaced by another from the
//! segment where it failed; a segment that does not authenticate is retried with a
//! spare fragment so that a forged one is outvoted. Bytes that did not authenticate
//! are never returned.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use codec::fragment::{FragmentHeader, FragmentLayout, HEADER_LEN};
use codec::{CodecError, ObjectDecoder, SegmentLayout};
use futures::StreamExt;
use offload::AlignedBuf;
use tracing::warn;

use super::{PipelineCtx, PipelineError};
use crate::backend::{FragmentRef, FragmentStream, TransferError};
use crate::meta::{Compression, Fragment, FragmentState, MetaError, PackMember, Seal};

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
    let mut reader = FragReader::new(f.index, ctx.store.get(&at, ask).await.map_err(ReadFault::Transfer)?);
    if with_header {
        reader.check_header(ctx, seal).await?;
        let skip = range.start.saturating_sub(HEADER_LEN as u64) as usize;
        if skip > 0 {
            reader.next_record(skip).await.map_err(ReadFault::Transfer)?;
        }
    }
    Ok(reader)
}

/// Reads segments `first..=last` of one seal.
pub(super) struct PartReader {
    ctx: Arc<PipelineCtx>,
    seal: Seal,
    tenant: u32,
    layout: FragmentLayout,
    decoder: Option<ObjectDecoder>,
    /// The segment of the seal's fragments that is the part's first: its slot,
    /// when the seal is a pack; 0 otherwise.
    base: u64,
    k: usize,
    next: u64,
    last: u64,
    readers: Vec<FragReader>,
    /// Fragments (positions in `seal.fragments`) not tried yet, best last.
    unused: Vec<usize>,
    spares: usize,
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
        // Stored fragments first — local (cached) first, then healthiest locations,
        // then by index —, and those the metadata has as missing or corrupt last:
        // before giving up, a read tries them too (one may be back).
        let whole = layout.fragment_len();
        let frags = &seal.fragments;
        let mut order: Vec<usize> = (0..frags.len()).filter(|&i| frags[i].state != FragmentState::Pending).collect();
        let local = |i: usize| ctx.store.is_local(&fragment_ref(&frags[i], whole, Some(tenant)));
        order.sort_by_cached_key(|&i| {
            (
                frags[i].state != FragmentState::Stored,
                !local(i),
                ctx.health.failures(&frags[i].location),
                frags[i].index,
            )
        });
        order.reverse(); // popped from the back
        let damaged = frags.iter().filter(|f| f.state != FragmentState::Stored).map(|f| f.index).collect();
        Ok(Self {
            k: usize::from(seal.params.k()),
            ctx,
            seal,
            tenant,
            layout,
            decoder: Some(decoder),
            base,
            next: first,
            last,
            readers: Vec::new(),
            unused: order,
            spares: 0,
            damaged,
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
            let range = self.layout.records_range(self.base + self.next, self.base + self.last);
            let picked: Vec<usize> = (0..want).filter_map(|_| self.unused.pop()).collect();
            let whole = self.layout.fragment_len();
            let (ctx, seal, tenant) = (&self.ctx, &self.seal, self.tenant);
            let opens = picked
                .iter()
                .map(|&pos| open_fragment(ctx, seal, &seal.fragments[pos], (tenant, whole), range.clone()));
            for (pos, r) in picked.iter().zip(futures::future::join_all(opens).await) {
                let f = &self.seal.fragments[*pos];
                match r {
                    Ok(reader) => {
                        self.damaged.remove(&f.index);
                        self.readers.push(reader);
                    }
                    Err(e) => {
                        if fragment_failed(&self.ctx, &self.seal, f, &e).await {
                            self.damaged.insert(f.index);
                        }
                    }
                }
            }
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
        let mut got: BTreeMap<u8, Bytes> = BTreeMap::new();
        loop {
            self.fill().await?;
            let reads = futures::future::join_all(self.readers.iter_mut().filter(|r| !got.contains_key(&r.index)).map(
                |r| async move {
                    let index = r.index;
                    (index, r.next_record(len).await)
                },
            ))
            .await;
            let mut dead = Vec::new();
            for (index, r) in reads {
                match r {
                    Ok(rec) => {
                        got.insert(index, rec);
                    }
                    Err(e) => {
                        if let Some(f) = self.seal.fragment(index)
                            && fragment_failed(&self.ctx, &self.seal, f, &ReadFault::Transfer(e)).await
                        {
                            self.damaged.insert(index);
                        }
                        dead.push(index);
                    }
                }
            }
            self.readers.retain(|r| !dead.contains(&r.index));
            if got.len() < self.k {
                if self.unused.is_empty() {
                    return Err(PipelineError::ReadQuorum {
                        segment: s,
                        usable: got.len(),
                        needed: self.k,
                        damaged: self.damaged.len(),
                    });
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
                    return Ok(Some(seg.data));
                }
                Err(CodecError::Insufficient { rejected, .. }) => {
                    // Corrupt records: drop their readers; replacements read segment s.
                    for (index, why) in rejected {
                        self.reject(index, &why).await;
                        got.remove(&index);
                    }
                    if self.unused.is_empty() && self.readers.len() < self.k {
                        return Err(PipelineError::ReadQuorum {
                            segment: s,
                            usable: self.readers.len(),
                            needed: self.k,
                            damaged: self.damaged.len(),
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

    /// Drops the reader of a fragment whose record was rejected, and marks it
    /// corrupt (once).
    async fn reject(&mut self, index: u8, why: &impl std::fmt::Display) {
        self.readers.retain(|r| r.index != index);
        if let Some(pos) = self.seal.fragments.iter().position(|f| f.index == index) {
            let fault = ReadFault::Corrupt(why.to_string());
            fragment_failed(&self.ctx, &self.seal, &self.seal.fragments[pos], &fault).await;
            self.seal.fragments[pos].state = FragmentState::Corrupt;
            self.damaged.insert(index);
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

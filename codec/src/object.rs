//! Whole objects, segment by segment: [`ObjectEncoder`] turns plaintext segments into
//! `n` fragment records each, [`ObjectDecoder`] turns any `k` of them back, and
//! [`Recoder`] makes a replacement fragment from survivors without any key.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use offload::Offload;
use offload::aead::{DataKey, TAG_LEN, Tag};
use offload::buf::{ALIGN, AlignedBuf};
use offload::compress::{Algorithm, Compressor};
use offload::crc::Crc32c;
use offload::gf::{GfKernel, Summed};
use offload::random::SecureRandom;

pub use crate::decode::{DecodedSegment, ObjectDecoder};
use crate::error::{CodecError, RecordError};
use crate::fragment::{
    CHECKSUM_LEN, FragmentHeader, HEADER_LEN, RECORD_PREFIX_LEN, RecordView, parse_record, record_checksum, record_len,
    symbol_len, write_record_prefix,
};
use crate::params::{CodingParams, SegmentLayout};
use crate::rlnc::matrix::combine;
use crate::rlnc::{CodingMatrix, independent_of_all_subsets, plan_decode};
use crate::seal::{SegmentCipher, SegmentFlags, VersionId};

/// What a segment's records are bound to by their checksums. By default, the
/// object's own id and the segment's index: the records of the object's own
/// fragments. In a pack (many small objects sharing one fragment set), the pack's id
/// and the object's slot in it, so that a record read at the wrong place, or from
/// another pack, is refused before decoding. The segment's sealing binds the
/// object's own id either way: a record can move to another pack (re-bound, new
/// checksum) without its segment being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBinding {
    /// The pack's id.
    pub pack: VersionId,
    /// The object's slot in the pack.
    pub slot: u64,
}

/// An object's binding once it is in a pack: only a one-segment object can be.
pub(crate) fn pack_binding(layout: &SegmentLayout, pack: VersionId, slot: u64) -> Result<RecordBinding, CodecError> {
    if layout.count() != 1 {
        return Err(CodecError::InvalidParams {
            reason: format!("only a one-segment object can be packed (this one has {})", layout.count()),
        });
    }
    Ok(RecordBinding { pack, slot })
}

/// The id and position a record's checksum binds.
pub(crate) fn bound_to(binding: Option<&RecordBinding>, own: &VersionId, index: u64) -> (VersionId, u64) {
    binding.map_or((*own, index), |b| (b.pack, b.slot))
}

/// Bytes a segment buffer needs so that sealing and padding never reallocate it.
pub fn segment_buffer_capacity(params: &CodingParams) -> usize {
    usize::from(params.k()) * symbol_len(params.k(), params.max_sealed_len())
}

/// Cuts a byte stream into the plaintext segments of an object of known length.
#[derive(Debug)]
pub struct Segmenter {
    layout: SegmentLayout,
    capacity: usize,
    next: u64,
    buf: AlignedBuf,
    spare: Vec<AlignedBuf>,
}

impl Segmenter {
    /// A segmenter for `layout`, filling buffers of `capacity` bytes (see
    /// [`segment_buffer_capacity`]).
    pub fn new(layout: SegmentLayout, capacity: usize) -> Self {
        Self { layout, capacity, next: 0, buf: AlignedBuf::with_capacity(capacity), spare: Vec::new() }
    }

    /// Gives back a buffer for reuse.
    pub fn recycle(&mut self, mut buf: AlignedBuf) {
        buf.clear();
        self.spare.push(buf);
    }

    /// Takes bytes from the front of `data` into the current segment; returns the
    /// segment once it is complete. Call again while `data` is not empty.
    pub fn push(&mut self, data: &mut &[u8]) -> Result<Option<AlignedBuf>, CodecError> {
        if self.next > self.layout.last() {
            if data.is_empty() {
                return Ok(None);
            }
            return Err(CodecError::SegmentLength {
                index: self.layout.last(),
                expected: self.layout.object_len(),
                got: self.layout.object_len() + data.len() as u64,
            });
        }
        let want = self.layout.plain_len(self.next) as usize;
        let take = (want - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        *data = &data[take..];
        if self.buf.len() < want || (want == 0 && self.next != self.layout.last()) {
            return Ok(None);
        }
        let fresh = self.spare.pop().unwrap_or_else(|| AlignedBuf::with_capacity(self.capacity));
        self.next += 1;
        Ok(Some(std::mem::replace(&mut self.buf, fresh)))
    }

    /// Ends the stream: returns the last segment if it is still pending (an empty
    /// object's only segment), or an error if bytes are missing.
    pub fn finish(&mut self) -> Result<Option<AlignedBuf>, CodecError> {
        let mut nothing: &[u8] = &[];
        let seg = self.push(&mut nothing)?;
        if self.next <= self.layout.last() {
            let got = self.layout.offset(self.next) + self.buf.len() as u64;
            return Err(CodecError::SegmentLength { index: self.next, expected: self.layout.object_len(), got });
        }
        Ok(seg)
    }
}

/// A segment ready to be sealed: by [`ObjectEncoder::seal`], or by an asynchronous
/// engine with [`ObjectEncoder::cipher`]'s key, the segment nonce and associated data.
#[derive(Debug)]
pub struct SealJob {
    /// Segment index.
    pub index: u64,
    /// Segment flags (part of the associated data).
    pub flags: SegmentFlags,
    /// The bytes to seal in place (compressed or raw plaintext).
    pub buf: AlignedBuf,
}

/// The `n` records of one segment, laid out in one aligned buffer.
pub struct EncodedSegment {
    index: u64,
    sealed_len: u32,
    records: AlignedBuf,
    ranges: Vec<Range<usize>>,
    sealed: AlignedBuf,
}

impl fmt::Debug for EncodedSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedSegment")
            .field("index", &self.index)
            .field("sealed_len", &self.sealed_len)
            .field("records", &self.ranges.len())
            .finish()
    }
}

impl EncodedSegment {
    /// Segment index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Ciphertext + tag bytes (what [`crate::FragmentLayout::from_sealed_lens`] needs).
    pub fn sealed_len(&self) -> u32 {
        self.sealed_len
    }

    /// Fragment `i`'s record.
    pub fn record(&self, i: usize) -> &[u8] {
        &self.records[self.ranges[i].clone()]
    }

    /// The buffer holding every record, and each record's range in it (to hand the
    /// records to I/O without copying).
    pub fn into_records(self) -> (AlignedBuf, Vec<Range<usize>>, AlignedBuf) {
        (self.records, self.ranges, self.sealed)
    }
}

/// Encodes one object version.
pub struct ObjectEncoder {
    params: CodingParams,
    layout: SegmentLayout,
    cipher: SegmentCipher,
    matrix: Arc<CodingMatrix>,
    gf: Arc<dyn GfKernel>,
    crc: Arc<dyn Crc32c>,
    compressor: Option<Arc<dyn Compressor>>,
    binding: Option<RecordBinding>,
    next: u64,
}

impl fmt::Debug for ObjectEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectEncoder")
            .field("params", &self.params)
            .field("layout", &self.layout)
            .field("version", self.cipher.version())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl ObjectEncoder {
    /// An encoder for an object of `object_len` bytes, sealed under `key` as
    /// `version`, coded with `matrix`, compressed with `compression` if given.
    pub fn new(
        offload: &Offload,
        params: CodingParams,
        compression: Option<Algorithm>,
        version: VersionId,
        key: &DataKey,
        matrix: Arc<CodingMatrix>,
        object_len: u64,
    ) -> Result<Self, CodecError> {
        if (matrix.k(), matrix.n()) != (params.k(), params.n()) {
            return Err(CodecError::InvalidParams {
                reason: format!("a {}x{} matrix for {}-of-{}", matrix.n(), matrix.k(), params.k(), params.n()),
            });
        }
        let cipher = SegmentCipher::new(offload.aead.as_ref(), key, version)?;
        let layout = SegmentLayout::new(object_len, params.segment_size());
        cipher.check_segment_count(layout.count())?;
        Ok(Self {
            params,
            layout,
            cipher,
            matrix,
            gf: offload.gf.clone(),
            crc: offload.crc32c.clone(),
            compressor: compression.map(|a| offload.compressor(a).clone()),
            binding: None,
            next: 0,
        })
    }

    /// The encoder of an object stored as slot `slot` of pack `pack` (its records'
    /// checksums bind the pack and the slot; see [`RecordBinding`]). Only a
    /// one-segment object can be packed.
    pub fn in_pack(mut self, pack: VersionId, slot: u64) -> Result<Self, CodecError> {
        self.binding = Some(pack_binding(&self.layout, pack, slot)?);
        Ok(self)
    }

    /// The object's segments.
    pub fn layout(&self) -> &SegmentLayout {
        &self.layout
    }

    /// The segment cipher (its key can be handed to an asynchronous AEAD engine).
    pub fn cipher(&self) -> &SegmentCipher {
        &self.cipher
    }

    /// The header of fragment `index`.
    pub fn header(&self, index: u8) -> [u8; HEADER_LEN] {
        FragmentHeader {
            k: self.params.k(),
            n: self.params.n(),
            index,
            segment_size: self.params.segment_size(),
            segment_count: self.layout.count(),
            version: *self.cipher.version(),
        }
        .to_bytes(self.crc.as_ref())
    }

    /// Takes the next segment's plaintext (exactly [`SegmentLayout::plain_len`]
    /// bytes), compresses it if asked and worthwhile, and returns it ready to seal.
    pub fn prepare(&mut self, plaintext: AlignedBuf) -> Result<SealJob, CodecError> {
        let index = self.next;
        if index > self.layout.last() {
            return Err(CodecError::SegmentOrder { index, expected: self.layout.last() });
        }
        let expected = self.layout.plain_len(index);
        if plaintext.len() as u64 != u64::from(expected) {
            return Err(CodecError::SegmentLength { index, expected: expected.into(), got: plaintext.len() as u64 });
        }
        let mut flags = SegmentFlags { last: index == self.layout.last(), compression: None };
        let mut buf = plaintext;
        if let Some(c) = &self.compressor {
            let mut out = AlignedBuf::with_capacity(segment_buffer_capacity(&self.params));
            if c.compress(&buf, &mut out) {
                flags.compression = Some(c.algorithm());
                buf = out;
            }
        }
        self.next += 1;
        Ok(SealJob { index, flags, buf })
    }

    /// Seals a prepared segment on the calling thread.
    pub fn seal(&self, job: &mut SealJob) -> Result<Tag, CodecError> {
        self.cipher.seal(job.index, job.flags, &mut job.buf)
    }

    /// Codes a sealed segment into its `n` records, reusing `out`'s allocation.
    pub fn finish(&self, job: SealJob, tag: Tag, mut out: AlignedBuf) -> Result<EncodedSegment, CodecError> {
        let SealJob { index, flags, buf: mut sealed } = job;
        let (k, n) = (usize::from(self.params.k()), usize::from(self.params.n()));
        sealed.extend_from_slice(&tag.0);
        let sealed_len = sealed.len() as u32;
        let sym = symbol_len(self.params.k(), sealed_len);
        sealed.resize(k * sym);

        // Records sit in 64-byte slots so that every coded symbol starts aligned.
        let prefix = RECORD_PREFIX_LEN + k;
        let rec = record_len(self.params.k(), sealed_len);
        let front = (ALIGN - prefix % ALIGN) % ALIGN;
        let slot = rec.next_multiple_of(ALIGN);
        out.set_len_stale(front + n * slot);
        let ranges: Vec<Range<usize>> = (0..n).map(|i| front + i * slot..front + i * slot + rec).collect();
        // Each record's checksum: its binding and prefix now, its symbol as it is coded.
        let (id, position) = bound_to(self.binding.as_ref(), self.cipher.version(), index);
        let mut sums = Vec::with_capacity(n);
        for (i, r) in ranges.iter().enumerate() {
            let head = &mut out[r.start..r.start + prefix];
            write_record_prefix(head, sealed_len, flags, self.matrix.row(i));
            sums.push(record_checksum(self.crc.as_ref(), &id, position, head));
        }
        {
            let sources: Vec<&[u8]> = sealed.chunks_exact(sym).collect();
            let mut symbols: Vec<&mut [u8]> = Vec::with_capacity(n);
            let mut rest: &mut [u8] = &mut out[..];
            let mut consumed = 0;
            for r in &ranges {
                let (_, tail) = rest.split_at_mut(r.start + prefix - consumed);
                let (symbol, tail) = tail.split_at_mut(sym);
                consumed = r.start + prefix + sym;
                symbols.push(symbol);
                rest = tail;
            }
            let coeffs = self.matrix.coefficients();
            self.gf.dot_prod_summed(self.crc.as_ref(), coeffs, &sources, &mut symbols, Summed::Outputs(&mut sums));
        }
        for (r, sum) in ranges.iter().zip(sums) {
            out[r.end - CHECKSUM_LEN..r.end].copy_from_slice(&sum.to_le_bytes());
        }
        Ok(EncodedSegment { index, sealed_len, records: out, ranges, sealed })
    }

    /// Prepares, seals and codes the next segment.
    pub fn encode_segment(&mut self, plaintext: AlignedBuf) -> Result<EncodedSegment, CodecError> {
        let mut job = self.prepare(plaintext)?;
        let tag = self.seal(&mut job)?;
        self.finish(job, tag, AlignedBuf::new())
    }
}

/// A recoded segment's record, and the surviving fragments whose records were
/// left out (corrupt or inconsistent): a repairer marks those for repair too.
#[derive(Debug)]
pub struct RecodedSegment {
    /// The new fragment's record of the segment.
    pub record: AlignedBuf,
    /// Survivors whose records failed their checks.
    pub rejected: Vec<(u8, RecordError)>,
}

/// Redraws of a recoding combination before giving up.
const MAX_RECODE_DRAWS: u32 = 32;

/// Makes a new fragment from surviving ones: random combinations of their records,
/// segment by segment. Needs no key and never sees plaintext.
pub struct Recoder {
    header: FragmentHeader,
    gf: Arc<dyn GfKernel>,
    crc: Arc<dyn Crc32c>,
    random: Arc<dyn SecureRandom>,
}

impl fmt::Debug for Recoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recoder").field("header", &self.header).finish_non_exhaustive()
    }
}

impl Recoder {
    /// A recoder producing fragment `new_index` of the object a surviving fragment's
    /// `header` describes.
    pub fn new(offload: &Offload, header: &FragmentHeader, new_index: u8) -> Result<Self, CodecError> {
        if new_index >= header.n {
            return Err(CodecError::Header { reason: "new fragment index not below n" });
        }
        Ok(Self {
            header: FragmentHeader { index: new_index, ..*header },
            gf: offload.gf.clone(),
            crc: offload.crc32c.clone(),
            random: offload.random.clone(),
        })
    }

    /// The new fragment's header.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        self.header.to_bytes(self.crc.as_ref())
    }

    /// The new fragment's record of segment `index`, from the records of surviving
    /// fragments (all of them, so that the new coefficients can be checked against
    /// every subset they will be decoded with).
    pub fn recode_segment(&self, index: u64, survivors: &[(u8, &[u8])]) -> Result<RecodedSegment, CodecError> {
        let h = &self.header;
        let k = usize::from(h.k);
        let max_sealed = h.segment_size + TAG_LEN as u32;
        let mut valid: Vec<RecordView<'_>> = Vec::new();
        let mut rejected = Vec::new();
        for &(frag, bytes) in survivors {
            match parse_record(bytes, h.k, max_sealed, &h.version, index, self.crc.as_ref()) {
                Ok(v) if valid.first().is_none_or(|f| (f.sealed_len, f.flags) == (v.sealed_len, v.flags)) => {
                    valid.push(v)
                }
                Ok(_) => rejected.push((frag, RecordError::Inconsistent)),
                Err(e) => rejected.push((frag, e)),
            }
        }
        let rows: Vec<&[u8]> = valid.iter().map(|v| v.coeffs).collect();
        let plan = match plan_decode(k, &rows) {
            Ok(plan) => plan,
            Err(usable) => return Err(CodecError::Insufficient { index, usable, needed: k, rejected }),
        };
        let sources: Vec<&RecordView<'_>> = plan.selected.iter().map(|&i| &valid[i]).collect();
        let source_rows: Vec<&[u8]> = sources.iter().map(|v| v.coeffs).collect();
        let mut mix = vec![0u8; k];
        let mut coeffs = Vec::new();
        let mut ok = false;
        for _ in 0..MAX_RECODE_DRAWS {
            self.random.fill(&mut mix)?;
            coeffs = combine(&mix, &source_rows);
            if coeffs.iter().any(|&c| c != 0) && independent_of_all_subsets(k, &coeffs, &rows) {
                ok = true;
                break;
            }
        }
        if !ok {
            return Err(CodecError::NoGoodMatrix { k: h.k, n: h.n, tries: MAX_RECODE_DRAWS });
        }
        let first = sources[0];
        let sym = first.symbol.len();
        let len = record_len(h.k, first.sealed_len);
        let mut rec = AlignedBuf::zeroed(len);
        write_record_prefix(&mut rec, first.sealed_len, first.flags, &coeffs);
        let inputs: Vec<&[u8]> = sources.iter().map(|v| v.symbol).collect();
        let start = RECORD_PREFIX_LEN + k;
        self.gf.dot_prod(&mix, &inputs, &mut [&mut rec[start..start + sym]]);
        let body = len - CHECKSUM_LEN;
        let sum = record_checksum(self.crc.as_ref(), &h.version, index, &rec[..body]);
        rec[body..].copy_from_slice(&sum.to_le_bytes());
        Ok(RecodedSegment { record: rec, rejected })
    }
}

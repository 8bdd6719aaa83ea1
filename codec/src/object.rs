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
use offload::gf::GfKernel;
use offload::random::SecureRandom;

use crate::error::{CodecError, RecordError};
use crate::fragment::{
    CHECKSUM_LEN, FragmentHeader, HEADER_LEN, RECORD_PREFIX_LEN, RecordView, parse_record, record_checksum, record_len,
    symbol_len, write_record_prefix,
};
use crate::params::{CodingParams, SegmentLayout};
use crate::rlnc::matrix::{Echelon, combine, for_each_subset};
use crate::rlnc::{CodingMatrix, DecodePlan, independent_of_all_subsets, plan_decode};
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
fn pack_binding(layout: &SegmentLayout, pack: VersionId, slot: u64) -> Result<RecordBinding, CodecError> {
    if layout.count() != 1 {
        return Err(CodecError::InvalidParams {
            reason: format!("only a one-segment object can be packed (this one has {})", layout.count()),
        });
    }
    Ok(RecordBinding { pack, slot })
}

/// The id and position a record's checksum binds.
fn bound_to(binding: Option<&RecordBinding>, own: &VersionId, index: u64) -> (VersionId, u64) {
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
        for (i, r) in ranges.iter().enumerate() {
            write_record_prefix(&mut out[r.start..r.start + prefix], sealed_len, flags, self.matrix.row(i));
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
            crate::rlnc::encode(self.gf.as_ref(), &self.matrix, &sources, &mut symbols);
        }
        let (id, position) = bound_to(self.binding.as_ref(), self.cipher.version(), index);
        for r in &ranges {
            let body = r.end - CHECKSUM_LEN;
            let sum = record_checksum(self.crc.as_ref(), &id, position, &out[r.start..body]);
            out[body..r.end].copy_from_slice(&sum.to_le_bytes());
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

/// A decoded segment's plaintext, and the fragments that were not used.
#[derive(Debug)]
pub struct DecodedSegment {
    /// Segment index.
    pub index: u64,
    /// The plaintext.
    pub data: AlignedBuf,
    /// Fragments whose records were corrupt, inconsistent or forged.
    pub rejected: Vec<(u8, RecordError)>,
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

/// Records that passed their checks, with the fragment each came from.
type Accepted<'a> = Vec<(u8, RecordView<'a>)>;

/// How many other `k`-subsets to try when a decoded segment does not authenticate.
const MAX_ALTERNATIVE_SUBSETS: usize = 64;

/// Decodes one object version.
pub struct ObjectDecoder {
    params: CodingParams,
    layout: SegmentLayout,
    cipher: SegmentCipher,
    gf: Arc<dyn GfKernel>,
    crc: Arc<dyn Crc32c>,
    offload: Offload,
    binding: Option<RecordBinding>,
    /// The last plan, keyed by the coefficient rows it was made for.
    cached: Option<(Vec<u8>, DecodePlan)>,
}

impl fmt::Debug for ObjectDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectDecoder")
            .field("params", &self.params)
            .field("layout", &self.layout)
            .field("version", self.cipher.version())
            .finish_non_exhaustive()
    }
}

impl ObjectDecoder {
    /// A decoder for `version`, an object of `object_len` bytes under `key`.
    pub fn new(
        offload: &Offload,
        params: CodingParams,
        version: VersionId,
        key: &DataKey,
        object_len: u64,
    ) -> Result<Self, CodecError> {
        Ok(Self {
            params,
            layout: SegmentLayout::new(object_len, params.segment_size()),
            cipher: SegmentCipher::new(offload.aead.as_ref(), key, version)?,
            gf: offload.gf.clone(),
            crc: offload.crc32c.clone(),
            offload: offload.clone(),
            binding: None,
            cached: None,
        })
    }

    /// The decoder of an object stored as slot `slot` of pack `pack` (see
    /// [`ObjectEncoder::in_pack`]).
    pub fn in_pack(mut self, pack: VersionId, slot: u64) -> Result<Self, CodecError> {
        self.binding = Some(pack_binding(&self.layout, pack, slot)?);
        Ok(self)
    }

    /// The object's segments.
    pub fn layout(&self) -> &SegmentLayout {
        &self.layout
    }

    /// Parses a fragment header and checks that it belongs to this object.
    pub fn check_header(&self, bytes: &[u8]) -> Result<FragmentHeader, CodecError> {
        let h = FragmentHeader::parse(bytes, self.crc.as_ref())?;
        let p = &self.params;
        if h.version != *self.cipher.version() {
            return Err(CodecError::Header { reason: "fragment of another object version" });
        }
        if (h.k, h.n, h.segment_size) != (p.k(), p.n(), p.segment_size()) || h.segment_count != self.layout.count() {
            return Err(CodecError::Header { reason: "fragment parameters differ from the object's" });
        }
        Ok(h)
    }

    /// Decodes segment `index` from records of several fragments (`(fragment index,
    /// record bytes)`, preferred ones first), into `out`'s allocation.
    ///
    /// Uses the first `k` valid, independent records; if the result does not
    /// authenticate and more records were given, tries other subsets and reports the
    /// records that were forged.
    pub fn decode_segment(
        &mut self,
        index: u64,
        records: &[(u8, &[u8])],
        out: AlignedBuf,
    ) -> Result<DecodedSegment, CodecError> {
        if index > self.layout.last() {
            return Err(CodecError::SegmentOrder { index, expected: self.layout.last() });
        }
        let k = usize::from(self.params.k());
        let (valid, mut rejected) = self.check_records(index, records);
        let rows: Vec<&[u8]> = valid.iter().map(|(_, v)| v.coeffs).collect();
        let plan = match self.plan(&rows) {
            Ok(plan) => plan,
            Err(usable) => {
                rejected.extend(dependents(&rows).into_iter().map(|i| (valid[i].0, RecordError::Dependent)));
                return Err(CodecError::Insufficient { index, usable, needed: k, rejected });
            }
        };
        let mut out = out;
        match self.try_open(index, &valid, &plan, &mut out) {
            Ok(()) => return self.finish_segment(index, out, rejected, &valid),
            Err(CodecError::Authentication { .. }) if valid.len() > k => {}
            Err(e) => return Err(e),
        }
        // Some record decodes to forged data: look for a subset that authenticates.
        let mut tried = 0;
        let mut found = None;
        for_each_subset(valid.len(), k, |subset| {
            if subset == plan.selected.as_slice() {
                return true;
            }
            tried += 1;
            let rows: Vec<&[u8]> = subset.iter().map(|&i| valid[i].1.coeffs).collect();
            if let Ok(p) = plan_decode(k, &rows) {
                let p = DecodePlan { selected: p.selected.iter().map(|&s| subset[s]).collect(), ..p };
                if self.try_open(index, &valid, &p, &mut out).is_ok() {
                    found = Some(p);
                    return false;
                }
            }
            tried < MAX_ALTERNATIVE_SUBSETS
        });
        let Some(good) = found else {
            return Err(CodecError::Authentication { index });
        };
        // Name the forgers: re-encode each unused record from the authentic symbols.
        let sym = symbol_len(self.params.k(), valid[good.selected[0]].1.sealed_len);
        let mut sealed = AlignedBuf::with_capacity(k * sym);
        self.decode_symbols(&valid, &good, &mut sealed);
        let sources: Vec<&[u8]> = sealed.chunks_exact(sym).collect();
        let mut check = vec![0u8; sym];
        for (i, (frag, view)) in valid.iter().enumerate() {
            if good.selected.contains(&i) {
                continue;
            }
            self.gf.dot_prod(view.coeffs, &sources, &mut [&mut check[..]]);
            if check != view.symbol {
                rejected.push((*frag, RecordError::Forged));
            }
        }
        self.finish_segment(index, out, rejected, &valid)
    }

    fn plan(&mut self, rows: &[&[u8]]) -> Result<DecodePlan, usize> {
        let k = usize::from(self.params.k());
        // Segments of one object usually decode from the same fragments with the same
        // coefficients: reuse the inverse when the first k rows are the ones cached.
        if rows.len() >= k {
            let key: Vec<u8> = rows[..k].concat();
            if let Some((cached_key, plan)) = &self.cached
                && *cached_key == key
                && plan.selected.iter().copied().eq(0..k)
            {
                return Ok(plan.clone());
            }
            let plan = plan_decode(k, rows)?;
            self.cached = Some((key, plan.clone()));
            return Ok(plan);
        }
        plan_decode(k, rows)
    }

    /// Parses every record; keeps the valid ones that agree with each other and with
    /// the object's layout.
    fn check_records<'a>(&self, index: u64, records: &[(u8, &'a [u8])]) -> (Accepted<'a>, Vec<(u8, RecordError)>) {
        let mut valid: Vec<(u8, RecordView<'a>)> = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        let last = index == self.layout.last();
        let plain = self.layout.plain_len(index);
        let mut seen = Vec::with_capacity(records.len());
        let (id, position) = bound_to(self.binding.as_ref(), self.cipher.version(), index);
        for &(frag, bytes) in records {
            if seen.contains(&frag) {
                continue; // the same fragment twice adds nothing
            }
            seen.push(frag);
            let view = match parse_record(
                bytes,
                self.params.k(),
                self.params.max_sealed_len(),
                &id,
                position,
                self.crc.as_ref(),
            ) {
                Ok(v) => v,
                Err(e) => {
                    rejected.push((frag, e));
                    continue;
                }
            };
            let problem = if view.flags.last != last {
                Some(RecordError::Flags)
            } else if view.flags.compression.is_none() && view.sealed_len != plain + TAG_LEN as u32 {
                Some(RecordError::Length)
            } else if valid
                .first()
                .is_some_and(|(_, first)| (first.sealed_len, first.flags) != (view.sealed_len, view.flags))
            {
                Some(RecordError::Inconsistent)
            } else {
                None
            };
            match problem {
                Some(e) => rejected.push((frag, e)),
                None => valid.push((frag, view)),
            }
        }
        (valid, rejected)
    }

    /// Rebuilds the padded sealed segment from the plan's records into `out`.
    fn decode_symbols(&self, valid: &[(u8, RecordView<'_>)], plan: &DecodePlan, out: &mut AlignedBuf) {
        let k = usize::from(self.params.k());
        let sym = valid[plan.selected[0]].1.symbol.len();
        out.set_len_stale(k * sym);
        let inputs: Vec<&[u8]> = plan.selected.iter().map(|&i| valid[i].1.symbol).collect();
        let mut outputs: Vec<&mut [u8]> = out.chunks_exact_mut(sym).collect();
        self.gf.dot_prod(&plan.inverse, &inputs, &mut outputs);
    }

    fn try_open(
        &self,
        index: u64,
        valid: &[(u8, RecordView<'_>)],
        plan: &DecodePlan,
        out: &mut AlignedBuf,
    ) -> Result<(), CodecError> {
        let view = &valid[plan.selected[0]].1;
        self.decode_symbols(valid, plan, out);
        let sealed_len = view.sealed_len as usize;
        let body = sealed_len - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&out[body..sealed_len]);
        out.resize(body);
        self.cipher.open(index, view.flags, out, &Tag(tag))
    }

    fn finish_segment(
        &self,
        index: u64,
        opened: AlignedBuf,
        rejected: Vec<(u8, RecordError)>,
        valid: &[(u8, RecordView<'_>)],
    ) -> Result<DecodedSegment, CodecError> {
        let expected = self.layout.plain_len(index);
        let data = match valid.first().and_then(|(_, v)| v.flags.compression) {
            None => opened,
            Some(alg) => {
                let mut plain = AlignedBuf::with_capacity(self.params.segment_size() as usize);
                self.offload
                    .compressor(alg)
                    .decompress(&opened, &mut plain, self.params.segment_size() as usize)
                    .map_err(|_| CodecError::Decompress { index })?;
                plain
            }
        };
        if data.len() as u64 != u64::from(expected) {
            return Err(CodecError::SegmentLength { index, expected: expected.into(), got: data.len() as u64 });
        }
        Ok(DecodedSegment { index, data, rejected })
    }
}

/// Positions of rows that depend on earlier rows.
fn dependents(rows: &[&[u8]]) -> Vec<usize> {
    let k = rows.first().map_or(0, |r| r.len());
    let mut e = Echelon::new(k);
    (0..rows.len()).filter(|&i| !e.try_add(rows[i])).collect()
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

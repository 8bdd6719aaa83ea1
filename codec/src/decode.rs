//! Decoding: any `k` intact records of a segment back to its plaintext.

use std::fmt;
use std::sync::Arc;

use offload::Offload;
use offload::aead::{DataKey, TAG_LEN, Tag};
use offload::buf::AlignedBuf;
use offload::crc::Crc32c;
use offload::gf::{GfKernel, Summed};

use crate::error::{CodecError, RecordError};
use crate::fragment::{FragmentHeader, PendingChecksum, RecordView, parse_record, parse_record_pending, symbol_len};
use crate::object::{RecordBinding, bound_to, pack_binding};
use crate::params::{CodingParams, SegmentLayout};
use crate::rlnc::matrix::{Echelon, for_each_subset};
use crate::rlnc::{DecodePlan, plan_decode};
use crate::seal::{SegmentCipher, VersionId};

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
    /// [`crate::ObjectEncoder::in_pack`]).
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
        let mut out = out;
        if let Some(done) = self.decode_intact(index, records, &mut out) {
            return done;
        }
        let (valid, mut rejected) = self.check_records(index, records, None);
        let rows: Vec<&[u8]> = valid.iter().map(|(_, v)| v.coeffs).collect();
        let plan = match self.plan(&rows) {
            Ok(plan) => plan,
            Err(usable) => {
                rejected.extend(dependents(&rows).into_iter().map(|i| (valid[i].0, RecordError::Dependent)));
                return Err(CodecError::Insufficient { index, usable, needed: k, rejected });
            }
        };
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
        self.decode_symbols(&valid, &good, &mut sealed, None);
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

    /// The usual case, in one pass over the records: every record given is intact and
    /// the first `k` decode to a segment that authenticates. Each record's checksum is
    /// continued over its symbol block by block as the decoder reads it, instead of in
    /// a pass of its own before. `None` sends the caller down the careful path — a
    /// record failed a check, or the segment did not authenticate and other records
    /// could be tried — which checks every record before decoding anything and names
    /// the culprits. Nothing decoded from a record is opened before its sum matched.
    fn decode_intact(
        &mut self,
        index: u64,
        records: &[(u8, &[u8])],
        out: &mut AlignedBuf,
    ) -> Option<Result<DecodedSegment, CodecError>> {
        let mut pending = Vec::with_capacity(records.len());
        let (valid, rejected) = self.check_records(index, records, Some(&mut pending));
        if !rejected.is_empty() {
            return None;
        }
        let rows: Vec<&[u8]> = valid.iter().map(|(_, v)| v.coeffs).collect();
        let plan = self.plan(&rows).ok()?;
        let mut sums: Vec<u32> = plan.selected.iter().map(|&i| pending[i].sum).collect();
        self.decode_symbols(&valid, &plan, out, Some(&mut sums));
        let selected_intact = plan.selected.iter().zip(&sums).all(|(&i, &sum)| sum == pending[i].stored);
        let others_intact = (0..valid.len())
            .filter(|i| !plan.selected.contains(i))
            .all(|i| self.crc.append(pending[i].sum, valid[i].1.symbol) == pending[i].stored);
        if !(selected_intact && others_intact) {
            return None;
        }
        match self.open_decoded(index, &valid[plan.selected[0]].1, out) {
            Ok(()) => Some(self.finish_segment(index, std::mem::take(out), rejected, &valid)),
            Err(CodecError::Authentication { .. }) if valid.len() > usize::from(self.params.k()) => None,
            Err(e) => Some(Err(e)),
        }
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
    /// With `pending`, the records' symbols are not summed here: each valid record's
    /// pending checksum is pushed in its place for the caller to finish.
    fn check_records<'a>(
        &self,
        index: u64,
        records: &[(u8, &'a [u8])],
        mut pending: Option<&mut Vec<PendingChecksum>>,
    ) -> (Accepted<'a>, Vec<(u8, RecordError)>) {
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
            let (k, max, crc) = (self.params.k(), self.params.max_sealed_len(), self.crc.as_ref());
            let parsed = match pending {
                Some(_) => parse_record_pending(bytes, k, max, &id, position, crc).map(|(v, p)| (v, Some(p))),
                None => parse_record(bytes, k, max, &id, position, crc).map(|v| (v, None)),
            };
            let (view, sum) = match parsed {
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
                None => {
                    valid.push((frag, view));
                    if let (Some(list), Some(sum)) = (pending.as_deref_mut(), sum) {
                        list.push(sum);
                    }
                }
            }
        }
        (valid, rejected)
    }

    /// Rebuilds the padded sealed segment from the plan's records into `out`.
    /// Rebuilds the padded sealed segment from the plan's records into `out`,
    /// continuing `sums` (one per selected record) over their symbols if given.
    fn decode_symbols(
        &self,
        valid: &[(u8, RecordView<'_>)],
        plan: &DecodePlan,
        out: &mut AlignedBuf,
        sums: Option<&mut [u32]>,
    ) {
        let k = usize::from(self.params.k());
        let sym = valid[plan.selected[0]].1.symbol.len();
        out.set_len_stale(k * sym);
        let inputs: Vec<&[u8]> = plan.selected.iter().map(|&i| valid[i].1.symbol).collect();
        let mut outputs: Vec<&mut [u8]> = out.chunks_exact_mut(sym).collect();
        match sums {
            Some(sums) => {
                let crc = self.crc.as_ref();
                self.gf.dot_prod_summed(crc, &plan.inverse, &inputs, &mut outputs, Summed::Inputs(sums));
            }
            None => self.gf.dot_prod(&plan.inverse, &inputs, &mut outputs),
        }
    }

    fn try_open(
        &self,
        index: u64,
        valid: &[(u8, RecordView<'_>)],
        plan: &DecodePlan,
        out: &mut AlignedBuf,
    ) -> Result<(), CodecError> {
        self.decode_symbols(valid, plan, out, None);
        self.open_decoded(index, &valid[plan.selected[0]].1, out)
    }

    /// Opens the padded sealed segment `out` holds, decoded from records like `view`.
    fn open_decoded(&self, index: u64, view: &RecordView<'_>, out: &mut AlignedBuf) -> Result<(), CodecError> {
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

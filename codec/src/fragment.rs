//! The fragment format, version 1.
//!
//! A fragment is what one location stores for one object version: a 64-byte header,
//! then one record per segment, in segment order.
//!
//! ```text
//! header (64 bytes, little-endian)
//!   0  magic "SKYF"            4  format version (1)     6  flags (0)
//!   8  k      9  n      10 fragment index      11 reserved (0)
//!  12  segment size           16 segment count (u64)
//!  24  object version id (16 random bytes)
//!  40  reserved (20 zero bytes)                          60 CRC32C of bytes 0..60
//!
//! record (one per segment)
//!   0  sealed length (u32): ciphertext + tag bytes of the segment
//!   4  segment flags: bit 7 last segment, bits 0-1 compression (0 none, 1 zstd, 2 lz4)
//!   5  reserved (3 zero bytes)
//!   8  coefficient vector (k bytes)
//! 8+k  coded symbol (symbol_len bytes)
//!  ..  CRC32C (u32) of version id ‖ segment index (u64) ‖ record bytes before it
//! ```
//!
//! `symbol_len` is `⌈sealed length / k⌉` rounded up to [`SYMBOL_ALIGN`] bytes; the
//! sealed segment is zero-padded to `k · symbol_len` before coding.
//!
//! The coefficient vector travels *with* its symbol rather than in a table in the
//! header: a range read of one contiguous byte range per fragment then brings
//! everything needed to decode those segments, streaming writes need nothing but
//! the fixed header up front, and a recoded fragment may use different coefficients
//! in every segment. The checksum covers the version id and the segment index, so a
//! record moved to another place or object is caught as corrupt before anything
//! decoded from it is used.

use std::ops::Range;

use offload::aead::TAG_LEN;
use offload::crc::Crc32c;

use crate::error::{CodecError, RecordError};
use crate::params::{CodingParams, SegmentLayout};
use crate::seal::{SegmentFlags, VERSION_ID_LEN, VersionId};

/// Fragment magic. DO NOT CHANGE.
pub const MAGIC: [u8; 4] = *b"SKYF";
/// Fragment format version written by this code.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes in a fragment header.
pub const HEADER_LEN: usize = 64;
/// Bytes before a record's coefficient vector.
pub const RECORD_PREFIX_LEN: usize = 8;
/// Bytes of a record's checksum.
pub const CHECKSUM_LEN: usize = 4;
/// Coded symbols are padded to a multiple of this. DO NOT CHANGE: it fixes record
/// lengths of format version 1.
pub const SYMBOL_ALIGN: usize = 32;

/// The fixed part of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Fragments needed to decode.
    pub k: u8,
    /// Fragments written.
    pub n: u8,
    /// This fragment's index, `0..n`.
    pub index: u8,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    /// Records that follow.
    pub segment_count: u64,
    /// The object version.
    pub version: VersionId,
}

impl FragmentHeader {
    /// The header's bytes.
    pub fn to_bytes(&self, crc: &dyn Crc32c) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[8] = self.k;
        h[9] = self.n;
        h[10] = self.index;
        h[12..16].copy_from_slice(&self.segment_size.to_le_bytes());
        h[16..24].copy_from_slice(&self.segment_count.to_le_bytes());
        h[24..24 + VERSION_ID_LEN].copy_from_slice(&self.version.0);
        let sum = crc.checksum(&h[..60]);
        h[60..].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// Parses and checks a header (the first [`HEADER_LEN`] bytes of `bytes`).
    pub fn parse(bytes: &[u8], crc: &dyn Crc32c) -> Result<Self, CodecError> {
        let bad = |reason| Err(CodecError::Header { reason });
        let Some(h) = bytes.get(..HEADER_LEN) else { return bad("shorter than a header") };
        if h[0..4] != MAGIC {
            return bad("not a Skyshard fragment (bad magic)");
        }
        if crc.checksum(&h[..60]) != u32::from_le_bytes([h[60], h[61], h[62], h[63]]) {
            return bad("header checksum mismatch");
        }
        if u16::from_le_bytes([h[4], h[5]]) != FORMAT_VERSION {
            return bad("unsupported fragment format version");
        }
        if h[6..8] != [0, 0] || h[11] != 0 || h[40..60].iter().any(|&b| b != 0) {
            return bad("reserved header bytes set");
        }
        let segment_size = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        let (k, n, index) = (h[8], h[9], h[10]);
        if CodingParams::new(k, n, segment_size).is_err() {
            return bad("coding parameters out of range");
        }
        if index >= n {
            return bad("fragment index not below n");
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&h[16..24]);
        let segment_count = u64::from_le_bytes(count);
        if segment_count == 0 {
            return bad("no segments");
        }
        let mut version = [0u8; VERSION_ID_LEN];
        version.copy_from_slice(&h[24..40]);
        Ok(Self { k, n, index, segment_size, segment_count, version: VersionId(version) })
    }
}

/// Bytes of the coded symbol of a segment that sealed to `sealed_len` bytes.
pub fn symbol_len(k: u8, sealed_len: u32) -> usize {
    (sealed_len as usize).div_ceil(usize::from(k)).next_multiple_of(SYMBOL_ALIGN)
}

/// Bytes of the record of a segment that sealed to `sealed_len` bytes.
pub fn record_len(k: u8, sealed_len: u32) -> usize {
    RECORD_PREFIX_LEN + usize::from(k) + symbol_len(k, sealed_len) + CHECKSUM_LEN
}

/// The CRC32C that closes a record.
pub fn record_checksum(crc: &dyn Crc32c, version: &VersionId, index: u64, body: &[u8]) -> u32 {
    let mut prefix = [0u8; VERSION_ID_LEN + 8];
    prefix[..VERSION_ID_LEN].copy_from_slice(&version.0);
    prefix[VERSION_ID_LEN..].copy_from_slice(&index.to_le_bytes());
    crc.append(crc.checksum(&prefix), body)
}

/// Writes a record's prefix and coefficients into `out[..8 + k]`.
pub fn write_record_prefix(out: &mut [u8], sealed_len: u32, flags: SegmentFlags, coeffs: &[u8]) {
    out[0..4].copy_from_slice(&sealed_len.to_le_bytes());
    out[4] = flags.to_byte();
    out[5..8].fill(0);
    out[8..8 + coeffs.len()].copy_from_slice(coeffs);
}

/// A checked record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Ciphertext + tag bytes of the segment.
    pub sealed_len: u32,
    /// The segment's flags (authenticated later, when the segment is opened).
    pub flags: SegmentFlags,
    /// The coefficient vector.
    pub coeffs: &'a [u8],
    /// The coded symbol.
    pub symbol: &'a [u8],
}

/// The length a record starting with `bytes` claims, if its prefix is readable.
pub fn claimed_record_len(k: u8, bytes: &[u8]) -> Option<usize> {
    let sealed = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    Some(record_len(k, sealed))
}

/// Parses and checks the record of segment `index` of `version`.
pub fn parse_record<'a>(
    bytes: &'a [u8],
    k: u8,
    max_sealed_len: u32,
    version: &VersionId,
    index: u64,
    crc: &dyn Crc32c,
) -> Result<RecordView<'a>, RecordError> {
    let (body, stored) = record_extent(bytes, k)?;
    if record_checksum(crc, version, index, &bytes[..body]) != stored {
        return Err(RecordError::Checksum);
    }
    record_view(bytes, k, max_sealed_len, body)
}

/// A record's checksum, still to be compared: `sum` covers everything before the
/// symbol; continued over the symbol it must equal `stored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingChecksum {
    /// The checksum so far.
    pub sum: u32,
    /// The checksum the record carries.
    pub stored: u32,
}

/// [`parse_record`] without summing the symbol: the caller continues
/// [`PendingChecksum::sum`] over it while it decodes (see
/// [`offload::gf::GfKernel::dot_prod_summed`]), and must refuse the record if the sums differ.
/// The length, flags and coefficients are checked here, before any of them is used.
pub fn parse_record_pending<'a>(
    bytes: &'a [u8],
    k: u8,
    max_sealed_len: u32,
    version: &VersionId,
    index: u64,
    crc: &dyn Crc32c,
) -> Result<(RecordView<'a>, PendingChecksum), RecordError> {
    let (body, stored) = record_extent(bytes, k)?;
    let view = record_view(bytes, k, max_sealed_len, body)?;
    let sum = record_checksum(crc, version, index, &bytes[..RECORD_PREFIX_LEN + usize::from(k)]);
    Ok((view, PendingChecksum { sum, stored }))
}

/// Where a record's checksummed body ends, and the checksum it carries.
fn record_extent(bytes: &[u8], k: u8) -> Result<(usize, u32), RecordError> {
    let len = claimed_record_len(k, bytes).ok_or(RecordError::Truncated)?;
    if bytes.len() < len {
        return Err(RecordError::Truncated);
    }
    if bytes.len() > len {
        return Err(RecordError::TrailingBytes);
    }
    let body = len - CHECKSUM_LEN;
    Ok((body, u32::from_le_bytes([bytes[body], bytes[body + 1], bytes[body + 2], bytes[body + 3]])))
}

/// The parts of a record whose body ends at `body`, once its prefix checks out.
fn record_view(bytes: &[u8], k: u8, max_sealed_len: u32, body: usize) -> Result<RecordView<'_>, RecordError> {
    let sealed_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if !(TAG_LEN as u32..=max_sealed_len).contains(&sealed_len) {
        return Err(RecordError::Length);
    }
    if bytes[5..8] != [0, 0, 0] {
        return Err(RecordError::Flags);
    }
    let flags = SegmentFlags::from_byte(bytes[4]).ok_or(RecordError::Flags)?;
    let coeffs_end = RECORD_PREFIX_LEN + usize::from(k);
    Ok(RecordView {
        sealed_len,
        flags,
        coeffs: &bytes[RECORD_PREFIX_LEN..coeffs_end],
        symbol: &bytes[coeffs_end..body],
    })
}

/// Where each record lies inside a fragment object, for range reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentLayout {
    /// Every segment but the last seals to the same length (no compression): record
    /// offsets follow by arithmetic.
    Uniform {
        /// Segments.
        count: u64,
        /// Record length of every segment but the last.
        full: u64,
        /// Record length of the last segment.
        last: u64,
    },
    /// Offsets listed (compressed objects: each segment seals to its own length).
    Listed {
        /// End offset of each record, relative to the end of the header.
        ends: Vec<u64>,
    },
}

impl FragmentLayout {
    /// The layout of an uncompressed object.
    pub fn uncompressed(params: &CodingParams, layout: &SegmentLayout) -> Self {
        let k = params.k();
        let full = record_len(k, params.segment_size() + TAG_LEN as u32) as u64;
        let last = record_len(k, layout.plain_len(layout.last()) + TAG_LEN as u32) as u64;
        Self::Uniform { count: layout.count(), full, last }
    }

    /// The layout given every segment's sealed length.
    pub fn from_sealed_lens(k: u8, sealed: impl IntoIterator<Item = u32>) -> Self {
        let mut end = 0;
        let ends = sealed
            .into_iter()
            .map(|s| {
                end += record_len(k, s) as u64;
                end
            })
            .collect();
        Self::Listed { ends }
    }

    /// Segments.
    pub fn count(&self) -> u64 {
        match self {
            Self::Uniform { count, .. } => *count,
            Self::Listed { ends } => ends.len() as u64,
        }
    }

    /// Byte range of record `index` inside the fragment object.
    pub fn record_range(&self, index: u64) -> Range<u64> {
        let h = HEADER_LEN as u64;
        match self {
            Self::Uniform { count, full, last } => {
                let start = h + index * full;
                start..start + if index + 1 == *count { *last } else { *full }
            }
            Self::Listed { ends } => {
                let i = index as usize;
                let start = if i == 0 { 0 } else { ends[i - 1] };
                h + start..h + ends[i]
            }
        }
    }

    /// Byte range covering records `first..=last`.
    pub fn records_range(&self, first: u64, last: u64) -> Range<u64> {
        self.record_range(first).start..self.record_range(last).end
    }

    /// Total bytes of a fragment object.
    pub fn fragment_len(&self) -> u64 {
        self.record_range(self.count() - 1).end
    }
}

/// A record checked as bound to `from` (an id and a segment index, or a pack and a
/// slot) and bound again to `to`: the same coded bytes under a new checksum. What
/// moving a packed object into another pack takes: no key, no decoding — and a
/// record that fails its checksum is never given a valid one.
pub fn rebind_record(
    bytes: &[u8],
    k: u8,
    max_sealed_len: u32,
    from: (&VersionId, u64),
    to: (&VersionId, u64),
    crc: &dyn Crc32c,
) -> Result<Vec<u8>, RecordError> {
    parse_record(bytes, k, max_sealed_len, from.0, from.1, crc)?;
    let body = bytes.len() - CHECKSUM_LEN;
    let mut out = bytes.to_vec();
    out[body..].copy_from_slice(&record_checksum(crc, to.0, to.1, &bytes[..body]).to_le_bytes());
    Ok(out)
}

/// Splits a fragment's body (the bytes after the header) into its records using
/// each record's length prefix. Fails on a record that runs past the end, or on
/// bytes left over.
pub fn split_records(k: u8, mut body: &[u8], count: u64) -> Result<Vec<&[u8]>, RecordError> {
    let mut out = Vec::new();
    for _ in 0..count {
        let len = claimed_record_len(k, body).ok_or(RecordError::Truncated)?;
        if body.len() < len {
            return Err(RecordError::Truncated);
        }
        let (rec, rest) = body.split_at(len);
        out.push(rec);
        body = rest;
    }
    if body.is_empty() { Ok(out) } else { Err(RecordError::TrailingBytes) }
}

#[cfg(test)]
mod tests {
    use offload::crc::Crc32c;

    use super::*;

    fn portable_crc() -> std::sync::Arc<dyn Crc32c> {
        offload::crc32c_engine("portable", &offload::probe()).expect("portable CRC32C")
    }

    fn header() -> FragmentHeader {
        FragmentHeader { k: 4, n: 6, index: 5, segment_size: 1 << 20, segment_count: 3, version: VersionId([7; 16]) }
    }

    #[test]
    fn header_round_trip_and_every_bit_matters() {
        let h = header();
        let crc = portable_crc();
        let bytes = h.to_bytes(crc.as_ref());
        assert_eq!(FragmentHeader::parse(&bytes, crc.as_ref()), Ok(h));
        for bit in 0..HEADER_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(FragmentHeader::parse(&b, crc.as_ref()).is_err(), "bit {bit}");
        }
        assert!(FragmentHeader::parse(&bytes[..63], crc.as_ref()).is_err());
    }

    #[test]
    fn header_rejects_bad_fields_even_with_a_good_checksum() {
        let crc = portable_crc();
        for h in [
            FragmentHeader { index: 6, ..header() },
            FragmentHeader { k: 0, ..header() },
            FragmentHeader { k: 7, ..header() },
            FragmentHeader { segment_count: 0, ..header() },
            FragmentHeader { segment_size: 1, ..header() },
        ] {
            assert!(FragmentHeader::parse(&h.to_bytes(crc.as_ref()), crc.as_ref()).is_err(), "{h:?}");
        }
    }

    #[test]
    fn symbol_lengths() {
        assert_eq!(symbol_len(4, 16), 32);
        assert_eq!(symbol_len(4, 129), 64);
        assert_eq!(symbol_len(1, 64), 64);
        assert_eq!(symbol_len(4, (4 << 20) + 16), (1 << 20) + 32);
        assert_eq!(record_len(4, 16), 8 + 4 + 32 + 4);
    }

    #[test]
    fn layouts_agree() {
        let params = CodingParams::new(4, 6, 4096).expect("params");
        let seg = SegmentLayout::new(3 * 4096 + 10, 4096);
        let uni = FragmentLayout::uncompressed(&params, &seg);
        let listed = FragmentLayout::from_sealed_lens(4, (0..seg.count()).map(|i| seg.plain_len(i) + 16));
        for i in 0..seg.count() {
            assert_eq!(uni.record_range(i), listed.record_range(i));
        }
        assert_eq!(uni.fragment_len(), listed.fragment_len());
        assert_eq!(uni.records_range(1, 2), uni.record_range(1).start..uni.record_range(2).end);
    }
}

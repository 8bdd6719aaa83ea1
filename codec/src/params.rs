//! Coding parameters and how an object is cut into segments.

use offload::aead::TAG_LEN;

use crate::error::CodecError;

/// Default plaintext segment size: 4 MiB.
pub const DEFAULT_SEGMENT_SIZE: u32 = 4 << 20;
/// Smallest allowed segment size.
pub const MIN_SEGMENT_SIZE: u32 = 4 << 10;
/// Largest allowed segment size (memory per request is a few segments).
pub const MAX_SEGMENT_SIZE: u32 = 64 << 20;

/// `k` of `n` coding over segments of `segment_size` plaintext bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodingParams {
    k: u8,
    n: u8,
    segment_size: u32,
}

impl CodingParams {
    /// Checks and builds parameters: `1 <= k <= n <= 255`, and a segment size
    /// between [`MIN_SEGMENT_SIZE`] and [`MAX_SEGMENT_SIZE`].
    pub fn new(k: u8, n: u8, segment_size: u32) -> Result<Self, CodecError> {
        let reason = if k == 0 {
            Some("k must be at least 1".to_string())
        } else if n < k {
            Some(format!("n ({n}) must be at least k ({k})"))
        } else if n == 255 {
            Some("n must be below 255".to_string())
        } else if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            Some(format!("segment size {segment_size} outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}"))
        } else {
            None
        };
        match reason {
            Some(reason) => Err(CodecError::InvalidParams { reason }),
            None => Ok(Self { k, n, segment_size }),
        }
    }

    /// Source symbols per segment; fragments needed to decode.
    pub fn k(&self) -> u8 {
        self.k
    }

    /// Coded fragments written.
    pub fn n(&self) -> u8 {
        self.n
    }

    /// Plaintext bytes per segment (the last may be shorter).
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// Largest sealed segment: a full segment plus its tag.
    pub fn max_sealed_len(&self) -> u32 {
        self.segment_size + TAG_LEN as u32
    }
}

/// How an object of `object_len` bytes divides into segments.
///
/// Every object has at least one segment: an empty object is one empty segment,
/// sealed like any other, so that it too authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    object_len: u64,
    segment_size: u32,
}

impl SegmentLayout {
    /// The layout of an object of `object_len` bytes.
    pub fn new(object_len: u64, segment_size: u32) -> Self {
        Self { object_len, segment_size }
    }

    /// Object length in bytes.
    pub fn object_len(&self) -> u64 {
        self.object_len
    }

    /// Segment size in bytes.
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// Number of segments (at least one).
    pub fn count(&self) -> u64 {
        self.object_len.div_ceil(u64::from(self.segment_size)).max(1)
    }

    /// Index of the last segment.
    pub fn last(&self) -> u64 {
        self.count() - 1
    }

    /// Offset of segment `index` in the object.
    pub fn offset(&self, index: u64) -> u64 {
        index * u64::from(self.segment_size)
    }

    /// Plaintext bytes in segment `index` (0 past the end).
    pub fn plain_len(&self, index: u64) -> u32 {
        let start = self.offset(index);
        self.object_len.saturating_sub(start).min(u64::from(self.segment_size)) as u32
    }

    /// The segments that hold bytes `first..=last` of the object.
    pub fn segments_for(&self, first: u64, last: u64) -> std::ops::RangeInclusive<u64> {
        let size = u64::from(self.segment_size);
        (first / size).min(self.last())..=(last / size).min(self.last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_bounds() {
        assert!(CodingParams::new(4, 6, DEFAULT_SEGMENT_SIZE).is_ok());
        assert!(CodingParams::new(1, 1, MIN_SEGMENT_SIZE).is_ok());
        assert!(CodingParams::new(0, 6, DEFAULT_SEGMENT_SIZE).is_err());
        assert!(CodingParams::new(7, 6, DEFAULT_SEGMENT_SIZE).is_err());
        assert!(CodingParams::new(4, 255, DEFAULT_SEGMENT_SIZE).is_err());
        assert!(CodingParams::new(4, 6, MIN_SEGMENT_SIZE - 1).is_err());
        assert!(CodingParams::new(4, 6, MAX_SEGMENT_SIZE + 1).is_err());
    }

    #[test]
    fn layout_edges() {
        let s = 4096;
        let empty = SegmentLayout::new(0, s);
        assert_eq!((empty.count(), empty.plain_len(0)), (1, 0));
        let one = SegmentLayout::new(1, s);
        assert_eq!((one.count(), one.plain_len(0)), (1, 1));
        let exact = SegmentLayout::new(2 * 4096, s);
        assert_eq!((exact.count(), exact.plain_len(1)), (2, 4096));
        let over = SegmentLayout::new(2 * 4096 + 1, s);
        assert_eq!((over.count(), over.plain_len(2), over.plain_len(3)), (3, 1, 0));
        assert_eq!(over.segments_for(4095, 4096), 0..=1);
        assert_eq!(over.segments_for(8192, 8192), 2..=2);
    }
}

//! Memory-to-memory compression of a segment before it is sealed.
//!
//! Compression runs only when a placement policy asks for it. A segment that does
//! not shrink is stored raw; the codec records which in the segment's flags and binds
//! that flag into the AEAD's associated data.

use std::fmt;

use crate::buf::AlignedBuf;

/// Which algorithm compressed a segment.
///
/// DO NOT CHANGE THE DISCRIMINANTS: they are stored in fragment records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Algorithm {
    /// Zstandard.
    Zstd = 1,
    /// LZ4 block format.
    Lz4 = 2,
}

impl Algorithm {
    /// The stored code, as in fragment records.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The algorithm stored as `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Zstd),
            2 => Some(Self::Lz4),
            _ => None,
        }
    }
}

/// Compressed data that does not decompress within its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{algorithm:?} data is corrupt or larger than {max_len} bytes")]
pub struct CompressError {
    /// The algorithm that failed.
    pub algorithm: Algorithm,
    /// The bound the output had to fit in.
    pub max_len: usize,
}

/// A compression engine.
pub trait Compressor: fmt::Debug + Send + Sync {
    /// Short stable name.
    fn name(&self) -> &'static str;

    /// The algorithm, as recorded in the format.
    fn algorithm(&self) -> Algorithm;

    /// Compresses `input` into `out`. Returns `false`, leaving `out` unspecified, when
    /// the result would not be strictly smaller than `input`: store it raw then.
    fn compress(&self, input: &[u8], out: &mut AlignedBuf) -> bool;

    /// Decompresses `input` into `out`, failing rather than producing more than
    /// `max_len` bytes.
    fn decompress(&self, input: &[u8], out: &mut AlignedBuf, max_len: usize) -> Result<(), CompressError>;
}

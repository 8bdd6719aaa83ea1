//! Codec errors.

use offload::aead::EngineError;
use offload::random::RandomError;

/// Why one fragment's record of a segment was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Shorter than its header says.
    #[error("record truncated")]
    Truncated,
    /// Longer than its header says.
    #[error("record has trailing bytes")]
    TrailingBytes,
    /// The CRC32C does not match: corrupt in storage or transit.
    #[error("record checksum mismatch")]
    Checksum,
    /// Reserved bits set, or an unknown compression code.
    #[error("record flags invalid")]
    Flags,
    /// A sealed length outside what this object can produce.
    #[error("record length field invalid")]
    Length,
    /// Disagrees with the other fragments on the segment's length or flags.
    #[error("record disagrees with the other fragments")]
    Inconsistent,
    /// Its coefficients depend linearly on fragments already chosen.
    #[error("record is linearly dependent on the others")]
    Dependent,
    /// Authentication failed whenever it was used, and succeeded without it.
    #[error("record decodes to forged data")]
    Forged,
}

/// Codec errors. Crypto failures say which segment failed, never why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Coding parameters out of range.
    #[error("invalid coding parameters: {reason}")]
    InvalidParams {
        /// What is wrong.
        reason: String,
    },
    /// A fragment header that cannot be used.
    #[error("fragment header rejected: {reason}")]
    Header {
        /// What is wrong.
        reason: &'static str,
    },
    /// Not enough usable fragments to decode a segment.
    #[error("segment {index}: {usable} usable fragments of {needed} needed")]
    Insufficient {
        /// The segment.
        index: u64,
        /// Fragments with valid, independent records.
        usable: usize,
        /// `k`.
        needed: usize,
        /// Fragments not used, and why.
        rejected: Vec<(u8, RecordError)>,
    },
    /// The decoded segment did not authenticate with any usable set of fragments.
    #[error("segment {index} failed authentication")]
    Authentication {
        /// The segment.
        index: u64,
    },
    /// Plaintext of a length the object's layout does not allow.
    #[error("segment {index}: {got} bytes where {expected} were expected")]
    SegmentLength {
        /// The segment.
        index: u64,
        /// Bytes the layout says.
        expected: u64,
        /// Bytes given or decoded.
        got: u64,
    },
    /// A segment index past the end of the object, or out of order.
    #[error("segment {index} is not the one expected ({expected})")]
    SegmentOrder {
        /// The segment given.
        index: u64,
        /// The one expected.
        expected: u64,
    },
    /// Compressed data that does not decompress (after authenticating: a bug or a
    /// key compromise, never storage corruption).
    #[error("segment {index}: compressed data is corrupt")]
    Decompress {
        /// The segment.
        index: u64,
    },
    /// A wrapped data key that does not unwrap under this master key.
    #[error("data key does not unwrap under master key version {kek_version}")]
    Unwrap {
        /// The master key version named in the wrapped key.
        kek_version: u32,
    },
    /// A wrapped data key in an unknown format.
    #[error("wrapped data key is malformed")]
    WrappedKeyFormat,
    /// Sealing failed (input the AEAD cannot take).
    #[error("sealing segment {index} failed")]
    Seal {
        /// The segment.
        index: u64,
    },
    /// More segments than one key may seal.
    #[error("object too large: {segments} segments exceed the key's limit")]
    TooManySegments {
        /// Segments needed.
        segments: u64,
    },
    /// An engine could not be keyed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// No coefficient matrix with every `k`-subset invertible was found.
    #[error("no {n}x{k} coefficient matrix with every subset invertible after {tries} draws")]
    NoGoodMatrix {
        /// `k`.
        k: u8,
        /// `n`.
        n: u8,
        /// Draws tried.
        tries: u32,
    },
}

//! zstd (the C library, through the `zstd` crate) and LZ4 (`lz4_flex`, safe Rust).

use crate::buf::AlignedBuf;
use crate::compress::{Algorithm, CompressError, Compressor};

/// Zstandard at a fixed level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Zstd {
    level: i32,
}

impl Zstd {
    /// Zstandard at `level` (1 is fast; 19 is slow and small).
    pub(crate) fn new(level: i32) -> Self {
        Self { level }
    }
}

impl Default for Zstd {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Compressor for Zstd {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Zstd
    }

    fn compress(&self, input: &[u8], out: &mut AlignedBuf) -> bool {
        if input.is_empty() {
            return false;
        }
        out.set_len_stale(input.len() - 1);
        // Too small a destination is zstd's only failure here: "did not shrink".
        match zstd::bulk::compress_to_buffer(input, out, self.level) {
            Ok(n) => {
                out.resize(n);
                true
            }
            Err(_) => false,
        }
    }

    fn decompress(&self, input: &[u8], out: &mut AlignedBuf, max_len: usize) -> Result<(), CompressError> {
        out.set_len_stale(max_len);
        let n = zstd::bulk::decompress_to_buffer(input, out)
            .map_err(|_| CompressError { algorithm: Algorithm::Zstd, max_len })?;
        out.resize(n);
        Ok(())
    }
}

/// LZ4 block format, no frame (the codec records lengths itself).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Lz4;

impl Compressor for Lz4 {
    fn name(&self) -> &'static str {
        "lz4"
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Lz4
    }

    fn compress(&self, input: &[u8], out: &mut AlignedBuf) -> bool {
        if input.is_empty() {
            return false;
        }
        // lz4_flex wants room for the worst case up front, even when the result is small.
        out.set_len_stale(lz4_flex::block::get_maximum_output_size(input.len()));
        match lz4_flex::block::compress_into(input, out) {
            Ok(n) if n < input.len() => {
                out.resize(n);
                true
            }
            _ => false,
        }
    }

    fn decompress(&self, input: &[u8], out: &mut AlignedBuf, max_len: usize) -> Result<(), CompressError> {
        out.set_len_stale(max_len);
        let n = lz4_flex::block::decompress_into(input, out)
            .map_err(|_| CompressError { algorithm: Algorithm::Lz4, max_len })?;
        out.resize(n);
        Ok(())
    }
}

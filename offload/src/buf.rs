//! Cache-line aligned byte buffers.
//!
//! Segments and fragment symbols live in [`AlignedBuf`]s: the SIMD kernels load and
//! store whole aligned vectors, and glibc 2.36 copies into a misaligned destination
//! up to 30× slower than into an aligned one (glibc bug 30994), so every buffer the
//! data path owns starts on a 64-byte boundary.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Alignment of every [`AlignedBuf`], in bytes (one cache line, one AVX-512 vector).
pub const ALIGN: usize = 64;

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; ALIGN]);

/// A zero-initialised, growable byte buffer whose first byte is 64-byte aligned.
#[derive(Clone, Default)]
pub struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// An empty buffer; allocates nothing until it grows.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer that can hold `capacity` bytes before reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { lines: Vec::with_capacity(capacity.div_ceil(ALIGN)), len: 0 }
    }

    /// A buffer of `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        Self { lines: vec![Line([0; ALIGN]); len.div_ceil(ALIGN)], len }
    }

    /// A copy of `data` in an aligned buffer.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut buf = Self::with_capacity(data.len());
        buf.extend_from_slice(data);
        buf
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that fit without reallocating.
    pub fn capacity(&self) -> usize {
        self.lines.capacity() * ALIGN
    }

    /// Sets the length to `len`: growing fills the new bytes with zeros, shrinking
    /// forgets the tail (it costs nothing; the bytes are zeroed if the buffer grows back).
    pub fn resize(&mut self, len: usize) {
        if len > self.len {
            let old = self.len;
            let kept = (self.lines.len() * ALIGN).min(len);
            self.bytes_mut_all()[old..kept].fill(0);
            self.lines.resize(len.div_ceil(ALIGN), Line([0; ALIGN]));
        }
        self.len = len;
    }

    /// Sets the length to `len` without zeroing: bytes that were in use before keep
    /// their old values, bytes never used are zero. For buffers about to be
    /// overwritten entirely, where zeroing would be a wasted pass.
    pub fn set_len_stale(&mut self, len: usize) {
        if len.div_ceil(ALIGN) > self.lines.len() {
            self.lines.resize(len.div_ceil(ALIGN), Line([0; ALIGN]));
        }
        self.len = len;
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.resize(0);
    }

    /// Appends `data` (one copy; the new bytes are not zeroed first).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let start = self.len;
        self.set_len_stale(start + data.len());
        self[start..].copy_from_slice(data);
    }

    fn bytes_mut_all(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.lines)
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.bytes_mut_all()[..len]
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Buffers hold plaintext and keys' neighbours: never print their contents.
        f.debug_struct("AlignedBuf").field("len", &self.len).finish_non_exhaustive()
    }
}

impl PartialEq for AlignedBuf {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for AlignedBuf {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for len in [0, 1, 63, 64, 65, 4096 + 3] {
            let buf = AlignedBuf::zeroed(len);
            assert_eq!(buf.len(), len);
            assert_eq!(buf.as_ptr() as usize % ALIGN, 0);
            assert!(buf.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn shrink_then_grow_reads_zeros() {
        let mut buf = AlignedBuf::from_slice(&[0xAA; 100]);
        buf.resize(10);
        buf.resize(100);
        assert_eq!(&buf[..10], &[0xAA; 10]);
        assert!(buf[10..].iter().all(|&b| b == 0));
    }

    #[test]
    fn extend_keeps_alignment() {
        let mut buf = AlignedBuf::with_capacity(3);
        for i in 0..1000u32 {
            buf.extend_from_slice(&i.to_le_bytes());
        }
        assert_eq!(buf.len(), 4000);
        assert_eq!(buf.as_ptr() as usize % ALIGN, 0);
        assert_eq!(&buf[3996..], &999u32.to_le_bytes());
    }
}

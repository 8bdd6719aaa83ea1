//! GF(2^8) kernels on GFNI: one `vgf2p8affineqb` per 64 (or 32) products.
//!
//! Multiplying by a constant `c` is linear over GF(2): every output bit is a parity
//! of input bits, so `c · x` is an 8×8 bit matrix times `x`. `vgf2p8affineqb` applies
//! such a matrix to every byte of a vector. (Its sibling `vgf2p8mulb` multiplies in
//! the AES field, `0x11B`; ours is `0x11D`, so the affine form is the one that
//! applies.) Per input vector and output row that is one instruction and one XOR,
//! against two shuffles, two masks, a shift and two XORs for the nibble tables.
//!
//! Structure as in the AVX2 kernel: each input vector is loaded once per group of
//! [`GROUP`] output rows, two vectors per step so that each matrix loaded serves
//! both, and with more rows than one group the columns are walked in L1-sized blocks.
//! Two widths: 512-bit (AVX-512BW) and 256-bit (AVX2 with GFNI, as on CPUs that have
//! GFNI without AVX-512).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256i, __m512i, _mm256_gf2p8affine_epi64_epi8, _mm256_loadu_si256, _mm256_set1_epi64x, _mm256_setzero_si256,
    _mm256_storeu_si256, _mm256_xor_si256, _mm512_gf2p8affine_epi64_epi8, _mm512_loadu_si512, _mm512_set1_epi64,
    _mm512_setzero_si512, _mm512_storeu_si512, _mm512_xor_si512,
};

use super::gf_portable::dot_prod_range;
use crate::gf::{GfKernel, POLY, check_shape};

/// Output rows accumulated at once: two vectors each, so four rows take eight
/// accumulators, and the matrices of a group for up to 16 inputs stay in registers
/// on AVX-512 (32 of them).
const GROUP: usize = 4;

/// Bytes of all inputs together that one column block may span (half of a 32 KiB L1
/// cache, as in the AVX2 kernel).
const L1_BUDGET: usize = 16 * 1024;

/// The bit matrix of multiplication by each constant `c`, as `vgf2p8affineqb` reads
/// it: byte `7 − i` of the quadword is the row giving output bit `i`, and bit `b` of
/// that row is bit `i` of `c · 2^b`. Built at compile time, so that a product call
/// only looks its constants up.
static MATRICES: [u64; 256] = build_matrices();

const fn build_matrices() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut c = 0;
    while c < 256 {
        // c · 2^b for b = 0..8, by doubling in the field.
        let mut powers = [0u8; 8];
        let mut p = c as u16;
        let mut b = 0;
        while b < 8 {
            powers[b] = p as u8;
            p <<= 1;
            if p & 0x100 != 0 {
                p ^= POLY;
            }
            b += 1;
        }
        let mut m = 0u64;
        let mut i = 0;
        while i < 8 {
            let mut row = 0u8;
            let mut b = 0;
            while b < 8 {
                if (powers[b] >> i) & 1 == 1 {
                    row |= 1 << b;
                }
                b += 1;
            }
            m |= (row as u64) << (8 * (7 - i));
            i += 1;
        }
        t[c] = m;
        c += 1;
    }
    t
}

/// What `vgf2p8affineqb` computes for one byte with constant 0: the reference the
/// matrices are checked against on every machine, GFNI or not.
#[cfg(test)]
fn affine(m: u64, x: u8) -> u8 {
    let mut y = 0u8;
    for i in 0..8 {
        let row = (m >> (8 * (7 - i))) as u8;
        y |= (((row & x).count_ones() & 1) as u8) << i;
    }
    y
}

/// Vector width of a [`GfniKernel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    /// 512-bit vectors (AVX-512F and BW).
    Zmm,
    /// 256-bit vectors (AVX2).
    Ymm,
}

/// A GFNI kernel. Only constructible on a CPU with GFNI and the vector width's
/// instructions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GfniKernel {
    width: Width,
}

impl GfniKernel {
    /// The kernel of `width`, if this CPU has what it needs.
    pub(crate) fn new(width: Width) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            let ok = has!("gfni")
                && match width {
                    Width::Zmm => has!("avx512f") && has!("avx512bw"),
                    Width::Ymm => has!("avx2"),
                };
            if ok {
                return Some(Self { width });
            }
        }
        let _ = width;
        None
    }
}

impl GfKernel for GfniKernel {
    fn name(&self) -> &'static str {
        match self.width {
            Width::Zmm => "gfni-avx512",
            Width::Ymm => "gfni-avx2",
        }
    }

    fn dot_prod(&self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        let len = check_shape(coeffs, inputs, outputs);
        #[cfg(target_arch = "x86_64")]
        let done = {
            match self.width {
                Width::Zmm => {
                    let vec_len = len & !63;
                    // SAFETY: the kernel exists only where GFNI and AVX-512F/BW were
                    // detected; `check_shape` established that every row holds at
                    // least `vec_len` bytes.
                    unsafe { dot_prod_zmm(coeffs, inputs, outputs, vec_len) };
                    vec_len
                }
                Width::Ymm => {
                    let vec_len = len & !31;
                    // SAFETY: as above, with GFNI and AVX2.
                    unsafe { dot_prod_ymm(coeffs, inputs, outputs, vec_len) };
                    vec_len
                }
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        if done < len {
            dot_prod_range(coeffs, inputs, outputs, done, len);
        }
    }
}

/// Columns per block: everything at once when one group covers every row, else a
/// block whose inputs fit in [`L1_BUDGET`], in whole steps of `step` bytes.
fn block_len(rows: usize, k: usize, vec_len: usize, step: usize) -> usize {
    if rows <= GROUP { vec_len.max(step) } else { ((L1_BUDGET / k).max(4 * step)) / step * step }
}

/// Generates the driver and the group routine of one vector width.
macro_rules! gfni_width {
    ($driver:ident, $group:ident, $features:literal, $vec:ty, $bytes:literal, $splat:ident, $zero:ident,
     $load:ident, $store:ident, $affine:ident, $xor:ident) => {
        /// # Safety
        /// The CPU must have the instructions of `$features`, and every input and
        /// output row must hold at least `vec_len` bytes, a multiple of the vector.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $driver(coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]], vec_len: usize) {
            let k = inputs.len();
            let rows = outputs.len();
            // Broadcast matrices in the order the inner loop reads them: for each
            // group, for each input, for each row of the group.
            let mut splats: Vec<$vec> = Vec::with_capacity(k * rows);
            let mut r = 0;
            while r < rows {
                let g = (rows - r).min(GROUP);
                for j in 0..k {
                    for row in r..r + g {
                        splats.push($splat(MATRICES[usize::from(coeffs[row * k + j])] as i64));
                    }
                }
                r += g;
            }
            let block = block_len(rows, k, vec_len, 2 * $bytes);
            let mut start = 0;
            while start < vec_len {
                let end = (start + block).min(vec_len);
                let (mut r, mut t) = (0, 0);
                while r < rows {
                    let g = (rows - r).min(GROUP);
                    let mats = &splats[t..t + k * g];
                    let outs = &mut outputs[r..r + g];
                    // SAFETY: the features are present (caller); rows hold `end` bytes.
                    unsafe {
                        match g {
                            4 => $group::<4>(mats, inputs, outs, start, end),
                            3 => $group::<3>(mats, inputs, outs, start, end),
                            2 => $group::<2>(mats, inputs, outs, start, end),
                            _ => $group::<1>(mats, inputs, outs, start, end),
                        }
                    }
                    t += k * g;
                    r += g;
                }
                start = end;
            }
        }

        /// `G` output rows over columns `start..end`: two vectors per step while
        /// they fit, then one.
        ///
        /// # Safety
        /// As the driver; `start` and `end` are multiples of the vector, every row
        /// holds `end` bytes, `mats` has `G` matrices per input, `outputs` `G` rows.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn $group<const G: usize>(
            mats: &[$vec],
            inputs: &[&[u8]],
            outputs: &mut [&mut [u8]],
            start: usize,
            end: usize,
        ) {
            let mut off = start;
            while off + 2 * $bytes <= end {
                let mut a0 = [$zero(); G];
                let mut a1 = [$zero(); G];
                for (input, m) in inputs.iter().zip(mats.chunks_exact(G)) {
                    // SAFETY: `off + 2 vectors <= end <= input.len()`.
                    let (x0, x1) = unsafe {
                        ($load(input.as_ptr().add(off).cast()), $load(input.as_ptr().add(off + $bytes).cast()))
                    };
                    for g in 0..G {
                        a0[g] = $xor(a0[g], $affine::<0>(x0, m[g]));
                        a1[g] = $xor(a1[g], $affine::<0>(x1, m[g]));
                    }
                }
                for ((out, v0), v1) in outputs.iter_mut().zip(a0).zip(a1) {
                    // SAFETY: as for the loads.
                    unsafe {
                        $store(out.as_mut_ptr().add(off).cast(), v0);
                        $store(out.as_mut_ptr().add(off + $bytes).cast(), v1);
                    }
                }
                off += 2 * $bytes;
            }
            if off < end {
                let mut a = [$zero(); G];
                for (input, m) in inputs.iter().zip(mats.chunks_exact(G)) {
                    // SAFETY: `off + 1 vector <= end <= input.len()`.
                    let x = unsafe { $load(input.as_ptr().add(off).cast()) };
                    for g in 0..G {
                        a[g] = $xor(a[g], $affine::<0>(x, m[g]));
                    }
                }
                for (out, v) in outputs.iter_mut().zip(a) {
                    // SAFETY: as for the load.
                    unsafe { $store(out.as_mut_ptr().add(off).cast(), v) };
                }
            }
        }
    };
}

gfni_width!(
    dot_prod_zmm,
    group_zmm,
    "gfni,avx512f,avx512bw",
    __m512i,
    64,
    _mm512_set1_epi64,
    _mm512_setzero_si512,
    _mm512_loadu_si512,
    _mm512_storeu_si512,
    _mm512_gf2p8affine_epi64_epi8,
    _mm512_xor_si512
);

gfni_width!(
    dot_prod_ymm,
    group_ymm,
    "gfni,avx2",
    __m256i,
    32,
    _mm256_set1_epi64x,
    _mm256_setzero_si256,
    _mm256_loadu_si256,
    _mm256_storeu_si256,
    _mm256_gf2p8affine_epi64_epi8,
    _mm256_xor_si256
);

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gf::mul;

    #[test]
    fn every_constant_s_matrix_multiplies_in_our_field() {
        for c in 0..=255u8 {
            let m = MATRICES[usize::from(c)];
            for x in 0..=255u8 {
                assert_eq!(affine(m, x), mul(c, x), "{c} · {x}");
            }
        }
    }
}

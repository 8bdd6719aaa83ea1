//! Arithmetic in GF(2^8) and the multiply-accumulate kernels RLNC runs on.
//!
//! The field is GF(2)[x] / (x^8 + x^4 + x^3 + x^2 + 1) — polynomial `0x11D`, generator
//! `2` — the one Intel ISA-L and most Reed–Solomon codes use, so that kernels can be
//! checked byte for byte against ISA-L.
//!
//! Every RLNC operation (encode, decode after inversion, recode) is the same
//! product: a small coefficient matrix times a set of equally long byte rows. That is
//! the single operation a [`GfKernel`] provides, as ISA-L's `ec_encode_data` does.

use std::fmt;
use std::sync::LazyLock;

use crate::crc::Crc32c;

/// The reducing polynomial, `x^8 + x^4 + x^3 + x^2 + 1`.
///
/// DO NOT CHANGE THIS VALUE: coded fragments already stored were computed in this field.
pub const POLY: u16 = 0x11D;

const fn build_exp() -> [u8; 512] {
    let mut exp = [0u8; 512];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLY;
        }
        i += 1;
    }
    exp[510] = exp[0];
    exp[511] = exp[1];
    exp
}

const fn build_log(exp: &[u8; 512]) -> [u8; 256] {
    let mut log = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        log[exp[i] as usize] = i as u8;
        i += 1;
    }
    log
}

/// `EXP[i] = 2^i`, doubled in length so that `EXP[LOG[a] + LOG[b]]` needs no reduction.
pub static EXP: [u8; 512] = build_exp();
/// `LOG[a]` for `a != 0`; `LOG[0]` is meaningless.
pub static LOG: [u8; 256] = build_log(&EXP);

/// `a · b` in GF(2^8).
#[inline]
pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 { 0 } else { EXP[LOG[a as usize] as usize + LOG[b as usize] as usize] }
}

/// The multiplicative inverse of `a`, or `None` for zero.
#[inline]
pub fn inv(a: u8) -> Option<u8> {
    (a != 0).then(|| EXP[255 - LOG[a as usize] as usize])
}

/// The full 256 × 256 product table (64 KiB), built on first use.
pub fn mul_table() -> &'static [[u8; 256]; 256] {
    static TABLE: LazyLock<Box<[[u8; 256]; 256]>> = LazyLock::new(|| {
        let mut t = Box::new([[0u8; 256]; 256]);
        for (a, row) in t.iter_mut().enumerate() {
            for (b, cell) in row.iter_mut().enumerate() {
                *cell = mul(a as u8, b as u8);
            }
        }
        t
    });
    &TABLE
}

const fn build_nibbles() -> [[u8; 64]; 256] {
    let exp = build_exp();
    let log = build_log(&exp);
    let mut t = [[0u8; 64]; 256];
    let mut c = 1;
    while c < 256 {
        let mut v = 1;
        while v < 16 {
            let lo = exp[log[c] as usize + log[v] as usize];
            let hi = exp[log[c] as usize + log[v << 4] as usize];
            // Low-nibble products twice (both 128-bit lanes of a 256-bit register),
            // then high-nibble products twice.
            t[c][v] = lo;
            t[c][v + 16] = lo;
            t[c][v + 32] = hi;
            t[c][v + 48] = hi;
            v += 1;
        }
        c += 1;
    }
    t
}

/// Split multiplication tables for `vpshufb`/`pshufb` kernels: for coefficient `c`,
/// bytes `0..32` hold `c · v` for low nibbles `v` (the 16 values twice, one copy per
/// 128-bit lane), bytes `32..64` hold `c · (v << 4)` likewise.
#[repr(C, align(64))]
pub struct NibbleTables(pub [[u8; 64]; 256]);

/// See [`NibbleTables`].
pub static NIBBLES: NibbleTables = NibbleTables(build_nibbles());

/// A GF(2^8) matrix–rows product, the one operation RLNC needs.
pub trait GfKernel: fmt::Debug + Send + Sync {
    /// Short stable name (`avx2`, `portable`, …).
    fn name(&self) -> &'static str;

    /// For every output row `r`:
    /// `outputs[r][x] = Σ_j coeffs[r · inputs.len() + j] · inputs[j][x]`.
    ///
    /// Outputs are overwritten, not accumulated into.
    ///
    /// # Panics
    /// If `coeffs.len() != outputs.len() · inputs.len()`, if there are no inputs, or
    /// if the rows are not all the same length: those are bugs in the caller.
    fn dot_prod(&self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]);

    /// [`GfKernel::dot_prod`], continuing a CRC32C of every input or every output row
    /// (`sums`, one per row) in the same pass over memory: column block by column
    /// block ([`dot_prod_blocks`]), each block summed while it is still in cache. A
    /// decoder checks the records it decodes, and an encoder closes the records it
    /// writes, without reading the rows from memory a second time.
    ///
    /// # Panics
    /// As [`GfKernel::dot_prod`], and if `sums` does not hold one sum per summed row.
    fn dot_prod_summed(
        &self,
        crc: &dyn Crc32c,
        coeffs: &[u8],
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        sums: Summed<'_>,
    ) {
        dot_prod_blocks(self, crc, coeffs, inputs, outputs, sums);
    }
}

/// The rows whose CRC32Cs a [`GfKernel::dot_prod_summed`] continues.
#[derive(Debug)]
pub enum Summed<'a> {
    /// Each input row's.
    Inputs(&'a mut [u32]),
    /// Each output row's, over what the kernel wrote.
    Outputs(&'a mut [u32]),
}

impl Summed<'_> {
    /// How many rows are summed.
    pub fn rows(&self) -> usize {
        match self {
            Summed::Inputs(s) | Summed::Outputs(s) => s.len(),
        }
    }
}

/// Bytes of one column block of [`dot_prod_blocks`], all rows together: small enough
/// that a block the kernel just touched is still in a core's L2 (1–2 MiB on the
/// machines we measured) when it is summed, large enough that each block's calls
/// cost little. Measured on a 4-of-6 segment of 4 MiB, 1 MiB blocks beat 256 KiB
/// and 2 MiB ones.
pub const SUMMED_BLOCK_BUDGET: usize = 1024 * 1024;

/// What [`GfKernel::dot_prod_summed`] does unless a kernel knows better: the product
/// and the sums, one column block at a time.
pub fn dot_prod_blocks<K: GfKernel + ?Sized>(
    kernel: &K,
    crc: &dyn Crc32c,
    coeffs: &[u8],
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
    sums: Summed<'_>,
) {
    let len = check_shape(coeffs, inputs, outputs);
    let block = (SUMMED_BLOCK_BUDGET / (inputs.len() + outputs.len())).clamp(16 * 1024, 256 * 1024) & !63;
    let (sums, of_inputs) = match sums {
        Summed::Inputs(s) => (s, true),
        Summed::Outputs(s) => (s, false),
    };
    assert_eq!(sums.len(), if of_inputs { inputs.len() } else { outputs.len() }, "one sum per summed row");
    let mut start = 0;
    while start < len {
        let end = (start + block).min(len);
        let ins: Vec<&[u8]> = inputs.iter().map(|r| &r[start..end]).collect();
        let mut outs: Vec<&mut [u8]> = outputs.iter_mut().map(|r| &mut r[start..end]).collect();
        kernel.dot_prod(coeffs, &ins, &mut outs);
        // After the kernel, not before: the block is in cache either way, and the
        // kernel's streaming reads are what the prefetchers follow best (a decoder
        // opens nothing it decoded before the sums are compared).
        if of_inputs {
            for (sum, row) in sums.iter_mut().zip(&ins) {
                *sum = crc.append(*sum, row);
            }
        } else {
            for (sum, row) in sums.iter_mut().zip(&outs) {
                *sum = crc.append(*sum, row);
            }
        }
        start = end;
    }
}

/// Checks a [`GfKernel::dot_prod`] call's shape and returns the row length.
///
/// # Panics
/// As [`GfKernel::dot_prod`] documents.
pub fn check_shape(coeffs: &[u8], inputs: &[&[u8]], outputs: &[&mut [u8]]) -> usize {
    assert!(!inputs.is_empty(), "GF dot product without inputs");
    assert_eq!(coeffs.len(), inputs.len() * outputs.len(), "coefficient matrix shape");
    let len = inputs[0].len();
    assert!(inputs.iter().all(|row| row.len() == len), "input rows differ in length");
    assert!(outputs.iter().all(|row| row.len() == len), "output rows differ in length");
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= (POLY & 0xFF) as u8;
            }
            b >>= 1;
        }
        p
    }

    #[test]
    fn tables_agree_with_shift_and_add() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), slow_mul(a, b), "{a} * {b}");
                assert_eq!(mul_table()[a as usize][b as usize], slow_mul(a, b));
            }
        }
    }

    #[test]
    fn inverses() {
        assert_eq!(inv(0), None);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a).expect("nonzero")), 1);
        }
    }

    #[test]
    fn nibble_tables_split_products() {
        for c in 0..=255u8 {
            for x in 0..=255u8 {
                let t = &NIBBLES.0[c as usize];
                let lo = t[(x & 15) as usize];
                let hi = t[32 + (x >> 4) as usize];
                assert_eq!(lo ^ hi, mul(c, x));
                assert_eq!(t[16 + (x & 15) as usize], lo);
                assert_eq!(t[48 + (x >> 4) as usize], hi);
            }
        }
    }

    /// Every kernel on this machine, bare and behind its meter, against a plain
    /// product and a separate pass of the CRC; rows below, at and across block bounds.
    #[test]
    fn summed_dot_product_matches_a_pass_of_each() {
        let caps = crate::probe();
        let crc = crate::crc32c_engine("portable", &caps).expect("portable CRC32C");
        let names = crate::engine_names("gf");
        assert!(names.contains(&"portable"), "the portable kernel runs everywhere");
        for name in names {
            if let Ok(gf) = crate::gf_kernel(name, &caps) {
                check_summed(name, gf.as_ref(), crc.as_ref());
            }
        }
        let (metered, _) = crate::Offload::select(&crate::OffloadConfig::default(), &caps).expect("engines");
        check_summed("metered", metered.gf.as_ref(), metered.crc32c.as_ref());
    }

    fn check_summed(name: &str, gf: &dyn GfKernel, crc: &dyn Crc32c) {
        for (k, n, len) in [(4usize, 6usize, 32usize), (4, 6, 4096 + 96), (4, 6, 3 * 65536 + 32), (16, 24, 300_000)] {
            let coeffs: Vec<u8> = (0..k * n).map(|i| (i * 37 + 11) as u8).collect();
            let src: Vec<Vec<u8>> = (0..k).map(|j| (0..len).map(|x| (x * 31 + j * 7) as u8).collect()).collect();
            let srcs: Vec<&[u8]> = src.iter().map(Vec::as_slice).collect();
            let mut plain = vec![vec![0u8; len]; n];
            gf.dot_prod(&coeffs, &srcs, &mut plain.iter_mut().map(Vec::as_mut_slice).collect::<Vec<_>>());
            let mut summed = vec![vec![0xAAu8; len]; n];
            let mut out_sums = vec![7u32; n];
            let mut outs: Vec<&mut [u8]> = summed.iter_mut().map(Vec::as_mut_slice).collect();
            gf.dot_prod_summed(crc, &coeffs, &srcs, &mut outs, Summed::Outputs(&mut out_sums));
            assert_eq!(summed, plain, "{name} {k}-of-{n} × {len}");
            let want: Vec<u32> = plain.iter().map(|r| crc.append(7, r)).collect();
            assert_eq!(out_sums, want, "{name}: output sums");
            let mut in_sums = vec![0u32; k];
            let mut outs: Vec<&mut [u8]> = summed.iter_mut().map(Vec::as_mut_slice).collect();
            gf.dot_prod_summed(crc, &coeffs, &srcs, &mut outs, Summed::Inputs(&mut in_sums));
            let want: Vec<u32> = src.iter().map(|r| crc.checksum(r)).collect();
            assert_eq!(in_sums, want, "{name}: input sums");
        }
    }
}

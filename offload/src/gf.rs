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
}

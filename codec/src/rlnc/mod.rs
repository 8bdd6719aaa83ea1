//! Random Linear Network Coding over GF(2^8).
//!
//! A sealed segment is cut into `k` source symbols `s_j`; coded fragment `i` carries
//! `Σ_j c[i][j] · s_j` with dense random coefficients (non-systematic: no fragment is
//! a plain piece of the ciphertext). Decoding selects `k` fragments whose coefficient
//! vectors are independent, inverts that `k × k` matrix and applies it; recoding
//! combines coded fragments into a new one without decoding.
//!
//! # Every `k` of `n`
//!
//! A uniformly random `k × k` matrix over GF(2^8) is singular with probability about
//! `1 − Π_{i=1..k} (1 − 256^{−i}) ≈ 1/255` (0.39%). Drawing i.i.d. coefficients and
//! redrawing until every `k`-subset is invertible works for 4-of-6 (15 subsets) but
//! not beyond: 10-of-16 has 8008 subsets, about 31 of them singular in a typical
//! draw, so almost no draw passes. [`CodingMatrix::generate`] therefore draws a
//! *randomised Cauchy matrix*: `c[i][j] = a_i · b_j / (x_i + y_j)` with random distinct
//! points `x_0..x_{n−1}, y_0..y_{k−1}` and random non-zero scalings `a_i`, `b_j`. Every
//! entry is non-zero and random, and every square submatrix of a Cauchy matrix is
//! invertible, scalings included: any `k` of the `n` fragments decode, by
//! construction, whenever `n + k <= 256`. The construction is then *checked*
//! exhaustively whenever there are at most [`MAX_CHECKED_SUBSETS`] subsets (4-of-6:
//! 15, 8-of-12: 495, 10-of-16: 8008); above that (16-of-24 has 735,471) it rests on
//! the theorem alone.
//!
//! Recoded fragments are random combinations, not Cauchy rows: [`crate::Recoder`]
//! checks the new vector against every `(k − 1)`-subset of the survivors when there
//! are at most [`MAX_CHECKED_SUBSETS`], and otherwise a given set of `k` fragments
//! that includes it fails to decode with probability ≈ 0.39%; the decoder then skips
//! the dependent fragment and pulls one more (`k + 1` random fragments fall short of
//! rank `k` with probability ≈ 256^{−2} ≈ 1.5·10^{−5}).

pub(crate) mod matrix;

use offload::gf::{GfKernel, inv, mul};
use offload::random::SecureRandom;

use crate::error::CodecError;
use matrix::{Echelon, for_each_subset, invert};

pub use matrix::{binomial, combine};

/// Largest number of `k`-subsets [`CodingMatrix::generate`] checks exhaustively.
pub const MAX_CHECKED_SUBSETS: u64 = 10_000;

/// Draws before giving up. A Cauchy construction never fails the check; the bound
/// only turns a broken random source or kernel into an error instead of a hang.
const MAX_DRAWS: u32 = 4;

/// A uniform integer in `0..bound` (rejection sampling on 32-bit draws).
fn uniform_below(random: &dyn SecureRandom, bound: u32) -> Result<u32, CodecError> {
    let zone = u32::MAX - u32::MAX % bound;
    loop {
        let mut b = [0u8; 4];
        random.fill(&mut b)?;
        let v = u32::from_le_bytes(b);
        if v < zone {
            return Ok(v % bound);
        }
    }
}

/// The `n × k` coefficient matrix of an object's fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodingMatrix {
    k: u8,
    n: u8,
    coeffs: Vec<u8>,
    checked: bool,
}

impl CodingMatrix {
    /// Draws a randomised Cauchy matrix (see the module documentation): dense,
    /// random, and with every `k`-subset of rows invertible; verified exhaustively
    /// when there are at most [`MAX_CHECKED_SUBSETS`] subsets.
    pub fn generate(k: u8, n: u8, random: &dyn SecureRandom) -> Result<Self, CodecError> {
        let (ku, nu) = (usize::from(k), usize::from(n));
        if k == 0 || n < k || nu + ku > 256 {
            return Err(CodecError::InvalidParams { reason: format!("{k}-of-{n} (needs 1 <= k <= n, n + k <= 256)") });
        }
        let check = binomial(u64::from(n), u64::from(k)) <= MAX_CHECKED_SUBSETS;
        for _ in 0..MAX_DRAWS {
            // Random distinct points: a Fisher–Yates shuffle of the field's elements.
            let mut points: Vec<u8> = (0..=255).collect();
            for i in (1..points.len()).rev() {
                let j = uniform_below(random, i as u32 + 1)? as usize;
                points.swap(i, j);
            }
            let (xs, ys) = (&points[..nu], &points[nu..nu + ku]);
            let mut scales = vec![0u8; nu + ku];
            for s in &mut scales {
                *s = 1 + uniform_below(random, 255)? as u8;
            }
            let (a, b) = scales.split_at(nu);
            let mut coeffs = Vec::with_capacity(ku * nu);
            for i in 0..nu {
                for j in 0..ku {
                    // x_i != y_j, so x_i + y_j (XOR) is never zero.
                    let c = inv(xs[i] ^ ys[j]).unwrap_or(1);
                    coeffs.push(mul(mul(a[i], b[j]), c));
                }
            }
            let m = Self { k, n, coeffs, checked: check };
            if !check || m.every_subset_invertible() {
                return Ok(m);
            }
        }
        Err(CodecError::NoGoodMatrix { k, n, tries: MAX_DRAWS })
    }

    /// A matrix from given rows (`n` rows of `k`), unchecked.
    ///
    /// # Panics
    /// If `coeffs.len() != k · n`.
    pub fn from_coefficients(k: u8, n: u8, coeffs: Vec<u8>) -> Self {
        assert_eq!(coeffs.len(), usize::from(k) * usize::from(n), "matrix shape");
        Self { k, n, coeffs, checked: false }
    }

    /// `k`.
    pub fn k(&self) -> u8 {
        self.k
    }

    /// `n`.
    pub fn n(&self) -> u8 {
        self.n
    }

    /// Fragment `i`'s coefficient vector.
    pub fn row(&self, i: usize) -> &[u8] {
        let k = usize::from(self.k);
        &self.coeffs[i * k..(i + 1) * k]
    }

    /// All coefficients, row-major.
    pub fn coefficients(&self) -> &[u8] {
        &self.coeffs
    }

    /// Whether [`Self::generate`] verified every `k`-subset.
    pub fn all_subsets_checked(&self) -> bool {
        self.checked
    }

    /// Checks every `k`-subset of rows (slow for large `C(n, k)`).
    pub fn every_subset_invertible(&self) -> bool {
        let k = usize::from(self.k);
        for_each_subset(usize::from(self.n), k, |rows| {
            let mut e = Echelon::new(k);
            rows.iter().all(|&r| e.try_add(self.row(r)))
        })
    }
}

/// Which of the offered rows to decode from, and the inverse to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodePlan {
    /// Positions (in the offered list) of the `k` rows used.
    pub selected: Vec<usize>,
    /// Positions of offered rows that depend on rows selected before them.
    pub dependent: Vec<usize>,
    /// Inverse of the selected rows' `k × k` matrix, row-major.
    pub inverse: Vec<u8>,
}

/// Picks the first `k` independent rows of `rows` (each of length `k`), in order, and
/// inverts them. `Err(rank)` if fewer than `k` are independent.
pub fn plan_decode(k: usize, rows: &[&[u8]]) -> Result<DecodePlan, usize> {
    let mut e = Echelon::new(k);
    let mut selected = Vec::with_capacity(k);
    let mut dependent = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if selected.len() == k {
            break;
        }
        if e.try_add(row) {
            selected.push(i);
        } else {
            dependent.push(i);
        }
    }
    if selected.len() < k {
        return Err(selected.len());
    }
    let m: Vec<u8> = selected.iter().flat_map(|&i| rows[i].iter().copied()).collect();
    // Independent rows always invert; `Err(k - 1)` is unreachable but not a panic.
    let inverse = invert(&m, k).ok_or(k - 1)?;
    Ok(DecodePlan { selected, dependent, inverse })
}

/// Encodes: `outputs[i] = Σ_j matrix[i][j] · sources[j]` for every fragment `i`.
pub fn encode(kernel: &dyn GfKernel, matrix: &CodingMatrix, sources: &[&[u8]], outputs: &mut [&mut [u8]]) {
    kernel.dot_prod(matrix.coefficients(), sources, outputs);
}

/// Whether `candidate` together with every `(k − 1)`-subset of `others` has rank `k`
/// (checked only if there are at most [`MAX_CHECKED_SUBSETS`] subsets; `true`
/// otherwise).
pub fn independent_of_all_subsets(k: usize, candidate: &[u8], others: &[&[u8]]) -> bool {
    if k == 0 || binomial(others.len() as u64, (k - 1) as u64) > MAX_CHECKED_SUBSETS {
        return true;
    }
    if others.len() < k - 1 {
        return true;
    }
    for_each_subset(others.len(), k - 1, |subset| {
        let mut e = Echelon::new(k);
        subset.iter().all(|&i| e.try_add(others[i])) && e.try_add(candidate)
    })
}

#[cfg(test)]
mod tests {
    use offload::random::SeededRandom;

    use super::*;

    #[test]
    fn generated_matrices_decode_from_every_subset() {
        let rng = SeededRandom::new(1);
        for (k, n) in [(1, 1), (1, 3), (2, 3), (4, 6), (8, 12), (5, 5), (10, 16)] {
            let m = CodingMatrix::generate(k, n, &rng).expect("matrix");
            assert!(m.all_subsets_checked());
            assert!(m.every_subset_invertible(), "{k}-of-{n}");
            assert!(m.coefficients().iter().all(|&c| c != 0), "dense");
        }
        let big = CodingMatrix::generate(16, 24, &rng).expect("matrix");
        assert!(!big.all_subsets_checked());
        assert!(CodingMatrix::generate(128, 129, &rng).is_err(), "n + k > 256 has no Cauchy matrix");
    }

    #[test]
    fn cauchy_matrices_differ_between_draws() {
        let rng = SeededRandom::new(9);
        let a = CodingMatrix::generate(4, 6, &rng).expect("matrix");
        let b = CodingMatrix::generate(4, 6, &rng).expect("matrix");
        assert_ne!(a, b);
    }

    #[test]
    fn iid_random_matrices_would_not_do() {
        // The reason for the Cauchy construction: i.i.d. 10x16 draws almost always
        // have a singular 10-subset.
        let rng = SeededRandom::new(10);
        let mut failed = 0;
        for _ in 0..5 {
            let mut coeffs = vec![0u8; 160];
            rng.fill(&mut coeffs).expect("fill");
            if !CodingMatrix::from_coefficients(10, 16, coeffs).every_subset_invertible() {
                failed += 1;
            }
        }
        assert!(failed >= 4, "{failed} of 5");
    }

    #[test]
    fn plan_skips_dependent_rows() {
        let a = [1u8, 0, 0];
        let b = [0u8, 1, 0];
        let ab = [1u8, 1, 0];
        let c = [3u8, 7, 9];
        let plan = plan_decode(3, &[&a, &b, &ab, &c]).expect("rank 3");
        assert_eq!(plan.selected, vec![0, 1, 3]);
        assert_eq!(plan.dependent, vec![2]);
        assert_eq!(plan_decode(3, &[&a, &b, &ab]), Err(2));
    }

    #[test]
    fn encode_then_decode_by_hand() {
        let rng = SeededRandom::new(2);
        let (k, n, len) = (3usize, 5usize, 100usize);
        let m = CodingMatrix::generate(k as u8, n as u8, &rng).expect("matrix");
        let src: Vec<Vec<u8>> = (0..k).map(|j| (0..len).map(|x| (x * 7 + j) as u8).collect()).collect();
        let mut coded = vec![vec![0u8; len]; n];
        let srcs: Vec<&[u8]> = src.iter().map(Vec::as_slice).collect();
        let portable = offload::gf_kernel("portable", &offload::probe()).expect("portable kernel");
        encode(portable.as_ref(), &m, &srcs, &mut coded.iter_mut().map(Vec::as_mut_slice).collect::<Vec<_>>());
        let pick = [4usize, 1, 2];
        let rows: Vec<&[u8]> = pick.iter().map(|&i| m.row(i)).collect();
        let plan = plan_decode(k, &rows).expect("plan");
        let ins: Vec<&[u8]> = plan.selected.iter().map(|&p| coded[pick[p]].as_slice()).collect();
        let mut out = vec![vec![0u8; len]; k];
        portable.dot_prod(&plan.inverse, &ins, &mut out.iter_mut().map(Vec::as_mut_slice).collect::<Vec<_>>());
        assert_eq!(out, src);
    }

    #[test]
    fn subset_independence_check() {
        let e1 = [1u8, 0, 0];
        let e2 = [0u8, 1, 0];
        let e3 = [0u8, 0, 1];
        assert!(independent_of_all_subsets(3, &[1, 1, 1], &[&e1, &e2, &e3]));
        // [1,1,0] with {e1, e2} has rank 2 only.
        assert!(!independent_of_all_subsets(3, &[1, 1, 0], &[&e1, &e2, &e3]));
    }
}

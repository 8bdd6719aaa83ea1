//! Small dense matrices over GF(2^8): inversion, rank, and an incremental echelon
//! form that picks independent rows as they arrive.

use offload::gf::{inv, mul_table};

/// `dst ^= c · src`, element-wise.
fn axpy(dst: &mut [u8], c: u8, src: &[u8]) {
    match c {
        0 => {}
        1 => dst.iter_mut().zip(src).for_each(|(d, s)| *d ^= s),
        _ => {
            let row = &mul_table()[c as usize];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d ^= row[s as usize]);
        }
    }
}

/// `row *= c`, element-wise.
fn scale(row: &mut [u8], c: u8) {
    let t = &mul_table()[c as usize];
    row.iter_mut().for_each(|x| *x = t[*x as usize]);
}

/// The inverse of the `n × n` row-major matrix `m` (Gauss–Jordan), or `None` if it is
/// singular.
pub(crate) fn invert(m: &[u8], n: usize) -> Option<Vec<u8>> {
    assert_eq!(m.len(), n * n, "matrix shape");
    let mut a = m.to_vec();
    let mut out = vec![0u8; n * n];
    for i in 0..n {
        out[i * n + i] = 1;
    }
    for col in 0..n {
        let pivot = (col..n).find(|&r| a[r * n + col] != 0)?;
        if pivot != col {
            for c in 0..n {
                a.swap(pivot * n + c, col * n + c);
                out.swap(pivot * n + c, col * n + c);
            }
        }
        let p = inv(a[col * n + col])?;
        scale(&mut a[col * n..(col + 1) * n], p);
        scale(&mut out[col * n..(col + 1) * n], p);
        let pivot_a = a[col * n..(col + 1) * n].to_vec();
        let pivot_o = out[col * n..(col + 1) * n].to_vec();
        for r in (0..n).filter(|&r| r != col) {
            let f = a[r * n + col];
            if f != 0 {
                axpy(&mut a[r * n..(r + 1) * n], f, &pivot_a);
                axpy(&mut out[r * n..(r + 1) * n], f, &pivot_o);
            }
        }
    }
    Some(out)
}

/// Rows kept in reduced echelon form, so that a new row can be tested for
/// independence in `O(rank · k)`.
#[derive(Debug, Clone)]
pub(crate) struct Echelon {
    k: usize,
    /// Reduced rows, each with a 1 at its pivot column.
    rows: Vec<(usize, Vec<u8>)>,
}

impl Echelon {
    /// An empty basis for vectors of length `k`.
    pub(crate) fn new(k: usize) -> Self {
        Self { k, rows: Vec::with_capacity(k) }
    }

    /// Rank so far.
    #[cfg(test)]
    pub(crate) fn rank(&self) -> usize {
        self.rows.len()
    }

    /// Whether `row` is independent of the rows added so far: if so it joins them.
    pub(crate) fn try_add(&mut self, row: &[u8]) -> bool {
        assert_eq!(row.len(), self.k, "vector length");
        if self.rows.len() == self.k {
            return false;
        }
        let mut r = row.to_vec();
        for (pivot, basis) in &self.rows {
            let f = r[*pivot];
            if f != 0 {
                axpy(&mut r, f, basis);
            }
        }
        let Some(pivot) = r.iter().position(|&x| x != 0) else {
            return false;
        };
        let p = inv(r[pivot]).unwrap_or(1); // r[pivot] != 0, so the inverse exists
        scale(&mut r, p);
        // Keep earlier rows reduced in the new pivot column.
        for (_, basis) in &mut self.rows {
            let f = basis[pivot];
            if f != 0 {
                axpy(basis, f, &r);
            }
        }
        self.rows.push((pivot, r));
        true
    }
}

/// Whether the `n × n` matrix `m` is invertible.
#[cfg(test)]
pub(crate) fn is_invertible(m: &[u8], n: usize) -> bool {
    let mut e = Echelon::new(n);
    m.chunks_exact(n).all(|row| e.try_add(row))
}

/// `Σ_j c[j] · rows[j]`, for vectors (coefficient rows) of equal length.
pub fn combine(c: &[u8], rows: &[&[u8]]) -> Vec<u8> {
    let len = rows.first().map_or(0, |r| r.len());
    let mut out = vec![0u8; len];
    for (&cj, row) in c.iter().zip(rows) {
        axpy(&mut out, cj, row);
    }
    out
}

/// Matrix product `a (r × m) · b (m × c)`.
#[cfg(test)]
pub(crate) fn multiply(a: &[u8], b: &[u8], r: usize, m: usize, c: usize) -> Vec<u8> {
    assert_eq!((a.len(), b.len()), (r * m, m * c), "matrix shapes");
    let mut out = vec![0u8; r * c];
    for i in 0..r {
        for j in 0..m {
            let f = a[i * m + j];
            if f != 0 {
                axpy(&mut out[i * c..(i + 1) * c], f, &b[j * c..(j + 1) * c]);
            }
        }
    }
    out
}

/// Calls `f` with every `k`-subset of `0..n` in lexicographic order until it returns
/// `false`; returns whether it never did.
pub(crate) fn for_each_subset(n: usize, k: usize, mut f: impl FnMut(&[usize]) -> bool) -> bool {
    if k > n {
        return true;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        if !f(&idx) {
            return false;
        }
        // Advance to the next combination.
        let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else {
            return true;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// `C(n, k)`, saturating at `u64::MAX`.
pub fn binomial(n: u64, k: u64) -> u64 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut acc: u128 = 1;
    for i in 0..k {
        acc = acc * u128::from(n - i) / u128::from(i + 1);
        if acc > u128::from(u64::MAX) {
            return u64::MAX;
        }
    }
    acc as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: usize) -> Vec<u8> {
        let mut id = vec![0u8; n * n];
        (0..n).for_each(|d| id[d * (n + 1)] = 1);
        id
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        // Needs a row swap: the first pivot is zero.
        let m = vec![0u8, 1, 1, 0];
        assert_eq!(multiply(&invert(&m, 2).expect("invertible"), &m, 2, 2, 2), identity(2));
        // Random matrices: invertible ones multiply back to the identity, and
        // `invert` and `is_invertible` agree on which those are.
        let mut x: u32 = 12345;
        let (mut inverted, mut singular) = (0, 0);
        for n in [1usize, 2, 3, 4, 8, 16] {
            for _ in 0..200 {
                let m: Vec<u8> = (0..n * n)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        // Small values make singular matrices common enough to test.
                        if n <= 2 { (x >> 16) as u8 % 4 } else { (x >> 16) as u8 }
                    })
                    .collect();
                match invert(&m, n) {
                    Some(i) => {
                        inverted += 1;
                        assert!(is_invertible(&m, n));
                        assert_eq!(multiply(&i, &m, n, n, n), identity(n));
                        assert_eq!(multiply(&m, &i, n, n, n), identity(n));
                    }
                    None => {
                        singular += 1;
                        assert!(!is_invertible(&m, n));
                    }
                }
            }
        }
        assert!(inverted > 0 && singular > 0);
    }

    #[test]
    fn singular_matrices_are_refused() {
        // Row 2 = row 0 ^ row 1 (addition in GF(2^8) is XOR).
        let m = vec![1, 2, 3, 4, 5, 6, 1 ^ 4, 2 ^ 5, 3 ^ 6];
        assert!(invert(&m, 3).is_none());
        assert!(!is_invertible(&m, 3));
        let mut e = Echelon::new(3);
        assert!(e.try_add(&m[0..3]));
        assert!(e.try_add(&m[3..6]));
        assert!(!e.try_add(&m[6..9]));
        assert_eq!(e.rank(), 2);
        assert!(e.try_add(&[0, 0, 1]));
        assert_eq!(e.rank(), 3);
        assert!(!e.try_add(&[9, 9, 9]), "a full basis takes nothing more");
    }

    #[test]
    fn subsets_and_binomials() {
        let mut seen = Vec::new();
        assert!(for_each_subset(5, 3, |s| {
            seen.push(s.to_vec());
            true
        }));
        assert_eq!(seen.len() as u64, binomial(5, 3));
        assert_eq!(seen[0], vec![0, 1, 2]);
        assert_eq!(seen[9], vec![2, 3, 4]);
        assert_eq!(binomial(16, 10), 8008);
        assert_eq!(binomial(24, 16), 735_471);
        assert_eq!(binomial(255, 127), u64::MAX);
        let mut calls = 0;
        assert!(!for_each_subset(6, 4, |_| {
            calls += 1;
            calls < 3
        }));
        assert_eq!(calls, 3);
    }
}

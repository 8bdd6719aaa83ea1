//! The AVX2 GF(2^8) kernel: split nibble tables and `vpshufb`.
//!
//! A product `c · x` is `T_lo[c][x & 15] ^ T_hi[c][x >> 4]`; `vpshufb` performs 32 such
//! 16-entry lookups at once. For each 64-byte column step the kernel loads every
//! input once, splits it into nibbles once, and accumulates into up to [`GROUP`]
//! output rows held in registers, so each input byte is read once per group of
//! outputs and each pair of tables serves two vectors.
//! With more output rows than one group, the columns are walked in blocks small
//! enough that the inputs of a block stay in L1 while each group of outputs is
//! produced: all `n` outputs in one pass over memory.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256i, _mm256_and_si256, _mm256_load_si256, _mm256_loadu_si256, _mm256_set1_epi8, _mm256_setzero_si256,
    _mm256_shuffle_epi8, _mm256_srli_epi64, _mm256_storeu_si256, _mm256_xor_si256,
};

use super::gf_portable::dot_prod_range;
use crate::gf::{GfKernel, NIBBLES, check_shape};

/// Output rows accumulated at once. Each step covers 64 bytes (two vectors), so four
/// rows take eight accumulators; with the nibble mask, four nibble vectors and a pair
/// of tables that fills the 16 YMM registers. Measured on the target machines
/// (the `group_sizes` tuning run below, 64 MiB through two recycled output buffers): four rows at
/// 64 bytes per step beat six or eight rows at 32 bytes, and ISA-L's AVX2 kernels,
/// by 5–20%, because the table loads — not the shuffles — were the bottleneck.
const GROUP: usize = 4;

/// Bytes of all inputs together that one column block may span (half of a 32 KiB L1).
const L1_BUDGET: usize = 16 * 1024;

/// The AVX2 kernel. Only constructible on a CPU that has AVX2.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2Kernel {
    group: usize,
}

impl Avx2Kernel {
    /// The kernel, if this CPU supports AVX2.
    pub(crate) fn new() -> Option<Self> {
        Self::with_group(GROUP)
    }

    /// The kernel accumulating at most `group` (1..=8) output rows per pass.
    pub(crate) fn with_group(group: usize) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Some(Self { group: group.clamp(1, 8) });
        }
        None
    }
}

impl GfKernel for Avx2Kernel {
    fn name(&self) -> &'static str {
        "avx2"
    }

    fn dot_prod(&self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        let len = check_shape(coeffs, inputs, outputs);
        #[cfg(target_arch = "x86_64")]
        let done = {
            let vec_len = len & !31;
            // SAFETY: `Avx2Kernel` exists only where AVX2 was detected, and
            // `check_shape` established that every row holds at least `vec_len` bytes.
            unsafe { dot_prod_avx2(coeffs, inputs, outputs, vec_len, self.group) };
            vec_len
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        if done < len {
            dot_prod_range(coeffs, inputs, outputs, done, len);
        }
    }
}

/// # Safety
/// The CPU must support AVX2, and every input and output row must hold at least
/// `vec_len` bytes, a multiple of 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_prod_avx2(coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]], vec_len: usize, max_group: usize) {
    let k = inputs.len();
    let rows = outputs.len();
    // Tables in the order the inner loop reads them: for each group, for each input,
    // for each row of the group, (low, high).
    let mut tables: Vec<__m256i> = Vec::with_capacity(2 * k * rows);
    let mut r = 0;
    while r < rows {
        let g = (rows - r).min(max_group);
        for j in 0..k {
            for row in r..r + g {
                let t = &NIBBLES.0[coeffs[row * k + j] as usize];
                // SAFETY: `NIBBLES` is 64-byte aligned and each entry is 64 bytes, so
                // both 32-byte halves are aligned loads within the entry.
                unsafe {
                    tables.push(_mm256_load_si256(t.as_ptr().cast()));
                    tables.push(_mm256_load_si256(t.as_ptr().add(32).cast()));
                }
            }
        }
        r += g;
    }

    let block = if rows <= max_group { vec_len.max(32) } else { (L1_BUDGET / k).max(256) & !31 };
    let mut start = 0;
    while start < vec_len {
        let end = (start + block).min(vec_len);
        let mut r = 0;
        let mut t = 0;
        while r < rows {
            let g = (rows - r).min(max_group);
            let tabs = &tables[t..t + 2 * k * g];
            let outs = &mut outputs[r..r + g];
            let mid = start + ((end - start) & !63);
            // SAFETY: AVX2 is present (caller); rows hold `end <= vec_len` bytes, and
            // `mid - start` is a multiple of 64, `end - mid` of 32.
            unsafe {
                match g {
                    8 => group64::<8>(tabs, inputs, outs, start, mid),
                    7 => group64::<7>(tabs, inputs, outs, start, mid),
                    6 => group64::<6>(tabs, inputs, outs, start, mid),
                    5 => group64::<5>(tabs, inputs, outs, start, mid),
                    4 => group64::<4>(tabs, inputs, outs, start, mid),
                    3 => group64::<3>(tabs, inputs, outs, start, mid),
                    2 => group64::<2>(tabs, inputs, outs, start, mid),
                    _ => group64::<1>(tabs, inputs, outs, start, mid),
                }
                if mid < end {
                    match g {
                        8 => group::<8>(tabs, inputs, outs, mid, end),
                        7 => group::<7>(tabs, inputs, outs, mid, end),
                        6 => group::<6>(tabs, inputs, outs, mid, end),
                        5 => group::<5>(tabs, inputs, outs, mid, end),
                        4 => group::<4>(tabs, inputs, outs, mid, end),
                        3 => group::<3>(tabs, inputs, outs, mid, end),
                        2 => group::<2>(tabs, inputs, outs, mid, end),
                        _ => group::<1>(tabs, inputs, outs, mid, end),
                    }
                }
            }
            t += 2 * k * g;
            r += g;
        }
        start = end;
    }
}

/// Like [`group`], two vectors (64 bytes) per step: each pair of tables loaded serves
/// both, halving table loads, which compete with the shuffles for issue slots.
///
/// # Safety
/// As [`group`]; `end - start` must be a multiple of 64.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn group64<const G: usize>(
    tables: &[__m256i],
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
    start: usize,
    end: usize,
) {
    let mask = _mm256_set1_epi8(0x0f);
    let mut off = start;
    while off < end {
        let mut a0 = [_mm256_setzero_si256(); G];
        let mut a1 = [_mm256_setzero_si256(); G];
        for (input, tabs) in inputs.iter().zip(tables.chunks_exact(2 * G)) {
            // SAFETY: `off + 64 <= end <= input.len()` (caller); unaligned loads.
            let (x0, x1) = unsafe {
                (
                    _mm256_loadu_si256(input.as_ptr().add(off).cast()),
                    _mm256_loadu_si256(input.as_ptr().add(off + 32).cast()),
                )
            };
            let lo0 = _mm256_and_si256(x0, mask);
            let hi0 = _mm256_and_si256(_mm256_srli_epi64::<4>(x0), mask);
            let lo1 = _mm256_and_si256(x1, mask);
            let hi1 = _mm256_and_si256(_mm256_srli_epi64::<4>(x1), mask);
            for g in 0..G {
                let (tl, th) = (tabs[2 * g], tabs[2 * g + 1]);
                a0[g] = _mm256_xor_si256(
                    a0[g],
                    _mm256_xor_si256(_mm256_shuffle_epi8(tl, lo0), _mm256_shuffle_epi8(th, hi0)),
                );
                a1[g] = _mm256_xor_si256(
                    a1[g],
                    _mm256_xor_si256(_mm256_shuffle_epi8(tl, lo1), _mm256_shuffle_epi8(th, hi1)),
                );
            }
        }
        for ((out, v0), v1) in outputs.iter_mut().zip(a0).zip(a1) {
            // SAFETY: `off + 64 <= end <= out.len()` (caller); unaligned stores.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().add(off).cast(), v0);
                _mm256_storeu_si256(out.as_mut_ptr().add(off + 32).cast(), v1);
            }
        }
        off += 64;
    }
}

/// Computes `G` output rows over columns `start..end`, one vector per step (the
/// 32-byte tail after [`group64`]).
///
/// # Safety
/// The CPU must support AVX2; `start` and `end` must be multiples of 32 with every
/// row at least `end` bytes long; `tables` holds `2 · G` entries per input and
/// `outputs` has `G` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn group<const G: usize>(
    tables: &[__m256i],
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
    start: usize,
    end: usize,
) {
    let mask = _mm256_set1_epi8(0x0f);
    let mut off = start;
    while off < end {
        let mut acc = [_mm256_setzero_si256(); G];
        for (input, tabs) in inputs.iter().zip(tables.chunks_exact(2 * G)) {
            // SAFETY: `off + 32 <= end <= input.len()` (caller); unaligned load.
            let x = unsafe { _mm256_loadu_si256(input.as_ptr().add(off).cast()) };
            let lo = _mm256_and_si256(x, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi64::<4>(x), mask);
            for g in 0..G {
                let p =
                    _mm256_xor_si256(_mm256_shuffle_epi8(tabs[2 * g], lo), _mm256_shuffle_epi8(tabs[2 * g + 1], hi));
                acc[g] = _mm256_xor_si256(acc[g], p);
            }
        }
        for (out, a) in outputs.iter_mut().zip(acc) {
            // SAFETY: `off + 32 <= end <= out.len()` (caller); unaligned store.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(off).cast(), a) };
        }
        off += 32;
    }
}

#[cfg(test)]
mod tuning {
    //! Tuning the kernel on a new machine: every group size against ISA-L on a
    //! pipeline-like memory pattern (64 MiB of sources, two recycled output buffers),
    //! interleaved, median of 7 rounds of thread CPU time; every output is checked
    //! against ISA-L's. A measurement, not a regression test:
    //! `cargo test -p skyshard-offload --release -- --ignored group_sizes --nocapture`
    //! (`SKYSHARD_TUNE_KN=8,12` picks the code).

    use std::time::Duration;

    use super::*;
    use crate::isal::IsalKernel;

    fn cpu<R>(f: impl FnOnce() -> R) -> Duration {
        let t = cpu_time::ThreadTime::now();
        std::hint::black_box(f());
        t.elapsed()
    }

    #[test]
    #[ignore = "a tuning measurement; run it by name with --ignored"]
    fn group_sizes() {
        let kn = std::env::var("SKYSHARD_TUNE_KN").unwrap_or_else(|_| "4,6".into());
        let (k, n) = kn.split_once(',').map(|(k, n)| (k.parse().expect("k"), n.parse().expect("n"))).expect("k,n");
        let Ok(isal) = IsalKernel::new() else {
            eprintln!("ISA-L is not installed (apt-get install libisal2): nothing to compare with");
            return;
        };
        let Some(_) = Avx2Kernel::new() else {
            eprintln!("this CPU has no AVX2");
            return;
        };
        let (total, seg) = (64usize << 20, 4usize << 20);
        let (sym, segs) = (seg / k + 32, total / seg);
        let src: Vec<Vec<u8>> = (0..segs).map(|s| (0..k * sym).map(|i| (i * 7 + s) as u8).collect()).collect();
        let coeffs: Vec<u8> = (0..k * n).map(|i| (i * 37 + 11) as u8 | 1).collect();
        let tables = isal.tables(k, n, &coeffs);
        let kernels: Vec<(String, Avx2Kernel)> = [2usize, 3, 4, 5, 6, 8]
            .iter()
            .map(|&g| (format!("avx2 g{g}"), Avx2Kernel::with_group(g).expect("avx2")))
            .collect();
        // Every group size computes what ISA-L computes.
        let mut want = vec![0u8; n * sym];
        let ins: Vec<&[u8]> = src[0].chunks(sym).collect();
        isal.encode_with_tables(&tables, &ins, &mut want.chunks_mut(sym).collect::<Vec<_>>());
        for (name, kern) in &kernels {
            let mut got = vec![0u8; n * sym];
            kern.dot_prod(&coeffs, &ins, &mut got.chunks_mut(sym).collect::<Vec<_>>());
            assert!(got == want, "{name} disagrees with ISA-L");
        }
        let mut outs: Vec<Vec<u8>> = (0..2).map(|_| vec![0u8; n * sym]).collect();
        let mut results: Vec<(String, Vec<Duration>)> = vec![("isal".into(), Vec::new())];
        results.extend(kernels.iter().map(|(name, _)| (name.clone(), Vec::new())));
        for _round in 0..7 {
            results[0].1.push(cpu(|| {
                for (i, s) in src.iter().enumerate() {
                    let ins: Vec<&[u8]> = s.chunks(sym).collect();
                    isal.encode_with_tables(&tables, &ins, &mut outs[i % 2].chunks_mut(sym).collect::<Vec<_>>());
                }
            }));
            for (j, (_, kern)) in kernels.iter().enumerate() {
                results[j + 1].1.push(cpu(|| {
                    for (i, s) in src.iter().enumerate() {
                        let ins: Vec<&[u8]> = s.chunks(sym).collect();
                        kern.dot_prod(&coeffs, &ins, &mut outs[i % 2].chunks_mut(sym).collect::<Vec<_>>());
                    }
                }));
            }
        }
        for (name, mut v) in results {
            v.sort();
            let med = v[v.len() / 2];
            println!("{k}-of-{n} {name:<10} {:.2} GB/s", (segs * k * sym) as f64 / med.as_secs_f64() / 1e9);
        }
    }
}

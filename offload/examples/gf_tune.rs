//! Tuning the AVX2 GF kernel on a new machine: every group size against ISA-L on a
//! pipeline-like memory pattern (64 MiB of sources, two recycled output buffers),
//! interleaved, median of 7 rounds of thread CPU time.
//!
//! `cargo run --release -p skyshard-offload --example gf_tune -- 4 6`
use std::time::Duration;

use offload::engine::gf_avx2::Avx2Kernel;
use offload::engine::isal::IsalKernel;
use offload::gf::GfKernel;

fn cpu<R>(f: impl FnOnce() -> R) -> Duration {
    let t = cpu_time::ThreadTime::now();
    std::hint::black_box(f());
    t.elapsed()
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("number")).collect();
    let (k, n) = (args.first().copied().unwrap_or(4), args.get(1).copied().unwrap_or(6));
    let total = args.get(3).copied().unwrap_or(64) << 20;
    let seg = (4usize << 20).min(total);
    let sym = seg / k + 32;
    let segs = total / seg;
    let src: Vec<Vec<u8>> = (0..segs).map(|s| (0..k * sym).map(|i| (i * 7 + s) as u8).collect()).collect();
    let mut outs: Vec<Vec<u8>> = (0..2).map(|_| vec![0u8; n * sym]).collect();
    let coeffs: Vec<u8> = (0..k * n).map(|i| (i * 37 + 11) as u8 | 1).collect();
    let Ok(isal) = IsalKernel::new() else {
        eprintln!("ISA-L is not installed (apt-get install libisal2): nothing to compare with");
        return;
    };
    let tables = isal.tables(k, n, &coeffs);
    let mut results: Vec<(String, Vec<Duration>)> = Vec::new();
    let kernels: Vec<(String, Avx2Kernel)> = [2usize, 3, 4, 5, 6, 8]
        .iter()
        .map(|&g| (format!("avx2 g{g}"), Avx2Kernel::with_group(g).expect("avx2")))
        .collect();
    let rounds = args.get(2).copied().unwrap_or(7);
    for _round in 0..rounds {
        let t = cpu(|| {
            for (i, s) in src.iter().enumerate() {
                let ins: Vec<&[u8]> = s.chunks(sym).collect();
                let mut o: Vec<&mut [u8]> = outs[i % 2].chunks_mut(sym).collect();
                isal.encode_with_tables(&tables, &ins, &mut o);
            }
        });
        push(&mut results, "isal", t);
        for (name, kern) in &kernels {
            let t = cpu(|| {
                for (i, s) in src.iter().enumerate() {
                    let ins: Vec<&[u8]> = s.chunks(sym).collect();
                    let mut o: Vec<&mut [u8]> = outs[i % 2].chunks_mut(sym).collect();
                    kern.dot_prod(&coeffs, &ins, &mut o);
                }
            });
            push(&mut results, name, t);
        }
    }
    for (name, mut v) in results {
        v.sort();
        let med = v[v.len() / 2];
        println!("{k}-of-{n} {name:<10} {:.2} GB/s", (segs * k * sym) as f64 / med.as_secs_f64() / 1e9);
    }
}

fn push(r: &mut Vec<(String, Vec<Duration>)>, name: &str, t: Duration) {
    match r.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => v.push(t),
        None => r.push((name.to_string(), vec![t])),
    }
}

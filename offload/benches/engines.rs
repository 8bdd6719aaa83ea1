//! Criterion benches, one group per job, every engine built here side by side.
//! `skyshard bench codec` is the command that reports ratios against baselines;
//! these are for profiling one engine at a time.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use offload::aead::{AeadEngine, DataKey, Nonce};
use offload::crc::Crc32c;
use offload::gf::GfKernel;
use offload::xts::XtsKeyMaterial;
use offload::{Capabilities, engine_names, probe};

/// Every engine of `job` this machine can run, built by name.
fn all<T: ?Sized>(
    job: &str,
    caps: &Capabilities,
    build: fn(&str, &Capabilities) -> Result<Arc<T>, offload::SelectError>,
) -> Vec<Arc<T>> {
    engine_names(job).into_iter().filter_map(|name| build(name, caps).ok()).collect()
}

fn aead(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead-seal-4MiB");
    let len = 4 << 20;
    g.throughput(Throughput::Bytes(len as u64));
    let engines: Vec<Arc<dyn AeadEngine>> = all("aead", &probe(), offload::aead_engine);
    for e in engines {
        let key = e.key(&DataKey::from_bytes([1; 32])).expect("key");
        let mut buf = vec![0u8; len];
        g.bench_function(e.name(), |b| b.iter(|| key.seal(&Nonce([0; 12]), b"", black_box(&mut buf))));
    }
}

fn gf(c: &mut Criterion) {
    let kernels: Vec<Arc<dyn GfKernel>> = all("gf", &probe(), offload::gf_kernel);
    for (k, n) in [(4usize, 6usize), (8, 12)] {
        let mut g = c.benchmark_group(format!("gf-encode-{k}of{n}-4MiB"));
        let len = (4 << 20) / k;
        g.throughput(Throughput::Bytes((k * len) as u64));
        let coeffs: Vec<u8> = (0..k * n).map(|i| (i * 37 + 11) as u8).collect();
        let data = vec![5u8; k * len];
        let inputs: Vec<&[u8]> = data.chunks(len).collect();
        let mut out = vec![0u8; n * len];
        for kernel in &kernels {
            g.bench_function(kernel.name(), |b| {
                b.iter(|| kernel.dot_prod(&coeffs, &inputs, &mut out.chunks_mut(len).collect::<Vec<_>>()))
            });
        }
    }
}

fn crc(c: &mut Criterion) {
    let engines: Vec<Arc<dyn Crc32c>> = all("crc32c", &probe(), offload::crc32c_engine);
    for len in [4096usize, 1 << 20] {
        let mut g = c.benchmark_group(format!("crc32c-{len}"));
        g.throughput(Throughput::Bytes(len as u64));
        let data = vec![3u8; len];
        for e in &engines {
            g.bench_function(e.name(), |b| b.iter(|| e.checksum(black_box(&data))));
        }
    }
}

fn xts(c: &mut Criterion) {
    let mut g = c.benchmark_group("xts-4KiB");
    g.throughput(Throughput::Bytes(4096));
    let engines = all("xts", &probe(), offload::xts_engine);
    let mut buf = vec![0u8; 4096];
    for e in engines {
        let key = e.key(&XtsKeyMaterial::from_bytes([9; 64]));
        g.bench_function(e.name(), |b| b.iter(|| key.encrypt_sector(7, black_box(&mut buf))));
    }
}

criterion_group!(benches, aead, gf, crc, xts);
criterion_main!(benches);

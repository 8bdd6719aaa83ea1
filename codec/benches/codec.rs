//! Criterion benches of the codec's stages on one 4 MiB segment, 4-of-6.
//! `skyshard bench codec` is the command that reports figures against baselines.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::sync::Arc;

use codec::object::segment_buffer_capacity;
use codec::{CodingMatrix, CodingParams, ObjectDecoder, ObjectEncoder, VersionId};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use offload::aead::DataKey;
use offload::{AlignedBuf, Offload, OffloadConfig, probe};

fn bench(c: &mut Criterion) {
    let (offload, _) = Offload::select(&OffloadConfig::default(), &probe()).expect("engines");
    let params = CodingParams::new(4, 6, 4 << 20).expect("params");
    let matrix = Arc::new(CodingMatrix::generate(4, 6, offload.random.as_ref()).expect("matrix"));
    let key = DataKey::from_bytes([1; 32]);
    let version = VersionId([2; 16]);
    let len = 4usize << 20;
    let mut plain = AlignedBuf::with_capacity(segment_buffer_capacity(&params));
    plain.resize(len);
    let mut g = c.benchmark_group("codec-4of6-4MiB");
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("encode_segment", |b| {
        b.iter(|| {
            let mut enc =
                ObjectEncoder::new(&offload, params, None, version, &key, matrix.clone(), len as u64).expect("encoder");
            enc.encode_segment(plain.clone()).expect("encode")
        })
    });
    let mut enc = ObjectEncoder::new(&offload, params, None, version, &key, matrix.clone(), len as u64).expect("enc");
    let seg = enc.encode_segment(plain.clone()).expect("encode");
    let records: Vec<(u8, &[u8])> = (0..4u8).map(|i| (i + 2, seg.record(usize::from(i) + 2))).collect();
    let mut dec = ObjectDecoder::new(&offload, params, version, &key, len as u64).expect("decoder");
    g.bench_function("decode_segment", |b| {
        b.iter(|| dec.decode_segment(0, &records[..], AlignedBuf::new()).expect("decode"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

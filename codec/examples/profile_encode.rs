//! Where the time of `ObjectEncoder` goes: per-engine meters around a 64 MiB object.
//! `cargo run --release -p skyshard-codec --example profile_encode -- 4 6`
use std::sync::Arc;

use codec::object::segment_buffer_capacity;
use codec::{CodingMatrix, CodingParams, ObjectDecoder, ObjectEncoder, SegmentLayout, VersionId};
use offload::aead::DataKey;
use offload::{AlignedBuf, Offload, OffloadConfig, probe};

fn main() {
    let args: Vec<u8> = std::env::args().skip(1).map(|a| a.parse().expect("number")).collect();
    let (k, n) = (args.first().copied().unwrap_or(4), args.get(1).copied().unwrap_or(6));
    let (offload, _) = Offload::select(&OffloadConfig::default(), &probe()).expect("engines");
    let params = CodingParams::new(k, n, 4 << 20).expect("params");
    let len = 64u64 << 20;
    let layout = SegmentLayout::new(len, params.segment_size());
    let matrix = Arc::new(CodingMatrix::generate(k, n, offload.random.as_ref()).expect("matrix"));
    let key = DataKey::from_bytes([1; 32]);
    let version = VersionId([2; 16]);
    let cap = segment_buffer_capacity(&params);
    let mut work: Vec<AlignedBuf> = (0..layout.count()).map(|_| AlignedBuf::with_capacity(cap)).collect();
    let mut spare: Vec<AlignedBuf> = (0..2).map(|_| AlignedBuf::new()).collect();
    let mut records = Vec::new();
    for round in 0..6 {
        for (i, w) in work.iter_mut().enumerate() {
            w.clear();
            w.extend_from_slice(&vec![(i as u8) ^ round; layout.plain_len(i as u64) as usize]);
        }
        let before = offload.meters.snapshot();
        let t = cpu_time::ThreadTime::now();
        let mut enc = ObjectEncoder::new(&offload, params, None, version, &key, matrix.clone(), len).expect("enc");
        let mut back = Vec::new();
        for (i, p) in work.drain(..).enumerate() {
            let seg = {
                let mut job = enc.prepare(p).expect("prepare");
                let tag = enc.seal(&mut job).expect("seal");
                enc.finish(job, tag, std::mem::take(&mut spare[i % 2])).expect("finish")
            };
            if round == 0 {
                records.push((0..usize::from(n)).map(|f| seg.record(f).to_vec()).collect::<Vec<_>>());
            }
            let (r, _, s) = seg.into_records();
            spare[i % 2] = r;
            back.push(s);
        }
        let total = t.elapsed();
        work = back;
        let after = offload.meters.snapshot();
        let mut line =
            format!("encode {:.2} GB/s ({:.1} ms):", len as f64 / total.as_secs_f64() / 1e9, total.as_secs_f64() * 1e3);
        for (a, b) in after.iter().zip(&before) {
            let ms = (a.busy_ns - b.busy_ns) as f64 / 1e6;
            if ms > 0.05 {
                line += &format!(" {}={:.1}ms", a.job, ms);
            }
        }
        println!("{line}");
    }
    let mut dec = ObjectDecoder::new(&offload, params, version, &key, len).expect("dec");
    let mut outs: Vec<AlignedBuf> = (0..2).map(|_| AlignedBuf::new()).collect();
    for _ in 0..5 {
        let before = offload.meters.snapshot();
        let t = cpu_time::ThreadTime::now();
        for (i, recs) in records.iter().enumerate() {
            let given: Vec<(u8, &[u8])> =
                (usize::from(n - k)..usize::from(n)).map(|f| (f as u8, &recs[f][..])).collect();
            let seg = dec.decode_segment(i as u64, &given, std::mem::take(&mut outs[i % 2])).expect("decode");
            outs[i % 2] = seg.data;
        }
        let total = t.elapsed();
        let after = offload.meters.snapshot();
        let mut line =
            format!("decode {:.2} GB/s ({:.1} ms):", len as f64 / total.as_secs_f64() / 1e9, total.as_secs_f64() * 1e3);
        for (a, b) in after.iter().zip(&before) {
            let ms = (a.busy_ns - b.busy_ns) as f64 / 1e6;
            if ms > 0.05 {
                line += &format!(" {}={:.1}ms", a.job, ms);
            }
        }
        println!("{line}");
    }
}

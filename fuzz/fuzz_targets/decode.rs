//! Decoding damaged fragments: whatever is done to the records of a real object —
//! bytes flipped, records replaced by arbitrary bytes, fragments repeated or missing,
//! checksums recomputed as a malicious location would — decoding either returns the
//! object's exact bytes or an error. Never a panic, never other bytes.
#![no_main]

use std::sync::{Arc, OnceLock};

use codec::fragment::record_checksum;
use codec::object::{ObjectDecoder, ObjectEncoder};
use codec::{CodingMatrix, CodingParams, VersionId};
use libfuzzer_sys::fuzz_target;
use offload::aead::DataKey;
use offload::random::{SecureRandom, SeededRandom};
use offload::{AlignedBuf, Offload, OffloadConfig, probe};

const SEG: u32 = 4096;
const LEN: usize = 2 * SEG as usize + 777;

struct Fixture {
    offload: Offload,
    params: CodingParams,
    key: DataKey,
    version: VersionId,
    plain: Vec<u8>,
    /// records[segment][fragment]
    records: Vec<Vec<Vec<u8>>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (offload, _) = Offload::select(&OffloadConfig::default(), &probe()).expect("engines");
        let rng = SeededRandom::new(1);
        let params = CodingParams::new(4, 6, SEG).expect("params");
        let matrix = Arc::new(CodingMatrix::generate(4, 6, &rng).expect("matrix"));
        let key = DataKey::generate(&rng).expect("key");
        let version = VersionId::generate(&rng).expect("id");
        let mut plain = vec![0u8; LEN];
        rng.fill(&mut plain).expect("fill");
        let mut enc = ObjectEncoder::new(&offload, params, None, version, &key, matrix, LEN as u64).expect("enc");
        let mut records = Vec::new();
        for s in 0..enc.layout().count() {
            let start = enc.layout().offset(s) as usize;
            let seg = AlignedBuf::from_slice(&plain[start..start + enc.layout().plain_len(s) as usize]);
            let e = enc.encode_segment(seg).expect("encode");
            records.push((0..6).map(|f| e.record(f).to_vec()).collect());
        }
        Fixture { offload, params, key, version, plain, records }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&[segment, order, flags], mut input)) = data.split_first_chunk::<3>() else { return };
    let index = u64::from(segment) % f.records.len() as u64;
    let mut recs: Vec<(u8, Vec<u8>)> =
        f.records[index as usize].iter().enumerate().map(|(i, r)| (i as u8, r.clone())).collect();
    // Edits: (fragment, kind, offset, value) quadruples.
    while let Some((&[frag, kind, off, val], rest)) = input.split_first_chunk::<4>() {
        input = rest;
        let Some((_, rec)) = recs.get_mut(usize::from(frag) % 6) else { continue };
        match kind % 4 {
            0 => {
                let i = usize::from(off) * 17 % rec.len().max(1);
                if let Some(b) = rec.get_mut(i) {
                    *b ^= val | 1;
                }
            }
            1 => rec.truncate(usize::from(off) * 31),
            2 => rec.push(val),
            _ => {
                // Replace the record by the rest of the input.
                *rec = std::mem::take(&mut input).to_vec();
            }
        }
        if flags & 1 == 1 && rec.len() >= 4 {
            let body = rec.len() - 4;
            let sum = record_checksum(f.offload.crc32c.as_ref(), &f.version, index, &rec[..body]);
            rec[body..].copy_from_slice(&sum.to_le_bytes());
        }
    }
    // A subset of the fragments, rotated, sometimes with repeats.
    let keep: Vec<(u8, &[u8])> = (0..6)
        .filter(|i| order & (1 << i) != 0)
        .map(|i| ((i + usize::from(flags >> 4)) % 6, i))
        .map(|(j, _)| (recs[j].0, recs[j].1.as_slice()))
        .collect();
    let mut dec = ObjectDecoder::new(&f.offload, f.params, f.version, &f.key, LEN as u64).expect("decoder");
    if let Ok(seg) = dec.decode_segment(index, &keep, AlignedBuf::new()) {
        let start = dec.layout().offset(index) as usize;
        let end = start + dec.layout().plain_len(index) as usize;
        assert_eq!(&seg.data[..], &f.plain[start..end], "decoded bytes differ from the object");
    }
});

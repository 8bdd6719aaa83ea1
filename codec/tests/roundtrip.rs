//! The codec's guarantees, end to end on whole objects: any `k` of `n` fragments
//! rebuild the object; recoded fragments are as good as the originals; corruption,
//! forgery, reordering, truncation and wrong keys are errors, never wrong bytes.

use std::sync::Arc;

use codec::fragment::{FragmentHeader, FragmentLayout, HEADER_LEN, record_checksum, split_records};
use codec::object::{Segmenter, segment_buffer_capacity};
use codec::{CodecError, CodingMatrix, CodingParams, ObjectDecoder, ObjectEncoder, Recoder, RecordError, VersionId};
use offload::aead::DataKey;
use offload::compress::Algorithm;
use offload::random::{SecureRandom, SeededRandom};
use offload::{AlignedBuf, Offload, OffloadConfig, probe};
use proptest::prelude::*;

const SEG: u32 = 4096;

fn offload() -> Offload {
    Offload::select(&OffloadConfig::default(), &probe()).expect("engines").0
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut d = vec![0u8; len];
    SeededRandom::new(seed).fill(&mut d).expect("fill");
    d
}

struct Encoded {
    params: CodingParams,
    version: VersionId,
    key: DataKey,
    len: u64,
    fragments: Vec<Vec<u8>>,
    sealed_lens: Vec<u32>,
}

fn encode(o: &Offload, k: u8, n: u8, plain: &[u8], compression: Option<Algorithm>, seed: u64) -> Encoded {
    let params = CodingParams::new(k, n, SEG).expect("params");
    let rng = SeededRandom::new(seed);
    let matrix = Arc::new(CodingMatrix::generate(k, n, &rng).expect("matrix"));
    let key = DataKey::generate(&rng).expect("key");
    let version = VersionId::generate(&rng).expect("id");
    let mut enc =
        ObjectEncoder::new(o, params, compression, version, &key, matrix, plain.len() as u64).expect("encoder");
    let mut fragments: Vec<Vec<u8>> = (0..n).map(|i| enc.header(i).to_vec()).collect();
    let mut seg = Segmenter::new(*enc.layout(), segment_buffer_capacity(&params));
    let mut rest = plain;
    let mut sealed_lens = Vec::new();
    let mut emit = |s: AlignedBuf, enc: &mut ObjectEncoder| {
        let e = enc.encode_segment(s).expect("encode");
        sealed_lens.push(e.sealed_len());
        for (i, f) in fragments.iter_mut().enumerate() {
            f.extend_from_slice(e.record(i));
        }
    };
    while !rest.is_empty() {
        // Uneven chunks, as a network delivers them.
        let take = rest.len().min(1000 + rest.len() % 3001);
        let mut chunk = &rest[..take];
        while let Some(s) = seg.push(&mut chunk).expect("push") {
            emit(s, &mut enc);
        }
        rest = &rest[take..];
    }
    if let Some(s) = seg.finish().expect("finish") {
        emit(s, &mut enc);
    }
    Encoded { params, version, key, len: plain.len() as u64, fragments, sealed_lens }
}

/// Decodes the whole object from the fragments at `which`, as the gateway reads:
/// check each header, take each segment's record by its range in the layout the
/// metadata knows, decode segment by segment.
fn decode_with(o: &Offload, e: &Encoded, which: &[usize], key: &DataKey) -> Result<Vec<u8>, CodecError> {
    let mut dec = ObjectDecoder::new(o, e.params, e.version, key, e.len)?;
    let count = dec.layout().count();
    let layout = FragmentLayout::from_sealed_lens(e.params.k(), e.sealed_lens.iter().copied());
    let mut split = Vec::new();
    for &i in which {
        let f = &e.fragments[i];
        let h = dec.check_header(f)?;
        let recs: Vec<&[u8]> = (0..count)
            .map(|s| {
                let r = layout.record_range(s);
                f.get(r.start as usize..r.end as usize).unwrap_or(&[])
            })
            .collect();
        split.push((h.index, recs));
    }
    let mut out = Vec::new();
    for s in 0..count {
        let records: Vec<(u8, &[u8])> = split.iter().map(|(i, r)| (*i, r[s as usize])).collect();
        let seg = dec.decode_segment(s, &records, AlignedBuf::new())?;
        out.extend_from_slice(&seg.data);
    }
    Ok(out)
}

fn decode(o: &Offload, e: &Encoded, which: &[usize]) -> Result<Vec<u8>, CodecError> {
    decode_with(o, e, which, &e.key)
}

#[test]
fn every_k_subset_rebuilds_the_object() {
    let o = offload();
    let s = SEG as usize;
    for (k, n) in [(1u8, 1u8), (1, 3), (2, 3), (3, 5), (4, 6), (8, 12)] {
        for len in [0, 1, s - 1, s, s + 1, 3 * s + 17] {
            let plain = data(len, len as u64 + 7);
            let e = encode(&o, k, n, &plain, None, u64::from(k) * 100 + u64::from(n));
            let mut subsets = 0;
            for_each_subset(usize::from(n), usize::from(k), |which| {
                let got = decode(&o, &e, which).unwrap_or_else(|err| panic!("{k}-of-{n}, {len} B, {which:?}: {err}"));
                assert!(got == plain, "{k}-of-{n}, {len} B, {which:?}: wrong bytes");
                subsets += 1;
                true
            });
            assert!(subsets > 0);
        }
    }
}

#[test]
fn ten_of_sixteen_decodes_from_sampled_subsets() {
    let o = offload();
    let plain = data(2 * SEG as usize + 5, 3);
    let e = encode(&o, 10, 16, &plain, None, 4);
    let mut i = 0u64;
    for_each_subset(16, 10, |which| {
        i += 1;
        if i.is_multiple_of(97) {
            assert_eq!(decode(&o, &e, which).expect("decode"), plain, "{which:?}");
        }
        true
    });
}

#[test]
fn fragments_are_ciphertext_and_match_the_layout() {
    let o = offload();
    let marker = b"PLAINTEXT-MARKER-0123456789";
    let plain: Vec<u8> = marker.iter().copied().cycle().take(3 * SEG as usize + 99).collect();
    let e = encode(&o, 4, 6, &plain, None, 5);
    let seg = codec::SegmentLayout::new(e.len, SEG);
    let layout = FragmentLayout::uncompressed(&e.params, &seg);
    for f in &e.fragments {
        assert!(!f.windows(8).any(|w| marker.windows(8).any(|m| m == w)), "plaintext leaked into a fragment");
        assert_eq!(f.len() as u64, layout.fragment_len());
        let recs = split_records(4, &f[HEADER_LEN..], seg.count()).expect("split");
        for (i, r) in recs.iter().enumerate() {
            let range = layout.record_range(i as u64);
            assert_eq!(&f[range.start as usize..range.end as usize], *r);
        }
    }
}

#[test]
fn recoded_fragments_decode_with_any_others() {
    let o = offload();
    let plain = data(2 * SEG as usize + 300, 11);
    let mut e = encode(&o, 4, 6, &plain, None, 12);
    let count = e.sealed_lens.len() as u64;
    // Lose fragments 1 and 4; rebuild both from the survivors, one after the other.
    for lost in [1usize, 4] {
        let survivors: Vec<usize> = (0..6).filter(|&i| i != 1 && i != 4 || (i == 1 && lost == 4)).collect();
        let header = FragmentHeader::parse(&e.fragments[survivors[0]], o.crc32c.as_ref()).expect("header");
        let recoder = Recoder::new(&o, &header, lost as u8).expect("recoder");
        let split: Vec<(u8, Vec<&[u8]>)> = survivors
            .iter()
            .map(|&i| (i as u8, split_records(4, &e.fragments[i][HEADER_LEN..], count).expect("split")))
            .collect();
        let mut fresh = recoder.header().to_vec();
        for s in 0..count {
            let recs: Vec<(u8, &[u8])> = split.iter().map(|(i, r)| (*i, r[s as usize])).collect();
            fresh.extend_from_slice(&recoder.recode_segment(s, &recs).expect("recode").record);
        }
        assert_ne!(fresh, e.fragments[lost], "a recoded fragment is a new combination");
        e.fragments[lost] = fresh;
    }
    for_each_subset(6, 4, |which| {
        assert_eq!(decode(&o, &e, which).expect("decode"), plain, "{which:?}");
        true
    });
}

#[test]
fn recoding_needs_k_independent_survivors() {
    let o = offload();
    let e = encode(&o, 4, 6, &data(100, 1), None, 2);
    let header = FragmentHeader::parse(&e.fragments[0], o.crc32c.as_ref()).expect("header");
    let recoder = Recoder::new(&o, &header, 5).expect("recoder");
    let recs: Vec<(u8, &[u8])> = (0..3).map(|i| (i as u8, &e.fragments[i][HEADER_LEN..])).collect();
    assert!(matches!(recoder.recode_segment(0, &recs), Err(CodecError::Insufficient { usable: 3, needed: 4, .. })));
    assert!(Recoder::new(&o, &header, 6).is_err());
}

#[test]
fn every_flipped_bit_is_caught() {
    let o = offload();
    let plain = data(1000, 21);
    let e = encode(&o, 4, 6, &plain, None, 22);
    let victim = 2;
    let bits = e.fragments[victim].len() * 8;
    for bit in 0..bits {
        let mut bad = Encoded { fragments: e.fragments.clone(), ..clone_meta(&e) };
        bad.fragments[victim][bit / 8] ^= 1 << (bit % 8);
        // Exactly k fragments including the damaged one: an error, never bytes.
        match decode(&o, &bad, &[0, 1, victim, 3]) {
            Err(_) => {}
            Ok(got) => {
                panic!("bit {bit}: decoded {} bytes from a damaged fragment (equal: {})", got.len(), got == plain)
            }
        }
        // With a spare fragment the damaged one is skipped (header damage aside).
        if bit >= HEADER_LEN * 8 {
            assert_eq!(decode(&o, &bad, &[victim, 0, 1, 3, 5]).expect("spare fragment"), plain, "bit {bit}");
        }
    }
}

fn clone_meta(e: &Encoded) -> Encoded {
    Encoded {
        params: e.params,
        version: e.version,
        key: e.key.clone(),
        len: e.len,
        fragments: Vec::new(),
        sealed_lens: e.sealed_lens.clone(),
    }
}

/// Rewrites record `seg` of fragment `frag` with `f`, then fixes its checksum as a
/// malicious location could.
fn forge(o: &Offload, e: &mut Encoded, frag: usize, seg: u64, f: impl FnOnce(&mut [u8])) {
    let count = e.sealed_lens.len() as u64;
    let layout = FragmentLayout::from_sealed_lens(e.params.k(), e.sealed_lens.iter().copied());
    let r = layout.record_range(seg);
    let rec = &mut e.fragments[frag][r.start as usize..r.end as usize];
    f(rec);
    let body = rec.len() - 4;
    let sum = record_checksum(o.crc32c.as_ref(), &e.version, seg, &rec[..body]);
    rec[body..].copy_from_slice(&sum.to_le_bytes());
    assert!(count > seg);
}

#[test]
fn forged_records_fail_authentication_and_are_named() {
    let o = offload();
    let plain = data(2 * SEG as usize, 31);
    let mut e = encode(&o, 4, 6, &plain, None, 32);
    forge(&o, &mut e, 1, 1, |rec| rec[40] ^= 0x55);
    assert!(matches!(decode(&o, &e, &[0, 1, 2, 3]), Err(CodecError::Authentication { index: 1 })));

    // With spare fragments the decoder finds an authentic subset and names the forger.
    let mut dec = ObjectDecoder::new(&o, e.params, e.version, &e.key, e.len).expect("decoder");
    let split: Vec<Vec<&[u8]>> =
        e.fragments.iter().map(|f| split_records(4, &f[HEADER_LEN..], 2).expect("split")).collect();
    let recs: Vec<(u8, &[u8])> = (0..6).map(|i| (i as u8, split[i][1])).collect();
    let seg = dec.decode_segment(1, &recs, AlignedBuf::new()).expect("decode around the forger");
    assert_eq!(&seg.data[..], &plain[SEG as usize..]);
    assert_eq!(seg.rejected, vec![(1, RecordError::Forged)]);
}

#[test]
fn a_damaged_symbol_is_named_whether_it_was_to_be_decoded_or_not() {
    let o = offload();
    let plain = data(SEG as usize, 33);
    let mut e = encode(&o, 4, 6, &plain, None, 34);
    let range = FragmentLayout::from_sealed_lens(4, e.sealed_lens.iter().copied()).record_range(0);
    // One byte deep inside the coded symbol: the checksum is summed while decoding.
    e.fragments[1][HEADER_LEN + (range.start + range.end) as usize / 2] ^= 0x01;
    let split: Vec<Vec<&[u8]>> =
        e.fragments.iter().map(|f| split_records(4, &f[HEADER_LEN..], 1).expect("split")).collect();
    for order in [[1usize, 0, 2, 3, 4], [0, 2, 3, 4, 1]] {
        let mut dec = ObjectDecoder::new(&o, e.params, e.version, &e.key, e.len).expect("decoder");
        let recs: Vec<(u8, &[u8])> = order.iter().map(|&i| (i as u8, split[i][0])).collect();
        let seg = dec.decode_segment(0, &recs, AlignedBuf::new()).expect("decode around the damage");
        assert_eq!(&seg.data[..], &plain[..], "order {order:?}");
        assert_eq!(seg.rejected, vec![(1, RecordError::Checksum)], "order {order:?}");
    }
}

#[test]
fn reordered_and_truncated_objects_are_refused() {
    let o = offload();
    let plain = data(3 * SEG as usize, 41);
    let e = encode(&o, 4, 6, &plain, None, 42);
    let layout = FragmentLayout::from_sealed_lens(4, e.sealed_lens.iter().copied());
    let (r0, r1) = (layout.record_range(0), layout.record_range(1));

    // Swap segments 0 and 1 in every fragment: checksums bind the index.
    let mut swapped = Encoded { fragments: e.fragments.clone(), ..clone_meta(&e) };
    for f in &mut swapped.fragments {
        let (a, b) = (f[r0.start as usize..r0.end as usize].to_vec(), f[r1.start as usize..r1.end as usize].to_vec());
        f[r0.start as usize..r0.end as usize].copy_from_slice(&b);
        f[r1.start as usize..r1.end as usize].copy_from_slice(&a);
    }
    assert!(matches!(decode(&o, &swapped, &[0, 1, 2, 3]), Err(CodecError::Insufficient { index: 0, .. })));

    // A forger who also fixes the checksums still fails: the index is in the AAD.
    for f in 0..4 {
        forge(&o, &mut swapped, f, 0, |_| {});
        forge(&o, &mut swapped, f, 1, |_| {});
    }
    assert!(matches!(decode(&o, &swapped, &[0, 1, 2, 3]), Err(CodecError::Authentication { index: 0 })));

    // Truncation: read as a two-segment object, segment 1 claims not to be last.
    let mut short = Encoded { fragments: Vec::new(), len: 2 * SEG as u64, ..clone_meta(&e) };
    let mut dec = ObjectDecoder::new(&o, short.params, short.version, &short.key, short.len).expect("decoder");
    let recs: Vec<(u8, &[u8])> =
        (0..4).map(|i| (i as u8, &e.fragments[i][r1.start as usize..r1.end as usize])).collect();
    assert!(matches!(dec.decode_segment(1, &recs, AlignedBuf::new()), Err(CodecError::Insufficient { .. })));
    // ...and with the last flag forged (and checksums fixed), authentication fails.
    short.fragments = e.fragments.clone();
    for f in 0..4 {
        forge(&o, &mut short, f, 1, |rec| rec[4] |= 0x80);
    }
    let recs: Vec<(u8, &[u8])> =
        (0..4).map(|i| (i as u8, &short.fragments[i][r1.start as usize..r1.end as usize])).collect();
    assert!(matches!(dec.decode_segment(1, &recs, AlignedBuf::new()), Err(CodecError::Authentication { index: 1 })));
}

#[test]
fn wrong_key_or_other_object_is_refused() {
    let o = offload();
    let plain = data(5000, 51);
    let e = encode(&o, 4, 6, &plain, None, 52);
    let wrong = DataKey::from_bytes([0xAB; 32]);
    assert!(matches!(decode_with(&o, &e, &[0, 1, 2, 3], &wrong), Err(CodecError::Authentication { .. })));
    let other = encode(&o, 4, 6, &plain, None, 53);
    let mut mixed = Encoded { fragments: e.fragments.clone(), ..clone_meta(&e) };
    mixed.fragments[2] = other.fragments[2].clone();
    assert!(matches!(decode(&o, &mixed, &[0, 1, 2, 3]), Err(CodecError::Header { .. })));
}

#[test]
fn compression_round_trips_and_incompressible_data_stays_raw() {
    let o = offload();
    let text: Vec<u8> =
        b"the quick brown fox jumps over the lazy dog. ".iter().copied().cycle().take(5 * SEG as usize + 3).collect();
    for alg in [Algorithm::Zstd, Algorithm::Lz4] {
        let e = encode(&o, 4, 6, &text, Some(alg), 61);
        assert!(e.sealed_lens.iter().all(|&s| s < SEG / 2), "{alg:?} should shrink text: {:?}", e.sealed_lens);
        assert_eq!(decode(&o, &e, &[5, 3, 1, 0]).expect("decode"), text);
        let noise = data(3 * SEG as usize, 62);
        let e = encode(&o, 4, 6, &noise, Some(alg), 63);
        assert!(e.sealed_lens.iter().all(|&s| s == SEG + 16), "noise is stored raw");
        assert_eq!(decode(&o, &e, &[2, 3, 4, 5]).expect("decode"), noise);
    }
}

#[test]
fn too_few_fragments_is_an_error_not_a_guess() {
    let o = offload();
    let e = encode(&o, 4, 6, &data(777, 71), None, 72);
    assert!(matches!(decode(&o, &e, &[0, 1, 2]), Err(CodecError::Insufficient { usable: 3, needed: 4, .. })));
    // The same fragment four times is still one fragment.
    assert!(matches!(decode(&o, &e, &[1, 1, 1, 1]), Err(CodecError::Insufficient { usable: 1, .. })));
}

#[test]
fn segments_out_of_order_or_of_the_wrong_size_are_refused() {
    let o = offload();
    let params = CodingParams::new(2, 3, SEG).expect("params");
    let rng = SeededRandom::new(81);
    let m = Arc::new(CodingMatrix::generate(2, 3, &rng).expect("matrix"));
    let mut enc = ObjectEncoder::new(&o, params, None, VersionId([1; 16]), &DataKey::from_bytes([1; 32]), m, 5000)
        .expect("encoder");
    assert!(matches!(enc.encode_segment(AlignedBuf::zeroed(100)), Err(CodecError::SegmentLength { .. })));
    enc.encode_segment(AlignedBuf::zeroed(SEG as usize)).expect("first");
    enc.encode_segment(AlignedBuf::zeroed(5000 - SEG as usize)).expect("last");
    assert!(matches!(enc.encode_segment(AlignedBuf::zeroed(1)), Err(CodecError::SegmentOrder { .. })));

    let mut seg = Segmenter::new(codec::SegmentLayout::new(10, SEG), 64);
    let mut long: &[u8] = &[0u8; 11];
    assert!(seg.push(&mut long).expect("ten bytes").is_some());
    assert!(seg.push(&mut long).is_err(), "an eleventh byte is too many");
    let mut seg = Segmenter::new(codec::SegmentLayout::new(10, SEG), 64);
    let mut short: &[u8] = &[0u8; 9];
    assert!(seg.push(&mut short).expect("nine bytes").is_none());
    assert!(seg.finish().is_err(), "the tenth byte never came");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_objects_decode_from_random_subsets(
        len in 0usize..5 * SEG as usize,
        k in 1u8..6,
        extra in 0u8..4,
        seed in any::<u64>(),
        order in any::<u64>(),
    ) {
        let o = offload();
        let n = k + extra;
        let plain = data(len, seed);
        let e = encode(&o, k, n, &plain, None, seed ^ 1);
        // A pseudo-random k-subset in a pseudo-random order.
        let mut idx: Vec<usize> = (0..usize::from(n)).collect();
        let mut x = order;
        for i in (1..idx.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            idx.swap(i, (x >> 33) as usize % (i + 1));
        }
        idx.truncate(usize::from(k));
        prop_assert_eq!(decode(&o, &e, &idx).expect("decode"), plain);
    }
}

/// Calls `f` with every `k`-subset of `0..n`, in lexicographic order.
fn for_each_subset(n: usize, k: usize, mut f: impl FnMut(&[usize]) -> bool) {
    fn walk(n: usize, k: usize, start: usize, picked: &mut Vec<usize>, f: &mut dyn FnMut(&[usize]) -> bool) -> bool {
        if picked.len() == k {
            return f(picked);
        }
        for i in start..n {
            picked.push(i);
            let go_on = walk(n, k, i + 1, picked, f);
            picked.pop();
            if !go_on {
                return false;
            }
        }
        true
    }
    walk(n, k, 0, &mut Vec::with_capacity(k), &mut f);
}

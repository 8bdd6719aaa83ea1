//! Packs: small objects, each sealed under its own key and id, coded as consecutive
//! records of one fragment set. A pack's fragment is an ordinary fragment of the
//! pack's id whose segments are the members: records bound to the pack and the
//! slot, so that recoding (repair) needs neither keys nor knowledge of the members,
//! while each member decodes and opens alone, and only under its own key.

use std::sync::Arc;

use codec::fragment::{FragmentHeader, HEADER_LEN, split_records};
use codec::{CodecError, CodingMatrix, CodingParams, ObjectDecoder, ObjectEncoder, Recoder, RecordError, VersionId};
use offload::aead::DataKey;
use offload::random::{SecureRandom, SeededRandom};
use offload::{AlignedBuf, Offload, OffloadConfig, probe};

const SEG: u32 = 64 * 1024;
const K: u8 = 4;
const N: u8 = 6;

fn offload() -> Offload {
    Offload::select(&OffloadConfig::default(), &probe()).expect("engines").0
}

struct Member {
    id: VersionId,
    key: DataKey,
    plain: Vec<u8>,
}

struct Pack {
    id: VersionId,
    params: CodingParams,
    members: Vec<Member>,
    /// Each fragment: the pack's header, then one record per member, in slot order.
    fragments: Vec<Vec<u8>>,
}

fn pack(o: &Offload, sizes: &[usize], seed: u64) -> Pack {
    let rng = SeededRandom::new(seed);
    let params = CodingParams::new(K, N, SEG).expect("params");
    let matrix = Arc::new(CodingMatrix::generate(K, N, &rng).expect("matrix"));
    let id = VersionId::generate(&rng).expect("pack id");
    let mut fragments: Vec<Vec<u8>> = (0..N)
        .map(|index| {
            let h =
                FragmentHeader { k: K, n: N, index, segment_size: SEG, segment_count: sizes.len() as u64, version: id };
            h.to_bytes(o.crc32c.as_ref()).to_vec()
        })
        .collect();
    let mut members = Vec::new();
    for (slot, &size) in sizes.iter().enumerate() {
        let mut plain = vec![0u8; size];
        rng.fill(&mut plain).expect("fill");
        let member =
            Member { id: VersionId::generate(&rng).expect("id"), key: DataKey::generate(&rng).expect("key"), plain };
        let mut enc = ObjectEncoder::new(o, params, None, member.id, &member.key, matrix.clone(), size as u64)
            .expect("encoder")
            .in_pack(id, slot as u64)
            .expect("one segment");
        let e = enc.encode_segment(AlignedBuf::from_slice(&member.plain)).expect("encode");
        for (i, f) in fragments.iter_mut().enumerate() {
            f.extend_from_slice(e.record(i));
        }
        members.push(member);
    }
    Pack { id, params, members, fragments }
}

/// Each fragment's records, by slot.
fn records(p: &Pack) -> Vec<Vec<&[u8]>> {
    p.fragments.iter().map(|f| split_records(K, &f[HEADER_LEN..], p.members.len() as u64).expect("split")).collect()
}

fn decoder(o: &Offload, p: &Pack, m: &Member, slot: u64) -> ObjectDecoder {
    ObjectDecoder::new(o, p.params, m.id, &m.key, m.plain.len() as u64)
        .expect("decoder")
        .in_pack(p.id, slot)
        .expect("one segment")
}

#[test]
fn every_member_decodes_alone_from_any_k_fragments() {
    let o = offload();
    let p = pack(&o, &[4096, 1, 0, 65_536, 1000], 1);
    let recs = records(&p);
    for (slot, m) in p.members.iter().enumerate() {
        for skip in [[0usize, 1], [2, 5], [4, 5]] {
            let given: Vec<(u8, &[u8])> =
                (0..N as usize).filter(|i| !skip.contains(i)).map(|i| (i as u8, recs[i][slot])).collect();
            let d = decoder(&o, &p, m, slot as u64).decode_segment(0, &given, AlignedBuf::new()).expect("decode");
            assert_eq!(&d.data[..], &m.plain[..], "slot {slot} without fragments {skip:?}");
            assert!(d.rejected.is_empty());
        }
    }
}

#[test]
fn a_record_read_at_another_slot_or_from_another_pack_is_refused() {
    let o = offload();
    let p = pack(&o, &[4096, 4096], 2);
    let other = pack(&o, &[4096, 4096], 3);
    let recs = records(&p);
    let theirs = records(&other);
    // Slot 1's records offered as slot 0's: their checksums bind slot 1.
    let wrong_slot: Vec<(u8, &[u8])> = (0..N).map(|i| (i, recs[usize::from(i)][1])).collect();
    let err = decoder(&o, &p, &p.members[0], 0).decode_segment(0, &wrong_slot, AlignedBuf::new()).expect_err("refused");
    assert!(
        matches!(&err, CodecError::Insufficient { rejected, .. }
            if rejected.len() == usize::from(N) && rejected.iter().all(|(_, e)| *e == RecordError::Checksum)),
        "{err:?}"
    );
    // Another pack's slot 0 offered as this pack's slot 0.
    let wrong_pack: Vec<(u8, &[u8])> = (0..N).map(|i| (i, theirs[usize::from(i)][0])).collect();
    let err = decoder(&o, &p, &p.members[0], 0).decode_segment(0, &wrong_pack, AlignedBuf::new()).expect_err("refused");
    assert!(matches!(err, CodecError::Insufficient { usable: 0, .. }), "{err:?}");
    // The records decode only as what they are bound to: as an object of their own
    // (unbound) they fail their checksums too.
    let own: Vec<(u8, &[u8])> = (0..N).map(|i| (i, recs[usize::from(i)][0])).collect();
    let m = &p.members[0];
    let mut unbound = ObjectDecoder::new(&o, p.params, m.id, &m.key, m.plain.len() as u64).expect("decoder");
    assert!(matches!(
        unbound.decode_segment(0, &own, AlignedBuf::new()),
        Err(CodecError::Insufficient { usable: 0, .. })
    ));
}

#[test]
fn a_member_opens_only_under_its_own_key_and_id() {
    let o = offload();
    let p = pack(&o, &[4096, 4096], 4);
    let recs = records(&p);
    let given: Vec<(u8, &[u8])> = (0..N).map(|i| (i, recs[usize::from(i)][0])).collect();
    // Member 1's key and id at member 0's slot: the checksums pass (the slot is
    // right), the seal does not.
    let (m0, m1) = (&p.members[0], &p.members[1]);
    let wrong_key =
        ObjectDecoder::new(&o, p.params, m0.id, &m1.key, 4096).expect("decoder").in_pack(p.id, 0).expect("1");
    let wrong_id =
        ObjectDecoder::new(&o, p.params, m1.id, &m0.key, 4096).expect("decoder").in_pack(p.id, 0).expect("1");
    for mut d in [wrong_key, wrong_id] {
        assert!(matches!(d.decode_segment(0, &given, AlignedBuf::new()), Err(CodecError::Authentication { index: 0 })));
    }
}

#[test]
fn a_lost_pack_fragment_is_recoded_without_keys_and_serves_every_member() {
    let o = offload();
    let p = pack(&o, &[4096, 17, 60_000], 5);
    let recs = records(&p);
    let lost = 2u8;
    let header = FragmentHeader::parse(&p.fragments[0][..HEADER_LEN], o.crc32c.as_ref()).expect("header");
    let recoder = Recoder::new(&o, &header, lost).expect("recoder");
    let mut fresh = recoder.header().to_vec();
    for (slot, _) in p.members.iter().enumerate() {
        let survivors: Vec<(u8, &[u8])> =
            (0..N).filter(|&i| i != lost).map(|i| (i, recs[usize::from(i)][slot])).collect();
        fresh.extend_from_slice(&recoder.recode_segment(slot as u64, &survivors).expect("recode").record);
    }
    let fresh_recs = split_records(K, &fresh[HEADER_LEN..], p.members.len() as u64).expect("split");
    // Every member from the rebuilt fragment and three originals.
    for (slot, m) in p.members.iter().enumerate() {
        let mut given: Vec<(u8, &[u8])> = vec![(lost, fresh_recs[slot])];
        given.extend([0u8, 4, 5].iter().map(|&i| (i, recs[usize::from(i)][slot])));
        let d = decoder(&o, &p, m, slot as u64).decode_segment(0, &given, AlignedBuf::new()).expect("decode");
        assert_eq!(&d.data[..], &m.plain[..], "slot {slot}");
    }
}

#[test]
fn only_a_one_segment_object_can_be_packed() {
    let o = offload();
    let rng = SeededRandom::new(6);
    let params = CodingParams::new(K, N, 4096).expect("params");
    let matrix = Arc::new(CodingMatrix::generate(K, N, &rng).expect("matrix"));
    let key = DataKey::generate(&rng).expect("key");
    let id = VersionId::generate(&rng).expect("id");
    let enc = ObjectEncoder::new(&o, params, None, id, &key, matrix, 4097).expect("encoder");
    assert!(matches!(enc.in_pack(id, 0), Err(CodecError::InvalidParams { .. })));
    let dec = ObjectDecoder::new(&o, params, id, &key, 4097).expect("decoder");
    assert!(matches!(dec.in_pack(id, 0), Err(CodecError::InvalidParams { .. })));
}

#[test]
fn a_member_moved_to_another_pack_and_slot_decodes_there_without_its_key_being_used() {
    let o = offload();
    let p = pack(&o, &[4096, 300, 9000], 7);
    let recs = records(&p);
    let rng = SeededRandom::new(70);
    let new_pack = VersionId::generate(&rng).expect("id");
    let max = p.params.max_sealed_len();
    // Member 2 becomes slot 0 of the new pack: its records rebound, fragment by fragment.
    let moved: Vec<Vec<u8>> = (0..N as usize)
        .map(|i| {
            codec::fragment::rebind_record(recs[i][2], K, max, (&p.id, 2), (&new_pack, 0), o.crc32c.as_ref())
                .expect("rebind")
        })
        .collect();
    let m = &p.members[2];
    let given: Vec<(u8, &[u8])> = (0..N).skip(1).map(|i| (i, &moved[usize::from(i)][..])).collect();
    let mut d = ObjectDecoder::new(&o, p.params, m.id, &m.key, m.plain.len() as u64)
        .expect("decoder")
        .in_pack(new_pack, 0)
        .expect("one segment");
    assert_eq!(&d.decode_segment(0, &given, AlignedBuf::new()).expect("decode").data[..], &m.plain[..]);
    // Bound to the new place only: the old binding no longer checks.
    let old = decoder(&o, &p, m, 2).decode_segment(0, &given, AlignedBuf::new());
    assert!(matches!(old, Err(CodecError::Insufficient { usable: 0, .. })), "{old:?}");
    // A record that fails its checksum is refused, never laundered into a valid one.
    let mut bad = recs[0][2].to_vec();
    bad[20] ^= 1;
    let err = codec::fragment::rebind_record(&bad, K, max, (&p.id, 2), (&new_pack, 0), o.crc32c.as_ref());
    assert_eq!(err, Err(RecordError::Checksum));
    // Nor is one claimed from another slot.
    let err = codec::fragment::rebind_record(recs[0][1], K, max, (&p.id, 2), (&new_pack, 0), o.crc32c.as_ref());
    assert_eq!(err, Err(RecordError::Checksum));
}

//! The data path in process: real metadata (SQLite in a scratch directory), the real
//! codec and offload engines, and an in-memory fragment store with the faults real
//! locations have. No server, no network: the whole set runs in seconds. Later
//! changes to the data path add their cases here.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use codec::fragment::{HEADER_LEN, record_checksum};
use futures::StreamExt;
use offload::compress::Algorithm;

use super::*;
use crate::backend::memory::Fault;
use crate::meta::{FragmentAt, FragmentState, ObjectAttrs, SealState, UploadId, UploadRow, now_ms};
use crate::testing::{Options, Rig, SEG, body, data, seals_in};

#[tokio::test]
async fn objects_of_every_awkward_size_round_trip() {
    let rig = Rig::new(Options::default()).await;
    let s = SEG as usize;
    for len in [0, 1, s - 1, s, s + 1, 2 * s - 1, 10 * s + 17] {
        let key = format!("k{len}");
        let d = data(len, len as u64);
        let stored = rig.put(&key, &d).await;
        assert_eq!(stored.stored, 6, "every fragment landed");
        assert_eq!(rig.get_all(&key).await, d, "{len} B");
        // Every location holds one fragment of it: header plus one record per segment.
        assert_eq!(
            rig.fragments(&key).await.iter().map(|(l, _)| l.clone()).collect::<std::collections::BTreeSet<_>>().len(),
            6
        );
    }
}

#[tokio::test]
async fn ranges_return_exactly_the_bytes_asked_for() {
    let rig = Rig::new(Options::default()).await;
    let s = u64::from(SEG);
    let d = data(10 * s as usize + 333, 7);
    rig.put("r", &d).await;
    let len = d.len() as u64;
    for r in [0..1, len - 1..len, s - 1..s + 1, 3 * s..4 * s, 2 * s + 5..7 * s + 9, 0..len, 17..18] {
        let got = rig.get("r", r.clone()).await.unwrap_or_else(|e| panic!("{r:?}: {e}"));
        assert!(got == d[r.start as usize..r.end as usize], "{r:?}");
    }
}

#[tokio::test]
async fn any_n_minus_k_lost_fragments_are_survived_one_more_is_503() {
    let rig = Rig::new(Options::default()).await;
    let d = data(5 * SEG as usize + 9, 3);
    rig.put("x", &d).await;
    let frags = rig.fragments("x").await;
    // Two of six lost, in several combinations (one object each: a fragment found
    // missing stays marked so).
    for (i, (a, b)) in [(0, 1), (2, 5), (4, 3)].into_iter().enumerate() {
        let key = format!("x{i}");
        rig.put(&key, &d).await;
        let f = rig.fragments(&key).await;
        rig.store.lose(&f[a].0, &f[a].1);
        rig.store.lose(&f[b].0, &f[b].1);
        assert_eq!(rig.get_all(&key).await, d, "lost {a} and {b}");
    }
    // Locations down rather than objects lost: the same.
    rig.store.set_fault(&frags[1].0, Some(Fault::Down));
    rig.store.set_fault(&frags[4].0, Some(Fault::Down));
    assert_eq!(rig.get_all("x").await, d);
    // A third: fewer than k left, and the answer is an error, never bytes.
    rig.store.lose(&frags[0].0, &frags[0].1);
    let e = rig.get("x", 0..d.len() as u64).await.expect_err("only 3 of 4 needed");
    assert!(e.contains("only 3 of 4"), "{e}");
    assert!(rig.ctx.quorum_failures.read.load(Ordering::Relaxed) >= 1);
    // The fragment the location no longer has is marked missing.
    let m = rig.manifest("x").await.expect("visible");
    assert_eq!(m.parts[0].seal.fragments[0].state, FragmentState::Missing);
}

#[tokio::test]
async fn a_flipped_bit_anywhere_in_a_fragment_never_reaches_the_client() {
    let rig = Rig::new(Options::default()).await;
    let d = data(3 * SEG as usize + 100, 11);
    rig.put("f", &d).await;
    let (loc, name) = rig.fragments("f").await[2].clone();
    let original = rig.store.bytes(&loc, &name).expect("stored").to_vec();
    let k = 4usize;
    let record = original.len() - HEADER_LEN; // the records, for the offsets below
    let first_record_len = (record - 100) / 3; // the first records are all full
    let spots = [
        ("header: magic", 1),
        ("header: index", 10),
        ("header: checksum", 61),
        ("record: sealed length", HEADER_LEN + 1),
        ("record: flags", HEADER_LEN + 4),
        ("record: coefficient", HEADER_LEN + 8 + 1),
        ("record: symbol", HEADER_LEN + 8 + k + 100),
        ("record: checksum", HEADER_LEN + first_record_len - 2),
        ("last record: symbol", original.len() - 40),
    ];
    for (what, at) in spots {
        rig.store.flip(&loc, &name, at, 3);
        assert_eq!(rig.get_all("f").await, d, "{what}");
        assert_eq!(rig.get("f", 10..SEG as u64 + 10).await.expect("range"), d[10..SEG as usize + 10], "{what}");
        rig.store.replace(&loc, &name, original.clone());
    }
}

#[tokio::test]
async fn a_forged_record_with_a_valid_checksum_is_outvoted() {
    let rig = Rig::new(Options::default()).await;
    let d = data(2 * SEG as usize, 5);
    rig.put("forged", &d).await;
    let m = rig.manifest("forged").await.expect("visible");
    let seal = m.parts[0].seal.clone();
    let (loc, name) = (seal.fragments[0].location.clone(), seal.fragments[0].name.clone());
    let mut bytes = rig.store.bytes(&loc, &name).expect("stored").to_vec();
    // Change the first record's symbol and make its checksum right again: only the
    // AEAD can tell now.
    let len = (bytes.len() - HEADER_LEN) / 2;
    bytes[HEADER_LEN + 8 + 4 + 10] ^= 0xff;
    let end = HEADER_LEN + len - 4;
    let crc = record_checksum(rig.ctx.offload.crc32c.as_ref(), &seal.id.codec(), 0, &bytes[HEADER_LEN..end]);
    bytes[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    rig.store.replace(&loc, &name, bytes);
    assert_eq!(rig.get_all("forged").await, d, "a spare fragment outvotes the forgery");
}

#[tokio::test]
async fn a_location_failing_mid_put_above_quorum_is_recorded_missing() {
    let rig = Rig::new(Options::default()).await;
    rig.store.set_fault("l3", Some(Fault::FailPutAfter(3000)));
    let d = data(8 * SEG as usize, 2);
    let stored = rig.put("q", &d).await;
    assert_eq!(stored.stored, 5);
    let m = rig.manifest("q").await.expect("visible");
    let states: Vec<(String, FragmentState)> =
        m.parts[0].seal.fragments.iter().map(|f| (f.location.clone(), f.state)).collect();
    assert!(states.contains(&("l3".into(), FragmentState::Missing)), "{states:?}");
    assert_eq!(states.iter().filter(|(_, s)| *s == FragmentState::Stored).count(), 5);
    assert!(rig.store.names("l3").is_empty(), "a failed upload leaves nothing");
    assert_eq!(rig.get_all("q").await, d);
}

#[tokio::test]
async fn a_put_below_quorum_stores_nothing_and_leaves_garbage_only() {
    let rig = Rig::new(Options::default()).await;
    rig.store.set_fault("l1", Some(Fault::FailPutAfter(5000)));
    rig.store.set_fault("l4", Some(Fault::Down));
    let d = data(6 * SEG as usize, 4);
    let e = rig.try_put("nq", &d).await.expect_err("4 of 6 cannot make a quorum of 5");
    assert!(matches!(e, PipelineError::WriteQuorum { needed: 5, landed: 4 }), "{e}");
    assert!(rig.manifest("nq").await.is_none(), "nothing visible");
    assert_eq!(rig.ctx.quorum_failures.write.load(Ordering::Relaxed), 1);
    // The seal is garbage (its guard discarded it), and collection removes what landed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seals_in(&rig, SealState::Garbage).await, 1);
    rig.store.set_fault("l1", None);
    rig.store.set_fault("l4", None);
    let collected = cleanup::collect_once(&rig.ctx, &cleanup::dead_writes(&rig.ctx), 10).await.expect("collect");
    assert_eq!(collected, 1);
    assert!(rig.store.all().is_empty(), "no fragment left anywhere: {:?}", rig.store.all());
}

#[tokio::test]
async fn a_stalled_location_is_given_up_on_after_the_stall_timeout() {
    let rig = Rig::new(Options::default()).await;
    rig.store.set_fault("l2", Some(Fault::StallPutAfter(1)));
    // Enough segments that the stalled upload's channel fills up.
    let d = data(64 * SEG as usize, 6);
    let started = std::time::Instant::now();
    let stored = rig.put("stall", &d).await;
    assert_eq!(stored.stored, 5);
    assert!(started.elapsed() < Duration::from_secs(20), "given up on, not waited for");
    assert_eq!(rig.get_all("stall").await, d);
}

#[tokio::test]
async fn digests_that_do_not_match_store_nothing() {
    let rig = Rig::new(Options::default()).await;
    let d = data(SEG as usize + 5, 8);
    let md5: [u8; 16] = <md5::Md5 as md5::Digest>::digest(&d).into();
    // Right Content-MD5: stored.
    let ok = Expected { content_md5: Some(md5), checksum: None };
    put(&rig.ctx, rig.request("good", d.len() as u64, body(&d), ok)).await.expect("matching MD5");
    // Wrong Content-MD5, and a wrong checksum arriving as a trailer: refused.
    let mut wrong = md5;
    wrong[0] ^= 1;
    let bad = Expected { content_md5: Some(wrong), checksum: None };
    let e = put(&rig.ctx, rig.request("bad-md5", d.len() as u64, body(&d), bad)).await.expect_err("wrong MD5");
    assert!(matches!(e, PipelineError::BadDigest(Digest::ContentMd5)), "{e}");
    let mut req = rig.request("bad-crc", d.len() as u64, body(&d), Expected::default());
    req.checksum = Some(crate::meta::ChecksumAlgorithm::Crc32c);
    req.expect.checksum = Some(Box::new(|| Some("AAAAAA==".to_string())));
    let e = put(&rig.ctx, req).await.expect_err("wrong checksum");
    assert!(matches!(e, PipelineError::BadDigest(Digest::Checksum(crate::meta::ChecksumAlgorithm::Crc32c))), "{e}");
    assert!(rig.manifest("bad-md5").await.is_none() && rig.manifest("bad-crc").await.is_none());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seals_in(&rig, SealState::Garbage).await, 2, "both refused writes are garbage");
    // The right checksum is kept and returned.
    let mut req = rig.request("crc", d.len() as u64, body(&d), Expected::default());
    req.checksum = Some(crate::meta::ChecksumAlgorithm::Crc32c);
    let stored = put(&rig.ctx, req).await.expect("checksum computed");
    let (alg, value) = stored.checksum.expect("checksum");
    let m = rig.manifest("crc").await.expect("visible");
    assert_eq!((m.version.attrs.checksum_algorithm, m.version.checksum_value), (Some(alg), Some(value)));
}

#[tokio::test]
async fn a_body_shorter_or_longer_than_announced_stores_nothing() {
    let rig = Rig::new(Options::default()).await;
    let d = data(3 * SEG as usize, 9);
    let e = put(&rig.ctx, rig.request("short", d.len() as u64 + 1, body(&d), Expected::default())).await;
    assert!(matches!(e, Err(PipelineError::BodyLength { got, .. }) if got == d.len() as u64), "{e:?}");
    let e = put(&rig.ctx, rig.request("long", d.len() as u64 - 1, body(&d), Expected::default())).await;
    assert!(matches!(e, Err(PipelineError::BodyLength { .. })), "{e:?}");
    // A body that fails halfway (the client's connection broke).
    let broken: BodyStream =
        futures::stream::iter([Ok(Bytes::from(d.clone())), Err::<Bytes, BoxError>("connection reset".into())]).boxed();
    let e = put(&rig.ctx, rig.request("broken", d.len() as u64 * 2, broken, Expected::default())).await;
    assert!(matches!(e, Err(PipelineError::Body(_))), "{e:?}");
    for k in ["short", "long", "broken"] {
        assert!(rig.manifest(k).await.is_none(), "{k}");
    }
}

#[tokio::test]
async fn a_client_that_goes_away_mid_put_leaves_only_garbage() {
    let rig = Rig::new(Options::default()).await;
    let d = data(4 * SEG as usize, 10);
    // Half a body, then nothing more, ever.
    let half: BodyStream = futures::stream::iter([Ok::<Bytes, BoxError>(Bytes::from(d[..d.len() / 2].to_vec()))])
        .chain(futures::stream::pending())
        .boxed();
    let request = rig.request("gone", d.len() as u64, half, Expected::default());
    assert!(tokio::time::timeout(Duration::from_millis(300), put(&rig.ctx, request)).await.is_err());
    // The request future was dropped: its guard discards the seal.
    let mut garbage = 0;
    for _ in 0..50 {
        garbage = seals_in(&rig, SealState::Garbage).await;
        if garbage == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(garbage, 1);
    assert!(rig.manifest("gone").await.is_none());
}

#[tokio::test]
async fn overwrites_retire_the_old_seal_and_collection_deletes_its_fragments() {
    let rig = Rig::new(Options::default()).await;
    let (a, b) = (data(2 * SEG as usize, 1), data(SEG as usize / 2, 2));
    let first = rig.put("o", &a).await;
    let old: Vec<(String, String)> = rig.fragments("o").await;
    let second = rig.put("o", &b).await;
    assert_ne!(first.seal, second.seal);
    assert_eq!(rig.seal_state(first.seal).await, Some(SealState::Garbage));
    assert_eq!(rig.get_all("o").await, b);
    let n = cleanup::collect_once(&rig.ctx, &cleanup::dead_writes(&rig.ctx), 10).await.expect("collect");
    assert_eq!(n, 1);
    assert!(old.iter().all(|(l, name)| rig.store.bytes(l, name).is_none()), "old fragments deleted");
    assert_eq!(rig.seal_state(first.seal).await, None, "forgotten");
    assert_eq!(rig.get_all("o").await, b, "the new version untouched");
}

#[tokio::test]
async fn compressed_objects_round_trip_by_range() {
    for algorithm in [Algorithm::Zstd, Algorithm::Lz4] {
        let rig = Rig::new(Options { compression: Some(algorithm), ..Options::default() }).await;
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog; ".repeat(2000);
        rig.put("z", &text).await;
        let m = rig.manifest("z").await.expect("visible");
        assert_eq!(m.parts[0].seal.compression.algorithm(), Some(algorithm));
        let stored: u64 = m.parts[0].seal.fragments.iter().map(|f| f.size).sum();
        assert!(stored < text.len() as u64, "{algorithm:?}: {stored} B stored for {} B", text.len());
        assert_eq!(rig.get_all("z").await, text);
        let r = 5000..30_001u64;
        assert_eq!(rig.get("z", r.clone()).await.expect("range"), text[r.start as usize..r.end as usize]);
    }
}

#[tokio::test]
async fn a_drain_recodes_a_fragment_elsewhere_without_reading_the_drained_location() {
    let rig = Rig::new(Options { spare_locations: 1, ..Options::default() }).await;
    let d = data(7 * SEG as usize + 3, 12);
    rig.put("d", &d).await;
    let m = rig.manifest("d").await.expect("visible");
    let from = m.parts[0].seal.fragments[0].location.clone();
    // The drained location is gone: it must not be needed.
    rig.store.set_fault(&from, Some(Fault::Down));
    let before = rig.store.counts(&from);
    let item = FragmentAt { seal: m.parts[0].seal.clone(), index: 0, policy: None };
    let view = rig.ctx.catalog.view();
    let to = drain::target(&rig.ctx, &view, &from, &item).expect("a target");
    assert_eq!(to, "l6", "the only location holding none of the seal");
    let moved = drain::move_fragment(&rig.ctx, &from, &item, &to).await.expect("moved");
    assert!(moved.recorded);
    assert_eq!(rig.store.counts(&from).gets, before.gets, "the drained location was never read");
    let after = rig.manifest("d").await.expect("visible");
    assert_eq!(after.parts[0].seal.fragments[0].location, "l6");
    // Every k-subset still decodes: read with two other locations down besides.
    let others: Vec<String> = after.parts[0].seal.fragments[1..3].iter().map(|f| f.location.clone()).collect();
    for l in &others {
        rig.store.set_fault(l, Some(Fault::Down));
    }
    assert_eq!(rig.get_all("d").await, d, "the recoded fragment decodes with the others");
}

#[tokio::test]
async fn multipart_uploads_complete_once_and_read_across_parts() {
    // Parts must be at least 5 MiB (but the last): a larger segment keeps this quick.
    let rig = Rig::new(Options { segment: 1 << 20, ..Options::default() }).await;
    let upload = UploadRow {
        id: UploadId::generate(rig.ctx.offload.random.as_ref()).expect("id"),
        bucket: "b".into(),
        key: b"big".to_vec(),
        created_at: now_ms(),
        attrs: ObjectAttrs::default(),
        checksum_type: None,
        lock: Default::default(),
    };
    rig.ctx.meta.create_upload(&upload).await.expect("upload");
    let parts = [data(MIN_PART as usize, 21), data(MIN_PART as usize + 7, 22), data(1000, 23)];
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut req = rig.request("big", p.len() as u64, body(p), Expected::default());
        req.target = PutTarget::Part { upload: upload.id, number: i as u32 + 1 };
        let stored = put(&rig.ctx, req).await.expect("part");
        assert_eq!(stored.version, None, "a part is no version");
        etags.push((i as u32 + 1, format!("\"{}\"", stored.etag)));
    }
    assert!(rig.manifest("big").await.is_none(), "parts are invisible until completed");
    let complete_with = |parts: Vec<(u32, String)>| CompleteRequest {
        upload: upload.clone(),
        parts,
        condition: Default::default(),
        part_checksums: Default::default(),
        checksum: None,
    };
    // The rules S3 has, each refused without changing anything.
    let e = complete(&rig.ctx, complete_with(vec![etags[1].clone(), etags[0].clone()])).await;
    assert!(matches!(e, Err(PipelineError::PartOrder)), "{e:?}");
    let e = complete(&rig.ctx, complete_with(vec![(1, "\"0123\"".into())])).await;
    assert!(matches!(e, Err(PipelineError::InvalidPart(1))), "{e:?}");
    let e = complete(&rig.ctx, complete_with(vec![etags[2].clone(), (4, etags[0].1.clone())])).await;
    assert!(matches!(e, Err(PipelineError::PartTooSmall(3))), "only the last part may be small: {e:?}");
    let e = complete(&rig.ctx, complete_with(vec![etags[0].clone(), (4, etags[0].1.clone())])).await;
    assert!(matches!(e, Err(PipelineError::InvalidPart(4))), "{e:?}");
    // A part listed twice with the same ETag differently is a misordered list.
    let twice = vec![etags[0].clone(), (1, "\"0123\"".into()), etags[1].clone(), etags[2].clone()];
    let e = complete(&rig.ctx, complete_with(twice)).await;
    assert!(matches!(e, Err(PipelineError::PartOrder)), "{e:?}");
    // Listed twice alike (a client repeating an entry), it counts once.
    let repeated = vec![etags[0].clone(), etags[0].clone(), etags[1].clone(), etags[2].clone()];
    let done = complete(&rig.ctx, complete_with(repeated)).await.expect("complete");
    assert!(done.etag.ends_with("-3"), "{}", done.etag);
    let whole: Vec<u8> = parts.concat();
    assert_eq!(rig.get_all("big").await, whole);
    let across = MIN_PART - 10..MIN_PART + 10;
    assert_eq!(rig.get("big", across.clone()).await.expect("range"), whole[across.start as usize..across.end as usize]);
    // Completing it again (a retry racing the first) finds no upload.
    let again = complete(&rig.ctx, complete_with(etags)).await;
    assert!(matches!(again, Err(PipelineError::NoSuchUpload)), "{again:?}");
    assert_eq!(rig.manifest("big").await.expect("visible").version.id, done.version);
}

#[tokio::test]
async fn the_cache_layer_serves_reads_with_every_location_down_under_the_tenant_key() {
    let rig = Rig::new(Options { cache: true, ..Options::default() }).await;
    let cache = rig.cache.clone().expect("cache");
    // A bucket of another tenant: its fragments are cached under that tenant's key.
    assert!(rig.ctx.meta.create_tenant("acme").await.expect("tenant"));
    assert!(rig.ctx.meta.create_bucket("acme-b", "p", "acme").await.expect("bucket"));
    let tenant = rig.ctx.meta.bucket("acme-b").await.expect("bucket").expect("exists").tenant_number;
    assert_ne!(tenant, 0);
    let d = data(5 * SEG as usize + 1, 13);
    let mut req = rig.request("c", d.len() as u64, body(&d), Expected::default());
    req.tenant = tenant;
    req.target = PutTarget::Object {
        bucket: "acme-b".into(),
        key: b"c".to_vec(),
        attrs: ObjectAttrs::default(),
        condition: Default::default(),
        lock: Default::default(),
    };
    put(&rig.ctx, req).await.expect("put");
    let m = rig.ctx.meta.manifest("acme-b", b"c").await.expect("manifest").expect("visible");
    assert_eq!(m.tenant_number, tenant);
    // The cache commits an entry on its own thread once the upload succeeded.
    for f in &m.parts[0].seal.fragments {
        let mut cached = None;
        for _ in 0..100 {
            cached = cache.tenant_of(&f.name);
            if cached.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(cached, Some(tenant), "written through under the tenant's key");
    }
    for i in 0..6 {
        rig.store.set_fault(&format!("l{i}"), Some(Fault::Down));
    }
    let mut stream = get(&rig.ctx, m, 0..d.len() as u64, None, None).await.expect("read from the cache");
    let mut got = Vec::new();
    while let Some(c) = stream.next().await {
        got.extend_from_slice(&c.expect("chunk"));
    }
    assert_eq!(got, d);
}

#[tokio::test]
async fn a_read_tries_fragments_marked_lost_before_it_gives_up() {
    let rig = Rig::new(Options::default()).await;
    let d = data(3 * SEG as usize + 11, 14);
    rig.put("h", &d).await;
    let m = rig.manifest("h").await.expect("visible");
    let seal = m.parts[0].seal.clone();
    // The metadata says two fragments are lost, but their files are back...
    for i in [0, 1] {
        rig.ctx.meta.set_fragment_state(seal.id, i, FragmentState::Missing).await.expect("mark");
    }
    // ...and two of the four it believes in are down: only those two make up k.
    rig.store.set_fault(&seal.fragments[2].location, Some(Fault::Down));
    rig.store.set_fault(&seal.fragments[3].location, Some(Fault::Down));
    assert_eq!(rig.get_all("h").await, d);
}

#[tokio::test]
async fn a_later_part_known_unreadable_fails_before_the_answer_starts() {
    let rig = Rig::new(Options { segment: 1 << 20, ..Options::default() }).await;
    let upload = UploadRow {
        id: UploadId::generate(rig.ctx.offload.random.as_ref()).expect("id"),
        bucket: "b".into(),
        key: b"two".to_vec(),
        created_at: now_ms(),
        attrs: ObjectAttrs::default(),
        checksum_type: None,
        lock: Default::default(),
    };
    rig.ctx.meta.create_upload(&upload).await.expect("upload");
    let parts = [data(MIN_PART as usize, 31), data(5000, 32)];
    let mut listed = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut req = rig.request("two", p.len() as u64, body(p), Expected::default());
        req.target = PutTarget::Part { upload: upload.id, number: i as u32 + 1 };
        listed.push((i as u32 + 1, put(&rig.ctx, req).await.expect("part").etag));
    }
    complete(
        &rig.ctx,
        CompleteRequest {
            upload,
            parts: listed,
            condition: Default::default(),
            part_checksums: Default::default(),
            checksum: None,
        },
    )
    .await
    .expect("complete");
    // Part 2 lost three of its six fragments, and the metadata knows it.
    let m = rig.manifest("two").await.expect("visible");
    let second = m.parts[1].seal.clone();
    for f in &second.fragments[..3] {
        rig.store.lose(&f.location, &f.name);
        rig.ctx.meta.set_fragment_state(second.id, f.index, FragmentState::Missing).await.expect("mark");
    }
    let m = rig.manifest("two").await.expect("visible");
    let size = m.version.size;
    match get(&rig.ctx, m, 0..size, None, None).await {
        Err(PipelineError::ReadQuorum { usable: 3, needed: 4, damaged: 3, .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a read that cannot finish must fail before its answer starts"),
    }
    // A range of the first part alone still reads.
    assert_eq!(rig.get("two", 0..1000).await.expect("first part"), parts[0][..1000]);
}

#[tokio::test]
async fn a_customer_key_is_needed_besides_the_master_key() {
    use crate::pipeline::CustomerKey;
    let rig = Rig::new(Options::default()).await;
    let d = data(3 * SEG as usize + 17, 12);
    let key = Arc::new(CustomerKey::new([42; 32]));
    let mut req = rig.request("sse-c", d.len() as u64, crate::testing::body(&d), Expected::default());
    req.customer = Some(key.clone());
    crate::pipeline::put(&rig.ctx, req).await.expect("put");
    // The master key alone opens nothing: no plaintext, an error.
    assert!(rig.get("sse-c", 0..d.len() as u64).await.is_err(), "read without the customer key");
    let read = |customer: Option<Arc<CustomerKey>>, range: std::ops::Range<u64>| {
        let rig = &rig;
        async move {
            let m = rig.manifest("sse-c").await.expect("visible");
            let mut s = crate::pipeline::get(&rig.ctx, m, range, customer, None).await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            while let Some(c) = futures::StreamExt::next(&mut s).await {
                out.extend_from_slice(&c.map_err(|e| e.to_string())?);
            }
            Ok::<_, String>(out)
        }
    };
    assert!(read(Some(Arc::new(CustomerKey::new([43; 32]))), 0..d.len() as u64).await.is_err(), "another key");
    assert_eq!(read(Some(key.clone()), 0..d.len() as u64).await.expect("the key"), d);
    let r = SEG as u64 - 3..2 * SEG as u64 + 5;
    assert_eq!(read(Some(key), r.clone()).await.expect("a range"), d[r.start as usize..r.end as usize]);
}

#[tokio::test]
async fn a_write_leaves_its_manifest_and_a_delete_its_tombstone_until_both_are_collected() {
    let rig = Rig::new(Options::default()).await;
    let out = rig.put("k", &data(5000, 7)).await;
    let version = out.version.expect("a version");
    let manifests: Vec<(String, String)> = rig.store.all().into_iter().filter(|(_, n)| n.starts_with("m/")).collect();
    // n - k + 1 copies where fragments landed: one remains whenever k fragments do.
    assert_eq!(manifests.len(), 3);
    let (location, name) = &manifests[0];
    let record: crate::ledger::ManifestRecord =
        rig.ctx.ledger.open(name, &rig.store.bytes(location, name).expect("bytes")).expect("opens");
    assert_eq!(record.version_id, version.to_string());
    assert_eq!((record.bucket.as_str(), record.size, record.etag.as_str()), ("b", 5000, out.etag.as_str()));
    assert_eq!(record.parts.len(), 1);
    assert_eq!(record.parts[0].seal.id, out.seal.to_string());
    // Nothing of the key in the clear at the location.
    let raw = rig.store.bytes(location, name).expect("bytes");
    assert!(!raw.windows(5).any(|w| w == b"\"key\""), "sealed");

    // A location down when a manifest is written: the copies go to locations that
    // took a fragment (5 landed: 2 copies).
    rig.store.set_fault("l0", Some(Fault::Down));
    rig.put("k2", &data(3000, 8)).await;
    rig.store.set_fault("l0", None);
    let k2: Vec<String> =
        rig.store.all().into_iter().filter(|(l, n)| n.starts_with("m/") && l != "l0").map(|(_, n)| n).collect();
    assert!(k2.len() >= 2);

    // An unversioned bucket: S3 reports no version and no marker.
    assert_eq!(delete(&rig.ctx, "b", b"k", &Default::default()).await.expect("delete"), Default::default());
    assert!(rig.manifest("k").await.is_none(), "{version} deleted");
    let tombstones = || rig.store.all().into_iter().filter(|(_, n)| n.starts_with("t/")).count();
    let written = tombstones();
    assert!(written >= 3, "{written}");
    delete(&rig.ctx, "b", b"k", &Default::default()).await.expect("again");
    assert_eq!(tombstones(), written, "nothing to delete: no tombstone");
    // Collection: the fragments, the manifest, then the tombstone that covered it.
    for _ in 0..3 {
        cleanup::collect_once(&rig.ctx, &cleanup::dead_writes(&rig.ctx), 100).await.expect("collect");
    }
    let left: Vec<(String, String)> =
        rig.store.all().into_iter().filter(|(_, n)| n.starts_with("m/") || n.starts_with("t/")).collect();
    assert_eq!(left.len(), 2, "k2's manifest only: {left:?}");
}

#[tokio::test]
async fn versions_from_before_manifests_get_theirs() {
    let rig = Rig::new(Options::default()).await;
    rig.put("old", &data(2000, 9)).await;
    // As a gateway from before manifests left it: no record, nothing at the locations.
    for (location, name) in rig.store.all().into_iter().filter(|(_, n)| n.starts_with("m/")) {
        rig.store.lose(&location, &name);
    }
    let names: Vec<String> =
        rig.ctx.meta.live_records("", 10).await.expect("records").into_iter().map(|r| r.name).collect();
    rig.ctx.meta.forget_records(&names).await.expect("forget");
    assert_eq!(backfill(&rig.ctx, 10).await.expect("backfill"), 1);
    assert_eq!(backfill(&rig.ctx, 10).await.expect("again"), 0, "done once");
    assert!(rig.store.all().iter().any(|(_, n)| n.starts_with("m/")));
}

#[tokio::test]
async fn a_read_under_way_keeps_its_version_whole_through_an_overwrite_and_collection() {
    let rig = Rig::new(Options::default()).await;
    let old = data(64 * SEG as usize, 21);
    rig.put("k", &old).await;
    let m = rig.manifest("k").await.expect("visible");
    let mut stream = crate::pipeline::get(&rig.ctx, m, 0..old.len() as u64, None, None).await.expect("get");
    let mut got = stream.next().await.expect("a first chunk").expect("bytes").to_vec();
    // Overwritten, and the old seal collected while the read goes on.
    rig.put("k", &data(SEG as usize, 22)).await;
    let dead = cleanup::dead_writes(&rig.ctx);
    assert_eq!(cleanup::collect_once(&rig.ctx, &dead, 10).await.expect("collect"), 0, "a seal being read stays");
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.expect("no chunk fails"));
    }
    assert!(got == old, "the read returned the version it began with, whole");
    // Postponed: retired again from when the read held it (the rig keeps garbage no
    // longer than that).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let dead = cleanup::dead_writes(&rig.ctx);
    assert_eq!(cleanup::collect_once(&rig.ctx, &dead, 10).await.expect("collect"), 1, "then it goes");
}

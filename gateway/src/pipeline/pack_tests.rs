//! Packs in process (see `tests.rs` for the rig): small objects written together
//! share one fragment set, and every path treats the pack as a seal and each
//! member as an object of its own.

use std::sync::Arc;

use super::*;
use crate::backend::memory::Fault;
use crate::meta::{DeleteCondition, FragmentAt, SealState, WriteCondition};
use crate::testing::{Options, Rig, SEG, data, seals_in};

fn packing() -> Options {
    Options { pack_threshold: u64::from(SEG), spare_locations: 1, ..Options::default() }
}

/// Puts `count` objects of `len`-ish bytes at once (on the test's one thread, all
/// queue before the first pack is written: one pack).
async fn put_many(rig: &Rig, prefix: &str, count: usize) -> Vec<(String, Vec<u8>, PutOutcome)> {
    let objects: Vec<(String, Vec<u8>)> =
        (0..count).map(|i| (format!("{prefix}{i}"), data((i * 97) % SEG as usize, i as u64 + 1))).collect();
    let outs = futures::future::join_all(objects.iter().map(|(k, d)| rig.try_put(k, d))).await;
    objects.into_iter().zip(outs).map(|((k, d), o)| (k, d, o.expect("put"))).collect()
}

/// The pack record of `pack`: its copies, and what it holds (from the first copy).
fn pack_record(rig: &Rig, pack: crate::meta::SealId) -> (usize, Option<crate::ledger::PackRecord>) {
    let copies: Vec<(String, String)> =
        rig.store.all().into_iter().filter(|(_, n)| n.starts_with(&format!("p/{pack}."))).collect();
    let record = copies.first().map(|(location, name)| {
        rig.ctx.ledger.open(name, &rig.store.bytes(location, name).expect("bytes")).expect("opens")
    });
    (copies.len(), record)
}

/// The versions a pack record holds.
fn held(record: &crate::ledger::PackRecord) -> std::collections::BTreeSet<String> {
    record.members.iter().map(|e| e.manifest.version_id.clone()).collect()
}

#[tokio::test]
async fn objects_written_together_share_one_pack_and_each_reads_alone() {
    let rig = Rig::new(packing()).await;
    // Eight at once (the rig's transfer slots: a small write holds its slot until
    // it commits, so that memory stays bounded): one pack, six fragments.
    let objects = put_many(&rig, "p", 8).await;
    let packs: std::collections::BTreeSet<_> = objects.iter().map(|(_, _, o)| o.seal).collect();
    assert_eq!(packs.len(), 1, "one pack for eight objects");
    let pack = objects[0].2.seal;
    let fragments = rig.store.all().into_iter().filter(|(_, n)| n.starts_with(&format!("{pack}/"))).count();
    assert_eq!(fragments, 6);
    let mut slots = std::collections::BTreeSet::new();
    for (k, d, _) in &objects {
        let m = rig.manifest(k).await.expect("visible");
        assert_eq!(m.parts[0].seal.slots, 8);
        slots.insert(m.parts[0].member.as_ref().expect("a member").slot);
        assert_eq!(&rig.get_all(k).await, d, "{k}");
        if d.len() > 10 {
            assert_eq!(rig.get(k, 3..d.len() as u64 - 2).await.expect("range"), d[3..d.len() - 2]);
        }
    }
    assert_eq!(slots.len(), 8);
    // Their manifests: one pack record, n - k + 1 copies, none of their own.
    let (copies, record) = pack_record(&rig, pack);
    let record = record.expect("a pack record");
    assert_eq!(copies, 3);
    assert_eq!(record.members.len(), 8);
    for (k, d, o) in &objects {
        let m = record.manifests().into_iter().find(|m| Some(m.version_id.clone()) == o.version.map(|v| v.to_string()));
        let m = m.expect("its manifest");
        assert_eq!((m.key_bytes(), m.size), (Some(k.as_bytes().to_vec()), d.len() as u64));
        assert_eq!(m.parts[0].seal.id, pack.to_string());
    }
    assert!(!rig.store.all().iter().any(|(_, n)| n.starts_with("m/")), "no manifest of their own");
    // A lone write is a pack of one: nothing waits for company.
    let lone = rig.put("lone", &data(100, 99)).await;
    assert_eq!(rig.manifest("lone").await.expect("visible").parts[0].seal.slots, 1);
    assert_ne!(lone.seal, pack);
}

#[tokio::test]
async fn a_pack_survives_n_minus_k_losses_and_is_repaired_scrubbed_and_drained_without_keys() {
    let rig = Rig::new(packing()).await;
    let objects = put_many(&rig, "r", 9).await;
    let m = rig.manifest("r3").await.expect("visible");
    let seal = m.parts[0].seal.clone();
    for f in &seal.fragments {
        assert!(
            matches!(verify::verify(&rig.ctx, &seal, f).await, verify::Verdict::Good),
            "scrub: fragment {}",
            f.index
        );
    }
    // A drain moves a fragment with the drained location down: recoded from the
    // others, without keys.
    let from = seal.fragments[2].location.clone();
    rig.store.set_fault(&from, Some(Fault::Down));
    let item = FragmentAt { seal: seal.clone(), index: 2, policy: None };
    let view = rig.ctx.catalog.view();
    let to = drain::target(&rig.ctx, &view, &from, &item).expect("a target");
    drain::move_fragment(&rig.ctx, &from, &item, &to).await.expect("moved");
    rig.store.set_fault(&from, None);
    // Two more fragments lost: every member still reads.
    let seal = rig.manifest("r3").await.expect("visible").parts[0].seal.clone();
    assert_eq!(seal.fragments[2].location, to);
    for f in &seal.fragments[..2] {
        rig.store.lose(&f.location, &f.name);
    }
    for (k, d, _) in &objects {
        assert_eq!(&rig.get_all(k).await, d, "{k}");
    }
    // A lost fragment rebuilt from the others checks out whole.
    let rebuilt = rebuild::rebuild(&rig.ctx, &seal, 0, &seal.fragments[0].location).await.expect("rebuilt");
    assert!(rebuilt.corrupt.is_empty());
    let mut again = seal.clone();
    again.fragments[0] = rebuilt.fragment.clone();
    assert!(matches!(verify::verify(&rig.ctx, &again, &again.fragments[0]).await, verify::Verdict::Good));
}

#[tokio::test]
async fn a_pack_stays_until_its_last_member_goes_and_is_then_collected() {
    let rig = Rig::new(packing()).await;
    let objects = put_many(&rig, "d", 4).await;
    let pack = objects[0].2.seal;
    let collect = || async { cleanup::collect_once(&rig.ctx, &cleanup::dead_writes(&rig.ctx), 100).await.expect("c") };
    // One deleted, one overwritten (by a write of its own, in a pack of its own),
    // one copied then deleted: the pack holds live members still.
    delete(&rig.ctx, "b", b"d0", &DeleteCondition::default()).await.expect("delete");
    rig.put("d1", &data(50, 77)).await;
    let src = rig.manifest("d2").await.expect("visible");
    let copied = copy(
        &rig.ctx,
        CopyRequest {
            source: CopySource { manifest: src, policy: "p".into(), customer: None, range: None },
            policy: rig.policy.clone(),
            tenant: 0,
            checksum: None,
            target: match rig.request("copy", 0, crate::testing::body(&[]), Expected::default()).target {
                t @ PutTarget::Object { .. } => t,
                PutTarget::Part { .. } => unreachable!(),
            },
            customer: None,
            requester: None,
        },
    )
    .await
    .expect("copy");
    assert!(copied.shared, "the copy shares the member");
    delete(&rig.ctx, "b", b"d2", &DeleteCondition::default()).await.expect("delete");
    collect().await;
    assert_eq!(rig.seal_state(pack).await, Some(SealState::Stored));
    assert_eq!(rig.get_all("copy").await, objects[2].1);
    assert_eq!(rig.get_all("d3").await, objects[3].1);
    assert_eq!(rig.get_all("d1").await, data(50, 77));
    // The last members go: the pack is garbage, its fragments are deleted.
    delete(&rig.ctx, "b", b"d3", &DeleteCondition::default()).await.expect("delete");
    assert_eq!(rig.seal_state(pack).await, Some(SealState::Stored), "the copy still uses it");
    delete(&rig.ctx, "b", b"copy", &DeleteCondition::default()).await.expect("delete");
    assert_eq!(rig.seal_state(pack).await, Some(SealState::Garbage));
    assert_eq!(pack_record(&rig, pack).0, 3, "its record stays while a manifest in it may count");
    collect().await;
    record::collect_records(&rig.ctx, 100).await.expect("records");
    assert_eq!(rig.seal_state(pack).await, None);
    assert!(!rig.store.all().iter().any(|(_, n)| n.starts_with(&pack.to_string())), "no fragment of the pack left");
    assert_eq!(pack_record(&rig, pack).0, 0, "nor its record");
}

#[tokio::test]
async fn a_member_whose_condition_fails_leaves_its_neighbours_committed() {
    let rig = Rig::new(packing()).await;
    rig.put("taken", &data(10, 1)).await;
    let mut absent = rig.request("taken", 5, crate::testing::body(&data(5, 2)), Expected::default());
    if let PutTarget::Object { condition, .. } = &mut absent.target {
        *condition = WriteCondition::Absent;
    }
    let d = data(300, 3);
    let (refused, ok) = tokio::join!(put(&rig.ctx, absent), rig.try_put("free", &d));
    assert!(matches!(refused, Err(PipelineError::Meta(crate::meta::MetaError::Precondition(_)))), "{refused:?}");
    let ok = ok.expect("the neighbour commits");
    assert_eq!(rig.get_all("free").await, d);
    assert_eq!(rig.get_all("taken").await, data(10, 1));
    assert_eq!(rig.manifest("free").await.expect("visible").parts[0].seal.id, ok.seal);
    // The refused write's manifest was taken out of the pack record: a recovery
    // never brings it back.
    let (copies, record) = pack_record(&rig, ok.seal);
    assert_eq!(copies, 3);
    let held = held(&record.expect("a pack record"));
    assert_eq!(held, [ok.version.expect("a version").to_string()].into_iter().collect());
}

#[tokio::test]
async fn a_pack_short_of_its_quorum_fails_every_member_and_leaves_garbage_only() {
    let rig = Rig::new(packing()).await;
    rig.store.set_fault("l1", Some(Fault::Down));
    rig.store.set_fault("l4", Some(Fault::Down));
    let (da, db) = (data(100, 1), data(200, 2));
    let (a, b) = tokio::join!(rig.try_put("qa", &da), rig.try_put("qb", &db));
    for r in [a, b] {
        assert!(matches!(r, Err(PipelineError::WriteQuorum { needed: 5, landed: 4 })), "{r:?}");
    }
    assert!(rig.manifest("qa").await.is_none() && rig.manifest("qb").await.is_none(), "nothing visible");
    assert_eq!(seals_in(&rig, SealState::Garbage).await, 1, "one pack, discarded");
    rig.store.set_fault("l1", None);
    rig.store.set_fault("l4", None);
    cleanup::collect_once(&rig.ctx, &cleanup::dead_writes(&rig.ctx), 10).await.expect("collect");
    assert!(rig.store.all().is_empty(), "nothing left: {:?}", rig.store.all());
}

#[tokio::test]
async fn a_packed_member_under_a_customer_key_opens_only_with_it() {
    let rig = Rig::new(packing()).await;
    let d = data(1000, 5);
    let key = Arc::new(CustomerKey::new([7; 32]));
    let mut req = rig.request("c", d.len() as u64, crate::testing::body(&d), Expected::default());
    req.customer = Some(key.clone());
    let other = data(900, 6);
    let (mine, plain) = tokio::join!(put(&rig.ctx, req), rig.try_put("plain", &other));
    assert_eq!(mine.expect("put").seal, plain.expect("put").seal, "one pack");
    assert!(rig.get("c", 0..1000).await.is_err(), "the master key alone opens nothing");
    let m = rig.manifest("c").await.expect("visible");
    let mut s = get(&rig.ctx, m, 0..1000, Some(key), None).await.expect("get");
    let mut out = Vec::new();
    while let Some(c) = futures::StreamExt::next(&mut s).await {
        out.extend_from_slice(&c.expect("bytes"));
    }
    assert_eq!(out, d);
    assert_eq!(rig.get_all("plain").await, data(900, 6));
}

#[tokio::test]
async fn objects_above_the_threshold_and_parts_are_never_packed() {
    let rig = Rig::new(packing()).await;
    let big = rig.put("big", &data(SEG as usize + 1, 1)).await;
    assert_eq!(rig.manifest("big").await.expect("visible").parts[0].seal.slots, 0);
    assert!(rig.manifest("big").await.expect("visible").parts[0].member.is_none());
    assert_eq!(rig.get_all("big").await, data(SEG as usize + 1, 1));
    let _ = big;
}

#[tokio::test]
async fn a_mostly_dead_pack_is_rewritten_with_its_live_members_and_no_key() {
    let rig = Rig::new(packing()).await;
    let objects = put_many(&rig, "c", 8).await;
    let old = objects[0].2.seal;
    // A shared copy of c1, then five of the eight deleted (c1 among them).
    let src = rig.manifest("c1").await.expect("visible");
    let target = match rig.request("c1copy", 0, crate::testing::body(&[]), Expected::default()).target {
        t @ PutTarget::Object { .. } => t,
        PutTarget::Part { .. } => unreachable!(),
    };
    let source = CopySource { manifest: src, policy: "p".into(), customer: None, range: None };
    let req = CopyRequest {
        source,
        policy: rig.policy.clone(),
        tenant: 0,
        checksum: None,
        target,
        customer: None,
        requester: None,
    };
    assert!(copy(&rig.ctx, req).await.expect("copy").shared);
    for k in ["c0", "c1", "c2", "c3", "c4"] {
        delete(&rig.ctx, "b", k.as_bytes(), &DeleteCondition::default()).await.expect("delete");
    }
    // Not dead enough at 90%: left alone.
    assert_eq!(compact::compact_once(&rig.ctx, 90, i64::MAX, 10).await.expect("compact"), 0);
    assert_eq!(compact::compact_once(&rig.ctx, 30, i64::MAX, 10).await.expect("compact"), 1);
    let m = rig.manifest("c5").await.expect("visible");
    let new = m.parts[0].seal.id;
    assert_ne!(new, old);
    assert_eq!(m.parts[0].seal.slots, 4, "c1 (for its copy), c5, c6, c7");
    for (k, d) in [("c1copy", &objects[1].1), ("c5", &objects[5].1), ("c6", &objects[6].1), ("c7", &objects[7].1)] {
        assert_eq!(&rig.get_all(k).await, d, "{k}");
        assert_eq!(rig.manifest(k).await.expect("visible").parts[0].seal.id, new);
    }
    assert_eq!(rig.seal_state(old).await, Some(SealState::Garbage));
    cleanup::collect_once(&rig.ctx, &cleanup::dead_writes(&rig.ctx), 100).await.expect("collect");
    assert!(!rig.store.all().iter().any(|(_, n)| n.starts_with(&format!("{old}/"))), "the old pack's fragments went");
    // The manifests at the locations name the new pack, and the old one for a
    // recovery that finds the new pack's fragments missing (a compaction cut short):
    // the members' in a record of the new pack's, the copy's (one of its own)
    // rewritten in place; the old pack's record goes.
    record::collect_records(&rig.ctx, 100).await.expect("records");
    assert_eq!(pack_record(&rig, old).0, 0, "the old pack's record went");
    let (copies, moved) = pack_record(&rig, new);
    let moved = moved.expect("the new pack's record");
    assert_eq!(copies, 3);
    let mut expect = std::collections::BTreeSet::new();
    for k in ["c5", "c6", "c7"] {
        expect.insert(rig.manifest(k).await.expect("visible").version.id.to_string());
    }
    assert_eq!(held(&moved), expect);
    let copy_v = rig.manifest("c1copy").await.expect("visible").version.id.to_string();
    let (location, name) =
        rig.store.all().into_iter().find(|(_, n)| n.starts_with("m/") && n.contains(&copy_v)).expect("its own");
    let own: crate::ledger::ManifestRecord =
        rig.ctx.ledger.open(&name, &rig.store.bytes(&location, &name).expect("bytes")).expect("opens");
    assert_eq!(own.parts[0].seal.id, new.to_string());
    assert_eq!(own.parts[0].previous.as_ref().expect("where it was").seal.id, old.to_string());
    let v = m.version.id.to_string();
    let record = moved.manifests().into_iter().find(|r| r.version_id == v).expect("c5's manifest");
    let part = &record.parts[0];
    assert_eq!(part.seal.id, new.to_string());
    assert_eq!(part.previous.as_ref().expect("where it was").seal.id, old.to_string());
    let (new_s, old_s) = (new.to_string(), old.to_string());
    let settled = record.settled(|id| if id == new_s { 6 } else { 0 });
    assert_eq!(settled.parts[0].seal.id, new_s);
    let settled = record.settled(|id| if id == old_s { 6 } else { 0 });
    assert_eq!(settled.parts[0].seal.id, old_s, "cut short: the old place");
    assert_eq!(settled.parts[0].member.as_ref().expect("member").slot, 5);
}

#[tokio::test]
async fn a_record_that_fails_its_checksum_stops_a_compaction_and_is_left_to_repair() {
    let rig = Rig::new(packing()).await;
    let objects = put_many(&rig, "x", 4).await;
    let old = objects[0].2.seal;
    for k in ["x0", "x1"] {
        delete(&rig.ctx, "b", k.as_bytes(), &DeleteCondition::default()).await.expect("delete");
    }
    let seal = rig.manifest("x3").await.expect("visible").parts[0].seal.clone();
    let f = &seal.fragments[0];
    let len = rig.store.bytes(&f.location, &f.name).expect("fragment").len();
    // A bit flipped in the last member's record (live).
    rig.store.flip(&f.location, &f.name, len - 10, 3);
    assert_eq!(compact::compact_once(&rig.ctx, 10, i64::MAX, 10).await.expect("compact"), 0);
    let after = rig.manifest("x3").await.expect("visible").parts[0].seal.clone();
    assert_eq!(after.id, old, "left as it was");
    assert_eq!(after.fragments[0].state, crate::meta::FragmentState::Corrupt, "and the fragment marked for repair");
    for (k, d, _) in &objects[2..] {
        assert_eq!(&rig.get_all(k).await, d, "{k}");
    }
    assert_eq!(seals_in(&rig, SealState::Garbage).await, 0, "no new pack half made");
}

#[tokio::test]
async fn a_tag_change_gives_a_packed_member_a_manifest_of_its_own() {
    let rig = Rig::new(packing()).await;
    let objects = put_many(&rig, "t", 3).await;
    let pack = objects[0].2.seal;
    let v = objects[1].2.version.expect("a version");
    let tags: std::collections::BTreeMap<String, String> = [("team".to_string(), "blue".to_string())].into();
    let changed = restate(&rig.ctx, "b", b"t1", v, |old| {
        let mut new = old.clone();
        new.attrs.tags = tags.clone();
        Ok(new)
    })
    .await
    .expect("restate")
    .expect("the version");
    assert_eq!(changed.attrs.tags, tags);
    // Its manifest is its own now (the pack record is never rewritten for it; a
    // recovery prefers the manifest of its own).
    let row = rig.ctx.meta.manifest_record(v).await.expect("row").expect("a manifest");
    assert!(row.name.starts_with(&format!("m/{v}.")), "{}", row.name);
    assert_eq!(row.locations.len(), 3);
    let (location, name) = rig.store.all().into_iter().find(|(_, n)| *n == row.name).expect("written");
    let own: crate::ledger::ManifestRecord =
        rig.ctx.ledger.open(&name, &rig.store.bytes(&location, &name).expect("bytes")).expect("opens");
    assert_eq!(own.tags, tags);
    assert_eq!(own.parts[0].seal.id, pack.to_string());
    assert_eq!(pack_record(&rig, pack).1.expect("the pack record").members.len(), 3);
    // Deleted, then the others: the pack record goes with the pack, the manifest
    // of its own with its version.
    for k in ["t0", "t1", "t2"] {
        delete(&rig.ctx, "b", k.as_bytes(), &DeleteCondition::default()).await.expect("delete");
    }
    cleanup::collect_once(&rig.ctx, &cleanup::dead_writes(&rig.ctx), 100).await.expect("collect");
    record::collect_records(&rig.ctx, 100).await.expect("records");
    record::collect_records(&rig.ctx, 100).await.expect("records");
    let left: Vec<String> = rig.store.all().into_iter().map(|(_, n)| n).filter(|n| !n.starts_with("t/")).collect();
    assert!(left.is_empty(), "{left:?}");
}

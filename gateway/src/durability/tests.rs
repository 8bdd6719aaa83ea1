//! The upkeep in process, over the in-memory locations of the pipeline's tests:
//! fragments lost at write time, lost later, corrupted, restored; locations down and
//! back, out of service; the queue's order; scrub's resumption; collection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::repair::repair_batch;
use super::scrub::scrub_step;
use super::*;
use crate::backend::memory::Fault;
use crate::meta::{FragmentState, LocationState, SealState, margin};
use crate::pipeline::cleanup::{collect_once, dead_writes};
use crate::testing::{Options, Rig, SEG, data};

/// Each fragment of `key`'s first seal: (location, state).
async fn states(rig: &Rig, key: &str) -> Vec<(String, FragmentState)> {
    let m = rig.manifest(key).await.expect("visible");
    m.parts[0].seal.fragments.iter().map(|f| (f.location.clone(), f.state)).collect()
}

/// Reads `key` with every location in `down` down (then up again).
async fn read_without(rig: &Rig, key: &str, down: &[&str]) -> Vec<u8> {
    for l in down {
        rig.store.set_fault(l, Some(Fault::Down));
    }
    let got = rig.get_all(key).await;
    for l in down {
        rig.store.set_fault(l, None);
    }
    got
}

/// Repairs until the queue is empty (what waits out a backoff left aside).
async fn repair_all(up: &Upkeep) -> repair::RepairReport {
    let mut total = repair::RepairReport::default();
    while let Some(r) = repair_batch(up).await.expect("repair") {
        total = total.plus(&r);
    }
    total
}

#[test]
fn margins_are_healthy_fragments_minus_k() {
    assert_eq!(margin(6, 4), 2);
    assert_eq!(margin(4, 4), 0);
    assert_eq!(margin(3, 4), -1, "unreadable until repaired");
    assert_eq!(margin(0, 1), -1);
}

#[tokio::test]
async fn a_fragment_that_missed_its_write_is_rebuilt_in_place_once_its_location_is_back() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    rig.store.set_fault("l3", Some(Fault::Down));
    let d = data(5 * SEG as usize + 7, 1);
    assert_eq!(rig.put("o", &d).await.stored, 5, "the write quorum, not n");
    assert!(states(&rig, "o").await.contains(&("l3".into(), FragmentState::Missing)));
    let margins = rig.ctx.meta.margins().await.expect("margins");
    assert_eq!((margins[0].margin, margins[0].seals), (1, 1), "{margins:?}");
    assert_eq!(rig.ctx.meta.repair_backlog().await.expect("backlog"), (1, 1));

    // Its location still down: repair waits (the seal is deferred, not retried in a loop).
    let r = repair_batch(&up).await.expect("repair").expect("one seal queued");
    assert_eq!((r.rebuilt, r.failed), (0, 1));
    assert!(repair_batch(&up).await.expect("repair").is_none(), "deferred: out of the queue for the backoff");

    // Back before the watcher's probe ever found it down (an outage shorter than
    // the probe interval): the failed rebuild is enough for the probe to count it
    // back, and its seals go to the head of the queue again.
    rig.store.set_fault("l3", None);
    let mut seen: std::collections::HashMap<String, bool> = (0..6).map(|i| (format!("l{i}"), true)).collect();
    super::watch::watch_once(&up, &mut seen).await;
    assert_eq!(rig.ctx.health.failures("l3"), 0);
    let r = repair_all(&up).await;
    assert_eq!((r.rebuilt, r.healed), (1, 1), "{r:?}");
    assert!(states(&rig, "o").await.iter().all(|(_, s)| *s == FragmentState::Stored));
    assert_eq!(rig.ctx.meta.margins().await.expect("margins")[0].margin, 2);
    let at_l3 = rig.store.names("l3");
    assert_eq!(at_l3.iter().filter(|n| !n.starts_with("m/")).count(), 1, "rebuilt where it belongs");
    assert!(at_l3.iter().any(|n| n.starts_with("m/")), "and the manifest followed it: {at_l3:?}");
    // Full redundancy again: any two other locations may go.
    assert_eq!(read_without(&rig, "o", &["l0", "l5"]).await, d);
    assert_eq!(Stats::get(&up.stats.rebuilt), 1);
}

#[tokio::test]
async fn a_fragment_found_missing_then_put_back_is_stored_again_not_rebuilt() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    let d = data(3 * SEG as usize, 2);
    rig.put("r", &d).await;
    let (loc, name) = rig.fragments("r").await[1].clone();
    let saved = rig.store.bytes(&loc, &name).expect("stored");
    rig.store.lose(&loc, &name);
    // A read that needs it finds it gone (with three others down it needs all three left).
    let others: Vec<String> = rig.fragments("r").await.iter().map(|(l, _)| l.clone()).filter(|l| *l != loc).collect();
    assert_eq!(read_without(&rig, "r", &[&others[0]]).await, d);
    assert!(states(&rig, "r").await.contains(&(loc.clone(), FragmentState::Missing)));
    // The file comes back (restored from a backup, a location's hiccup over).
    rig.store.replace(&loc, &name, saved.to_vec());
    let puts_before = rig.store.counts(&loc).puts;
    let r = repair_all(&up).await;
    assert_eq!((r.restored, r.rebuilt), (1, 0), "{r:?}");
    assert_eq!(rig.store.counts(&loc).puts, puts_before, "nothing rewritten");
    assert!(states(&rig, "r").await.iter().all(|(_, s)| *s == FragmentState::Stored));
}

#[tokio::test]
async fn scrub_finds_a_corrupt_fragment_and_repair_rebuilds_it() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    let d = data(4 * SEG as usize + 1, 3);
    rig.put("c", &d).await;
    rig.put("other", &data(100, 4)).await;
    let (loc, name) = rig.fragments("c").await[4].clone();
    let len = rig.store.bytes(&loc, &name).expect("stored").len();
    rig.store.flip(&loc, &name, len / 2, 1);
    let r = scrub_step(&up, "test", &up.scrub_rate, Duration::from_secs(60)).await.expect("scrub");
    assert!(r.finished, "a pass over two small objects finishes");
    assert_eq!((r.fragments, r.corrupt, r.missing), (11, 1, 0), "{r:?}");
    assert!(states(&rig, "c").await.contains(&(loc.clone(), FragmentState::Corrupt)));
    let pass = rig.ctx.meta.pass("test").await.expect("pass").expect("recorded");
    assert!(pass.finished_at > 0 && pass.cursor.is_empty());
    let r = repair_all(&up).await;
    assert_eq!(r.rebuilt, 1, "{r:?}");
    // The rebuilt copy checks out, and the object survives two other losses.
    let r = scrub_step(&up, "test", &up.scrub_rate, Duration::from_secs(60)).await.expect("scrub");
    assert_eq!((r.corrupt, r.missing), (0, 0));
    let others: Vec<String> = rig.fragments("c").await.iter().map(|(l, _)| l.clone()).filter(|l| *l != loc).collect();
    assert_eq!(read_without(&rig, "c", &[&others[0], &others[1]]).await, d);
}

#[tokio::test]
async fn scrub_resumes_where_it_stopped() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    for i in 0..12 {
        rig.put(&format!("s{i}"), &data(1000, i)).await;
    }
    // A budget of nothing still does one batch (8 seals): the place is kept.
    let first = scrub_step(&up, "p", &up.scrub_rate, Duration::ZERO).await.expect("scrub");
    assert!(!first.finished);
    assert_eq!(first.fragments, 8 * 6);
    let kept = rig.ctx.meta.pass("p").await.expect("pass").expect("recorded");
    assert_eq!(kept.checked, 48);
    let rest = scrub_step(&up, "p", &up.scrub_rate, Duration::from_secs(60)).await.expect("scrub");
    assert!(rest.finished);
    assert_eq!(rest.fragments, 4 * 6, "only what the first step had not checked");
}

#[tokio::test]
async fn a_finished_pass_is_due_again_only_after_its_interval() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    let hour = Duration::from_secs(3600);
    let due = |name: &'static str| super::pass_due_in(&rig.ctx, name, hour);
    assert_eq!(due("p").await.expect("due"), Duration::ZERO, "never run: due now");
    rig.put("x", &data(100, 1)).await;
    assert!(scrub_step(&up, "p", &up.scrub_rate, Duration::from_secs(60)).await.expect("scrub").finished);
    let wait = due("p").await.expect("due");
    assert!(wait > hour - Duration::from_secs(60) && wait <= hour, "{wait:?}");
    // A pass in progress is due at once.
    let mut pass = rig.ctx.meta.pass("p").await.expect("pass").expect("kept");
    pass.cursor = "00".repeat(16);
    rig.ctx.meta.save_pass(&pass).await.expect("save");
    assert_eq!(due("p").await.expect("due"), Duration::ZERO);
}

#[tokio::test]
async fn repairs_go_elsewhere_under_the_policy_when_the_location_is_out_of_service() {
    let rig = Rig::new(Options { spare_locations: 1, all_locations: true, ..Options::default() }).await;
    let up = rig.upkeep();
    let d = data(2 * SEG as usize, 5);
    rig.put("m", &d).await;
    let before = rig.fragments("m").await;
    let spare = (0..7).map(|i| format!("l{i}")).find(|l| before.iter().all(|(h, _)| h != l)).expect("one free");
    let (loc, name) = before[0].clone();
    rig.store.lose(&loc, &name);
    let sid = rig.manifest("m").await.expect("m").parts[0].seal.id;
    rig.ctx.meta.set_fragment_state(sid, 0, FragmentState::Missing).await.expect("mark");
    // The operator took the location out of service.
    rig.ctx.meta.set_location_state(&loc, LocationState::Removed).await.expect("state");
    rig.ctx.catalog.reload(&rig.ctx.meta).await.expect("reload");
    let r = repair_all(&up).await;
    assert_eq!(r.rebuilt, 1, "{r:?}");
    let after = states(&rig, "m").await;
    assert_eq!(after[0], (spare.clone(), FragmentState::Stored), "the policy's location holding none of the seal");
    let (l1, l2) = (after[1].0.clone(), after[2].0.clone());
    assert_eq!(read_without(&rig, "m", &[&l1, &l2]).await, d);
    // The manifest followed the fragment: a copy where it went.
    assert!(rig.store.names(&spare).iter().any(|n| n.starts_with("m/")), "{:?}", rig.store.names(&spare));
    let version = rig.manifest("m").await.expect("m").version.id;
    let record = rig.ctx.meta.manifest_record(version).await.expect("record").expect("a manifest");
    assert!(record.locations.contains(&spare));
}

#[tokio::test]
async fn the_queue_takes_the_most_endangered_first() {
    let rig = Rig::new(Options::default()).await;
    let d = data(500, 6);
    for key in ["a", "b", "c"] {
        rig.put(key, &d).await;
    }
    let seal = |key: &'static str| {
        let rig = &rig;
        async move { rig.manifest(key).await.expect("visible").parts[0].seal.id }
    };
    let (a, b, c) = (seal("a").await, seal("b").await, seal("c").await);
    // a loses one fragment, b two, c one (c is newest).
    for (s, idx) in [(a, 0), (b, 0), (b, 1), (c, 2)] {
        rig.ctx.meta.set_fragment_state(s, idx, FragmentState::Missing).await.expect("mark");
    }
    let queue: Vec<_> =
        rig.ctx.meta.repair_queue(10, false).await.expect("queue").into_iter().map(|i| i.seal.id).collect();
    assert_eq!(queue, [b, a, c], "lowest margin first, then oldest");
    let by_margin: Vec<(i64, i64)> =
        rig.ctx.meta.margins().await.expect("margins").iter().map(|m| (m.margin, m.seals)).collect();
    assert_eq!(by_margin, [(0, 1), (1, 2)]);
    assert_eq!(rig.ctx.meta.repair_backlog().await.expect("backlog"), (3, 4));
    rig.ctx.meta.defer_repair(b, crate::meta::now_ms() + 60_000).await.expect("defer");
    let queue: Vec<_> =
        rig.ctx.meta.repair_queue(10, false).await.expect("queue").into_iter().map(|i| i.seal.id).collect();
    assert_eq!(queue, [a, c], "a deferred seal waits");
    assert_eq!(rig.ctx.meta.undefer_repairs().await.expect("undefer"), 1);
    assert_eq!(rig.ctx.meta.repair_queue(10, false).await.expect("queue").len(), 3);
}

#[tokio::test]
async fn a_corrupt_survivor_met_during_a_rebuild_is_marked_and_repaired_too() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    let d = data(3 * SEG as usize, 7);
    rig.put("x", &d).await;
    let frags = rig.fragments("x").await;
    let sid = rig.manifest("x").await.expect("x").parts[0].seal.id;
    // Fragment 0 lost (and known so); fragment 3 quietly corrupt in its last record.
    rig.store.lose(&frags[0].0, &frags[0].1);
    rig.ctx.meta.set_fragment_state(sid, 0, FragmentState::Missing).await.expect("mark");
    let len = rig.store.bytes(&frags[3].0, &frags[3].1).expect("stored").len();
    rig.store.flip(&frags[3].0, &frags[3].1, len - 20, 0);
    let r = repair_all(&up).await;
    assert_eq!(r.rebuilt, 2, "the lost one, then the corrupt one it found: {r:?}");
    assert!(states(&rig, "x").await.iter().all(|(_, s)| *s == FragmentState::Stored));
    assert_eq!(read_without(&rig, "x", &[&frags[1].0, &frags[2].0]).await, d);
}

#[tokio::test]
async fn a_rebuild_with_too_few_survivors_fails_cleanly_and_waits() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    rig.put("lost", &data(1000, 8)).await;
    let frags = rig.fragments("lost").await;
    let sid = rig.manifest("lost").await.expect("lost").parts[0].seal.id;
    for (i, (l, n)) in frags.iter().enumerate().take(3) {
        rig.store.lose(l, n);
        rig.ctx.meta.set_fragment_state(sid, i as u8, FragmentState::Missing).await.expect("mark");
    }
    let r = repair_batch(&up).await.expect("repair").expect("queued");
    assert_eq!((r.rebuilt, r.failed), (0, 3), "{r:?}");
    assert!(states(&rig, "lost").await.iter().all(|(_, s)| *s != FragmentState::Repairing), "nothing left half done");
    assert!(repair_batch(&up).await.expect("repair").is_none(), "deferred");
    assert_eq!(Stats::get(&up.stats.repair_failures), 3);
}

#[tokio::test]
async fn collection_clears_many_seals_per_round_and_puts_failures_last() {
    let rig = Rig::new(Options::default()).await;
    for i in 0..40 {
        rig.put("same", &data(300, i)).await;
    }
    // 39 overwritten seals are garbage; one location refuses deletes for a while.
    rig.store.set_fault("l2", Some(Fault::Down));
    let n = collect_once(&rig.ctx, &dead_writes(&rig.ctx), 512).await.expect("collect");
    assert_eq!(n, 0, "no seal whose fragments are not all gone is forgotten");
    rig.store.set_fault("l2", None);
    // l5 deletes one fragment at a time (as Swift through TempURLs); the others in
    // bulk.
    rig.store.refuse_batches("l5");
    let before: Vec<_> = (0..6).map(|i| rig.store.counts(&format!("l{i}"))).collect();
    let n = collect_once(&rig.ctx, &dead_writes(&rig.ctx), 512).await.expect("collect");
    assert_eq!(n, 39, "all in one round");
    let left = rig.store.all();
    // The live version's fragments and its manifest's n - k + 1 copies.
    assert_eq!(left.len(), 6 + 3, "only the live version's fragments and manifest are left: {left:?}");
    assert_eq!(left.iter().filter(|(_, n)| n.starts_with("m/")).count(), 3);
    for (i, b) in before.iter().enumerate() {
        let now = rig.store.counts(&format!("l{i}"));
        let (batches, deletes) = (now.batches - b.batches, now.deletes - b.deletes);
        // One request for the fragments, and at most one for the retired manifests'
        // copies there (some of which the first round may have deleted already).
        match i {
            5 => assert!(batches == 0 && deletes >= 39, "one by one: {batches} {deletes}"),
            _ => assert!((1..=2).contains(&batches) && deletes >= 39, "l{i}: in bulk: {batches} {deletes}"),
        }
    }
    let dead = crate::meta::DeadWrites { before: i64::MAX, writer: "", writer_before: 0, retired_before: i64::MAX };
    let left = rig.ctx.meta.collectable_seals(&dead, 100).await.expect("seals");
    assert!(left.iter().all(|s| s.state != SealState::Garbage));
    assert!(rig.ctx.quorum_failures.write.load(Ordering::Relaxed) == 0);
}

/// A fragment name no seal has.
fn orphan_name(n: u8, i: u8) -> String {
    format!("{}/{i}", crate::meta::SealId([n; 16]))
}

#[tokio::test]
async fn the_sweep_deletes_old_orphans_and_nothing_else() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    for i in 0..5 {
        rig.put(&format!("k{i}"), &data(700, i)).await;
    }
    let hour_ago = crate::meta::now_ms() - 3_600_000;
    // Old orphans at two locations, a young one, and something that is no fragment.
    for n in 1..=9 {
        rig.store.plant("l1", &orphan_name(n, 1), b"stale", hour_ago - 1);
    }
    rig.store.plant("l4", &orphan_name(20, 4), b"stale", hour_ago - 1);
    rig.store.plant("l4", &orphan_name(21, 4), b"young", crate::meta::now_ms());
    rig.store.plant("l4", "README", b"not ours", hour_ago - 1);
    let known: Vec<(String, String)> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.extend(rig.fragments(&format!("k{i}")).await);
        }
        v
    };
    // Small steps: the pass keeps its place across pages (7 names a page) and steps.
    let mut total = super::sweep::SweepReport::default();
    loop {
        let r = super::sweep::sweep_step(&up, "t", Duration::ZERO).await.expect("sweep");
        total.deleted += r.deleted;
        total.young += r.young;
        total.listed += r.listed;
        if r.finished {
            break;
        }
    }
    assert_eq!((total.deleted, total.young), (10, 1), "{total:?}");
    assert_eq!(total.listed, 30 + 5 * 3 + 12, "every object once (fragments, manifest copies, planted)");
    assert!(rig.store.bytes("l4", &orphan_name(21, 4)).is_some(), "a young one may be a write in flight");
    assert!(rig.store.bytes("l4", "README").is_some(), "not a fragment: not the sweep's");
    assert!(known.iter().all(|(l, n)| rig.store.bytes(l, n).is_some()), "no live fragment touched");
    for i in 0..5 {
        assert_eq!(rig.get_all(&format!("k{i}")).await, data(700, i));
    }
    assert_eq!(Stats::get(&up.stats.orphans_deleted), 10);
}

#[tokio::test]
async fn the_sweep_leaves_alone_a_location_the_metadata_seems_to_have_lost() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    rig.put("one", &data(700, 1)).await;
    // Far more unknown fragments than known ones: a database restored from an old
    // backup would look like this, and these would be the only copies.
    let old = crate::meta::now_ms() - 3_600_000;
    for n in 0..150u8 {
        rig.store.plant("l2", &orphan_name(n, 2), b"x", old);
    }
    let mut skipped = Vec::new();
    let mut deleted = 0;
    loop {
        let r = super::sweep::sweep_step(&up, "t", Duration::from_secs(60)).await.expect("sweep");
        skipped.extend(r.skipped);
        deleted += r.deleted;
        if r.finished {
            break;
        }
    }
    assert_eq!(deleted, 100, "at most the cap");
    assert_eq!(skipped, ["l2"]);
    let manifests = rig.store.names("l2").iter().filter(|n| n.starts_with("m/")).count();
    assert_eq!(rig.store.names("l2").len(), 51 + manifests, "the rest left alone (and the live fragment, manifest)");
}

#[tokio::test]
async fn a_replaced_disk_gets_its_manifest_copy_back_with_its_fragment() {
    let rig = Rig::new(Options::default()).await;
    let up = rig.upkeep();
    let d = data(900, 31);
    rig.put("x", &d).await;
    let m = rig.manifest("x").await.expect("x");
    let record = rig.ctx.meta.manifest_record(m.version.id).await.expect("record").expect("manifest");
    let seal = &m.parts[0].seal;
    // A location holding a fragment and a copy of the manifest loses its disk.
    let f = seal.fragments.iter().find(|f| record.locations.contains(&f.location)).expect("one holds both").clone();
    rig.store.lose(&f.location, &f.name);
    rig.store.lose(&f.location, &record.name);
    rig.ctx.meta.set_fragment_state(seal.id, f.index, FragmentState::Missing).await.expect("mark");
    let r = repair_all(&up).await;
    assert_eq!(r.rebuilt, 1, "{r:?}");
    assert!(rig.store.bytes(&f.location, &record.name).is_some(), "the manifest copy is back");
    assert_eq!(rig.get_all("x").await, d);
}

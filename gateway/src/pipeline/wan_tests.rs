//! The data path with locations of different speeds (issue: real clouds are far
//! apart): writes run at the pace of their write quorum and leave a slow location's
//! fragment to land in the background; reads hedge a straggler and ask a spare
//! fragment for objects of one segment; placement passes over a slow location.

use std::time::{Duration, Instant};

use crate::backend::memory::Fault;
use crate::meta::FragmentState;
use crate::testing::{Options, Rig, SEG, data};

/// The state of each fragment of `key`'s first part, by location.
async fn states(rig: &Rig, key: &str) -> Vec<(String, FragmentState)> {
    let m = rig.manifest(key).await.expect("visible");
    m.parts[0].seal.fragments.iter().map(|f| (f.location.clone(), f.state)).collect()
}

/// The location of fragment `index` of `key`'s first part.
async fn location_of(rig: &Rig, key: &str, index: u8) -> String {
    let m = rig.manifest(key).await.expect("visible");
    m.parts[0].seal.fragments.iter().find(|f| f.index == index).expect("fragment").location.clone()
}

#[tokio::test]
async fn a_slow_location_does_not_hold_up_a_write_and_its_fragment_lands_later() {
    let rig = Rig::new(Options::default()).await;
    // 40 ms per piece: 64 segments' fragment takes seconds there, the others none.
    rig.store.set_fault("l2", Some(Fault::SlowPut(40)));
    let d = data(64 * SEG as usize, 9);
    let started = Instant::now();
    let out = rig.put("slow", &d).await;
    let took = started.elapsed();
    assert_eq!(out.stored, 5, "acknowledged at the write quorum");
    assert!(took < Duration::from_secs(2), "the write waited for the slow location: {took:?}");
    let now = states(&rig, "slow").await;
    assert!(now.contains(&("l2".into(), FragmentState::Missing)), "recorded missing until it lands: {now:?}");
    // Repair leaves it alone meanwhile.
    assert!(rig.ctx.meta.repair_queue(10, false).await.expect("queue").is_empty(), "repair waits for the upload");
    assert_eq!(rig.get_all("slow").await, d, "readable at once");
    let deadline = Instant::now() + Duration::from_secs(30);
    while states(&rig, "slow").await.iter().any(|(_, s)| *s != FragmentState::Stored) {
        assert!(Instant::now() < deadline, "the late fragment never landed: {:?}", states(&rig, "slow").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rig.store.names("l2").len(), 1, "its fragment is at the slow location");
    // Measured slow by that upload: the next object is placed elsewhere when it can
    // be (here it cannot: the policy has six locations for six fragments).
    let (_, rate) = rig.ctx.health.speed("l2");
    assert!(rate.is_some(), "the late upload measured its location");
}

#[tokio::test]
async fn a_write_gives_up_on_a_location_that_outruns_the_lag_buffer() {
    let rig = Rig::new(Options::default()).await;
    rig.store.set_fault("l4", Some(Fault::SlowPut(200)));
    // The rig's lag buffer is 64 MiB; hold almost all of it elsewhere.
    let _held = rig.ctx.lagging.clone().try_acquire_many_owned((64 << 20) - 2048).expect("permits");
    let d = data(64 * SEG as usize, 10);
    let out = rig.put("outrun", &d).await;
    assert_eq!(out.stored, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = states(&rig, "outrun").await;
    assert!(now.contains(&("l4".into(), FragmentState::Missing)), "{now:?}");
    assert!(rig.store.names("l4").is_empty(), "given up on: nothing lands there");
    // Given up on, it is repair's at once.
    assert_eq!(rig.ctx.meta.repair_queue(10, false).await.expect("queue").len(), 1);
    assert_eq!(rig.get_all("outrun").await, d);
}

#[tokio::test]
async fn a_read_stalled_mid_fragment_is_hedged_not_waited_for() {
    let rig = Rig::new(Options::default()).await;
    let d = data(32 * SEG as usize, 11);
    rig.put("hedge", &d).await;
    // Fragment 0 is among the first asked for (all equally fast: by index). Its
    // location stalls after a few records, for good: nothing times out in this
    // store, so only a hedge finishes the read.
    let first = location_of(&rig, "hedge", 0).await;
    rig.store.set_fault(&first, Some(Fault::StallGetAfter(5000)));
    let got = tokio::time::timeout(Duration::from_secs(10), rig.get_all("hedge")).await.expect("hedged");
    assert_eq!(got, d);
    let before = rig.store.counts(&first).gets;
    assert!(before >= 1, "the stalled location was read");
    // The stall taught the gateway: the next read does not ask it first.
    let got = tokio::time::timeout(Duration::from_secs(10), rig.get_all("hedge")).await.expect("read");
    assert_eq!(got, d);
    assert_eq!(rig.store.counts(&first).gets, before, "asked the stalled location again");
}

#[tokio::test]
async fn a_one_segment_read_asks_a_spare_and_does_not_wait_for_a_slow_location() {
    let rig = Rig::new(Options::default()).await;
    let d = data(SEG as usize / 2, 12);
    rig.put("small", &d).await;
    let first = location_of(&rig, "small", 0).await;
    rig.store.set_fault(&first, Some(Fault::SlowGet(60_000)));
    let got = tokio::time::timeout(Duration::from_secs(5), rig.get_all("small")).await.expect("not held up");
    assert_eq!(got, d);
    let asked: u64 = (0..6).map(|i| rig.store.counts(&format!("l{i}")).gets).sum();
    assert_eq!(asked, 5, "k + 1 fragments asked for");
}

#[tokio::test]
async fn placement_passes_over_a_location_much_slower_than_the_others() {
    let rig = Rig::new(Options { spare_locations: 1, all_locations: true, ..Options::default() }).await;
    for i in 0..7 {
        rig.ctx.health.observe_rate(&format!("l{i}"), 4 << 20, Duration::from_millis(100));
    }
    rig.ctx.health.observe_rate("l3", 4 << 20, Duration::from_secs(20));
    rig.ctx.health.observe_rate("l3", 4 << 20, Duration::from_secs(20));
    let names: Vec<String> = (0..7).map(|i| format!("l{i}")).collect();
    assert_eq!(rig.ctx.health.slow(&names), vec![&names[3]]);
    for i in 0..8 {
        let key = format!("o{i}");
        rig.put(&key, &data(2 * SEG as usize, i)).await;
        let at: Vec<String> = states(&rig, &key).await.into_iter().map(|(l, _)| l).collect();
        assert_eq!(at.len(), 6);
        assert!(!at.contains(&"l3".to_string()), "placed on the slow location: {at:?}");
    }
}

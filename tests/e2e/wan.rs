//! Locations behind the WAN emulator (`e2e::wan`): faults in the middle of a
//! transfer, where real links have them.

use std::time::Duration;

use e2e::wan::{Conditions, Link};
use e2e::{Client, Db, Gateway, Rclone, TempDir, data_file, eventually, rclone_location_at, same_file};

/// The fragments of the object's first part: (index, location number, state).
fn fragments(gw: &Gateway, bucket: &str, key: &str) -> Vec<(i64, usize, String)> {
    let o = gw.admin_json(&["object", bucket, key]);
    o["parts"][0]["fragments"]
        .as_array()
        .unwrap_or_else(|| panic!("fragments: {o}"))
        .iter()
        .map(|f| {
            let location = f["location"].as_str().expect("location").trim_start_matches("rc");
            let state = f["state"].as_str().expect("state").to_string();
            (f["index"].as_i64().expect("index"), location.parse().expect("an rcN location"), state)
        })
        .collect()
}

/// The location holding fragment `index` of the object's first part.
fn location_of(gw: &Gateway, bucket: &str, key: &str, index: i64) -> usize {
    fragments(gw, bucket, key).into_iter().find(|f| f.0 == index).map(|f| f.1).expect("fragment")
}

/// `n` rclone locations, each behind a link, and the gateway configuration naming
/// them (by their links' ports) as `rc0`, `rc1`, ….
fn linked_locations(dir: &TempDir, n: usize) -> (Vec<Rclone>, Vec<Link>, String) {
    let locations: Vec<Rclone> =
        (0..n).map(|i| Rclone::start(dir.join(&format!("loc{i}")), &format!("frags-{i}"), i)).collect();
    let links: Vec<Link> = locations.iter().map(|r| Link::start(r.port)).collect();
    let mut config = String::new();
    for (i, (r, l)) in locations.iter().zip(&links).enumerate() {
        config.push_str(&rclone_location_at(&format!("rc{i}"), r, l.port));
    }
    (locations, links, config)
}

/// A GET whose first fragments' locations fail mid-body — one stops sending
/// (a stall), one cuts the connection (a reset) — still returns the object, from
/// the other locations, with no error the client sees; and the faults were really
/// met (bytes came from both first). The stall is hedged: the gateway's own stall
/// timeout is ten minutes away, past the client's patience.
#[test]
fn faults_mid_get_are_read_around() {
    let dir = TempDir::new("wan-faults");
    let (_locations, links, mut config) = linked_locations(&dir, 6);
    config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\n");
    config.push_str("[pipeline]\nstall_timeout = \"10m\"\n");
    let gw = Gateway::start(&dir.join("gw"), Some(&config), Db::Sqlite);
    let cl = Client::from(&gw);
    let f = data_file(&dir.join("f"), 6 << 20, 41);
    cl.aws(&["s3", "mb", "s3://wan"]).ok();
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://wan/big"]).ok();

    // A read takes fragments 0..3 first (healthy locations, equally fast on
    // loopback, then by index): fault the locations of 0 and 1, each after 200 KB
    // of a connection's answer.
    let (stalls, cuts) = (location_of(&gw, "wan", "big", 0), location_of(&gw, "wan", "big", 1));
    links[stalls].set(Conditions { stall_after: Some(200_000), ..Conditions::default() });
    links[cuts].set(Conditions { reset_after: Some(200_000), ..Conditions::default() });
    let before = (links[stalls].moved().down, links[cuts].moved().down);
    let back = dir.join("back");
    cl.aws(&["s3", "cp", "--no-progress", "s3://wan/big", &back.display().to_string()]).ok();
    assert!(same_file(&f, &back), "the object came back different");
    let read = (links[stalls].moved().down - before.0, links[cuts].moved().down - before.1);
    assert!(read.0 > 0 && read.1 > 0, "both faulty locations were read from: {read:?}");
    let log = gw.log_text();
    assert!(log.contains("fragment unusable"), "the faults are logged");

    // Cleared, the same locations serve again.
    links[stalls].set(Conditions::default());
    links[cuts].set(Conditions::default());
    std::fs::remove_file(&back).expect("remove");
    cl.aws(&["s3", "cp", "--no-progress", "s3://wan/big", &back.display().to_string()]).ok();
    assert!(same_file(&f, &back));
}

/// One location of seven turns slow (2 Mbit/s, the others 40 Mbit/s). A write
/// that places a fragment there is acknowledged once its write quorum landed,
/// before the slow location has its fragment, which lands later in the background
/// (recorded stored); reads leave the slow location out; and new objects' fragments
/// go to the other six, so the default policy (six fragments on six locations)
/// still holds.
#[test]
fn a_slow_location_holds_up_nothing_and_gets_fewer_fragments() {
    let dir = TempDir::new("wan-slow");
    let (_locations, links, mut config) = linked_locations(&dir, 7);
    config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\n");
    let fast = Conditions {
        latency: Duration::from_millis(10),
        up_rate: Some(5_000_000),
        down_rate: Some(5_000_000),
        ..Conditions::default()
    };
    for l in &links {
        l.set(fast.clone());
    }
    let gw = Gateway::start(&dir.join("gw"), Some(&config), Db::Sqlite);
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://wan"]).ok();
    let put = |name: &str, seed: u64| {
        let f = data_file(&dir.join(name), 8 << 20, seed);
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://wan/{name}")]).ok();
        f
    };
    put("first", 1);
    let slow = location_of(&gw, "wan", "first", 0);
    links[slow].set(Conditions { up_rate: Some(250_000), down_rate: Some(250_000), ..fast.clone() });

    // Objects until one has a fragment on the slow location (six in seven do). Its
    // 2 MiB fragment takes 8 s there; the write returns without it.
    let mut late = None;
    for seed in 2..12 {
        let name = format!("obj{seed}");
        let before = links[slow].moved().up;
        let f = put(&name, seed);
        let sent = links[slow].moved().up - before;
        let frags = fragments(&gw, "wan", &name);
        if let Some(mine) = frags.iter().find(|fr| fr.1 == slow) {
            assert!(sent < 2 << 20, "the write waited for the slow location ({sent} bytes sent)");
            assert_eq!(mine.2, "missing", "its fragment is not stored yet: {frags:?}");
            late = Some((name, f));
            break;
        }
    }
    let (name, f) = late.expect("no object placed a fragment on the slow location");
    assert!(
        eventually(Duration::from_secs(90), || fragments(&gw, "wan", &name).iter().all(|fr| fr.2 == "stored")),
        "the late fragment never landed: {:?}",
        fragments(&gw, "wan", &name)
    );

    // A read leaves the slow location out (measured slow by that upload).
    let before = links[slow].moved().down;
    let back = dir.join("back");
    cl.aws(&["s3", "cp", "--no-progress", &format!("s3://wan/{name}"), &back.display().to_string()]).ok();
    assert!(same_file(&f, &back), "the object came back different");
    let read = links[slow].moved().down - before;
    assert!(read < 256 << 10, "the read took {read} bytes from the slow location");

    // New objects go to the six others, one fragment each.
    for seed in 20..25 {
        let name = format!("new{seed}");
        put(&name, seed);
        let frags = fragments(&gw, "wan", &name);
        let mut at: Vec<usize> = frags.iter().map(|fr| fr.1).collect();
        at.sort_unstable();
        at.dedup();
        assert_eq!(at.len(), 6, "six fragments on six locations: {frags:?}");
        assert!(!at.contains(&slow), "a new object placed a fragment on the slow location: {frags:?}");
        assert!(frags.iter().all(|fr| fr.2 == "stored"), "{frags:?}");
    }
}

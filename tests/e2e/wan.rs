//! Locations behind the WAN emulator (`e2e::wan`): faults in the middle of a
//! transfer, where real links have them.

use e2e::wan::{Conditions, Link};
use e2e::{Client, Db, Gateway, Rclone, TempDir, data_file, rclone_location_at, same_file};

/// The location holding fragment `index` of the object's first part.
fn location_of(gw: &Gateway, bucket: &str, key: &str, index: i64) -> usize {
    let o = gw.admin_json(&["object", bucket, key]);
    let name = o["parts"][0]["fragments"]
        .as_array()
        .expect("fragments")
        .iter()
        .find(|f| f["index"] == index)
        .and_then(|f| f["location"].as_str())
        .unwrap_or_else(|| panic!("fragment {index}: {o}"))
        .to_string();
    name.trim_start_matches("rc").parse().expect("an rcN location")
}

/// A GET whose first fragments' locations fail mid-body — one stops sending
/// (a stall: the gateway gives up after `stall_timeout`), one cuts the connection
/// (a reset) — still returns the object, from the other locations, with no error
/// the client sees; and the faults were really met (bytes came from both first).
#[test]
fn faults_mid_get_are_read_around() {
    let dir = TempDir::new("wan-faults");
    let locations: Vec<Rclone> =
        (0..6).map(|i| Rclone::start(dir.join(&format!("loc{i}")), &format!("frags-{i}"), i)).collect();
    let links: Vec<Link> = locations.iter().map(|r| Link::start(r.port)).collect();
    let mut config = String::new();
    for (i, (r, l)) in locations.iter().zip(&links).enumerate() {
        config.push_str(&rclone_location_at(&format!("rc{i}"), r, l.port));
    }
    config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\n");
    config.push_str("[pipeline]\nstall_timeout = \"2s\"\n");
    let gw = Gateway::start(&dir.join("gw"), Some(&config), Db::Sqlite);
    let cl = Client::from(&gw);
    let f = data_file(&dir.join("f"), 6 << 20, 41);
    cl.aws(&["s3", "mb", "s3://wan"]).ok();
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://wan/big"]).ok();

    // A read takes fragments 0..3 first (healthy locations, then by index): fault
    // the locations of 0 and 1, each after 200 KB of a connection's answer.
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

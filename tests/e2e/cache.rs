//! The fragment cache: reads served on premises with every location gone, warm
//! after a restart, corruption turned into counted misses, size kept.

use std::time::Duration;

use serde_json::json;

use e2e::{Client, Cluster, Db, TempDir, data_file, eventually, metrics, same_file};

fn cluster(name: &str, cache_dir: &TempDir, write_through: bool) -> Cluster {
    let extra = format!(
        "[cache]\npath = \"{}\"\nsize = \"16M\"\nwrite_through = {write_through}\n",
        cache_dir.join("cache.img").display()
    );
    Cluster::start(name, Db::Sqlite, "k = 4\nn = 6\nsegment_size = \"1M\"", &extra)
}

fn metric(c: &Cluster, name: &str) -> f64 {
    metrics(&c.gw).get(name).copied().unwrap_or(0.0)
}

fn get_status(cl: &Client, key: &str, to: &std::path::Path) -> serde_json::Value {
    cl.boto("GetObject", json!({"Bucket": "cached", "Key": key}), Some(to))
}

#[test]
fn filled_on_read_then_served_with_every_location_stopped_warm_after_restart_and_corruption_is_a_counted_miss() {
    let cache_dir = TempDir::new("cache-img");
    let mut c = cluster("cache-read", &cache_dir, false);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://cached"]).ok();
    let hot = data_file(&c.dir.join("hot"), 3_000_000, 31);
    let cold = data_file(&c.dir.join("cold"), 3_000_000, 32);
    for (key, f) in [("hot", &hot), ("cold", &cold)] {
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://cached/{key}")]).ok();
    }
    assert_eq!(metric(&c, "skyshard_cache_entries"), 0.0, "write-through is off");

    // A GET of the whole object reads k fragments whole: they are cached.
    let back = c.dir.join("back");
    assert!(get_status(&cl, "hot", &back).get("ok").is_some());
    assert!(same_file(&hot, &back));
    assert!(
        eventually(Duration::from_secs(10), || metric(&c, "skyshard_cache_entries") >= 4.0),
        "the fragments read were not cached:\n{}",
        c.gw.log_text()
    );

    // Every location gone: the cached object still reads back, the other fails cleanly.
    for l in &mut c.locations {
        l.stop();
    }
    let hits_before = metric(&c, "skyshard_cache_hits_total");
    std::fs::remove_file(&back).ok();
    let r = get_status(&cl, "hot", &back);
    assert!(r.get("ok").is_some(), "{r}\n{}", c.gw.log_text());
    assert!(same_file(&hot, &back));
    assert!(metric(&c, "skyshard_cache_hits_total") >= hits_before + 4.0);
    assert!(metric(&c, "skyshard_cache_read_bytes_total") >= 3_000_000.0);
    let r = get_status(&cl, "cold", &c.dir.join("cold.back"));
    assert_eq!(r["error"]["status"], 503, "{r}");

    // Warm after a restart.
    c.gw.restart();
    std::fs::remove_file(&back).ok();
    let r = get_status(&cl, "hot", &back);
    assert!(r.get("ok").is_some(), "{r}\n{}", c.gw.log_text());
    assert!(same_file(&hot, &back));

    // Corrupt every block of the cache file: the locations serve instead, and each
    // bad block is a counted miss, never data.
    let img = cache_dir.join("cache.img");
    assert_eq!(std::fs::metadata(&img).expect("cache file").len(), 16 << 20, "the cache keeps its size");
    let mut bytes = std::fs::read(&img).expect("cache image");
    for block in bytes.chunks_mut(4096) {
        block[1000] ^= 0x40;
    }
    std::fs::write(&img, &bytes).expect("corrupt the cache");
    for l in &mut c.locations {
        l.restart();
    }
    c.gw.restart();
    std::fs::remove_file(&back).ok();
    let r = get_status(&cl, "hot", &back);
    assert!(r.get("ok").is_some(), "{r}\n{}", c.gw.log_text());
    assert!(same_file(&hot, &back), "corrupt cache blocks must never reach the client");
    assert!(metric(&c, "skyshard_cache_integrity_errors_total") >= 1.0, "{:?}", metrics(&c.gw));
    assert!(metric(&c, "skyshard_cache_location_read_bytes_total") > 0.0);
    assert!(metric(&c, "skyshard_cache_used_bytes") <= metric(&c, "skyshard_cache_capacity_bytes"));
}

#[test]
fn write_through_caches_every_fragment_a_put_stores() {
    let cache_dir = TempDir::new("cache-wt");
    let mut c = cluster("cache-wt", &cache_dir, true);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://cached"]).ok();
    let f = data_file(&c.dir.join("f"), 2_500_000, 33);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://cached/f"]).ok();
    assert!(
        eventually(Duration::from_secs(10), || metric(&c, "skyshard_cache_entries") == 6.0),
        "all six fragments should be cached:\n{:?}",
        metrics(&c.gw)
    );
    for l in &mut c.locations {
        l.stop();
    }
    let back = c.dir.join("f.back");
    let r = get_status(&cl, "f", &back);
    assert!(r.get("ok").is_some(), "{r}\n{}", c.gw.log_text());
    assert!(same_file(&f, &back));
    // Many more objects than fit: the cache evicts and never grows past its size.
    for l in &mut c.locations {
        l.restart();
    }
    let big = data_file(&c.dir.join("big"), 6_000_000, 34);
    for i in 0..6 {
        cl.aws(&["s3", "cp", "--no-progress", &big.display().to_string(), &format!("s3://cached/big{i}")]).ok();
    }
    assert!(eventually(Duration::from_secs(10), || metric(&c, "skyshard_cache_evictions_total") > 0.0));
    assert!(metric(&c, "skyshard_cache_used_bytes") <= (16 << 20) as f64);
}

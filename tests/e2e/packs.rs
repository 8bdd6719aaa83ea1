//! Packs through the real gateway: many small objects from sixteen boto3 clients at
//! once share fragment sets (fewer location requests per object), each reads back
//! whole, and a gateway killed while packs are in flight loses no acknowledged
//! object and shows none half-written.

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{Client, Cluster, Db, env, eventually, metrics};

use crate::on_both_databases;

/// Location PUT requests so far, all locations.
fn location_puts(c: &Cluster) -> f64 {
    metrics(&c.gw)
        .iter()
        .filter(|(k, _)| k.starts_with("skyshard_location_requests_total{") && k.contains(r#"operation="put""#))
        .map(|(_, v)| v)
        .sum()
}

fn small_objects(cl: &Client, mode: &str, bucket: &str, count: usize) -> serde_json::Value {
    cl.script("small_objects.py", &[mode, bucket, "o", &count.to_string(), "16"])
}

/// Objects `first`, `first + 4`, … below `end`.
fn every_fourth(cl: &Client, mode: &str, bucket: &str, first: usize, end: usize) -> serde_json::Value {
    cl.script("small_objects.py", &[mode, bucket, "o", &end.to_string(), "16", &first.to_string(), "4"])
}

fn packs_under_load_and_a_kill(db: Db) {
    // Compaction looks every second (and leaves a pack one second to commit).
    let extra = "[durability]\ncompact_interval = \"1s\"\n";
    let mut c = Cluster::start("packs", db, "k = 4\nn = 6\nsegment_size = \"1M\"", extra);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://tiny"]).ok();

    // 400 objects of 1 byte to 9 KB from sixteen clients at once.
    let before = location_puts(&c);
    let put = small_objects(&cl, "put", "tiny", 400);
    assert_eq!(put["acked"], 400, "{put}");
    let per_object = (location_puts(&c) - before) / 400.0;
    eprintln!("packs: {per_object:.2} location PUTs per object");
    // Alone, each object costs six fragment uploads and three manifest copies
    // (n - k + 1); packed, the nine are shared by a pack's members (two or more
    // on average, with sixteen writers at once).
    assert!(per_object < 4.5, "{per_object} location PUTs per object: the manifests were not shared");
    let check = small_objects(&cl, "check", "tiny", 400);
    assert_eq!(check["ok"], 400, "{check}");
    // Overwrites and deletes of packed objects, with their neighbours untouched.
    let overwrite = cl.boto("PutObject", serde_json::json!({"Bucket": "tiny", "Key": "o7", "Body": "new"}), None);
    assert!(overwrite.get("ok").is_some(), "{overwrite}");
    cl.aws(&["s3", "rm", "s3://tiny/o8"]).ok();
    let got = cl.boto("GetObject", serde_json::json!({"Bucket": "tiny", "Key": "o7"}), None);
    assert_eq!(got["ok"]["BodyLength"], 3, "{got}");
    let check = small_objects(&cl, "check", "tiny", 400);
    assert_eq!(check["ok"], 398, "{check}");
    assert_eq!(check["missing"].as_array().map(Vec::len), Some(1), "{check}");
    assert_eq!(check["wrong"].as_array().map(Vec::len), Some(1), "o7 holds its new body: {check}");

    // Three objects in four deleted, spread over every pack: compaction rewrites
    // the packs with their live members (no key, nothing decrypted), the collector
    // removes the old ones.
    let bytes_before = c.fragment_bytes();
    for first in 1..4 {
        let deleted = every_fourth(&cl, "delete", "tiny", first, 400);
        assert!(deleted["errors"].as_array().is_some_and(Vec::is_empty), "{deleted}");
    }
    let compacted = || metrics(&c.gw).get("skyshard_packs_compacted_total").copied().unwrap_or(0.0);
    assert!(
        eventually(Duration::from_secs(90), || compacted() > 0.0 && c.fragment_bytes() < bytes_before / 2),
        "{} fragment bytes left of {bytes_before}, {} packs compacted",
        c.fragment_bytes(),
        compacted()
    );
    let check = every_fourth(&cl, "check", "tiny", 0, 400);
    assert_eq!(check["ok"], 99, "the live members, whole after compaction: {check}");
    assert_eq!(check["missing"], serde_json::json!(["o8"]), "{check}");

    // Killed mid-pack: sixteen clients writing when the gateway dies.
    cl.aws(&["s3", "mb", "s3://crash"]).ok();
    let child = Command::new(&env().python)
        .env("AWS_CA_BUNDLE", c.gw.ca.as_ref().expect("the gateway's CA"))
        .arg(env().root.join("tests/py/small_objects.py"))
        .args([&c.gw.endpoint, &c.gw.access_key, &c.gw.secret_key, "put", "crash", "o", "3000", "16"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn small_objects.py");
    // Killed once some of this run's writes were acknowledged (a fixed delay is
    // too short on a loaded machine).
    let puts = || {
        metrics(&c.gw).get(r#"skyshard_s3_requests_total{operation="PutObject",status="200"}"#).copied().unwrap_or(0.0)
    };
    let before = puts();
    assert!(eventually(Duration::from_secs(60), || puts() >= before + 100.0), "no writes acknowledged in 60 s");
    c.gw.kill9();
    let out = child.wait_with_output().expect("the writer ends");
    let put: serde_json::Value = serde_json::from_slice(&out.stdout).expect("its report");
    let acked: Vec<String> =
        put["acked_keys"].as_array().expect("keys").iter().filter_map(|k| k.as_str()).map(String::from).collect();
    assert!(!acked.is_empty() && acked.len() < 3000, "the kill came mid-run: {} acknowledged", acked.len());
    c.gw.restart();
    let cl = Client::from(&c.gw);
    let check = small_objects(&cl, "check", "crash", 3000);
    assert_eq!(check["wrong"].as_array().map(Vec::len), Some(0), "none half-written: {check}");
    let missing: Vec<&str> = check["missing"].as_array().expect("missing").iter().filter_map(|k| k.as_str()).collect();
    for key in &acked {
        assert!(!missing.contains(&key.as_str()), "acknowledged {key} was lost");
    }
}

on_both_databases!(packs_under_load_and_a_kill);

//! Locations lost, writes below quorum, the gateway killed mid-upload, memory.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use e2e::{Client, Cluster, Db, data_file, env, eventually, same_file};

use crate::on_both_databases;

fn locations_lost(db: Db) {
    let mut c = Cluster::standard("lost", db);
    let cl = Client::from(&c.gw);
    let d = c.dir.join("files");
    cl.aws(&["s3", "mb", "s3://keep"]).ok();
    let files: Vec<_> = [(10_000usize, 1u64), (3_500_000, 2), (1, 3), (0, 4)]
        .iter()
        .map(|&(len, seed)| data_file(&d.join(format!("f{seed}")), len, seed))
        .collect();
    for f in &files {
        let key = f.file_name().and_then(|n| n.to_str()).expect("name");
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://keep/{key}")]).ok();
    }
    let read_all = |cl: &Client| {
        for f in &files {
            let key = f.file_name().and_then(|n| n.to_str()).expect("name");
            let back = d.join(format!("{key}.back"));
            let _ = std::fs::remove_file(&back);
            cl.aws(&["s3", "cp", "--no-progress", &format!("s3://keep/{key}"), &back.display().to_string()]).ok();
            assert!(same_file(f, &back), "{key} differs");
        }
    };

    // n - k = 2 locations down: everything still reads back intact.
    c.locations[1].stop();
    c.locations[4].stop();
    read_all(&cl);

    // A write now lands on 4 locations, below the write quorum of 5: refused, and
    // nothing becomes visible.
    let refused = data_file(&d.join("refused"), 200_000, 9);
    cl.aws(&["s3", "cp", "--no-progress", &refused.display().to_string(), "s3://keep/refused"])
        .fails_with("ServiceUnavailable");
    cl.aws(&["s3api", "head-object", "--bucket", "keep", "--key", "refused"]).fails_with("404");
    assert!(!cl.aws(&["s3", "ls", "s3://keep"]).ok().stdout.contains("refused"));

    // A third location down: reads fail cleanly with 503, never with wrong bytes.
    c.locations[2].stop();
    let sink = d.join("sink").display().to_string();
    let out = cl.aws(&["s3api", "get-object", "--bucket", "keep", "--key", "f2", &sink]);
    let out = out.fails_with("ServiceUnavailable");
    assert!(out.stderr.contains("503") || out.stderr.contains("ServiceUnavailable"));
    let (code, status) = cl.boto_error("GetObject", json!({"Bucket": "keep", "Key": "f1"}));
    assert_eq!((code.as_str(), status), ("ServiceUnavailable", 503));
    // Both kinds of quorum failure are counted, and the lost locations' errors show.
    let m = e2e::metrics(&c.gw);
    assert!(m.get(r#"skyshard_quorum_failures_total{operation="write"}"#).copied().unwrap_or(0.0) >= 1.0, "{m:?}");
    assert!(m.get(r#"skyshard_quorum_failures_total{operation="read"}"#).copied().unwrap_or(0.0) >= 2.0, "{m:?}");
    assert!(
        m.iter().any(|(k, v)| k.starts_with("skyshard_location_requests_total{location=\"rc2\"")
            && !k.contains("outcome=\"ok\"")
            && *v > 0.0),
        "errors of the lost location rc2 are counted: {m:?}"
    );

    // Back up: reads and writes work, and the refused write's fragments are collected.
    for i in [1, 2, 4] {
        c.locations[i].restart();
    }
    read_all(&cl);
    cl.aws(&["s3", "cp", "--no-progress", &refused.display().to_string(), "s3://keep/refused"]).ok();
    // Five objects, six fragments each, nothing else once garbage is collected.
    assert!(
        eventually(Duration::from_secs(30), || c.fragment_files() == 5 * 6),
        "{} fragment files at the locations, expected 30",
        c.fragment_files()
    );
    // Deleting removes the fragments too.
    cl.aws(&["s3", "rm", "--recursive", "s3://keep"]).ok();
    assert!(eventually(Duration::from_secs(30), || c.fragment_files() == 0), "{} fragments left", c.fragment_files());
    // In bulk (S3 DeleteObjects through a presigned POST), not one request each.
    let m = e2e::metrics(&c.gw);
    for i in 0..6 {
        let batches = m.get(&format!(
            r#"skyshard_location_requests_total{{location="rc{i}",operation="delete_batch",outcome="ok"}}"#
        ));
        assert!(batches.copied().unwrap_or(0.0) >= 1.0, "rc{i} deleted in bulk: {m:?}");
        let singles =
            m.get(&format!(r#"skyshard_location_requests_total{{location="rc{i}",operation="delete",outcome="ok"}}"#));
        assert_eq!(singles.copied().unwrap_or(0.0), 0.0, "rc{i}: no single deletes");
    }
}

fn killed_mid_upload(db: Db) {
    let mut c = Cluster::standard("sigkill", db);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://crash"]).ok();
    let d = c.dir.join("files");
    let files: Vec<_> =
        (0..40).map(|i| data_file(&d.join(format!("obj{i:02}")), 2_500_000 + i * 1000, i as u64)).collect();
    let mut child = Command::new(&env().python)
        .env("AWS_CA_BUNDLE", c.gw.ca.as_ref().expect("the gateway's CA"))
        .arg(env().root.join("tests/py/put_many.py"))
        .args([&c.gw.endpoint, &c.gw.access_key, &c.gw.secret_key, "crash"])
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn put_many.py");
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while acked.len() < 4 {
        match lines.next() {
            Some(Ok(l)) => acked.push(l.trim_start_matches("ACK ").to_string()),
            _ => panic!("the uploader stopped early"),
        }
    }
    // Mid-upload: the next object is on its way.
    std::thread::sleep(Duration::from_millis(150));
    c.gw.kill9();
    for l in lines.map_while(Result::ok) {
        acked.push(l.trim_start_matches("ACK ").to_string());
    }
    let _ = child.wait();
    assert!(acked.len() < files.len(), "the kill came too late to interrupt anything");
    c.gw.restart();

    // Every acknowledged object is intact; whatever is listed is whole.
    let listed: Vec<String> = cl
        .aws(&["s3", "ls", "s3://crash/"])
        .ok()
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(String::from))
        .collect();
    for key in &acked {
        assert!(listed.contains(key), "acknowledged {key} is not listed");
    }
    assert!(listed.len() <= acked.len() + 1, "listed {listed:?}, acknowledged {acked:?}");
    for key in &listed {
        let back = d.join(format!("{key}.back"));
        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://crash/{key}"), &back.display().to_string()]).ok();
        assert!(same_file(&d.join(key), &back), "{key} is not intact after the crash");
    }
    // The interrupted write's fragments are garbage and get collected.
    let expected = listed.len() * 6;
    assert!(
        eventually(Duration::from_secs(30), || c.fragment_files() == expected),
        "{} fragment files, expected {expected}",
        c.fragment_files()
    );
}

on_both_databases!(locations_lost, killed_mid_upload);

/// The file of fragment `idx` (files are named by their index), with one object
/// stored.
fn fragment_file(c: &Cluster, idx: usize) -> std::path::PathBuf {
    let files: Vec<_> = c
        .locations
        .iter()
        .flat_map(|l| l.files())
        .filter(|f| f.file_name().and_then(|n| n.to_str()) == Some(&idx.to_string()))
        .collect();
    assert_eq!(files.len(), 1, "fragment {idx}: {files:?}");
    files.into_iter().next().expect("one")
}

/// Locations that return wrong bytes: a flipped bit, another fragment of the same
/// object in place of their own, a truncated fragment. Reads return the object
/// intact while `k` fragments are sound and fail with 503 once they are not; wrong
/// bytes are never returned.
#[test]
fn locations_tampered() {
    // No repair: what is checked here is how reads treat bad fragments (the
    // durability tests show them rebuilt).
    let c =
        Cluster::start("tampered", Db::Sqlite, "k = 4\nn = 6\nsegment_size = \"1M\"", "[durability]\nrepair = false\n");
    let cl = Client::from(&c.gw);
    let d = c.dir.join("files");
    cl.aws(&["s3", "mb", "s3://tamper"]).ok();
    let f = data_file(&d.join("obj"), 3_500_000, 11);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://tamper/obj"]).ok();
    let read_back = |name: &str| {
        let back = d.join(name);
        let _ = std::fs::remove_file(&back);
        let out = cl.aws(&["s3", "cp", "--no-progress", "s3://tamper/obj", &back.display().to_string()]);
        (out, back)
    };

    // Fragments 0 and 1 are the first a read asks for. A flipped bit in fragment
    // 0's first record (past the 64-byte header and the record's prefix, inside
    // its coded symbol).
    let frag0 = fragment_file(&c, 0);
    let mut bytes = std::fs::read(&frag0).expect("read fragment");
    bytes[64 + 1000] ^= 0x10;
    std::fs::write(&frag0, &bytes).expect("write fragment");
    // Fragment 1's location holds fragment 2 instead (sound, but the wrong index).
    std::fs::copy(fragment_file(&c, 2), fragment_file(&c, 1)).expect("copy fragment");
    for round in 0..3 {
        let (out, back) = read_back(&format!("back{round}"));
        out.ok();
        assert!(same_file(&f, &back), "round {round}: the object came back different");
    }
    let log = c.gw.log_text();
    assert!(log.contains("fragment header names another object"), "misplaced fragment unnoticed:\n{log}");
    assert!(log.contains("record checksum mismatch"), "flipped bit unnoticed:\n{log}");

    // Fragment 3 truncated inside its first record: three sound fragments are not
    // enough, and the read fails before any byte is sent.
    let frag3 = fragment_file(&c, 3);
    let file = std::fs::OpenOptions::new().write(true).open(&frag3).expect("open fragment");
    file.set_len(100).expect("truncate");
    drop(file);
    let (code, status) = cl.boto_error("GetObject", json!({"Bucket": "tamper", "Key": "obj"}));
    assert_eq!((code.as_str(), status), ("ServiceUnavailable", 503));
}

/// A 256 MiB single PUT: memory stays bounded by the pipeline, not the object.
#[test]
fn put_of_256_mib_stays_under_300_mib_rss() {
    let c = Cluster::start("rss", Db::Sqlite, "k = 4\nn = 6", "");
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://big"]).ok();
    let f = data_file(&c.dir.join("big.bin"), 256 << 20, 5);
    let r = cl.boto("upload_file", json!({"Bucket": "big", "Key": "big.bin", "Threshold": 1u64 << 30}), Some(&f));
    assert!(r.get("ok").is_some(), "{r}");
    let head = cl.boto("HeadObject", json!({"Bucket": "big", "Key": "big.bin"}), None);
    assert_eq!(head["ok"]["ContentLength"], 256 << 20);
    assert!(!head["ok"]["ETag"].as_str().unwrap_or("-").contains('-'), "a single PUT, not multipart");
    let peak = c.gw.peak_rss();
    assert!(peak > 0 && peak < 300 << 20, "peak RSS {} MiB", peak >> 20);
    let back = c.dir.join("big.back");
    assert!(cl.boto("download_file", json!({"Bucket": "big", "Key": "big.bin"}), Some(&back)).get("ok").is_some());
    assert!(same_file(&f, &back));
}

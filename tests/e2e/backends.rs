//! Kinds of location: the embedded default's own edge stores, standalone
//! `skyshard edge` processes, OpenStack Swift (TempURL) and rclone's S3, mixed.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::json;

use e2e::{
    Client, Db, Edge, Gateway, MARKER, Rclone, TempDir, assert_no_leak, data_file, edge_location, rclone_location,
    same_file,
};

use crate::on_both_databases;

#[test]
fn embedded_default_runs_everything_and_restarts_on_the_same_directory() {
    let dir = TempDir::new("embedded");
    let data = dir.join("data");
    let mut gw = Gateway::start(&data, None, Db::Sqlite);
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://laptop"]).ok();
    let f = data_file(&dir.join("f.bin"), 9 << 20, 1);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://laptop/notes/f.bin"]).ok();

    for secret_file in ["master.key", "skyshard.toml"] {
        let mode = std::fs::metadata(data.join(secret_file)).expect(secret_file).permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{secret_file} must be private");
    }
    assert!(data.join("meta.db").exists(), "SQLite metadata");
    let edges: Vec<_> = (1..=6).map(|i| data.join(format!("edges/edge-{i}"))).collect();
    for e in &edges {
        assert!(!e2e::walk(&e.join("objects")).is_empty(), "every edge store holds a fragment: {}", e.display());
    }
    let refs: Vec<&std::path::Path> = edges.iter().map(|p| p.as_path()).collect();
    assert_no_leak(&refs, &[MARKER, "laptop", "notes", "f.bin"]);

    // A second start reuses the key, the database, the credentials and the stores.
    let config_before = std::fs::read_to_string(data.join("skyshard.toml")).expect("config");
    gw.restart();
    assert_eq!(std::fs::read_to_string(data.join("skyshard.toml")).expect("config"), config_before);
    let back = dir.join("back.bin");
    cl.aws(&["s3", "cp", "--no-progress", "s3://laptop/notes/f.bin", &back.display().to_string()]).ok();
    assert!(same_file(&f, &back));

    // The directory belongs to the running gateway: a second one is refused
    // (it would share its node identity and collect its writes in flight).
    let second = Command::new(&e2e::env().skyshard)
        .args([
            "serve",
            "--data",
            &data.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run a second gateway");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second gateway on the same directory started");
    assert!(stderr.contains("in use by another skyshard process"), "unclear refusal: {stderr}");
}

#[test]
fn edge_store_accepts_only_urls_signed_for_it() {
    let dir = TempDir::new("edge");
    let edge = Edge::start(dir.join("edge"), 1);
    let base = format!("https://127.0.0.1:{}", edge.port);
    let status = |args: &[&str]| -> String {
        let out = Command::new("curl")
            .arg("--cacert")
            .arg(&e2e::locations_pki().ca)
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status(&[&format!("{base}/health")]), "200");
    assert_eq!(status(&["-X", "PUT", "--data-binary", "x", &format!("{base}/f/skyshard/aa/0")]), "403", "unsigned");
    let forged = format!("{base}/f/skyshard/aa/0?X-Sky-Expires=9999999999&X-Sky-Signature={}", "0".repeat(64));
    assert_eq!(status(&["-X", "PUT", "--data-binary", "x", &forged]), "403", "forged");
    assert_eq!(status(&[&forged]), "403", "forged GET");
    // It speaks only TLS.
    assert_eq!(status(&[&base.replace("https:", "http:")]), "000", "plain HTTP to the TLS port");
}

fn mixed_locations(db: Db) {
    let swift = std::env::var("SKYSHARD_TEST_SWIFT").expect(
        "SKYSHARD_TEST_SWIFT is not set: ./test starts a Swift node and sets it to ACCOUNT_URL|TEMPURL_KEY|TOKEN",
    );
    let mut parts = swift.split('|');
    let (account, tempurl_key, token) = (
        parts.next().expect("account url").to_string(),
        parts.next().expect("temp url key").to_string(),
        parts.next().expect("token").to_string(),
    );
    let dir = TempDir::new("mixed");
    let rclones: Vec<Rclone> =
        (0..2).map(|i| Rclone::start(dir.join(&format!("rc{i}")), &format!("frags-{i}"), i)).collect();
    let mut edges: Vec<Edge> = (0..2).map(|i| Edge::start(dir.join(&format!("edge{i}")), i)).collect();
    let containers: Vec<String> =
        (0..2).map(|i| format!("skyshard-{}-{db:?}-{i}", std::process::id()).to_lowercase()).collect();
    for c in &containers {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", &format!("X-Auth-Token: {token}")])
            .arg(format!("{account}/{c}"))
            .output()
            .expect("curl");
        let code = String::from_utf8_lossy(&out.stdout);
        assert!(code == "201" || code == "202", "creating Swift container {c}: HTTP {code}");
    }
    let mut config = String::new();
    for (i, r) in rclones.iter().enumerate() {
        config.push_str(&rclone_location(&format!("s3-{i}"), r));
    }
    for (i, e) in edges.iter().enumerate() {
        config.push_str(&edge_location(&format!("edge-{i}"), e));
    }
    for (i, c) in containers.iter().enumerate() {
        config.push_str(&format!(
            "[[locations]]\nname = \"swift-{i}\"\nkind = \"swift\"\nendpoint = \"{account}\"\ncontainer = \"{c}\"\ntemp_url_key = \"{tempurl_key}\"\n"
        ));
    }
    config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\nmin_cloud = 4\nmin_edge = 2\n");
    let gw = Gateway::start(&dir.join("gw"), Some(&config), db);
    let cl = Client::from(&gw);
    assert!(cl.boto("CreateBucket", json!({"Bucket": "mixed"}), None).get("ok").is_some());
    let f = data_file(&dir.join("f.bin"), 2_600_000, 3);
    assert!(cl.boto("PutObject", json!({"Bucket": "mixed", "Key": "secret/f.bin"}), Some(&f)).get("ok").is_some());

    // Swift holds two fragments, under random names, as ciphertext.
    for c in &containers {
        let out = Command::new("curl")
            .args(["-s", "-H", &format!("X-Auth-Token: {token}")])
            .arg(format!("{account}/{c}"))
            .output()
            .expect("curl");
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!listing.contains("secret") && !listing.contains("mixed"), "{listing}");
        // Besides the gateway's sealed records (manifests, the catalog: `m/`, `c/`).
        let record = |n: &str| n.contains("/m/") || n.contains("/c/") || n.starts_with("m/") || n.starts_with("c/");
        let fragments: Vec<&str> = listing.lines().filter(|n| !record(n)).collect();
        assert_eq!(fragments.len(), 1, "one fragment in {c}: {listing}");
        let name = fragments[0].trim();
        let out = Command::new("curl")
            .args(["-s", "-H", &format!("X-Auth-Token: {token}")])
            .arg(format!("{account}/{c}/{name}"))
            .output()
            .expect("curl");
        assert!(out.stdout.len() > 600_000, "a fragment of 1/4 of the object");
        assert!(!out.stdout.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
    }
    let local: Vec<&std::path::Path> =
        rclones.iter().map(|r| r.dir.as_path()).chain(edges.iter().map(|e| e.dir.as_path())).collect();
    assert_no_leak(&local, &[MARKER, "mixed", "secret"]);

    // Both edge stores down (n - k = 2): read back from S3 and Swift alone.
    for e in &mut edges {
        e.stop();
    }
    let back = dir.join("back.bin");
    assert!(cl.boto("GetObject", json!({"Bucket": "mixed", "Key": "secret/f.bin"}), Some(&back)).get("ok").is_some());
    assert!(same_file(&f, &back));
}

on_both_databases!(mixed_locations);

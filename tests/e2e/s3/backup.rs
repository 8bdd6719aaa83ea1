//! restic, a backup tool, against a versioned bucket with object lock: backups,
//! a check and a restore; then what ransomware holding the same credentials would
//! do — delete every version (refused: locked) and every key (delete markers) —
//! and the recovery: the markers removed, the first snapshot restored whole.

use serde_json::{Value, json};

use e2e::{Client, Cluster, Db, data_file, ok, same_file};

const REPO: &str = "backups/restic";
const PASSWORD: &str = "correct horse battery staple";

/// Every version and every delete marker in `bucket`: (key, version id, is a marker).
fn versions(cl: &Client, bucket: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let mut params = json!({"Bucket": bucket});
    loop {
        let page = ok(cl.boto("ListObjectVersions", params.clone(), None));
        for (list, marker) in [("Versions", false), ("DeleteMarkers", true)] {
            for v in page[list].as_array().cloned().unwrap_or_default() {
                out.push((text(&v, "Key"), text(&v, "VersionId"), marker));
            }
        }
        if page["IsTruncated"] != true {
            return out;
        }
        params["KeyMarker"] = page["NextKeyMarker"].clone();
        params["VersionIdMarker"] = page["NextVersionIdMarker"].clone();
    }
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Deletes `which` by version id in batches; the errors' codes.
fn delete_versions(cl: &Client, bucket: &str, which: &[(String, String, bool)]) -> Vec<String> {
    let mut codes = Vec::new();
    for chunk in which.chunks(500) {
        let objects: Vec<Value> = chunk.iter().map(|(k, v, _)| json!({"Key": k, "VersionId": v})).collect();
        let r = ok(cl.boto("DeleteObjects", json!({"Bucket": bucket, "Delete": {"Objects": objects}}), None));
        codes.extend(r["Errors"].as_array().cloned().unwrap_or_default().iter().map(|e| text(e, "Code")));
    }
    codes
}

#[test]
fn restic_backups_to_a_locked_bucket_survive_a_ransomware_delete() {
    let c = Cluster::standard("restic", Db::Sqlite);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    ok(cl.boto("CreateBucket", json!({"Bucket": "backups", "ObjectLockEnabledForBucket": true}), None));
    let rule = json!({"Bucket": "backups", "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}}});
    ok(cl.boto("PutObjectLockConfiguration", rule, None));

    let src = d.join("src");
    std::fs::create_dir_all(&src).expect("src");
    let big = data_file(&src.join("database.dump"), 6_000_000, 11);
    std::fs::write(src.join("notes.txt"), "first\n").expect("write");
    cl.restic(REPO, PASSWORD, &["init"]).ok();
    cl.restic(REPO, PASSWORD, &["backup", "--host", "test", src.to_str().expect("path")]).ok();
    // The second backup sees a changed file; the first keeps the old one.
    std::fs::write(src.join("notes.txt"), "second\n").expect("write");
    cl.restic(REPO, PASSWORD, &["backup", "--host", "test", src.to_str().expect("path")]).ok();
    cl.restic(REPO, PASSWORD, &["check", "--read-data"]).ok();
    let snapshots = cl.restic(REPO, PASSWORD, &["snapshots", "--json"]).ok();
    let snapshots: Vec<Value> = serde_json::from_str(&snapshots.stdout).expect("snapshots json");
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    let first = text(&snapshots[0], "short_id");
    let out = d.join("restored");
    cl.restic(REPO, PASSWORD, &["restore", "latest", "--target", out.to_str().expect("path")]).ok();
    let restored = out.join(src.strip_prefix("/").expect("absolute"));
    assert!(same_file(&big, &restored.join("database.dump")));
    assert_eq!(std::fs::read_to_string(restored.join("notes.txt")).expect("read"), "second\n");

    // Ransomware with the same credentials: every version deleted by id is refused
    // (locked); every key deleted only hides it behind a marker. (restic deletes
    // its own lock files: those left markers already, and stay as they are.)
    let before = versions(&cl, "backups");
    let live: Vec<(String, String, bool)> = before.iter().filter(|v| !v.2).cloned().collect();
    let codes = delete_versions(&cl, "backups", &live);
    assert_eq!(codes.len(), live.len(), "every version delete refused: {codes:?}");
    assert!(codes.iter().all(|c| c == "AccessDenied"), "{codes:?}");
    let keys: std::collections::BTreeSet<String> = live.iter().map(|(k, _, _)| k.clone()).collect();
    for k in &keys {
        ok(cl.boto("DeleteObject", json!({"Bucket": "backups", "Key": k}), None));
    }
    cl.restic(REPO, PASSWORD, &["snapshots"]).fails_with("Is there a repository at the following location?");

    // The recovery: the markers the attack left removed (a restore to the moment
    // before it), and the repository is whole again.
    let markers: Vec<(String, String, bool)> =
        versions(&cl, "backups").into_iter().filter(|v| v.2 && !before.contains(v)).collect();
    assert_eq!(markers.len(), keys.len());
    assert!(delete_versions(&cl, "backups", &markers).is_empty(), "markers are not locked");
    cl.restic(REPO, PASSWORD, &["check", "--read-data"]).ok();
    let out = d.join("restored-first");
    cl.restic(REPO, PASSWORD, &["restore", &first, "--target", out.to_str().expect("path")]).ok();
    let restored = out.join(src.strip_prefix("/").expect("absolute"));
    assert!(same_file(&big, &restored.join("database.dump")));
    assert_eq!(std::fs::read_to_string(restored.join("notes.txt")).expect("read"), "first\n");
}

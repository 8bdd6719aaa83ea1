//! Custody of the master key: it is split into shares for custodians and rebuilt
//! from any threshold of them; a lost key is not silently replaced by a new one,
//! and a wrong key is refused before anything is written.

use std::process::Command;
use std::time::Duration;

use e2e::{Client, Cluster, Db, Gateway, TempDir, data_file, env, same_file};

fn skyshard(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(&env().skyshard)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("skyshard");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_lost_master_key_comes_back_from_three_of_five_shares_and_is_never_replaced() {
    let dir = TempDir::new("custody");
    let data = dir.join("gw");
    let mut gw = Gateway::start(&data, None, Db::Sqlite);
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://kept"]).ok();
    let f = data_file(&dir.join("f"), 2_000_000, 31);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://kept/f"]).ok();

    let d = data.display().to_string();
    let (ok, shares, err) = skyshard(&["keys", "split", "--shares", "5", "--threshold", "3", "--data", &d], None);
    assert!(ok, "{err}");
    let shares: Vec<&str> = shares.lines().collect();
    assert_eq!(shares.len(), 5);
    let key_file = data.join("master.key");
    let original = std::fs::read_to_string(&key_file).expect("key");
    assert!(shares.iter().all(|s| !s.contains(original.trim())), "a share is not the key");

    // The disk loses the key: the gateway refuses to start and makes no new one.
    gw.kill9();
    std::fs::remove_file(&key_file).expect("lose the key");
    let token = std::fs::read(data.join("admin.token")).expect("token");
    let (status, stderr) = gw.serve_refused(Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "{status:?} {stderr}");
    assert!(stderr.contains("no master key") && stderr.contains("skyshard keys combine"), "{stderr}");
    assert!(!key_file.exists(), "no new key was made");

    // Two shares are not enough; three (any three) rebuild it.
    let two = format!("{}\n{}\n", shares[0], shares[3]);
    let (ok, _, err) = skyshard(&["keys", "combine", "--out", &key_file.display().to_string()], Some(&two));
    assert!(!ok && err.contains("2 shares given, 3 needed"), "{err}");
    let (ok, _, err) =
        skyshard(&["keys", "combine", "--out", &key_file.display().to_string(), shares[1], shares[4], shares[2]], None);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&key_file).expect("key"), original);

    // A wrong key is refused before anything is written.
    let wrong = format!("{}\n", "5a".repeat(32));
    std::fs::write(&key_file, &wrong).expect("wrong key");
    let (status, stderr) = gw.serve_refused(Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "{status:?} {stderr}");
    assert!(stderr.contains("does not open what the metadata store holds"), "{stderr}");
    assert_eq!(std::fs::read(data.join("admin.token")).expect("token"), token, "nothing changed");
    assert_eq!(std::fs::read_to_string(&key_file).expect("key"), wrong, "the key file is left as it was");

    // With the rebuilt key everything is there.
    std::fs::write(&key_file, &original).expect("key back");
    gw.restart();
    let back = dir.join("f.back");
    Client::from(&gw).aws(&["s3", "cp", "--no-progress", "s3://kept/f", &back.display().to_string()]).ok();
    assert!(same_file(&f, &back));
}

#[test]
fn an_empty_store_over_locations_holding_fragments_is_a_lost_database_not_a_new_gateway() {
    let dir = TempDir::new("lost-store");
    let data = dir.join("gw");
    let mut gw = Gateway::start(&data, None, Db::Sqlite);
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://was"]).ok();
    let f = data_file(&dir.join("f"), 500_000, 32);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://was/f"]).ok();

    // The database is lost (the edge stores, in the data directory, are not).
    gw.kill9();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("meta.db{suffix}")));
    }
    let token = std::fs::read(data.join("admin.token")).expect("token");
    let (status, stderr) = gw.serve_refused(Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{status:?} {stderr}");
    assert!(stderr.contains("the metadata store is empty, but location") && stderr.contains("--fresh"), "{stderr}");
    assert_eq!(std::fs::read(data.join("admin.token")).expect("token"), token, "nothing was issued");

    // --fresh: the operator abandons them, knowingly.
    gw.add_arg("--fresh");
    gw.restart();
    let (code, _) = Client::from(&gw).boto_error("HeadBucket", serde_json::json!({"Bucket": "was"}));
    assert_eq!(code, "404", "an empty store");
}

/// Objects of two tenants in several buckets (single PUT with metadata and a
/// checksum, multipart, overwritten, deleted) → the whole data directory lost but
/// the master key → `skyshard recover` with two of six locations down → everything
/// back: bytes, metadata, ETags, listings, tenants and their keys.
fn everything_comes_back_from_the_locations(db: Db) {
    let mut c = Cluster::standard(&format!("recover-{db:?}"), db);
    let dir = c.dir.join("work");
    std::fs::create_dir_all(&dir).expect("dir");
    let cl = Client::from(&c.gw);
    for b in ["photos", "logs"] {
        cl.aws(&["s3", "mb", &format!("s3://{b}")]).ok();
    }
    let acme = c.gw.tenant_client("acme", "ACMEKEY001");
    acme.aws(&["s3", "mb", "s3://acme-data"]).ok();

    let small = data_file(&dir.join("small"), 300_000, 41);
    let put = cl.boto(
        "PutObject",
        serde_json::json!({"Bucket": "photos", "Key": "a/small.jpg", "ContentType": "image/jpeg",
            "Metadata": {"camera": "x100", "owner": "ann"}, "ChecksumAlgorithm": "SHA256"}),
        Some(&small),
    );
    assert!(put.get("ok").is_some(), "{put}");
    let big = data_file(&dir.join("big"), 21_000_000, 42);
    cl.aws(&["s3", "cp", "--no-progress", &big.display().to_string(), "s3://photos/b/big.raw"]).ok();
    let old = data_file(&dir.join("old"), 100_000, 43);
    let new = data_file(&dir.join("new"), 120_000, 44);
    for f in [&old, &new] {
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://logs/current"]).ok();
    }
    cl.aws(&["s3", "cp", "--no-progress", &old.display().to_string(), "s3://logs/gone"]).ok();
    cl.aws(&["s3", "rm", "s3://logs/gone"]).ok();
    let theirs = data_file(&dir.join("theirs"), 2_500_000, 45);
    acme.aws(&["s3", "cp", "--no-progress", &theirs.display().to_string(), "s3://acme-data/t"]).ok();
    // Small objects from sixteen clients at once: packed, each comes back alone.
    cl.aws(&["s3", "mb", "s3://tiny"]).ok();
    let tiny = cl.script("small_objects.py", &["put", "tiny", "t", "120", "16"]);
    assert_eq!(tiny["acked"], 120, "{tiny}");
    // A versioned bucket: versions, one deleted for good, a key under a delete marker.
    cl.aws(&["s3", "mb", "s3://history"]).ok();
    cl.aws(&["s3api", "put-bucket-versioning", "--bucket", "history", "--versioning-configuration", "Status=Enabled"])
        .ok();
    let mut versions = Vec::new();
    for f in [&old, &new, &old] {
        let put = cl.boto("PutObject", serde_json::json!({"Bucket": "history", "Key": "doc"}), Some(f));
        versions.push(put["ok"]["VersionId"].as_str().expect("a version id").to_string());
    }
    cl.aws(&["s3api", "delete-object", "--bucket", "history", "--key", "doc", "--version-id", &versions[1]]).ok();
    cl.aws(&["s3", "cp", "--no-progress", &new.display().to_string(), "s3://history/hidden"]).ok();
    cl.aws(&["s3", "rm", "s3://history/hidden"]).ok();
    // Tags, and a version under compliance retention.
    let tag = serde_json::json!({"Bucket": "photos", "Key": "a/small.jpg",
        "Tagging": {"TagSet": [{"Key": "album", "Value": "summer"}]}});
    assert!(cl.boto("PutObjectTagging", tag, None).get("ok").is_some());
    let vault = serde_json::json!({"Bucket": "vault", "ObjectLockEnabledForBucket": true});
    assert!(cl.boto("CreateBucket", vault, None).get("ok").is_some());
    let locked = cl.boto(
        "PutObject",
        serde_json::json!({"Bucket": "vault", "Key": "kept", "Body": "kept", "ObjectLockMode": "COMPLIANCE",
            "ObjectLockRetainUntilDate": "2099-01-01T00:00:00Z"}),
        None,
    );
    let kept = locked["ok"]["VersionId"].as_str().expect("a version id").to_string();

    let head = |cl: &Client, b: &str, k: &str| {
        let mut h = cl.boto("HeadObject", serde_json::json!({"Bucket": b, "Key": k, "ChecksumMode": "ENABLED"}), None)
            ["ok"]
            .clone();
        if let Some(o) = h.as_object_mut() {
            o.remove("ResponseMetadata");
        }
        h
    };
    let listing = |cl: &Client, b: &str| cl.aws(&["s3api", "list-objects-v2", "--bucket", b]).ok().stdout;
    let versions_of = |cl: &Client, b: &str| cl.aws(&["s3api", "list-object-versions", "--bucket", b]).ok().stdout;
    let kept_of = |cl: &Client| {
        let tags = cl.aws(&["s3api", "get-object-tagging", "--bucket", "photos", "--key", "a/small.jpg"]).ok().stdout;
        let retention = cl.aws(&["s3api", "get-object-retention", "--bucket", "vault", "--key", "kept"]).ok().stdout;
        let lock = cl.aws(&["s3api", "get-object-lock-configuration", "--bucket", "vault"]).ok().stdout;
        (tags, retention, lock)
    };
    let before = (
        head(&cl, "photos", "a/small.jpg"),
        head(&cl, "photos", "b/big.raw"),
        head(&cl, "logs", "current"),
        listing(&cl, "photos"),
        listing(&cl, "logs"),
        listing(&acme, "acme-data"),
        versions_of(&cl, "history"),
        kept_of(&cl),
    );
    assert_eq!(before.0["Metadata"]["camera"], "x100", "{}", before.0);
    assert!(before.7.0.contains("summer") && before.7.1.contains("COMPLIANCE"), "{:?}", before.7);
    assert!(before.6.contains("DeleteMarkers"), "{}", before.6);

    // Every on-premises disk is gone but the master key (and the configuration,
    // which the operator keeps); the database too.
    c.gw.kill9();
    let data = c.gw.data.clone();
    let config = dir.join("skyshard.toml");
    std::fs::copy(data.join("test-config.toml"), &config).expect("keep the configuration");
    c.gw.set_arg_value("--config", config.to_str().expect("utf-8"));
    let key = std::fs::read(data.join("master.key")).expect("key");
    std::fs::remove_dir_all(&data).expect("lose the data directory");
    std::fs::create_dir_all(&data).expect("a new disk");
    std::fs::write(data.join("master.key"), &key).expect("the key back");
    std::fs::set_permissions(data.join("master.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let database = match db {
        Db::Sqlite => None,
        Db::Postgres => {
            let fresh = e2e::postgres_database();
            c.gw.set_arg_value("--database-url", &fresh);
            Some(fresh)
        }
    };

    // A start refuses, naming recover; two locations are down for the recovery.
    let (status, stderr) = c.gw.serve_refused(Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{status:?} {stderr}");
    assert!(stderr.contains("skyshard recover"), "{stderr}");
    c.locations[1].stop();
    c.locations[4].stop();
    let mut args =
        vec!["recover", "--config", config.to_str().expect("utf-8"), "--data", data.to_str().expect("utf-8")];
    if let Some(url) = &database {
        args.extend(["--database-url", url]);
    }
    // A wrong key opens nothing and restores nothing.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::fs::write(elsewhere.join("master.key"), format!("{}\n", "5a".repeat(32))).expect("wrong key");
    std::fs::set_permissions(elsewhere.join("master.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let mut wrong = args.clone();
    let at = wrong.iter().position(|a| *a == "--data").expect("--data") + 1;
    let elsewhere_str = elsewhere.display().to_string();
    wrong[at] = &elsewhere_str;
    let (ok, _, err) = skyshard(&wrong, None);
    assert!(!ok && err.contains("opens under this master key"), "{err}");
    let mut dry = args.clone();
    dry.extend(["--dry-run", "--json"]);
    let (ok, out, err) = skyshard(&dry, None);
    assert!(ok, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("report");
    // 4 objects; 2 versions of `doc`, `hidden` and its marker; the locked one;
    // 120 small ones.
    assert_eq!(report["restored"], 129, "{report}");
    assert_eq!(report["unreachable"].as_array().map(Vec::len), Some(2), "{report}");
    let (ok, out, err) = skyshard(&args, None);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("objects: restored 129"), "{out}");
    // Again: nothing more to do.
    let (ok, out, err) = skyshard(&args, None);
    assert!(ok && out.contains("objects: restored 0") && out.contains("already present 129"), "{out}\n{err}");

    c.gw.restart();
    let cl = Client::from(&c.gw);
    let acme = Client { endpoint: cl.endpoint.clone(), ca: cl.ca.clone(), ..acme };
    let after = (
        head(&cl, "photos", "a/small.jpg"),
        head(&cl, "photos", "b/big.raw"),
        head(&cl, "logs", "current"),
        listing(&cl, "photos"),
        listing(&cl, "logs"),
        listing(&acme, "acme-data"),
        versions_of(&cl, "history"),
        kept_of(&cl),
    );
    assert_eq!(after, before, "metadata, ETags, checksums, listings, versions, tags and locks as they were");
    let delete = ["s3api", "delete-object", "--bucket", "vault", "--key", "kept", "--version-id", &kept];
    cl.aws(&delete).fails_with("AccessDenied");
    let state = cl.aws(&["s3api", "get-bucket-versioning", "--bucket", "history"]).ok().stdout;
    assert!(state.contains("Enabled"), "versioning comes back with the bucket: {state}");
    let first = dir.join("first").display().to_string();
    cl.aws(&["s3api", "get-object", "--bucket", "history", "--key", "doc", "--version-id", &versions[0], &first]).ok();
    assert!(same_file(&old, std::path::Path::new(&first)), "an older version reads whole after recovery");
    for (cl, b, k, f) in [
        (&cl, "photos", "a/small.jpg", &small),
        (&cl, "photos", "b/big.raw", &big),
        (&cl, "logs", "current", &new),
        (&acme, "acme-data", "t", &theirs),
    ] {
        let back = dir.join("back");
        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://{b}/{k}"), &back.display().to_string()]).ok();
        assert!(same_file(f, &back), "{b}/{k}");
    }
    let tiny = cl.script("small_objects.py", &["check", "tiny", "t", "120", "16"]);
    assert_eq!(tiny["ok"], 120, "{tiny}");
    let (code, _) = cl.boto_error("HeadObject", serde_json::json!({"Bucket": "logs", "Key": "gone"}));
    assert_eq!(code, "404", "a deleted object stays deleted");
    // Each tenant sees its own again.
    let (code, _) = acme.boto_error("HeadBucket", serde_json::json!({"Bucket": "photos"}));
    assert!(code == "403" || code == "404", "{code}");
}

#[test]
fn everything_comes_back_from_the_locations_sqlite() {
    everything_comes_back_from_the_locations(Db::Sqlite);
}

#[test]
fn everything_comes_back_from_the_locations_postgres() {
    everything_comes_back_from_the_locations(Db::Postgres);
}

/// `admin master-key rotate` while clients write and read: nothing fails, and
/// afterwards the key file holds only the new version — the old key is needed for
/// nothing, across a restart too.
#[test]
fn the_master_key_rotates_under_load_and_the_old_one_is_needed_for_nothing() {
    let c = Cluster::standard("rotate", Db::Sqlite);
    let mut gw = c.gw;
    let dir = c.dir.join("work");
    std::fs::create_dir_all(&dir).expect("dir");
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://rot"]).ok();
    let files: Vec<_> =
        (0..12).map(|i| data_file(&dir.join(format!("f{i}")), 150_000 + i * 1000, 60 + i as u64)).collect();
    for (i, f) in files.iter().enumerate().take(6) {
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://rot/k{i}")]).ok();
    }
    let key_file = gw.data.join("master.key");
    let original = std::fs::read_to_string(&key_file).expect("key");

    // Clients keep writing and reading while the rotation runs.
    let load = {
        let cl = Client::from(&gw);
        let files = files.clone();
        let dir = dir.clone();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            for round in 0..3 {
                for (i, f) in files.iter().enumerate().skip(6) {
                    let put =
                        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://rot/k{i}")]);
                    if !put.status.success() {
                        failures.push(format!("put {i}: {}", put.stderr));
                    }
                    let j = (i + round) % 6;
                    let back = dir.join(format!("load{i}"));
                    let get =
                        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://rot/k{j}"), &back.display().to_string()]);
                    if !get.status.success() || !same_file(&files[j], &back) {
                        failures.push(format!("get {j}: {}", get.stderr));
                    }
                }
            }
            failures
        })
    };
    let out = gw.admin_cli(&["master-key", "rotate", "--wait"]).ok();
    assert!(out.stdout.contains("rekey") && out.stdout.contains("succeeded"), "{}", out.stdout);
    let failures = load.join().expect("load");
    assert!(failures.is_empty(), "{failures:?}");

    let rotated = std::fs::read_to_string(&key_file).expect("key");
    let keys: Vec<&str> = rotated.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert_eq!(keys.len(), 1, "{rotated}");
    assert!(keys[0].starts_with("2:") && !rotated.contains(original.trim()), "only the new version is left");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).expect("meta").permissions());
    assert_eq!(mode & 0o777, 0o600);

    // A restart with only the new key reads every object, old and new.
    gw.restart();
    let cl = Client::from(&gw);
    for (i, f) in files.iter().enumerate() {
        let back = dir.join(format!("after{i}"));
        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://rot/k{i}"), &back.display().to_string()]).ok();
        assert!(same_file(f, &back), "k{i}");
    }
    // The configured key (the test's) keeps working as an access key: secrets were
    // sealed again, not lost.
    let k = gw.admin_json(&["keys", "create", "--id", "AFTERROT01"]);
    assert_eq!(k["access_key_id"], "AFTERROT01");
}

/// `admin backup FILE` while the gateway serves, the data directory lost, then
/// `recover --from-backup FILE`: the backup's objects come back; the file is private
/// and names nothing in the clear.
#[test]
fn a_sealed_backup_restores_the_store() {
    let mut c = Cluster::standard("backup", Db::Sqlite);
    let dir = c.dir.join("work");
    std::fs::create_dir_all(&dir).expect("dir");
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://kept-in-backup"]).ok();
    let files: Vec<_> = (0..3).map(|i| data_file(&dir.join(format!("b{i}")), 200_000 + i * 7, 70 + i as u64)).collect();
    for (i, f) in files.iter().enumerate() {
        cl.aws(&[
            "s3",
            "cp",
            "--no-progress",
            &f.display().to_string(),
            &format!("s3://kept-in-backup/secret-name-{i}"),
        ])
        .ok();
    }
    let backup = dir.join("meta.backup");
    c.gw.admin_cli(&["backup", backup.to_str().expect("utf-8")]).ok();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).expect("meta").permissions());
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(&backup).expect("read");
    assert!(bytes.starts_with(b"SKYBKP01"));
    for needle in [&b"secret-name"[..], b"kept-in-backup", c.gw.secret_key.as_bytes()] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "sealed");
    }

    c.gw.kill9();
    let data = c.gw.data.clone();
    let config = dir.join("skyshard.toml");
    std::fs::copy(data.join("test-config.toml"), &config).expect("keep the configuration");
    c.gw.set_arg_value("--config", config.to_str().expect("utf-8"));
    let key = std::fs::read(data.join("master.key")).expect("key");
    std::fs::remove_dir_all(&data).expect("lose the data directory");
    std::fs::create_dir_all(&data).expect("a new disk");
    std::fs::write(data.join("master.key"), &key).expect("the key back");
    std::fs::set_permissions(data.join("master.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    // A truncated backup is refused, and writes nothing.
    let cut = dir.join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).expect("cut");
    let d = data.to_str().expect("utf-8");
    let c_path = config.to_str().expect("utf-8");
    let (ok, _, err) =
        skyshard(&["recover", "--config", c_path, "--data", d, "--from-backup", cut.to_str().expect("utf-8")], None);
    assert!(!ok && err.contains("truncated"), "{err}");
    let (ok, out, err) =
        skyshard(&["recover", "--config", c_path, "--data", d, "--from-backup", backup.to_str().expect("utf-8")], None);
    assert!(ok && out.contains("objects: restored 3"), "{out}\n{err}");
    c.gw.restart();
    let cl = Client::from(&c.gw);
    for (i, f) in files.iter().enumerate() {
        let back = dir.join("back");
        cl.aws(&[
            "s3",
            "cp",
            "--no-progress",
            &format!("s3://kept-in-backup/secret-name-{i}"),
            &back.display().to_string(),
        ])
        .ok();
        assert!(same_file(f, &back));
    }
}

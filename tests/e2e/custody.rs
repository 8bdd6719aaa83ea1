//! Custody of the master key: it is split into shares for custodians and rebuilt
//! from any threshold of them; a lost key is not silently replaced by a new one,
//! and a wrong key is refused before anything is written.

use std::process::Command;
use std::time::Duration;

use e2e::{Client, Db, Gateway, TempDir, data_file, env, same_file};

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

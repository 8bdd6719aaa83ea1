//! Debian's aws-cli v2 against a gateway over six rclone locations.

use std::process::Command;

use e2e::{Client, Cluster, Db, MARKER, assert_no_leak, data_file, same_file};

use crate::on_both_databases;

fn md5_hex(path: &std::path::Path) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

fn awscli_workflow(db: Db) {
    let c = Cluster::standard("awscli", db);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    cl.aws(&["s3", "mb", "s3://photo-archive"]).ok();
    assert!(cl.aws(&["s3", "ls"]).ok().stdout.contains("photo-archive"));

    // Up: 1 byte, 5 MiB (single PUT), 100 MiB (aws-cli switches to multipart).
    let files = [
        (data_file(&d.join("up/one.bin"), 1, 1), "one.bin"),
        (data_file(&d.join("up/five.bin"), 5 << 20, 2), "dir/five.bin"),
        (data_file(&d.join("up/hundred.bin"), 100 << 20, 3), "big/hundred.bin"),
    ];
    for (f, key) in &files {
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://photo-archive/{key}")]).ok();
    }
    let ls = cl.aws(&["s3", "ls", "--recursive", "s3://photo-archive"]).ok().stdout;
    for (f, key) in &files {
        let size = std::fs::metadata(f).expect("size").len().to_string();
        assert!(ls.lines().any(|l| l.ends_with(key) && l.contains(&size)), "{key} ({size} B) missing from:\n{ls}");
    }

    // Down, every byte compared.
    for (f, key) in &files {
        let back = d.join(&format!("down/{key}"));
        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://photo-archive/{key}"), &back.display().to_string()]).ok();
        assert!(same_file(f, &back), "{key} came back different");
    }

    // head-object: size, MD5 ETag of a single PUT, multipart ETag of the big one.
    let head: serde_json::Value = serde_json::from_str(
        &cl.aws(&["s3api", "head-object", "--bucket", "photo-archive", "--key", "dir/five.bin"]).ok().stdout,
    )
    .expect("json");
    assert_eq!(head["ContentLength"], 5 << 20);
    assert_eq!(head["ETag"].as_str().map(|e| e.trim_matches('"').to_string()), Some(md5_hex(&files[1].0)));
    let head: serde_json::Value = serde_json::from_str(
        &cl.aws(&["s3api", "head-object", "--bucket", "photo-archive", "--key", "big/hundred.bin"]).ok().stdout,
    )
    .expect("json");
    assert!(head["ETag"].as_str().is_some_and(|e| e.contains('-')), "multipart ETag: {head}");

    // sync of a directory tree, names with spaces and non-ASCII included.
    let tree = d.join("tree");
    for (i, name) in
        ["a/x.txt", "a/b/y.bin", "c.txt", "space name.txt", "ünïcödé/ß.dat", "deep/1/2/3/z"].iter().enumerate()
    {
        data_file(&tree.join(name), 1000 * (i + 1) * (i + 1) + if i == 1 { 3 << 20 } else { 0 }, 10 + i as u64);
    }
    cl.aws(&["s3", "sync", "--no-progress", &tree.display().to_string(), "s3://photo-archive/tree/"]).ok();
    let back = d.join("tree-back");
    cl.aws(&["s3", "sync", "--no-progress", "s3://photo-archive/tree/", &back.display().to_string()]).ok();
    let originals = e2e::walk(&tree);
    assert_eq!(originals.len(), 6);
    for f in originals {
        let rel = f.strip_prefix(&tree).expect("prefix");
        assert!(same_file(&f, &back.join(rel)), "{} differs after a sync round trip", rel.display());
    }
    // A second sync has nothing to do.
    let again = cl.aws(&["s3", "sync", "--no-progress", &tree.display().to_string(), "s3://photo-archive/tree/"]).ok();
    assert!(!again.stdout.contains("upload:"), "{}", again.stdout);

    // Empty files: aws-cli sends their PUTs with `Expect: 100-continue`, and a
    // connection answered without `100 Continue` must not stall the next upload
    // on it (botocore reads that upload's answer against the old status). With a
    // 10 s read timeout and no retries, a stall fails the sync.
    let empties = d.join("empties");
    for i in 0..12 {
        data_file(&empties.join(format!("e{i:02}")), 0, 0);
        data_file(&empties.join(format!("f{i:02}")), 100 + i, i as u64);
    }
    let e = empties.display().to_string();
    cl.aws(&["s3", "sync", "--no-progress", "--cli-read-timeout", "10", &e, "s3://photo-archive/empties/"]).ok();
    let listed = cl.aws(&["s3", "ls", "s3://photo-archive/empties/"]).ok().stdout;
    assert_eq!(listed.lines().count(), 24, "{listed}");

    // A presigned GET used by curl.
    let url = cl.aws(&["s3", "presign", "s3://photo-archive/dir/five.bin", "--expires-in", "300"]).ok().stdout;
    let out = d.join("presigned.bin");
    let status = cl.curl().args(["-sf", "-o"]).arg(&out).arg(url.trim()).status().expect("curl");
    assert!(status.success(), "curl of a presigned URL failed");
    assert!(same_file(&files[1].0, &out));

    // rm, then the object is gone.
    cl.aws(&["s3", "rm", "s3://photo-archive/one.bin"]).ok();
    cl.aws(&["s3api", "head-object", "--bucket", "photo-archive", "--key", "one.bin"]).fails_with("404");
    cl.aws(&["s3", "rm", "--recursive", "s3://photo-archive/tree/"]).ok();
    assert!(!cl.aws(&["s3", "ls", "--recursive", "s3://photo-archive"]).ok().stdout.contains("tree/"));

    // The locations hold ciphertext under random names only.
    let dirs: Vec<&std::path::Path> = c.locations.iter().map(|l| l.dir.as_path()).collect();
    assert_no_leak(&dirs, &[MARKER, "photo-archive", "hundred.bin", "five.bin", "space name", "ünïcödé"]);
}

on_both_databases!(awscli_workflow);

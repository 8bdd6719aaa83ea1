//! Scale-out: three `skyshard serve` replicas on one PostgreSQL behave as one
//! service — concurrent writers through all of them, contended keys settle on one
//! acknowledged version that every replica serves, a multipart upload spans
//! replicas, and every acknowledged object reads back intact from every replica.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;

use e2e::{Client, Db, Gateway, Rclone, TempDir, data_file, ok, postgres_database, rclone_location};

#[test]
fn three_replicas_on_one_postgres_act_as_one_service() {
    let dir = TempDir::new("scaleout");
    let locations: Vec<Rclone> =
        (0..6).map(|i| Rclone::start(dir.join(&format!("loc{i}")), &format!("frags-{i}"), i)).collect();
    // One database and one master key for all replicas (each has its own data
    // directory, certificate and listener).
    let mut config = format!("database_url = \"{}\"\nmaster_key = \"{}\"\n", postgres_database(), "5a".repeat(32));
    for (i, r) in locations.iter().enumerate() {
        config.push_str(&rclone_location(&format!("rc{i}"), r));
    }
    config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\n");
    let replicas: Vec<Gateway> =
        (0..3).map(|i| Gateway::start(&dir.join(&format!("gw{i}")), Some(&config), Db::Sqlite)).collect();
    let clients: Vec<Client> = replicas.iter().map(Client::from).collect();
    ok(clients[0].boto("CreateBucket", json!({"Bucket": "shared"}), None));

    // Writers on every replica at once: their own keys, and three keys they all write.
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let acked: Vec<Vec<(String, PathBuf)>> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(r, cl)| {
                let files = files.clone();
                s.spawn(move || {
                    let mut acked = Vec::new();
                    for j in 0..6 {
                        let key = if j % 2 == 0 { format!("own-{r}-{j}") } else { format!("shared-{}", j / 2) };
                        let f = data_file(
                            &files.join(format!("{r}-{j}")),
                            300_000 + 77_777 * j + 1000 * r,
                            (r * 100 + j) as u64,
                        );
                        let put = cl.boto("PutObject", json!({"Bucket": "shared", "Key": key}), Some(&f));
                        if put.get("ok").is_some() {
                            acked.push((key, f));
                        }
                    }
                    acked
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("writer")).collect()
    });
    let acked: Vec<(String, PathBuf)> = acked.into_iter().flatten().collect();
    assert_eq!(acked.len(), 18, "every PUT was acknowledged");

    // A multipart upload begun on one replica, parts through the others, completed on
    // the first.
    let up = ok(clients[0].boto("CreateMultipartUpload", json!({"Bucket": "shared", "Key": "spanning"}), None));
    let id = up["UploadId"].as_str().expect("upload id").to_string();
    let p1 = data_file(&files.join("p1"), 5 << 20, 901);
    let p2 = data_file(&files.join("p2"), 123_456, 902);
    let mut parts = Vec::new();
    for (n, (cl, f)) in [(&clients[1], &p1), (&clients[2], &p2)].into_iter().enumerate() {
        let r = ok(cl.boto(
            "UploadPart",
            json!({"Bucket": "shared", "Key": "spanning", "UploadId": id, "PartNumber": n + 1}),
            Some(f),
        ));
        parts.push(json!({"PartNumber": n + 1, "ETag": r["ETag"]}));
    }
    ok(clients[0].boto(
        "CompleteMultipartUpload",
        json!({"Bucket": "shared", "Key": "spanning", "UploadId": id, "MultipartUpload": {"Parts": parts}}),
        None,
    ));
    let mut spanning = std::fs::read(&p1).expect("p1");
    spanning.extend(std::fs::read(&p2).expect("p2"));

    // Every replica serves every object, and the same version of each contended key.
    let mut candidates: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for (key, f) in &acked {
        candidates.entry(key.clone()).or_default().push(std::fs::read(f).expect("written file"));
    }
    candidates.insert("spanning".into(), vec![spanning]);
    let back = dir.join("back");
    for (key, versions) in &candidates {
        let mut served = Vec::new();
        for cl in &clients {
            ok(cl.boto("GetObject", json!({"Bucket": "shared", "Key": key}), Some(&back)));
            served.push(std::fs::read(&back).expect("read back"));
        }
        assert!(versions.contains(&served[0]), "{key}: replica 0 serves bytes nobody acknowledged writing");
        assert!(served.iter().all(|s| s == &served[0]), "{key}: the replicas disagree");
    }
    // Listings agree too.
    let listings: Vec<Vec<String>> = clients
        .iter()
        .map(|cl| {
            let l = ok(cl.boto("ListObjectsV2", json!({"Bucket": "shared"}), None));
            l["Contents"]
                .as_array()
                .expect("contents")
                .iter()
                .map(|o| o["Key"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .collect();
    assert_eq!(listings[0].len(), candidates.len());
    assert!(listings.iter().all(|l| l == &listings[0]));
}

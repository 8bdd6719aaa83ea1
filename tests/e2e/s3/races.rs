//! Requests that race: a bucket deleted under an upload, reads of a key being
//! overwritten.

use std::time::Duration;

use serde_json::json;

use e2e::{Client, Cluster, Db, ok};

use crate::on_both_databases;

/// DeleteBucket while a PUT into the bucket is under way: the bucket was empty, so
/// it goes; the PUT then fails (NoSuchBucket) instead of answering 200 for an
/// object nobody can see, which came back with the next bucket of that name.
fn bucket_deleted_under_an_upload(db: Db) {
    let c = Cluster::standard("bucket-race", db);
    let cl = Client::from(&c.gw);
    for round in 0..3 {
        ok(cl.boto("CreateBucket", json!({"Bucket": "brief"}), None));
        let put = {
            let cl = cl.clone();
            std::thread::spawn(move || cl.script("paced_put.py", &["brief", "k", &(4 << 20).to_string(), "3"]))
        };
        std::thread::sleep(Duration::from_millis(1200));
        ok(cl.boto("DeleteBucket", json!({"Bucket": "brief"}), None));
        let answer = put.join().expect("the upload");
        assert_eq!(
            (answer["status"].as_str(), answer["code"].as_str()),
            (Some("404"), Some("NoSuchBucket")),
            "round {round}: {answer}"
        );
        ok(cl.boto("CreateBucket", json!({"Bucket": "brief"}), None));
        let listed = ok(cl.boto("ListObjectsV2", json!({"Bucket": "brief"}), None));
        assert_eq!(listed["KeyCount"], 0, "round {round}: {listed}");
        ok(cl.boto("DeleteBucket", json!({"Bucket": "brief"}), None));
    }
}

/// GETs of a key overwritten in a loop each return one whole version: never an
/// error, never a connection closed before the answer, never mixed bytes.
fn reads_of_a_key_being_overwritten(db: Db) {
    let c = Cluster::standard("overwrite-race", db);
    let cl = Client::from(&c.gw);
    ok(cl.boto("CreateBucket", json!({"Bucket": "hot"}), None));
    let r = cl.script("overwrite_race.py", &["hot", "k", &(1_500_000).to_string(), "12", "3"]);
    let gets = r["gets"].as_object().expect("counts");
    assert!(gets.keys().all(|k| k == "whole") && r["overwrites"].as_u64() > Some(5), "{r}");
}

on_both_databases!(bucket_deleted_under_an_upload, reads_of_a_key_being_overwritten);

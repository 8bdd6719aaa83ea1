//! Lifecycle rules through boto3, under a test time scale (a lifecycle day is a
//! second here): current and noncurrent versions expire, delete markers left
//! alone go, stale multipart uploads are aborted — and locked versions stay.

use std::time::Duration;

use serde_json::{Value, json};

use e2e::{Client, Cluster, Db, eventually, ok};

use crate::on_both_databases;

on_both_databases!(lifecycle);

fn keys(cl: &Client, bucket: &str) -> Vec<String> {
    let r = ok(cl.boto("ListObjectsV2", json!({"Bucket": bucket}), None));
    r["Contents"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["Key"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// (key, version id, is a marker) of every version under `prefix`, newest first per key.
fn versions(cl: &Client, bucket: &str, prefix: &str) -> Vec<(String, String, bool)> {
    let r = ok(cl.boto("ListObjectVersions", json!({"Bucket": bucket, "Prefix": prefix}), None));
    let mut out = Vec::new();
    for (list, marker) in [("Versions", false), ("DeleteMarkers", true)] {
        for v in r[list].as_array().cloned().unwrap_or_default() {
            out.push((
                v["Key"].as_str().unwrap_or_default().into(),
                v["VersionId"].as_str().unwrap_or_default().into(),
                marker,
            ));
        }
    }
    out
}

fn rules(bucket: &str, rules: Value) -> Value {
    json!({"Bucket": bucket, "LifecycleConfiguration": {"Rules": rules}})
}

fn lifecycle(db: Db) {
    let extra = "[durability]\nlifecycle_interval = \"1s\"\nlifecycle_day = \"1s\"\n";
    let c = Cluster::start("lifecycle", db, "k = 4\nn = 6\nsegment_size = \"1M\"", extra);
    let cl = Client::from(&c.gw);
    for b in ["life", "hist", "vault"] {
        let lock = b == "vault";
        ok(cl.boto("CreateBucket", json!({"Bucket": b, "ObjectLockEnabledForBucket": lock}), None));
    }
    ok(cl.boto(
        "PutBucketVersioning",
        json!({"Bucket": "hist", "VersioningConfiguration": {"Status": "Enabled"}}),
        None,
    ));

    // Rules are checked as S3 checks them, and read back.
    let none = rules("life", json!([{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}}]));
    assert_eq!(cl.boto_error("PutBucketLifecycleConfiguration", none).0, "MalformedXML");
    let glacier = rules(
        "life",
        json!([{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
        "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]),
    );
    assert_eq!(cl.boto_error("PutBucketLifecycleConfiguration", glacier).0, "NotImplemented", "refused, not ignored");
    let twice = rules(
        "life",
        json!([
        {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "a"}, "Expiration": {"Days": 1}},
        {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "b"}, "Expiration": {"Days": 1}}]),
    );
    assert_eq!(cl.boto_error("PutBucketLifecycleConfiguration", twice).0, "InvalidArgument");
    let (code, _) = cl.boto_error("GetBucketLifecycleConfiguration", json!({"Bucket": "life"}));
    assert_eq!(code, "NoSuchLifecycleConfiguration");

    // An unversioned bucket: objects under tmp/ and those tagged scratch expire after
    // 3 days; uploads under up/ not completed in 2 are aborted.
    for (k, tagging) in [("tmp/a", ""), ("keep/b", "class=scratch"), ("keep/c", "")] {
        ok(cl.boto("PutObject", json!({"Bucket": "life", "Key": k, "Body": k, "Tagging": tagging}), None));
    }
    let up = ok(cl.boto("CreateMultipartUpload", json!({"Bucket": "life", "Key": "up/big"}), None));
    ok(cl.boto(
        "PutBucketLifecycleConfiguration",
        rules(
            "life",
            json!([
        {"ID": "scratch", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 3}},
        {"ID": "tagged", "Status": "Enabled", "Filter": {"Tag": {"Key": "class", "Value": "scratch"}},
            "Expiration": {"Days": 3}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "up/"},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]),
        ),
        None,
    ));
    let got = ok(cl.boto("GetBucketLifecycleConfiguration", json!({"Bucket": "life"}), None));
    assert_eq!(got["Rules"].as_array().map(Vec::len), Some(3), "{got}");
    assert_eq!(got["Rules"][0]["Expiration"]["Days"], 3, "{got}");

    // A versioned bucket: noncurrent versions go 2 days after they stopped being
    // current, but the newest one; a marker left alone goes.
    for n in 0..4 {
        ok(cl.boto("PutObject", json!({"Bucket": "hist", "Key": "doc", "Body": format!("v{n}")}), None));
    }
    // (Taken before the rules: a lifecycle day is a second here.)
    let latest = versions(&cl, "hist", "doc");
    assert_eq!(latest.len(), 4);
    ok(cl.boto("PutObject", json!({"Bucket": "hist", "Key": "gone", "Body": "g"}), None));
    ok(cl.boto("DeleteObject", json!({"Bucket": "hist", "Key": "gone"}), None));
    ok(cl.boto(
        "PutBucketLifecycleConfiguration",
        rules(
            "hist",
            json!([
        {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "doc"},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1}},
        {"ID": "gone", "Status": "Enabled", "Filter": {"Prefix": "gone"},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": ""},
            "Expiration": {"ExpiredObjectDeleteMarker": true}}]),
        ),
        None,
    ));

    // A locked bucket: the same noncurrent rule leaves a version under retention.
    let until = "2099-01-01T00:00:00Z";
    let locked = ok(cl.boto(
        "PutObject",
        json!({"Bucket": "vault", "Key": "kept", "Body": "k",
        "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}),
        None,
    ));
    ok(cl.boto("PutObject", json!({"Bucket": "vault", "Key": "kept", "Body": "newer"}), None));
    ok(cl.boto(
        "PutBucketLifecycleConfiguration",
        rules(
            "vault",
            json!([
        {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]),
        ),
        None,
    ));

    let wait = Duration::from_secs(60);
    assert!(eventually(wait, || keys(&cl, "life") == ["keep/c"]), "{:?}", keys(&cl, "life"));
    assert!(
        eventually(wait, || ok(cl.boto("ListMultipartUploads", json!({"Bucket": "life"}), None))
            .get("Uploads")
            .is_none()),
        "upload {} not aborted",
        up["UploadId"]
    );
    assert!(eventually(wait, || versions(&cl, "hist", "doc").len() == 2), "{:?}", versions(&cl, "hist", "doc"));
    let left = versions(&cl, "hist", "doc");
    assert_eq!(left, latest[..2].to_vec(), "the latest and the newest noncurrent one stay");
    assert!(eventually(wait, || versions(&cl, "hist", "gone").is_empty()), "{:?}", versions(&cl, "hist", "gone"));
    std::thread::sleep(Duration::from_secs(3));
    let vault = versions(&cl, "vault", "kept");
    assert!(vault.iter().any(|(_, id, _)| Some(id.as_str()) == locked["VersionId"].as_str()), "{vault:?}");

    ok(cl.boto("DeleteBucketLifecycle", json!({"Bucket": "life"}), None));
    assert_eq!(
        cl.boto_error("GetBucketLifecycleConfiguration", json!({"Bucket": "life"})).0,
        "NoSuchLifecycleConfiguration"
    );
}

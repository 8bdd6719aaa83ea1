//! S3 versioning through boto3 and aws-cli's `s3api`: versions kept, read and
//! deleted by id, delete markers and restores, suspended buckets, and listings
//! paged over 1,500 versions.

use serde_json::{Value, json};

use e2e::{Client, Cluster, Db, data_file, ok, same_file};

use crate::on_both_databases;

on_both_databases!(versioning);

/// The error a call got, with its headers.
fn refused(r: Value) -> (String, u64, Value) {
    let e = r.get("error").unwrap_or_else(|| panic!("an error was expected: {r}"));
    (e["code"].as_str().unwrap_or_default().to_string(), e["status"].as_u64().unwrap_or(0), e["headers"].clone())
}

fn versioning(db: Db) {
    let c = Cluster::standard("versioning", db);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    ok(cl.boto("CreateBucket", json!({"Bucket": "hist"}), None));
    let state = ok(cl.boto("GetBucketVersioning", json!({"Bucket": "hist"}), None));
    assert!(state.get("Status").is_none(), "never enabled: {state}");
    // An unversioned bucket answers without version ids.
    let plain = ok(cl.boto("PutObject", json!({"Bucket": "hist", "Key": "before", "Body": "b0"}), None));
    assert!(plain.get("VersionId").is_none(), "{plain}");
    let bad = cl.boto_error(
        "PutBucketVersioning",
        json!({"Bucket": "hist", "VersioningConfiguration": {"Status": "Enabled", "MFADelete": "Enabled"}}),
    );
    assert_eq!(bad.0, "NotImplemented", "MFA delete is refused, not ignored");
    ok(cl.boto(
        "PutBucketVersioning",
        json!({"Bucket": "hist", "VersioningConfiguration": {"Status": "Enabled"}}),
        None,
    ));
    let state = ok(cl.boto("GetBucketVersioning", json!({"Bucket": "hist"}), None));
    assert_eq!(state["Status"], "Enabled");

    // Each PUT is a version of its own; the latest is read, the others by id.
    let one = data_file(&d.join("one"), 1_500_000, 1);
    let two = data_file(&d.join("two"), 700_000, 2);
    let v1 = ok(cl.boto("PutObject", json!({"Bucket": "hist", "Key": "doc"}), Some(&one)));
    let v2 = ok(cl.boto("PutObject", json!({"Bucket": "hist", "Key": "doc"}), Some(&two)));
    let (id1, id2) = (v1["VersionId"].as_str().expect("an id"), v2["VersionId"].as_str().expect("an id"));
    assert_ne!(id1, id2);
    assert_ne!(id1, "null");
    let back = d.join("back");
    let got = ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc"}), Some(&back)));
    assert_eq!(got["VersionId"], id2);
    assert!(same_file(&two, &back));
    let got = ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": id1}), Some(&back)));
    assert_eq!((got["VersionId"].as_str(), got["ETag"].clone()), (Some(id1), v1["ETag"].clone()));
    assert!(same_file(&one, &back), "an older version reads whole");
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": id1}), None));
    assert_eq!(head["ContentLength"], 1_500_000);
    let ranged = ok(cl.boto(
        "GetObject",
        json!({"Bucket": "hist", "Key": "doc", "VersionId": id1, "Range": "bytes=10-19"}),
        None,
    ));
    assert_eq!(ranged["ContentLength"], 10);
    let (code, status, _) =
        refused(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": "nope"}), None));
    assert_eq!((code.as_str(), status), ("InvalidArgument", 400));
    let missing = "0123456789abcdef0123456789abcdef";
    let (code, status, _) =
        refused(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": missing}), None));
    assert_eq!((code.as_str(), status), ("NoSuchVersion", 404));
    let before = ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "before", "VersionId": "null"}), None));
    assert_eq!(before["VersionId"], "null", "an object from before versioning is the null version");

    // A delete adds a marker: the key reads as deleted, its versions stay.
    let del = ok(cl.boto("DeleteObject", json!({"Bucket": "hist", "Key": "doc"}), None));
    assert_eq!(del["DeleteMarker"], true, "{del}");
    let marker = del["VersionId"].as_str().expect("the marker's id").to_string();
    let (code, status, headers) = refused(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc"}), None));
    assert_eq!((code.as_str(), status), ("NoSuchKey", 404));
    assert_eq!(headers["x-amz-delete-marker"], "true", "{headers}");
    assert_eq!(headers["x-amz-version-id"], marker.as_str());
    let (_, status, _) = refused(cl.boto("HeadObject", json!({"Bucket": "hist", "Key": "doc"}), None));
    assert_eq!(status, 404);
    let (code, status, _) =
        refused(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": marker}), None));
    assert_eq!((code.as_str(), status), ("MethodNotAllowed", 405));
    let listed = ok(cl.boto("ListObjectsV2", json!({"Bucket": "hist"}), None));
    let keys: Vec<&str> =
        listed["Contents"].as_array().map(|a| a.iter().filter_map(|o| o["Key"].as_str()).collect()).unwrap_or_default();
    assert_eq!(keys, ["before"], "a key under a marker is not listed");
    let all = ok(cl.boto("ListObjectVersions", json!({"Bucket": "hist", "Prefix": "doc"}), None));
    let ids: Vec<(&str, bool)> = all["Versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["VersionId"].as_str().unwrap_or_default(), v["IsLatest"].as_bool().unwrap_or_default()))
        .collect();
    assert_eq!(ids, [(id2, false), (id1, false)], "newest first");
    assert_eq!(all["DeleteMarkers"][0]["VersionId"], marker.as_str());
    assert_eq!(all["DeleteMarkers"][0]["IsLatest"], true);

    // Deleting the marker restores the key; copying an old version onto it too.
    let undo = ok(cl.boto("DeleteObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": marker}), None));
    assert_eq!((undo["DeleteMarker"].clone(), undo["VersionId"].as_str()), (json!(true), Some(marker.as_str())));
    ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc"}), Some(&back)));
    assert!(same_file(&two, &back), "the marker went: the latest version is back");
    let source = json!({"Bucket": "hist", "Key": "doc", "VersionId": id1});
    let restored = ok(cl.boto("CopyObject", json!({"Bucket": "hist", "Key": "doc", "CopySource": source}), None));
    assert_eq!(restored["CopySourceVersionId"], id1);
    let id3 = restored["VersionId"].as_str().expect("a new version").to_string();
    let got = ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc"}), Some(&back)));
    assert_eq!(got["VersionId"], id3.as_str());
    assert!(same_file(&one, &back), "version 1's bytes are the latest again");

    // A version deleted for good is gone; the others stay whole.
    let gone = ok(cl.boto("DeleteObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": id1}), None));
    assert_eq!(gone["VersionId"], id1);
    let (code, _, _) = refused(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": id1}), None));
    assert_eq!(code, "NoSuchVersion");
    ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc"}), Some(&back)));
    assert!(same_file(&one, &back), "the copy of version 1 shares its seals: still whole");
    ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": id2}), Some(&back)));
    assert!(same_file(&two, &back));

    // Multipart uploads make versions too.
    let big = data_file(&d.join("big"), 12_000_000, 3);
    ok(cl.boto("upload_file", json!({"Bucket": "hist", "Key": "big", "Threshold": 5_242_880}), Some(&big)));
    ok(cl.boto("upload_file", json!({"Bucket": "hist", "Key": "big", "Threshold": 5_242_880}), Some(&one)));
    let bigs = ok(cl.boto("ListObjectVersions", json!({"Bucket": "hist", "Prefix": "big"}), None));
    let first = bigs["Versions"][1]["VersionId"].as_str().expect("the first upload's version").to_string();
    ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "big", "VersionId": first}), Some(&back)));
    assert!(same_file(&big, &back), "a multipart version, overwritten, reads whole");

    // DeleteObjects with and without versions.
    let r = ok(cl.boto(
        "DeleteObjects",
        json!({"Bucket": "hist", "Delete": {"Objects": [{"Key": "doc", "VersionId": id2}, {"Key": "big"}]}}),
        None,
    ));
    let deleted = r["Deleted"].as_array().expect("deleted");
    assert_eq!(deleted[0]["VersionId"], id2, "{r}");
    assert!(deleted[0].get("DeleteMarker").is_none(), "{r}");
    assert_eq!(deleted[1]["DeleteMarker"], true, "{r}");
    assert!(deleted[1]["DeleteMarkerVersionId"].is_string(), "{r}");

    // A bucket with versions or markers left is not empty.
    let (code, _) = cl.boto_error("DeleteBucket", json!({"Bucket": "hist"}));
    assert_eq!(code, "BucketNotEmpty");

    // Suspended: writes replace the key's null version; earlier versions stay.
    ok(cl.boto(
        "PutBucketVersioning",
        json!({"Bucket": "hist", "VersioningConfiguration": {"Status": "Suspended"}}),
        None,
    ));
    let s1 = ok(cl.boto("PutObject", json!({"Bucket": "hist", "Key": "doc", "Body": "suspended 1"}), None));
    assert_eq!(s1["VersionId"], "null");
    ok(cl.boto("PutObject", json!({"Bucket": "hist", "Key": "doc", "Body": "suspended 2"}), None));
    let docs = ok(cl.boto("ListObjectVersions", json!({"Bucket": "hist", "Prefix": "doc"}), None));
    let ids: Vec<&str> =
        docs["Versions"].as_array().expect("versions").iter().filter_map(|v| v["VersionId"].as_str()).collect();
    assert_eq!(ids, ["null", id3.as_str()], "one null version; the versioned one kept");
    let got = ok(cl.boto("GetObject", json!({"Bucket": "hist", "Key": "doc", "VersionId": "null"}), None));
    assert_eq!(got["BodyLength"], 11);
    let del = ok(cl.boto("DeleteObject", json!({"Bucket": "hist", "Key": "doc"}), None));
    assert_eq!((del["DeleteMarker"].clone(), del["VersionId"].clone()), (json!(true), json!("null")));
    let docs = ok(cl.boto("ListObjectVersions", json!({"Bucket": "hist", "Prefix": "doc"}), None));
    assert_eq!(docs["Versions"].as_array().map(Vec::len), Some(1), "the null version went with its marker: {docs}");

    // Paging: 1,500 versions of three keys, listed 400 at a time by boto3's paginator
    // and whole by aws-cli.
    ok(cl.boto(
        "PutBucketVersioning",
        json!({"Bucket": "hist", "VersioningConfiguration": {"Status": "Enabled"}}),
        None,
    ));
    let out = cl.script("versions.py", &["hist", "many/k", "3", "500", "400"]);
    let mut expected = Vec::new();
    for k in 0..3 {
        let key = format!("many/k{k}");
        let ids: Vec<&str> = out["put"][&key].as_array().expect("ids").iter().filter_map(Value::as_str).collect();
        assert_eq!(ids.len(), 500);
        for (n, id) in ids.iter().rev().enumerate() {
            expected.push(json!([key, id, n == 0]));
        }
    }
    assert_eq!(out["listed"].as_array().expect("listed"), &expected, "every version once, in S3's order");
    assert_eq!(out["pages"], 4);
    let cli =
        cl.aws(&["s3api", "list-object-versions", "--bucket", "hist", "--prefix", "many/", "--page-size", "700"]).ok();
    let cli: Value = serde_json::from_str(&cli.stdout).expect("json");
    assert_eq!(cli["Versions"].as_array().map(Vec::len), Some(1500));
}

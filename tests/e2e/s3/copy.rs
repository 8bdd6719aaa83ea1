//! Server-side copies with every client that makes them (boto3, aws-cli, s3cmd,
//! rclone), conditional writes raced by eight writers, and conditional deletes.

use std::time::Duration;

use serde_json::{Value, json};

use e2e::{Client, Cluster, Db, data_file, eventually, ok, same_file};

use crate::on_both_databases;

/// Six locations 4-of-6 for most buckets; bucket `far` on a 2-of-3 policy.
fn cluster(name: &str, db: Db) -> Cluster {
    let extra = "[bucket_policies]\nfar = \"narrow\"\n[policies.narrow]\nk = 2\nn = 3\nsegment_size = \"1M\"\n";
    Cluster::start(name, db, "k = 4\nn = 6\nsegment_size = \"1M\"", extra)
}

fn copies(db: Db) {
    let c = cluster("copies", db);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    for b in ["src", "dst", "far"] {
        ok(cl.boto("CreateBucket", json!({"Bucket": b}), None));
    }
    let a = data_file(&d.join("a.bin"), 3_300_000, 1);
    let put = ok(cl.boto(
        "PutObject",
        json!({"Bucket": "src", "Key": "a.bin", "ContentType": "application/x-a", "Metadata": {"colour": "blue"}}),
        Some(&a),
    ));
    let stored = c.fragment_files();
    assert_eq!(stored, 6);

    // Same tenant, same policy: the copy shares the seal, no fragment is written.
    let copy = ok(cl.boto("CopyObject", json!({"Bucket": "dst", "Key": "a.bin", "CopySource": "src/a.bin"}), None));
    assert_eq!(copy["CopyObjectResult"]["ETag"], put["ETag"], "{copy}");
    assert!(copy["CopyObjectResult"]["ChecksumCRC32"].is_string(), "the source's checksum is kept: {copy}");
    assert_eq!(c.fragment_files(), stored, "a shared copy uploads nothing");
    let back = d.join("back");
    let got = ok(cl.boto("GetObject", json!({"Bucket": "dst", "Key": "a.bin"}), Some(&back)));
    assert!(same_file(&a, &back));
    assert_eq!(
        (got["ContentType"].clone(), got["Metadata"].clone()),
        (json!("application/x-a"), json!({"colour": "blue"}))
    );

    // Onto itself: only with new metadata (REPLACE), else S3's InvalidRequest.
    let (code, status) =
        cl.boto_error("CopyObject", json!({"Bucket": "dst", "Key": "a.bin", "CopySource": "dst/a.bin"}));
    assert_eq!((code.as_str(), status), ("InvalidRequest", 400));
    ok(cl.boto(
        "CopyObject",
        json!({"Bucket": "dst", "Key": "a.bin", "CopySource": "dst/a.bin", "MetadataDirective": "REPLACE",
               "ContentType": "text/x-new", "Metadata": {"state": "renamed"}}),
        None,
    ));
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "dst", "Key": "a.bin"}), None));
    assert_eq!(
        (head["ContentType"].clone(), head["Metadata"].clone()),
        (json!("text/x-new"), json!({"state": "renamed"}))
    );
    assert_eq!(c.fragment_files(), stored);

    // The source's conditions.
    let etag = put["ETag"].as_str().expect("etag");
    for cond in [json!({"CopySourceIfMatch": "\"0123\""}), json!({"CopySourceIfNoneMatch": etag})] {
        let mut p = json!({"Bucket": "dst", "Key": "c.bin", "CopySource": "src/a.bin"});
        p.as_object_mut().expect("map").extend(cond.as_object().expect("map").clone());
        assert_eq!(cl.boto_error("CopyObject", p), ("PreconditionFailed".into(), 412));
    }
    ok(cl.boto(
        "CopyObject",
        json!({"Bucket": "dst", "Key": "c.bin", "CopySource": "src/a.bin", "CopySourceIfMatch": etag}),
        None,
    ));
    let missing = cl.boto_error("CopyObject", json!({"Bucket": "dst", "Key": "x", "CopySource": "src/nothing"}));
    assert_eq!(missing, ("NoSuchKey".into(), 404));
    let missing = cl.boto_error("CopyObject", json!({"Bucket": "dst", "Key": "x", "CopySource": "nobucket/a"}));
    assert_eq!(missing, ("NoSuchBucket".into(), 404));

    // Another policy: the bytes stream into fragments of the target's policy.
    ok(cl.boto("CopyObject", json!({"Bucket": "far", "Key": "a.bin", "CopySource": "src/a.bin"}), None));
    assert_eq!(c.fragment_files(), stored + 3, "a 2-of-3 copy writes three fragments");
    ok(cl.boto("GetObject", json!({"Bucket": "far", "Key": "a.bin"}), Some(&back)));
    assert!(same_file(&a, &back));

    // Deleting the source keeps every copy whole; deleting the last frees the seal.
    ok(cl.boto("DeleteObject", json!({"Bucket": "src", "Key": "a.bin"}), None));
    std::thread::sleep(Duration::from_secs(2)); // several collection rounds
    for (b, k) in [("dst", "a.bin"), ("dst", "c.bin")] {
        ok(cl.boto("GetObject", json!({"Bucket": b, "Key": k}), Some(&back)));
        assert!(same_file(&a, &back), "{b}/{k} after its source went");
    }
    assert_eq!(c.fragment_files(), stored + 3);
    ok(cl.boto(
        "DeleteObjects",
        json!({"Bucket": "dst", "Delete": {"Objects": [{"Key": "a.bin"}, {"Key": "c.bin"}]}}),
        None,
    ));
    assert!(eventually(Duration::from_secs(30), || c.fragment_files() == 3), "{} fragments", c.fragment_files());

    // A multipart source, shared: the copy keeps its parts (ETag, partNumber reads).
    let mp = data_file(&d.join("mp.bin"), 20 << 20, 2);
    ok(cl.boto("upload_file", json!({"Bucket": "src", "Key": "mp.bin", "Threshold": 8 << 20}), Some(&mp)));
    let before = c.fragment_files();
    let copy = ok(cl.boto("CopyObject", json!({"Bucket": "dst", "Key": "mp.bin", "CopySource": "src/mp.bin"}), None));
    assert!(copy["CopyObjectResult"]["ETag"].as_str().is_some_and(|e| e.ends_with("-3\"")), "{copy}");
    assert_eq!(c.fragment_files(), before);
    let part = ok(cl.boto("GetObject", json!({"Bucket": "dst", "Key": "mp.bin", "PartNumber": 2}), Some(&back)));
    assert_eq!(part["PartsCount"], 3, "{part}");
    let bytes = std::fs::read(&mp).expect("read");
    assert_eq!(std::fs::read(&back).expect("read"), &bytes[8 << 20..16 << 20]);

    // UploadPartCopy: parts cut from ranges of the source and a whole object.
    let up = ok(cl.boto("CreateMultipartUpload", json!({"Bucket": "dst", "Key": "assembled"}), None));
    let id = up["UploadId"].as_str().expect("upload id");
    let small = data_file(&d.join("small"), 70_000, 3);
    ok(cl.boto("PutObject", json!({"Bucket": "src", "Key": "small"}), Some(&small)));
    let mut parts = Vec::new();
    for (n, source, range) in [
        (1, "src/mp.bin", Some("bytes=0-6291455")),
        (2, "src/mp.bin", Some("bytes=6291456-20971519")),
        (3, "src/small", None),
    ] {
        let mut p = json!({"Bucket": "dst", "Key": "assembled", "UploadId": id, "PartNumber": n, "CopySource": source});
        if let Some(r) = range {
            p["CopySourceRange"] = json!(r);
        }
        let r = ok(cl.boto("UploadPartCopy", p, None));
        parts.push(json!({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]}));
    }
    let bad = json!({"Bucket": "dst", "Key": "assembled", "UploadId": id, "PartNumber": 4, "CopySource": "src/small",
                     "CopySourceRange": "bytes=0-70000"});
    assert_eq!(cl.boto_error("UploadPartCopy", bad), ("InvalidRange".into(), 416));
    ok(cl.boto(
        "CompleteMultipartUpload",
        json!({"Bucket": "dst", "Key": "assembled", "UploadId": id, "MultipartUpload": {"Parts": parts}}),
        None,
    ));
    ok(cl.boto("GetObject", json!({"Bucket": "dst", "Key": "assembled"}), Some(&back)));
    let mut want = bytes.clone();
    want.extend(std::fs::read(&small).expect("read"));
    assert!(std::fs::read(&back).expect("read") == want, "the assembled object differs");

    // aws-cli: cp between buckets, mv, sync of a prefix.
    cl.aws(&["s3", "cp", "--no-progress", "s3://src/mp.bin", "s3://dst/cli.bin"]).ok();
    cl.aws(&["s3", "mv", "--no-progress", "s3://dst/cli.bin", "s3://dst/moved.bin"]).ok();
    cl.aws(&["s3api", "head-object", "--bucket", "dst", "--key", "cli.bin"]).fails_with("404");
    cl.aws(&["s3", "sync", "--no-progress", "s3://src/", "s3://dst/synced/"]).ok();
    let listed = cl.aws(&["s3", "ls", "--recursive", "s3://dst/"]).ok().stdout;
    for k in ["moved.bin", "synced/mp.bin", "synced/small"] {
        assert!(listed.contains(k), "{k} missing:\n{listed}");
    }
    // s3cmd and rclone (server-side copy and move).
    cl.s3cmd(&["cp", "s3://src/mp.bin", "s3://dst/s3cmd.bin"]).ok();
    let before = c.fragment_files();
    cl.rclone(&["copyto", ":s3:src/mp.bin", ":s3:dst/rclone.bin"]).ok();
    cl.rclone(&["moveto", ":s3:dst/rclone.bin", ":s3:dst/rclone-moved.bin"]).ok();
    assert_eq!(c.fragment_files(), before, "rclone's copies are server-side and shared");
    for k in ["moved.bin", "synced/mp.bin", "s3cmd.bin", "rclone-moved.bin"] {
        ok(cl.boto("GetObject", json!({"Bucket": "dst", "Key": k}), Some(&back)));
        assert!(same_file(&mp, &back), "{k} differs");
    }
    cl.aws(&["s3api", "head-object", "--bucket", "dst", "--key", "rclone.bin"]).fails_with("404");

    // Customer keys: the same key shares the seal; dropping it re-encrypts.
    let key = "0123456789abcdef0123456789abcdef";
    let sse = json!({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key});
    let mut p = json!({"Bucket": "src", "Key": "secret"});
    p.as_object_mut().expect("map").extend(sse.as_object().expect("map").clone());
    ok(cl.boto("PutObject", p, Some(&small)));
    let before = c.fragment_files();
    let copy_with = json!({"Bucket": "dst", "Key": "secret", "CopySource": "src/secret",
        "CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key,
        "SSECustomerAlgorithm": "AES256", "SSECustomerKey": key});
    ok(cl.boto("CopyObject", copy_with, None));
    assert_eq!(c.fragment_files(), before, "same customer key: shared");
    let (code, _) = cl.boto_error("GetObject", json!({"Bucket": "dst", "Key": "secret"}));
    assert_eq!(code, "InvalidRequest", "the copy still needs the key");
    let unkeyed = json!({"Bucket": "dst", "Key": "plain", "CopySource": "src/secret",
        "CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key});
    ok(cl.boto("CopyObject", unkeyed, None));
    ok(cl.boto("GetObject", json!({"Bucket": "dst", "Key": "plain"}), Some(&back)));
    assert!(same_file(&small, &back));
    let (code, _) = cl.boto_error("CopyObject", json!({"Bucket": "dst", "Key": "x", "CopySource": "src/secret"}));
    assert_eq!(code, "InvalidRequest", "a keyed source needs its key");

    // Another tenant's bucket is not a source.
    let acme = c.gw.tenant_client("acme", "ACMECOPY01");
    ok(acme.boto("CreateBucket", json!({"Bucket": "acme-b"}), None));
    let denied = acme.boto_error("CopyObject", json!({"Bucket": "acme-b", "Key": "x", "CopySource": "src/small"}));
    assert_eq!(denied, ("AccessDenied".into(), 403));
}

fn conditional_writes(db: Db) {
    let c = Cluster::standard("conditional", db);
    let cl = Client::from(&c.gw);
    ok(cl.boto("CreateBucket", json!({"Bucket": "locks"}), None));
    let race = |key: &str, mode: &str| -> Vec<Value> {
        let out = cl.script("conditional_race.py", &["locks", key, mode, "8"]);
        out.as_array().expect("a list").clone()
    };
    let winners = |r: &[Value]| r.iter().filter(|o| o.get("etag").is_some()).count();
    let refused = |r: &[Value]| r.iter().filter(|o| o["error"] == "PreconditionFailed").count();

    // Eight writers create the same key: exactly one wins, the others get 412.
    let r = race("lock", "absent");
    assert_eq!((winners(&r), refused(&r)), (1, 7), "{r:?}");
    let won = r.iter().find_map(|o| o["etag"].as_str()).expect("the winner's ETag").to_string();
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "locks", "Key": "lock"}), None));
    assert_eq!(head["ETag"], won, "the object is the winner's");
    // Eight writers replace it if it is still the one they read: one wins.
    let r = race("lock", &format!("match:{won}"));
    assert_eq!((winners(&r), refused(&r)), (1, 7), "{r:?}");
    // Eight multipart uploads complete with If-None-Match: one wins.
    let r = race("manifest", "complete");
    assert_eq!((winners(&r), refused(&r)), (1, 7), "{r:?}");

    // If-Match on a missing key is 404; a mismatched one 412.
    let missing =
        cl.boto_error("PutObject", json!({"Bucket": "locks", "Key": "none", "Body": "x", "IfMatch": "\"00\""}));
    assert_eq!(missing, ("NoSuchKey".into(), 404));
    let stale = cl.boto_error("PutObject", json!({"Bucket": "locks", "Key": "lock", "Body": "x", "IfMatch": won}));
    assert_eq!(stale, ("PreconditionFailed".into(), 412));

    // Conditional deletes: ETag, size; DeleteObjects entries with conditions.
    let v = ok(cl.boto("PutObject", json!({"Bucket": "locks", "Key": "d", "Body": "12345"}), None));
    let etag = v["ETag"].as_str().expect("etag");
    let wrong = cl.boto_error("DeleteObject", json!({"Bucket": "locks", "Key": "d", "IfMatch": "\"00\""}));
    assert_eq!(wrong, ("PreconditionFailed".into(), 412));
    let wrong = cl.boto_error("DeleteObject", json!({"Bucket": "locks", "Key": "d", "IfMatchSize": 4}));
    assert_eq!(wrong, ("PreconditionFailed".into(), 412));
    ok(cl.boto("DeleteObject", json!({"Bucket": "locks", "Key": "d", "IfMatch": etag, "IfMatchSize": 5}), None));
    cl.boto_error("HeadObject", json!({"Bucket": "locks", "Key": "d"}));
    let e1 = ok(cl.boto("PutObject", json!({"Bucket": "locks", "Key": "e1", "Body": "a"}), None))["ETag"].clone();
    ok(cl.boto("PutObject", json!({"Bucket": "locks", "Key": "e2", "Body": "b"}), None));
    let batch = ok(cl.boto(
        "DeleteObjects",
        json!({"Bucket": "locks", "Delete": {"Objects": [{"Key": "e1", "ETag": e1}, {"Key": "e2", "ETag": "\"00\""}]}}),
        None,
    ));
    assert_eq!(batch["Deleted"][0]["Key"], "e1", "{batch}");
    assert_eq!(
        (batch["Errors"][0]["Key"].clone(), batch["Errors"][0]["Code"].clone()),
        (json!("e2"), json!("PreconditionFailed"))
    );
    ok(cl.boto("HeadObject", json!({"Bucket": "locks", "Key": "e2"}), None));

    // A Complete sent again after its answer was lost gets the same answer.
    let up = ok(cl.boto("CreateMultipartUpload", json!({"Bucket": "locks", "Key": "twice"}), None));
    let id = up["UploadId"].as_str().expect("id");
    let p = ok(cl.boto(
        "UploadPart",
        json!({"Bucket": "locks", "Key": "twice", "UploadId": id, "PartNumber": 1, "Body": "x"}),
        None,
    ));
    let done = json!({"Bucket": "locks", "Key": "twice", "UploadId": id,
                      "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]}});
    let first = ok(cl.boto("CompleteMultipartUpload", done.clone(), None));
    let again = ok(cl.boto("CompleteMultipartUpload", done, None));
    assert_eq!(first["ETag"], again["ETag"]);
}

/// Multipart checksums of every algorithm, composite and full-object, each equal
/// to a reference the gateway computes for a single PUT, given back by Complete,
/// HEAD and GetObjectAttributes; a wrong whole-object checksum is BadDigest.
fn multipart_checksums(db: Db) {
    let c = Cluster::standard("mp-checksums", db);
    let cl = Client::from(&c.gw);
    ok(cl.boto("CreateBucket", json!({"Bucket": "sums"}), None));
    let report = cl.script("mp_checksums.py", &["sums"]);
    let cases = report.as_object().expect("a report");
    assert_eq!(cases.len(), 7, "{report}");
    for (case, r) in cases {
        let kind = case.split_once('-').map(|(_, k)| k).expect("ALG-TYPE");
        assert!(r["expected"].is_string(), "{case}: {r}");
        for got in ["complete", "head", "attributes"] {
            assert_eq!(r[got], r["expected"], "{case}: {got}: {r}");
        }
        assert_eq!((r["complete_type"].as_str(), r["head_type"].as_str()), (Some(kind), Some(kind)), "{case}: {r}");
        assert_eq!((r["parts"].as_u64(), r["size"].as_u64()), (Some(2), Some((5 << 20) + 777_777)), "{case}: {r}");
        assert_eq!(r["bad_whole"], "BadDigest", "{case}: {r}");
    }
}

on_both_databases!(copies, conditional_writes, multipart_checksums);

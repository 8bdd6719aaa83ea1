//! boto3 (current) against a gateway over six rclone locations: metadata, ranges,
//! checksums, conditional requests, multipart, listing, batch delete.

use serde_json::json;

use e2e::{Client, Cluster, Db, MARKER, assert_no_leak, data_file, ok, same_file};

use crate::on_both_databases;

fn boto_objects(db: Db) {
    let c = Cluster::standard("boto-objects", db);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    ok(cl.boto("CreateBucket", json!({"Bucket": "docs"}), None));

    // Single PUT with metadata and standard headers; 3.2 MiB spans four 1 MiB segments.
    let src = data_file(&d.join("a.bin"), 3_300_000, 7);
    let put = ok(cl.boto(
        "PutObject",
        json!({"Bucket": "docs", "Key": "reports/a.bin", "ContentType": "application/x-test",
               "CacheControl": "no-cache", "ContentDisposition": "attachment; filename=\"a.bin\"",
               "Metadata": {"colour": "blue", "owner": "ops"}}),
        Some(&src),
    ));
    assert!(put["ETag"].as_str().is_some_and(|e| e.len() == 34), "{put}");
    let back = d.join("a.back");
    let got = ok(cl.boto("GetObject", json!({"Bucket": "docs", "Key": "reports/a.bin"}), Some(&back)));
    assert!(same_file(&src, &back));
    assert_eq!(got["ContentType"], "application/x-test");
    assert_eq!(got["CacheControl"], "no-cache");
    assert_eq!(got["ContentDisposition"], "attachment; filename=\"a.bin\"");
    assert_eq!(got["Metadata"], json!({"colour": "blue", "owner": "ops"}));
    assert_eq!(got["ETag"], put["ETag"]);

    // Ranged GETs: inside a segment, across segment boundaries, suffix, open-ended.
    let bytes = std::fs::read(&src).expect("read");
    let len = bytes.len();
    for (range, lo, hi) in [
        ("bytes=0-0", 0, 1),
        ("bytes=100-199", 100, 200),
        ("bytes=1048570-1048600", 1_048_570, 1_048_601),
        ("bytes=1000000-3100000", 1_000_000, 3_100_001),
        ("bytes=-5", len - 5, len),
        ("bytes=3000000-", 3_000_000, len),
        ("bytes=0-99999999", 0, len),
    ] {
        let out = d.join("range.bin");
        let r = ok(cl.boto("GetObject", json!({"Bucket": "docs", "Key": "reports/a.bin", "Range": range}), Some(&out)));
        assert_eq!(std::fs::read(&out).expect("read"), &bytes[lo..hi], "{range}");
        assert_eq!(r["ContentRange"], format!("bytes {lo}-{}/{len}", hi - 1), "{range}");
        assert_eq!(r["HTTPStatusCode"], 206);
    }

    // Checksums: boto3 sends CRC32 by default; it is verified, stored and returned
    // (whole object only: a ranged GET with checksum mode on must still succeed).
    let head =
        ok(cl.boto("HeadObject", json!({"Bucket": "docs", "Key": "reports/a.bin", "ChecksumMode": "ENABLED"}), None));
    assert!(head["ChecksumCRC32"].as_str().is_some_and(|s| s.len() == 8), "{head}");
    ok(cl.boto("GetObject", json!({"Bucket": "docs", "Key": "reports/a.bin", "ChecksumMode": "ENABLED"}), Some(&back)));
    ok(cl.boto(
        "GetObject",
        json!({"Bucket": "docs", "Key": "reports/a.bin", "ChecksumMode": "ENABLED", "Range": "bytes=5-50"}),
        Some(&back),
    ));
    let sha =
        ok(cl.boto("PutObject", json!({"Bucket": "docs", "Key": "sha", "ChecksumAlgorithm": "SHA256"}), Some(&src)));
    assert!(sha["ChecksumSHA256"].as_str().is_some_and(|s| s.len() == 44), "{sha}");
    let (code, status) = cl.boto_error(
        "PutObject",
        json!({"Bucket": "docs", "Key": "bad-crc", "Body": "hello", "ChecksumCRC32": "AAAAAA=="}),
    );
    assert_eq!((code.as_str(), status), ("BadDigest", 400));
    let (code, _) = cl.boto_error("PutObject", json!({"Bucket": "docs", "Key": "bad-md5", "Body": "hello", "ContentMD5": "XrY7u+Ae7tCTyyK7j1rNww==", "_checksum": "when_required"}));
    assert_eq!(code, "BadDigest");
    cl.boto_error("HeadObject", json!({"Bucket": "docs", "Key": "bad-crc"}));

    // Conditional requests.
    let etag = put["ETag"].as_str().expect("etag").to_string();
    let (code, status) =
        cl.boto_error("GetObject", json!({"Bucket": "docs", "Key": "reports/a.bin", "IfNoneMatch": etag}));
    assert_eq!((code.as_str(), status), ("304", 304));
    let (code, status) =
        cl.boto_error("GetObject", json!({"Bucket": "docs", "Key": "reports/a.bin", "IfMatch": "\"0000\""}));
    assert_eq!((code.as_str(), status), ("PreconditionFailed", 412));
    ok(cl.boto("GetObject", json!({"Bucket": "docs", "Key": "reports/a.bin", "IfMatch": etag}), Some(&back)));
    let (_, status) = cl.boto_error(
        "GetObject",
        json!({"Bucket": "docs", "Key": "reports/a.bin", "IfModifiedSince": "2100-01-01T00:00:00Z"}),
    );
    assert_eq!(status, 304);

    // The empty object, and an overwrite.
    let empty = data_file(&d.join("empty"), 0, 1);
    ok(cl.boto("PutObject", json!({"Bucket": "docs", "Key": "empty"}), Some(&empty)));
    let r = ok(cl.boto("GetObject", json!({"Bucket": "docs", "Key": "empty"}), Some(&back)));
    assert_eq!(r["BodyLength"], 0);
    assert_eq!(r["ContentLength"], 0);
    let other = data_file(&d.join("other"), 12345, 99);
    ok(cl.boto("PutObject", json!({"Bucket": "docs", "Key": "reports/a.bin"}), Some(&other)));
    ok(cl.boto("GetObject", json!({"Bucket": "docs", "Key": "reports/a.bin"}), Some(&back)));
    assert!(same_file(&other, &back), "an overwrite is visible at once");

    let dirs: Vec<&std::path::Path> = c.locations.iter().map(|l| l.dir.as_path()).collect();
    assert_no_leak(&dirs, &[MARKER, "docs", "reports", "colour", "application/x-test"]);
}

fn boto_multipart(db: Db) {
    let c = Cluster::standard("boto-multipart", db);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    ok(cl.boto("CreateBucket", json!({"Bucket": "media"}), None));

    // Managed transfer: 20 MiB in 8 MiB parts.
    let src = data_file(&d.join("video.bin"), 20 << 20, 3);
    ok(cl.boto("upload_file", json!({"Bucket": "media", "Key": "video.bin"}), Some(&src)));
    let back = d.join("video.back");
    ok(cl.boto("download_file", json!({"Bucket": "media", "Key": "video.bin"}), Some(&back)));
    assert!(same_file(&src, &back));
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "media", "Key": "video.bin"}), None));
    assert!(head["ETag"].as_str().is_some_and(|e| e.ends_with("-3\"")), "{head}");
    assert_eq!(head["ContentLength"], 20 << 20);

    // By hand: a replaced part, listing parts and uploads, completing.
    let up = ok(cl.boto(
        "CreateMultipartUpload",
        json!({"Bucket": "media", "Key": "manual", "ContentType": "video/x-test", "Metadata": {"k": "v"}}),
        None,
    ));
    let id = up["UploadId"].as_str().expect("upload id").to_string();
    let p1 = data_file(&d.join("p1"), 5 << 20, 11);
    let p2a = data_file(&d.join("p2a"), 5 << 20, 12);
    let p2 = data_file(&d.join("p2"), 6 << 20, 13);
    let p3 = data_file(&d.join("p3"), 1234, 14);
    let mut etags = Vec::new();
    for (n, f) in [(1, &p1), (2, &p2a), (2, &p2), (3, &p3)] {
        let r = ok(cl.boto(
            "UploadPart",
            json!({"Bucket": "media", "Key": "manual", "UploadId": id, "PartNumber": n}),
            Some(f),
        ));
        etags.push((n, r["ETag"].as_str().expect("etag").to_string()));
    }
    let parts = ok(cl.boto("ListParts", json!({"Bucket": "media", "Key": "manual", "UploadId": id}), None));
    let listed: Vec<i64> =
        parts["Parts"].as_array().expect("parts").iter().map(|p| p["PartNumber"].as_i64().unwrap_or(0)).collect();
    assert_eq!(listed, [1, 2, 3]);
    assert_eq!(parts["Parts"][1]["Size"], 6 << 20, "part 2 was replaced");
    let uploads = ok(cl.boto("ListMultipartUploads", json!({"Bucket": "media"}), None));
    assert_eq!(uploads["Uploads"].as_array().map(Vec::len), Some(1));
    let complete = json!({"Parts": [
        {"PartNumber": 1, "ETag": etags[0].1}, {"PartNumber": 2, "ETag": etags[2].1}, {"PartNumber": 3, "ETag": etags[3].1}]});
    ok(cl.boto(
        "CompleteMultipartUpload",
        json!({"Bucket": "media", "Key": "manual", "UploadId": id, "MultipartUpload": complete}),
        None,
    ));
    ok(cl.boto("GetObject", json!({"Bucket": "media", "Key": "manual"}), Some(&back)));
    let mut expect = std::fs::read(&p1).expect("p1");
    expect.extend(std::fs::read(&p2).expect("p2"));
    expect.extend(std::fs::read(&p3).expect("p3"));
    assert_eq!(std::fs::read(&back).expect("back"), expect);
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "media", "Key": "manual"}), None));
    assert_eq!((head["ContentType"].as_str(), head["Metadata"]["k"].as_str()), (Some("video/x-test"), Some("v")));
    // A range across the part boundary, and a single part by number.
    let out = d.join("r");
    ok(cl.boto("GetObject", json!({"Bucket": "media", "Key": "manual", "Range": "bytes=5242000-5243000"}), Some(&out)));
    assert_eq!(std::fs::read(&out).expect("r"), &expect[5_242_000..5_243_001]);
    ok(cl.boto("GetObject", json!({"Bucket": "media", "Key": "manual", "PartNumber": 3}), Some(&out)));
    assert_eq!(std::fs::read(&out).expect("r"), std::fs::read(&p3).expect("p3"));

    // Abort leaves nothing behind.
    let up = ok(cl.boto("CreateMultipartUpload", json!({"Bucket": "media", "Key": "aborted"}), None));
    let id2 = up["UploadId"].as_str().expect("id").to_string();
    ok(cl.boto(
        "UploadPart",
        json!({"Bucket": "media", "Key": "aborted", "UploadId": id2, "PartNumber": 1}),
        Some(&p1),
    ));
    ok(cl.boto("AbortMultipartUpload", json!({"Bucket": "media", "Key": "aborted", "UploadId": id2}), None));
    let uploads = ok(cl.boto("ListMultipartUploads", json!({"Bucket": "media"}), None));
    assert!(uploads.get("Uploads").is_none_or(|u| u.as_array().is_none_or(Vec::is_empty)), "{uploads}");
    cl.boto_error("HeadObject", json!({"Bucket": "media", "Key": "aborted"}));
}

fn boto_listing(db: Db) {
    let c = Cluster::standard("boto-listing", db);
    let cl = Client::from(&c.gw);
    ok(cl.boto("CreateBucket", json!({"Bucket": "tree"}), None));
    let keys = ["a/1", "a/2", "a/b/3", "b", "c/d/e", "z", "a+b c", "é/x"];
    for k in keys {
        ok(cl.boto("PutObject", json!({"Bucket": "tree", "Key": k, "Body": k}), None));
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let all = ok(cl.boto("ListObjectsV2", json!({"Bucket": "tree"}), None));
    let listed: Vec<&str> =
        all["Contents"].as_array().expect("contents").iter().filter_map(|o| o["Key"].as_str()).collect();
    assert_eq!(listed, sorted, "byte order, and keys with + and space survive url encoding");

    let top = ok(cl.boto("ListObjectsV2", json!({"Bucket": "tree", "Delimiter": "/"}), None));
    let prefixes: Vec<&str> =
        top["CommonPrefixes"].as_array().expect("prefixes").iter().filter_map(|p| p["Prefix"].as_str()).collect();
    let files: Vec<&str> =
        top["Contents"].as_array().expect("contents").iter().filter_map(|o| o["Key"].as_str()).collect();
    assert_eq!(prefixes, ["a/", "c/", "é/"]);
    assert_eq!(files, ["a+b c", "b", "z"]);
    let under_a = ok(cl.boto("ListObjectsV2", json!({"Bucket": "tree", "Prefix": "a/", "Delimiter": "/"}), None));
    assert_eq!(under_a["CommonPrefixes"][0]["Prefix"], "a/b/");
    assert_eq!(under_a["KeyCount"], 3);

    // Pagination: two at a time, delimiter on, continuation tokens to the end.
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let mut p = json!({"Bucket": "tree", "Delimiter": "/", "MaxKeys": 2});
        if let Some(t) = &token {
            p["ContinuationToken"] = json!(t);
        }
        let page = ok(cl.boto("ListObjectsV2", p, None));
        for o in page["Contents"].as_array().into_iter().flatten() {
            seen.push(o["Key"].as_str().unwrap_or_default().to_string());
        }
        for cp in page["CommonPrefixes"].as_array().into_iter().flatten() {
            seen.push(cp["Prefix"].as_str().unwrap_or_default().to_string());
        }
        if page["IsTruncated"] != json!(true) {
            token = None;
            break;
        }
        token = page["NextContinuationToken"].as_str().map(String::from);
    }
    assert!(token.is_none(), "pagination never ended");
    seen.sort();
    let mut expect = vec!["a+b c", "a/", "b", "c/", "z", "é/"];
    expect.sort();
    assert_eq!(seen, expect);

    let after = ok(cl.boto("ListObjectsV2", json!({"Bucket": "tree", "StartAfter": "b"}), None));
    assert_eq!(after["Contents"][0]["Key"], "c/d/e");
    let v1 = ok(cl.boto("ListObjects", json!({"Bucket": "tree", "Marker": "a/2", "MaxKeys": 2}), None));
    let v1keys: Vec<&str> =
        v1["Contents"].as_array().expect("contents").iter().filter_map(|o| o["Key"].as_str()).collect();
    assert_eq!(v1keys, ["a/b/3", "b"]);
    assert_eq!(v1["IsTruncated"], true);

    // Batch delete.
    let del = ok(cl.boto(
        "DeleteObjects",
        json!({"Bucket": "tree", "Delete": {"Objects": [{"Key": "a/1"}, {"Key": "z"}, {"Key": "never-existed"}]}}),
        None,
    ));
    assert_eq!(del["Deleted"].as_array().map(Vec::len), Some(3));
    let rest = ok(cl.boto("ListObjectsV2", json!({"Bucket": "tree"}), None));
    assert_eq!(rest["KeyCount"], keys.len() - 2);
    let buckets = ok(cl.boto("ListBuckets", json!({}), None));
    assert_eq!(buckets["Buckets"][0]["Name"], "tree");
}

on_both_databases!(boto_objects, boto_multipart, boto_listing);

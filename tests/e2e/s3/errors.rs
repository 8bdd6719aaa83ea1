//! Bad input gets the right S3 error, never a panic or a partial object.

use std::time::Duration;

use serde_json::json;

use e2e::{Client, Cluster, Db, data_file, same_file};

use crate::on_both_databases;

/// A SigV4-signed request made by curl (`--aws-sigv4`), for bodies clients refuse
/// to send. Returns (HTTP status, body).
fn curl_signed(cl: &Client, method: &str, path: &str, body: &std::path::Path) -> (u16, String) {
    let data = format!("@{}", body.display());
    curl_raw(cl, &["-X", method, "-H", "Content-Type: application/xml", "--data-binary", &data], path)
}

fn bad_input(db: Db) {
    let c = Cluster::standard("errors", db);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    cl.aws(&["s3", "mb", "s3://errs"]).ok();
    let small = data_file(&d.join("small"), 10, 1);
    cl.aws(&["s3", "cp", "--no-progress", &small.display().to_string(), "s3://errs/small"]).ok();

    // Credentials.
    let wrong = Client { secret_key: "not-the-right-secret-at-all".into(), ..cl.clone() };
    wrong.aws(&["s3", "ls", "s3://errs"]).fails_with("SignatureDoesNotMatch");
    let unknown = Client { access_key: "SKYNOSUCHKEY00000000".into(), ..cl.clone() };
    unknown.aws(&["s3", "ls", "s3://errs"]).fails_with("InvalidAccessKeyId");

    // An expired presigned URL.
    let url = cl.aws(&["s3", "presign", "s3://errs/small", "--expires-in", "1"]).ok().stdout;
    std::thread::sleep(Duration::from_secs(2));
    let out = cl.curl().args(["-s", "-w", "\n%{http_code}"]).arg(url.trim()).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("403"), "expired URL answered: {text}");
    assert!(text.contains("AccessDenied") && text.to_lowercase().contains("expired"), "{text}");
    // A tampered presigned URL.
    let url = cl
        .aws(&["s3", "presign", "s3://errs/small", "--expires-in", "300"])
        .ok()
        .stdout
        .trim()
        .replace("small", "smalx");
    let out = cl.curl().args(["-s", "-w", "\n%{http_code}"]).arg(&url).output().expect("curl");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SignatureDoesNotMatch"));

    // Missing things.
    cl.aws(&["s3api", "list-objects-v2", "--bucket", "no-such-bucket"]).fails_with("NoSuchBucket");
    let sink = d.join("sink").display().to_string();
    cl.aws(&["s3api", "get-object", "--bucket", "errs", "--key", "nope", &sink]).fails_with("NoSuchKey");
    cl.aws(&["s3api", "get-object", "--bucket", "no-such-bucket", "--key", "k", &sink]).fails_with("NoSuchBucket");

    // Ranges.
    cl.aws(&["s3api", "get-object", "--bucket", "errs", "--key", "small", "--range", "bytes=100-200", &sink])
        .fails_with("InvalidRange");

    // Bucket names.
    for bad in ["Bad_Bucket", "ab", "a..b", "-leading", "192.168.1.1"] {
        let (code, status) = cl.boto_error("CreateBucket", json!({"Bucket": bad}));
        assert_eq!((code.as_str(), status), ("InvalidBucketName", 400), "{bad}");
    }
    // Creating a bucket the caller already owns: 200, as S3 in us-east-1 answers.
    cl.aws(&["s3", "mb", "s3://errs"]).ok();
    cl.aws(&["s3", "rb", "s3://errs"]).fails_with("BucketNotEmpty");

    // XML: malformed, and oversized.
    let up = cl.boto("CreateMultipartUpload", json!({"Bucket": "errs", "Key": "mp"}), None);
    let id = up["ok"]["UploadId"].as_str().expect("upload id").to_string();
    let bad_xml = d.join("bad.xml");
    std::fs::write(&bad_xml, "<CompleteMultipartUpload><Part><PartNumber>1</Part>").expect("write");
    let (status, body) = curl_signed(&cl, "POST", &format!("/errs/mp?uploadId={id}"), &bad_xml);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("MalformedXML"), "{body}");
    let huge = d.join("huge.xml");
    let mut text = String::from("<CompleteMultipartUpload>");
    while text.len() < 25 << 20 {
        text.push_str("<Part><PartNumber>1</PartNumber><ETag>\"0123456789abcdef0123456789abcdef\"</ETag></Part>");
    }
    text.push_str("</CompleteMultipartUpload>");
    std::fs::write(&huge, text).expect("write");
    let (status, body) = curl_signed(&cl, "POST", &format!("/errs/mp?uploadId={id}"), &huge);
    assert!((400..500).contains(&status), "an oversized body is refused, got {status}: {body}");
    let keys: Vec<serde_json::Value> = (0..1001).map(|i| json!({"Key": format!("k{i}")})).collect();
    let (code, _) = cl.boto_error("DeleteObjects", json!({"Bucket": "errs", "Delete": {"Objects": keys}}));
    assert_eq!(code, "MalformedXML");

    // Multipart: a part too small, a wrong ETag, parts out of order, unknown upload.
    let one_mib = data_file(&d.join("1m"), 1 << 20, 2);
    let mut etags = Vec::new();
    for n in 1..=2 {
        let r = cl.boto(
            "UploadPart",
            json!({"Bucket": "errs", "Key": "mp", "UploadId": id, "PartNumber": n}),
            Some(&one_mib),
        );
        etags.push(r["ok"]["ETag"].as_str().expect("etag").to_string());
    }
    let complete = |parts: serde_json::Value| json!({"Bucket": "errs", "Key": "mp", "UploadId": id, "MultipartUpload": {"Parts": parts}});
    let (code, _) = cl.boto_error(
        "CompleteMultipartUpload",
        complete(json!([{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}])),
    );
    assert_eq!(code, "EntityTooSmall");
    let (code, _) = cl.boto_error(
        "CompleteMultipartUpload",
        complete(json!([{"PartNumber": 1, "ETag": "\"00000000000000000000000000000000\""}])),
    );
    assert_eq!(code, "InvalidPart");
    let (code, _) = cl.boto_error(
        "CompleteMultipartUpload",
        complete(json!([{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}])),
    );
    assert_eq!(code, "InvalidPartOrder");
    let (code, _) = cl.boto_error("CompleteMultipartUpload", complete(json!([{"PartNumber": 7, "ETag": etags[0]}])));
    assert_eq!(code, "InvalidPart");
    let (code, status) = cl.boto_error(
        "UploadPart",
        json!({"Bucket": "errs", "Key": "mp", "UploadId": "0123", "PartNumber": 1, "Body": "x"}),
    );
    assert_eq!((code.as_str(), status), ("NoSuchUpload", 404));
    let (code, _) = cl.boto_error(
        "UploadPart",
        json!({"Bucket": "errs", "Key": "mp", "UploadId": id, "PartNumber": 10001, "Body": "x"}),
    );
    assert_eq!(code, "InvalidArgument");
    // Nothing half-made is visible after all that.
    cl.boto_error("HeadObject", json!({"Bucket": "errs", "Key": "mp"}));
    // And a single part completes fine.
    let ok = cl.boto("CompleteMultipartUpload", complete(json!([{"PartNumber": 1, "ETag": etags[0]}])), None);
    assert!(ok.get("ok").is_some(), "{ok}");
    assert!(c.gw.log_text().contains("INFO"), "the gateway logs");
    assert!(!c.gw.log_text().contains(e2e::SECRET_KEY), "secrets never reach the log");
}

on_both_databases!(bad_input);

/// Virtual-host-style addressing: `bucket.<domain>` in the Host header, signed by curl.
fn virtual_host_style(db: Db) {
    let c = Cluster::start("vhost", db, "k = 2\nn = 3", "domains = [\"s3.skyshard.test\"]");
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://vbucket"]).ok();
    let port = cl.endpoint.rsplit(':').next().expect("port").to_string();
    let host = format!("vbucket.s3.skyshard.test:{port}");
    let f = data_file(&c.dir.join("v.bin"), 70_000, 4);
    let curl = |extra: &[&str], path: &str| {
        cl.curl()
            .args(["-s", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{}:{}", cl.access_key, cl.secret_key)])
            .args(["--resolve", &format!("{host}:127.0.0.1")])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(extra)
            .arg(format!("https://{host}{path}"))
            .output()
            .expect("curl")
    };
    let put = curl(&["-T", &f.display().to_string()], "/dir/v.bin");
    assert!(String::from_utf8_lossy(&put.stdout).ends_with("200"), "{}", String::from_utf8_lossy(&put.stdout));
    // Path style sees the object the virtual host wrote, and the other way round.
    let back = c.dir.join("v.back");
    cl.aws(&["s3", "cp", "--no-progress", "s3://vbucket/dir/v.bin", &back.display().to_string()]).ok();
    assert!(same_file(&f, &back));
    let out = c.dir.join("v.curl");
    let get = curl(&["-o", &out.display().to_string()], "/dir/v.bin");
    assert!(String::from_utf8_lossy(&get.stdout).ends_with("200"));
    assert!(same_file(&f, &out));
    let list = curl(&[], "/?list-type=2");
    assert!(String::from_utf8_lossy(&list.stdout).contains("<Key>dir/v.bin</Key>"));
}

on_both_databases!(virtual_host_style);

/// Answers as S3 gives them: an object stored without a Content-Type is served as
/// `binary/octet-stream`; an empty `continuation-token=` is no token; creating a bucket
/// the caller owns answers 200 (and another tenant's name still 409).
#[test]
fn answers_as_s3_gives_them() {
    let c = Cluster::standard("as-s3", Db::Sqlite);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://plain"]).ok();
    assert!(cl.boto("CreateBucket", json!({"Bucket": "plain"}), None).get("ok").is_some(), "owned: 200");
    // curl -T sends no Content-Type.
    let f = data_file(&c.dir.join("f"), 1000, 9);
    let out = cl
        .curl()
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{}:{}", cl.access_key, cl.secret_key)])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T"])
        .arg(&f)
        .arg(format!("{}/plain/untyped", cl.endpoint))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let head = cl.boto("HeadObject", json!({"Bucket": "plain", "Key": "untyped"}), None);
    assert_eq!(head["ok"]["ContentType"], "binary/octet-stream", "{head}");
    let back = c.dir.join("back");
    let get = cl.boto("GetObject", json!({"Bucket": "plain", "Key": "untyped"}), Some(&back));
    assert_eq!(get["ok"]["ContentType"], "binary/octet-stream", "{get}");
    let listed = cl.boto("ListObjectsV2", json!({"Bucket": "plain", "ContinuationToken": ""}), None);
    assert_eq!(listed["ok"]["Contents"][0]["Key"], "untyped", "{listed}");

    // A body that is not the x-amz-content-sha256 it signed.
    let other = "0000000000000000000000000000000000000000000000000000000000000000";
    let (status, text) = curl_raw(&cl, &["-H", &format!("x-amz-content-sha256: {other}"), "-T", &path(&f)], "/plain/x");
    assert!(status == 400 && text.contains("<Code>XAmzContentSHA256Mismatch</Code>"), "{status} {text}");
    // Every error names its request and says what went wrong.
    let (status, text) = curl_raw(&cl, &[], "/plain/missing");
    assert_eq!(status, 404);
    for part in ["<Code>NoSuchKey</Code>", "<Message>The specified key does not exist.</Message>", "<RequestId>"] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
    // An empty Content-MD5 cannot match (curl sends an empty header for `Name;`;
    // a presigned URL, which signs no header but Host, lets it through).
    let url = cl.boto("presign", json!({"Method": "put_object", "Params": {"Bucket": "plain", "Key": "md5"}}), None);
    let url = url["ok"].as_str().expect("url").to_string();
    let out = cl.curl().args(["-s", "-H", "Content-MD5;", "-T", &path(&f), &url]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<Code>InvalidDigest</Code>"), "{text}");
    // 304 carries the ETag and Last-Modified.
    let etag = head["ok"]["ETag"].as_str().expect("etag").to_string();
    let (status, text) = curl_raw(&cl, &["-D", "-", "-H", &format!("If-None-Match: {etag}")], "/plain/untyped");
    let lower = text.to_ascii_lowercase();
    assert!(status == 304 && lower.contains(&format!("etag: {etag}")) && lower.contains("last-modified:"), "{text}");
    // A Range S3 ignores (two ranges, backwards) serves the whole object when it
    // was not signed (a presigned URL, as video players use); past the end is 416.
    let url =
        cl.boto("presign", json!({"Method": "get_object", "Params": {"Bucket": "plain", "Key": "untyped"}}), None);
    let url = url["ok"].as_str().expect("url").to_string();
    for (range, want) in [("bytes=0-1,5-6", "200 1000"), ("bytes=9-2", "200 1000"), ("bytes=2-9", "206 8")] {
        let mut curl = cl.curl();
        curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"]);
        let out = curl.args(["-H", &format!("Range: {range}"), &url]).output().expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{range}");
    }
    let (status, _) = curl_raw(&cl, &["-o", "/dev/null", "-H", "Range: bytes=5000-"], "/plain/untyped");
    assert_eq!(status, 416);
    // A presigned URL with a negative lifetime: 403.
    let url = cl.boto(
        "presign",
        json!({"Method": "get_object", "Params": {"Bucket": "plain", "Key": "untyped"}, "ExpiresIn": 60}),
        None,
    );
    let url = url["ok"].as_str().expect("url").replace("X-Amz-Expires=60", "X-Amz-Expires=-60");
    let out = cl.curl().args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]).output().expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    // Bucket names S3 refuses.
    for name in ["foo.-bar", "foo-.bar", "192.168.1.2"] {
        let (code, status) = cl.boto_error("CreateBucket", json!({"Bucket": name}));
        assert_eq!((code.as_str(), status), ("InvalidBucketName", 400), "{name}");
    }
    // aws-chunked frames a request body; it is not the object's encoding.
    let zipped =
        cl.boto("PutObject", json!({"Bucket": "plain", "Key": "z", "Body": "zz", "ContentEncoding": "gzip"}), None);
    assert!(zipped.get("ok").is_some(), "{zipped}");
    let head = cl.boto("HeadObject", json!({"Bucket": "plain", "Key": "z"}), None);
    assert_eq!(head["ok"]["ContentEncoding"], "gzip", "{head}");
    let head = cl.boto("HeadObject", json!({"Bucket": "plain", "Key": "untyped"}), None);
    assert!(head["ok"].get("ContentEncoding").is_none(), "{head}");

    // Listings: owners, versions of an unversioned bucket, pages of buckets.
    let listed = cl.boto("ListObjectsV2", json!({"Bucket": "plain", "FetchOwner": true}), None);
    assert_eq!(listed["ok"]["Contents"][0]["Owner"]["ID"], "default", "{listed}");
    let versions = cl.boto("ListObjectVersions", json!({"Bucket": "plain", "MaxKeys": 1}), None);
    let v = &versions["ok"];
    assert_eq!(
        (v["Versions"][0]["VersionId"].clone(), v["Versions"][0]["IsLatest"].clone()),
        (json!("null"), json!(true)),
        "{v}"
    );
    assert_eq!((v["IsTruncated"].clone(), v["NextKeyMarker"].clone()), (json!(true), json!("untyped")), "{v}");
    let rest = cl.boto("ListObjectVersions", json!({"Bucket": "plain", "KeyMarker": "untyped"}), None);
    assert_eq!(rest["ok"]["Versions"][0]["Key"], "z", "{rest}");
    cl.aws(&["s3", "mb", "s3://second"]).ok();
    let page = cl.boto("ListBuckets", json!({"MaxBuckets": 1}), None);
    assert_eq!(page["ok"]["Buckets"].as_array().map(Vec::len), Some(1), "{page}");
    let token = page["ok"]["ContinuationToken"].as_str().expect("a token").to_string();
    let next = cl.boto("ListBuckets", json!({"MaxBuckets": 1, "ContinuationToken": token}), None);
    assert_eq!(next["ok"]["Buckets"][0]["Name"], "second", "{next}");
    let v1 = cl.boto("ListObjects", json!({"Bucket": "plain", "Prefix": "un ty", "EncodingType": "url"}), None);
    assert_eq!(v1["ok"]["Prefix"], "un ty", "version 1 gives its prefix as sent: {v1}");
}

/// Browser form uploads: a file of several MiB, a key outside the policy (403, as
/// S3), a file over the policy's length range, a key naming `${filename}`.
#[test]
fn form_uploads() {
    let c = Cluster::standard("post-object", Db::Sqlite);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://forms"]).ok();
    let r = cl.script("post_object.py", &["forms"]);
    assert_eq!(r["big"]["status"], 204, "{r}");
    assert_eq!(r["big_size"], 3 << 20, "{r}");
    assert_eq!(
        (r["outside"]["status"].clone(), r["outside"]["code"].clone()),
        (json!(403), json!("AccessDenied")),
        "{r}"
    );
    assert_eq!(r["too_large"]["code"], "EntityTooLarge", "{r}");
    assert_eq!(
        (r["named"]["status"].clone(), r["named_size"].clone()),
        (json!(204), json!(1000)),
        "${{filename}}: {r}"
    );
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A SigV4-signed request by curl with extra `args` (a GET unless they say `-X`,
/// `-T` or `--data-binary`); (status, what curl printed: the headers too with
/// `-D -`, and the body).
fn curl_raw(cl: &Client, args: &[&str], path: &str) -> (u16, String) {
    let out = cl
        .curl()
        .args(["-s", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{}:{}", cl.access_key, cl.secret_key)])
        .args(if args.iter().any(|a| a.starts_with("x-amz-content-sha256")) {
            vec![]
        } else {
            vec!["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
        })
        .args(args)
        .arg(format!("{}{path}", cl.endpoint))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

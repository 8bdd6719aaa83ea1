//! Hostile and careless clients: connections that send nothing or trickle, one
//! tenant's slow uploads against another's reads, connection and request limits,
//! protections asked for and not kept, bodies changed in transit, private files.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use e2e::{Client, Cluster, Db, Gateway, TempDir, assert_no_leak, data_file, env, metrics, same_file, walk};

/// Runs a drill of `tests/py/hostile.py`; its JSON report.
fn drill(args: &[&str]) -> serde_json::Value {
    let out = Command::new(&env().python)
        .arg(env().root.join("tests/py/hostile.py"))
        .args(args)
        .output()
        .expect("run hostile.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hostile.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("hostile.py printed {stdout:?}: {e}"))
}

fn ca(cl: &Client) -> String {
    cl.ca.as_ref().expect("TLS").display().to_string()
}

#[test]
fn idle_and_trickling_connections_are_closed_while_clients_are_served() {
    let limits = "[limits]\nheader_timeout = \"3s\"\nmax_connections = 5000\nmax_connections_per_client = 5000\n";
    let c = Cluster::start("slowloris", Db::Sqlite, "k = 2\nn = 3", limits);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://calm"]).ok();
    let f = data_file(&c.dir.join("f"), 64 << 10, 3);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://calm/f"]).ok();

    let r = drill(&["slowloris", &cl.endpoint, &ca(&cl), &cl.access_key, &cl.secret_key, "calm", "f", "3000", "15"]);
    println!("slowloris drill: {r}");
    assert_eq!(r["opened"], 3000, "{r}");
    assert_eq!(r["still_open"], 0, "every hostile connection is closed: {r}");
    let latest = r["latest_close"].as_f64().expect("closes");
    assert!(latest < 3.0 + 4.0, "closed within the head timeout (and the linger after an answer): {r}");
    assert_eq!(r["gets_failed"], 0, "{r}");
    assert!(r["gets_ok"].as_u64().unwrap_or(0) >= 10, "{r}");
    let m = metrics(&c.gw);
    let timed_out = m.get("skyshard_connections_closed_total{endpoint=\"s3\",reason=\"header_timeout\"}");
    assert!(timed_out.copied().unwrap_or(0.0) >= 1000.0, "{m:?}");
    println!("gateway peak RSS: {} KiB", c.gw.peak_rss() / 1024);
}

#[test]
fn one_tenants_slow_uploads_leave_the_others_served() {
    let limits = "[limits]\nbody_rate_window = \"10s\"\n";
    let c = Cluster::start("fair", Db::Sqlite, "k = 2\nn = 3", limits);
    let gw = &c.gw;
    let house = Client::from(gw);
    house.aws(&["s3", "mb", "s3://house"]).ok();
    let f = data_file(&c.dir.join("f"), 256 << 10, 5);
    house.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://house/f"]).ok();
    let noisy = gw.tenant_client("noisy", "NOISYKEY01");
    noisy.aws(&["s3", "mb", "s3://noisy"]).ok();

    let r = drill(&[
        "slow_uploads",
        &house.endpoint,
        &ca(&house),
        &noisy.access_key,
        &noisy.secret_key,
        "noisy",
        "50",
        "15",
        &house.access_key,
        &house.secret_key,
        "house",
        "f",
    ]);
    println!("slow-upload drill: {r}");
    assert_eq!(r["gets_failed"], 0, "{r}");
    let p99 = r["get_p99"].as_f64().expect("GETs");
    assert!(p99 < 1.0, "the other tenant's GET p99 stays under 1 s: {r}");
    // The trickles end as S3 ends them: RequestTimeout, after the rate window.
    assert!(r["uploads"]["400 RequestTimeout"].as_u64().unwrap_or(0) >= 40, "{r}");
    let m = metrics(gw);
    assert!(m.contains_key("skyshard_connections_closed_total{endpoint=\"s3\",reason=\"body_too_slow\"}"), "{m:?}");
}

#[test]
fn connection_and_request_limits_answer_slow_down() {
    let limits = "[limits]\nmax_connections_per_client = 4\nrequests_per_second = 1\nrequest_burst = 2\n";
    let c = Cluster::start("limits", Db::Sqlite, "k = 2\nn = 3", limits);
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://lim"]).ok();

    // Four connections held open by one address: the fifth is answered 503 SlowDown.
    let addr = cl.endpoint.trim_start_matches("https://").to_string();
    let held: Vec<_> = (0..4).map(|_| std::net::TcpStream::connect(&addr).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let out = cl.curl().args(["-s", "-D", "-", "-o", "-"]).arg(format!("{}/lim", cl.endpoint)).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 503") && text.contains("<Code>SlowDown</Code>"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 1"), "{text}");
    drop(held);

    // Over its request rate a key is answered 503 SlowDown with Retry-After.
    std::thread::sleep(Duration::from_secs(2));
    let url = cl.boto("presign", json!({"Method": "list_objects_v2", "Params": {"Bucket": "lim"}}), None);
    let url = url["ok"].as_str().expect("url").to_string();
    let statuses: Vec<String> = (0..6)
        .map(|_| {
            let o = cl.curl().args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).arg(&url).output().expect("curl");
            String::from_utf8_lossy(&o.stdout).into_owned()
        })
        .collect();
    assert_eq!(&statuses[..2], ["200", "200"], "the burst passes: {statuses:?}");
    assert!(statuses.iter().any(|s| s == "503"), "{statuses:?}");
    let out = cl.curl().args(["-s", "-D", "-", "-o", "-"]).arg(&url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 503") && text.contains("SlowDown"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    let m = metrics(&c.gw);
    assert!(m.contains_key("skyshard_connections_refused_total{endpoint=\"s3\",reason=\"client_limit\"}"), "{m:?}");
}

#[test]
fn protections_are_kept_or_refused_never_dropped() {
    let c = Cluster::start("protect", Db::Sqlite, "k = 2\nn = 3", "");
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://guarded"]).ok();
    let f = data_file(&c.dir.join("f"), 100_000, 9);
    let put = |extra: serde_json::Value| {
        let mut p = json!({"Bucket": "guarded", "Key": "o"});
        p.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        cl.boto("PutObject", p, Some(&f))
    };
    let refused = |extra: serde_json::Value| -> (String, u64) {
        let r = put(extra.clone());
        let e = r.get("error").unwrap_or_else(|| panic!("accepted {extra}: {r}"));
        (e["code"].as_str().unwrap_or_default().into(), e["status"].as_u64().unwrap_or(0))
    };
    let key = "0123456789abcdef0123456789abcdef";
    let sse_c = json!({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key});
    assert_eq!(refused(json!({"ServerSideEncryption": "aws:kms"})), ("NotImplemented".into(), 501));
    let lock = json!({"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": "2030-01-01T00:00:00Z"});
    assert_eq!(refused(lock), ("InvalidRequest".into(), 400));
    assert_eq!(refused(json!({"ObjectLockLegalHoldStatus": "ON"})), ("InvalidRequest".into(), 400));
    assert_eq!(refused(json!({"ACL": "public-read"})), ("AccessControlListNotSupported".into(), 400));
    let (code, status) = cl.boto_error(
        "CreateMultipartUpload",
        json!({"Bucket": "guarded", "Key": "m", "SSEKMSKeyId": "alias/k", "ServerSideEncryption": "aws:kms"}),
    );
    assert_eq!((code.as_str(), status), ("NotImplemented", 501));
    cl.aws(&["s3", "ls", "s3://guarded/o"]).fails_with("");
    // Object lock is kept where the bucket has it (s3/lock.rs); such a bucket stays
    // versioned.
    assert!(
        cl.boto("CreateBucket", json!({"Bucket": "locked", "ObjectLockEnabledForBucket": true}), None)
            .get("ok")
            .is_some()
    );
    let suspend = json!({"Bucket": "locked", "VersioningConfiguration": {"Status": "Suspended"}});
    assert_eq!(cl.boto_error("PutBucketVersioning", suspend), ("InvalidBucketState".into(), 409));
    // Tags are kept.
    assert!(put(json!({"Tagging": "class=secret"})).get("ok").is_some());
    let tags = cl.boto("GetObjectTagging", json!({"Bucket": "guarded", "Key": "o"}), None);
    assert_eq!(tags["ok"]["TagSet"][0]["Value"], "secret", "{tags}");

    // SSE-S3 is what every object has: accepted, and said.
    let ok = put(json!({"ServerSideEncryption": "AES256"}));
    assert_eq!(ok["ok"]["ServerSideEncryption"], "AES256", "{ok}");
    let head = cl.boto("HeadObject", json!({"Bucket": "guarded", "Key": "o"}), None);
    assert_eq!(head["ok"]["ServerSideEncryption"], "AES256", "{head}");
    // A customer key presented for an object written without one is refused.
    let mut p = json!({"Bucket": "guarded", "Key": "o"});
    p.as_object_mut().expect("object").extend(sse_c.as_object().expect("object").clone());
    assert_eq!(cl.boto_error("GetObject", p), ("InvalidRequest".into(), 400));

    // DeleteObjects whose body does not match its Content-MD5 deletes nothing.
    let del = json!({"Bucket": "guarded", "Delete": {"Objects": [{"Key": "o"}]}, "_tamper_md5": true});
    assert_eq!(cl.boto_error("DeleteObjects", del), ("BadDigest".into(), 400));
    assert!(cl.boto("HeadObject", json!({"Bucket": "guarded", "Key": "o"}), None).get("ok").is_some());

    // Presigned requests valid for more than seven days are refused, as S3 does.
    let long = cl.boto(
        "presign",
        json!({"Method": "get_object", "Params": {"Bucket": "guarded", "Key": "o"}, "ExpiresIn": 700_000}),
        None,
    );
    let out = cl
        .curl()
        .args(["-s", "-o", "-", "-w", "%{http_code}"])
        .arg(long["ok"].as_str().expect("url"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("400") && text.contains("AuthorizationQueryParametersError"), "{text}");
}

/// Mode bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn files_holding_names_keys_and_fragments_are_private() {
    // The embedded default: SQLite and six edge stores in the data directory.
    let dir = TempDir::new("modes");
    let gw = Gateway::start(&dir.join("gw"), None, Db::Sqlite);
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://private"]).ok();
    let f = data_file(&dir.join("f"), 300_000, 4);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://private/f"]).ok();
    let data = dir.join("gw");
    assert_eq!(mode(&data), 0o700);
    for name in ["meta.db", "meta.db-wal", "meta.db-shm", "master.key", "admin.token"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let files = walk(&data);
    let fragments: Vec<_> = files.iter().filter(|p| p.display().to_string().contains("/objects/")).collect();
    assert!(fragments.len() >= 6, "{files:?}");
    // (gateway.log is the test's redirection of the gateway's standard error.)
    for p in files.into_iter().filter(|p| !p.ends_with("gateway.log")) {
        assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
    }
}

#[test]
fn a_secret_file_others_can_read_is_refused_at_start() {
    let dir = TempDir::new("public-key");
    std::fs::create_dir_all(dir.join("gw")).expect("mkdir");
    let key = dir.join("master.hex");
    std::fs::write(&key, "11".repeat(32)).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let config = format!("master_key_file = \"{}\"\n", key.display());
    let out = Command::new(&env().skyshard)
        .args(["serve", "--config"])
        .arg({
            let c = dir.join("c.toml");
            std::fs::write(&c, config).expect("config");
            c
        })
        .arg("--data")
        .arg(dir.join("gw"))
        .output()
        .expect("skyshard");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by every user") && err.contains("chmod 600"), "{err}");
}

#[test]
fn customer_keys_are_required_and_never_kept() {
    let c = Cluster::start("sse-c", Db::Sqlite, "k = 2\nn = 3\nsegment_size = \"1M\"", "");
    let cl = Client::from(&c.gw);
    cl.aws(&["s3", "mb", "s3://vault"]).ok();
    // 32 bytes, as aws-cli and boto3 take a raw key (they send it base64-encoded).
    let key = "skyshard-e2e-customer-key-0001!!";
    let other = "skyshard-e2e-customer-key-0002!!";
    let b64 = "c2t5c2hhcmQtZTJlLWN1c3RvbWVyLWtleS0wMDAxISE=";
    let big = data_file(&c.dir.join("big"), 20 << 20, 21);
    let (bp, back) = (big.display().to_string(), c.dir.join("big.back").display().to_string());
    // aws-cli: multipart (20 MiB over its 8 MiB threshold) up, and down again.
    cl.aws(&["s3", "cp", "--no-progress", "--sse-c", "AES256", "--sse-c-key", key, &bp, "s3://vault/big"]).ok();
    cl.aws(&["s3", "cp", "--no-progress", "--sse-c", "AES256", "--sse-c-key", key, "s3://vault/big", &back]).ok();
    assert!(same_file(&big, Path::new(&back)));
    // Without the key, or with another: refused, never the plaintext.
    cl.aws(&["s3", "cp", "--no-progress", "s3://vault/big", &back]).fails_with("400");
    cl.aws(&["s3", "cp", "--no-progress", "--sse-c", "AES256", "--sse-c-key", other, "s3://vault/big", &back])
        .fails_with("403");

    // boto3: a single PUT, ranges, HEAD; the responses name the key by its MD5.
    let small = data_file(&c.dir.join("small"), 3 << 20, 22);
    let with = |extra: serde_json::Value, k: &str| {
        let mut p = json!({"Bucket": "vault", "Key": "small", "SSECustomerAlgorithm": "AES256", "SSECustomerKey": k});
        p.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        p
    };
    let put = cl.boto("PutObject", with(json!({}), key), Some(&small));
    assert_eq!(put["ok"]["SSECustomerAlgorithm"], "AES256", "{put}");
    assert!(put["ok"].get("ServerSideEncryption").is_none(), "{put}");
    let range = cl.boto("GetObject", with(json!({"Range": "bytes=1048570-2097160"}), key), Some(&c.dir.join("r")));
    assert_eq!(range["ok"]["BodyLength"], 2097160 - 1048570 + 1, "{range}");
    let got = std::fs::read(c.dir.join("r")).expect("range");
    assert_eq!(got, std::fs::read(&small).expect("small")[1048570..=2097160]);
    let head = cl.boto("HeadObject", with(json!({}), key), None);
    assert!(head["ok"]["SSECustomerKeyMD5"].as_str().is_some_and(|m| !m.is_empty()), "{head}");
    assert_eq!(cl.boto_error("HeadObject", json!({"Bucket": "vault", "Key": "small"})).1, 400);
    assert_eq!(cl.boto_error("GetObject", with(json!({}), other)), ("AccessDenied".into(), 403));
    assert_eq!(cl.boto_error("GetObject", json!({"Bucket": "vault", "Key": "small"})).1, 400);
    // A part of an upload begun with a key must carry the same key.
    let up = cl.boto("CreateMultipartUpload", with(json!({"Key": "mp"}), key), None);
    let id = up["ok"]["UploadId"].as_str().expect("upload id").to_string();
    let part = json!({"Bucket": "vault", "Key": "mp", "UploadId": id, "PartNumber": 1});
    let r = cl.boto("UploadPart", part.clone(), Some(&small));
    assert_eq!(r["error"]["status"], 400, "{r}");

    // The key is in no file and no log: not in the metadata, not at the locations.
    let gw_dir = c.dir.join("gw");
    let mut dirs: Vec<&Path> = vec![gw_dir.as_path()];
    dirs.extend(c.locations.iter().map(|l| l.dir.as_path()));
    assert_no_leak(&dirs, &[key, b64]);
}

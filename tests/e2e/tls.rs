//! TLS on both legs: clients must trust the gateway's CA; a location whose
//! certificate does not verify is refused, reported, and sent nothing.

use std::time::Duration;

use serde_json::json;

use e2e::{Client, Cluster, Db, Gateway, Pki, Rclone, TempDir, data_file, eventually, rclone_location, same_file};

#[test]
fn clients_must_trust_the_gateways_ca() {
    let c = Cluster::start("trust", Db::Sqlite, "k = 2\nn = 3", "");
    let cl = Client::from(&c.gw);
    assert!(cl.endpoint.starts_with("https://"), "{}", cl.endpoint);
    let ca = cl.ca.clone().expect("the banner names the CA to trust");
    assert!(ca.ends_with("tls/ca.pem"), "{}", ca.display());

    // aws-cli with --ca-bundle, as the banner says.
    let untrusting = Client { ca: None, ..cl.clone() };
    untrusting.aws(&["--ca-bundle", &ca.display().to_string(), "s3", "mb", "s3://trusted"]).ok();
    // Without it: refused by the client, for aws-cli, boto3 and curl alike.
    let out = untrusting.aws(&["s3", "ls"]);
    assert!(!out.status.success() && out.stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{}", out.stderr);
    let r = untrusting.boto("ListBuckets", json!({}), None);
    assert!(r.to_string().contains("CERTIFICATE_VERIFY_FAILED"), "{r}");
    let curl = untrusting.curl().args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).arg(&cl.endpoint).output();
    assert_eq!(String::from_utf8_lossy(&curl.expect("curl").stdout), "000");
    // Plain HTTP to the TLS port gets no S3 answer either.
    let plain = cl.endpoint.replace("https:", "http:");
    let out = cl.curl().args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).arg(&plain).output().expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");

    // boto3 trusting the CA, with its aws-chunked uploads over HTTPS.
    let f = data_file(&c.dir.join("f"), 3_000_000, 8);
    let put = cl.boto("PutObject", json!({"Bucket": "trusted", "Key": "f"}), Some(&f));
    assert!(put.get("ok").is_some(), "{put}\n{}", c.gw.log_text());
    let back = c.dir.join("f.back");
    assert!(cl.boto("GetObject", json!({"Bucket": "trusted", "Key": "f"}), Some(&back)).get("ok").is_some());
    assert!(same_file(&f, &back));
}

#[test]
fn plain_http_only_when_configured() {
    let dir = TempDir::new("plain");
    let r = Rclone::start(dir.join("loc"), "frags", 0);
    let config = format!("[tls]\nplain_http = true\n{}[policies.default]\nk = 1\nn = 1\n", rclone_location("rc", &r));
    let gw = Gateway::start(&dir.join("gw"), Some(&config), Db::Sqlite);
    assert!(gw.endpoint.starts_with("http://") && gw.ca.is_none(), "{} {:?}", gw.endpoint, gw.ca);
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://plain"]).ok();
    assert!(gw.log_text().contains("plain HTTP"), "the operator is warned");
}

#[test]
fn a_location_whose_certificate_does_not_verify_gets_nothing() {
    let dir = TempDir::new("rogue");
    // Location 2 serves a certificate from a CA the gateway does not trust.
    let rogue = Pki::issue(&dir.join("rogue-pki"), &["127.0.0.1", "localhost"]);
    let locations: Vec<Rclone> = (0..6)
        .map(|i| {
            let (d, b) = (dir.join(&format!("loc{i}")), format!("frags-{i}"));
            if i == 2 { Rclone::start_with(d, &b, i, rogue.clone()) } else { Rclone::start(d, &b, i) }
        })
        .collect();
    let mut config = String::new();
    for (i, r) in locations.iter().enumerate() {
        config.push_str(&rclone_location(&format!("rc{i}"), r));
    }
    config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\n");
    let gw = Gateway::start(&dir.join("gw"), Some(&config), Db::Sqlite);
    // Reported at start-up.
    assert!(
        eventually(Duration::from_secs(10), || {
            let log = gw.log_text();
            log.lines().any(|l| l.contains("location check failed") && l.contains("rc2") && l.contains("TLS"))
        }),
        "the rogue location was not reported:\n{}",
        gw.log_text()
    );
    let cl = Client::from(&gw);
    cl.aws(&["s3", "mb", "s3://guarded"]).ok();
    let files: Vec<_> =
        (0..4).map(|i| data_file(&dir.join(&format!("f{i}")), 1_500_000 + i * 7, 30 + i as u64)).collect();
    for (i, f) in files.iter().enumerate() {
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://guarded/f{i}")]).ok();
    }
    // Five of six fragments landed (the write quorum); none at the rogue location.
    let stored = |r: &Rclone| r.files().into_iter().filter(|f| !f.to_string_lossy().contains(".rclone")).count();
    assert_eq!(stored(&locations[2]), 0, "a fragment reached the location with the wrong certificate");
    let total: usize = locations.iter().map(stored).sum();
    assert!(total >= 4 * 4, "{total} fragments stored");
    for (i, f) in files.iter().enumerate() {
        let back = dir.join(&format!("b{i}"));
        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://guarded/f{i}"), &back.display().to_string()]).ok();
        assert!(same_file(f, &back));
    }
    let log = gw.log_text();
    assert!(
        log.lines().any(|l| l.contains("rc2") && l.contains("TLS with the location failed")),
        "uploads to the rogue location were not reported as TLS failures:\n{log}"
    );
}

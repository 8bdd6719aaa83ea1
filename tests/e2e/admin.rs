//! The admin endpoint: Prometheus metrics that account for every byte an engine
//! touched, health, and the offload report — over the same TLS as the S3 endpoint.

use std::collections::HashMap;

use serde_json::json;

use e2e::{Client, Cluster, Db, data_file, http_get as get, same_file, samples};

#[test]
fn metrics_account_for_the_bytes_each_engine_moved() {
    let c = Cluster::start("metrics", Db::Sqlite, "k = 2\nn = 3\nsegment_size = \"1M\"", "");
    let cl = Client::from(&c.gw);
    let admin = &c.gw.admin;
    assert!(admin.starts_with("https://"), "{admin}");

    // Not trusting the CA: refused, as on the S3 endpoint.
    let untrusting = Client { ca: None, ..cl.clone() };
    let out = untrusting
        .curl()
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{admin}/metrics"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");

    let before = samples(&get(&cl, &format!("{admin}/metrics")));
    let size = 3_000_000usize;
    let f = data_file(&c.dir.join("f"), size, 21);
    cl.aws(&["s3", "mb", "s3://metered"]).ok();
    let put = cl.boto("PutObject", json!({"Bucket": "metered", "Key": "f", "ChecksumAlgorithm": "SHA256"}), Some(&f));
    assert!(put.get("ok").is_some(), "{put}");
    let back = c.dir.join("f.back");
    cl.aws(&["s3", "cp", "--no-progress", "s3://metered/f", &back.display().to_string()]).ok();
    assert!(same_file(&f, &back));

    let text = get(&cl, &format!("{admin}/metrics"));
    let after = samples(&text);
    let grew = |prefix: &str| -> f64 {
        let total =
            |m: &HashMap<String, f64>| m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum::<f64>();
        total(&after) - total(&before)
    };
    let size = size as f64;
    // Sealed on PUT and opened on GET; coded (k = 2: the input is the ciphertext).
    assert!(grew(r#"skyshard_offload_bytes_total{job="aead""#) >= 2.0 * size, "{text}");
    assert!(grew(r#"skyshard_offload_bytes_total{job="gf""#) >= size, "{text}");
    // The body came in over TLS; 3 fragments of half the object each went out.
    assert!(grew(r#"skyshard_offload_bytes_total{job="tls-recv""#) >= size, "{text}");
    assert!(grew(r#"skyshard_offload_bytes_total{job="tls-send""#) >= 2.5 * size, "{text}");
    assert!(grew(r#"skyshard_offload_bytes_total{job="hash",engine="md5"}"#) >= size, "{text}");
    assert!(grew(r#"skyshard_offload_bytes_total{job="hash",engine="sha256"}"#) >= size, "{text}");
    assert!(grew(r#"skyshard_offload_busy_seconds_total{job="tls-send""#) > 0.0, "{text}");
    assert!(grew(r#"skyshard_offload_busy_seconds_total{job="aead""#) > 0.0, "{text}");
    assert!(after.get("skyshard_process_cpu_seconds_total").is_some_and(|&s| s > 0.0), "{text}");
    assert!(after.get("skyshard_process_resident_memory_bytes").is_some_and(|&b| b > 1e6), "{text}");
    assert!(text.contains(r#"skyshard_offload_engine_selected{job="aead",engine="ring",pinned="false"} 1"#), "{text}");
    assert!(!text.contains(c.gw.secret_key.as_str()) && !text.contains("metered"), "no secrets, no names");

    // Per S3 operation: requests by status, latency, bytes.
    assert!(
        after.get(r#"skyshard_s3_requests_total{operation="PutObject",status="200"}"#).is_some_and(|&n| n >= 1.0),
        "{text}"
    );
    assert!(
        after.get(r#"skyshard_s3_requests_total{operation="GetObject",status="200"}"#).is_some_and(|&n| n >= 1.0),
        "{text}"
    );
    assert!(after.contains_key(r#"skyshard_s3_request_duration_seconds_count{operation="PutObject"}"#), "{text}");
    assert!(grew(r#"skyshard_s3_received_bytes_total{operation="PutObject"}"#) >= size, "{text}");
    assert!(grew(r#"skyshard_s3_sent_bytes_total{operation="GetObject"}"#) >= size, "{text}");
    // Every answer names its request, even a refused one.
    let head = cl.curl().args(["-s", "-o", "/dev/null", "-D", "-"]).arg(format!("{}/metered", cl.endpoint)).output();
    let head = String::from_utf8_lossy(&head.expect("curl").stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 403") && head.contains("x-amz-request-id: "), "{head}");

    let health: serde_json::Value = serde_json::from_str(&get(&cl, &format!("{admin}/health"))).expect("health JSON");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["locations"].as_array().map(Vec::len), Some(6), "{health}");

    let report: serde_json::Value = serde_json::from_str(&get(&cl, &format!("{admin}/v1/offload"))).expect("JSON");
    let tls = report["selection"]["choices"].as_array().and_then(|c| c.iter().find(|c| c["job"] == "tls")).cloned();
    let tls = tls.expect("a TLS choice");
    let ktls_rejected = tls["rejected"].as_array().is_some_and(|r| r.iter().any(|r| r["engine"] == "ktls"));
    assert!(tls["chosen"] == "ktls" || (tls["chosen"] == "rustls" && ktls_rejected), "{tls}");
    let usage = report["usage"].as_array().expect("usage");
    assert!(usage.iter().any(|u| u["job"] == "aead" && u["bytes"].as_f64() >= Some(2.0 * size)), "{report}");
}

#[test]
fn offload_status_names_the_engines_and_why_others_were_passed_over() {
    let out = std::process::Command::new(&e2e::env().skyshard)
        .args(["offload", "status", "--calibrate", "4M"])
        .output()
        .expect("skyshard offload status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let engine = |job: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(job).filter(|r| r.starts_with(' ')).map(str::trim))
            .unwrap_or_else(|| panic!("no {job} line:\n{text}"))
            .to_string()
    };
    assert!(engine("aead").starts_with("ring (auto)"), "{text}");
    let tls = engine("tls");
    let ktls_available =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").is_ok_and(|u| u.contains("tls"));
    if ktls_available {
        assert!(tls.starts_with("ktls (auto)"), "{text}");
    } else {
        assert!(tls.starts_with("rustls (auto)"), "{text}");
        let reason = text.lines().find(|l| l.contains("passed over ktls:")).unwrap_or_else(|| panic!("{text}"));
        assert!(reason.contains("tls"), "the reason names what is missing: {reason}");
    }
    // Calibrated through the meters: a positive ns/byte for the chosen engines.
    for job in ["aead", "gf", "crc32c", "tls-send", "tls-recv"] {
        let row = text
            .lines()
            .skip_while(|l| !l.starts_with("Calibration"))
            .find(|l| l.split_whitespace().next() == Some(job))
            .unwrap_or_else(|| panic!("no calibration of {job}:\n{text}"));
        let ns: f64 = row.split_whitespace().nth(2).and_then(|v| v.parse().ok()).expect("ns/byte");
        assert!(ns > 0.0, "{row}");
    }
}

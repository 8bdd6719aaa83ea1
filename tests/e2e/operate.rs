//! Operating a gateway through the admin API and `skyshard admin`: a location added
//! at run time, a location drained by recoding (with the CLI's progress bar) and
//! removed while every object still reads back; keys, policies and tenants; the
//! unhappy paths; and schemathesis against the live API with the committed OpenAPI
//! description.

use std::path::PathBuf;

use e2e::{Client, Cluster, Db, MARKER, Rclone, assert_no_leak, data_file, env, location_add_args, same_file};
use serde_json::json;

fn fragments_at(obj: &serde_json::Value, location: &str) -> usize {
    obj["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .flat_map(|p| p["fragments"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["location"] == location)
        .count()
}

fn drain_and_remove(db: Db) {
    let c = Cluster::standard("drain", db);
    let (gw, cl) = (&c.gw, Client::from(&c.gw));

    // A seventh location, added at run time through the CLI.
    let extra = Rclone::start(c.dir.join("loc6"), "frags-6", 6);
    let secret = c.dir.join("rc6.secret");
    std::fs::write(&secret, &extra.secret_key).expect("secret file");
    // Secrets in files must be private, as the CLI checks.
    gw.admin_cli(&[
        "locations",
        "add",
        "rc6",
        "--kind",
        "s3",
        "--endpoint",
        "https://127.0.0.1:1",
        "--bucket",
        "b",
        "--access-key-id",
        "x",
        "--secret-file",
        &secret.display().to_string(),
    ])
    .fails_with("chmod 600");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let mut add = vec!["locations", "add"];
    let args = location_add_args("rc6", &extra, &secret);
    add.extend(args.iter().map(String::as_str));
    let added = gw.admin_json(&add);
    assert_eq!((added["state"].as_str(), added["origin"].as_str()), (Some("active"), Some("api")), "{added}");
    assert!(added["definition"].get("secret").is_none(), "the secret is never shown: {added}");
    // The name is taken now.
    gw.admin_cli(&add).fails_with("409");

    // Objects: single-segment, multi-segment, and a multipart upload (aws-cli
    // splits files over 8 MiB).
    cl.aws(&["s3", "mb", "s3://ops"]).ok();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for (i, size) in [10_000usize, 3_000_000, 12_000_000].into_iter().enumerate() {
        let f = data_file(&c.dir.join(&format!("f{i}")), size, 40 + i as u64);
        let key = format!("dir/obj-{i}");
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://ops/{key}")]).ok();
        files.push((key, f));
    }
    let drained = "rc2";
    let before: usize = files.iter().map(|(k, _)| fragments_at(&gw.admin_json(&["object", "ops", k]), drained)).sum();
    assert!(before > 0, "some fragments live on {drained}");

    // Unhappy paths first: nothing changes.
    gw.admin_cli(&["locations", "remove", drained]).fails_with("drain it first");
    gw.admin_cli(&["locations", "drain", "nowhere"]).fails_with("404");
    let untrusted = e2e::Gateway::admin_cli_with_token(
        gw,
        "sst_AAAAAAAAAAAA_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        &["status"],
    );
    untrusted.fails_with("not valid");

    // The drain: the CLI follows the job with a progress bar and returns when done.
    let out = gw.admin_cli(&["locations", "drain", drained]).ok();
    assert!(out.stdout.contains("is drained"), "{}\n{}", out.stdout, out.stderr);
    let loc = gw.admin_json(&["locations", "show", drained]);
    assert_eq!((loc["state"].as_str(), loc["fragments"].as_i64()), (Some("drained"), Some(0)), "{loc}");
    let jobs = gw.admin_json(&["jobs", "list"]);
    let job = &jobs.as_array().expect("jobs")[0];
    assert_eq!((job["kind"].as_str(), job["state"].as_str()), (Some("drain"), Some("succeeded")), "{job}");
    assert_eq!(job["done"].as_i64(), Some(before as i64), "every fragment on {drained} was moved: {job}");
    for (k, _) in &files {
        let obj = gw.admin_json(&["object", "ops", k]);
        assert_eq!(fragments_at(&obj, drained), 0, "{obj}");
    }
    assert!(extra.files().iter().any(|p| p.is_file()), "fragments went to the added location");
    // Prometheus sees the same placement (this is the test's first scrape, so the count is fresh).
    let m = e2e::metrics(gw);
    let at = |l: &str| m.get(&format!(r#"skyshard_location_fragments{{location="{l}"}}"#)).copied();
    assert_eq!(at(drained), Some(0.0), "{m:?}");
    assert!(at("rc6").is_some_and(|n| n > 0.0), "{m:?}");
    assert!(
        c.locations[2].files().iter().all(|p| !p.is_file()),
        "the drained location was emptied: {:?}",
        c.locations[2].files()
    );
    assert_no_leak(&[&extra.dir], &[MARKER, "dir/obj-"]);

    // Removed, and its server gone: every object still reads back, new writes work.
    gw.admin_cli(&["locations", "remove", drained]).ok();
    gw.admin_cli(&["locations", "show", drained]).fails_with("was removed");
    assert!(!gw.admin_cli(&["locations", "list"]).ok().stdout.contains(drained), "a removed location is not listed");
    let mut locations = c.locations;
    locations[2].stop();
    for (key, f) in &files {
        let back = f.with_extension("back");
        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://ops/{key}"), &back.display().to_string()]).ok();
        assert!(same_file(f, &back), "{key} reads back intact");
    }
    let f = data_file(&c.dir.join("after"), 500_000, 99);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://ops/after"]).ok();
    let obj = gw.admin_json(&["object", "ops", "after"]);
    assert_eq!(fragments_at(&obj, drained), 0, "{obj}");
    assert_eq!(fragments_at(&obj, "rc6"), 1, "the default policy (all locations) uses the added one: {obj}");
    let usage = gw.admin_json(&["buckets", "show", "ops"]);
    assert_eq!(usage["objects"].as_i64(), Some(4), "{usage}");
}

crate::on_both_databases!(drain_and_remove);

#[test]
fn keys_and_policies_through_the_cli() {
    let c = Cluster::standard("keys", Db::Sqlite);
    let gw = &c.gw;
    let created = gw.admin_json(&["keys", "create", "--id", "OPSKEY0001"]);
    let secret = created["secret_access_key"].as_str().expect("secret").to_string();
    let user = Client { access_key: "OPSKEY0001".into(), secret_key: secret, ..Client::from(gw) };
    user.aws(&["s3", "mb", "s3://keyed"]).ok();
    let rotated = gw.admin_json(&["keys", "rotate", "OPSKEY0001"]);
    let fresh = Client { secret_key: rotated["secret_access_key"].as_str().expect("secret").into(), ..user.clone() };
    user.aws(&["s3", "ls"]).fails_with("SignatureDoesNotMatch");
    fresh.aws(&["s3", "ls"]).ok();
    gw.admin_cli(&["keys", "revoke", "OPSKEY0001"]).ok();
    fresh.aws(&["s3", "ls"]).fails_with("InvalidAccessKeyId");

    // A policy over three named locations, assigned to a bucket: its next object
    // has 3 fragments, each on one of them.
    gw.admin_cli(&["policies", "put", "small", "--k", "2", "--n", "3", "--locations", "rc0,rc1,rc2"]).ok();
    gw.admin_cli(&["policies", "put", "bad", "--k", "4", "--n", "3"]).fails_with("n (3) must be at least k (4)");
    let cl = Client::from(gw);
    cl.aws(&["s3", "mb", "s3://small"]).ok();
    gw.admin_cli(&["policies", "assign", "small", "small"]).ok();
    let f = data_file(&c.dir.join("s"), 100_000, 5);
    cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), "s3://small/s"]).ok();
    let obj = gw.admin_json(&["object", "small", "s"]);
    let locs: Vec<&str> = obj["parts"][0]["fragments"]
        .as_array()
        .expect("fragments")
        .iter()
        .filter_map(|f| f["location"].as_str())
        .collect();
    assert_eq!(locs.len(), 3, "{obj}");
    assert!(locs.iter().all(|l| ["rc0", "rc1", "rc2"].contains(l)), "{obj}");
    gw.admin_cli(&["policies", "delete", "small"]).fails_with("use policy");
    gw.admin_cli(&["policies", "delete", "default"]).fails_with("configuration file");
}

/// Two tenants on one gateway, driven by aws-cli and boto3: each key lists and
/// reaches only its own tenant's buckets; the other tenant's answer `AccessDenied`
/// and nothing there changes.
#[test]
fn tenants_see_and_reach_only_their_own_buckets() {
    let c = Cluster::standard("tenants", Db::Sqlite);
    let gw = &c.gw;
    let house = Client::from(gw); // the first key belongs to the `default` tenant
    house.aws(&["s3", "mb", "s3://house"]).ok();
    let f = data_file(&c.dir.join("f"), 300_000, 7);
    let fp = f.display().to_string();
    house.aws(&["s3", "cp", "--no-progress", &fp, "s3://house/ledger"]).ok();

    gw.admin_cli(&["tenants", "create", "acme"]).ok();
    gw.admin_cli(&["tenants", "create", "acme"]).fails_with("exists");
    gw.admin_cli(&["tenants", "create", "Not_A_Name"]).fails_with("use 1-63 of a-z");
    gw.admin_cli(&["keys", "create", "--tenant", "ghost"]).fails_with("no tenant \"ghost\"");
    let k = gw.admin_json(&["keys", "create", "--id", "ACMEKEY001", "--tenant", "acme"]);
    assert_eq!(k["tenant"], "acme", "{k}");
    let secret = k["secret_access_key"].as_str().expect("secret").to_string();
    let acme = Client { access_key: "ACMEKEY001".into(), secret_key: secret, ..Client::from(gw) };
    acme.aws(&["s3", "mb", "s3://acme-data"]).ok();
    acme.aws(&["s3", "cp", "--no-progress", &fp, "s3://acme-data/plans"]).ok();

    // Each lists its own buckets, owned by its tenant.
    let listed = |cl: &Client| -> (Vec<String>, String) {
        let v: serde_json::Value =
            serde_json::from_str(&cl.aws(&["s3api", "list-buckets"]).ok().stdout).expect("list-buckets JSON");
        let names = v["Buckets"]
            .as_array()
            .expect("Buckets")
            .iter()
            .map(|b| b["Name"].as_str().unwrap_or_default().to_string());
        (names.collect(), v["Owner"]["ID"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(listed(&acme), (vec!["acme-data".to_string()], "acme".to_string()));
    assert_eq!(listed(&house), (vec!["house".to_string()], "default".to_string()));

    // The other tenant's bucket is out of reach, whatever the operation.
    let denied = |cl: &Client, op: &str, params: serde_json::Value| {
        assert_eq!(cl.boto_error(op, params.clone()), ("AccessDenied".to_string(), 403), "{op} {params}");
    };
    denied(&acme, "ListObjectsV2", json!({"Bucket": "house"}));
    denied(&acme, "GetObject", json!({"Bucket": "house", "Key": "ledger"}));
    denied(&acme, "PutObject", json!({"Bucket": "house", "Key": "ledger", "Body": "overwritten"}));
    denied(&acme, "DeleteObject", json!({"Bucket": "house", "Key": "ledger"}));
    denied(&acme, "DeleteObjects", json!({"Bucket": "house", "Delete": {"Objects": [{"Key": "ledger"}]}}));
    denied(&acme, "CreateMultipartUpload", json!({"Bucket": "house", "Key": "big"}));
    denied(&acme, "ListMultipartUploads", json!({"Bucket": "house"}));
    denied(&acme, "DeleteBucket", json!({"Bucket": "house"}));
    denied(&house, "GetObject", json!({"Bucket": "acme-data", "Key": "plans"}));
    house.aws(&["s3", "ls", "s3://acme-data/"]).fails_with("AccessDenied");
    // Bucket names are global, as in S3.
    assert_eq!(house.boto_error("CreateBucket", json!({"Bucket": "acme-data"})), ("BucketAlreadyExists".into(), 409));
    // Its owner creating it again: 200, as S3 in us-east-1 answers.
    assert!(acme.boto("CreateBucket", json!({"Bucket": "acme-data"}), None).get("ok").is_some());

    // Nothing the other tenant tried changed anything.
    for (cl, path) in [(&house, "s3://house/ledger"), (&acme, "s3://acme-data/plans")] {
        let back = c.dir.join("back");
        cl.aws(&["s3", "cp", "--no-progress", path, &back.display().to_string()]).ok();
        assert!(same_file(&f, &back), "{path} changed");
    }

    // The operator's view, and a tenant goes only once it owns nothing.
    let acme_buckets = gw.admin_json(&["buckets", "list", "--tenant", "acme"]);
    assert_eq!(acme_buckets.as_array().map(Vec::len), Some(1), "{acme_buckets}");
    assert_eq!((&acme_buckets[0]["name"], &acme_buckets[0]["tenant"]), (&json!("acme-data"), &json!("acme")));
    assert_eq!(acme_buckets[0]["objects"], 1);
    let t = gw.admin_json(&["tenants", "show", "acme"]);
    assert_eq!((&t["keys"], &t["buckets"]), (&json!(1), &json!(1)), "{t}");
    assert!(gw.admin_cli(&["keys", "list", "--tenant", "acme"]).ok().stdout.contains("ACMEKEY001"));
    gw.admin_cli(&["tenants", "delete", "acme"]).fails_with("still has keys or buckets");
    gw.admin_cli(&["tenants", "delete", "default"]).fails_with("default tenant stays");
    acme.aws(&["s3", "rb", "--force", "s3://acme-data"]).ok();
    gw.admin_cli(&["keys", "delete", "ACMEKEY001"]).ok();
    gw.admin_cli(&["tenants", "delete", "acme"]).ok();
    gw.admin_cli(&["tenants", "show", "acme"]).fails_with("no tenant");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let c = Cluster::standard("schemathesis", Db::Sqlite);
    let gw = &c.gw;
    let spec = env().root.join("openapi/skyshard.yaml");
    let bin = env().python.parent().expect("venv bin").to_path_buf();
    let valid = std::process::Command::new(bin.join("openapi-spec-validator")).arg(&spec).output().expect("validator");
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stdout));

    // Some data for the generated requests to find.
    let cl = Client::from(gw);
    cl.aws(&["s3", "mb", "s3://fuzzed"]).ok();
    let ca = gw.ca.clone().expect("the gateway's CA");
    let token = gw.admin_token();
    // `/ready` is left out: schemathesis drains and removes locations, after which
    // the gateway is rightly not ready (503) — checked by `readiness_follows_the_locations`.
    // One worker: with two, Hypothesis's lambda-source cache raced once ("AST
    // constructor recursion depth mismatch", an error inside the tool, not a finding).
    let out = std::process::Command::new(bin.join("schemathesis"))
        .arg("run")
        .arg(&spec)
        .args(["--url", &gw.admin, "-H", &format!("Authorization: Bearer {token}")])
        .arg("--tls-verify")
        .arg(&ca)
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--exclude-path", "/ready", "--max-examples", "25", "--workers", "1", "--seed", "20261126"])
        .current_dir(&c.dir.0) // its cache directory goes there, not into the checkout
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let log = gw.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "schemathesis found problems:\n{report}\n{}\ngateway log (last lines):\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail.join("\n")
        );
    }
    assert!(report.contains("passed"), "{report}");
    assert!(!gw.log_text().contains("panicked"), "{}", gw.log_text());
}

#[test]
fn readiness_follows_the_locations() {
    let c = Cluster::start("ready", Db::Sqlite, "k = 2\nn = 6\nsegment_size = \"1M\"", "");
    let gw = &c.gw;
    let cl = Client::from(gw);
    let status = |path: &str| -> String {
        let out = cl
            .curl()
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{}{path}", gw.admin))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status("/ready"), "200");
    assert_eq!(status("/v1/status"), "401", "the API needs a token");
    // That answer comes before the request's body is read; a client still sending
    // a large body gets it too, not a reset connection (the server drains what
    // arrives before it closes). Python's requests sends bodies without waiting for
    // `100 Continue`.
    let out = std::process::Command::new(&env().python)
        .arg(env().root.join("tests/py/early_answer.py"))
        .arg(format!("{}/v1/keys", gw.admin))
        .arg(gw.ca.as_ref().expect("the gateway's CA"))
        .args(["1000000", "20"])
        .output()
        .expect("early_answer.py");
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert!(answers.iter().all(|a| a == 401), "{answers:?}");
    // Draining one of the six locations a 6-wide policy needs: not ready.
    gw.admin_cli(&["locations", "drain", "rc0"]).ok();
    assert_eq!(status("/ready"), "503");
    assert_eq!(status("/health"), "200", "alive all the same");
    gw.admin_cli(&["locations", "activate", "rc0"]).ok();
    assert_eq!(status("/ready"), "200");
}

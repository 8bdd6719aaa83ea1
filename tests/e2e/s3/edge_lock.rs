//! Object lock at the locations: over `skyshard edge` stores, the fragments of a
//! locked version are locked by the stores themselves, so that a correctly signed
//! delete — from a compromised gateway, or with a stolen edge secret — cannot
//! destroy them before their date. A drain of a store holding locked versions
//! moves their fragments (locked again where they land) and drops no version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use e2e::{Client, Db, Edge, Gateway, TempDir, data_file, edge_location, env, locations_pki, ok, same_file};

use super::from_now;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// A URL for `method` on `path` at edge `e`, signed with its secret exactly as the
/// gateway signs (HMAC-SHA256 over method, expiry, path and what the URL grants),
/// computed here independently of the gateway's code.
fn signed(e: &Edge, method: &str, path: &str, grants: &[(&str, &str, &str)]) -> String {
    let expires = (unix_now() + 300).to_string();
    let mut payload = format!("{method}\n{expires}\n{path}");
    let mut query = format!("X-Sky-Expires={expires}");
    for (param, value, signed_as) in grants {
        payload.push('\n');
        payload.push_str(signed_as);
        query.push_str(&format!("&{param}={value}"));
    }
    let out = Command::new(&env().python)
        .args([
            "-c",
            "import hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            &e.secret,
            &payload,
        ])
        .output()
        .expect("python");
    let sig = String::from_utf8_lossy(&out.stdout).trim().to_string();
    format!("https://127.0.0.1:{}{path}?{query}&X-Sky-Signature={sig}", e.port)
}

/// Sends `method` to `url` with curl; the status and body.
fn send(method: &str, url: &str, body: Option<&str>) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.arg("--cacert").arg(&locations_pki().ca).args(["-s", "-w", "\n%{http_code}", "-X", method, url]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

/// The admin view of a version of `key` in `vault`.
fn inspect(gw: &Gateway, key: &str, version: &str) -> Value {
    gw.admin_json(&["object", "vault", key, "--version-id", version])
}

/// (edge index, fragment name below the prefix, its file) of every fragment of the
/// first part of `obj`.
fn fragment_files(edges: &[Edge], obj: &Value) -> Vec<(usize, String, PathBuf)> {
    let part = &obj["parts"][0];
    let seal = part["seal"].as_str().expect("seal");
    let mut out = Vec::new();
    for f in part["fragments"].as_array().expect("fragments") {
        let i: usize = f["location"].as_str().expect("location")["edge-".len()..].parse().expect("index");
        let dir = edges[i].dir.join("objects/skyshard").join(seal);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let name = format!("{seal}/{}", entry.file_name().to_string_lossy());
            out.push((i, name, entry.path()));
        }
    }
    out
}

fn locked_at_k(obj: &Value) -> bool {
    obj["locked_at_k"].as_bool() == Some(true)
}

fn until_of(f: &Value) -> u64 {
    f["location_lock"]["until"].as_u64().unwrap_or(0)
}

#[test]
fn locked_fragments_resist_signed_deletes_at_the_edge() {
    let db = Db::Sqlite;
    let dir = TempDir::new("edge-lock");
    // Seven stores for 4-of-6 seals: a drain has somewhere to move fragments to.
    let edges: Vec<Edge> = (0..7).map(|i| Edge::start(dir.join(&format!("edge{i}")), i)).collect();
    let mut config = String::new();
    for (i, e) in edges.iter().enumerate() {
        config.push_str(&edge_location(&format!("edge-{i}"), e));
    }
    config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\n");
    config.push_str("[pipeline]\ngc_interval = \"500ms\"\nretired_grace = \"2s\"\n");
    let gw = Gateway::start(&dir.join("gw"), Some(&config), db);
    let cl = Client::from(&gw);
    let loc = gw.admin_json(&["locations", "show", "edge-0"]);
    assert_eq!(loc["enforces_retention"], true, "{loc}");

    ok(cl.boto("CreateBucket", json!({"Bucket": "vault", "ObjectLockEnabledForBucket": true}), None));
    let body = data_file(&dir.join("ledger"), 300_000, 1);
    let put = |key: &str, mode: &str| -> String {
        let args = json!({"Bucket": "vault", "Key": key, "ObjectLockMode": mode,
            "ObjectLockRetainUntilDate": from_now(86_400)});
        ok(cl.boto("PutObject", args, Some(&body)))["VersionId"].as_str().expect("version").to_string()
    };
    let compliance = put("ledger", "COMPLIANCE");
    let governance = put("draft", "GOVERNANCE");
    ok(cl.boto("PutObject", json!({"Bucket": "vault", "Key": "scratch", "Body": "s"}), None));

    // Every fragment is locked where it lives, as long as the version.
    let obj = inspect(&gw, "ledger", &compliance);
    assert!(locked_at_k(&obj), "{obj}");
    let part = &obj["parts"][0];
    assert_eq!(part["locked_fragments"], 6, "{obj}");
    for f in part["fragments"].as_array().expect("fragments") {
        assert_eq!(f["location_lock"]["mode"], "COMPLIANCE", "{f}");
        assert!(until_of(f) >= unix_now() + 86_000, "{f}");
    }
    let scratch = gw.admin_json(&["object", "vault", "scratch"]);
    assert!(!locked_at_k(&scratch) && scratch["parts"][0]["locked_fragments"] == 0, "{scratch}");

    // A correctly signed DELETE of a compliance-locked fragment is refused, with a
    // governance bypass or without; so is a batch delete of it. The file stays.
    let files = fragment_files(&edges, &obj);
    let (i, name, file) = files[0].clone();
    let e = &edges[i];
    let path = format!("/f/skyshard/{name}");
    let (code, why) = send("DELETE", &signed(e, "DELETE", &path, &[]), None);
    assert_eq!(code, "403", "{why}");
    assert!(why.contains("compliance retention"), "{why}");
    let bypass = [("X-Sky-Bypass", "1", "bypass")];
    assert_eq!(send("DELETE", &signed(e, "DELETE", &path, &bypass), None).0, "403");
    let batch = json!({"names": [name]}).to_string();
    let (code, answer) = send("POST", &signed(e, "POST", "/d/skyshard", &bypass), Some(&batch));
    assert_eq!(code, "200", "{answer}");
    assert!(answer.contains("locked"), "the batch reports the locked name as not deleted: {answer}");
    // A lock only ever strengthens: a signed weaker one leaves the stronger in force.
    let weaker = format!("G{}", unix_now() + 60);
    let lock_path = format!("/r/skyshard/{name}");
    let (code, answer) =
        send("POST", &signed(e, "POST", &lock_path, &[("X-Sky-Retain", &weaker, &format!("retain={weaker}"))]), None);
    assert_eq!(code, "200", "{answer}");
    assert!(answer.contains("\"compliance\":true"), "{answer}");
    // And the bytes never moved: still there, still read whole through the gateway.
    assert!(file.exists());
    let back = dir.join("back");
    ok(cl.boto("GetObject", json!({"Bucket": "vault", "Key": "ledger", "VersionId": compliance}), Some(&back)));
    assert!(same_file(&body, &back));

    // Governance: refused unless the URL was signed to bypass it.
    let gobj = inspect(&gw, "draft", &governance);
    assert!(locked_at_k(&gobj), "{gobj}");
    let (gi, gname, gfile) = fragment_files(&edges, &gobj)[0].clone();
    let gpath = format!("/f/skyshard/{gname}");
    assert_eq!(send("DELETE", &signed(&edges[gi], "DELETE", &gpath, &[]), None).0, "403");
    assert!(gfile.exists());
    assert_eq!(send("DELETE", &signed(&edges[gi], "DELETE", &gpath, &bypass), None).0, "204");
    assert!(!gfile.exists());

    // Extending a retention extends the locks; a multipart upload under the
    // bucket's default retention is locked too.
    let longer = from_now(3 * 86_400);
    ok(cl.boto(
        "PutObjectRetention",
        json!({"Bucket": "vault", "Key": "ledger", "VersionId": compliance,
            "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": longer}}),
        None,
    ));
    let obj = inspect(&gw, "ledger", &compliance);
    assert!(locked_at_k(&obj), "{obj}");
    for f in obj["parts"][0]["fragments"].as_array().expect("fragments") {
        assert!(until_of(f) >= unix_now() + 3 * 86_400 - 600, "extended: {f}");
    }
    let rule = json!({"Bucket": "vault", "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}}});
    ok(cl.boto("PutObjectLockConfiguration", rule, None));
    let big = data_file(&dir.join("big"), 11_000_000, 7);
    ok(cl.boto("upload_file", json!({"Bucket": "vault", "Key": "archive", "Threshold": 5_242_880}), Some(&big)));
    let archive = gw.admin_json(&["object", "vault", "archive"]);
    assert!(locked_at_k(&archive), "every part of a multipart upload: {archive}");
    assert!(archive["parts"].as_array().expect("parts").len() > 1, "{archive}");

    drain_keeps_locked_versions(&gw, &cl, &edges, &[("ledger", &compliance, &body), ("archive", "", &big)]);
}

/// Drains the edge store holding the most of their locked fragments: every locked
/// version stays readable and locked at k or more stores, and deleting it is still
/// refused.
fn drain_keeps_locked_versions(gw: &Gateway, cl: &Client, edges: &[Edge], versions: &[(&str, &str, &Path)]) {
    let view = |key: &str, version: &str| match version {
        "" => gw.admin_json(&["object", "vault", key]),
        v => inspect(gw, key, v),
    };
    // The locked fragments each store holds (of the first part of each version):
    // six of seven stores hold each seal, so some store holds one of each.
    let files: Vec<(usize, String, PathBuf)> =
        versions.iter().flat_map(|(key, version, _)| fragment_files(edges, &view(key, version))).collect();
    let drained = (0..edges.len()).max_by_key(|e| files.iter().filter(|(i, ..)| i == e).count()).expect("stores");
    let held: Vec<PathBuf> = files.into_iter().filter(|(i, _, _)| *i == drained).map(|(_, _, f)| f).collect();
    assert!(!held.is_empty(), "edge-{drained} holds some locked fragment");
    let name = format!("edge-{drained}");
    let out = gw.admin_cli(&["locations", "drain", &name]).ok();
    assert!(out.stdout.contains("is drained"), "{}\n{}", out.stdout, out.stderr);
    let loc = gw.admin_json(&["locations", "show", &name]);
    assert_eq!(loc["fragments"], 0, "{loc}");
    for (key, version, body) in versions {
        let obj = view(key, version);
        assert!(locked_at_k(&obj), "{key} after the drain: {obj}");
        let version = obj["version"].as_str().expect("version");
        for p in obj["parts"].as_array().expect("parts") {
            for f in p["fragments"].as_array().expect("fragments") {
                assert_ne!(f["location"], name.as_str(), "{obj}");
            }
        }
        let back = edges[1].dir.with_file_name(format!("{key}.back"));
        let args = json!({"Bucket": "vault", "Key": key, "VersionId": version});
        ok(cl.boto("GetObject", args.clone(), Some(&back)));
        assert!(same_file(body, &back), "{key} reads back whole after the drain");
        assert_eq!(cl.boto_error("DeleteObject", args), ("AccessDenied".into(), 403), "{key}");
    }
    // The old copies the drain could not delete at the drained store stay there,
    // locked.
    for f in &held {
        assert!(f.exists(), "{} went before its date", f.display());
    }
}

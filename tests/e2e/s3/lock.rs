//! Object lock (WORM) through boto3 and aws-cli: compliance and governance
//! retention, legal holds, a bucket's default retention, on single PUTs,
//! multipart uploads and copies; every delete of a locked version refused.

use std::time::Duration;

use serde_json::{Value, json};

use e2e::{Client, Cluster, Db, data_file, ok, same_file};

use super::from_now;
use crate::on_both_databases;

on_both_databases!(object_lock);

fn denied(cl: &Client, op: &str, params: Value) {
    assert_eq!(cl.boto_error(op, params), ("AccessDenied".into(), 403), "{op}");
}

fn object_lock(db: Db) {
    let c = Cluster::standard("lock", db);
    let cl = Client::from(&c.gw);
    let d = &c.dir;
    // A key of the same tenant allowed to bypass governance retention.
    let k = c.gw.admin_json(&["keys", "create", "--id", "KEEPER0001", "--bypass-governance"]);
    assert_eq!(k["tenant"], "default");
    let keeper = Client {
        access_key: "KEEPER0001".into(),
        secret_key: k["secret_access_key"].as_str().expect("secret").into(),
        ..cl.clone()
    };

    // A bucket created with object lock is versioned, for good.
    ok(cl.boto("CreateBucket", json!({"Bucket": "vault", "ObjectLockEnabledForBucket": true}), None));
    assert_eq!(ok(cl.boto("GetBucketVersioning", json!({"Bucket": "vault"}), None))["Status"], "Enabled");
    let conf = ok(cl.boto("GetObjectLockConfiguration", json!({"Bucket": "vault"}), None));
    assert_eq!(conf["ObjectLockConfiguration"]["ObjectLockEnabled"], "Enabled", "{conf}");
    let suspend = json!({"Bucket": "vault", "VersioningConfiguration": {"Status": "Suspended"}});
    assert_eq!(cl.boto_error("PutBucketVersioning", suspend), ("InvalidBucketState".into(), 409));
    // Lock headers where there is no lock are refused, never ignored.
    ok(cl.boto("CreateBucket", json!({"Bucket": "plain"}), None));
    let asked = json!({"Bucket": "plain", "Key": "x", "Body": "x", "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": from_now(3600)});
    assert_eq!(cl.boto_error("PutObject", asked), ("InvalidRequest".into(), 400));
    let (code, _) = cl.boto_error("GetObjectLockConfiguration", json!({"Bucket": "plain"}));
    assert_eq!(code, "ObjectLockConfigurationNotFoundError");
    let half = json!({"Bucket": "vault", "Key": "x", "Body": "x", "ObjectLockMode": "COMPLIANCE"});
    assert_eq!(cl.boto_error("PutObject", half).0, "InvalidArgument");
    let past = json!({"Bucket": "vault", "Key": "x", "Body": "x", "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": from_now(-60)});
    assert_eq!(cl.boto_error("PutObject", past).0, "InvalidArgument");

    // Compliance: no delete of the version by anyone, no shortening; a marker hides it.
    let until = from_now(86_400);
    let put = ok(cl.boto(
        "PutObject",
        json!({"Bucket": "vault", "Key": "ledger", "Body": "year-end", "ObjectLockMode": "COMPLIANCE",
            "ObjectLockRetainUntilDate": until}),
        None,
    ));
    let v = put["VersionId"].as_str().expect("version").to_string();
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "vault", "Key": "ledger"}), None));
    assert_eq!(head["ObjectLockMode"], "COMPLIANCE", "{head}");
    assert!(head["ObjectLockRetainUntilDate"].is_string(), "{head}");
    let this = json!({"Bucket": "vault", "Key": "ledger", "VersionId": v});
    denied(&cl, "DeleteObject", this.clone());
    let bypass = json!({"Bucket": "vault", "Key": "ledger", "VersionId": v, "BypassGovernanceRetention": true});
    denied(&keeper, "DeleteObject", bypass);
    let batch = ok(cl.boto(
        "DeleteObjects",
        json!({"Bucket": "vault", "Delete": {"Objects": [{"Key": "ledger", "VersionId": v}]}}),
        None,
    ));
    assert_eq!(batch["Errors"][0]["Code"], "AccessDenied", "{batch}");
    let shorter = json!({"Bucket": "vault", "Key": "ledger", "VersionId": v,
        "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": from_now(3600)}, "BypassGovernanceRetention": true});
    denied(&keeper, "PutObjectRetention", shorter);
    let weaker = json!({"Bucket": "vault", "Key": "ledger", "VersionId": v,
        "Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": from_now(2 * 86_400)}});
    denied(&cl, "PutObjectRetention", weaker);
    let longer = from_now(2 * 86_400);
    ok(cl.boto(
        "PutObjectRetention",
        json!({"Bucket": "vault", "Key": "ledger", "VersionId": v,
            "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": longer}}),
        None,
    ));
    let r = ok(cl.boto("GetObjectRetention", this.clone(), None));
    assert_eq!(r["Retention"]["Mode"], "COMPLIANCE");
    let marker = ok(cl.boto("DeleteObject", json!({"Bucket": "vault", "Key": "ledger"}), None));
    assert_eq!(marker["DeleteMarker"], true, "a delete without a version id adds a marker: allowed");
    let (code, _) = cl.boto_error("GetObject", json!({"Bucket": "vault", "Key": "ledger"}));
    assert_eq!(code, "NoSuchKey");
    let undo = json!({"Bucket": "vault", "Key": "ledger", "VersionId": marker["VersionId"]});
    ok(cl.boto("DeleteObject", undo, None));
    let got = ok(cl.boto("GetObject", json!({"Bucket": "vault", "Key": "ledger"}), None));
    assert_eq!(got["VersionId"], v.as_str(), "the marker went; the locked version never did");

    // Governance: refused, unless a key allowed to bypass asks to.
    let put = ok(cl.boto(
        "PutObject",
        json!({"Bucket": "vault", "Key": "draft", "Body": "v1", "ObjectLockMode": "GOVERNANCE",
            "ObjectLockRetainUntilDate": from_now(86_400)}),
        None,
    ));
    let g = json!({"Bucket": "vault", "Key": "draft", "VersionId": put["VersionId"]});
    denied(&cl, "DeleteObject", g.clone());
    let mut asked = g.clone();
    asked["BypassGovernanceRetention"] = json!(true);
    denied(&cl, "DeleteObject", asked.clone());
    denied(&keeper, "DeleteObject", g.clone());
    ok(keeper.boto("DeleteObject", asked, None));
    assert_eq!(cl.boto_error("HeadObject", g).0, "404", "bypassed: gone for good");

    // Legal hold: whatever the retention, until it is lifted.
    let put = ok(cl.boto(
        "PutObject",
        json!({"Bucket": "vault", "Key": "evidence", "Body": "e", "ObjectLockLegalHoldStatus": "ON"}),
        None,
    ));
    let h = json!({"Bucket": "vault", "Key": "evidence", "VersionId": put["VersionId"]});
    assert_eq!(ok(cl.boto("GetObjectLegalHold", h.clone(), None))["LegalHold"]["Status"], "ON");
    let mut asked = h.clone();
    asked["BypassGovernanceRetention"] = json!(true);
    denied(&keeper, "DeleteObject", asked);
    let mut lift = h.clone();
    lift["LegalHold"] = json!({"Status": "OFF"});
    ok(cl.boto("PutObjectLegalHold", lift, None));
    ok(cl.boto("DeleteObject", h, None));

    // A default retention applies to writes that ask for none: single, multipart, copy.
    let rule = json!({"Bucket": "vault", "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}});
    ok(cl.boto("PutObjectLockConfiguration", rule, None));
    let conf = ok(cl.boto("GetObjectLockConfiguration", json!({"Bucket": "vault"}), None));
    assert_eq!(conf["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Days"], 1, "{conf}");
    ok(cl.boto("PutObject", json!({"Bucket": "vault", "Key": "daily", "Body": "d"}), None));
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "vault", "Key": "daily"}), None));
    assert_eq!(head["ObjectLockMode"], "GOVERNANCE", "{head}");
    let big = data_file(&d.join("big"), 11_000_000, 5);
    let extra = json!({"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": from_now(86_400)});
    ok(cl.boto(
        "upload_file",
        json!({"Bucket": "vault", "Key": "archive", "Threshold": 5_242_880, "ExtraArgs": extra}),
        Some(&big),
    ));
    let head = ok(cl.boto("HeadObject", json!({"Bucket": "vault", "Key": "archive"}), None));
    assert_eq!(head["ObjectLockMode"], "COMPLIANCE", "a multipart upload's lock: {head}");
    denied(
        &keeper,
        "DeleteObject",
        json!({"Bucket": "vault", "Key": "archive", "VersionId": head["VersionId"],
        "BypassGovernanceRetention": true}),
    );
    let copy = ok(cl.boto(
        "CopyObject",
        json!({"Bucket": "vault", "Key": "archive-copy", "CopySource": "vault/archive",
            "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": from_now(86_400)}),
        None,
    ));
    denied(&cl, "DeleteObject", json!({"Bucket": "vault", "Key": "archive-copy", "VersionId": copy["VersionId"]}));
    let back = d.join("back");
    ok(cl.boto("GetObject", json!({"Bucket": "vault", "Key": "archive-copy"}), Some(&back)));
    assert!(same_file(&big, &back));

    // aws-cli s3api sees the same, and a retention runs out (long enough for a
    // loaded machine to start aws-cli twice before it does).
    let ends = std::time::Instant::now() + Duration::from_secs(20);
    let out = cl
        .aws(&[
            "s3api",
            "put-object",
            "--bucket",
            "vault",
            "--key",
            "brief",
            "--object-lock-mode",
            "COMPLIANCE",
            "--object-lock-retain-until-date",
            &from_now(20),
        ])
        .ok();
    let brief: Value = serde_json::from_str(&out.stdout).expect("json");
    let id = brief["VersionId"].as_str().expect("version");
    let delete = ["s3api", "delete-object", "--bucket", "vault", "--key", "brief", "--version-id", id];
    cl.aws(&delete).fails_with("AccessDenied");
    std::thread::sleep(ends.saturating_duration_since(std::time::Instant::now()) + Duration::from_secs(1));
    cl.aws(&delete).ok();

    // A bucket with locked versions is never empty.
    assert_eq!(cl.boto_error("DeleteBucket", json!({"Bucket": "vault"})).0, "BucketNotEmpty");
}

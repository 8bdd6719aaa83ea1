//! Object and bucket tags through boto3 and aws-cli: set on writes (single,
//! multipart, copy), changed and removed, per version, and held to S3's limits.

use serde_json::{Value, json};

use e2e::{Client, Cluster, Db, data_file, ok};

use crate::on_both_databases;

on_both_databases!(tagging);

fn tags_of(cl: &Client, params: Value) -> Vec<(String, String)> {
    let r = ok(cl.boto("GetObjectTagging", params, None));
    let mut tags: Vec<(String, String)> = r["TagSet"]
        .as_array()
        .expect("a tag set")
        .iter()
        .map(|t| (t["Key"].as_str().unwrap_or_default().into(), t["Value"].as_str().unwrap_or_default().into()))
        .collect();
    tags.sort();
    tags
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

fn tagging(db: Db) {
    let c = Cluster::standard("tagging", db);
    let cl = Client::from(&c.gw);
    ok(cl.boto("CreateBucket", json!({"Bucket": "tagged"}), None));
    let obj = json!({"Bucket": "tagged", "Key": "doc"});

    // On a PUT; counted on GET; replaced; removed.
    ok(cl.boto(
        "PutObject",
        json!({"Bucket": "tagged", "Key": "doc", "Body": "d", "Tagging": "project=blue&cost%20centre=4%2F2"}),
        None,
    ));
    assert_eq!(tags_of(&cl, obj.clone()), pairs(&[("cost centre", "4/2"), ("project", "blue")]));
    assert_eq!(ok(cl.boto("GetObject", obj.clone(), None))["TagCount"], 2);
    let set = json!({"Bucket": "tagged", "Key": "doc", "Tagging": {"TagSet": [{"Key": "stage", "Value": "final"}]}});
    ok(cl.boto("PutObjectTagging", set, None));
    assert_eq!(tags_of(&cl, obj.clone()), pairs(&[("stage", "final")]));
    ok(cl.boto("DeleteObjectTagging", obj.clone(), None));
    assert!(tags_of(&cl, obj.clone()).is_empty());
    assert!(ok(cl.boto("GetObject", obj.clone(), None)).get("TagCount").is_none());

    // S3's limits.
    let many: Vec<Value> = (0..11).map(|i| json!({"Key": format!("k{i}"), "Value": "v"})).collect();
    let too_many = json!({"Bucket": "tagged", "Key": "doc", "Tagging": {"TagSet": many}});
    assert_eq!(cl.boto_error("PutObjectTagging", too_many), ("BadRequest".into(), 400));
    let reserved = json!({"Bucket": "tagged", "Key": "doc", "Tagging": {"TagSet": [{"Key": "aws:x", "Value": "v"}]}});
    assert_eq!(cl.boto_error("PutObjectTagging", reserved).0, "InvalidTag");
    let twice = json!({"Bucket": "tagged", "Key": "doc", "Tagging": {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}});
    assert_eq!(cl.boto_error("PutObjectTagging", twice).0, "InvalidTag");
    let long = json!({"Bucket": "tagged", "Key": "x", "Body": "x", "Tagging": format!("k={}", "v".repeat(257))});
    assert_eq!(cl.boto_error("PutObject", long).0, "InvalidTag");
    assert_eq!(cl.boto_error("HeadObject", json!({"Bucket": "tagged", "Key": "x"})).0, "404", "refused whole");
    assert_eq!(cl.boto_error("GetObjectTagging", json!({"Bucket": "tagged", "Key": "none"})).0, "NoSuchKey");

    // Copies keep the source's tags, or take new ones; multipart uploads take theirs.
    ok(cl.boto(
        "PutObjectTagging",
        json!({"Bucket": "tagged", "Key": "doc", "Tagging": {"TagSet": [{"Key": "a", "Value": "1"}]}}),
        None,
    ));
    ok(cl.boto("CopyObject", json!({"Bucket": "tagged", "Key": "same", "CopySource": "tagged/doc"}), None));
    assert_eq!(tags_of(&cl, json!({"Bucket": "tagged", "Key": "same"})), pairs(&[("a", "1")]));
    ok(cl.boto(
        "CopyObject",
        json!({"Bucket": "tagged", "Key": "new", "CopySource": "tagged/doc",
        "TaggingDirective": "REPLACE", "Tagging": "b=2"}),
        None,
    ));
    assert_eq!(tags_of(&cl, json!({"Bucket": "tagged", "Key": "new"})), pairs(&[("b", "2")]));
    let big = data_file(&c.dir.join("big"), 11_000_000, 7);
    ok(cl.boto(
        "upload_file",
        json!({"Bucket": "tagged", "Key": "big", "Threshold": 5_242_880,
        "ExtraArgs": {"Tagging": "kind=archive"}}),
        Some(&big),
    ));
    assert_eq!(tags_of(&cl, json!({"Bucket": "tagged", "Key": "big"})), pairs(&[("kind", "archive")]));

    // Per version.
    ok(cl.boto(
        "PutBucketVersioning",
        json!({"Bucket": "tagged", "VersioningConfiguration": {"Status": "Enabled"}}),
        None,
    ));
    let v1 = ok(cl.boto("PutObject", json!({"Bucket": "tagged", "Key": "v", "Body": "1", "Tagging": "n=1"}), None));
    ok(cl.boto("PutObject", json!({"Bucket": "tagged", "Key": "v", "Body": "2", "Tagging": "n=2"}), None));
    let old = json!({"Bucket": "tagged", "Key": "v", "VersionId": v1["VersionId"]});
    assert_eq!(tags_of(&cl, old.clone()), pairs(&[("n", "1")]));
    let mut retag = old.clone();
    retag["Tagging"] = json!({"TagSet": [{"Key": "n", "Value": "one"}]});
    let r = ok(cl.boto("PutObjectTagging", retag, None));
    assert_eq!(r["VersionId"], v1["VersionId"]);
    assert_eq!(tags_of(&cl, old), pairs(&[("n", "one")]));
    assert_eq!(tags_of(&cl, json!({"Bucket": "tagged", "Key": "v"})), pairs(&[("n", "2")]), "the latest kept its own");

    // aws-cli.
    cl.aws(&[
        "s3api",
        "put-object-tagging",
        "--bucket",
        "tagged",
        "--key",
        "doc",
        "--tagging",
        "TagSet=[{Key=owner,Value=ops}]",
    ])
    .ok();
    let out = cl.aws(&["s3api", "get-object-tagging", "--bucket", "tagged", "--key", "doc"]).ok();
    assert!(out.stdout.contains("\"owner\"") && out.stdout.contains("\"ops\""), "{}", out.stdout);

    // Bucket tags.
    assert_eq!(cl.boto_error("GetBucketTagging", json!({"Bucket": "tagged"})).0, "NoSuchTagSet");
    let set = json!({"Bucket": "tagged", "Tagging": {"TagSet": [{"Key": "team", "Value": "storage"}]}});
    ok(cl.boto("PutBucketTagging", set, None));
    let got = ok(cl.boto("GetBucketTagging", json!({"Bucket": "tagged"}), None));
    assert_eq!(got["TagSet"][0]["Key"], "team", "{got}");
    let many: Vec<Value> = (0..51).map(|i| json!({"Key": format!("k{i}"), "Value": "v"})).collect();
    let too_many = json!({"Bucket": "tagged", "Tagging": {"TagSet": many}});
    assert_eq!(cl.boto_error("PutBucketTagging", too_many).0, "InvalidTag");
    ok(cl.boto("DeleteBucketTagging", json!({"Bucket": "tagged"}), None));
    assert_eq!(cl.boto_error("GetBucketTagging", json!({"Bucket": "tagged"})).0, "NoSuchTagSet");
}

//! The configuration's checks: unknown keys, units, impossible policies, secrets.

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

const SIX_EDGES: &str = r#"
    [[locations]]
    name = "e1"
    kind = "edge"
    endpoint = "http://127.0.0.1:9101"
    secret = "0123456789abcdef"
    [[locations]]
    name = "e2"
    kind = "edge"
    endpoint = "http://127.0.0.1:9102"
    secret = "0123456789abcdef"
    [[locations]]
    name = "c3"
    kind = "s3"
    endpoint = "http://127.0.0.1:9103"
    bucket = "frags"
    access_key_id = "AK"
    secret_access_key = "SECRETSECRET"
"#;

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let err = parse("listen = \"127.0.0.1:1\"\nlisten_port = 3").expect_err("unknown key");
    assert!(err.to_string().contains("listen_port"), "{err}");
    let err = parse("[pipeline]\ndepht = 3").expect_err("unknown nested key");
    assert!(err.to_string().contains("depht"), "{err}");
    let err = parse(&format!("{SIX_EDGES}\n[policies.x]\nk = 2\nn = 3\nfoo = 1")).expect_err("unknown policy key");
    assert!(err.to_string().contains("foo"), "{err}");
}

#[test]
fn human_units_and_defaults() {
    let c = parse(&format!(
        "{SIX_EDGES}\n[policies.default]\nk = 2\nn = 3\nsegment_size = \"1M\"\n[pipeline]\npresign_ttl = \"5m\""
    ))
    .expect("parse");
    let s = Settings::from_config(c, None, Some("/tmp/x".into()), None).expect("valid");
    let p = &s.policies["default"];
    assert_eq!((p.params.k(), p.params.n(), p.params.segment_size()), (2, 3, 1 << 20));
    assert_eq!(p.write_quorum, 3);
    assert_eq!(s.pipeline.presign_ttl.0, Duration::from_secs(300));
    assert_eq!(s.locations["e1"].tier, Tier::Edge);
    assert_eq!(s.locations["c3"].tier, Tier::Cloud);
    assert!(s.database_url.starts_with("sqlite:///tmp/x/meta.db"));
}

#[test]
fn impossible_policies_are_refused() {
    for bad in [
        "[policies.default]\nk = 4\nn = 6", // 3 locations only
        "[policies.default]\nk = 2\nn = 3\nwrite_quorum = 1",
        "[policies.default]\nk = 2\nn = 3\nmin_cloud = 2",
        "[policies.default]\nk = 2\nn = 3\nlocations = [\"e1\", \"nope\", \"c3\"]",
        "[policies.default]\nk = 4\nn = 3",
    ] {
        let c = parse(&format!("{SIX_EDGES}\n{bad}")).expect("parses");
        assert!(Settings::from_config(c, None, None, None).is_err(), "{bad}");
    }
}

#[test]
fn locations_need_their_secrets() {
    let c = parse(
        "[[locations]]\nname = \"x\"\nkind = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"b\"\naccess_key_id = \"a\"",
    )
    .expect("parses");
    let err = Settings::from_config(c, None, None, None).expect_err("no secret");
    assert!(err.to_string().contains("secret_access_key"), "{err}");
    assert_eq!(location_secret_env("edge-1"), "SKYSHARD_LOCATION_EDGE_1_SECRET");
}

#[test]
fn the_shipped_example_parses() {
    let text = include_str!("../../../deploy/examples/skyshard.toml");
    let c = parse(text).expect("deploy/examples/skyshard.toml must stay valid");
    assert_eq!(c.locations.len(), 6);
    assert_eq!(c.policies["default"].min_edge, 2);
    assert_eq!(c.bucket_policies["logs"], "archive");
}

#[test]
fn secrets_from_files() {
    let dir = crate::testing::scratch_dir("config");
    let f = dir.join("secret");
    std::fs::write(&f, "from-a-file\n").expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = resolve_secret(None, Some(&f), "SKYSHARD_TEST_UNSET_VARIABLE").expect_err("an error").to_string();
    assert!(refused.contains("readable by every user"), "{refused}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let got = resolve_secret(Some("inline"), Some(&f), "SKYSHARD_TEST_UNSET_VARIABLE").expect("read");
    assert_eq!(got.as_deref().map(String::as_str), Some("from-a-file"));
    let got = resolve_secret(Some("inline"), None, "SKYSHARD_TEST_UNSET_VARIABLE").expect("read");
    assert_eq!(got.as_deref().map(String::as_str), Some("inline"));
}

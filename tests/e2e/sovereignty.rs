//! Sovereignty constraints: locations state who runs them and whose law they are
//! under, and a policy bounds an object's fragments per provider and per
//! jurisdiction (and asks for some in a named one). Every write, and every
//! fragment a drain moves, keeps the bounds; a policy no set of locations can
//! satisfy is refused when it is defined, and a write it cannot place now is
//! refused with nothing stored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use e2e::{Client, Cluster, Db, Rclone, data_file, location_add_args, same_file};
use serde_json::Value;

/// Provider and jurisdiction of `rc0`..`rc5`.
const SITES: [(&str, &str); 6] =
    [("aws", "EU"), ("aws", "EU"), ("ovh", "EU"), ("ovh", "CH"), ("own", "CH"), ("own", "US")];

/// The default policy: 2-of-4 over the six, at most two fragments with one
/// provider or in one jurisdiction, at least one in Switzerland.
const POLICY: &str = "k = 2\nn = 4\nsegment_size = \"1M\"\nmax_per_provider = 2\nmax_per_jurisdiction = 2\n\
                      min_per_jurisdiction = { CH = 1 }";

/// Each part's fragment locations.
fn placements(obj: &Value) -> Vec<Vec<String>> {
    obj["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| {
            p["fragments"]
                .as_array()
                .expect("fragments")
                .iter()
                .map(|f| f["location"].as_str().expect("location").to_string())
                .collect()
        })
        .collect()
}

/// Fragments per provider and per jurisdiction of one part.
fn counts(at: &[String], sites: &BTreeMap<String, (String, String)>) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let (mut by_provider, mut by_jurisdiction) = (BTreeMap::new(), BTreeMap::new());
    for l in at {
        let (p, j) = sites.get(l).unwrap_or_else(|| panic!("a fragment on unknown location {l}"));
        *by_provider.entry(p.clone()).or_insert(0) += 1;
        *by_jurisdiction.entry(j.clone()).or_insert(0) += 1;
    }
    (by_provider, by_jurisdiction)
}

fn sovereignty(db: Db) {
    let described: Vec<String> =
        SITES.iter().map(|(p, j)| format!("provider = \"{p}\"\njurisdiction = \"{j}\"")).collect();
    let described: Vec<&str> = described.iter().map(String::as_str).collect();
    let c = Cluster::start_described("sovereign", db, POLICY, "", &described);
    let (gw, cl) = (&c.gw, Client::from(&c.gw));
    let mut sites: BTreeMap<String, (String, String)> =
        SITES.iter().enumerate().map(|(i, (p, j))| (format!("rc{i}"), (p.to_string(), j.to_string()))).collect();

    let policy = gw.admin_json(&["policies", "show", "default"]);
    assert_eq!(policy["definition"]["max_per_provider"], 2, "{policy}");
    assert_eq!(policy["definition"]["min_per_jurisdiction"]["CH"], 1, "{policy}");

    // A seventh location, in Switzerland with a provider of its own, added at run
    // time through the CLI.
    let extra = Rclone::start(c.dir.join("loc6"), "frags-6", 6);
    let secret = c.dir.join("rc6.secret");
    std::fs::write(&secret, &extra.secret_key).expect("secret file");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let args = location_add_args("rc6", &extra, &secret);
    let add = |jurisdiction: &str| {
        let mut a = vec!["--json", "locations", "add"];
        a.extend(args.iter().map(String::as_str));
        a.extend(["--provider", "infomaniak", "--jurisdiction", jurisdiction]);
        gw.admin_cli(&a)
    };
    add("C/H").fails_with("jurisdiction");
    let added: Value = serde_json::from_str(&add("CH").ok().stdout).expect("location JSON");
    assert_eq!(added["definition"]["jurisdiction"], "CH", "{added}");
    sites.insert("rc6".into(), ("infomaniak".into(), "CH".into()));

    // Policies no set of locations satisfies are refused when defined.
    gw.admin_cli(&["policies", "put", "spread", "--k", "2", "--n", "4", "--max-per-provider", "1"]).ok();
    gw.admin_cli(&["policies", "put", "thin", "--k", "2", "--n", "6", "--max-per-jurisdiction", "2"])
        .fails_with("satisfy its constraints");
    gw.admin_cli(&["policies", "put", "nowhere", "--k", "1", "--n", "2", "--min-per-jurisdiction", "JP=1"])
        .fails_with("satisfy its constraints");
    gw.admin_cli(&["policies", "put", "swiss", "--k", "1", "--n", "2", "--min-per-jurisdiction", "CH=2"]).ok();
    gw.admin_cli(&["policies", "put", "swiss3", "--k", "1", "--n", "3", "--min-per-jurisdiction", "CH=3"]).ok();

    // Writes keep the bounds, with placements that still vary from object to object.
    cl.aws(&["s3", "mb", "s3://ledger"]).ok();
    let files: Vec<(String, PathBuf)> = (0..10u64)
        .map(|i| (format!("o{i}"), data_file(&c.dir.join(&format!("o{i}")), 150_000 + 40_000 * i as usize, i)))
        .collect();
    for (key, f) in &files {
        cl.aws(&["s3", "cp", "--no-progress", &f.display().to_string(), &format!("s3://ledger/{key}")]).ok();
    }
    let check = |round: &str| {
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in &files {
            let obj = gw.admin_json(&["object", "ledger", key]);
            // The gateway's own account agrees: the policy's three rules, each kept,
            // and each fragment's location described as configured.
            assert_eq!(obj["policy"], "default", "{obj}");
            for part in obj["parts"].as_array().expect("parts") {
                let rules = part["constraints"].as_array().expect("constraints");
                assert!(rules.len() == 3 && rules.iter().all(|r| r["satisfied"] == true), "{round}: {key}: {part}");
                for f in part["fragments"].as_array().expect("fragments") {
                    let (p, j) = &sites[f["location"].as_str().expect("location")];
                    assert!(f["provider"] == p.as_str() && f["jurisdiction"] == j.as_str(), "{f}");
                }
            }
            for at in placements(&obj) {
                assert_eq!(at.len(), 4, "{round}: {key}: {obj}");
                let (by_provider, by_jurisdiction) = counts(&at, &sites);
                assert!(by_provider.values().all(|&n| n <= 2), "{round}: {key}: {by_provider:?} over {at:?}");
                assert!(by_jurisdiction.values().all(|&n| n <= 2), "{round}: {key}: {by_jurisdiction:?} over {at:?}");
                assert!(by_jurisdiction.get("CH").is_some_and(|&n| n >= 1), "{round}: {key}: none in CH: {at:?}");
                let mut set = at.clone();
                set.sort();
                seen.insert(set);
            }
        }
        seen
    };
    let seen = check("written");
    assert!(seen.len() > 1, "every object on the same locations: {seen:?}");
    let shown = gw.admin_cli(&["object", "ledger", "o0"]).ok().stdout;
    assert!(shown.contains("part 1: at least 1 in jurisdiction CH: ") && !shown.contains("NOT KEPT"), "{shown}");
    evidence_holds(&c, "o0");
    let audit = gw.admin_json(&["buckets", "audit", "ledger"]);
    assert!(audit["objects"] == 10 && audit["kept"] == 10, "{audit}");

    cl.aws(&["s3", "mb", "s3://vault"]).ok();
    gw.admin_cli(&["policies", "assign", "vault", "swiss"]).ok();
    let secret_file = &files[0].1;
    cl.aws(&["s3", "cp", "--no-progress", &secret_file.display().to_string(), "s3://vault/deed"]).ok();
    let swiss = |round: &str| {
        let deed = gw.admin_json(&["object", "vault", "deed"]);
        let at = placements(&deed).remove(0);
        assert!(at.len() == 2 && at.iter().all(|l| sites[l].1 == "CH"), "{round}: {deed}");
        at
    };
    swiss("written");

    // A drain moves each fragment somewhere that keeps its object's bounds: off rc4,
    // a ledger object's only Swiss fragment goes to rc3 or rc6, and the deed's to
    // whichever of them it is not on yet.
    let on_rc4: usize = files
        .iter()
        .map(|(k, _)| {
            placements(&gw.admin_json(&["object", "ledger", k])).iter().flatten().filter(|l| *l == "rc4").count()
        })
        .sum();
    assert!(on_rc4 > 0, "some ledger fragments live on rc4");
    gw.admin_cli(&["locations", "drain", "rc4"]).ok();
    let seen = check("drained");
    assert!(seen.iter().flatten().all(|l| l != "rc4"), "{seen:?}");
    for (key, f) in &files {
        let back = c.dir.join(&format!("{key}.back"));
        cl.aws(&["s3", "cp", "--no-progress", &format!("s3://ledger/{key}"), &back.display().to_string()]).ok();
        assert!(same_file(f, &back), "{key} came back different after the drain");
    }

    let mut deed = swiss("drained");
    deed.sort();
    assert_eq!(deed, ["rc3", "rc6"]);
    let back = c.dir.join("deed.back");
    cl.aws(&["s3", "cp", "--no-progress", "s3://vault/deed", &back.display().to_string()]).ok();
    assert!(same_file(secret_file, &back), "the deed came back different after the drain");

    let audit = gw.admin_json(&["buckets", "audit", "ledger"]);
    assert!(audit["objects"] == 10 && audit["kept"] == 10, "after the drain: {audit}");

    // With rc4 drained two Swiss locations are left: a policy asking for three
    // cannot place a write, which is refused and stores nothing.
    gw.admin_cli(&["policies", "assign", "vault", "swiss3"]).ok();
    let before = c.fragment_files();
    cl.aws(&["s3", "cp", "--no-progress", &secret_file.display().to_string(), "s3://vault/second"])
        .fails_with("cannot place the object");
    cl.aws(&["s3api", "head-object", "--bucket", "vault", "--key", "second"]).fails_with("404");
    assert_eq!(c.fragment_files(), before, "the refused write left fragments behind");
    assert!(gw.log_text().contains("its policy cannot place its fragments"), "the refusal is logged");
}

/// The signed report of `key` in `ledger` verifies under the key the gateway
/// publishes, says what `admin object` says, and no longer verifies once a location
/// in it is changed or when another key is pinned.
fn evidence_holds(c: &Cluster, key: &str) {
    let gw = &c.gw;
    let cl = Client::from(gw);
    let out = cl
        .curl()
        .args(["-sf", "-H", &format!("Authorization: Bearer {}", gw.admin_token())])
        .arg(format!("{}/v1/evidence/key", gw.admin))
        .output()
        .expect("curl");
    let published: Value = serde_json::from_slice(&out.stdout).expect("key JSON");
    let pinned = published["public_key"].as_str().expect("public key").to_string();
    assert_eq!(published["algorithm"], "Ed25519", "{published}");

    let shown = gw.admin_cli(&["object", "ledger", key, "--evidence", "--public-key", &pinned]).ok().stdout;
    assert!(shown.contains("signature: valid (Ed25519") && shown.contains("as pinned"), "{shown}");
    assert!(shown.contains("at least 1 in jurisdiction CH") && !shown.contains("NOT KEPT"), "{shown}");
    let e = gw.admin_json(&["object", "ledger", key, "--evidence"]);
    assert_eq!(e["signed"]["public_key"].as_str(), Some(pinned.as_str()), "{e}");
    let placed = placements(&gw.admin_json(&["object", "ledger", key]));
    assert_eq!(placements(&e["report"]["object"]), placed, "{e}");

    let saved = c.dir.join("evidence.json");
    std::fs::write(&saved, e.to_string()).expect("save");
    let saved = saved.display().to_string();
    gw.admin_cli(&["verify-evidence", &saved, "--public-key", &pinned]).ok();
    gw.admin_cli(&["verify-evidence", &saved, "--public-key", "AAAAC3NzaC1lZDI1NTE5AAAAIG1vcmVrZXlzbW9yZWtleXM="])
        .fails_with("not by the expected");

    // One fragment said to be elsewhere: the signature no longer covers it.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload =
        String::from_utf8(b64.decode(e["signed"]["payload"].as_str().expect("payload")).expect("b64")).expect("UTF-8");
    let first = &placed[0][0];
    let other = if first == "rc5" { "rc0" } else { "rc5" };
    let forged = payload.replacen(&format!("\"location\":\"{first}\""), &format!("\"location\":\"{other}\""), 1);
    assert_ne!(forged, payload);
    let mut tampered = e.clone();
    tampered["signed"]["payload"] = Value::String(b64.encode(forged));
    let forged_file = c.dir.join("forged.json");
    std::fs::write(&forged_file, tampered.to_string()).expect("save");
    gw.admin_cli(&["verify-evidence", &forged_file.display().to_string()]).fails_with("does not verify");
}

crate::on_both_databases!(sovereignty);

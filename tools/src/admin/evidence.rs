//! `skyshard admin object`, `object --evidence`, `verify-evidence` and
//! `buckets audit`: where an object's fragments are, the gateway's signed word for
//! it (checked here, with the key pinned when one is given), and every object of a
//! bucket checked against its policy's sovereignty constraints.

use std::path::Path;

use anyhow::{Context as _, bail};
use gateway::evidence::Signed;
use serde_json::Value;

use super::{Client, bytes_h, print, seg, table, text, when};

/// An object's placement as a table, with its lock and its constraints.
pub(super) fn object_text(v: &Value) -> String {
    let mut rows = Vec::new();
    for p in v.get("parts").and_then(Value::as_array).cloned().unwrap_or_default() {
        for f in p.get("fragments").and_then(Value::as_array).cloned().unwrap_or_default() {
            rows.push(vec![
                text(&p, "part_number"),
                format!("{}-of-{}", text(&p, "k"), text(&p, "n")),
                text(&f, "index"),
                text(&f, "location"),
                match (text(&f, "provider"), text(&f, "jurisdiction")) {
                    (p, j) if p == "-" && j == "-" => p,
                    (p, j) => format!("{p}/{j}"),
                },
                text(&f, "location_state"),
                text(&f, "state"),
                bytes_h(&f, "size"),
                when(&f, "verified_at"),
                f.get("location_lock")
                    .filter(|l| !l.is_null())
                    .map_or("-".into(), |l| format!("{} until {}", text(l, "mode"), text(l, "until"))),
            ]);
        }
    }
    let mut head = format!(
        "{}/{}: {} bytes, version {}\n",
        text(v, "bucket"),
        text(v, "key"),
        text(v, "size"),
        text(v, "version")
    );
    if v.get("lock_mode").is_some_and(|m| !m.is_null()) {
        head.push_str(&format!(
            "retention: {} until {}; locked at k or more locations in every part: {}\n",
            text(v, "lock_mode"),
            when(v, "retain_until"),
            if v.get("locked_at_k").and_then(Value::as_bool) == Some(true) { "yes" } else { "no" },
        ));
    }
    if v.get("legal_hold").and_then(Value::as_bool) == Some(true) {
        head.push_str("legal hold: on\n");
    }
    for p in v.get("parts").and_then(Value::as_array).cloned().unwrap_or_default() {
        for c in p.get("constraints").and_then(Value::as_array).cloned().unwrap_or_default() {
            let held = c.get("satisfied").and_then(Value::as_bool) == Some(true);
            head.push_str(&format!(
                "part {}: {}: {} ({})\n",
                text(&p, "part_number"),
                text(&c, "rule"),
                text(&c, "found"),
                if held { "kept" } else { "NOT KEPT" }
            ));
        }
    }
    head + &table(
        &[
            "PART",
            "CODE",
            "FRAGMENT",
            "LOCATION",
            "PROVIDER/LAW",
            "LOCATION_STATE",
            "STATE",
            "SIZE",
            "VERIFIED",
            "LOCK",
        ],
        rows,
    )
}

/// The signed report's payload once its signature checks out.
fn verified(evidence: &Value, public_key: Option<&str>) -> anyhow::Result<Value> {
    let signed: Signed = serde_json::from_value(evidence.get("signed").cloned().unwrap_or(Value::Null))
        .context("the answer holds no signed report")?;
    let payload = signed.verify(public_key).map_err(|e| anyhow::anyhow!("the evidence does not verify: {e}"))?;
    serde_json::from_slice(&payload).context("the signed report is not JSON")
}

fn signature_line(evidence: &Value, pinned: bool) -> String {
    let s = evidence.get("signed").cloned().unwrap_or_default();
    format!(
        "signature: valid ({}, master key version {}, public key {}{})\n",
        text(&s, "algorithm"),
        text(&s, "key_version"),
        text(&s, "public_key"),
        if pinned { ", as pinned" } else { "; pin it with --public-key to trust it" }
    )
}

/// `object --evidence`: fetches the signed report, checks it, shows what it signs.
pub(super) async fn object(c: &Client, json_out: bool, query: &str, public_key: Option<&str>) -> anyhow::Result<()> {
    let e = c.get(&format!("/v1/objects/evidence?{query}")).await?;
    let report = verified(&e, public_key)?;
    print(json_out, &e, |e| {
        let object = report.get("object").cloned().unwrap_or_default();
        format!(
            "issued: {}\n{}{}",
            when(&report, "issued_at"),
            signature_line(e, public_key.is_some()),
            object_text(&object)
        )
    })
}

/// `verify-evidence FILE`: checks a saved report.
pub(super) fn verify_file(file: &Path, public_key: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    let text_in = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let e: Value = serde_json::from_str(&text_in).with_context(|| format!("{} is not JSON", file.display()))?;
    let report = verified(&e, public_key)?;
    print(json_out, &report, |r| {
        let object = r.get("object").cloned().unwrap_or_default();
        format!(
            "issued: {}\n{}{}",
            when(r, "issued_at"),
            signature_line(&e, public_key.is_some()),
            object_text(&object)
        )
    })
}

/// `buckets audit B`: every page of the audit; fails when a constraint is not kept.
pub(super) async fn audit(c: &Client, json_out: bool, bucket: &str) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    let mut items = Vec::new();
    let (policy, constraints) = loop {
        let mut path = format!("/v1/buckets/{}/audit?limit=1000", seg(bucket));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", seg(c)));
        }
        let page = c.get(&path).await?;
        items.extend(page.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_string()),
            None => break (text(&page, "policy"), text(&page, "constraints")),
        }
    };
    let broken: Vec<&Value> = items.iter().filter(|i| i.get("kept").and_then(Value::as_bool) != Some(true)).collect();
    let summary = serde_json::json!({
        "bucket": bucket, "policy": policy, "constraints": constraints,
        "objects": items.len(), "kept": items.len() - broken.len(), "items": items,
    });
    print(json_out, &summary, |_| {
        let mut out = format!(
            "bucket {bucket}, policy {policy} ({constraints}): {} objects, {} keep every constraint\n",
            items.len(),
            items.len() - broken.len()
        );
        let rows = broken
            .iter()
            .flat_map(|i| {
                let rules = i.get("broken").and_then(Value::as_array).cloned().unwrap_or_default();
                rules.into_iter().map(move |r| vec![text(i, "key"), r.as_str().unwrap_or_default().to_string()])
            })
            .collect();
        if !broken.is_empty() {
            out.push_str(&table(&["KEY", "NOT KEPT"], rows));
        }
        out
    })?;
    if !broken.is_empty() {
        bail!("{} of {} objects in {bucket} do not keep the constraints of policy {policy}", broken.len(), items.len());
    }
    Ok(())
}

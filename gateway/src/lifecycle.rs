//! Lifecycle: a bucket's rules (S3's PutBucketLifecycleConfiguration), applied by
//! a background pass (`durability::spawn_lifecycle`) on the replica holding the
//! `lifecycle` lease. Current
//! versions expire (a delete: a delete marker in a versioned bucket), noncurrent
//! versions are deleted for good some days after they stopped being current
//! (keeping the newest few if asked), delete markers left alone are removed, and
//! multipart uploads not completed in time are aborted. A version its object lock
//! protects is never deleted: the metadata store refuses, and the pass goes on.
//!
//! Days are `durability.lifecycle_day` long (a day by default; seconds in tests).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::meta::{DeleteCondition, MetaError, VersionRef, VersionRow, now_ms};
use crate::pipeline::{PipelineCtx, PipelineError};

/// Which objects a rule applies to: all of these that are given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Keys starting with this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Versions with all these tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Versions larger than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    /// Versions smaller than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
}

impl Filter {
    /// Whether version `v` is one the filter selects (its tags: a delete marker has none).
    pub fn selects(&self, v: &VersionRow) -> bool {
        v.key.starts_with(self.prefix.as_bytes())
            && self.tags.iter().all(|(k, val)| v.attrs.tags.get(k) == Some(val))
            && self.size_greater_than.is_none_or(|s| v.size > s)
            && self.size_less_than.is_none_or(|s| v.size < s)
    }

    /// Whether the filter looks at anything but the key (a delete marker, which
    /// has no tags or size, is then never selected).
    fn needs_data(&self) -> bool {
        !self.tags.is_empty() || self.size_greater_than.is_some() || self.size_less_than.is_some()
    }
}

/// One lifecycle rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// Whether it is applied.
    pub enabled: bool,
    /// What it applies to.
    #[serde(default)]
    pub filter: Filter,
    /// Current versions expire this many days after they were written…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<u32>,
    /// …or from this date on (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<i64>,
    /// A delete marker with no versions behind it is removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired_object_delete_marker: bool,
    /// Noncurrent versions are deleted this many days after they stopped being current…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<u32>,
    /// …but for the newest this many of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
    /// Multipart uploads not completed this many days after they began are aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_upload_days: Option<u32>,
}

/// What a pass does to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Keep,
    /// The key's latest expired: deleted as its bucket's versioning says.
    Expire,
    /// Deleted for good (a noncurrent version, or a delete marker left alone).
    Remove,
}

/// What the rules do to the versions of one key, newest first (`versions[0]` the
/// latest), at `now` with days `day` ms long.
pub fn judge(rules: &[Rule], versions: &[VersionRow], now: i64, day: i64) -> Vec<Action> {
    let days = |n: u32| i64::from(n).saturating_mul(day);
    let mut out = vec![Action::Keep; versions.len()];
    for r in rules.iter().filter(|r| r.enabled) {
        let picks = |v: &VersionRow| r.filter.selects(v) && !(v.delete_marker && r.filter.needs_data());
        if let Some(latest) = versions.first() {
            let due = r.expiration_days.is_some_and(|d| now >= latest.last_modified.saturating_add(days(d)))
                || r.expiration_date.is_some_and(|d| now >= d);
            if !latest.delete_marker && due && picks(latest) {
                out[0] = Action::Expire;
            }
            if latest.delete_marker && versions.len() == 1 && r.expired_object_delete_marker && picks(latest) {
                out[0] = Action::Remove;
            }
        }
        if let Some(d) = r.noncurrent_days {
            let keep = r.newer_noncurrent_versions.unwrap_or(0) as usize;
            let mut seen = 0;
            for i in 1..versions.len() {
                let v = &versions[i];
                if !picks(v) {
                    continue;
                }
                seen += 1;
                // Noncurrent since its successor was written.
                let since = versions[i - 1].last_modified;
                if seen > keep && now >= since.saturating_add(days(d)) {
                    out[i] = Action::Remove;
                }
            }
        }
    }
    out
}

/// What one pass over a bucket did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Current versions expired.
    pub expired: u64,
    /// Versions and markers deleted for good.
    pub removed: u64,
    /// Deletes refused by object lock.
    pub locked: u64,
    /// Uploads aborted.
    pub aborted: u64,
}

/// Applies `rules` to every version and upload of `bucket` once.
pub async fn apply(ctx: &PipelineCtx, bucket: &str, rules: &[Rule], day: Duration) -> Result<Applied, PipelineError> {
    let day = day.as_millis().max(1) as i64;
    let mut done = Applied::default();
    let mut after: Option<VersionRow> = None;
    let mut key_versions: Vec<VersionRow> = Vec::new();
    loop {
        let (from, exclusive) = match &after {
            Some(v) => (v.key.clone(), true),
            None => (Vec::new(), false),
        };
        let page = ctx.meta.list_versions(bucket, &from, exclusive, after.as_ref(), 1000).await?;
        let end = page.len() < 1000;
        after = page.last().map(|l| l.version.clone());
        for l in page {
            if key_versions.first().is_some_and(|v| v.key != l.version.key) {
                judge_key(ctx, bucket, rules, &std::mem::take(&mut key_versions), day, &mut done).await?;
            }
            key_versions.push(l.version);
        }
        if end {
            break;
        }
    }
    if !key_versions.is_empty() {
        judge_key(ctx, bucket, rules, &key_versions, day, &mut done).await?;
    }
    abort_uploads(ctx, bucket, rules, day, &mut done).await?;
    Ok(done)
}

async fn judge_key(
    ctx: &PipelineCtx,
    bucket: &str,
    rules: &[Rule],
    versions: &[VersionRow],
    day: i64,
    done: &mut Applied,
) -> Result<(), PipelineError> {
    for (v, action) in versions.iter().zip(judge(rules, versions, now_ms(), day)) {
        let r = match action {
            Action::Keep => continue,
            // Only if it is still the version judged.
            Action::Expire => {
                let condition = DeleteCondition { etag: Some(v.etag.clone()), ..Default::default() };
                crate::pipeline::delete(ctx, bucket, &v.key, &condition).await.map(|_| done.expired += 1)
            }
            Action::Remove => crate::pipeline::delete_version(ctx, bucket, &v.key, VersionRef::Id(v.id), false)
                .await
                .map(|_| done.removed += 1),
        };
        match r {
            Ok(()) => {}
            Err(PipelineError::Meta(MetaError::Locked(why))) => {
                done.locked += 1;
                tracing::debug!(bucket, version = %v.id, protected_by = why, "lifecycle left a locked version");
            }
            // Changed meanwhile: the next pass judges it again.
            Err(PipelineError::Meta(MetaError::Precondition(_) | MetaError::NoSuchKey)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn abort_uploads(
    ctx: &PipelineCtx,
    bucket: &str,
    rules: &[Rule],
    day: i64,
    done: &mut Applied,
) -> Result<(), PipelineError> {
    let rules: Vec<(&str, i64)> = rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| r.abort_incomplete_upload_days.map(|d| (r.filter.prefix.as_str(), i64::from(d) * day)))
        .collect();
    if rules.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let (mut key, mut id) = (Vec::new(), String::new());
    loop {
        let page = ctx.meta.list_uploads(bucket, &key, &id, 1000).await?;
        let end = page.len() < 1000;
        for u in &page {
            let due =
                rules.iter().any(|(prefix, after)| u.key.starts_with(prefix.as_bytes()) && now >= u.created_at + after);
            if due && ctx.meta.abort_upload(u.id).await? {
                done.aborted += 1;
            }
        }
        match page.last() {
            Some(u) if !end => (key, id) = (u.key.clone(), u.id.to_string()),
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ObjectAttrs, Retention, VersionId};

    fn v(n: u8, key: &str, at: i64, marker: bool) -> VersionRow {
        VersionRow {
            id: VersionId([n; 16]),
            bucket: "b".into(),
            key: key.as_bytes().to_vec(),
            size: if marker { 0 } else { 100 },
            etag: "e".into(),
            last_modified: at,
            attrs: ObjectAttrs::default(),
            checksum_value: None,
            checksum_type: None,
            part_count: u32::from(!marker),
            null_version: false,
            delete_marker: marker,
            recorded_at: at,
            lock: Retention::default(),
        }
    }

    #[test]
    fn rules_judge_current_noncurrent_markers_by_their_days_and_filters() {
        let day = 1000;
        let expire = Rule { id: "e".into(), enabled: true, expiration_days: Some(2), ..Default::default() };
        // Written at 0: due at 2 days.
        assert_eq!(judge(std::slice::from_ref(&expire), &[v(1, "k", 0, false)], 1999, day), [Action::Keep]);
        assert_eq!(judge(std::slice::from_ref(&expire), &[v(1, "k", 0, false)], 2000, day), [Action::Expire]);
        let off = Rule { enabled: false, ..expire.clone() };
        assert_eq!(judge(&[off], &[v(1, "k", 0, false)], 9000, day), [Action::Keep]);
        let other = Rule { filter: Filter { prefix: "tmp/".into(), ..Default::default() }, ..expire.clone() };
        assert_eq!(judge(std::slice::from_ref(&other), &[v(1, "k", 0, false)], 9000, day), [Action::Keep]);
        assert_eq!(judge(&[other], &[v(1, "tmp/k", 0, false)], 9000, day), [Action::Expire]);
        let mut tagged = v(1, "k", 0, false);
        tagged.attrs.tags.insert("class".into(), "scratch".into());
        let by_tag = Rule {
            filter: Filter { tags: BTreeMap::from([("class".into(), "scratch".into())]), ..Default::default() },
            ..expire.clone()
        };
        assert_eq!(judge(std::slice::from_ref(&by_tag), &[tagged], 9000, day), [Action::Expire]);
        assert_eq!(judge(&[by_tag], &[v(1, "k", 0, false)], 9000, day), [Action::Keep]);
        let big = Rule { filter: Filter { size_greater_than: Some(100), ..Default::default() }, ..expire };
        assert_eq!(judge(&[big], &[v(1, "k", 0, false)], 9000, day), [Action::Keep], "100 is not > 100");

        // Noncurrent: from when the next version was written; the newest 1 kept.
        let nc = Rule {
            id: "n".into(),
            enabled: true,
            noncurrent_days: Some(1),
            newer_noncurrent_versions: Some(1),
            ..Default::default()
        };
        let history = [v(4, "k", 4000, false), v(3, "k", 3000, false), v(2, "k", 2000, false), v(1, "k", 1000, false)];
        // v3 is the newest noncurrent (kept); v2 noncurrent since 3000, v1 since 2000.
        assert_eq!(
            judge(std::slice::from_ref(&nc), &history, 3500, day),
            [Action::Keep, Action::Keep, Action::Keep, Action::Remove]
        );
        assert_eq!(
            judge(std::slice::from_ref(&nc), &history, 4000, day),
            [Action::Keep, Action::Keep, Action::Remove, Action::Remove]
        );
        assert_eq!(judge(&[nc], &history, 2999, day), [Action::Keep; 4]);

        // A marker with nothing behind it goes; one with versions stays.
        let markers = Rule { id: "m".into(), enabled: true, expired_object_delete_marker: true, ..Default::default() };
        assert_eq!(judge(std::slice::from_ref(&markers), &[v(9, "k", 0, true)], 1, day), [Action::Remove]);
        assert_eq!(judge(&[markers], &[v(9, "k", 0, true), v(1, "k", 0, false)], 1, day), [Action::Keep; 2]);
    }
}

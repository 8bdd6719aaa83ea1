//! The orphan sweep: each location is listed (through a URL the presigner signs:
//! edge stores have a listing endpoint, S3 stores `ListObjectsV2`; Swift's TempURLs
//! cover objects only, so Swift locations are not swept), and every fragment that no
//! seal references, and every manifest or tombstone the store does not know, older
//! than `pipeline.pending_grace` is deleted — what a crash between an upload and its
//! commit, or a delete that failed after its seal was forgotten, left behind.
//!
//! A pass deletes at most a tenth of what the metadata places at a location (at
//! least 100): a store whose fragments are mostly unknown to the metadata is far
//! more likely to be one the metadata lost track of (a database restored from an
//! old backup) than one full of garbage, and deleting would destroy the only copy.
//! Such a location is left alone, with an error in the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{STRETCH, Upkeep};
use crate::backend::FragmentRef;
use crate::ledger::{Kind, parse_name};
use crate::meta::{MetaError, PassRow, SealId, now_ms};
use crate::pipeline::cleanup::delete_fragments;

/// The cursor's location once every location is done (no location can be named
/// so: names are letters, digits, - and _).
const END: &str = "/end";

/// Orphans deleted from one location per pass at least, whatever it holds.
const MIN_DELETE_CAP: u64 = 100;

/// What a stretch of sweeping did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects listed.
    pub listed: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Orphans younger than the grace (left for a later pass).
    pub young: u64,
    /// Locations that cannot be listed, or whose sweep was refused.
    pub skipped: Vec<String>,
    /// Whether the pass reached its end.
    pub finished: bool,
}

/// Where a pass stands: a location, the last name listed there, and the orphans
/// deleted there so far (`location\tafter\tdeleted`).
fn split(cursor: &str) -> (&str, Option<&str>, u64) {
    let mut parts = cursor.split('\t');
    let location = parts.next().unwrap_or_default();
    let after = parts.next().filter(|a| !a.is_empty());
    let deleted = parts.next().and_then(|d| d.parse().ok()).unwrap_or(0);
    (location, after, deleted)
}

/// Whether a listed name is a fragment's (`<seal id>/<index>`, or
/// `<seal id>/<index>.<hex>` when rebuilt): anything else below the prefix is not
/// the gateway's to judge.
pub fn fragment_name(name: &str) -> bool {
    let index = |i: &str| match i.split_once('.') {
        Some((i, tag)) => i.parse::<u8>().is_ok() && !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        None => i.parse::<u8>().is_ok(),
    };
    name.split_once('/').is_some_and(|(seal, i)| seal.parse::<SealId>().is_ok() && index(i))
}

/// Sweeps the pass `name` from where it stands, for about `budget`, saving its place
/// after every page.
pub async fn sweep_step(up: &Upkeep, name: &str, budget: Duration) -> Result<SweepReport, MetaError> {
    let ctx = &up.ctx;
    let started = Instant::now();
    let grace = ctx.config.pending_grace.0.as_millis() as i64;
    let mut pass = match ctx.meta.pass(name).await? {
        Some(p) => p,
        None => PassRow { name: name.to_string(), started_at: now_ms(), ..PassRow::default() },
    };
    let locations: Vec<String> = ctx.catalog.view().locations.keys().cloned().collect();
    let mut report = SweepReport::default();
    loop {
        let (current, after, mut deleted_here) = split(&pass.cursor);
        let location = if current.is_empty() {
            locations.first().cloned()
        } else {
            Some(current.to_string()).filter(|l| locations.contains(l))
        };
        let Some(location) = location else {
            info!(pass = name, checked = pass.checked, deleted = pass.found, "sweep pass complete");
            pass =
                PassRow { name: name.to_string(), started_at: now_ms(), finished_at: now_ms(), ..PassRow::default() };
            ctx.meta.save_pass(&pass).await?;
            report.finished = true;
            return Ok(report);
        };
        // The next location's cursor; past the last one, a name no location has.
        let next_location = || match locations.iter().skip_while(|l| **l != location).nth(1) {
            Some(l) => format!("{l}\t\t0"),
            None => format!("{END}\t\t0"),
        };
        let page = match ctx.locations.list(&location, after).await {
            Ok(p) => p,
            Err(e) => {
                warn!(location = %location, error = %e, "not swept: cannot list it");
                report.skipped.push(location.clone());
                pass.cursor = next_location();
                ctx.meta.save_pass(&pass).await?;
                continue;
            }
        };
        let (known, _) = ctx.meta.fragments_at_count(&location).await?;
        let cap = MIN_DELETE_CAP.max(known as u64 / 10);
        let mut refused = false;
        let mut orphans = Vec::new();
        for o in &page.objects {
            report.listed += 1;
            pass.checked += 1;
            let known = if fragment_name(&o.name) {
                ctx.meta.fragment_known(&location, &o.name).await?
            } else if matches!(parse_name(&o.name), Some((Kind::Manifest | Kind::Pack | Kind::Tombstone, ..))) {
                // A manifest or tombstone of a write or delete that failed to commit.
                ctx.meta.record_known(&o.name).await?
            } else {
                true
            };
            if known {
                continue;
            }
            if o.modified > now_ms() - grace {
                report.young += 1;
                continue;
            }
            if deleted_here + orphans.len() as u64 >= cap {
                refused = true;
                break;
            }
            orphans.push(FragmentRef { location: location.clone(), name: o.name.clone(), len: o.size, tenant: None });
        }
        let tried = orphans.len() as u64;
        let failed = delete_fragments(ctx, orphans).await.len() as u64;
        if failed > 0 {
            warn!(location = %location, failed, "orphans not deleted; the next pass tries again");
        }
        deleted_here += tried - failed;
        report.deleted += tried - failed;
        pass.found += (tried - failed) as i64;
        up.stats.orphans_deleted.fetch_add(tried - failed, std::sync::atomic::Ordering::Relaxed);
        if refused {
            error!(
                location = %location,
                deleted = deleted_here,
                cap,
                "sweep stopped: the location holds far more fragments than the metadata knows of; \
                 left alone (was the metadata restored from an old backup?)"
            );
            report.skipped.push(location.clone());
        }
        pass.cursor = match page.next.filter(|_| !refused) {
            Some(after) => format!("{location}\t{after}\t{deleted_here}"),
            None => next_location(),
        };
        ctx.meta.save_pass(&pass).await?;
        if started.elapsed() >= budget {
            return Ok(report);
        }
    }
}

/// The background sweep's pass.
pub const BACKGROUND: &str = "sweep";

/// Runs the background sweep on the replica holding the `sweep` lease.
pub fn spawn(up: Arc<Upkeep>) {
    let interval = up.config.sweep_interval.0;
    super::spawn_pass(up, BACKGROUND, interval, |up| async move {
        sweep_step(&up, BACKGROUND, STRETCH).await.map(|r| r.finished)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_names() {
        assert_eq!(split(""), ("", None, 0));
        assert_eq!(split("l1\t\t0"), ("l1", None, 0));
        assert_eq!(split("l1\tab/3\t12"), ("l1", Some("ab/3"), 12));
        assert!(fragment_name(&format!("{}/3", "ab".repeat(16))));
        assert!(fragment_name(&format!("{}/3.0a1b2c3d4e5f", "ab".repeat(16))));
        for other in ["ab/3", &format!("{}/x", "ab".repeat(16)), "README", &format!("{}/300", "ab".repeat(16))] {
            assert!(!fragment_name(other), "{other}");
        }
    }
}

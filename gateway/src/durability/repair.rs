//! Repair: degraded seals (fewer than `n` healthy fragments), lowest margin first,
//! then oldest. For each fragment that is not stored:
//!
//! 1. If its location is in service, it is read back first: a fragment that is
//!    there and good after all (a file put back, a location back from an outage)
//!    is simply stored again — one failed read condemns nothing for ever.
//! 2. Otherwise it is rebuilt by recoding from the others (no key, no plaintext):
//!    at its own location when that one is in service — it just lost the object —,
//!    or, when the location is draining, drained or removed, at another location of
//!    the object's policy that holds none of the seal's fragments (same tier first,
//!    healthy first).
//!
//! A seal still degraded afterwards (its location is down, or too few survivors
//! answer) waits `durability.repair_backoff`, unless its location comes back first
//! (`watch.rs`). Bytes moved are taken from the repair rate, and a few seals are
//! repaired at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tracing::{debug, info, warn};

use super::Upkeep;
use crate::backend::FragmentRef;
use crate::catalog::CatalogView;
use crate::meta::{Fragment, FragmentState, LocationState, MetaError, RepairItem, Seal, now_ms};
use crate::pipeline::rebuild::rebuild;
use crate::pipeline::verify::{Verdict, verify};
use crate::placement::{Constraints, Replacing};

/// Seals taken from the queue per batch.
const BATCH: i64 = 16;

/// What repair did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Seals looked at.
    pub seals: u64,
    /// Seals back to full redundancy.
    pub healed: u64,
    /// Fragments rebuilt.
    pub rebuilt: u64,
    /// Fragments found good again.
    pub restored: u64,
    /// Fragments that could not be repaired now (retried after the backoff).
    pub failed: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl RepairReport {
    /// Both reports together.
    pub fn plus(&self, o: &RepairReport) -> RepairReport {
        RepairReport {
            seals: self.seals + o.seals,
            healed: self.healed + o.healed,
            rebuilt: self.rebuilt + o.rebuilt,
            restored: self.restored + o.restored,
            failed: self.failed + o.failed,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Repairs one batch from the queue. `None` when the queue (leaving out seals
/// waiting out their backoff) is empty.
pub async fn repair_batch(up: &Upkeep) -> Result<Option<RepairReport>, MetaError> {
    let items = up.ctx.meta.repair_queue(BATCH, false).await?;
    if items.is_empty() {
        return Ok(None);
    }
    let reports: Vec<Result<RepairReport, MetaError>> = futures::stream::iter(items)
        .map(|item| repair_seal(up, item))
        .buffer_unordered(up.config.repair_concurrency.max(1))
        .collect()
        .await;
    let mut total = RepairReport::default();
    for r in reports {
        total = total.plus(&r?);
    }
    Ok(Some(total))
}

/// Where fragment `f` of `seal` is rebuilt: its own location while that one is in
/// service, else another of the policy's that holds none of the seal's fragments.
fn target(up: &Upkeep, view: &CatalogView, item: &RepairItem, f: &Fragment) -> Option<String> {
    if view.locations.contains_key(&f.location) && view.state(&f.location) == LocationState::Active {
        return Some(f.location.clone());
    }
    let policy =
        item.policy.as_deref().and_then(|p| view.policies.get(p)).or_else(|| view.policies.get(&up.default_policy));
    let writable = policy.map(|p| view.writable(p).locations).unwrap_or_default();
    let taken: BTreeSet<&str> = item.seal.fragments.iter().map(|g| g.location.as_str()).collect();
    let candidates: Vec<String> = writable.into_iter().filter(|l| !taken.contains(l.as_str())).collect();
    let none = Constraints::default();
    let replacing = Replacing {
        from: &f.location,
        others: item.seal.fragments.iter().filter(|g| g.index != f.index).map(|g| g.location.as_str()).collect(),
        constraints: policy.map_or(&none, |p| &p.constraints),
    };
    up.ctx.placement.replacement(&candidates, &item.seal.id.0, &replacing, &view.locations, &up.ctx.health)
}

/// Repairs what it can of one seal, then defers it if it is still degraded.
async fn repair_seal(up: &Upkeep, item: RepairItem) -> Result<RepairReport, MetaError> {
    let ctx = &up.ctx;
    let mut report = RepairReport { seals: 1, ..RepairReport::default() };
    let view = ctx.catalog.view();
    let mut seal = item.seal.clone();
    let mut tried = BTreeSet::new();
    // Rebuilding one fragment may find others corrupt: they are taken up too.
    loop {
        let lost: Vec<Fragment> = seal
            .fragments
            .iter()
            .filter(|f| f.state != FragmentState::Stored && !tried.contains(&f.index))
            .cloned()
            .collect();
        if lost.is_empty() {
            break;
        }
        for f in lost {
            tried.insert(f.index);
            match repair_fragment(up, &view, &item, &mut seal, &f).await {
                Ok(Done::Restored) => report.restored += 1,
                Ok(Done::Rebuilt(bytes)) => {
                    report.rebuilt += 1;
                    report.bytes += bytes;
                }
                Ok(Done::Later(why)) => {
                    debug!(seal = %seal.id, fragment = f.index, reason = why, "repair waits");
                    report.failed += 1;
                }
                Err(e) => {
                    warn!(seal = %seal.id, fragment = f.index, location = %f.location, error = %e, "repair failed");
                    up.stats.repair_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    report.failed += 1;
                }
            }
        }
    }
    if seal.healthy() < usize::from(seal.params.n()) {
        let backoff = up.config.repair_backoff.0.as_millis() as i64;
        ctx.meta.defer_repair(seal.id, now_ms() + backoff).await?;
    } else {
        report.healed = 1;
    }
    Ok(report)
}

/// How one fragment's repair ended.
enum Done {
    /// It was good after all.
    Restored,
    /// Rebuilt: its bytes.
    Rebuilt(u64),
    /// Not now (why).
    Later(&'static str),
}

async fn repair_fragment(
    up: &Upkeep,
    view: &CatalogView,
    item: &RepairItem,
    seal: &mut Seal,
    f: &Fragment,
) -> Result<Done, crate::pipeline::PipelineError> {
    let ctx = &up.ctx;
    let in_service = view.state(&f.location) == LocationState::Active && view.locations.contains_key(&f.location);
    if in_service {
        if ctx.health.failures(&f.location) > 0 {
            return Ok(Done::Later("its location failed recently"));
        }
        up.repair_rate.acquire(f.size.max(1)).await;
        match verify(ctx, seal, f).await {
            Verdict::Good => {
                ctx.meta.set_fragment_state(seal.id, f.index, FragmentState::Stored).await?;
                mark(seal, f.index, FragmentState::Stored, &f.location);
                up.stats.restored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                info!(seal = %seal.id, fragment = f.index, location = %f.location, "fragment found good again");
                return Ok(Done::Restored);
            }
            Verdict::Unreachable(e) => {
                ctx.health.failed(&f.location);
                debug!(location = %f.location, error = %e, "location unreachable");
                return Ok(Done::Later("its location is unreachable"));
            }
            Verdict::Missing | Verdict::Corrupt(_) => {}
        }
    }
    let Some(to) = target(up, view, item, f) else { return Ok(Done::Later("no location to rebuild it at")) };
    if !ctx.meta.begin_repair(seal.id, f.index).await? {
        return Ok(Done::Later("not lost any more, or being rebuilt"));
    }
    let whole = crate::pipeline::fragment_layout(seal)?.fragment_len();
    // Survivors read, plus the fragment written.
    let cost = whole * (seal.healthy() as u64 + 1);
    up.repair_rate.acquire(cost).await;
    let started = Instant::now();
    let rebuilt = match rebuild(ctx, seal, f.index, &to).await {
        Ok(r) => r,
        Err(e) => {
            ctx.meta.abandon_repair(seal.id, f.index, f.state).await?;
            return Err(e);
        }
    };
    for &i in &rebuilt.corrupt {
        ctx.meta.set_fragment_state(seal.id, i, FragmentState::Corrupt).await?;
        if let Some(g) = seal.fragment(i).cloned() {
            mark(seal, i, FragmentState::Corrupt, &g.location);
        }
    }
    let recorded = ctx.meta.finish_repair(seal.id, &rebuilt.fragment).await?;
    let new = FragmentRef {
        location: rebuilt.fragment.location.clone(),
        name: rebuilt.fragment.name.clone(),
        len: whole,
        tenant: None,
    };
    if !recorded {
        // The seal went away meanwhile: the new copy is garbage. (If it is still
        // stored, someone else rebuilt the fragment: the copy is theirs.)
        if ctx.meta.seal(seal.id).await?.is_none_or(|s| s.state != crate::meta::SealState::Stored) {
            let _ = ctx.store.delete(&new).await;
        }
        return Ok(Done::Later("not being rebuilt by this repairer any more"));
    }
    crate::pipeline::follow_fragment(ctx, seal.id, &new.location, None).await;
    if to != f.location || f.name != new.name {
        // Rebuilt under a new name: whatever is left of the old copy is stale.
        let old = FragmentRef { location: f.location.clone(), name: f.name.clone(), ..new };
        if let Err(e) = ctx.store.delete(&old).await {
            debug!(location = %f.location, error = %e, "stale fragment copy not deleted");
        }
    }
    mark(seal, f.index, FragmentState::Stored, &to);
    up.stats.rebuilt(whole, rebuilt.read);
    info!(
        seal = %seal.id,
        fragment = f.index,
        from = %f.location,
        to = %to,
        bytes = whole,
        ms = started.elapsed().as_millis() as u64,
        "fragment rebuilt"
    );
    Ok(Done::Rebuilt(whole))
}

/// Notes a fragment's new state (and place) in the seal being repaired, so that the
/// next rebuild of the same seal reads from it.
fn mark(seal: &mut Seal, index: u8, state: FragmentState, location: &str) {
    if let Some(f) = seal.fragments.iter_mut().find(|f| f.index == index) {
        f.state = state;
        f.location = location.to_string();
    }
}

/// Runs repair in the background on the replica holding the `repair` lease.
pub fn spawn(up: Arc<Upkeep>) {
    let interval = up.config.repair_interval.0;
    let ctx = up.ctx.clone();
    let mut first = true;
    super::spawn_leased(ctx, "repair", Duration::from_secs(60), move || {
        let up = up.clone();
        let reset = std::mem::take(&mut first);
        async move {
            if reset {
                // Whatever a repairer that died left half done is lost again.
                match up.ctx.meta.reset_repairs().await {
                    Ok(0) => {}
                    Ok(n) => info!(fragments = n, "unfinished repairs from before taken up again"),
                    Err(e) => warn!(error = %e, "cannot reset unfinished repairs"),
                }
            }
            // An operator's repair job does the work meanwhile.
            if let Ok(Some(_)) = up.ctx.meta.live_job(crate::meta::JobKind::Repair, "").await {
                return interval;
            }
            match repair_batch(&up).await {
                Ok(Some(r)) => {
                    if r.rebuilt + r.restored > 0 {
                        info!(
                            seals = r.seals,
                            rebuilt = r.rebuilt,
                            restored = r.restored,
                            failed = r.failed,
                            "repaired"
                        );
                    }
                    // More may be waiting: come back at once.
                    Duration::ZERO
                }
                Ok(None) => interval,
                Err(e) => {
                    warn!(error = %e, "repair failed");
                    interval
                }
            }
        }
    });
}

//! Scrub: every stored fragment read back whole from its location (never from the
//! cache) and checked — the header names its seal, index and code, every record
//! passes its checksum — at a bounded rate. A fragment found missing or corrupt is
//! marked so, which puts its seal in the repair queue; a location that does not
//! answer is its own problem, not the fragment's. The pass keeps its place in the
//! metadata store, so that it resumes where it stopped after a restart or on
//! another replica.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::rate::RateLimiter;
use super::{STRETCH, Upkeep};
use crate::meta::{FragmentState, MetaError, PassRow, SealId, now_ms};
use crate::pipeline::verify::{Verdict, verify};

/// Seals fetched per step of a pass.
const BATCH: i64 = 8;

/// What a stretch of scrubbing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Fragments read back and checked.
    pub fragments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Found missing.
    pub missing: u64,
    /// Found corrupt.
    pub corrupt: u64,
    /// Whose location did not answer (not checked).
    pub unreachable: u64,
    /// Whether the pass reached its end (the next one starts over).
    pub finished: bool,
}

/// Scrubs the pass `name` from where it stands, for about `budget`, at `rate`,
/// saving its place after every batch of seals.
pub async fn scrub_step(
    up: &Upkeep,
    name: &str,
    rate: &RateLimiter,
    budget: Duration,
) -> Result<ScrubReport, MetaError> {
    let ctx = &up.ctx;
    let started = Instant::now();
    let mut pass = match ctx.meta.pass(name).await? {
        Some(p) => p,
        None => PassRow { name: name.to_string(), started_at: now_ms(), ..PassRow::default() },
    };
    let mut report = ScrubReport::default();
    // At least one batch, however small the budget.
    loop {
        let after = if pass.cursor.is_empty() { None } else { Some(pass.cursor.parse::<SealId>()?) };
        let seals = ctx.meta.stored_seals(after, BATCH).await?;
        let Some(last) = seals.last().map(|s| s.id) else {
            info!(pass = name, fragments = pass.checked, problems = pass.found, "scrub pass complete");
            pass = PassRow {
                name: name.to_string(),
                cursor: String::new(),
                started_at: now_ms(),
                finished_at: now_ms(),
                checked: 0,
                found: 0,
            };
            ctx.meta.save_pass(&pass).await?;
            report.finished = true;
            account(up, &report);
            return Ok(report);
        };
        for seal in &seals {
            for f in seal.fragments.iter().filter(|f| f.state == FragmentState::Stored) {
                rate.acquire(f.size.max(1)).await;
                let verdict = verify(ctx, seal, f).await;
                let state = match verdict {
                    Verdict::Good => {
                        ctx.meta.fragment_verified(seal.id, f.index).await?;
                        report.fragments += 1;
                        report.bytes += f.size;
                        None
                    }
                    Verdict::Missing => {
                        report.missing += 1;
                        Some(FragmentState::Missing)
                    }
                    Verdict::Corrupt(why) => {
                        warn!(seal = %seal.id, fragment = f.index, location = %f.location, reason = %why, "scrub: fragment corrupt");
                        report.corrupt += 1;
                        Some(FragmentState::Corrupt)
                    }
                    Verdict::Unreachable(e) => {
                        debug!(location = %f.location, error = %e, "scrub: location unreachable");
                        ctx.health.failed(&f.location);
                        report.unreachable += 1;
                        None
                    }
                };
                pass.checked += 1;
                if let Some(state) = state {
                    pass.found += 1;
                    ctx.meta.set_fragment_state(seal.id, f.index, state).await?;
                }
            }
        }
        pass.cursor = last.to_string();
        ctx.meta.save_pass(&pass).await?;
        if started.elapsed() >= budget {
            break;
        }
    }
    account(up, &report);
    Ok(report)
}

fn account(up: &Upkeep, r: &ScrubReport) {
    let s = &up.stats;
    s.scrubbed.fetch_add(r.fragments, std::sync::atomic::Ordering::Relaxed);
    s.scrubbed_bytes.fetch_add(r.bytes, std::sync::atomic::Ordering::Relaxed);
    s.found_missing.fetch_add(r.missing, std::sync::atomic::Ordering::Relaxed);
    s.found_corrupt.fetch_add(r.corrupt, std::sync::atomic::Ordering::Relaxed);
}

/// The background scrub's pass.
pub const BACKGROUND: &str = "scrub";

/// Runs the background scrub on the replica holding the `scrub` lease.
pub fn spawn(up: Arc<Upkeep>) {
    let interval = up.config.scrub_interval.0;
    super::spawn_pass(up, BACKGROUND, interval, |up| async move {
        scrub_step(&up, BACKGROUND, &up.scrub_rate, STRETCH).await.map(|r| r.finished)
    });
}

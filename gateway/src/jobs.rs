//! Background jobs: started through the admin API, recorded in the metadata store,
//! and run by whichever replica claims them first. The runner renews the job's
//! lease with each progress report; a replica that dies loses it and another takes
//! the job over (a drain resumes where the metadata says it is).
//!
//! | kind | what |
//! |---|---|
//! | `drain` | moves every fragment off a location by recoding, then marks it `drained` |
//! | `gc` | garbage collected now, until nothing collectable is left |
//! | `repair` | every degraded object repaired now, backoffs ignored (the background repairer pauses meanwhile) |
//! | `scrub` | every stored fragment read back and checked now, in a pass of its own that resumes after a restart |
//! | `sweep` | every location listed now and its orphans deleted, in a pass of its own |
//! | `rekey` | a master key rotation: everything re-wrapped under the new version, the old ones retired |

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::durability::rate::RateLimiter;
use crate::durability::{repair, scrub, sweep};
use crate::meta::{JobKind, JobRow, JobState, LocationState, MetaError};
use crate::pipeline::{cleanup, drain};
use crate::rekey;
use crate::state::Gateway;

/// How long a claimed job stays with its replica without a progress report.
pub const LEASE_MS: i64 = 30_000;
/// How often an idle runner looks for work.
const POLL: Duration = Duration::from_secs(1);
/// Seals fetched from the store per step of a drain.
const DRAIN_BATCH: i64 = 64;

/// How a job ended.
enum End {
    Succeeded(String),
    Cancelled(String),
    /// Another replica took it over (this one was too slow to report).
    Lost,
}

/// Runs jobs on this replica until the process ends.
pub fn spawn_runner(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let holder = gw.node.id().to_string();
        loop {
            match gw.meta.claim_job(&holder, LEASE_MS, gw.node.started_ms()).await {
                Ok(Some(job)) => {
                    info!(job = %job.id, kind = %job.kind, target = %job.target, "job started");
                    let (state, message) = match run(&gw, &holder, &job).await {
                        Ok(End::Succeeded(m)) => (JobState::Succeeded, m),
                        Ok(End::Cancelled(m)) => (JobState::Cancelled, m),
                        Ok(End::Lost) => continue,
                        Err(e) => (JobState::Failed, e.to_string()),
                    };
                    info!(job = %job.id, %state, message = %message, "job ended");
                    if let Err(e) = gw.meta.finish_job(&job.id, &holder, state, &message).await {
                        warn!(job = %job.id, error = %e, "cannot record the end of a job");
                    }
                }
                Ok(None) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    warn!(error = %e, "cannot look for jobs");
                    tokio::time::sleep(POLL * 5).await;
                }
            }
        }
    })
}

async fn run(gw: &Gateway, holder: &str, job: &JobRow) -> Result<End, Box<dyn std::error::Error + Send + Sync>> {
    Ok(match job.kind {
        JobKind::Drain => run_drain(gw, holder, job).await?,
        JobKind::Gc => run_gc(gw, holder, job).await?,
        JobKind::Repair => run_repair(gw, holder, job).await?,
        JobKind::Scrub => run_scrub(gw, holder, job).await?,
        JobKind::Sweep => run_sweep(gw, holder, job).await?,
        JobKind::Rekey => run_rekey(gw, holder, job).await?,
    })
}

/// Re-wraps everything sealed under an older master key version, pass after pass,
/// until a pass finds nothing left; then retires the older versions.
async fn run_rekey(gw: &Gateway, holder: &str, job: &JobRow) -> Result<End, rekey::RekeyError> {
    const BATCH: i64 = 256;
    let mut p = Progress { gw, holder, id: &job.id, total: job.total, done: job.done, failed: 0 };
    let version = gw.master.version();
    for pass in 1u32.. {
        let mut left = 0;
        let mut after = String::new();
        loop {
            let message = format!("re-wrapping data keys under master key version {version} (pass {pass})");
            match p.report(&message).await? {
                None => return Ok(End::Lost),
                Some(JobState::Cancelling) => {
                    return Ok(End::Cancelled(format!("cancelled after {} re-wrapped; both versions kept", p.done)));
                }
                Some(_) => {}
            }
            let (step, next) = rekey::rewrap_seals(gw, &after, BATCH).await?;
            p.done += step.done as i64;
            p.total = p.total.max(p.done);
            left += step.left;
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        let step = rekey::reseal_secrets(gw).await?;
        p.done += step.done as i64;
        left += step.left;
        let mut after = String::new();
        loop {
            if p.report(&format!("sealing records again under version {version} (pass {pass})")).await?.is_none() {
                return Ok(End::Lost);
            }
            let (step, next) = rekey::rewrite_records(gw, &after, BATCH).await?;
            p.done += step.done as i64;
            p.total = p.total.max(p.done);
            left += step.left;
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        if left == 0 && pass > 1 {
            let retired = rekey::finish(gw)?;
            return Ok(p
                .succeed(format!(
                    "{} keys, secrets and records under master key version {version}; retired {retired:?}",
                    p.done
                ))
                .await?);
        }
        // A second pass finds what writes in flight wrapped under the old version
        // while the first ran (and retries what failed).
        tokio::time::sleep(POLL * pass.min(10)).await;
    }
    Ok(End::Lost)
}

/// Collects garbage now, batch after batch, until nothing collectable is left.
async fn run_gc(gw: &Gateway, holder: &str, job: &JobRow) -> Result<End, MetaError> {
    const BATCH: i64 = 512;
    let ctx = &gw.pipeline;
    let mut p = Progress { gw, holder, id: &job.id, total: job.total, done: job.done, failed: 0 };
    loop {
        match p.report("collecting").await? {
            None => return Ok(End::Lost),
            Some(JobState::Cancelling) => return Ok(End::Cancelled(format!("cancelled after {} seals", p.done))),
            Some(_) => {}
        }
        let n = cleanup::collect_once(ctx, &cleanup::dead_writes(ctx), BATCH).await?;
        gw.upkeep.stats.collected.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        p.done += n as i64;
        p.total = p.done;
        if (n as i64) < BATCH {
            break;
        }
    }
    let message = format!("{} seals collected", p.done);
    p.succeed(message).await
}

/// Lists every location now and deletes its orphans, in a pass of the job's own.
async fn run_sweep(gw: &Gateway, holder: &str, job: &JobRow) -> Result<End, MetaError> {
    let pass = format!("job:{}", job.id);
    let mut p = Progress { gw, holder, id: &job.id, total: job.total, done: job.done, failed: job.failed };
    let mut total = sweep::SweepReport::default();
    loop {
        match p.report("sweeping").await? {
            None => return Ok(End::Lost),
            Some(JobState::Cancelling) => {
                gw.meta.delete_pass(&pass).await?;
                return Ok(End::Cancelled(format!("cancelled after {} orphans deleted", total.deleted)));
            }
            Some(_) => {}
        }
        let r = sweep::sweep_step(&gw.upkeep, &pass, Duration::from_secs(5)).await?;
        total.listed += r.listed;
        total.deleted += r.deleted;
        total.young += r.young;
        total.skipped.extend(r.skipped);
        p.done = total.listed as i64;
        p.total = p.done;
        p.failed = total.deleted as i64;
        if r.finished {
            break;
        }
    }
    gw.meta.delete_pass(&pass).await?;
    total.skipped.sort();
    total.skipped.dedup();
    let skipped =
        if total.skipped.is_empty() { String::new() } else { format!("; not swept: {}", total.skipped.join(", ")) };
    let message = format!(
        "{} objects listed: {} orphans deleted, {} younger than the grace left{skipped}",
        total.listed, total.deleted, total.young
    );
    p.succeed(message).await
}

/// Repairs every degraded seal now: their backoffs are lifted, then batches run
/// until the queue is empty (what could not be repaired is deferred again).
async fn run_repair(gw: &Gateway, holder: &str, job: &JobRow) -> Result<End, MetaError> {
    gw.meta.undefer_repairs().await?;
    let (_, fragments) = gw.meta.repair_backlog().await?;
    let mut p = Progress { gw, holder, id: &job.id, total: fragments.max(job.total), done: job.done, failed: 0 };
    let mut total = repair::RepairReport::default();
    loop {
        match p.report("repairing").await? {
            None => return Ok(End::Lost),
            Some(JobState::Cancelling) => {
                return Ok(End::Cancelled(format!("cancelled after {} fragments rebuilt", total.rebuilt)));
            }
            Some(_) => {}
        }
        let Some(r) = repair::repair_batch(&gw.upkeep).await? else { break };
        total = total.plus(&r);
        p.done += (r.rebuilt + r.restored) as i64;
        p.failed += r.failed as i64;
        p.total = p.total.max(p.done + p.failed);
    }
    let (seals, left) = gw.meta.repair_backlog().await?;
    let message = format!(
        "{} fragments rebuilt, {} found good again; {left} fragments of {seals} objects still to repair",
        total.rebuilt, total.restored
    );
    p.succeed(message).await
}

/// Scrubs every stored fragment now, in a pass of the job's own (`job:<id>`), at the
/// repair rate.
async fn run_scrub(gw: &Gateway, holder: &str, job: &JobRow) -> Result<End, MetaError> {
    let pass = format!("job:{}", job.id);
    let rate = RateLimiter::new(gw.upkeep.config.repair_rate.0);
    let total = gw.meta.stored_fragment_count().await?;
    let mut p = Progress { gw, holder, id: &job.id, total, done: job.done, failed: job.failed };
    let mut found = scrub::ScrubReport::default();
    loop {
        match p.report("scrubbing").await? {
            None => return Ok(End::Lost),
            Some(JobState::Cancelling) => {
                gw.meta.delete_pass(&pass).await?;
                return Ok(End::Cancelled(format!("cancelled after {} fragments checked", p.done)));
            }
            Some(_) => {}
        }
        let r = scrub::scrub_step(&gw.upkeep, &pass, &rate, Duration::from_secs(5)).await?;
        found.missing += r.missing;
        found.corrupt += r.corrupt;
        found.unreachable += r.unreachable;
        let checked = gw.meta.pass(&pass).await?.map_or(p.done, |s| s.checked);
        p.done = if r.finished { p.total } else { checked };
        p.failed = (found.missing + found.corrupt) as i64;
        if r.finished {
            break;
        }
    }
    gw.meta.delete_pass(&pass).await?;
    let message = format!(
        "{} fragments checked: {} missing, {} corrupt (queued for repair), {} not reachable",
        p.total, found.missing, found.corrupt, found.unreachable
    );
    p.succeed(message).await
}

/// Progress of a drain, reported with each step.
struct Progress<'a> {
    gw: &'a Gateway,
    holder: &'a str,
    id: &'a str,
    total: i64,
    done: i64,
    failed: i64,
}

impl Progress<'_> {
    /// Reports; returns the job's state now (`None`: the job went to another replica).
    async fn report(&self, message: &str) -> Result<Option<JobState>, MetaError> {
        let counts = (self.total, self.done, self.failed);
        self.gw.meta.job_progress(self.id, self.holder, LEASE_MS, counts, message).await
    }

    /// Reports the closing `message`: the job succeeded, unless another replica
    /// has taken it meanwhile.
    async fn succeed(&self, message: String) -> Result<End, MetaError> {
        Ok(match self.report(&message).await? {
            None => End::Lost,
            Some(_) => End::Succeeded(message),
        })
    }
}

async fn run_drain(gw: &Gateway, holder: &str, job: &JobRow) -> Result<End, MetaError> {
    let location = job.target.as_str();
    gw.meta.set_location_state(location, LocationState::Draining).await?;
    if let Err(e) = gw.refresh_catalog().await {
        warn!(error = %e, "catalog refresh failed");
    }
    let (initial, _) = gw.meta.fragments_at_count(location).await?;
    let mut p = Progress { gw, holder, id: &job.id, total: initial.max(job.total), done: job.done, failed: 0 };
    let mut pass = 0u32;
    loop {
        pass = pass.saturating_add(1);
        // One pass over the stored seals with a fragment here.
        let mut after = None;
        p.failed = 0;
        loop {
            let batch = gw.meta.fragments_at(location, after, DRAIN_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.seal.id);
            for item in &batch {
                match p.report(&format!("moving fragments off {location}")).await? {
                    None => return Ok(End::Lost),
                    Some(JobState::Cancelling) => return cancel(gw, location, &p).await,
                    Some(_) => {}
                }
                let view = gw.catalog.view();
                let Some(to) = drain::target(&gw.pipeline, &view, location, item) else {
                    p.failed += 1;
                    warn!(location, seal = %item.seal.id, "no location to move a fragment to");
                    continue;
                };
                match drain::move_fragment(&gw.pipeline, location, item, &to).await {
                    Ok(m) if m.recorded => p.done += 1,
                    Ok(_) => {}
                    Err(e) => {
                        p.failed += 1;
                        warn!(location, seal = %item.seal.id, to = %to, error = %e, "fragment not moved; will retry");
                    }
                }
            }
        }
        let (left, _) = gw.meta.fragments_at_count(location).await?;
        p.total = p.total.max(p.done + left);
        // The records there too (manifests, tombstones, catalog generations).
        let view = gw.catalog.view();
        let targets: Vec<String> = view
            .locations
            .keys()
            .filter(|l| *l != location && view.state(l) == LocationState::Active)
            .cloned()
            .collect();
        let (_, records_left) = crate::pipeline::rehome_records(&gw.pipeline, location, &targets).await?;
        if left == 0 && records_left == 0 {
            let message = format!("{} fragments moved off {location}", p.done);
            if p.report(&message).await?.is_none() {
                return Ok(End::Lost);
            }
            gw.meta.set_location_state(location, LocationState::Drained).await?;
            if let Err(e) = gw.refresh_catalog().await {
                warn!(error = %e, "catalog refresh failed");
            }
            return Ok(End::Succeeded(message));
        }
        // What is left: moves that failed (retried), writes placed here before every
        // replica saw the drain, and fragments of deleted objects awaiting collection.
        let message =
            format!("{left} fragments left on {location} (failed moves, in-flight writes, garbage); retrying");
        match p.report(&message).await? {
            None => return Ok(End::Lost),
            Some(JobState::Cancelling) => return cancel(gw, location, &p).await,
            Some(_) => {}
        }
        // Back off while what is left does not go away.
        tokio::time::sleep(POLL * pass.min(30)).await;
    }
}

async fn cancel(gw: &Gateway, location: &str, p: &Progress<'_>) -> Result<End, MetaError> {
    gw.meta.set_location_state(location, LocationState::Active).await?;
    if let Err(e) = gw.refresh_catalog().await {
        warn!(error = %e, "catalog refresh failed");
    }
    Ok(End::Cancelled(format!("cancelled after moving {} fragments; {location} is active again", p.done)))
}

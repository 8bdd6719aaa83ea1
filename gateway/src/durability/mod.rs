//! Durability as maintained state: every object goes back to full redundancy by
//! itself.
//!
//! | file | what |
//! |---|---|
//! | `repair.rs` | degraded seals, lowest margin first: each lost or corrupt fragment checked again, then rebuilt by recoding (no key, no plaintext) at its own location or, when that one is out of service, at another under the object's policy |
//! | `scrub.rs` | every fragment read back whole from its location and checked, at a bounded rate, resuming where it stopped |
//! | `sweep.rs` | each location listed; fragments no seal references, older than the pending grace, deleted |
//! | `watch.rs` | each location probed; one coming back puts what it missed at the head of the queue |
//! | `collect.rs` | garbage collection until nothing is left, many deletes at once |
//! | `rate.rs` | the token bucket that keeps background work to its rate |
//! | (here) | the lifecycle pass: buckets' rules applied (`crate::lifecycle`) |
//!
//! Each background task runs on one replica at a time (a lease in the metadata
//! store, held by the node id, so that a restarted replica takes its own back at
//! once), and the operator can run a pass now (`skyshard admin repair|scrub|sweep`,
//! jobs that resume on another replica or after a restart).

pub mod collect;
pub mod rate;
pub mod repair;
pub mod scrub;
pub mod sweep;
#[cfg(test)]
mod tests;
pub mod watch;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::DurabilityConfig;
use crate::meta::MetaError;
use crate::pipeline::PipelineCtx;

/// What the background upkeep needs.
#[derive(Debug)]
pub struct Upkeep {
    /// The data path (metadata, locations, placement, catalog, health).
    pub ctx: Arc<PipelineCtx>,
    /// Rates and intervals.
    pub config: DurabilityConfig,
    /// The default placement policy (for objects whose bucket has none left).
    pub default_policy: String,
    /// Tells the watcher whether a location answers.
    pub prober: Arc<dyn watch::Prober>,
    /// Counters.
    pub stats: Stats,
    /// Repair's share of bandwidth.
    pub repair_rate: rate::RateLimiter,
    /// The background scrub's share.
    pub scrub_rate: rate::RateLimiter,
}

impl Upkeep {
    /// Upkeep of `ctx` as `config` says.
    pub fn new(
        ctx: Arc<PipelineCtx>,
        config: DurabilityConfig,
        default_policy: String,
        prober: Arc<dyn watch::Prober>,
    ) -> Self {
        let repair_rate = rate::RateLimiter::new(config.repair_rate.0);
        let scrub_rate = rate::RateLimiter::new(config.scrub_rate.0);
        Self { ctx, config, default_policy, prober, stats: Stats::default(), repair_rate, scrub_rate }
    }
}

/// Counters of the upkeep since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Fragments rebuilt by recoding.
    pub rebuilt: AtomicU64,
    /// Their bytes.
    pub rebuilt_bytes: AtomicU64,
    /// Bytes read from surviving fragments to rebuild them.
    pub survivor_bytes: AtomicU64,
    /// Fragments found good again when checked before a rebuild (a file put back,
    /// a location back).
    pub restored: AtomicU64,
    /// Rebuilds that failed (retried after the backoff).
    pub repair_failures: AtomicU64,
    /// Fragments read back whole by scrub.
    pub scrubbed: AtomicU64,
    /// Their bytes.
    pub scrubbed_bytes: AtomicU64,
    /// Fragments scrub found missing.
    pub found_missing: AtomicU64,
    /// Fragments scrub found corrupt.
    pub found_corrupt: AtomicU64,
    /// Orphans the sweep deleted.
    pub orphans_deleted: AtomicU64,
    /// Seals collected.
    pub collected: AtomicU64,
    /// Fragments rebuilt in the last minute (time, bytes), for the rate.
    recent: Mutex<VecDeque<(Instant, u64)>>,
}

/// The window of [`Stats::repair_rate`].
const RATE_WINDOW: Duration = Duration::from_secs(60);

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a rebuilt fragment of `bytes`, from `read` bytes of survivors.
    pub fn rebuilt(&self, bytes: u64, read: u64) {
        Self::add(&self.rebuilt, 1);
        Self::add(&self.rebuilt_bytes, bytes);
        Self::add(&self.survivor_bytes, read);
        if let Ok(mut r) = self.recent.lock() {
            let now = Instant::now();
            r.push_back((now, bytes));
            while r.front().is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW) {
                r.pop_front();
            }
        }
    }

    /// Fragments and bytes per second rebuilt over the last minute.
    pub fn repair_rate(&self) -> (f64, f64) {
        let Ok(r) = self.recent.lock() else { return (0.0, 0.0) };
        let now = Instant::now();
        let recent: Vec<u64> =
            r.iter().filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW).map(|(_, b)| *b).collect();
        let secs = RATE_WINDOW.as_secs_f64();
        (recent.len() as f64 / secs, recent.iter().sum::<u64>() as f64 / secs)
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Runs a background task under the lease `name`: `step` runs whenever this
/// replica holds it, then the task sleeps `pause` (what `step` returns).
pub(crate) fn spawn_leased<F, Fut>(ctx: Arc<PipelineCtx>, name: &'static str, ttl: Duration, mut step: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Duration> + Send,
{
    tokio::spawn(async move {
        let holder = ctx.node.id().to_string();
        let ttl_ms = ttl.max(Duration::from_secs(10)).as_millis() as i64;
        loop {
            let pause = match ctx.meta.acquire_lease(name, &holder, ttl_ms).await {
                Ok(true) => step().await,
                Ok(false) => Duration::from_secs(5),
                Err(e) => {
                    tracing::warn!(task = name, error = %e, "lease unavailable");
                    Duration::from_secs(5)
                }
            };
            tokio::time::sleep(pause.max(Duration::from_millis(100))).await;
        }
    });
}

/// How long until the next pass of `name` is due, `interval` after the last one
/// ended: a pass in progress, or one never run, is due now. (After a restart, a
/// pass that finished an hour ago is not started again at once.)
pub(crate) async fn pass_due_in(ctx: &PipelineCtx, name: &str, interval: Duration) -> Result<Duration, MetaError> {
    let Some(pass) = ctx.meta.pass(name).await? else { return Ok(Duration::ZERO) };
    if !pass.cursor.is_empty() || pass.checked > 0 || pass.finished_at <= 0 {
        return Ok(Duration::ZERO);
    }
    let due = pass.finished_at.saturating_add(interval.as_millis() as i64);
    Ok(Duration::from_millis(due.saturating_sub(crate::meta::now_ms()).max(0) as u64))
}

/// How long a background pass runs before it saves its place and renews its lease.
const STRETCH: Duration = Duration::from_secs(20);

/// Runs the background pass `name` (also its lease's name) on the replica holding
/// the lease: due `interval` after the last complete pass ended, then `step` after
/// `step` (each a stretch of the pass; `true` when the pass is complete).
pub(crate) fn spawn_pass<F, Fut>(up: Arc<Upkeep>, name: &'static str, interval: Duration, step: F)
where
    F: Fn(Arc<Upkeep>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<bool, MetaError>> + Send + 'static,
{
    let ctx = up.ctx.clone();
    spawn_leased(ctx, name, Duration::from_secs(60), move || {
        let stretch = step(up.clone());
        let ctx = up.ctx.clone();
        async move {
            match pass_due_in(&ctx, name, interval).await {
                Ok(wait) if !wait.is_zero() => return wait,
                Ok(_) => {}
                Err(e) => tracing::warn!(pass = name, error = %e, "cannot read where the pass stands"),
            }
            match stretch.await {
                Ok(true) => interval,
                Ok(false) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(pass = name, error = %e, "background pass failed");
                    Duration::from_secs(30)
                }
            }
        }
    });
}

/// Rewrites packs whose dead share passed `compact_dead_percent` (on the replica
/// holding the `compact` lease), a batch at a time, every `compact_interval`.
fn spawn_compaction(up: Arc<Upkeep>) {
    const BATCH: i64 = 32;
    let ctx = up.ctx.clone();
    spawn_leased(ctx, "compact", Duration::from_secs(60), move || {
        let ctx = up.ctx.clone();
        let (interval, percent) = (up.config.compact_interval.0, up.config.compact_dead_percent);
        async move {
            // A pack is left one interval for its members to commit.
            let before = crate::meta::now_ms() - interval.as_millis() as i64;
            match crate::pipeline::compact::compact_once(&ctx, percent, before, BATCH).await {
                Ok(n) if n as i64 == BATCH => Duration::ZERO,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(packs = n, "packs compacted");
                    }
                    interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, "compaction failed; will try again");
                    interval.min(Duration::from_secs(60))
                }
            }
        }
    });
}

/// Writes manifests for the versions a gateway from before manifests stored (on the
/// replica holding the `backfill` lease), until none is left.
fn spawn_backfill(up: Arc<Upkeep>) {
    const BATCH: i64 = 256;
    let ctx = up.ctx.clone();
    spawn_leased(ctx, "backfill", Duration::from_secs(60), move || {
        let ctx = up.ctx.clone();
        async move {
            match crate::pipeline::backfill(&ctx, BATCH).await {
                Ok(n) if n as i64 == BATCH => Duration::ZERO,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(versions = n, "manifests written for versions stored before manifests");
                    }
                    Duration::from_secs(600)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "manifests not written for older versions; will try again");
                    Duration::from_secs(60)
                }
            }
        }
    });
}

/// Runs lifecycle passes in the background, every `durability.lifecycle_interval`.
fn spawn_lifecycle(up: Arc<Upkeep>) {
    let interval = up.config.lifecycle_interval.0;
    crate::durability::spawn_pass(up, "lifecycle", interval, |up| async move {
        let ctx = &up.ctx;
        let mut pass = ctx.meta.pass("lifecycle").await?.unwrap_or_default();
        pass.name = "lifecycle".into();
        pass.started_at = crate::meta::now_ms();
        for (bucket, rules) in ctx.meta.bucket_lifecycles().await? {
            let rules: Vec<crate::lifecycle::Rule> = match serde_json::from_str(&rules) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(bucket, error = %e, "lifecycle rules unreadable");
                    continue;
                }
            };
            match crate::lifecycle::apply(ctx, &bucket, &rules, up.config.lifecycle_day.0).await {
                Ok(a) => {
                    if a != crate::lifecycle::Applied::default() {
                        tracing::info!(
                            bucket,
                            expired = a.expired,
                            removed = a.removed,
                            locked = a.locked,
                            aborted = a.aborted,
                            "lifecycle applied"
                        );
                    }
                    pass.checked += 1;
                }
                Err(e) => tracing::warn!(bucket, error = %e, "lifecycle pass failed; the next one tries again"),
            }
        }
        pass.cursor.clear();
        pass.checked = 0;
        pass.finished_at = crate::meta::now_ms();
        ctx.meta.save_pass(&pass).await?;
        Ok(true)
    });
}

/// Starts the background upkeep: repair, scrub, the location watcher, the sweep and
/// garbage collection, lifecycle rules, and the manifests of versions stored before
/// them.
pub fn spawn(up: Arc<Upkeep>) {
    collect::spawn(up.clone());
    spawn_backfill(up.clone());
    watch::spawn(up.clone());
    if up.config.repair {
        repair::spawn(up.clone());
    }
    if up.config.scrub_rate.0 > 0 {
        scrub::spawn(up.clone());
    }
    spawn_lifecycle(up.clone());
    if !up.config.compact_interval.0.is_zero() {
        spawn_compaction(up.clone());
    }
    if !up.config.sweep_interval.0.is_zero() {
        sweep::spawn(up);
    }
}

//! Garbage collection in the background, on the replica holding the `gc` lease:
//! batch after batch until nothing collectable is left, then a pause of
//! `pipeline.gc_interval`. Each batch deletes many fragments at once and forgets
//! its seals in one transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Upkeep;
use crate::pipeline::cleanup::{collect_once, dead_writes};

/// Seals per batch.
const BATCH: i64 = 512;

/// Starts the collector.
pub fn spawn(up: Arc<Upkeep>) {
    let interval = up.ctx.config.gc_interval.0;
    let ctx = up.ctx.clone();
    super::spawn_leased(ctx, "gc", (3 * interval).max(super::STRETCH * 3), move || {
        let up = up.clone();
        async move {
            let started = Instant::now();
            let mut total = 0;
            loop {
                match collect_once(&up.ctx, &dead_writes(&up.ctx), BATCH).await {
                    Ok(n) => {
                        total += n;
                        up.stats.collected.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        if (n as i64) < BATCH || started.elapsed() > super::STRETCH {
                            if total > 0 {
                                info!(seals = total, "garbage collected");
                            }
                            // A full batch means more may be waiting: come back at once.
                            return if (n as i64) < BATCH { interval } else { Duration::ZERO };
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "garbage collection failed");
                        return interval;
                    }
                }
            }
        }
    });
}

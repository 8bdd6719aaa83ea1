//! Background jobs: queued through the admin API, claimed by one replica at a time
//! under a lease, their progress recorded as they run.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::types::db_enum;
use super::{MetaResult, MetaStore, now_ms};

db_enum! {
    /// What a job does.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum JobKind {
        /// Moves every fragment off a location by recoding, then marks it drained.
        Drain = "drain",
        /// Garbage collected now, until nothing collectable is left.
        Gc = "gc",
        /// Every degraded object repaired now (backoffs ignored).
        Repair = "repair",
        /// Every stored fragment read back and checked now.
        Scrub = "scrub",
        /// Every location listed now, and its orphans deleted.
        Sweep = "sweep",
        /// A master key rotation: everything re-wrapped under the new version.
        Rekey = "rekey",
    }
}

db_enum! {
    /// Where a job is.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum JobState {
        /// Waiting for a replica to claim it.
        Queued = "queued",
        /// A replica runs it.
        Running = "running",
        /// An operator asked it to stop; its runner will.
        Cancelling = "cancelling",
        /// Stopped on request.
        Cancelled = "cancelled",
        /// Done.
        Succeeded = "succeeded",
        /// Ended with an error.
        Failed = "failed",
    }
}

impl JobState {
    /// States in which a job still has work to do.
    pub const LIVE: [JobState; 3] = [JobState::Queued, JobState::Running, JobState::Cancelling];

    /// Whether the job still has work to do.
    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }
}

/// A background job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Random id.
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// The location of a drain; empty otherwise.
    pub target: String,
    /// Where it is.
    pub state: JobState,
    /// Items to do (fragments for a drain), once known.
    pub total: i64,
    /// Items done.
    pub done: i64,
    /// Items that failed (retried on the next pass).
    pub failed: i64,
    /// Last progress or error message.
    pub message: String,
    /// The replica running it.
    pub holder: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// The columns of a job row (a macro so that statements stay string literals).
macro_rules! job_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, kind, target, state, total, done, failed, message, holder, created_at, updated_at FROM jobs ",
            $rest
        )
    };
}

fn job_row(r: &AnyRow) -> MetaResult<JobRow> {
    Ok(JobRow {
        id: r.try_get("id")?,
        kind: r.try_get::<String, _>("kind")?.parse()?,
        target: r.try_get("target")?,
        state: r.try_get::<String, _>("state")?.parse()?,
        total: r.try_get("total")?,
        done: r.try_get("done")?,
        failed: r.try_get("failed")?,
        message: r.try_get("message")?,
        holder: r.try_get("holder")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl MetaStore {
    /// Records a queued job.
    pub async fn insert_job(&self, id: &str, kind: JobKind, target: &str) -> MetaResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, kind, target, state, total, done, failed, message, holder, lease_expires, \
             created_at, updated_at) VALUES ($1, $2, $3, 'queued', 0, 0, 0, '', '', 0, $4, $4)",
        )
        .bind(id)
        .bind(kind.as_str())
        .bind(target)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A job by id.
    pub async fn job(&self, id: &str) -> MetaResult<Option<JobRow>> {
        let row = sqlx::query(job_select!("WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(job_row).transpose()
    }

    /// Jobs, newest first, up to `limit` after (older than) job `after` if given.
    pub async fn jobs(&self, after: Option<&str>, limit: i64) -> MetaResult<Vec<JobRow>> {
        let rows = match after {
            Some(a) => {
                sqlx::query(job_select!(
                    "WHERE (created_at, id) < (SELECT created_at, id FROM jobs WHERE id = $1) \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(a)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(job_select!("ORDER BY created_at DESC, id DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(job_row).collect()
    }

    /// Jobs with work left (queued, running or cancelling).
    pub async fn live_job_count(&self) -> MetaResult<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state IN ($1, $2, $3)")
            .bind(JobState::LIVE[0].as_str())
            .bind(JobState::LIVE[1].as_str())
            .bind(JobState::LIVE[2].as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// A live job of `kind` on `target`, if any.
    pub async fn live_job(&self, kind: JobKind, target: &str) -> MetaResult<Option<JobRow>> {
        let row = sqlx::query(job_select!("WHERE kind = $1 AND target = $2 AND state IN ($3, $4, $5) LIMIT 1"))
            .bind(kind.as_str())
            .bind(target)
            .bind(JobState::LIVE[0].as_str())
            .bind(JobState::LIVE[1].as_str())
            .bind(JobState::LIVE[2].as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_row).transpose()
    }

    /// Takes the oldest live job that no replica holds (queued, or its holder's
    /// lease ran out — or its holder is `holder` itself from before it `started`: a
    /// restarted replica takes its own jobs back at once) for `holder` until `ttl_ms`
    /// from now.
    pub async fn claim_job(&self, holder: &str, ttl_ms: i64, started: i64) -> MetaResult<Option<JobRow>> {
        let now = now_ms();
        let candidates = sqlx::query(
            "SELECT id FROM jobs WHERE state IN ($1, $2, $3) \
             AND (holder = '' OR lease_expires < $4 OR (holder = $5 AND updated_at < $6)) \
             ORDER BY created_at LIMIT 4",
        )
        .bind(JobState::LIVE[0].as_str())
        .bind(JobState::LIVE[1].as_str())
        .bind(JobState::LIVE[2].as_str())
        .bind(now)
        .bind(holder)
        .bind(started)
        .fetch_all(&self.pool)
        .await?;
        for c in candidates {
            let id: String = c.try_get("id")?;
            let taken = sqlx::query(
                "UPDATE jobs SET holder = $1, lease_expires = $2, updated_at = $3, \
                 state = CASE WHEN state = 'queued' THEN 'running' ELSE state END \
                 WHERE id = $4 AND state IN ($5, $6, $7) \
                 AND (holder = '' OR lease_expires < $3 OR (holder = $1 AND updated_at < $8))",
            )
            .bind(holder)
            .bind(now + ttl_ms)
            .bind(now)
            .bind(&id)
            .bind(JobState::LIVE[0].as_str())
            .bind(JobState::LIVE[1].as_str())
            .bind(JobState::LIVE[2].as_str())
            .bind(started)
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() == 1 {
                return self.job(&id).await;
            }
        }
        Ok(None)
    }

    /// Records progress of a job `holder` runs and renews its lease. Returns the
    /// job's state now (`cancelling` when an operator asked to cancel), or `None`
    /// when `holder` lost it.
    pub async fn job_progress(
        &self,
        id: &str,
        holder: &str,
        ttl_ms: i64,
        (total, done, failed): (i64, i64, i64),
        message: &str,
    ) -> MetaResult<Option<JobState>> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET total = $1, done = $2, failed = $3, message = $4, lease_expires = $5, updated_at = $6 \
             WHERE id = $7 AND holder = $8",
        )
        .bind(total)
        .bind(done)
        .bind(failed)
        .bind(message)
        .bind(now + ttl_ms)
        .bind(now)
        .bind(id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(self.job(id).await?.map(|j| j.state))
    }

    /// Ends a job `holder` runs in `state` (`succeeded`, `failed` or `cancelled`).
    pub async fn finish_job(&self, id: &str, holder: &str, state: JobState, message: &str) -> MetaResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = $1, message = $2, holder = '', lease_expires = 0, updated_at = $3 \
             WHERE id = $4 AND holder = $5",
        )
        .bind(state.as_str())
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Asks a job to stop: a queued job is cancelled at once, a running one is
    /// marked `cancelling` for its runner. Returns the job afterwards.
    pub async fn cancel_job(&self, id: &str) -> MetaResult<Option<JobRow>> {
        let now = now_ms();
        sqlx::query("UPDATE jobs SET state = 'cancelled', updated_at = $1 WHERE id = $2 AND state = 'queued'")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE jobs SET state = 'cancelling', updated_at = $1 WHERE id = $2 AND state = 'running'")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.job(id).await
    }
}

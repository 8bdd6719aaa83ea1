//! Metadata of the admin API: its tokens, locations and policies added at run time,
//! location states, background jobs, and the usage and placement reports.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{FragmentRow, MetaResult, MetaStore, SealRow, SealState, now_ms};

/// A catalog entry added through the admin API: a location or a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRow {
    /// Name.
    pub name: String,
    /// Definition, JSON (never a secret).
    pub definition: String,
    /// A location's secret, sealed under the master key (empty for policies).
    pub secret_sealed: Vec<u8>,
}

/// A background job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Random id.
    pub id: String,
    /// `drain` or `gc`.
    pub kind: String,
    /// The location of a drain; empty otherwise.
    pub target: String,
    /// `queued`, `running`, `cancelling`, `cancelled`, `succeeded` or `failed`.
    pub state: String,
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

/// One fragment to move off a location, with what a recoder needs of its seal.
#[derive(Debug, Clone)]
pub struct FragmentAt {
    /// The seal.
    pub seal: SealRow,
    /// All its fragments.
    pub fragments: Vec<FragmentRow>,
    /// Index of the fragment at the location.
    pub idx: i64,
}

/// Objects, bytes and fragments of a bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketUsage {
    /// Visible objects.
    pub objects: i64,
    /// Their bytes.
    pub bytes: i64,
    /// Fragments (and their bytes) per location.
    pub fragments: Vec<(String, i64, i64)>,
}

/// A tenant with what it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: i64,
    /// Its access keys.
    pub keys: i64,
    /// Its buckets.
    pub buckets: i64,
}

/// Selects tenant rows with their counts.
macro_rules! tenant_select {
    ($rest:literal) => {
        concat!(
            "SELECT t.name, t.created_at, \
             (SELECT COUNT(*) FROM access_keys k WHERE k.tenant = t.name) AS key_count, \
             (SELECT COUNT(*) FROM buckets b WHERE b.tenant = t.name) AS bucket_count FROM tenants t ",
            $rest
        )
    };
}

fn tenant_row(r: &AnyRow) -> MetaResult<TenantRow> {
    Ok(TenantRow { name: r.try_get(0)?, created_at: r.try_get(1)?, keys: r.try_get(2)?, buckets: r.try_get(3)? })
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
        kind: r.try_get("kind")?,
        target: r.try_get("target")?,
        state: r.try_get("state")?,
        total: r.try_get("total")?,
        done: r.try_get("done")?,
        failed: r.try_get("failed")?,
        message: r.try_get("message")?,
        holder: r.try_get("holder")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Job states in which a job still has work to do.
pub const LIVE_JOB_STATES: [&str; 3] = ["queued", "running", "cancelling"];

impl MetaStore {
    // ---- admin tokens ------------------------------------------------------------

    /// Stores a token's SHA-256; `false` if the id exists.
    pub async fn insert_admin_token(&self, id: &str, name: &str, secret_sha256: &[u8]) -> MetaResult<bool> {
        let r = sqlx::query(
            "INSERT INTO admin_tokens (id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(secret_sha256)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The SHA-256 of token `id`'s secret.
    pub async fn admin_token_hash(&self, id: &str) -> MetaResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT secret_sha256 FROM admin_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("secret_sha256")).transpose()?)
    }

    /// Number of admin tokens.
    pub async fn admin_token_count(&self) -> MetaResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM admin_tokens").fetch_one(&self.pool).await?.try_get("n")?)
    }

    // ---- tenants -----------------------------------------------------------------

    /// Every tenant, by name.
    pub async fn tenants(&self) -> MetaResult<Vec<TenantRow>> {
        let rows = sqlx::query(tenant_select!("ORDER BY t.name")).fetch_all(&self.pool).await?;
        rows.iter().map(tenant_row).collect()
    }

    /// A tenant.
    pub async fn tenant(&self, name: &str) -> MetaResult<Option<TenantRow>> {
        let row = sqlx::query(tenant_select!("WHERE t.name = $1")).bind(name).fetch_optional(&self.pool).await?;
        row.map(|r| tenant_row(&r)).transpose()
    }

    /// Creates a tenant; `false` if it exists.
    pub async fn create_tenant(&self, name: &str) -> MetaResult<bool> {
        let r = sqlx::query("INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a tenant that owns nothing. `Ok(None)` if there is no such tenant,
    /// `Ok(Some(false))` if it still has keys or buckets.
    pub async fn delete_tenant(&self, name: &str) -> MetaResult<Option<bool>> {
        let r = sqlx::query(
            "DELETE FROM tenants WHERE name = $1 \
             AND NOT EXISTS (SELECT 1 FROM access_keys WHERE tenant = $1) \
             AND NOT EXISTS (SELECT 1 FROM buckets WHERE tenant = $1)",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(Some(true));
        }
        Ok(self.tenant(name).await?.map(|_| false))
    }

    // ---- catalog -----------------------------------------------------------------

    /// Locations (`policies == false`) or policies added through the admin API.
    pub async fn catalog(&self, policies: bool) -> MetaResult<Vec<CatalogRow>> {
        let sql = if policies {
            "SELECT name, definition, '' AS secret_sealed FROM catalog_policies ORDER BY name"
        } else {
            "SELECT name, definition, secret_sealed FROM catalog_locations ORDER BY name"
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let secret_sealed = if policies { Vec::new() } else { r.try_get::<Vec<u8>, _>("secret_sealed")? };
                Ok(CatalogRow { name: r.try_get("name")?, definition: r.try_get("definition")?, secret_sealed })
            })
            .collect()
    }

    /// Adds (`create`, `false` if the name exists) or replaces (`false` if it does
    /// not exist) a location or policy.
    pub async fn put_catalog(&self, policies: bool, row: &CatalogRow, create: bool) -> MetaResult<bool> {
        let sql = match (policies, create) {
            (false, true) => {
                "INSERT INTO catalog_locations (name, definition, secret_sealed, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING"
            }
            (false, false) => {
                "UPDATE catalog_locations SET definition = $2, secret_sealed = $3, updated_at = $4 WHERE name = $1"
            }
            (true, true) => {
                "INSERT INTO catalog_policies (name, definition, updated_at) VALUES ($1, $2, $4) \
                 ON CONFLICT (name) DO NOTHING"
            }
            (true, false) => "UPDATE catalog_policies SET definition = $2, updated_at = $4 WHERE name = $1",
        };
        let mut q = sqlx::query(sql).bind(&row.name).bind(&row.definition);
        // Unused by the policy statements, but `$4` must keep its number.
        q = q.bind(row.secret_sealed.clone());
        let r = q.bind(now_ms()).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a location or policy added through the API; `false` if there is none.
    pub async fn delete_catalog(&self, policies: bool, name: &str) -> MetaResult<bool> {
        let sql = if policies {
            "DELETE FROM catalog_policies WHERE name = $1"
        } else {
            "DELETE FROM catalog_locations WHERE name = $1"
        };
        Ok(sqlx::query(sql).bind(name).execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Every location state recorded (a location without one is active).
    pub async fn location_states(&self) -> MetaResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, state FROM location_states ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("state")?))).collect()
    }

    /// Records a location's state.
    pub async fn set_location_state(&self, name: &str, state: &str) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO location_states (name, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET state = $2, updated_at = $3",
        )
        .bind(name)
        .bind(state)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Buckets using `policy`.
    pub async fn buckets_using(&self, policy: &str) -> MetaResult<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM buckets WHERE policy = $1 ORDER BY name")
            .bind(policy)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Assigns `policy` to a bucket (for its future writes); `false` if no bucket.
    pub async fn set_bucket_policy(&self, bucket: &str, policy: &str) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE buckets SET policy = $1 WHERE name = $2")
            .bind(policy)
            .bind(bucket)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- fragments per location --------------------------------------------------

    /// Fragments (of any seal not yet forgotten) at `location`, and their bytes.
    pub async fn fragments_at_count(&self, location: &str) -> MetaResult<(i64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM fragments WHERE location = $1",
        )
        .bind(location)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get("n")?, r.try_get("bytes")?))
    }

    /// Fragments and their bytes at every location that holds any, by location.
    pub async fn fragments_per_location(&self) -> MetaResult<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT location, COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM fragments \
             GROUP BY location ORDER BY location",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("location")?, r.try_get("n")?, r.try_get("bytes")?))).collect()
    }

    /// Up to `limit` stored seals with a fragment at `location`, after seal id
    /// `after`, with all their fragments.
    pub async fn fragments_at(&self, location: &str, after: &str, limit: i64) -> MetaResult<Vec<FragmentAt>> {
        let rows = sqlx::query(
            "SELECT s.id, s.state, s.size, s.k, s.n, s.segment_size, s.compression, s.sealed_lens, s.wrapped_key, \
             s.created_at, f.idx AS at_idx FROM fragments f JOIN seals s ON s.id = f.seal_id \
             WHERE f.location = $1 AND s.state = $2 AND s.id > $3 ORDER BY s.id LIMIT $4",
        )
        .bind(location)
        .bind(SealState::Stored.as_str())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let seals = self.with_fragments(&rows).await?;
        rows.iter()
            .zip(seals)
            .map(|(r, (seal, fragments))| Ok(FragmentAt { seal, fragments, idx: r.try_get("at_idx")? }))
            .collect()
    }

    /// Points fragment `idx` of a seal, now at `from`, at its new copy. `false` if
    /// it moved meanwhile or its seal is no longer stored (then the new copy is
    /// the caller's to delete).
    pub async fn move_fragment(&self, seal_id: &str, idx: i64, from: &str, to: &FragmentRow) -> MetaResult<bool> {
        let r = sqlx::query(
            "UPDATE fragments SET location = $1, object_name = $2, size = $3, state = $4 \
             WHERE seal_id = $5 AND idx = $6 AND location = $7 \
             AND EXISTS (SELECT 1 FROM seals WHERE id = $5 AND state = $8)",
        )
        .bind(&to.location)
        .bind(&to.object_name)
        .bind(to.size)
        .bind(to.state.as_str())
        .bind(seal_id)
        .bind(idx)
        .bind(from)
        .bind(SealState::Stored.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- usage -------------------------------------------------------------------

    /// Objects, bytes and fragments per location of `bucket`.
    pub async fn bucket_usage(&self, bucket: &str) -> MetaResult<BucketUsage> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(v.size), 0) AS BIGINT) AS bytes FROM objects o \
             JOIN versions v ON v.id = o.version_id WHERE o.bucket = $1",
        )
        .bind(bucket)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT f.location, COUNT(*) AS n, CAST(COALESCE(SUM(f.size), 0) AS BIGINT) AS bytes FROM objects o \
             JOIN version_parts p ON p.version_id = o.version_id JOIN fragments f ON f.seal_id = p.seal_id \
             WHERE o.bucket = $1 GROUP BY f.location ORDER BY f.location",
        )
        .bind(bucket)
        .fetch_all(&self.pool)
        .await?;
        let fragments = rows
            .iter()
            .map(|r| Ok((r.try_get("location")?, r.try_get("n")?, r.try_get("bytes")?)))
            .collect::<MetaResult<_>>()?;
        Ok(BucketUsage { objects: r.try_get("n")?, bytes: r.try_get("bytes")?, fragments })
    }

    // ---- jobs --------------------------------------------------------------------

    /// Records a queued job.
    pub async fn insert_job(&self, id: &str, kind: &str, target: &str) -> MetaResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, kind, target, state, total, done, failed, message, holder, lease_expires, \
             created_at, updated_at) VALUES ($1, $2, $3, 'queued', 0, 0, 0, '', '', 0, $4, $4)",
        )
        .bind(id)
        .bind(kind)
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
            .bind(LIVE_JOB_STATES[0])
            .bind(LIVE_JOB_STATES[1])
            .bind(LIVE_JOB_STATES[2])
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// A live job of `kind` on `target`, if any.
    pub async fn live_job(&self, kind: &str, target: &str) -> MetaResult<Option<JobRow>> {
        let row = sqlx::query(job_select!("WHERE kind = $1 AND target = $2 AND state IN ($3, $4, $5) LIMIT 1"))
            .bind(kind)
            .bind(target)
            .bind(LIVE_JOB_STATES[0])
            .bind(LIVE_JOB_STATES[1])
            .bind(LIVE_JOB_STATES[2])
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_row).transpose()
    }

    /// Takes the oldest live job that no replica holds (queued, or its holder's
    /// lease ran out) for `holder` until `ttl_ms` from now.
    pub async fn claim_job(&self, holder: &str, ttl_ms: i64) -> MetaResult<Option<JobRow>> {
        let now = now_ms();
        let candidates = sqlx::query(
            "SELECT id FROM jobs WHERE state IN ($1, $2, $3) AND (holder = '' OR lease_expires < $4) \
             ORDER BY created_at LIMIT 4",
        )
        .bind(LIVE_JOB_STATES[0])
        .bind(LIVE_JOB_STATES[1])
        .bind(LIVE_JOB_STATES[2])
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for c in candidates {
            let id: String = c.try_get("id")?;
            let taken = sqlx::query(
                "UPDATE jobs SET holder = $1, lease_expires = $2, updated_at = $3, \
                 state = CASE WHEN state = 'queued' THEN 'running' ELSE state END \
                 WHERE id = $4 AND state IN ($5, $6, $7) AND (holder = '' OR lease_expires < $3)",
            )
            .bind(holder)
            .bind(now + ttl_ms)
            .bind(now)
            .bind(&id)
            .bind(LIVE_JOB_STATES[0])
            .bind(LIVE_JOB_STATES[1])
            .bind(LIVE_JOB_STATES[2])
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
    ) -> MetaResult<Option<String>> {
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
    pub async fn finish_job(&self, id: &str, holder: &str, state: &str, message: &str) -> MetaResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = $1, message = $2, holder = '', lease_expires = 0, updated_at = $3 \
             WHERE id = $4 AND holder = $5",
        )
        .bind(state)
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

    /// Sets a stored access key's sealed secret (rotation); `false` if no such key.
    pub async fn set_access_key_secret(&self, id: &str, sealed: &[u8], kek_version: i64) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE access_keys SET secret_sealed = $1, kek_version = $2 WHERE access_key_id = $3")
            .bind(sealed)
            .bind(kek_version)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

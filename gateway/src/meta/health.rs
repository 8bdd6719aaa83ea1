//! Redundancy as state: seals by margin, the repair queue (degraded seals, lowest
//! margin first, then oldest), fragments being rebuilt, and the progress of the
//! background passes (scrub, sweep) so that they resume after a restart.

use sqlx::Row;

use super::seals::{SEAL_COLUMNS, recount, seal_columns, seal_policy, seal_policy_columns, seals_of};
use super::types::big;
use super::{Fragment, FragmentState, MetaResult, MetaStore, Seal, SealId, SealState, now_ms};

/// Seals (and their plaintext bytes) at one margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarginCount {
    /// Healthy fragments minus k.
    pub margin: i64,
    /// Seals at this margin.
    pub seals: i64,
    /// Their plaintext bytes.
    pub bytes: i64,
}

/// A degraded seal to repair, with the policy its object was written under.
#[derive(Debug, Clone)]
pub struct RepairItem {
    /// The seal and its fragments.
    pub seal: Seal,
    /// The placement policy of the bucket it belongs to (`None`: it belongs to no
    /// bucket any more).
    pub policy: Option<String>,
}

/// Where a background pass stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassRow {
    /// `scrub` or `sweep`.
    pub name: String,
    /// Where the pass in progress stands (`""` at the start).
    pub cursor: String,
    /// When the pass in progress began (Unix ms).
    pub started_at: i64,
    /// When the last complete pass ended (0: never).
    pub finished_at: i64,
    /// Items looked at in this pass.
    pub checked: i64,
    /// Problems found in this pass.
    pub found: i64,
}

impl MetaStore {
    /// Stored seals by margin, lowest first.
    pub async fn margins(&self) -> MetaResult<Vec<MarginCount>> {
        let rows = sqlx::query(
            "SELECT healthy - k AS margin, COUNT(*) AS seals, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes \
             FROM seals WHERE state = $1 GROUP BY healthy - k ORDER BY healthy - k",
        )
        .bind(SealState::Stored.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(MarginCount { margin: r.try_get(0)?, seals: r.try_get(1)?, bytes: r.try_get(2)? }))
            .collect()
    }

    /// Degraded seals (fewer than `n` healthy fragments) and their fragments missing.
    pub async fn repair_backlog(&self) -> MetaResult<(i64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS seals, CAST(COALESCE(SUM(n - healthy), 0) AS BIGINT) AS fragments FROM seals \
             WHERE state = $1 AND healthy < n",
        )
        .bind(SealState::Stored.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get("seals")?, r.try_get("fragments")?))
    }

    /// Up to `limit` degraded seals, lowest margin first, then oldest — those whose
    /// last repair failed less than their deferral ago left out unless `all`.
    pub async fn repair_queue(&self, limit: i64, all: bool) -> MetaResult<Vec<RepairItem>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            seal_columns!("s"),
            ", ",
            seal_policy_columns!(),
            " FROM seals s WHERE s.state = $1 AND s.healthy < s.n AND (s.repair_after <= $2 OR $3 = 1) \
             ORDER BY s.healthy - s.k, s.created_at LIMIT $4"
        ))
        .bind(SealState::Stored.as_str())
        .bind(now_ms())
        .bind(i64::from(all))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let seals = seals_of(&mut conn, &rows).await?;
        rows.iter().zip(seals).map(|(r, seal)| Ok(RepairItem { seal, policy: seal_policy(r, SEAL_COLUMNS)? })).collect()
    }

    /// Leaves a seal out of the repair queue until `until` (Unix ms).
    pub async fn defer_repair(&self, seal: SealId, until: i64) -> MetaResult<()> {
        sqlx::query("UPDATE seals SET repair_after = $1 WHERE id = $2")
            .bind(until)
            .bind(seal.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Puts every degraded seal back in the queue now, whatever its backoff (a
    /// repair pass an operator asked for). Returns how many.
    pub async fn undefer_repairs(&self) -> MetaResult<u64> {
        let r = sqlx::query("UPDATE seals SET repair_after = 0 WHERE repair_after > 0 AND state = $1 AND healthy < n")
            .bind(SealState::Stored.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Puts the degraded seals with a fragment at `location` back in the queue at
    /// once (the location came back). Returns how many.
    pub async fn resume_repairs_at(&self, location: &str) -> MetaResult<u64> {
        let r = sqlx::query(
            "UPDATE seals SET repair_after = 0 WHERE repair_after > 0 AND state = $1 AND healthy < n AND id IN \
             (SELECT seal_id FROM fragments WHERE location = $2 AND state <> $3)",
        )
        .bind(SealState::Stored.as_str())
        .bind(location)
        .bind(FragmentState::Stored.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Marks a fragment that is not stored as being rebuilt. `false` if it is
    /// stored (again), being rebuilt already, or its seal is no longer stored.
    pub async fn begin_repair(&self, seal: SealId, index: u8) -> MetaResult<bool> {
        let r = sqlx::query(
            "UPDATE fragments SET state = $1 WHERE seal_id = $2 AND idx = $3 AND state IN ($4, $5) \
             AND EXISTS (SELECT 1 FROM seals WHERE id = $2 AND state = $6)",
        )
        .bind(FragmentState::Repairing.as_str())
        .bind(seal.to_string())
        .bind(i64::from(index))
        .bind(FragmentState::Missing.as_str())
        .bind(FragmentState::Corrupt.as_str())
        .bind(SealState::Stored.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a rebuilt fragment: `to` (its location may be new) is stored and
    /// verified. `false` if it was not being rebuilt or the seal is gone meanwhile
    /// (then the new copy is the caller's to delete).
    pub async fn finish_repair(&self, seal: SealId, to: &Fragment) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE fragments SET location = $1, object_name = $2, size = $3, state = $4, verified_at = $5 \
             WHERE seal_id = $6 AND idx = $7 AND state = $8 AND EXISTS (SELECT 1 FROM seals WHERE id = $6 AND state = $9)",
        )
        .bind(&to.location)
        .bind(&to.name)
        .bind(big(to.size))
        .bind(FragmentState::Stored.as_str())
        .bind(now_ms())
        .bind(seal.to_string())
        .bind(i64::from(to.index))
        .bind(FragmentState::Repairing.as_str())
        .bind(SealState::Stored.as_str())
        .execute(&mut *tx)
        .await?;
        let done = r.rows_affected() == 1;
        recount(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Gives a fragment being rebuilt back its state (the repair failed).
    pub async fn abandon_repair(&self, seal: SealId, index: u8, state: FragmentState) -> MetaResult<()> {
        sqlx::query("UPDATE fragments SET state = $1 WHERE seal_id = $2 AND idx = $3 AND state = $4")
            .bind(state.as_str())
            .bind(seal.to_string())
            .bind(i64::from(index))
            .bind(FragmentState::Repairing.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Fragments left `repairing` by a repairer that died are missing again. For
    /// the replica that takes over repair (it holds the repair lease: no other
    /// replica is rebuilding anything).
    pub async fn reset_repairs(&self) -> MetaResult<u64> {
        let r = sqlx::query("UPDATE fragments SET state = $1 WHERE state = $2")
            .bind(FragmentState::Missing.as_str())
            .bind(FragmentState::Repairing.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Up to `limit` stored seals after `after` (from the first when `None`), by id,
    /// with their fragments: what a scrub walks through.
    pub async fn stored_seals(&self, after: Option<SealId>, limit: i64) -> MetaResult<Vec<Seal>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            seal_columns!("s"),
            " FROM seals s WHERE s.state = $1 AND s.id > $2 ORDER BY s.id LIMIT $3"
        ))
        .bind(SealState::Stored.as_str())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        seals_of(&mut conn, &rows).await
    }

    /// Whether any fragment row names `name` at `location` (the sweep's question).
    pub async fn fragment_known(&self, location: &str, name: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM fragments WHERE location = $1 AND object_name = $2 LIMIT 1")
            .bind(location)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Stored fragments of stored seals: what a scrub pass checks.
    pub async fn stored_fragment_count(&self) -> MetaResult<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM fragments f JOIN seals s ON s.id = f.seal_id WHERE s.state = $1 AND f.state = $2",
        )
        .bind(SealState::Stored.as_str())
        .bind(FragmentState::Stored.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get("n")?)
    }

    /// Forgets a pass (a job's own, once it ended).
    pub async fn delete_pass(&self, name: &str) -> MetaResult<()> {
        sqlx::query("DELETE FROM passes WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(())
    }

    /// A background pass's progress.
    pub async fn pass(&self, name: &str) -> MetaResult<Option<PassRow>> {
        let row =
            sqlx::query("SELECT name, cursor, started_at, finished_at, checked, found FROM passes WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(PassRow {
                name: r.try_get(0)?,
                cursor: r.try_get(1)?,
                started_at: r.try_get(2)?,
                finished_at: r.try_get(3)?,
                checked: r.try_get(4)?,
                found: r.try_get(5)?,
            })
        })
        .transpose()
    }

    /// Records a background pass's progress.
    pub async fn save_pass(&self, p: &PassRow) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO passes (name, cursor, started_at, finished_at, checked, found, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET cursor = $2, started_at = $3, \
             finished_at = $4, checked = $5, found = $6, updated_at = $7",
        )
        .bind(&p.name)
        .bind(&p.cursor)
        .bind(p.started_at)
        .bind(p.finished_at)
        .bind(p.checked)
        .bind(p.found)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

//! Packs: small objects written close in time, each sealed under its own data key
//! and id, coded together as the segments of one seal (see `pipeline/pack.rs`).
//! The pack is an ordinary seal to everything that moves fragments (repair, scrub,
//! drains, the collector); its members' keys are rows of their own, and a version
//! part in a pack names its slot.

use codec::WrappedKey;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::objects::{commit_held, hold_bucket};
use super::seals::{finish_seal, insert_seal, not_pending, seal_columns, seals_of, store_pending};
use super::types::{big, fit};
use super::{
    FragmentState, MetaError, MetaResult, MetaStore, PackMember, PartRow, RecordRow, Replaced, Seal, SealFinish,
    SealId, SealState, VersionId, VersionRow, WriteCondition, now_ms,
};

/// Bytes a member counts for besides its own when a pack's dead share is weighed
/// (so that empty objects count too).
const MEMBER_WEIGHT: i64 = 64;

/// A live member of a pack and the versions that use it (a shared copy is one more).
pub type LiveMember = (PackMember, Vec<VersionId>);

/// The columns of a part's pack member, in the order [`member_row`] reads them,
/// for a query joining `version_parts p` to `pack_members m`.
pub(super) const MEMBER_COLUMNS: &str = "p.slot, m.member_id, m.size, m.wrapped_key";

/// The join that [`MEMBER_COLUMNS`] reads from.
pub(super) const MEMBER_JOIN: &str = "LEFT JOIN pack_members m ON m.pack_id = p.seal_id AND m.slot = p.slot";

/// Reads a part's pack member (`None`: not packed) from the columns of
/// [`MEMBER_COLUMNS`], starting at column `at`.
pub(super) fn member_row(r: &AnyRow, at: usize) -> MetaResult<Option<PackMember>> {
    let Some(slot) = r.try_get::<Option<i64>, _>(at)? else { return Ok(None) };
    let corrupt = || MetaError::Corrupt(format!("a part names pack slot {slot}, which has no member"));
    let id: Option<String> = r.try_get(at + 1)?;
    let size: Option<i64> = r.try_get(at + 2)?;
    let wrapped: Option<Vec<u8>> = r.try_get(at + 3)?;
    let (Some(id), Some(size), Some(wrapped)) = (id, size, wrapped) else { return Err(corrupt()) };
    Ok(Some(PackMember {
        slot: fit(slot, "pack slot")?,
        id: id.parse()?,
        size: fit(size, "member size")?,
        wrapped_key: WrappedKey::from_bytes(&wrapped).map_err(|e| MetaError::Corrupt(format!("member {id}: {e}")))?,
    }))
}

/// Inserts the members of pack `pack` (those already there are left as they are:
/// a recovery brings a pack back one member at a time).
pub(super) async fn insert_members(conn: &mut AnyConnection, pack: SealId, members: &[PackMember]) -> MetaResult<()> {
    for chunk in members.chunks(64) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 4 * i + 2;
                format!("($1, ${b}, ${}, ${}, ${})", b + 1, b + 2, b + 3)
            })
            .collect();
        let sql = format!(
            "INSERT INTO pack_members (pack_id, slot, member_id, size, wrapped_key) VALUES {} ON CONFLICT DO NOTHING",
            values.join(", ")
        );
        // The statement is ours: a fixed text and numbered placeholders.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(pack.to_string());
        for m in chunk {
            q = q.bind(i64::from(m.slot)).bind(m.id.to_string()).bind(big(m.size)).bind(m.wrapped_key.0.to_vec());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl MetaStore {
    /// Records a pack about to be written on node `writer`: its seal, planned
    /// fragments (all `pending`) and members, in one transaction.
    pub async fn insert_pending_pack(&self, pack: &Seal, members: &[PackMember], writer: &str) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        insert_seal(&mut tx, pack, SealState::Pending, Some(FragmentState::Pending), writer).await?;
        insert_members(&mut tx, pack.id, members).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commits the versions of members of pack `pack` — each with its one part and
    /// its row of the pack record — in one transaction (group commit), each under
    /// its own condition in a savepoint of its own: one whose condition fails (or
    /// whose bucket went) leaves the others committed. The first commit to a pack
    /// records what landed of it and makes it stored; a pack collected meanwhile
    /// (none committed within `pipeline.pending_grace`) cannot be committed to.
    /// Returns each member's outcome, in order.
    pub async fn commit_packed(
        &self,
        pack: SealId,
        fin: &SealFinish,
        members: &[(&VersionRow, &PartRow, &RecordRow, &WriteCondition)],
    ) -> MetaResult<Vec<MetaResult<Replaced>>> {
        use sqlx::Acquire as _;
        let mut tx = self.begin_write().await?;
        if store_pending(&mut tx, pack, now_ms()).await? {
            finish_seal(&mut tx, pack, fin).await?;
        } else {
            let state: Option<String> = sqlx::query("SELECT state FROM seals WHERE id = $1")
                .bind(pack.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            if state.as_deref() != Some(SealState::Stored.as_str()) {
                return Err(not_pending(pack));
            }
        }
        let mut out = Vec::with_capacity(members.len());
        // Each bucket is held once for all its members (they are usually of one).
        let mut held: Vec<(&str, bool)> = Vec::new();
        for (version, part, record, condition) in members {
            let bucket = version.bucket.as_str();
            let there = match held.iter().find(|(b, _)| *b == bucket) {
                Some(&(_, there)) => there,
                None => {
                    let there = match hold_bucket(&mut tx, bucket).await {
                        Ok(()) => true,
                        Err(MetaError::NoSuchBucket) => false,
                        Err(e) => return Err(e),
                    };
                    held.push((bucket, there));
                    there
                }
            };
            if !there {
                out.push(Err(MetaError::NoSuchBucket));
                continue;
            }
            let mut one = (&mut *tx).begin().await?;
            let r = commit_held(&mut one, version, std::slice::from_ref(*part), Some(*record), condition).await;
            match r {
                Ok(_) => one.commit().await?,
                Err(_) => one.rollback().await?,
            }
            out.push(r);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Pack members after `after` in id order with their wrapped data keys, at most
    /// `limit` (what a master key rotation re-wraps).
    pub async fn member_keys(&self, after: &str, limit: i64) -> MetaResult<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT member_id, wrapped_key FROM pack_members WHERE member_id > $1 ORDER BY member_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Replaces a member's wrapped data key by the same key wrapped again; `false`
    /// if it changed meanwhile or the member is gone.
    pub async fn rewrap_member(&self, id: &str, old: &[u8], new: &[u8]) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE pack_members SET wrapped_key = $1 WHERE member_id = $2 AND wrapped_key = $3")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Stored packs created before `before` whose dead members (used by no version)
    /// weigh at least `dead_percent` of the pack, oldest first, with their fragments.
    pub async fn packs_to_compact(&self, before: i64, dead_percent: u8, limit: i64) -> MetaResult<Vec<Seal>> {
        let mut conn = self.pool.acquire().await?;
        let sql = format!(
            "SELECT {} FROM seals s WHERE s.state = $1 AND s.slots > 0 AND s.created_at < $2 AND \
             100 * (SELECT COALESCE(SUM(m.size + $3), 0) FROM pack_members m WHERE m.pack_id = s.id AND NOT EXISTS \
             (SELECT 1 FROM version_parts p WHERE p.seal_id = m.pack_id AND p.slot = m.slot)) \
             >= $4 * (SELECT COALESCE(SUM(m.size + $3), 0) FROM pack_members m WHERE m.pack_id = s.id) \
             ORDER BY s.created_at LIMIT $5",
            seal_columns!("s")
        );
        // The statement is ours: fixed texts and numbered placeholders.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(SealState::Stored.as_str())
            .bind(before)
            .bind(MEMBER_WEIGHT)
            .bind(i64::from(dead_percent.max(1)))
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        seals_of(&mut conn, &rows).await
    }

    /// The members of `pack` some version uses, by slot, with those versions.
    pub async fn live_members(&self, pack: SealId) -> MetaResult<Vec<LiveMember>> {
        let rows = sqlx::query(
            "SELECT m.slot, m.member_id, m.size, m.wrapped_key, p.version_id FROM pack_members m \
             JOIN version_parts p ON p.seal_id = m.pack_id AND p.slot = m.slot WHERE m.pack_id = $1 \
             ORDER BY m.slot, p.version_id",
        )
        .bind(pack.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<LiveMember> = Vec::new();
        for r in &rows {
            let member = member_row(r, 0)?.ok_or_else(|| MetaError::Corrupt(format!("pack {pack}: a member")))?;
            let version: VersionId = r.try_get::<String, _>(4)?.parse()?;
            match out.last_mut() {
                Some((m, versions)) if m.slot == member.slot => versions.push(version),
                _ => out.push((member, vec![version])),
            }
        }
        Ok(out)
    }

    /// Ends a compaction in one transaction: pack `new` (pending, its fragments as
    /// `fin` says) becomes stored; each of `moves` — a slot of `old`, its slot in
    /// `new`, and the versions whose manifests were rewritten to say so — points
    /// those versions at `new`; `old` becomes garbage if nothing uses it any more (a
    /// version that used it meanwhile keeps it). `records`: the pack records the
    /// moved manifests were in, each with the one now holding them and which (their
    /// rows move there as they are). Returns the versions moved.
    pub async fn commit_compaction(
        &self,
        old: SealId,
        new: SealId,
        fin: &SealFinish,
        moves: &[(u32, u32, Vec<VersionId>)],
        records: &[(String, RecordRow, Vec<String>)],
    ) -> MetaResult<u64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if !store_pending(&mut tx, new, now).await? {
            return Err(not_pending(new));
        }
        finish_seal(&mut tx, new, fin).await?;
        for (from, to, members) in records {
            super::records::move_rows(&mut tx, from, to, Some(members)).await?;
        }
        let mut moved = 0;
        for (from, to, versions) in moves {
            for v in versions {
                let r = sqlx::query(
                    "UPDATE version_parts SET seal_id = $1, slot = $2 WHERE seal_id = $3 AND slot = $4 AND version_id = $5",
                )
                .bind(new.to_string())
                .bind(i64::from(*to))
                .bind(old.to_string())
                .bind(i64::from(*from))
                .bind(v.to_string())
                .execute(&mut *tx)
                .await?;
                moved += r.rows_affected();
            }
        }
        super::seals::garbage_if_unused(&mut tx, &old.to_string(), now).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// Records that record `name` was written again with `size` bytes.
    pub async fn set_record_size(&self, name: &str, size: u64) -> MetaResult<()> {
        sqlx::query("UPDATE records SET size = $1 WHERE name = $2")
            .bind(big(size))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

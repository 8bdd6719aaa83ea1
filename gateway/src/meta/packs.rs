//! Packs: small objects written close in time, each sealed under its own data key
//! and id, coded together as the segments of one seal (see `pipeline/pack.rs`).
//! The pack is an ordinary seal to everything that moves fragments (repair, scrub,
//! drains, the collector); its members' keys are rows of their own, and a version
//! part in a pack names its slot.

use codec::WrappedKey;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::seals::{finish_seal, insert_seal, not_pending, store_pending};
use super::types::{big, fit};
use super::{
    FragmentState, MetaError, MetaResult, MetaStore, PackMember, PartRow, RecordRow, Replaced, Seal, SealFinish,
    SealId, SealState, VersionRow, WriteCondition, now_ms,
};

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

    /// Commits `version`, whose one part is a member of pack `pack`, in one
    /// transaction: the first member to commit records what landed of the pack and
    /// makes it stored; later ones find it stored. A pack collected meanwhile (no
    /// member committed within `pipeline.pending_grace`) cannot be committed to.
    pub async fn commit_packed(
        &self,
        pack: SealId,
        fin: &SealFinish,
        version: &VersionRow,
        part: &PartRow,
        record: Option<&RecordRow>,
        condition: &WriteCondition,
    ) -> MetaResult<Replaced> {
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
        let replaced =
            super::objects::commit_version(&mut tx, version, std::slice::from_ref(part), record, condition).await?;
        tx.commit().await?;
        Ok(replaced)
    }

    /// Pack members after `after` in id order with their wrapped data keys, at most
    /// `limit` (what a master key rotation re-wraps).
    pub async fn member_keys(&self, after: &str, limit: i64) -> MetaResult<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT member_id, wrapped_key FROM pack_members WHERE member_id > $1 ORDER BY member_id LIMIT $2",
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
}

//! Seals and their fragments: a write's pending record, what landed, garbage and
//! its collection, and the leases that let one replica at a time collect.

use std::collections::HashMap;

use codec::{CodingParams, WrappedKey};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::types::{big, fit};
use super::{
    Compression, DeadWrites, Fragment, FragmentState, MetaError, MetaResult, MetaStore, Seal, SealFinish, SealId,
    SealState, now_ms,
};

/// How many columns [`seal_columns`] names.
pub(super) const SEAL_COLUMNS: usize = 11;

/// The columns of a seal, in the order [`seal_row`] reads them.
macro_rules! seal_columns {
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".state, ",
            $t,
            ".size, ",
            $t,
            ".k, ",
            $t,
            ".n, ",
            $t,
            ".segment_size, ",
            $t,
            ".compression, ",
            $t,
            ".sealed_lens, ",
            $t,
            ".wrapped_key, ",
            $t,
            ".created_at, ",
            $t,
            ".slots"
        )
    };
}
pub(super) use seal_columns;

/// Two columns: the policy of the bucket a seal `s` belongs to through a version,
/// and through a multipart upload (read with [`seal_policy`]).
macro_rules! seal_policy_columns {
    () => {
        "(SELECT b.policy FROM version_parts p JOIN versions v ON v.id = p.version_id \
         JOIN buckets b ON b.name = v.bucket WHERE p.seal_id = s.id LIMIT 1), \
         (SELECT b.policy FROM upload_parts p JOIN uploads u ON u.id = p.upload_id \
         JOIN buckets b ON b.name = u.bucket WHERE p.seal_id = s.id LIMIT 1)"
    };
}
pub(super) use seal_policy_columns;

/// The policy read from the columns of [`seal_policy_columns`] at `at`.
pub(super) fn seal_policy(r: &AnyRow, at: usize) -> MetaResult<Option<String>> {
    Ok(r.try_get::<Option<String>, _>(at)?.or(r.try_get(at + 1)?))
}

/// Reads a seal (without its fragments) from the columns of [`seal_columns`],
/// starting at column `at`.
pub(super) fn seal_row(r: &AnyRow, at: usize) -> MetaResult<Seal> {
    let id: SealId = r.try_get::<String, _>(at)?.parse()?;
    let corrupt = |what: String| MetaError::Corrupt(format!("seal {id}: {what}"));
    let k = fit(r.try_get::<i64, _>(at + 3)?, "k")?;
    let n = fit(r.try_get::<i64, _>(at + 4)?, "n")?;
    let segment_size = fit(r.try_get::<i64, _>(at + 5)?, "segment size")?;
    let params = CodingParams::new(k, n, segment_size).map_err(|e| corrupt(e.to_string()))?;
    let sealed_lens = match r.try_get::<Option<Vec<u8>>, _>(at + 7)? {
        Some(b) if b.len() % 4 != 0 => return Err(corrupt("segment lengths".into())),
        Some(b) => Some(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        None => None,
    };
    let wrapped: Vec<u8> = r.try_get(at + 8)?;
    Ok(Seal {
        state: r.try_get::<String, _>(at + 1)?.parse()?,
        size: fit(r.try_get::<i64, _>(at + 2)?, "seal size")?,
        params,
        compression: Compression::from_column(r.try_get(at + 6)?)?,
        sealed_lens,
        wrapped_key: WrappedKey::from_bytes(&wrapped).map_err(|e| corrupt(e.to_string()))?,
        created_at: r.try_get(at + 9)?,
        slots: fit(r.try_get::<i64, _>(at + 10)?, "pack slots")?,
        fragments: Vec::new(),
        id,
    })
}

/// Reads a fragment from `seal_id, idx, location, object_name, size, state,
/// verified_at`.
fn fragment_row(r: &AnyRow) -> MetaResult<(SealId, Fragment)> {
    let seal: SealId = r.try_get::<String, _>(0)?.parse()?;
    Ok((
        seal,
        Fragment {
            index: fit(r.try_get::<i64, _>(1)?, "fragment index")?,
            location: r.try_get(2)?,
            name: r.try_get(3)?,
            size: fit(r.try_get::<i64, _>(4)?, "fragment size")?,
            state: r.try_get::<String, _>(5)?.parse()?,
            verified_at: r.try_get(6)?,
        },
    ))
}

/// Ids per statement when fragments are loaded for a list of seals.
const IDS_PER_QUERY: usize = 500;
/// The seals of `rows` (their columns first, as `seal_columns!` selects them),
/// with their fragments.
pub(super) async fn seals_of(conn: &mut AnyConnection, rows: &[AnyRow]) -> MetaResult<Vec<Seal>> {
    let mut seals = rows.iter().map(|r| seal_row(r, 0)).collect::<MetaResult<Vec<_>>>()?;
    load_fragments(conn, &mut seals).await?;
    Ok(seals)
}

/// Makes `seal` garbage if no version and no upload part uses it any more, inside
/// a transaction.
pub(super) async fn garbage_if_unused(conn: &mut AnyConnection, seal: &str, now: i64) -> MetaResult<()> {
    sqlx::query(
        "UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3 \
         AND NOT EXISTS (SELECT 1 FROM version_parts WHERE seal_id = $3) \
         AND NOT EXISTS (SELECT 1 FROM upload_parts WHERE seal_id = $3)",
    )
    .bind(SealState::Garbage.as_str())
    .bind(now)
    .bind(seal)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Fills in the fragments of `seals` (by index), a few statements for the lot.
pub(super) async fn load_fragments(conn: &mut AnyConnection, seals: &mut [Seal]) -> MetaResult<()> {
    let mut by_id: HashMap<SealId, Vec<Fragment>> = HashMap::new();
    for chunk in seals.chunks(IDS_PER_QUERY) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT seal_id, idx, location, object_name, size, state, verified_at FROM fragments \
             WHERE seal_id IN ({}) \
             ORDER BY seal_id, idx",
            marks.join(", ")
        );
        // The statement is ours: a fixed text and numbered placeholders.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            q = q.bind(s.id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let (seal, f) = fragment_row(&r)?;
            by_id.entry(seal).or_default().push(f);
        }
    }
    for s in seals {
        s.fragments = by_id.remove(&s.id).unwrap_or_default();
    }
    Ok(())
}

/// Records what landed of a pending seal, inside a commit's transaction.
pub(super) async fn finish_seal(conn: &mut AnyConnection, seal: SealId, fin: &SealFinish) -> MetaResult<()> {
    let id = seal.to_string();
    // One statement per distinct size (a seal's fragments are all one size unless
    // compressed), not one per fragment: every statement is a round trip to the
    // database's worker thread.
    let mut sizes: Vec<u64> = fin.stored.iter().map(|&(_, size)| size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let indexes = index_list(fin.stored.iter().filter(|&&(_, s)| s == size).map(|&(idx, _)| idx));
        // Written whole and acknowledged: as good as verified.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE fragments SET state = $1, size = $2, verified_at = $3 WHERE seal_id = $4 AND idx IN ({indexes})"
        )))
        .bind(FragmentState::Stored.as_str())
        .bind(big(size))
        .bind(now_ms())
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    }
    if !fin.missing.is_empty() {
        let indexes = index_list(fin.missing.iter().copied());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE fragments SET state = $1 WHERE seal_id = $2 AND idx IN ({indexes})"
        )))
        .bind(FragmentState::Missing.as_str())
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    }
    if fin.repair_after > 0 {
        sqlx::query("UPDATE seals SET repair_after = $1 WHERE id = $2")
            .bind(fin.repair_after)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(lens) = &fin.sealed_lens {
        let bytes: Vec<u8> = lens.iter().flat_map(|l| l.to_le_bytes()).collect();
        sqlx::query("UPDATE seals SET sealed_lens = $1 WHERE id = $2")
            .bind(bytes)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    recount(conn, seal).await
}

/// Fragment indexes as an SQL list (`0, 3, 5`): numbers, so nothing to escape.
fn index_list(indexes: impl Iterator<Item = u8>) -> String {
    indexes.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Brings a seal's count of healthy fragments (its margin plus k) up to date after
/// its fragments changed, in the same transaction.
pub(super) async fn recount(conn: &mut AnyConnection, seal: SealId) -> MetaResult<()> {
    sqlx::query(
        "UPDATE seals SET healthy = (SELECT COUNT(*) FROM fragments f WHERE f.seal_id = $1 AND f.state = $2) \
         WHERE id = $1",
    )
    .bind(seal.to_string())
    .bind(FragmentState::Stored.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks seals garbage.
pub(super) async fn mark_garbage(conn: &mut AnyConnection, seal: SealId, now: i64) -> MetaResult<()> {
    sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3")
        .bind(SealState::Garbage.as_str())
        .bind(now)
        .bind(seal.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Makes a pending seal stored. `false` if it is no longer pending (collected as a
/// dead write meanwhile): then it must not become visible.
pub(super) async fn store_pending(conn: &mut AnyConnection, seal: SealId, now: i64) -> MetaResult<bool> {
    let r = sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
        .bind(SealState::Stored.as_str())
        .bind(now)
        .bind(seal.to_string())
        .bind(SealState::Pending.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// A pending seal that can no longer be committed.
pub(super) fn not_pending(seal: SealId) -> MetaError {
    MetaError::Conflict(format!("seal {seal} is no longer pending: the write took longer than pipeline.pending_grace"))
}

/// Inserts a seal in `state` with its fragments, each in `fragments` or, when
/// `None`, in its own state (its count of healthy fragments follows).
pub(super) async fn insert_seal(
    conn: &mut AnyConnection,
    seal: &Seal,
    state: SealState,
    fragments: Option<FragmentState>,
    writer: &str,
) -> MetaResult<()> {
    let id = seal.id.to_string();
    let now = now_ms();
    let healthy = match fragments {
        Some(s) => {
            if s == FragmentState::Stored {
                seal.fragments.len()
            } else {
                0
            }
        }
        None => seal.healthy(),
    };
    sqlx::query(
        "INSERT INTO seals (id, state, size, k, n, segment_size, compression, sealed_lens, wrapped_key, created_at, \
         updated_at, writer, healthy, slots) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&id)
    .bind(state.as_str())
    .bind(big(seal.size))
    .bind(i64::from(seal.params.k()))
    .bind(i64::from(seal.params.n()))
    .bind(i64::from(seal.params.segment_size()))
    .bind(seal.compression.column())
    .bind(seal.sealed_lens.as_ref().map(|l| l.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()))
    .bind(seal.wrapped_key.0.to_vec())
    .bind(if fragments.is_some() { now } else { seal.created_at })
    .bind(now)
    .bind(writer)
    .bind(healthy as i64)
    .bind(i64::from(seal.slots))
    .execute(&mut *conn)
    .await?;
    // All fragments in one statement (a round trip each would cost more than the
    // rows), at most 64 rows per statement to stay within any bind limit.
    for chunk in seal.fragments.chunks(64) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 5 * i + 2;
                format!("($1, ${b}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4)
            })
            .collect();
        let sql = format!(
            "INSERT INTO fragments (seal_id, idx, location, object_name, size, state) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&id);
        for f in chunk {
            q = q
                .bind(i64::from(f.index))
                .bind(&f.location)
                .bind(&f.name)
                .bind(big(f.size))
                .bind(fragments.unwrap_or(f.state).as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl MetaStore {
    /// Records a write about to start on node `writer`: its seal and planned
    /// fragments, all `pending` whatever `seal` says.
    pub async fn insert_pending_seal(&self, seal: &Seal, writer: &str) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        insert_seal(&mut tx, seal, SealState::Pending, Some(FragmentState::Pending), writer).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a seal as garbage (a failed write, or one no longer referenced).
    pub async fn discard_seal(&self, seal: SealId) -> MetaResult<()> {
        let mut conn = self.pool.acquire().await?;
        mark_garbage(&mut conn, seal, now_ms()).await
    }

    /// A seal and its fragments.
    pub async fn seal(&self, id: SealId) -> MetaResult<Option<Seal>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(concat!("SELECT ", seal_columns!("s"), " FROM seals s WHERE s.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut seals = [seal_row(&row, 0)?];
        load_fragments(&mut conn, &mut seals).await?;
        let [seal] = seals;
        Ok(Some(seal))
    }

    /// Sets one fragment's state (after a read found it missing or corrupt, or a
    /// check found it good again: `stored` also records it as verified now). A
    /// fragment being rebuilt is left alone; the seal's count of healthy fragments
    /// follows in the same transaction.
    pub async fn set_fragment_state(&self, seal: SealId, index: u8, state: FragmentState) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        let verified = if state == FragmentState::Stored { now_ms() } else { 0 };
        sqlx::query(
            "UPDATE fragments SET state = $1, verified_at = CASE WHEN $2 > 0 THEN $2 ELSE verified_at END \
             WHERE seal_id = $3 AND idx = $4 AND state <> $5",
        )
        .bind(state.as_str())
        .bind(verified)
        .bind(seal.to_string())
        .bind(i64::from(index))
        .bind(FragmentState::Repairing.as_str())
        .execute(&mut *tx)
        .await?;
        recount(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records fragment `index` of `seal` stored at `location` with `size` bytes,
    /// once its upload, still going when its write committed, has landed. Nothing
    /// changes if the fragment is no longer missing there (repair got to it first,
    /// or moved it) or its seal is gone.
    pub async fn complete_fragment(&self, seal: SealId, index: u8, location: &str, size: u64) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE fragments SET state = $1, size = $2, verified_at = $3 \
             WHERE seal_id = $4 AND idx = $5 AND location = $6 AND state = $7 \
             AND EXISTS (SELECT 1 FROM seals WHERE id = $4 AND state = $8)",
        )
        .bind(FragmentState::Stored.as_str())
        .bind(big(size))
        .bind(now_ms())
        .bind(seal.to_string())
        .bind(i64::from(index))
        .bind(location)
        .bind(FragmentState::Missing.as_str())
        .bind(SealState::Stored.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            recount(&mut tx, seal).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that a fragment was read back whole and found good.
    pub async fn fragment_verified(&self, seal: SealId, index: u8) -> MetaResult<()> {
        sqlx::query("UPDATE fragments SET verified_at = $1 WHERE seal_id = $2 AND idx = $3 AND state = $4")
            .bind(now_ms())
            .bind(seal.to_string())
            .bind(i64::from(index))
            .bind(FragmentState::Stored.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Seals to collect, oldest first: garbage, and pending ones whose writes died
    /// (see [`DeadWrites`]) — never one a version or an upload still references.
    pub async fn collectable_seals(&self, dead: &DeadWrites<'_>, limit: i64) -> MetaResult<Vec<Seal>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            seal_columns!("s"),
            " FROM seals s WHERE ((s.state = $1 AND s.updated_at < $7) OR (s.state = $2 AND (s.updated_at < $3 OR (s.writer = $4 AND \
             s.updated_at < $5)))) AND NOT EXISTS (SELECT 1 FROM version_parts p WHERE p.seal_id = s.id) \
             AND NOT EXISTS (SELECT 1 FROM upload_parts u WHERE u.seal_id = s.id) ORDER BY s.updated_at LIMIT $6"
        ))
        .bind(SealState::Garbage.as_str())
        .bind(SealState::Pending.as_str())
        .bind(dead.before)
        .bind(dead.writer)
        .bind(dead.writer_before)
        .bind(limit)
        .bind(dead.retired_before)
        .fetch_all(&mut *conn)
        .await?;
        seals_of(&mut conn, &rows).await
    }

    /// Forgets collected seals (their fragments were deleted), in one transaction.
    /// A seal anything still references, or that is no longer collectable, is
    /// refused. Returns how many were forgotten.
    pub async fn forget_seals(&self, seals: &[SealId]) -> MetaResult<usize> {
        let mut tx = self.begin_write().await?;
        let mut forgotten = 0;
        for seal in seals {
            let id = seal.to_string();
            let referenced = sqlx::query(
                "SELECT 1 FROM version_parts WHERE seal_id = $1 UNION ALL \
                 SELECT 1 FROM upload_parts WHERE seal_id = $1 LIMIT 1",
            )
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
            if referenced.is_some() {
                continue;
            }
            sqlx::query("DELETE FROM fragments WHERE seal_id = $1").bind(&id).execute(&mut *tx).await?;
            let r = sqlx::query("DELETE FROM seals WHERE id = $1 AND state <> $2")
                .bind(&id)
                .bind(SealState::Stored.as_str())
                .execute(&mut *tx)
                .await?;
            forgotten += r.rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(forgotten)
    }

    /// Sends collectable seals whose fragments could not all be deleted to the back
    /// of the collection queue (as garbage: a dead write stays dead).
    pub async fn postpone_collection(&self, seals: &[SealId]) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for seal in seals {
            sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3 AND state <> $4")
                .bind(SealState::Garbage.as_str())
                .bind(now_ms())
                .bind(seal.to_string())
                .bind(SealState::Stored.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets one collected seal; see [`Self::forget_seals`].
    pub async fn forget_seal(&self, seal: SealId) -> MetaResult<bool> {
        Ok(self.forget_seals(&[seal]).await? == 1)
    }

    /// Takes or renews the lease `name` for `holder` until `ttl_ms` from now. True
    /// if `holder` holds it now: it was free, expired, or already `holder`'s. Each
    /// step is one atomic statement, so two replicas racing never both win.
    pub async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> MetaResult<bool> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(true);
        }
        let taken = sqlx::query(
            "UPDATE leases SET holder = $2, expires_at = $3 WHERE name = $1 AND (holder = $2 OR expires_at < $4)",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }
}

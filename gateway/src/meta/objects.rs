//! Object versions: committing one (the moment a write becomes visible), reading
//! what a GET needs in one snapshot, deleting, listing.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::packs::{MEMBER_COLUMNS, MEMBER_JOIN, member_row};
use super::records::{RecordRow, insert_record, retire_manifest};
use super::seals::{finish_seal, load_fragments, not_pending, seal_columns, seal_row, store_pending};
use super::types::{big, fit};
use super::{
    ListedObject, Manifest, ManifestPart, MetaError, MetaResult, MetaStore, PartRow, Replaced, Retention, SealFinish,
    SealId, SealState, UploadId, VersionId, VersionRow, WriteCondition, attrs_row, json, now_ms, tags_json,
};

/// The columns of a version, in the order [`version_row`] reads them.
macro_rules! version_columns {
    () => {
        "v.id, v.bucket, v.object_key, v.size, v.etag, v.last_modified, v.content_type, v.headers, \
         v.user_metadata, v.checksum_algorithm, v.sse_customer, v.tags, v.checksum_value, v.checksum_type, \
         v.part_count, v.null_version, v.delete_marker, v.recorded_at, v.lock_mode, v.retain_until, v.legal_hold"
    };
}
pub(super) use version_columns;

/// How many columns [`version_columns`] names: the first column after them.
pub(super) const VERSION_COLUMNS: usize = 21;

pub(super) fn version_row(r: &AnyRow) -> MetaResult<VersionRow> {
    Ok(VersionRow {
        id: r.try_get::<String, _>(0)?.parse()?,
        bucket: r.try_get(1)?,
        key: r.try_get(2)?,
        size: fit(r.try_get::<i64, _>(3)?, "object size")?,
        etag: r.try_get(4)?,
        last_modified: r.try_get(5)?,
        attrs: attrs_row(r, 6)?,
        checksum_value: r.try_get(12)?,
        checksum_type: r.try_get(13)?,
        part_count: fit(r.try_get::<i64, _>(14)?, "part count")?,
        null_version: r.try_get::<i64, _>(15)? != 0,
        delete_marker: r.try_get::<i64, _>(16)? != 0,
        recorded_at: r.try_get(17)?,
        lock: lock_row(r, 18)?,
    })
}

/// A lock as stored: mode, date, hold, from column `at` on.
pub(super) fn lock_row(r: &AnyRow, at: usize) -> MetaResult<Retention> {
    Ok(Retention {
        mode: r.try_get::<Option<String>, _>(at)?.map(|m| m.parse()).transpose()?,
        until: r.try_get(at + 1)?,
        legal_hold: r.try_get::<i64, _>(at + 2)? != 0,
    })
}

/// Reads a part from `part_number, seal_id, part_offset, size` and the columns of
/// [`MEMBER_COLUMNS`].
pub(super) fn part_row(r: &AnyRow) -> MetaResult<PartRow> {
    Ok(PartRow {
        number: fit(r.try_get::<i64, _>(0)?, "part number")?,
        seal_id: r.try_get::<String, _>(1)?.parse()?,
        offset: fit(r.try_get::<i64, _>(2)?, "part offset")?,
        size: fit(r.try_get::<i64, _>(3)?, "part size")?,
        member: member_row(r, 4)?,
    })
}

/// Checks `condition` against the key of `version`, holding the key's row (on
/// PostgreSQL a concurrent conditional commit of the key waits here until this
/// transaction ends, then reads what it committed).
async fn check_condition(conn: &mut AnyConnection, version: &VersionRow, condition: &WriteCondition) -> MetaResult<()> {
    if *condition == WriteCondition::Any {
        return Ok(());
    }
    sqlx::query("UPDATE objects SET version_id = version_id WHERE bucket = $1 AND object_key = $2")
        .bind(&version.bucket)
        .bind(&version.key)
        .execute(&mut *conn)
        .await?;
    let etag: Option<String> = sqlx::query(
        "SELECT v.etag FROM objects o JOIN versions v ON v.id = o.version_id \
         WHERE o.bucket = $1 AND o.object_key = $2 AND v.delete_marker = 0",
    )
    .bind(&version.bucket)
    .bind(&version.key)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| r.try_get(0))
    .transpose()?;
    condition.check(etag.as_deref())
}

/// Holds bucket `name` for a commit into it (on PostgreSQL a shared row lock, which
/// a DeleteBucket waits for; SQLite runs one writer at a time): `NoSuchBucket` if it
/// was deleted while the write was under way.
pub(super) async fn hold_bucket(conn: &mut AnyConnection, name: &str) -> MetaResult<()> {
    let sql = match conn.backend_name() {
        "PostgreSQL" => "SELECT 1 FROM buckets WHERE name = $1 FOR SHARE",
        _ => "SELECT 1 FROM buckets WHERE name = $1",
    };
    match sqlx::query(sql).bind(name).fetch_optional(&mut *conn).await? {
        Some(_) => Ok(()),
        None => Err(MetaError::NoSuchBucket),
    }
}

/// Inserts `version` made of `parts` (and its manifest record) and makes it the
/// latest version of its key. A `null` version retires the key's other `null`
/// version (in a bucket never versioned, every version is `null`: the key's only
/// one). A key's versions are ordered by when their manifests were recorded: a
/// version recorded before the key's latest (two writers raced) does not become
/// the latest — a `null` one is retired at once, another stays as a noncurrent
/// version — as recovery from the records would decide. `condition` must hold, or
/// nothing changes; a conditional version that would not become the latest fails.
pub(super) async fn commit_version(
    conn: &mut AnyConnection,
    version: &VersionRow,
    parts: &[PartRow],
    record: Option<&RecordRow>,
    condition: &WriteCondition,
) -> MetaResult<Replaced> {
    hold_bucket(conn, &version.bucket).await?;
    commit_held(conn, version, parts, record, condition).await
}

/// [`commit_version`] into a bucket this transaction already holds
/// ([`hold_bucket`]): the members of a pack in one bucket hold it once.
pub(super) async fn commit_held(
    conn: &mut AnyConnection,
    version: &VersionRow,
    parts: &[PartRow],
    record: Option<&RecordRow>,
    condition: &WriteCondition,
) -> MetaResult<Replaced> {
    check_condition(conn, version, condition).await?;
    let id = version.id.to_string();
    let recorded_at = record.map_or(version.recorded_at, |r| r.at);
    if let Some(r) = record {
        insert_record(conn, r).await?;
    }
    sqlx::query(
        "INSERT INTO versions (id, bucket, object_key, size, etag, last_modified, content_type, headers, user_metadata, \
         checksum_algorithm, checksum_value, checksum_type, part_count, sse_customer, null_version, delete_marker, \
         recorded_at, lock_mode, retain_until, legal_hold, tags) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(&id)
    .bind(&version.bucket)
    .bind(&version.key)
    .bind(big(version.size))
    .bind(&version.etag)
    .bind(version.last_modified)
    .bind(version.attrs.content_type.clone())
    .bind(json(&version.attrs.headers))
    .bind(json(&version.attrs.user_metadata))
    .bind(version.attrs.checksum_algorithm.map(|a| a.as_str()))
    .bind(version.checksum_value.clone())
    .bind(version.checksum_type.clone())
    .bind(i64::from(version.part_count))
    .bind(version.attrs.customer_key.clone())
    .bind(i64::from(version.null_version))
    .bind(i64::from(version.delete_marker))
    .bind(recorded_at)
    .bind(version.lock.mode.map(|m| m.as_str()))
    .bind(version.lock.until)
    .bind(i64::from(version.lock.legal_hold))
    .bind(tags_json(&version.attrs.tags))
    .execute(&mut *conn)
    .await?;
    for p in parts {
        sqlx::query(
            "INSERT INTO version_parts (version_id, part_number, seal_id, part_offset, size, slot) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(i64::from(p.number))
        .bind(p.seal_id.to_string())
        .bind(big(p.offset))
        .bind(big(p.size))
        .bind(p.member.as_ref().map(|m| i64::from(m.slot)))
        .execute(&mut *conn)
        .await?;
    }
    // The key's latest now (on PostgreSQL, one committed since the check is seen).
    let previous: Option<(String, bool)> = sqlx::query(
        "SELECT o.version_id, v.delete_marker FROM objects o JOIN versions v ON v.id = o.version_id \
         WHERE o.bucket = $1 AND o.object_key = $2",
    )
    .bind(&version.bucket)
    .bind(&version.key)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| Ok::<_, MetaError>((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0)))
    .transpose()?;
    // A key that must be absent is never replaced: without a row it is inserted
    // (of concurrent such commits the later ones find the first one's row — on
    // PostgreSQL, wait for it); under a delete marker the row is moved on only
    // from that marker (a concurrent writer that moved it first wins).
    let placed = match (condition, &previous) {
        (WriteCondition::Absent, Some((_, false))) => return Err(MetaError::Precondition("the key holds an object")),
        (WriteCondition::Absent, None) => {
            sqlx::query(
                "INSERT INTO objects (bucket, object_key, version_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket, object_key) DO NOTHING",
            )
            .bind(&version.bucket)
            .bind(&version.key)
            .bind(&id)
            .execute(&mut *conn)
            .await?
        }
        (WriteCondition::Absent, Some((marker, true))) => {
            sqlx::query("UPDATE objects SET version_id = $1 WHERE bucket = $2 AND object_key = $3 AND version_id = $4")
                .bind(&id)
                .bind(&version.bucket)
                .bind(&version.key)
                .bind(marker)
                .execute(&mut *conn)
                .await?
        }
        _ => {
            sqlx::query(
                "INSERT INTO objects (bucket, object_key, version_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket, object_key) DO UPDATE SET version_id = excluded.version_id",
            )
            .bind(&version.bucket)
            .bind(&version.key)
            .bind(&id)
            .execute(&mut *conn)
            .await?
        }
    };
    if placed.rows_affected() == 0 {
        return Err(MetaError::Precondition("the key holds an object"));
    }
    let previous = previous.map(|(p, _)| p);
    // Asked after the upsert, which waits for a concurrent commit of the same key:
    // its version is seen here, so that concurrent overwrites never leak a version.
    let ours = (recorded_at, id.as_str());
    let now = now_ms();
    let mut retired_self = false;
    if version.null_version {
        let nulls = sqlx::query(
            "SELECT id, recorded_at FROM versions WHERE bucket = $1 AND object_key = $2 AND null_version = 1 AND id <> $3",
        )
        .bind(&version.bucket)
        .bind(&version.key)
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
        .collect::<MetaResult<Vec<_>>>()?;
        if nulls.iter().any(|(other, at)| (*at, other.as_str()) > ours) {
            // A write recorded later holds the key's null version.
            if *condition != WriteCondition::Any {
                return Err(MetaError::Precondition("a write recorded later holds the key"));
            }
            retire_version(conn, &id, now, false).await?;
            retired_self = true;
        } else {
            for (old, _) in &nulls {
                retire_version(conn, old, now, false).await?;
            }
        }
    }
    // The key's row has pointed at this version since the upsert above (retiring
    // other versions leaves it), unless this one was retired: it moves only if
    // another version is the latest after all.
    let latest = latest_version(conn, &version.bucket, &version.key).await?;
    if retired_self || latest.as_deref() != Some(id.as_str()) {
        point_at(conn, &version.bucket, &version.key, latest.as_deref()).await?;
    }
    if latest.as_deref() != Some(id.as_str()) {
        if *condition != WriteCondition::Any {
            return Err(MetaError::Precondition("a write recorded later holds the key"));
        }
        return Ok(Replaced { version_id: None });
    }
    Ok(Replaced { version_id: previous.filter(|p| *p != id).map(|p| p.parse()).transpose()? })
}

/// Points the key's row at its latest version (by when recorded, then id), or
/// removes it if the key has no version left; returns the latest version's id.
pub(super) async fn point_at_latest(conn: &mut AnyConnection, bucket: &str, key: &[u8]) -> MetaResult<Option<String>> {
    let latest = latest_version(conn, bucket, key).await?;
    point_at(conn, bucket, key, latest.as_deref()).await?;
    Ok(latest)
}

/// The key's latest version (by when recorded, then id).
async fn latest_version(conn: &mut AnyConnection, bucket: &str, key: &[u8]) -> MetaResult<Option<String>> {
    Ok(sqlx::query(
        "SELECT id FROM versions WHERE bucket = $1 AND object_key = $2 ORDER BY recorded_at DESC, id DESC LIMIT 1",
    )
    .bind(bucket)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| r.try_get(0))
    .transpose()?)
}

/// Points the key's row at `version`, or removes it if there is none.
async fn point_at(conn: &mut AnyConnection, bucket: &str, key: &[u8], version: Option<&str>) -> MetaResult<()> {
    match version {
        Some(v) => {
            sqlx::query(
                "INSERT INTO objects (bucket, object_key, version_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket, object_key) DO UPDATE SET version_id = excluded.version_id",
            )
            .bind(bucket)
            .bind(key)
            .bind(v)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM objects WHERE bucket = $1 AND object_key = $2")
                .bind(bucket)
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Retires a version inside a transaction: its rows go (the key's row too, if it
/// points at it), and each of its seals that no other version shares (a copy)
/// becomes garbage — unless its object lock protects it (`Locked`; governance
/// retention gives way to `bypass_governance`).
pub(super) async fn retire_version(
    conn: &mut AnyConnection,
    version_id: &str,
    now: i64,
    bypass_governance: bool,
) -> MetaResult<()> {
    // Whatever asks, a version its lock protects stays.
    let lock = sqlx::query("SELECT lock_mode, retain_until, legal_hold FROM versions WHERE id = $1")
        .bind(version_id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(why) = lock.map(|r| lock_row(&r, 0)).transpose()?.and_then(|l| l.blocks(now, bypass_governance)) {
        return Err(MetaError::Locked(why));
    }
    let seals: Vec<String> = sqlx::query("SELECT seal_id FROM version_parts WHERE version_id = $1")
        .bind(version_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    // The seals' rows are held first: a copy sharing one (`copy_version`) holds it
    // while it commits, and on PostgreSQL the reference check below, a later
    // statement, then sees that copy's parts.
    sqlx::query(
        "UPDATE seals SET updated_at = $1 WHERE id IN (SELECT seal_id FROM version_parts WHERE version_id = $2)",
    )
    .bind(now)
    .bind(version_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM version_parts WHERE version_id = $1").bind(version_id).execute(&mut *conn).await?;
    // The key's row, if it points at this version, goes with it (the caller points
    // it at the key's latest again: `point_at_latest`).
    sqlx::query(
        "DELETE FROM objects WHERE (bucket, object_key) IN (SELECT bucket, object_key FROM versions WHERE id = $1) \
         AND version_id = $1",
    )
    .bind(version_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM versions WHERE id = $1").bind(version_id).execute(&mut *conn).await?;
    for seal in &seals {
        super::seals::garbage_if_unused(conn, seal, now).await?;
    }
    retire_manifest(conn, version_id, now).await
}

/// What a read needs of the visible version of a key, read on `conn` (a snapshot).
pub(super) async fn manifest_in(conn: &mut AnyConnection, bucket: &str, key: &[u8]) -> MetaResult<Option<Manifest>> {
    let Some((version, tenant_number)) = visible_version(conn, bucket, key).await? else { return Ok(None) };
    manifest_of(conn, version, tenant_number).await.map(Some)
}

/// What a read of `version` needs: its parts with their seals and fragments.
pub(super) async fn manifest_of(
    conn: &mut AnyConnection,
    version: VersionRow,
    tenant_number: u32,
) -> MetaResult<Manifest> {
    let sql = format!(
        "SELECT p.part_number, p.part_offset, p.size, {MEMBER_COLUMNS}, {} FROM version_parts p \
         JOIN seals s ON s.id = p.seal_id {MEMBER_JOIN} WHERE p.version_id = $1 ORDER BY p.part_number",
        seal_columns!("s")
    );
    // The statement is ours: fixed texts and a numbered placeholder.
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(version.id.to_string()).fetch_all(&mut *conn).await?;
    let mut seals = rows.iter().map(|r| seal_row(r, 7)).collect::<MetaResult<Vec<_>>>()?;
    load_fragments(conn, &mut seals).await?;
    let parts = rows
        .iter()
        .zip(seals)
        .map(|(r, seal)| {
            Ok(ManifestPart {
                number: fit(r.try_get::<i64, _>(0)?, "part number")?,
                offset: fit(r.try_get::<i64, _>(1)?, "part offset")?,
                size: fit(r.try_get::<i64, _>(2)?, "part size")?,
                member: member_row(r, 3)?,
                seal,
            })
        })
        .collect::<MetaResult<Vec<_>>>()?;
    if parts.len() != version.part_count as usize {
        return Err(MetaError::Corrupt(format!(
            "version {} has {} of its {} parts",
            version.id,
            parts.len(),
            version.part_count
        )));
    }
    Ok(Manifest { version, parts, tenant_number })
}

impl MetaStore {
    /// Ends a single-part write in one transaction: records which fragments of
    /// `seal` landed, makes it stored and `version` (of the one part `part`) the
    /// visible version of its key, retiring the one it replaces; `record` is its
    /// manifest at the locations.
    pub async fn commit_object(
        &self,
        seal: SealId,
        fin: &SealFinish,
        version: &VersionRow,
        part: &PartRow,
        record: Option<&RecordRow>,
        condition: &WriteCondition,
    ) -> MetaResult<Replaced> {
        let mut tx = self.begin_write().await?;
        finish_seal(&mut tx, seal, fin).await?;
        if !store_pending(&mut tx, seal, now_ms()).await? {
            return Err(not_pending(seal));
        }
        let replaced = commit_version(&mut tx, version, std::slice::from_ref(part), record, condition).await?;
        tx.commit().await?;
        Ok(replaced)
    }

    /// Completes a multipart upload in one transaction: removes it, makes `version`
    /// (of `parts`, seals of the upload's parts) the visible version of its key, and
    /// turns the parts left out into garbage. `None` if the upload is gone (aborted,
    /// or completed by a concurrent request): nothing changes then.
    pub async fn complete_upload(
        &self,
        upload: UploadId,
        version: &VersionRow,
        parts: &[PartRow],
        record: Option<&RecordRow>,
        condition: &WriteCondition,
    ) -> MetaResult<Option<Replaced>> {
        let upload = upload.to_string();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Every part's seal is garbage unless chosen below. (Before the upload row
        // goes: its parts go with it.)
        sqlx::query(
            "UPDATE seals SET state = $1, updated_at = $2 WHERE id IN \
             (SELECT seal_id FROM upload_parts WHERE upload_id = $3)",
        )
        .bind(SealState::Garbage.as_str())
        .bind(now)
        .bind(&upload)
        .execute(&mut *tx)
        .await?;
        // Removing the upload row serialises completions of one upload: only one
        // finds it (the other rolls back), so two versions never share seals.
        let gone = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(&upload).execute(&mut *tx).await?;
        if gone.rows_affected() != 1 {
            return Ok(None);
        }
        for p in parts {
            sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(SealState::Stored.as_str())
                .bind(now)
                .bind(p.seal_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1").bind(&upload).execute(&mut *tx).await?;
        let replaced = commit_version(&mut tx, version, parts, record, condition).await?;
        // Which upload made it: a repeated Complete is answered from it.
        sqlx::query("UPDATE versions SET upload_id = $1 WHERE id = $2")
            .bind(&upload)
            .bind(version.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(replaced))
    }

    /// The version of a key upload `upload` made, if it is still there (a
    /// Complete that came again, after its first answer was lost).
    pub async fn completed_by(&self, bucket: &str, key: &[u8], upload: UploadId) -> MetaResult<Option<VersionRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM versions v WHERE v.bucket = $1 AND v.object_key = $2 AND v.upload_id = $3"
        ))
        .bind(bucket)
        .bind(key)
        .bind(upload.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
    }

    /// Makes `version`, made of `parts` — seals of another version (a copy) — the
    /// visible version of its key, with its manifest `record`. Each seal is held and
    /// must still be stored: `None`, and nothing changed, if one became garbage
    /// (its last version went) since the caller read it.
    pub async fn copy_version(
        &self,
        version: &VersionRow,
        parts: &[PartRow],
        record: &RecordRow,
        condition: &WriteCondition,
    ) -> MetaResult<Option<Replaced>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for p in parts {
            let held = sqlx::query("UPDATE seals SET updated_at = $1 WHERE id = $2 AND state = $3")
                .bind(now)
                .bind(p.seal_id.to_string())
                .bind(SealState::Stored.as_str())
                .execute(&mut *tx)
                .await?;
            if held.rows_affected() != 1 {
                return Ok(None);
            }
        }
        let replaced = commit_version(&mut tx, version, parts, Some(record), condition).await?;
        tx.commit().await?;
        Ok(Some(replaced))
    }

    /// The visible version of a key, with its parts in order (what HEAD needs).
    pub async fn current_version(&self, bucket: &str, key: &[u8]) -> MetaResult<Option<(VersionRow, Vec<PartRow>)>> {
        let mut conn = self.pool.acquire().await?;
        let Some((version, _)) = visible_version(&mut conn, bucket, key).await? else { return Ok(None) };
        let sql = format!(
            "SELECT p.part_number, p.seal_id, p.part_offset, p.size, {MEMBER_COLUMNS} FROM version_parts p \
             {MEMBER_JOIN} WHERE p.version_id = $1 ORDER BY p.part_number"
        );
        // The statement is ours: fixed texts and a numbered placeholder.
        let parts = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(version.id.to_string())
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(part_row)
            .collect::<MetaResult<_>>()?;
        Ok(Some((version, parts)))
    }

    /// Everything a read of a key needs, from one snapshot: the visible version,
    /// each part's seal and fragments, and the owning tenant's number.
    pub async fn manifest(&self, bucket: &str, key: &[u8]) -> MetaResult<Option<Manifest>> {
        let mut tx = self.begin_snapshot().await?;
        let m = manifest_in(&mut tx, bucket, key).await?;
        tx.commit().await?;
        Ok(m)
    }

    /// Removes the visible version of a key (its seals become garbage) — only if it
    /// is `expect`, when given (the version a tombstone was written for) — and
    /// records `tombstone`. Returns the removed version's id; `None` if the key had
    /// no version, or another one than `expect`.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &[u8],
        expect: Option<VersionId>,
        tombstone: Option<&RecordRow>,
    ) -> MetaResult<Option<VersionId>> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query("DELETE FROM objects WHERE bucket = $1 AND object_key = $2 RETURNING version_id")
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let Some(v) = current else { return Ok(None) };
        if expect.is_some_and(|e| e.to_string() != v) {
            return Ok(None);
        }
        retire_version(&mut tx, &v, now_ms(), false).await?;
        if let Some(t) = tombstone {
            insert_record(&mut tx, t).await?;
        }
        tx.commit().await?;
        Ok(Some(v.parse()?))
    }

    /// Up to `limit` visible objects of `bucket` with keys `>= from` (or `> from`
    /// when `exclusive`), in byte order.
    pub async fn list_objects(
        &self,
        bucket: &str,
        from: &[u8],
        exclusive: bool,
        limit: i64,
    ) -> MetaResult<Vec<ListedObject>> {
        const INCLUSIVE: &str = "SELECT o.object_key, v.size, v.etag, v.last_modified FROM objects o \
            JOIN versions v ON v.id = o.version_id WHERE o.bucket = $1 AND o.object_key >= $2 AND v.delete_marker = 0 ORDER BY o.object_key LIMIT $3";
        const EXCLUSIVE: &str = "SELECT o.object_key, v.size, v.etag, v.last_modified FROM objects o \
            JOIN versions v ON v.id = o.version_id WHERE o.bucket = $1 AND o.object_key > $2 AND v.delete_marker = 0 ORDER BY o.object_key LIMIT $3";
        let sql = if exclusive { EXCLUSIVE } else { INCLUSIVE };
        let rows = sqlx::query(sql).bind(bucket).bind(from).bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ListedObject {
                    key: r.try_get(0)?,
                    size: fit(r.try_get::<i64, _>(1)?, "object size")?,
                    etag: r.try_get(2)?,
                    last_modified: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// The visible version of a key and the owning tenant's number.
async fn visible_version(conn: &mut AnyConnection, bucket: &str, key: &[u8]) -> MetaResult<Option<(VersionRow, u32)>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        version_columns!(),
        ", t.number FROM objects o JOIN versions v ON v.id = o.version_id \
         JOIN buckets b ON b.name = o.bucket LEFT JOIN tenants t ON t.name = b.tenant \
         WHERE o.bucket = $1 AND o.object_key = $2 AND v.delete_marker = 0"
    ))
    .bind(bucket)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let version = version_row(&row)?;
    let number: Option<i64> = row.try_get(VERSION_COLUMNS)?;
    let number = number.ok_or_else(|| MetaError::Corrupt(format!("bucket {bucket}: its tenant is missing")))?;
    Ok(Some((version, fit(number, "tenant number")?)))
}

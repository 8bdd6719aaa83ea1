//! The versions of a key besides its latest (S3 versioning): reading one by id,
//! deleting one for good, listing them all.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::objects::{
    VERSION_COLUMNS, commit_version, manifest_of, point_at_latest, retire_version, version_columns, version_row,
};
use super::records::{RecordRow, insert_record};
use super::types::fit;
use super::{
    Manifest, MetaError, MetaResult, MetaStore, Replaced, Retention, VersionId, VersionRef, VersionRow, WriteCondition,
    now_ms, tags_json,
};

/// Selects versions with their tenant's number and whether each is its key's latest.
macro_rules! version_select {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            version_columns!(),
            ", t.number, CASE WHEN o.version_id = v.id THEN 1 ELSE 0 END FROM versions v \
             JOIN buckets b ON b.name = v.bucket LEFT JOIN tenants t ON t.name = b.tenant \
             LEFT JOIN objects o ON o.bucket = v.bucket AND o.object_key = v.object_key ",
            $rest
        )
    };
}

/// A version as listed: the row, and whether it is its key's latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    /// The version (a delete marker too).
    pub version: VersionRow,
    /// Whether it is its key's latest version.
    pub latest: bool,
}

fn listed(r: &sqlx::any::AnyRow) -> MetaResult<(ListedVersion, u32)> {
    let version = version_row(r)?;
    let number: Option<i64> = r.try_get(VERSION_COLUMNS)?;
    let number =
        number.ok_or_else(|| MetaError::Corrupt(format!("bucket {}: its tenant is missing", version.bucket)))?;
    let latest = r.try_get::<i64, _>(VERSION_COLUMNS + 1)? != 0;
    Ok((ListedVersion { version, latest }, fit(number, "tenant number")?))
}

/// Version `which` of a key, with its tenant's number, read on `conn`.
async fn version_in(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &[u8],
    which: VersionRef,
) -> MetaResult<Option<(ListedVersion, u32)>> {
    let row = match which {
        VersionRef::Null => {
            sqlx::query(version_select!("WHERE v.bucket = $1 AND v.object_key = $2 AND v.null_version = 1"))
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?
        }
        VersionRef::Id(id) => {
            sqlx::query(version_select!("WHERE v.bucket = $1 AND v.object_key = $2 AND v.id = $3"))
                .bind(bucket)
                .bind(key)
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    row.as_ref().map(listed).transpose()
}

/// Up to `limit` versions (delete markers too) after `after` (bucket, key, id), in
/// that order, each with its seals and fragments, read on `conn`.
pub(super) async fn all_versions_in(
    conn: &mut AnyConnection,
    after: Option<&(String, Vec<u8>, String)>,
    limit: i64,
) -> MetaResult<Vec<Manifest>> {
    let (bucket, key, id) = after.cloned().unwrap_or_default();
    let rows = sqlx::query(version_select!(
        "WHERE v.bucket > $1 OR (v.bucket = $1 AND (v.object_key > $2 OR (v.object_key = $2 AND v.id > $3))) \
         ORDER BY v.bucket, v.object_key, v.id LIMIT $4"
    ))
    .bind(bucket)
    .bind(key)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let (v, number) = listed(r)?;
        out.push(manifest_of(conn, v.version, number).await?);
    }
    Ok(out)
}

impl MetaStore {
    /// Makes delete marker `marker` (recorded as `record`) its key's latest
    /// version, if `condition` holds.
    pub async fn commit_marker(
        &self,
        marker: &VersionRow,
        record: Option<&RecordRow>,
        condition: &WriteCondition,
    ) -> MetaResult<Replaced> {
        let mut tx = self.begin_write().await?;
        let replaced = commit_version(&mut tx, marker, &[], record, condition).await?;
        tx.commit().await?;
        Ok(replaced)
    }

    /// Changes the object lock of version `id` from `old` to `new`; `false` (and
    /// nothing changed) if its lock is no longer `old` (a concurrent change).
    pub async fn set_lock(&self, id: VersionId, old: &Retention, new: &Retention) -> MetaResult<bool> {
        let r = sqlx::query(
            "UPDATE versions SET lock_mode = $1, retain_until = $2, legal_hold = $3 WHERE id = $4 \
             AND COALESCE(lock_mode, '') = $5 AND COALESCE(retain_until, -1) = $6 AND legal_hold = $7",
        )
        .bind(new.mode.map(|m| m.as_str()))
        .bind(new.until)
        .bind(i64::from(new.legal_hold))
        .bind(id.to_string())
        .bind(old.mode.map_or("", |m| m.as_str()))
        .bind(old.until.unwrap_or(-1))
        .bind(i64::from(old.legal_hold))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Changes the tags of version `id` from `old` to `new`; `false` (and nothing
    /// changed) if its tags are no longer `old` (a concurrent change).
    pub async fn set_tags(
        &self,
        id: VersionId,
        old: &BTreeMap<String, String>,
        new: &BTreeMap<String, String>,
    ) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE versions SET tags = $1 WHERE id = $2 AND COALESCE(tags, '') = $3")
            .bind(tags_json(new))
            .bind(id.to_string())
            .bind(tags_json(old).unwrap_or_default())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The retentions in force at `now` of the versions made of seal `seal` (a copy
    /// shares its source's seals): what its fragments must be locked with.
    pub async fn seal_retentions(&self, seal: super::SealId, now: i64) -> MetaResult<Vec<Retention>> {
        let rows = sqlx::query(
            "SELECT v.lock_mode, v.retain_until FROM version_parts p JOIN versions v ON v.id = p.version_id \
             WHERE p.seal_id = $1 AND v.lock_mode IS NOT NULL AND v.retain_until > $2",
        )
        .bind(seal.to_string())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let mode: String = r.try_get(0)?;
                let mode = mode.parse().map_err(|_| MetaError::Corrupt(format!("lock mode {mode:?}")))?;
                Ok(Retention { mode: Some(mode), until: Some(r.try_get(1)?), legal_hold: false })
            })
            .collect()
    }

    /// Version `which` of a key (a delete marker too), and whether it is the latest.
    pub async fn find_version(&self, bucket: &str, key: &[u8], which: VersionRef) -> MetaResult<Option<ListedVersion>> {
        let mut conn = self.pool.acquire().await?;
        Ok(version_in(&mut conn, bucket, key, which).await?.map(|(v, _)| v))
    }

    /// Everything a read of version `which` of a key needs, from one snapshot (a
    /// delete marker: no parts).
    pub async fn version_manifest(&self, bucket: &str, key: &[u8], which: VersionRef) -> MetaResult<Option<Manifest>> {
        let mut tx = self.begin_snapshot().await?;
        let m = match version_in(&mut tx, bucket, key, which).await? {
            Some((v, number)) => Some(manifest_of(&mut tx, v.version, number).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(m)
    }

    /// The key's latest version, if it is a delete marker (the key reads as
    /// deleted; S3 says so in its answer).
    pub async fn latest_marker(&self, bucket: &str, key: &[u8]) -> MetaResult<Option<VersionRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM objects o JOIN versions v ON v.id = o.version_id \
             WHERE o.bucket = $1 AND o.object_key = $2 AND v.delete_marker = 1"
        ))
        .bind(bucket)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
    }

    /// Deletes version `id` of a key for good (its seals become garbage unless
    /// another version shares them) and records `tombstone` — unless its lock
    /// protects it (`Locked`); the key's latest is
    /// then the newest version left. Returns the version deleted; `None` if the key
    /// has no such version.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &[u8],
        id: VersionId,
        tombstone: Option<&RecordRow>,
        bypass_governance: bool,
    ) -> MetaResult<Option<VersionRow>> {
        let mut tx = self.begin_write().await?;
        // Held, as a commit of the key holds it: the key's latest is decided by one
        // transaction at a time.
        sqlx::query("UPDATE objects SET version_id = version_id WHERE bucket = $1 AND object_key = $2")
            .bind(bucket)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let Some((gone, _)) = version_in(&mut tx, bucket, key, VersionRef::Id(id)).await? else { return Ok(None) };
        retire_version(&mut tx, &id.to_string(), now_ms(), bypass_governance).await?;
        point_at_latest(&mut tx, bucket, key).await?;
        if let Some(t) = tombstone {
            insert_record(&mut tx, t).await?;
        }
        tx.commit().await?;
        Ok(Some(gone.version))
    }

    /// Up to `limit` versions of `bucket` (delete markers too) in S3's order: by
    /// key, the newest of a key first. From key `from` (or after it when
    /// `exclusive`); with `after` (a version of `from`), from the versions of `from`
    /// older than it.
    pub async fn list_versions(
        &self,
        bucket: &str,
        from: &[u8],
        exclusive: bool,
        after: Option<&VersionRow>,
        limit: i64,
    ) -> MetaResult<Vec<ListedVersion>> {
        let mut conn = self.pool.acquire().await?;
        let mut rows = Vec::new();
        if let Some(a) = after {
            rows = sqlx::query(version_select!(
                "WHERE v.bucket = $1 AND v.object_key = $2 AND (v.recorded_at < $3 OR (v.recorded_at = $3 AND v.id < $4)) \
                 ORDER BY v.recorded_at DESC, v.id DESC LIMIT $5"
            ))
            .bind(bucket)
            .bind(from)
            .bind(a.recorded_at)
            .bind(a.id.to_string())
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        }
        let left = limit - rows.len() as i64;
        if left > 0 {
            let more = match exclusive || after.is_some() {
                true => sqlx::query(version_select!(
                    "WHERE v.bucket = $1 AND v.object_key > $2 ORDER BY v.object_key, v.recorded_at DESC, v.id DESC LIMIT $3"
                )),
                false => sqlx::query(version_select!(
                    "WHERE v.bucket = $1 AND v.object_key >= $2 ORDER BY v.object_key, v.recorded_at DESC, v.id DESC LIMIT $3"
                )),
            };
            rows.extend(more.bind(bucket).bind(from).bind(left).fetch_all(&mut *conn).await?);
        }
        rows.iter().map(|r| listed(r).map(|(v, _)| v)).collect()
    }
}

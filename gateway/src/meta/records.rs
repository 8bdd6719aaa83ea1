//! Records at the locations, as the store knows them: which were written where,
//! which are live and which are garbage for the collector. A manifest is recorded
//! in the transaction that commits its version and turns to garbage in the one that
//! retires it; a tombstone stays while a manifest it covers is still to be deleted.
//! A pack record holds many manifests: it has a row per manifest it holds (each
//! named as the record, told apart by its version), and goes from the locations
//! only once every one of them is garbage.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::types::db_enum;
use super::{MetaError, MetaResult, MetaStore, VersionId, now_ms};

db_enum! {
    /// What a record at the locations holds.
    pub enum RecordKind {
        /// An object version: everything a read needs, and its wrapped data keys.
        Manifest = "manifest",
        /// Every version of a key recorded before it is gone.
        Tombstone = "tombstone",
        /// Tenants, buckets, access keys, locations and policies.
        Catalog = "catalog",
    }
}

/// A record written to the locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// Its name below each location's prefix (`m/…`, `t/…`, `c/…`).
    pub name: String,
    /// What it holds.
    pub kind: RecordKind,
    /// A manifest's version.
    pub version_id: Option<VersionId>,
    /// A manifest's or tombstone's bucket.
    pub bucket: Option<String>,
    /// A manifest's or tombstone's key.
    pub key: Option<Vec<u8>>,
    /// When it was recorded (Unix ms); for a tombstone, when the latest manifest
    /// it covers was.
    pub at: i64,
    /// The locations it was written to.
    pub locations: Vec<String>,
    /// A catalog record's digest of what it holds ('' otherwise).
    pub digest: String,
    /// Bytes of each copy.
    pub size: u64,
}

impl RecordRow {
    /// What tells this row apart from others of its name: its version in a pack
    /// record (`p/…`, one row per manifest it holds), nothing in any other.
    pub fn member(&self) -> String {
        match (self.name.starts_with("p/"), self.version_id) {
            (true, Some(v)) => v.to_string(),
            _ => String::new(),
        }
    }
}

/// Selects record rows (a macro so that statements stay string literals).
macro_rules! record_select {
    ($rest:literal) => {
        concat!(
            "SELECT r.name, r.kind, r.version_id, r.bucket, r.object_key, r.at, r.locations, r.digest, r.size FROM records r ",
            $rest
        )
    };
}

fn record_row(r: &AnyRow) -> MetaResult<RecordRow> {
    let locations: String = r.try_get(6)?;
    Ok(RecordRow {
        name: r.try_get(0)?,
        kind: r.try_get::<String, _>(1)?.parse()?,
        version_id: r.try_get::<Option<String>, _>(2)?.map(|v| v.parse()).transpose()?,
        bucket: r.try_get(3)?,
        key: r.try_get(4)?,
        at: r.try_get(5)?,
        locations: serde_json::from_str(&locations)
            .map_err(|e| MetaError::Corrupt(format!("record locations: {e}")))?,
        digest: r.try_get(7)?,
        size: super::types::fit(r.try_get::<i64, _>(8)?, "record size")?,
    })
}

/// `rows` with each record once (a pack record has a row per manifest it holds;
/// all of them agree on where it is), in their order.
fn one_per_name(mut rows: Vec<RecordRow>) -> Vec<RecordRow> {
    let mut seen = std::collections::HashSet::new();
    rows.retain(|r| seen.insert(r.name.clone()));
    rows
}

/// Records `row` as live, inside a transaction (a name already known is left as it
/// is: a recovery run again over its own records).
pub(super) async fn insert_record(conn: &mut AnyConnection, row: &RecordRow) -> MetaResult<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO records (name, kind, state, version_id, bucket, object_key, at, locations, digest, updated_at, size, member) \
         VALUES ($1, $2, 'live', $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (name, member) DO NOTHING",
    )
    .bind(&row.name)
    .bind(row.kind.as_str())
    .bind(row.version_id.map(|v| v.to_string()))
    .bind(row.bucket.clone())
    .bind(row.key.clone())
    .bind(row.at)
    .bind(serde_json::to_string(&row.locations).unwrap_or_else(|_| "[]".into()))
    .bind(&row.digest)
    .bind(now)
    .bind(super::types::big(row.size))
    .bind(row.member())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Copies the rows of record `old` — of `members` only, if given — as rows of
/// record `new` (the same manifests written again under another name: a rotation,
/// a compaction), each as live or garbage as it was; then those of `old` that were
/// live are garbage. Returns how many were live.
pub(super) async fn move_rows(
    conn: &mut AnyConnection,
    old: &str,
    new: &RecordRow,
    members: Option<&[String]>,
) -> MetaResult<u64> {
    let now = now_ms();
    let locations = serde_json::to_string(&new.locations).unwrap_or_else(|_| "[]".into());
    let all = [String::new()];
    let (filter, members) = match members {
        Some(m) => (true, m),
        None => (false, &all[..]),
    };
    let mut live = 0;
    for member in members {
        sqlx::query(
            "INSERT INTO records (name, member, kind, state, version_id, bucket, object_key, at, locations, digest, updated_at, size) \
             SELECT $1, member, kind, state, version_id, bucket, object_key, at, $2, digest, $3, $4 FROM records \
             WHERE name = $5 AND ($6 = 0 OR member = $7) ON CONFLICT (name, member) DO NOTHING",
        )
        .bind(&new.name)
        .bind(&locations)
        .bind(now)
        .bind(super::types::big(new.size))
        .bind(old)
        .bind(i64::from(filter))
        .bind(member)
        .execute(&mut *conn)
        .await?;
        let r = sqlx::query(
            "UPDATE records SET state = 'garbage', updated_at = $1 WHERE name = $2 AND state = 'live' \
             AND ($3 = 0 OR member = $4)",
        )
        .bind(now)
        .bind(old)
        .bind(i64::from(filter))
        .bind(member)
        .execute(&mut *conn)
        .await?;
        live += r.rows_affected();
    }
    Ok(live)
}

/// Turns the manifest of `version_id` to garbage, inside a transaction.
pub(super) async fn retire_manifest(conn: &mut AnyConnection, version_id: &str, now: i64) -> MetaResult<()> {
    sqlx::query("UPDATE records SET state = 'garbage', updated_at = $1 WHERE version_id = $2")
        .bind(now)
        .bind(version_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl MetaStore {
    /// Records a catalog record as live and every older one as garbage.
    pub async fn put_catalog_record(&self, row: &RecordRow) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE records SET state = 'garbage', updated_at = $1 WHERE kind = $2 AND state = 'live'")
            .bind(now_ms())
            .bind(RecordKind::Catalog.as_str())
            .execute(&mut *tx)
            .await?;
        insert_record(&mut tx, row).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The name and digest of the live catalog record, if there is one.
    pub async fn catalog_digest(&self) -> MetaResult<Option<(String, String)>> {
        let row =
            sqlx::query("SELECT name, digest FROM records WHERE kind = $1 AND state = 'live' ORDER BY at DESC LIMIT 1")
                .bind(RecordKind::Catalog.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Records for the collector, at most `limit`: garbage ones, and tombstones that
    /// no longer cover a manifest still to be deleted.
    pub async fn collectable_records(&self, limit: i64) -> MetaResult<Vec<RecordRow>> {
        // A pack record's garbage rows wait for its last live one.
        let sql = record_select!(
            "WHERE (r.state = 'garbage' AND NOT EXISTS (SELECT 1 FROM records o WHERE o.name = r.name \
                 AND o.state = 'live')) \
             OR (r.kind = 'tombstone' AND NOT EXISTS (SELECT 1 FROM records m WHERE m.kind = 'manifest' \
                 AND m.bucket = r.bucket AND m.object_key = r.object_key AND m.at <= r.at)) \
             ORDER BY r.updated_at LIMIT $1"
        );
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.pool).await?;
        Ok(one_per_name(rows.iter().map(record_row).collect::<MetaResult<Vec<_>>>()?))
    }

    /// Forgets records deleted at their locations.
    pub async fn forget_records(&self, names: &[String]) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for name in names {
            sqlx::query("DELETE FROM records WHERE name = $1").bind(name).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records where records whose deletion failed still are, and puts them behind
    /// the others.
    pub async fn postpone_records(&self, left: &[(String, Vec<String>)]) -> MetaResult<()> {
        let now = now_ms();
        for (name, locations) in left {
            sqlx::query("UPDATE records SET updated_at = $1, locations = $2 WHERE name = $3")
                .bind(now)
                .bind(serde_json::to_string(locations).unwrap_or_else(|_| "[]".into()))
                .bind(name)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Records what recovery found besides the versions it restored: each row live,
    /// or garbage when `true` (left for the collector).
    pub async fn restore_records(&self, rows: &[(RecordRow, bool)]) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for (row, garbage) in rows {
            insert_record(&mut tx, row).await?;
            if *garbage {
                sqlx::query("UPDATE records SET state = 'garbage' WHERE name = $1 AND member = $2")
                    .bind(&row.name)
                    .bind(row.member())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Live records after `after` in name order, at most `limit` (what a master key
    /// rotation rewrites).
    pub async fn live_records(&self, after: &str, limit: i64) -> MetaResult<Vec<RecordRow>> {
        let sql = record_select!("WHERE r.state = 'live' AND r.name > $1 ORDER BY r.name LIMIT $2");
        let rows = sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(record_row).collect()
    }

    /// Replaces the record `old` by `new` (the same record rewritten under another
    /// name: every row of `old` becomes one of `new`), leaving `old` as garbage;
    /// `false` if no row of `old` is live any more.
    pub async fn replace_record(&self, old: &str, new: &RecordRow) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        if move_rows(&mut tx, old, new, None).await? == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Makes the manifest of version `v` in pack record `old` one of its own,
    /// `new` (a change of tags or lock, which a pack record is never rewritten
    /// for); `false` if that row is no longer live (the version went, or moved).
    pub async fn split_record(&self, old: &str, v: VersionId, new: &RecordRow) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE records SET state = 'garbage', updated_at = $1 WHERE name = $2 AND member = $3 AND state = 'live'",
        )
        .bind(now_ms())
        .bind(old)
        .bind(v.to_string())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        insert_record(&mut tx, new).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A row of the record `name` (all of a pack record's agree on where it is).
    pub async fn record_named(&self, name: &str) -> MetaResult<Option<RecordRow>> {
        let row =
            sqlx::query(record_select!("WHERE r.name = $1 LIMIT 1")).bind(name).fetch_optional(&self.pool).await?;
        row.map(|r| record_row(&r)).transpose()
    }

    /// Whether the record `name` is known (the sweep leaves unknown ones only once
    /// their grace ran out).
    pub async fn record_known(&self, name: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM records WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }

    /// Visible versions without a manifest record (written before manifests
    /// existed), at most `limit`: bucket and key.
    pub async fn versions_without_manifest(&self, limit: i64) -> MetaResult<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT o.bucket, o.object_key FROM objects o WHERE NOT EXISTS \
             (SELECT 1 FROM records r WHERE r.version_id = o.version_id) ORDER BY o.bucket, o.object_key LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Records the manifest of a version written before manifests existed, if the
    /// version is still there; `false` if it went meanwhile.
    pub async fn add_manifest_record(&self, row: &RecordRow) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let v = row.version_id.map(|v| v.to_string());
        let there = sqlx::query("SELECT 1 FROM versions WHERE id = $1").bind(v).fetch_optional(&mut *tx).await?;
        if there.is_none() {
            return Ok(false);
        }
        insert_record(&mut tx, row).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The live manifests of the versions that use `seal`.
    pub async fn manifest_records_of_seal(&self, seal: crate::meta::SealId) -> MetaResult<Vec<RecordRow>> {
        let rows = sqlx::query(record_select!(
            "WHERE r.state = 'live' AND r.version_id IN (SELECT p.version_id FROM version_parts p WHERE p.seal_id = $1)"
        ))
        .bind(seal.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(one_per_name(rows.iter().map(record_row).collect::<MetaResult<Vec<_>>>()?))
    }

    /// Live records with a copy at `location`, after `after` in name order, at most
    /// `limit` (what a drain moves off it).
    pub async fn records_at(&self, location: &str, after: &str, limit: i64) -> MetaResult<Vec<RecordRow>> {
        let rows = sqlx::query(record_select!(
            "WHERE r.state = 'live' AND r.name > $1 AND r.locations LIKE $2 ORDER BY r.name LIMIT $3"
        ))
        .bind(after)
        .bind(format!("%{}%", serde_json::to_string(location).unwrap_or_default()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut records = one_per_name(rows.iter().map(record_row).collect::<MetaResult<Vec<_>>>()?);
        records.retain(|r| r.locations.iter().any(|l| l == location));
        Ok(records)
    }

    /// Sets where the record `name` is.
    pub async fn set_record_locations(&self, name: &str, locations: &[String]) -> MetaResult<()> {
        sqlx::query("UPDATE records SET locations = $1 WHERE name = $2")
            .bind(serde_json::to_string(locations).unwrap_or_else(|_| "[]".into()))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds `location` to where the record `name` is.
    pub async fn add_record_location(&self, name: &str, location: &str) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        let row =
            sqlx::query("SELECT locations FROM records WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
        if let Some(row) = row {
            let mut locations: Vec<String> = serde_json::from_str(&row.try_get::<String, _>(0)?)
                .map_err(|e| MetaError::Corrupt(format!("record locations: {e}")))?;
            if !locations.iter().any(|l| l == location) {
                locations.push(location.to_string());
                sqlx::query("UPDATE records SET locations = $1 WHERE name = $2")
                    .bind(serde_json::to_string(&locations).unwrap_or_else(|_| "[]".into()))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The manifest record of a version, if it has one.
    pub async fn manifest_record(&self, version: VersionId) -> MetaResult<Option<RecordRow>> {
        let sql = record_select!("WHERE r.version_id = $1 AND r.state = 'live'");
        let row = sqlx::query(sql).bind(version.to_string()).fetch_optional(&self.pool).await?;
        row.map(|r| record_row(&r)).transpose()
    }
}

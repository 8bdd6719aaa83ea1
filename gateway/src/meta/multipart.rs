//! Multipart uploads and their parts. Each part is a seal of its own; completing an
//! upload is in `objects.rs` (it commits a version).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::seals::{finish_seal, mark_garbage, not_pending, store_pending};
use super::types::{big, fit};
use super::{
    MetaResult, MetaStore, SealFinish, SealId, SealState, UploadId, UploadPartRow, UploadRow, attrs_row, json, now_ms,
};

fn upload_row(r: &AnyRow) -> MetaResult<UploadRow> {
    Ok(UploadRow {
        id: r.try_get::<String, _>(0)?.parse()?,
        bucket: r.try_get(1)?,
        key: r.try_get(2)?,
        created_at: r.try_get(3)?,
        attrs: attrs_row(r, 4)?,
        checksum_type: r.try_get(10)?,
        lock: super::objects::lock_row(r, 11)?,
    })
}

impl MetaStore {
    /// Starts a multipart upload.
    pub async fn create_upload(&self, u: &UploadRow) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO uploads (id, bucket, object_key, created_at, content_type, headers, user_metadata, \
             checksum_algorithm, sse_customer, checksum_type, lock_mode, retain_until, legal_hold, tags) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(u.id.to_string())
        .bind(&u.bucket)
        .bind(&u.key)
        .bind(u.created_at)
        .bind(u.attrs.content_type.clone())
        .bind(json(&u.attrs.headers))
        .bind(json(&u.attrs.user_metadata))
        .bind(u.attrs.checksum_algorithm.map(|a| a.as_str()))
        .bind(u.attrs.customer_key.clone())
        .bind(u.checksum_type.clone())
        .bind(u.lock.mode.map(|m| m.as_str()))
        .bind(u.lock.until)
        .bind(i64::from(u.lock.legal_hold))
        .bind(super::tags_json(&u.attrs.tags))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A multipart upload.
    pub async fn upload(&self, id: UploadId) -> MetaResult<Option<UploadRow>> {
        let row = sqlx::query(
            "SELECT id, bucket, object_key, created_at, content_type, headers, user_metadata, checksum_algorithm, \
             sse_customer, tags, checksum_type, lock_mode, retain_until, legal_hold FROM uploads WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| upload_row(&r)).transpose()
    }

    /// Ends the write of a part in one transaction: records which fragments of its
    /// seal landed and the part itself, replacing (and discarding) an earlier part
    /// with the same number. `false` if the upload no longer exists: its seal is
    /// discarded then.
    pub async fn commit_part(&self, upload: UploadId, fin: &SealFinish, p: &UploadPartRow) -> MetaResult<bool> {
        let upload = upload.to_string();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        finish_seal(&mut tx, p.seal_id, fin).await?;
        let exists = sqlx::query("SELECT id FROM uploads WHERE id = $1").bind(&upload).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            mark_garbage(&mut tx, p.seal_id, now).await?;
            tx.commit().await?;
            return Ok(false);
        }
        let old: Option<String> =
            sqlx::query("SELECT seal_id FROM upload_parts WHERE upload_id = $1 AND part_number = $2")
                .bind(&upload)
                .bind(i64::from(p.number))
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, part_number, seal_id, size, etag, checksum_value, last_modified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (upload_id, part_number) DO UPDATE SET \
             seal_id = excluded.seal_id, size = excluded.size, etag = excluded.etag, \
             checksum_value = excluded.checksum_value, last_modified = excluded.last_modified",
        )
        .bind(&upload)
        .bind(i64::from(p.number))
        .bind(p.seal_id.to_string())
        .bind(big(p.size))
        .bind(&p.etag)
        .bind(p.checksum_value.clone())
        .bind(p.last_modified)
        .execute(&mut *tx)
        .await?;
        // The part's seal is kept (stored) while the upload references it.
        if !store_pending(&mut tx, p.seal_id, now).await? {
            return Err(not_pending(p.seal_id));
        }
        if let Some(old) = old {
            let old: SealId = old.parse()?;
            if old != p.seal_id {
                mark_garbage(&mut tx, old, now).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Uploaded parts, by number (from `after`, at most `limit`).
    pub async fn upload_parts(&self, upload: UploadId, after: u32, limit: i64) -> MetaResult<Vec<UploadPartRow>> {
        let rows = sqlx::query(
            "SELECT part_number, seal_id, size, etag, checksum_value, last_modified FROM upload_parts \
             WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3",
        )
        .bind(upload.to_string())
        .bind(i64::from(after))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UploadPartRow {
                    number: fit(r.try_get::<i64, _>(0)?, "part number")?,
                    seal_id: r.try_get::<String, _>(1)?.parse()?,
                    size: fit(r.try_get::<i64, _>(2)?, "part size")?,
                    etag: r.try_get(3)?,
                    checksum_value: r.try_get(4)?,
                    last_modified: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Aborts an upload: its parts' seals become garbage. `false` if unknown.
    pub async fn abort_upload(&self, upload: UploadId) -> MetaResult<bool> {
        let upload = upload.to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE seals SET state = $1, updated_at = $2 WHERE id IN (SELECT seal_id FROM upload_parts WHERE upload_id = $3)",
        )
        .bind(SealState::Garbage.as_str())
        .bind(now_ms())
        .bind(&upload)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1").bind(&upload).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(&upload).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Uploads in progress in a bucket, ordered by key then id, after the marker.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        key_marker: &[u8],
        id_marker: &str,
        limit: i64,
    ) -> MetaResult<Vec<UploadRow>> {
        let rows = sqlx::query(
            "SELECT id, bucket, object_key, created_at, content_type, headers, user_metadata, checksum_algorithm, \
             sse_customer, tags, checksum_type, lock_mode, retain_until, legal_hold FROM uploads WHERE bucket = $1 AND (object_key > $2 OR (object_key = $2 AND id > $3)) \
             ORDER BY object_key, id LIMIT $4",
        )
        .bind(bucket)
        .bind(key_marker)
        .bind(id_marker)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(upload_row).collect()
    }
}

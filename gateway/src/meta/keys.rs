//! Access keys (S3 credentials, their secrets sealed under the master key) and the
//! admin API's tokens (only their SHA-256 is kept).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{AccessKeyRow, MetaResult, MetaStore, now_ms};

/// Selects access key rows (a macro so that statements stay string literals).
macro_rules! key_select {
    ($rest:literal) => {
        concat!(
            "SELECT access_key_id, secret_sealed, kek_version, enabled, created_at, tenant, bypass_governance FROM access_keys ",
            $rest
        )
    };
}

fn access_key_row(r: &AnyRow) -> MetaResult<AccessKeyRow> {
    Ok(AccessKeyRow {
        id: r.try_get(0)?,
        secret_sealed: r.try_get(1)?,
        kek_version: r.try_get(2)?,
        enabled: r.try_get::<i64, _>(3)? != 0,
        created_at: r.try_get(4)?,
        tenant: r.try_get(5)?,
        bypass_governance: r.try_get::<i64, _>(6)? != 0,
    })
}

impl MetaStore {
    /// An access key by id.
    pub async fn access_key(&self, id: &str) -> MetaResult<Option<AccessKeyRow>> {
        let row = sqlx::query(key_select!("WHERE access_key_id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| access_key_row(&r)).transpose()
    }

    /// Every access key.
    pub async fn access_keys(&self) -> MetaResult<Vec<AccessKeyRow>> {
        let rows = sqlx::query(key_select!("ORDER BY access_key_id")).fetch_all(&self.pool).await?;
        rows.iter().map(access_key_row).collect()
    }

    /// The access keys of one tenant.
    pub async fn access_keys_of(&self, tenant: &str) -> MetaResult<Vec<AccessKeyRow>> {
        let rows = sqlx::query(key_select!("WHERE tenant = $1 ORDER BY access_key_id"))
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(access_key_row).collect()
    }

    /// Stores an access key; `false` if the id exists or its tenant does not.
    pub async fn insert_access_key(&self, k: &AccessKeyRow) -> MetaResult<bool> {
        let r = sqlx::query(
            "INSERT INTO access_keys (access_key_id, secret_sealed, kek_version, enabled, created_at, tenant, \
             bypass_governance) SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM tenants WHERE name = $6) \
             ON CONFLICT (access_key_id) DO NOTHING",
        )
        .bind(&k.id)
        .bind(&k.secret_sealed)
        .bind(k.kek_version)
        .bind(i64::from(k.enabled))
        .bind(k.created_at)
        .bind(&k.tenant)
        .bind(i64::from(k.bypass_governance))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Enables or disables an access key; `false` if there is none.
    pub async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE access_keys SET enabled = $1 WHERE access_key_id = $2")
            .bind(i64::from(enabled))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
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

    /// Replaces an access key's sealed secret by the same secret sealed again (a
    /// master key rotation) — unless it changed meanwhile; `false` then.
    pub async fn reseal_access_key(&self, id: &str, old: &[u8], new: &[u8], kek_version: i64) -> MetaResult<bool> {
        let r = sqlx::query(
            "UPDATE access_keys SET secret_sealed = $1, kek_version = $2 WHERE access_key_id = $3 AND secret_sealed = $4",
        )
        .bind(new)
        .bind(kek_version)
        .bind(id)
        .bind(old)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Seals after `after` in id order with their wrapped data keys, at most `limit`.
    pub async fn wrapped_keys(&self, after: &str, limit: i64) -> MetaResult<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query("SELECT id, wrapped_key FROM seals WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Replaces a seal's wrapped data key by the same key wrapped again (a master
    /// key rotation); `false` if it changed meanwhile or the seal is gone.
    pub async fn rewrap_seal(&self, id: &str, old: &[u8], new: &[u8]) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE seals SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes an access key; `false` if there is none.
    pub async fn delete_access_key(&self, id: &str) -> MetaResult<bool> {
        let r = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1").bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Stores an admin token's SHA-256; `false` if the id exists.
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

    /// The SHA-256 of admin token `id`'s secret.
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
}

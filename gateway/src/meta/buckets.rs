//! Buckets, and the tenants that own them (and access keys).

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::types::fit;
use super::{BucketRow, LockDefault, MetaError, MetaResult, MetaStore, Versioning, now_ms};

/// Selects bucket rows with their tenant's number.
macro_rules! bucket_select {
    ($rest:literal) => {
        concat!(
            "SELECT b.name, b.policy, b.created_at, b.tenant, t.number, b.versioning, b.object_lock FROM buckets b \
             LEFT JOIN tenants t ON t.name = b.tenant ",
            $rest
        )
    };
}

fn bucket_row(r: &AnyRow) -> MetaResult<BucketRow> {
    let name: String = r.try_get(0)?;
    let number: Option<i64> = r.try_get(4)?;
    let number = number.ok_or_else(|| MetaError::Corrupt(format!("bucket {name}: its tenant is missing")))?;
    let versioning: Option<String> = r.try_get(5)?;
    Ok(BucketRow {
        versioning: versioning.map(|v| v.parse()).transpose()?,
        object_lock: r
            .try_get::<Option<String>, _>(6)?
            .map(|j| serde_json::from_str(&j).map_err(|e| MetaError::Corrupt(format!("object lock: {e}"))))
            .transpose()?,
        policy: r.try_get(1)?,
        created_at: r.try_get(2)?,
        tenant: r.try_get(3)?,
        tenant_number: fit(number, "tenant number")?,
        name,
    })
}

/// A tenant with what it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Name.
    pub name: String,
    /// Its number (the key of its blocks in the fragment cache).
    pub number: u32,
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
             (SELECT COUNT(*) FROM buckets b WHERE b.tenant = t.name) AS bucket_count, t.number FROM tenants t ",
            $rest
        )
    };
}

fn tenant_row(r: &AnyRow) -> MetaResult<TenantRow> {
    Ok(TenantRow {
        name: r.try_get(0)?,
        created_at: r.try_get(1)?,
        keys: r.try_get(2)?,
        buckets: r.try_get(3)?,
        number: fit(r.try_get::<i64, _>(4)?, "tenant number")?,
    })
}

impl MetaStore {
    /// Creates bucket `name` of `tenant`, its writes placed by `policy`; `false` if
    /// it exists (whoever owns it).
    pub async fn create_bucket(&self, name: &str, policy: &str, tenant: &str) -> MetaResult<bool> {
        let r = sqlx::query(
            "INSERT INTO buckets (name, policy, created_at, tenant) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(policy)
        .bind(now_ms())
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A bucket.
    pub async fn bucket(&self, name: &str) -> MetaResult<Option<BucketRow>> {
        let row = sqlx::query(bucket_select!("WHERE b.name = $1")).bind(name).fetch_optional(&self.pool).await?;
        row.map(|r| bucket_row(&r)).transpose()
    }

    /// Every bucket, by name.
    pub async fn buckets(&self) -> MetaResult<Vec<BucketRow>> {
        let rows = sqlx::query(bucket_select!("ORDER BY b.name")).fetch_all(&self.pool).await?;
        rows.iter().map(bucket_row).collect()
    }

    /// The buckets of one tenant, by name.
    pub async fn buckets_of(&self, tenant: &str) -> MetaResult<Vec<BucketRow>> {
        let rows = sqlx::query(bucket_select!("WHERE b.tenant = $1 ORDER BY b.name"))
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(bucket_row).collect()
    }

    /// Deletes an empty bucket. `Ok(None)` if it does not exist, `Ok(Some(false))` if
    /// it holds objects or uploads.
    pub async fn delete_bucket(&self, name: &str) -> MetaResult<Option<bool>> {
        let mut tx = self.begin_write().await?;
        // Held until the end: a commit into the bucket holds it shared
        // (`objects::hold_bucket`), so that one in flight finishes first and is
        // seen below, and none follows into a deleted bucket.
        let held = sqlx::query("UPDATE buckets SET name = name WHERE name = $1").bind(name).execute(&mut *tx).await?;
        if held.rows_affected() == 0 {
            return Ok(None);
        }
        let busy = sqlx::query(
            "SELECT 1 FROM objects WHERE bucket = $1 UNION ALL SELECT 1 FROM uploads WHERE bucket = $1 LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if busy.is_some() {
            return Ok(Some(false));
        }
        sqlx::query("DELETE FROM buckets WHERE name = $1").bind(name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    /// Sets a bucket's versioning state; `false` if there is no such bucket.
    pub async fn set_versioning(&self, bucket: &str, state: Versioning) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE buckets SET versioning = $1 WHERE name = $2")
            .bind(state.as_str())
            .bind(bucket)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Enables object lock on a bucket (versioning with it), with default retention
    /// `default`; `false` if there is no such bucket.
    pub async fn set_object_lock(&self, bucket: &str, default: &LockDefault) -> MetaResult<bool> {
        let default = serde_json::to_string(default).map_err(|e| MetaError::Corrupt(format!("object lock: {e}")))?;
        let r = sqlx::query("UPDATE buckets SET object_lock = $1, versioning = $2 WHERE name = $3")
            .bind(default)
            .bind(Versioning::Enabled.as_str())
            .bind(bucket)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A bucket's tags; `None` if there is no such bucket.
    pub async fn bucket_tags(&self, bucket: &str) -> MetaResult<Option<BTreeMap<String, String>>> {
        let row =
            sqlx::query("SELECT tags FROM buckets WHERE name = $1").bind(bucket).fetch_optional(&self.pool).await?;
        row.map(|r| super::tags_row(&r, 0)).transpose()
    }

    /// Sets a bucket's tags (none: removes them); `false` if there is no such bucket.
    pub async fn set_bucket_tags(&self, bucket: &str, tags: &BTreeMap<String, String>) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE buckets SET tags = $1 WHERE name = $2")
            .bind(super::tags_json(tags))
            .bind(bucket)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A bucket's lifecycle rules (JSON); `None` if it has none.
    pub async fn bucket_lifecycle(&self, bucket: &str) -> MetaResult<Option<String>> {
        let row = sqlx::query("SELECT lifecycle FROM buckets WHERE name = $1")
            .bind(bucket)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()?.flatten())
    }

    /// Sets a bucket's lifecycle rules (JSON; `None`: removes them); `false` if
    /// there is no such bucket.
    pub async fn set_bucket_lifecycle(&self, bucket: &str, rules: Option<&str>) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE buckets SET lifecycle = $1 WHERE name = $2")
            .bind(rules)
            .bind(bucket)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Every bucket with lifecycle rules, with them (JSON).
    pub async fn bucket_lifecycles(&self) -> MetaResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, lifecycle FROM buckets WHERE lifecycle IS NOT NULL ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
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

    /// Creates a tenant with the next free number; `false` if the name exists.
    pub async fn create_tenant(&self, name: &str) -> MetaResult<bool> {
        // Two replicas creating tenants at once may pick the same number: the unique
        // index refuses one, which tries again with the next. (`WHERE true`: SQLite
        // reads `ON CONFLICT` after `INSERT … SELECT` only when the SELECT has one.)
        let mut last = None;
        for _ in 0..8 {
            let r = sqlx::query(
                "INSERT INTO tenants (name, created_at, number) \
                 SELECT $1, $2, COALESCE(MAX(number), 0) + 1 FROM tenants WHERE true ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await;
            match r {
                Ok(r) => return Ok(r.rows_affected() == 1),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => last = Some(sqlx::Error::Database(e)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(|| MetaError::Corrupt("no tenant number free".into()), MetaError::from))
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
}

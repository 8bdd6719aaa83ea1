//! What the admin API keeps: locations and policies added at run time, location
//! states, and the reports on fragments per location and bucket usage.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::seals::{SEAL_COLUMNS, seal_columns, seal_policy, seal_policy_columns, seals_of};
use super::types::{big, db_enum, fit};
use super::{Fragment, FragmentState, MetaResult, MetaStore, Seal, SealId, SealState, now_ms};

/// A catalog entry added through the admin API: a location or a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRow {
    /// Name.
    pub name: String,
    /// Definition, JSON (never a secret).
    pub definition: String,
    /// A location's secret, sealed under the master key (empty for policies).
    pub secret_sealed: Vec<u8>,
}

db_enum! {
    /// The state of a location.
    #[derive(Default, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum LocationState {
        /// Receives new fragments.
        #[default]
        Active = "active",
        /// Its fragments are being moved elsewhere; it receives no new ones.
        Draining = "draining",
        /// Holds no fragment the gateway knows of.
        Drained = "drained",
        /// Out of service.
        Removed = "removed",
    }
}

/// One fragment to move off a location, with the seal it belongs to.
#[derive(Debug, Clone)]
pub struct FragmentAt {
    /// The seal, with all its fragments.
    pub seal: Seal,
    /// Index of the fragment at the location.
    pub index: u8,
    /// The placement policy of the bucket its seal belongs to (`None`: none).
    pub policy: Option<String>,
}

impl FragmentAt {
    /// The fragment at the location.
    pub fn fragment(&self) -> Option<&Fragment> {
        self.seal.fragment(self.index)
    }
}

/// Objects, bytes and fragments of a bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketUsage {
    /// Visible objects.
    pub objects: i64,
    /// Their bytes.
    pub bytes: i64,
    /// Fragments (and their bytes) per location.
    pub fragments: Vec<(String, i64, i64)>,
}

impl MetaStore {
    /// Locations (`policies == false`) or policies added through the admin API.
    pub async fn catalog(&self, policies: bool) -> MetaResult<Vec<CatalogRow>> {
        let sql = if policies {
            "SELECT name, definition, '' AS secret_sealed FROM catalog_policies ORDER BY name"
        } else {
            "SELECT name, definition, secret_sealed FROM catalog_locations ORDER BY name"
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let secret_sealed = if policies { Vec::new() } else { r.try_get::<Vec<u8>, _>("secret_sealed")? };
                Ok(CatalogRow { name: r.try_get("name")?, definition: r.try_get("definition")?, secret_sealed })
            })
            .collect()
    }

    /// Adds (`create`, `false` if the name exists) or replaces (`false` if it does
    /// not exist) a location or policy.
    pub async fn put_catalog(&self, policies: bool, row: &CatalogRow, create: bool) -> MetaResult<bool> {
        let sql = match (policies, create) {
            (false, true) => {
                "INSERT INTO catalog_locations (name, definition, secret_sealed, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING"
            }
            (false, false) => {
                "UPDATE catalog_locations SET definition = $2, secret_sealed = $3, updated_at = $4 WHERE name = $1"
            }
            (true, true) => {
                "INSERT INTO catalog_policies (name, definition, updated_at) VALUES ($1, $2, $4) \
                 ON CONFLICT (name) DO NOTHING"
            }
            (true, false) => "UPDATE catalog_policies SET definition = $2, updated_at = $4 WHERE name = $1",
        };
        let mut q = sqlx::query(sql).bind(&row.name).bind(&row.definition);
        // Unused by the policy statements, but `$4` must keep its number.
        q = q.bind(row.secret_sealed.clone());
        let r = q.bind(now_ms()).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a location or policy added through the API; `false` if there is none.
    pub async fn delete_catalog(&self, policies: bool, name: &str) -> MetaResult<bool> {
        let sql = if policies {
            "DELETE FROM catalog_policies WHERE name = $1"
        } else {
            "DELETE FROM catalog_locations WHERE name = $1"
        };
        Ok(sqlx::query(sql).bind(name).execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Every location state recorded (a location without one is active).
    pub async fn location_states(&self) -> MetaResult<Vec<(String, LocationState)>> {
        let rows = sqlx::query("SELECT name, state FROM location_states ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get::<String, _>("state")?.parse()?))).collect()
    }

    /// Records a location's state.
    pub async fn set_location_state(&self, name: &str, state: LocationState) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO location_states (name, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET state = $2, updated_at = $3",
        )
        .bind(name)
        .bind(state.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fragments (of any seal not yet forgotten) at `location`, and their bytes.
    pub async fn fragments_at_count(&self, location: &str) -> MetaResult<(i64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM fragments WHERE location = $1",
        )
        .bind(location)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get("n")?, r.try_get("bytes")?))
    }

    /// Fragments and their bytes at every location that holds any, by location.
    pub async fn fragments_per_location(&self) -> MetaResult<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT location, COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM fragments \
             GROUP BY location ORDER BY location",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("location")?, r.try_get("n")?, r.try_get("bytes")?))).collect()
    }

    /// Up to `limit` stored seals with a fragment at `location`, after seal `after`
    /// (all of them from the start when `None`), with all their fragments.
    pub async fn fragments_at(&self, location: &str, after: Option<SealId>, limit: i64) -> MetaResult<Vec<FragmentAt>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            seal_columns!("s"),
            ", f.idx, ",
            seal_policy_columns!(),
            " FROM fragments f JOIN seals s ON s.id = f.seal_id \
             WHERE f.location = $1 AND s.state = $2 AND s.id > $3 ORDER BY s.id LIMIT $4"
        ))
        .bind(location)
        .bind(SealState::Stored.as_str())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let seals = seals_of(&mut conn, &rows).await?;
        rows.iter()
            .zip(seals)
            .map(|(r, seal)| {
                let index = fit(r.try_get::<i64, _>(SEAL_COLUMNS)?, "fragment index")?;
                Ok(FragmentAt { seal, index, policy: seal_policy(r, SEAL_COLUMNS + 1)? })
            })
            .collect()
    }

    /// Points fragment `to.index` of a seal, now at `from`, at its new copy `to`.
    /// `false` if it moved meanwhile or its seal is no longer stored (then the new
    /// copy is the caller's to delete).
    pub async fn move_fragment(&self, seal: SealId, from: &str, to: &Fragment) -> MetaResult<bool> {
        let r = sqlx::query(
            "UPDATE fragments SET location = $1, object_name = $2, size = $3, state = $4, verified_at = $9 \
             WHERE seal_id = $5 AND idx = $6 AND location = $7 \
             AND EXISTS (SELECT 1 FROM seals WHERE id = $5 AND state = $8)",
        )
        .bind(&to.location)
        .bind(&to.name)
        .bind(big(to.size))
        .bind(FragmentState::Stored.as_str())
        .bind(seal.to_string())
        .bind(i64::from(to.index))
        .bind(from)
        .bind(SealState::Stored.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Objects, bytes and fragments per location of `bucket`.
    pub async fn bucket_usage(&self, bucket: &str) -> MetaResult<BucketUsage> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(v.size), 0) AS BIGINT) AS bytes FROM objects o \
             JOIN versions v ON v.id = o.version_id WHERE o.bucket = $1",
        )
        .bind(bucket)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT f.location, COUNT(*) AS n, CAST(COALESCE(SUM(f.size), 0) AS BIGINT) AS bytes FROM objects o \
             JOIN version_parts p ON p.version_id = o.version_id JOIN fragments f ON f.seal_id = p.seal_id \
             WHERE o.bucket = $1 GROUP BY f.location ORDER BY f.location",
        )
        .bind(bucket)
        .fetch_all(&self.pool)
        .await?;
        let fragments = rows
            .iter()
            .map(|r| Ok((r.try_get("location")?, r.try_get("n")?, r.try_get("bytes")?)))
            .collect::<MetaResult<_>>()?;
        Ok(BucketUsage { objects: r.try_get("n")?, bytes: r.try_get("bytes")?, fragments })
    }
}

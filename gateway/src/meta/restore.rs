//! The catalog as one snapshot (what a catalog record at the locations holds), and
//! what recovery writes back: the catalog, then each object version with its seals.
//! Both only add what is missing, so a recovery run again, or resumed after a crash,
//! finds its earlier work done and goes on.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::records::RecordRow;
use super::seals::insert_seal;
use super::{Manifest, MetaResult, MetaStore, PartRow, Seal, SealState, VersionRow, WriteCondition};

/// A tenant in a catalog snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapTenant {
    /// Name.
    pub name: String,
    /// Its number (the fragment cache's key).
    pub number: i64,
    /// Creation time.
    pub created_at: i64,
}

/// A bucket in a catalog snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapBucket {
    /// Name.
    pub name: String,
    /// Placement policy.
    pub policy: String,
    /// Owning tenant.
    pub tenant: String,
    /// Creation time.
    pub created_at: i64,
    /// Versioning state (`Enabled`, `Suspended`), if it was ever enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    /// Object lock (JSON of its default retention), if enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<String>,
    /// Tags (JSON), if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// Lifecycle rules (JSON), if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
}

/// An access key in a catalog snapshot (its secret sealed under the master key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapKey {
    /// Access key id.
    pub id: String,
    /// Sealed secret, hex.
    pub secret_sealed: String,
    /// Master key version that sealed it.
    pub kek_version: i64,
    /// Whether it may be used.
    pub enabled: bool,
    /// Creation time.
    pub created_at: i64,
    /// Its tenant.
    pub tenant: String,
    /// It may bypass governance retention.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_governance: bool,
}

/// An admin token in a catalog snapshot (only its SHA-256, as stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapToken {
    /// Token id.
    pub id: String,
    /// Name.
    pub name: String,
    /// SHA-256 of its secret, hex.
    pub secret_sha256: String,
    /// Creation time.
    pub created_at: i64,
}

/// A location or policy added at run time, or a location's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapEntry {
    /// Name.
    pub name: String,
    /// Definition (JSON), or the state.
    pub value: String,
    /// A location's secret sealed under the master key, hex ('' otherwise).
    pub secret_sealed: String,
    /// Last change.
    pub updated_at: i64,
}

/// Everything of the store that is not an object: what a catalog record holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    /// Tenants.
    pub tenants: Vec<SnapTenant>,
    /// Buckets.
    pub buckets: Vec<SnapBucket>,
    /// Access keys.
    pub access_keys: Vec<SnapKey>,
    /// Admin tokens.
    pub admin_tokens: Vec<SnapToken>,
    /// Locations added through the admin API.
    pub locations: Vec<SnapEntry>,
    /// Policies added through the admin API.
    pub policies: Vec<SnapEntry>,
    /// Location states (draining, drained, removed).
    pub location_states: Vec<SnapEntry>,
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn unhex(s: &str) -> MetaResult<Vec<u8>> {
    hex::decode(s).map_err(|e| super::MetaError::Corrupt(format!("catalog record: {e}")))
}

/// The catalog as `conn` sees it.
async fn catalog_in(conn: &mut sqlx::AnyConnection) -> MetaResult<CatalogSnapshot> {
    let mut snap = CatalogSnapshot::default();
    for r in sqlx::query("SELECT name, number, created_at FROM tenants ORDER BY name").fetch_all(&mut *conn).await? {
        snap.tenants.push(SnapTenant { name: r.try_get(0)?, number: r.try_get(1)?, created_at: r.try_get(2)? });
    }
    for r in sqlx::query(
        "SELECT name, policy, tenant, created_at, versioning, object_lock, tags, lifecycle FROM buckets ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        snap.buckets.push(SnapBucket {
            name: r.try_get(0)?,
            policy: r.try_get(1)?,
            tenant: r.try_get(2)?,
            created_at: r.try_get(3)?,
            versioning: r.try_get(4)?,
            object_lock: r.try_get(5)?,
            tags: r.try_get(6)?,
            lifecycle: r.try_get(7)?,
        });
    }
    for r in sqlx::query(
        "SELECT access_key_id, secret_sealed, kek_version, enabled, created_at, tenant, bypass_governance \
         FROM access_keys ORDER BY access_key_id",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        snap.access_keys.push(SnapKey {
            id: r.try_get(0)?,
            secret_sealed: hex(&r.try_get::<Vec<u8>, _>(1)?),
            kek_version: r.try_get(2)?,
            enabled: r.try_get::<i64, _>(3)? != 0,
            created_at: r.try_get(4)?,
            tenant: r.try_get(5)?,
            bypass_governance: r.try_get::<i64, _>(6)? != 0,
        });
    }
    for r in sqlx::query("SELECT id, name, secret_sha256, created_at FROM admin_tokens ORDER BY id")
        .fetch_all(&mut *conn)
        .await?
    {
        snap.admin_tokens.push(SnapToken {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            secret_sha256: hex(&r.try_get::<Vec<u8>, _>(2)?),
            created_at: r.try_get(3)?,
        });
    }
    for r in sqlx::query("SELECT name, definition, secret_sealed, updated_at FROM catalog_locations ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
    {
        snap.locations.push(SnapEntry {
            name: r.try_get(0)?,
            value: r.try_get(1)?,
            secret_sealed: hex(&r.try_get::<Vec<u8>, _>(2)?),
            updated_at: r.try_get(3)?,
        });
    }
    for r in sqlx::query("SELECT name, definition, updated_at FROM catalog_policies ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
    {
        snap.policies.push(SnapEntry {
            name: r.try_get(0)?,
            value: r.try_get(1)?,
            secret_sealed: String::new(),
            updated_at: r.try_get(2)?,
        });
    }
    for r in
        sqlx::query("SELECT name, state, updated_at FROM location_states ORDER BY name").fetch_all(&mut *conn).await?
    {
        snap.location_states.push(SnapEntry {
            name: r.try_get(0)?,
            value: r.try_get(1)?,
            secret_sealed: String::new(),
            updated_at: r.try_get(2)?,
        });
    }
    Ok(snap)
}

/// A backup in progress: one snapshot of the store, read a page at a time.
pub struct Backup {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup").finish_non_exhaustive()
    }
}

impl Backup {
    /// The catalog.
    pub async fn catalog(&mut self) -> MetaResult<CatalogSnapshot> {
        catalog_in(&mut self.tx).await
    }

    /// Up to `limit` versions (noncurrent ones and delete markers too) after
    /// `after` (bucket, key, version id), in that order, each with its seals and
    /// fragments.
    pub async fn versions(
        &mut self,
        after: Option<&(String, Vec<u8>, String)>,
        limit: i64,
    ) -> MetaResult<Vec<Manifest>> {
        super::versions::all_versions_in(&mut self.tx, after, limit).await
    }
}

/// An object version as recovery writes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredVersion {
    /// The version.
    pub version: VersionRow,
    /// Its parts.
    pub parts: Vec<PartRow>,
    /// Their seals, with the fragments found (each in the state found).
    pub seals: Vec<Seal>,
    /// Its manifest record at the locations, if it has one.
    pub record: Option<RecordRow>,
}

impl MetaStore {
    /// The catalog, read in one snapshot.
    pub async fn catalog_snapshot(&self) -> MetaResult<CatalogSnapshot> {
        let mut tx = self.begin_snapshot().await?;
        let snap = catalog_in(&mut tx).await?;
        tx.commit().await?;
        Ok(snap)
    }

    /// Starts a backup: everything it reads is of one snapshot of the store.
    pub async fn begin_backup(&self) -> MetaResult<Backup> {
        Ok(Backup { tx: self.begin_snapshot().await? })
    }

    /// Writes back what the store lacks of `snap` (what it has stays as it is).
    pub async fn restore_catalog(&self, snap: &CatalogSnapshot) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for t in &snap.tenants {
            sqlx::query("INSERT INTO tenants (name, number, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&t.name)
                .bind(t.number)
                .bind(t.created_at)
                .execute(&mut *tx)
                .await?;
        }
        for b in &snap.buckets {
            sqlx::query(
                "INSERT INTO buckets (name, policy, tenant, created_at, versioning, object_lock, tags, lifecycle) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&b.name)
            .bind(&b.policy)
            .bind(&b.tenant)
            .bind(b.created_at)
            .bind(b.versioning.clone())
            .bind(b.object_lock.clone())
            .bind(b.tags.clone())
            .bind(b.lifecycle.clone())
            .execute(&mut *tx)
            .await?;
        }
        for k in &snap.access_keys {
            sqlx::query(
                "INSERT INTO access_keys (access_key_id, secret_sealed, kek_version, enabled, created_at, tenant, \
                 bypass_governance) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&k.id)
            .bind(unhex(&k.secret_sealed)?)
            .bind(k.kek_version)
            .bind(i64::from(k.enabled))
            .bind(k.created_at)
            .bind(&k.tenant)
            .bind(i64::from(k.bypass_governance))
            .execute(&mut *tx)
            .await?;
        }
        for t in &snap.admin_tokens {
            sqlx::query(
                "INSERT INTO admin_tokens (id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(unhex(&t.secret_sha256)?)
            .bind(t.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for l in &snap.locations {
            sqlx::query(
                "INSERT INTO catalog_locations (name, definition, secret_sealed, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&l.name)
            .bind(&l.value)
            .bind(unhex(&l.secret_sealed)?)
            .bind(l.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        for p in &snap.policies {
            sqlx::query(
                "INSERT INTO catalog_policies (name, definition, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&p.name)
            .bind(&p.value)
            .bind(p.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        for s in &snap.location_states {
            sqlx::query(
                "INSERT INTO location_states (name, state, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&s.name)
            .bind(&s.value)
            .bind(s.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes a bucket found only in manifests (its catalog record lost or older),
    /// with its tenant; `false` if it was there.
    pub async fn restore_bucket(&self, name: &str, policy: &str, tenant: &str, created_at: i64) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO tenants (name, number, created_at) \
             SELECT $1, COALESCE(MAX(number), 0) + 1, $2 FROM tenants ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query(
            "INSERT INTO buckets (name, policy, tenant, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(policy)
        .bind(tenant)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Writes back one object version with its seals (the key's latest if it is
    /// the newest there); `false` (and nothing written) if the store has it already.
    pub async fn restore_version(&self, v: &RestoredVersion) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let known = sqlx::query("SELECT 1 FROM versions WHERE id = $1")
            .bind(v.version.id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_some() {
            return Ok(false);
        }
        for seal in &v.seals {
            // A seal shared by versions (a copy) comes back with the first of them.
            let present = sqlx::query("SELECT 1 FROM seals WHERE id = $1")
                .bind(seal.id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            if present.is_none() {
                insert_seal(&mut tx, seal, SealState::Stored, None, "recover").await?;
            }
        }
        // A pack's members come back one by one, each with its version.
        for p in &v.parts {
            if let Some(m) = &p.member {
                super::packs::insert_members(&mut tx, p.seal_id, std::slice::from_ref(m)).await?;
            }
        }
        super::objects::commit_version(&mut tx, &v.version, &v.parts, v.record.as_ref(), &WriteCondition::Any).await?;
        tx.commit().await?;
        Ok(true)
    }
}

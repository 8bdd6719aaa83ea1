//! Metadata: buckets, object versions, seals and their fragments, multipart uploads,
//! access keys — in SQLite (embedded default) or PostgreSQL (shared by replicas).
//!
//! One implementation serves both through sqlx's `Any` driver: the queries use only
//! SQL both accept (`$n` parameters, `ON CONFLICT`, BIGINT times, byte-string keys
//! compared bytewise), and `migrations/sqlite` and `migrations/postgres` hold the two
//! dialects of the schema.
//!
//! # Visibility
//!
//! A write first records its seal and planned fragments as `pending`; only after the
//! write quorum of fragments landed does one transaction mark them stored, insert the
//! version and point the key at it, retiring the version it replaces. A crash at any
//! point leaves either the old or the new version visible; `pending` seals of dead
//! writes and retired seals are `garbage` for the collector.

mod admin;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use admin::{BucketUsage, CatalogRow, FragmentAt, JobRow, LIVE_JOB_STATES, TenantRow};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A metadata operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database failed or is unreachable.
    #[error("metadata database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations could not run.
    #[error("metadata migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row that cannot be read back (corrupt or from a newer version).
    #[error("metadata row invalid: {0}")]
    Corrupt(String),
}

/// Result of metadata operations.
pub type MetaResult<T> = Result<T, MetaError>;

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRow {
    /// Name.
    pub name: String,
    /// Placement policy name.
    pub policy: String,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// The tenant that owns it (that of the key that created it).
    pub tenant: String,
}

/// State of a seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealState {
    /// Being written; not referenced by any version yet.
    Pending,
    /// Fully written and referenced.
    Stored,
    /// No longer referenced: its fragments are to be deleted.
    Garbage,
}

impl SealState {
    fn as_str(self) -> &'static str {
        match self {
            SealState::Pending => "pending",
            SealState::Stored => "stored",
            SealState::Garbage => "garbage",
        }
    }
}

impl FromStr for SealState {
    type Err = MetaError;
    fn from_str(s: &str) -> MetaResult<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "stored" => Ok(Self::Stored),
            "garbage" => Ok(Self::Garbage),
            other => Err(MetaError::Corrupt(format!("seal state {other:?}"))),
        }
    }
}

/// Selects access key rows (a macro so that statements stay string literals).
macro_rules! key_select {
    ($rest:literal) => {
        concat!(
            "SELECT access_key_id, secret_sealed, kek_version, enabled, created_at, tenant FROM access_keys ",
            $rest
        )
    };
}

/// Selects bucket rows.
macro_rules! bucket_select {
    ($rest:literal) => {
        concat!("SELECT name, policy, created_at, tenant FROM buckets ", $rest)
    };
}

/// Which pending writes are dead: those last touched before `before` (the grace
/// period ran out), and those `writer` recorded before `writer_before` (the node
/// restarted since, so the process that wrote them is gone).
#[derive(Debug, Clone, Copy)]
pub struct DeadWrites<'a> {
    /// Pending seals last touched before this (ms) are dead, whoever wrote them.
    pub before: i64,
    /// The node asking.
    pub writer: &'a str,
    /// Its pending seals last touched before this (ms) are dead.
    pub writer_before: i64,
}

/// One sealed, coded unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRow {
    /// Random id (hex), the codec's version id.
    pub id: String,
    /// State.
    pub state: SealState,
    /// Plaintext bytes.
    pub size: i64,
    /// Fragments needed.
    pub k: i64,
    /// Fragments written.
    pub n: i64,
    /// Segment size.
    pub segment_size: i64,
    /// `zstd` or `lz4` when compressed.
    pub compression: Option<String>,
    /// Sealed length of each segment (u32 LE) when compressed.
    pub sealed_lens: Option<Vec<u8>>,
    /// Data key wrapped under the master key.
    pub wrapped_key: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
}

/// State of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentState {
    /// Upload in progress.
    Pending,
    /// Landed at its location.
    Stored,
    /// Failed to land or found lost; a repair candidate.
    Missing,
}

impl FragmentState {
    fn as_str(self) -> &'static str {
        match self {
            FragmentState::Pending => "pending",
            FragmentState::Stored => "stored",
            FragmentState::Missing => "missing",
        }
    }
}

impl FromStr for FragmentState {
    type Err = MetaError;
    fn from_str(s: &str) -> MetaResult<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "stored" => Ok(Self::Stored),
            "missing" => Ok(Self::Missing),
            other => Err(MetaError::Corrupt(format!("fragment state {other:?}"))),
        }
    }
}

/// Where one fragment of a seal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRow {
    /// Index, `0..n`.
    pub idx: i64,
    /// Location name.
    pub location: String,
    /// Object name at the location.
    pub object_name: String,
    /// Bytes.
    pub size: i64,
    /// State.
    pub state: FragmentState,
}

/// Descriptive fields of an object version or multipart upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttrs {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Other standard headers (cache-control, content-disposition, …).
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` metadata, names without the prefix.
    pub user_metadata: BTreeMap<String, String>,
    /// Checksum algorithm requested or used (`CRC32`, `CRC32C`, `SHA1`, `SHA256`,
    /// `CRC64NVME`).
    pub checksum_algorithm: Option<String>,
}

/// A visible (or about to be visible) object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Random id.
    pub id: String,
    /// Bucket.
    pub bucket: String,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Bytes.
    pub size: i64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified, Unix ms.
    pub last_modified: i64,
    /// Descriptive fields.
    pub attrs: ObjectAttrs,
    /// Base64 checksum of the whole object, if one was given or asked for.
    pub checksum_value: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub checksum_type: Option<String>,
    /// Parts (1 for a single PUT).
    pub part_count: i64,
}

/// A part of a version: a seal covering a byte range of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    /// Part number (1-based).
    pub part_number: i64,
    /// The seal.
    pub seal_id: String,
    /// Offset of the part in the object.
    pub offset: i64,
    /// Bytes.
    pub size: i64,
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Key bytes.
    pub key: Vec<u8>,
    /// Bytes.
    pub size: i64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified.
    pub last_modified: i64,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    /// Upload id.
    pub id: String,
    /// Bucket.
    pub bucket: String,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Initiated, Unix ms.
    pub created_at: i64,
    /// Descriptive fields for the final object.
    pub attrs: ObjectAttrs,
}

/// An uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPartRow {
    /// Part number.
    pub part_number: i64,
    /// Its seal.
    pub seal_id: String,
    /// Bytes.
    pub size: i64,
    /// MD5 of the part, hex.
    pub etag: String,
    /// Base64 checksum of the part, if any.
    pub checksum_value: Option<String>,
    /// Upload time.
    pub last_modified: i64,
}

/// An access key with its sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    /// Access key id.
    pub id: String,
    /// Secret sealed under the master key.
    pub secret_sealed: Vec<u8>,
    /// Master key version that sealed it.
    pub kek_version: i64,
    /// Whether it may be used.
    pub enabled: bool,
    /// Creation time.
    pub created_at: i64,
    /// The tenant it acts for.
    pub tenant: String,
}

/// What committing a version replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replaced {
    /// The previous version's id, if the key had one.
    pub version_id: Option<String>,
}

/// Kind of database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The metadata store.
#[derive(Debug, Clone)]
pub struct MetaStore {
    pool: AnyPool,
    backend: Backend,
}

fn json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

fn unjson(s: &str) -> MetaResult<BTreeMap<String, String>> {
    serde_json::from_str(s).map_err(|e| MetaError::Corrupt(format!("metadata JSON: {e}")))
}

impl MetaStore {
    /// Connects to `url` (creating a SQLite file if needed) and migrates the schema.
    pub async fn connect(url: &str) -> MetaResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let (url, max) = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                (format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' }), 8)
            }
            Backend::Sqlite => (url.to_string(), 8),
            Backend::Postgres => (url.to_string(), 16),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never wait for the writer; FULL sync: a commit
                        // that returned survives power loss; busy_timeout: writers queue.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a transaction that reads first and upgrades later
    /// fails with "database is locked" instead of waiting when another wrote
    /// meanwhile.
    async fn begin_write(&self) -> MetaResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- access keys -------------------------------------------------------------

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
            "INSERT INTO access_keys (access_key_id, secret_sealed, kek_version, enabled, created_at, tenant) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM tenants WHERE name = $6) \
             ON CONFLICT (access_key_id) DO NOTHING",
        )
        .bind(&k.id)
        .bind(&k.secret_sealed)
        .bind(k.kek_version)
        .bind(i64::from(k.enabled))
        .bind(k.created_at)
        .bind(&k.tenant)
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

    /// Deletes an access key; `false` if there is none.
    pub async fn delete_access_key(&self, id: &str) -> MetaResult<bool> {
        let r = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1").bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- buckets -----------------------------------------------------------------

    /// Creates a bucket; `false` if it exists (whoever owns it).
    pub async fn create_bucket(&self, b: &BucketRow) -> MetaResult<bool> {
        let r = sqlx::query(
            "INSERT INTO buckets (name, policy, created_at, tenant) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&b.name)
        .bind(&b.policy)
        .bind(b.created_at)
        .bind(&b.tenant)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A bucket.
    pub async fn bucket(&self, name: &str) -> MetaResult<Option<BucketRow>> {
        let row = sqlx::query(bucket_select!("WHERE name = $1")).bind(name).fetch_optional(&self.pool).await?;
        row.map(|r| bucket_row(&r)).transpose()
    }

    /// Every bucket, by name.
    pub async fn buckets(&self) -> MetaResult<Vec<BucketRow>> {
        let rows = sqlx::query(bucket_select!("ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(bucket_row).collect()
    }

    /// The buckets of one tenant, by name.
    pub async fn buckets_of(&self, tenant: &str) -> MetaResult<Vec<BucketRow>> {
        let rows =
            sqlx::query(bucket_select!("WHERE tenant = $1 ORDER BY name")).bind(tenant).fetch_all(&self.pool).await?;
        rows.iter().map(bucket_row).collect()
    }

    /// Deletes an empty bucket. `Ok(None)` if it does not exist, `Ok(Some(false))` if
    /// it holds objects or uploads.
    pub async fn delete_bucket(&self, name: &str) -> MetaResult<Option<bool>> {
        let mut tx = self.begin_write().await?;
        let exists =
            sqlx::query("SELECT name FROM buckets WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
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

    // ---- seals -------------------------------------------------------------------

    /// Records a write about to start on node `writer`: its seal and planned
    /// fragments, `pending`.
    pub async fn insert_pending_seal(&self, seal: &SealRow, fragments: &[FragmentRow], writer: &str) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO seals (id, state, size, k, n, segment_size, compression, sealed_lens, wrapped_key, created_at, updated_at, writer) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
        )
        .bind(&seal.id)
        .bind(SealState::Pending.as_str())
        .bind(seal.size)
        .bind(seal.k)
        .bind(seal.n)
        .bind(seal.segment_size)
        .bind(seal.compression.clone())
        .bind(seal.sealed_lens.clone())
        .bind(&seal.wrapped_key)
        .bind(seal.created_at)
        .bind(writer)
        .execute(&mut *tx)
        .await?;
        for f in fragments {
            sqlx::query(
                "INSERT INTO fragments (seal_id, idx, location, object_name, size, state) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&seal.id)
            .bind(f.idx)
            .bind(&f.location)
            .bind(&f.object_name)
            .bind(f.size)
            .bind(FragmentState::Pending.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records which fragments of a pending seal landed, and its final layout.
    pub async fn finish_seal(
        &self,
        seal_id: &str,
        stored: &[(i64, i64)],
        missing: &[i64],
        sealed_lens: Option<&[u8]>,
    ) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for &(idx, size) in stored {
            sqlx::query("UPDATE fragments SET state = $1, size = $2 WHERE seal_id = $3 AND idx = $4")
                .bind(FragmentState::Stored.as_str())
                .bind(size)
                .bind(seal_id)
                .bind(idx)
                .execute(&mut *tx)
                .await?;
        }
        for &idx in missing {
            sqlx::query("UPDATE fragments SET state = $1 WHERE seal_id = $2 AND idx = $3")
                .bind(FragmentState::Missing.as_str())
                .bind(seal_id)
                .bind(idx)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(lens) = sealed_lens {
            sqlx::query("UPDATE seals SET sealed_lens = $1 WHERE id = $2")
                .bind(lens.to_vec())
                .bind(seal_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a seal as garbage (a failed write, or one no longer referenced).
    pub async fn discard_seal(&self, seal_id: &str) -> MetaResult<()> {
        sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(SealState::Garbage.as_str())
            .bind(now_ms())
            .bind(seal_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A seal and its fragments, by index.
    pub async fn seal(&self, id: &str) -> MetaResult<Option<(SealRow, Vec<FragmentRow>)>> {
        let row = sqlx::query(
            "SELECT id, state, size, k, n, segment_size, compression, sealed_lens, wrapped_key, created_at FROM seals WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let seal = seal_row(&row)?;
        let frags = self.fragments(id).await?;
        Ok(Some((seal, frags)))
    }

    /// The seals of `rows` (seal columns), each with its fragments.
    async fn with_fragments(&self, rows: &[AnyRow]) -> MetaResult<Vec<(SealRow, Vec<FragmentRow>)>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let seal = seal_row(r)?;
            let frags = self.fragments(&seal.id).await?;
            out.push((seal, frags));
        }
        Ok(out)
    }

    async fn fragments(&self, seal_id: &str) -> MetaResult<Vec<FragmentRow>> {
        let rows = sqlx::query(
            "SELECT idx, location, object_name, size, state FROM fragments WHERE seal_id = $1 ORDER BY idx",
        )
        .bind(seal_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(fragment_row).collect()
    }

    /// Marks one fragment's state (after a failed read or a repair).
    pub async fn set_fragment_state(&self, seal_id: &str, idx: i64, state: FragmentState) -> MetaResult<()> {
        sqlx::query("UPDATE fragments SET state = $1 WHERE seal_id = $2 AND idx = $3")
            .bind(state.as_str())
            .bind(seal_id)
            .bind(idx)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Seals to collect: garbage, and pending ones whose writes died (see
    /// [`DeadWrites`]).
    pub async fn collectable_seals(
        &self,
        dead: &DeadWrites<'_>,
        limit: i64,
    ) -> MetaResult<Vec<(SealRow, Vec<FragmentRow>)>> {
        let rows = sqlx::query(
            "SELECT id, state, size, k, n, segment_size, compression, sealed_lens, wrapped_key, created_at FROM seals \
             WHERE state = $1 OR (state = $2 AND (updated_at < $3 OR (writer = $4 AND updated_at < $5))) \
             ORDER BY updated_at LIMIT $6",
        )
        .bind(SealState::Garbage.as_str())
        .bind(SealState::Pending.as_str())
        .bind(dead.before)
        .bind(dead.writer)
        .bind(dead.writer_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.with_fragments(&rows).await
    }

    /// Forgets a collected seal (its fragments were deleted). Refuses, returning
    /// `false`, if anything still references it or it is no longer collectable.
    pub async fn forget_seal(&self, seal_id: &str) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let referenced = sqlx::query(
            "SELECT 1 FROM version_parts WHERE seal_id = $1 UNION ALL SELECT 1 FROM upload_parts WHERE seal_id = $1 LIMIT 1",
        )
        .bind(seal_id)
        .fetch_optional(&mut *tx)
        .await?;
        if referenced.is_some() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM fragments WHERE seal_id = $1").bind(seal_id).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM seals WHERE id = $1 AND state <> $2")
            .bind(seal_id)
            .bind(SealState::Stored.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- leases ------------------------------------------------------------------

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

    // ---- versions ----------------------------------------------------------------

    /// Makes `version` (made of `parts`) the visible version of its key, in one
    /// transaction: the seals become `stored`, the previous version's seals garbage.
    /// `upload_id` is removed too when this completes a multipart upload, and the
    /// seals of its parts left out become garbage.
    pub async fn commit_version(
        &self,
        version: &VersionRow,
        parts: &[PartRow],
        upload_id: Option<&str>,
    ) -> MetaResult<Replaced> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for p in parts {
            sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(SealState::Stored.as_str())
                .bind(now)
                .bind(&p.seal_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO versions (id, bucket, object_key, size, etag, last_modified, content_type, headers, user_metadata, \
             checksum_algorithm, checksum_value, checksum_type, part_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&version.id)
        .bind(&version.bucket)
        .bind(&version.key)
        .bind(version.size)
        .bind(&version.etag)
        .bind(version.last_modified)
        .bind(version.attrs.content_type.clone())
        .bind(json(&version.attrs.headers))
        .bind(json(&version.attrs.user_metadata))
        .bind(version.attrs.checksum_algorithm.clone())
        .bind(version.checksum_value.clone())
        .bind(version.checksum_type.clone())
        .bind(version.part_count)
        .execute(&mut *tx)
        .await?;
        for p in parts {
            sqlx::query(
                "INSERT INTO version_parts (version_id, part_number, seal_id, part_offset, size) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&version.id)
            .bind(p.part_number)
            .bind(&p.seal_id)
            .bind(p.offset)
            .bind(p.size)
            .execute(&mut *tx)
            .await?;
        }
        let previous: Option<String> =
            sqlx::query("SELECT version_id FROM objects WHERE bucket = $1 AND object_key = $2")
                .bind(&version.bucket)
                .bind(&version.key)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
        sqlx::query(
            "INSERT INTO objects (bucket, object_key, version_id) VALUES ($1, $2, $3) \
             ON CONFLICT (bucket, object_key) DO UPDATE SET version_id = excluded.version_id",
        )
        .bind(&version.bucket)
        .bind(&version.key)
        .bind(&version.id)
        .execute(&mut *tx)
        .await?;
        // Every other version of the key is retired. Asked after the upsert, which
        // waits for a concurrent commit of the same key: its version is seen here
        // and retired, so that concurrent overwrites never leak a version.
        let others: Vec<String> =
            sqlx::query("SELECT id FROM versions WHERE bucket = $1 AND object_key = $2 AND id <> $3")
                .bind(&version.bucket)
                .bind(&version.key)
                .bind(&version.id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        for old in &others {
            retire_version(&mut tx, old, now).await?;
        }
        if let Some(upload) = upload_id {
            // Parts uploaded but not used in the object are garbage now.
            sqlx::query(
                "UPDATE seals SET state = $1, updated_at = $2 WHERE id IN \
                 (SELECT seal_id FROM upload_parts WHERE upload_id = $3) AND id NOT IN \
                 (SELECT seal_id FROM version_parts WHERE version_id = $4)",
            )
            .bind(SealState::Garbage.as_str())
            .bind(now)
            .bind(upload)
            .bind(&version.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1").bind(upload).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM uploads WHERE id = $1").bind(upload).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Replaced { version_id: previous })
    }

    /// The visible version of a key, with its parts in order.
    pub async fn current_version(&self, bucket: &str, key: &[u8]) -> MetaResult<Option<(VersionRow, Vec<PartRow>)>> {
        let row = sqlx::query(
            "SELECT v.id, v.bucket, v.object_key, v.size, v.etag, v.last_modified, v.content_type, v.headers, \
             v.user_metadata, v.checksum_algorithm, v.checksum_value, v.checksum_type, v.part_count \
             FROM objects o JOIN versions v ON v.id = o.version_id WHERE o.bucket = $1 AND o.object_key = $2",
        )
        .bind(bucket)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let version = version_row(&row)?;
        let parts = sqlx::query(
            "SELECT part_number, seal_id, part_offset, size FROM version_parts WHERE version_id = $1 ORDER BY part_number",
        )
        .bind(&version.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| PartRow { part_number: r.get(0), seal_id: r.get(1), offset: r.get(2), size: r.get(3) })
        .collect();
        Ok(Some((version, parts)))
    }

    /// Removes the visible version of a key (its seals become garbage). Returns the
    /// removed version's id, if there was one.
    pub async fn delete_object(&self, bucket: &str, key: &[u8]) -> MetaResult<Option<String>> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query("DELETE FROM objects WHERE bucket = $1 AND object_key = $2 RETURNING version_id")
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
        if let Some(v) = &current {
            retire_version(&mut tx, v, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(current)
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
            JOIN versions v ON v.id = o.version_id WHERE o.bucket = $1 AND o.object_key >= $2 ORDER BY o.object_key LIMIT $3";
        const EXCLUSIVE: &str = "SELECT o.object_key, v.size, v.etag, v.last_modified FROM objects o \
            JOIN versions v ON v.id = o.version_id WHERE o.bucket = $1 AND o.object_key > $2 ORDER BY o.object_key LIMIT $3";
        let sql = if exclusive { EXCLUSIVE } else { INCLUSIVE };
        let rows = sqlx::query(sql).bind(bucket).bind(from).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| ListedObject { key: r.get(0), size: r.get(1), etag: r.get(2), last_modified: r.get(3) })
            .collect())
    }

    // ---- multipart uploads -----------------------------------------------------

    /// Starts a multipart upload.
    pub async fn create_upload(&self, u: &UploadRow) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO uploads (id, bucket, object_key, created_at, content_type, headers, user_metadata, checksum_algorithm) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&u.id)
        .bind(&u.bucket)
        .bind(&u.key)
        .bind(u.created_at)
        .bind(u.attrs.content_type.clone())
        .bind(json(&u.attrs.headers))
        .bind(json(&u.attrs.user_metadata))
        .bind(u.attrs.checksum_algorithm.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A multipart upload.
    pub async fn upload(&self, id: &str) -> MetaResult<Option<UploadRow>> {
        let row = sqlx::query(
            "SELECT id, bucket, object_key, created_at, content_type, headers, user_metadata, checksum_algorithm \
             FROM uploads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| upload_row(&r)).transpose()
    }

    /// Records an uploaded part, replacing (and discarding) an earlier one with the
    /// same number. `false` if the upload no longer exists (its seal is discarded).
    pub async fn put_upload_part(&self, upload_id: &str, p: &UploadPartRow) -> MetaResult<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let exists =
            sqlx::query("SELECT id FROM uploads WHERE id = $1").bind(upload_id).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(SealState::Garbage.as_str())
                .bind(now)
                .bind(&p.seal_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(false);
        }
        let old: Option<String> =
            sqlx::query("SELECT seal_id FROM upload_parts WHERE upload_id = $1 AND part_number = $2")
                .bind(upload_id)
                .bind(p.part_number)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, part_number, seal_id, size, etag, checksum_value, last_modified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (upload_id, part_number) DO UPDATE SET \
             seal_id = excluded.seal_id, size = excluded.size, etag = excluded.etag, \
             checksum_value = excluded.checksum_value, last_modified = excluded.last_modified",
        )
        .bind(upload_id)
        .bind(p.part_number)
        .bind(&p.seal_id)
        .bind(p.size)
        .bind(&p.etag)
        .bind(p.checksum_value.clone())
        .bind(p.last_modified)
        .execute(&mut *tx)
        .await?;
        // The part's seal is kept (stored) while the upload references it.
        sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(SealState::Stored.as_str())
            .bind(now)
            .bind(&p.seal_id)
            .execute(&mut *tx)
            .await?;
        if let Some(old) = old {
            sqlx::query("UPDATE seals SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(SealState::Garbage.as_str())
                .bind(now)
                .bind(&old)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Uploaded parts, by number (from `after`, at most `limit`).
    pub async fn upload_parts(&self, upload_id: &str, after: i64, limit: i64) -> MetaResult<Vec<UploadPartRow>> {
        let rows = sqlx::query(
            "SELECT part_number, seal_id, size, etag, checksum_value, last_modified FROM upload_parts \
             WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3",
        )
        .bind(upload_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| UploadPartRow {
                part_number: r.get(0),
                seal_id: r.get(1),
                size: r.get(2),
                etag: r.get(3),
                checksum_value: r.get(4),
                last_modified: r.get(5),
            })
            .collect())
    }

    /// Aborts an upload: its parts' seals become garbage. `false` if unknown.
    pub async fn abort_upload(&self, upload_id: &str) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE seals SET state = $1, updated_at = $2 WHERE id IN (SELECT seal_id FROM upload_parts WHERE upload_id = $3)",
        )
        .bind(SealState::Garbage.as_str())
        .bind(now_ms())
        .bind(upload_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1").bind(upload_id).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(upload_id).execute(&mut *tx).await?;
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
            "SELECT id, bucket, object_key, created_at, content_type, headers, user_metadata, checksum_algorithm \
             FROM uploads WHERE bucket = $1 AND (object_key > $2 OR (object_key = $2 AND id > $3)) \
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

/// Retires a version inside a transaction: its rows go, its seals become garbage.
async fn retire_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>, version_id: &str, now: i64) -> MetaResult<()> {
    sqlx::query(
        "UPDATE seals SET state = $1, updated_at = $2 WHERE id IN (SELECT seal_id FROM version_parts WHERE version_id = $3)",
    )
    .bind(SealState::Garbage.as_str())
    .bind(now)
    .bind(version_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM version_parts WHERE version_id = $1").bind(version_id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM versions WHERE id = $1").bind(version_id).execute(&mut **tx).await?;
    Ok(())
}

fn access_key_row(r: &AnyRow) -> MetaResult<AccessKeyRow> {
    Ok(AccessKeyRow {
        id: r.try_get(0)?,
        secret_sealed: r.try_get(1)?,
        kek_version: r.try_get(2)?,
        enabled: r.try_get::<i64, _>(3)? != 0,
        created_at: r.try_get(4)?,
        tenant: r.try_get(5)?,
    })
}

fn bucket_row(r: &AnyRow) -> MetaResult<BucketRow> {
    Ok(BucketRow { name: r.try_get(0)?, policy: r.try_get(1)?, created_at: r.try_get(2)?, tenant: r.try_get(3)? })
}

fn seal_row(r: &AnyRow) -> MetaResult<SealRow> {
    Ok(SealRow {
        id: r.try_get(0)?,
        state: r.try_get::<String, _>(1)?.parse()?,
        size: r.try_get(2)?,
        k: r.try_get(3)?,
        n: r.try_get(4)?,
        segment_size: r.try_get(5)?,
        compression: r.try_get(6)?,
        sealed_lens: r.try_get(7)?,
        wrapped_key: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

fn fragment_row(r: &AnyRow) -> MetaResult<FragmentRow> {
    Ok(FragmentRow {
        idx: r.try_get(0)?,
        location: r.try_get(1)?,
        object_name: r.try_get(2)?,
        size: r.try_get(3)?,
        state: r.try_get::<String, _>(4)?.parse()?,
    })
}

fn version_row(r: &AnyRow) -> MetaResult<VersionRow> {
    Ok(VersionRow {
        id: r.try_get(0)?,
        bucket: r.try_get(1)?,
        key: r.try_get(2)?,
        size: r.try_get(3)?,
        etag: r.try_get(4)?,
        last_modified: r.try_get(5)?,
        attrs: ObjectAttrs {
            content_type: r.try_get(6)?,
            headers: unjson(&r.try_get::<String, _>(7)?)?,
            user_metadata: unjson(&r.try_get::<String, _>(8)?)?,
            checksum_algorithm: r.try_get(9)?,
        },
        checksum_value: r.try_get(10)?,
        checksum_type: r.try_get(11)?,
        part_count: r.try_get(12)?,
    })
}

fn upload_row(r: &AnyRow) -> MetaResult<UploadRow> {
    Ok(UploadRow {
        id: r.try_get(0)?,
        bucket: r.try_get(1)?,
        key: r.try_get(2)?,
        created_at: r.try_get(3)?,
        attrs: ObjectAttrs {
            content_type: r.try_get(4)?,
            headers: unjson(&r.try_get::<String, _>(5)?)?,
            user_metadata: unjson(&r.try_get::<String, _>(6)?)?,
            checksum_algorithm: r.try_get(7)?,
        },
    })
}

#[cfg(test)]
mod tests;

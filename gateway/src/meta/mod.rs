//! Metadata: buckets, object versions, seals and their fragments, multipart uploads,
//! access keys, tenants, the run-time catalog and jobs — in SQLite (embedded
//! default) or PostgreSQL (shared by replicas).
//!
//! One implementation serves both through sqlx's `Any` driver: the queries use only
//! SQL both accept (`$n` parameters, `ON CONFLICT`, BIGINT times, byte-string keys
//! compared bytewise), and `migrations/sqlite` and `migrations/postgres` hold the two
//! dialects of the schema. Each concern has a file of its own, every one an `impl`
//! of [`MetaStore`]:
//!
//! | file | what |
//! |---|---|
//! | `types.rs` | ids, stored enums, rows ([`Seal`], [`Manifest`], …) |
//! | `keys.rs` | access keys and admin tokens |
//! | `buckets.rs` | buckets and tenants |
//! | `seals.rs` | seals and fragments: pending writes, collection, leases |
//! | `objects.rs` | versions: commit, manifest, delete, listing |
//! | `lock.rs` | object lock: retention, legal hold, a bucket's default |
//! | `versions.rs` | S3 versioning: one version by id, deleting one for good, listing all |
//! | `multipart.rs` | multipart uploads and their parts |
//! | `health.rs` | margins, the repair queue, fragments being rebuilt, background passes |
//! | `catalog.rs` | locations and policies added at run time, location states, fragments per location, usage |
//! | `jobs.rs` | background jobs |
//! | `records.rs` | records written to the locations (manifests, tombstones, catalog) |
//! | `restore.rs` | the catalog as one snapshot, and what recovery writes back |
//!
//! # Visibility
//!
//! A write first records its seal and planned fragments as `pending`; only after the
//! write quorum of fragments landed does one transaction mark them stored, insert the
//! version and point the key at it, retiring the version it replaces. A crash at any
//! point leaves either the old or the new version visible; `pending` seals of dead
//! writes and retired seals are `garbage` for the collector.

mod buckets;
mod catalog;
mod health;
mod jobs;
mod keys;
mod lock;
mod multipart;
mod objects;
mod packs;
mod records;
mod restore;
mod seals;
mod types;
mod versions;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use buckets::TenantRow;
pub use catalog::{BucketUsage, CatalogRow, FragmentAt, LocationState};
pub use health::{MarginCount, PassRow, RepairItem};
pub use jobs::{JobKind, JobRow, JobState};
pub use lock::{LockDefault, LockMode, Retention};
pub use packs::LiveMember;
pub use records::{RecordKind, RecordRow};
pub use restore::{Backup, CatalogSnapshot, RestoredVersion};
pub use types::{
    AccessKeyRow, BucketRow, ChecksumAlgorithm, Compression, DeadWrites, DeleteCondition, Fragment, FragmentState,
    ListedObject, Manifest, ManifestPart, ObjectAttrs, PackMember, PartRow, Replaced, Seal, SealFinish, SealId,
    SealState, UploadId, UploadPartRow, UploadRow, VersionId, VersionRef, VersionRow, Versioning, WriteCondition,
    margin,
};
pub use versions::ListedVersion;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A metadata operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The store changed under an operation in a way it cannot go on from (a write
    /// outlived `pipeline.pending_grace` and its seal was collected).
    #[error("metadata conflict: {0}")]
    Conflict(String),
    /// A write's condition ([`WriteCondition`]) does not hold.
    #[error("precondition failed: {0}")]
    Precondition(&'static str),
    /// Object lock protects the version (its retention or legal hold).
    #[error("object lock: the version is protected by {0}")]
    Locked(&'static str),
    /// A write's bucket was deleted while it was under way.
    #[error("the bucket was deleted")]
    NoSuchBucket,
    /// A write's condition names the object of a key that has none.
    #[error("no object under the key")]
    NoSuchKey,
}

/// Result of metadata operations.
pub type MetaResult<T> = Result<T, MetaError>;

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

/// The metadata store: a handle on a connection pool, cheap to clone.
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

/// Reads descriptive fields from the columns `content_type, headers, user_metadata,
/// checksum_algorithm, sse_customer`, starting at column `at` (versions and uploads
/// both keep them).
fn attrs_row(r: &sqlx::any::AnyRow, at: usize) -> MetaResult<ObjectAttrs> {
    use sqlx::Row as _;
    Ok(ObjectAttrs {
        content_type: r.try_get(at)?,
        headers: unjson(&r.try_get::<String, _>(at + 1)?)?,
        user_metadata: unjson(&r.try_get::<String, _>(at + 2)?)?,
        checksum_algorithm: r.try_get::<Option<String>, _>(at + 3)?.map(|s| s.parse()).transpose()?,
        customer_key: r.try_get(at + 4)?,
        tags: tags_row(r, at + 5)?,
    })
}

/// Tags as stored: a JSON object, NULL for none.
fn tags_row(r: &sqlx::any::AnyRow, at: usize) -> MetaResult<BTreeMap<String, String>> {
    use sqlx::Row as _;
    r.try_get::<Option<String>, _>(at)?.map_or_else(|| Ok(BTreeMap::new()), |j| unjson(&j))
}

/// Tags to store: NULL for none.
fn tags_json(tags: &BTreeMap<String, String>) -> Option<String> {
    (!tags.is_empty()).then(|| json(tags))
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

    /// Starts a transaction whose reads all see one snapshot of the store (SQLite's
    /// WAL gives every read transaction one; PostgreSQL needs REPEATABLE READ).
    async fn begin_snapshot(&self) -> MetaResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
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
}

#[cfg(test)]
mod tests;

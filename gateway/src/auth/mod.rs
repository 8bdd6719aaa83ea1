//! Access keys: stored in the metadata database with their secrets sealed under the
//! master key, served to s3s's SigV4 verifier (which compares signatures in constant
//! time) through [`CredentialStore`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use codec::MasterKey;
use offload::random::SecureRandom;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use zeroize::Zeroizing;

use crate::config::DEFAULT_TENANT;
use crate::keys::{KEY_ID_ALPHABET, SECRET_ALPHABET, random_token};
use crate::meta::{AccessKeyRow, MetaStore, now_ms};

/// Why a credential operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    /// Sealing or opening a secret failed (wrong master key, or tampering).
    #[error("access key secret cannot be sealed or opened: {0}")]
    Crypto(#[from] codec::CodecError),
    /// The random source failed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The key id exists already.
    #[error("access key {0} exists")]
    Exists(String),
    /// The tenant to create a key for does not exist.
    #[error("no tenant {0:?}")]
    NoTenant(String),
    /// The master key does not open what the store holds.
    #[error(
        "the master key does not open what the metadata store holds (access key {0}): it is not the key this \
         store was sealed under; nothing was changed"
    )]
    WrongMaster(String),
}

/// How long a decrypted secret is used without looking at the store again: a key
/// revoked or rotated through another replica stops working within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// An enabled key as last read: its decrypted secret and its tenant.
#[derive(Clone)]
struct Cached {
    secret: Zeroizing<String>,
    tenant: Arc<str>,
    read: Instant,
}

/// Access keys, backed by the metadata store, with decrypted secrets cached briefly.
/// Clones share the cache.
#[derive(Clone)]
pub struct CredentialStore {
    meta: MetaStore,
    master: Arc<MasterKey>,
    random: Arc<dyn SecureRandom>,
    cache: Arc<RwLock<HashMap<String, Cached>>>,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore").finish_non_exhaustive()
    }
}

impl CredentialStore {
    /// A store over `meta`, sealing secrets with `master`.
    pub fn new(meta: MetaStore, master: Arc<MasterKey>, random: Arc<dyn SecureRandom>) -> Self {
        Self { meta, master, random, cache: Arc::default() }
    }

    /// Creates an access key of `tenant`; generates the id and secret when not
    /// given. Returns them.
    pub async fn create(
        &self,
        id: Option<&str>,
        secret: Option<&str>,
        tenant: &str,
        bypass_governance: bool,
    ) -> Result<(String, Zeroizing<String>), CredentialError> {
        let id = match id {
            Some(i) => i.to_string(),
            None => format!("SKY{}", random_token(self.random.as_ref(), 17, KEY_ID_ALPHABET)?),
        };
        let secret = match secret {
            Some(s) => Zeroizing::new(s.to_string()),
            None => self.new_secret()?,
        };
        let sealed = self.master.seal_secret(secret.as_bytes(), id.as_bytes(), self.random.as_ref())?;
        let row = AccessKeyRow {
            id: id.clone(),
            secret_sealed: sealed,
            kek_version: i64::from(self.master.version()),
            enabled: true,
            created_at: now_ms(),
            tenant: tenant.to_string(),
            bypass_governance,
        };
        if !self.meta.insert_access_key(&row).await? {
            if self.meta.access_key(&id).await?.is_some() {
                return Err(CredentialError::Exists(id));
            }
            return Err(CredentialError::NoTenant(tenant.to_string()));
        }
        Ok((id, secret))
    }

    /// The first access key: created from `id`/`secret` (or generated) when the store
    /// has none; otherwise the configured one if it exists, or the first stored one.
    /// Returns the id, the secret and whether it was created now.
    pub async fn ensure_initial(
        &self,
        id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<(String, Zeroizing<String>, bool), CredentialError> {
        if let Some(id) = id {
            if let Some(existing) = self.secret_of(id).await? {
                return Ok((id.to_string(), existing, false));
            }
            if let Some(secret) = secret
                && self.meta.access_keys().await?.is_empty()
            {
                let (i, s) = self.create(Some(id), Some(secret), DEFAULT_TENANT, false).await?;
                return Ok((i, s, true));
            }
        }
        match self.meta.access_keys().await?.into_iter().find(|k| k.enabled) {
            Some(k) => {
                let s = self.open(&k)?;
                Ok((k.id, s, false))
            }
            None => {
                let (i, s) = self.create(id, secret, DEFAULT_TENANT, false).await?;
                Ok((i, s, true))
            }
        }
    }

    /// Checks that the master key opens what the store holds (its first access
    /// key), before anything is written under a wrong key.
    pub async fn check_master(&self) -> Result<(), CredentialError> {
        match self.meta.access_keys().await?.first() {
            Some(row) => self.open(row).map(|_| ()).map_err(|_| CredentialError::WrongMaster(row.id.clone())),
            None => Ok(()),
        }
    }

    fn open(&self, row: &AccessKeyRow) -> Result<Zeroizing<String>, CredentialError> {
        let plain = self.master.open_secret(&row.secret_sealed, row.id.as_bytes())?;
        Ok(Zeroizing::new(String::from_utf8_lossy(&plain).into_owned()))
    }

    /// The secret of an enabled key, or `None`.
    pub async fn secret_of(&self, id: &str) -> Result<Option<Zeroizing<String>>, CredentialError> {
        Ok(self.enabled(id).await?.map(|c| c.secret))
    }

    /// The tenant of an enabled key, or `None`.
    pub async fn tenant_of(&self, id: &str) -> Result<Option<Arc<str>>, CredentialError> {
        Ok(self.enabled(id).await?.map(|c| c.tenant))
    }

    /// An enabled key, from the cache while it is fresh.
    async fn enabled(&self, id: &str) -> Result<Option<Cached>, CredentialError> {
        let cached = self.cache.read().ok().and_then(|c| c.get(id).cloned());
        if let Some(c) = cached.filter(|c| c.read.elapsed() < CACHE_TTL) {
            return Ok(Some(c));
        }
        let Some(row) = self.meta.access_key(id).await? else { return Ok(None) };
        if !row.enabled {
            return Ok(None);
        }
        let fresh = Cached { secret: self.open(&row)?, tenant: row.tenant.into(), read: Instant::now() };
        if let Ok(mut c) = self.cache.write() {
            c.insert(id.to_string(), fresh.clone());
        }
        Ok(Some(fresh))
    }

    /// Drops cached secrets (after keys were disabled or deleted).
    pub fn forget_cached(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }

    fn new_secret(&self) -> Result<Zeroizing<String>, CredentialError> {
        Ok(Zeroizing::new(random_token(self.random.as_ref(), 40, SECRET_ALPHABET)?))
    }

    /// Every key, or those of one tenant (secrets stay sealed).
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<AccessKeyRow>, CredentialError> {
        Ok(match tenant {
            Some(t) => self.meta.access_keys_of(t).await?,
            None => self.meta.access_keys().await?,
        })
    }

    /// Enables or disables a key; `false` if there is none.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<bool, CredentialError> {
        let found = self.meta.set_access_key_enabled(id, enabled).await?;
        self.forget_cached();
        Ok(found)
    }

    /// Deletes a key; `false` if there is none.
    pub async fn delete(&self, id: &str) -> Result<bool, CredentialError> {
        let found = self.meta.delete_access_key(id).await?;
        self.forget_cached();
        Ok(found)
    }

    /// Gives a key a new random secret, returned once; `None` if there is no key.
    pub async fn rotate(&self, id: &str) -> Result<Option<Zeroizing<String>>, CredentialError> {
        let secret = self.new_secret()?;
        let sealed = self.master.seal_secret(secret.as_bytes(), id.as_bytes(), self.random.as_ref())?;
        let found = self.meta.set_access_key_secret(id, &sealed, i64::from(self.master.version())).await?;
        self.forget_cached();
        Ok(found.then_some(secret))
    }
}

#[async_trait::async_trait]
impl S3Auth for CredentialStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.secret_of(access_key).await {
            Ok(Some(secret)) => Ok(SecretKey::from(secret.as_str())),
            Ok(None) => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS access key Id you provided does not exist in our records."))
            }
            Err(e) => {
                tracing::error!(error = %e, "credential lookup failed");
                Err(s3_error!(InternalError))
            }
        }
    }
}

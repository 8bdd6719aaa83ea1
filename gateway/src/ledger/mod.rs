//! The ledger: what the gateway writes to the locations besides fragments, so that
//! the master key and the locations alone rebuild the metadata store
//! (`skyshard recover`). The locations are the source of truth; the database is a
//! cache of them.
//!
//! | record | name | written | holds |
//! |---|---|---|---|
//! | manifest | `m/<version id>.<key version>` | before a version becomes visible | everything a read needs: key, metadata, ETag, checksums, parts, seals, wrapped data keys; whether it is the key's `null` version or a delete marker (no parts) |
//! | pack | `p/<pack id>.<key version>` | by a pack's writer, once its fragments landed, before its members' versions become visible | the manifests of the pack's members (the pack's seal once) |
//! | tombstone | `t/<random id>.<key version>` | before a delete becomes visible | the key, and when: every manifest of the key recorded earlier is gone — or, for a delete of one version by id, that version only |
//! | catalog | `c/<generation>.<key version>` | on every change of the catalog | tenants, buckets, access keys (secrets sealed), admin token hashes, locations and policies added at run time |
//!
//! Every record is sealed (AES-256-GCM, random nonce) under a key derived from the
//! master key for records alone (HKDF-SHA256), bound to its name, so that a record
//! cannot be moved to another name, and a location learns nothing but sizes. A record
//! is a few hundred bytes, so it is written whole, not coded (a coded record would be
//! mostly header, cost as many requests, and need k reads to open): a manifest as
//! `n - k + 1` copies at locations that took the version's fragments (a pack's
//! members' manifests as one record, so many small objects cost one record) — as many as it
//! takes for one to remain whenever `k` fragments do — before the write it records is
//! acknowledged; the copies follow the fragments when repairs and drains move them.

pub mod backup;
pub mod catalog;
pub mod records;

use std::sync::Arc;

use bytes::Bytes;
use codec::MasterKey;
use offload::aead::{AeadEngine, DataKey};
use offload::random::SecureRandom;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{FragmentRef, FragmentStore, TransferError};

pub use records::{CatalogRecord, ManifestRecord, PackEntry, PackRecord, RecordPart, RecordSeal, TombstoneRecord};

/// The record format this version writes.
pub const FORMAT: u32 = 1;

/// A ledger operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Sealing failed, or a record does not open: the wrong master key, or tampering.
    #[error("record {0}: does not open under this master key (wrong key, or altered)")]
    Open(String),
    /// A record opened but is not one this version reads.
    #[error("record {0}: {1}")]
    Format(String, String),
    /// Too few copies of a record could be written.
    #[error("record {name}: written to {landed} of the {needed} locations it needs")]
    Quorum {
        /// The record.
        name: String,
        /// Copies needed.
        needed: usize,
        /// Copies written.
        landed: usize,
    },
    /// A location failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    /// The codec failed (no randomness).
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

/// Kinds of record, by the first part of their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `m/`
    Manifest,
    /// `p/`: the manifests of a pack's members.
    Pack,
    /// `t/`
    Tombstone,
    /// `c/`
    Catalog,
    /// `b/`: a frame of a backup file (never at a location).
    Backup,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Manifest => "m",
            Kind::Pack => "p",
            Kind::Tombstone => "t",
            Kind::Catalog => "c",
            Kind::Backup => "b",
        }
    }
}

/// A record's name split: its kind, its id and the key version that sealed it.
pub fn parse_name(name: &str) -> Option<(Kind, &str, u32)> {
    let (dir, rest) = name.split_once('/')?;
    let kind = match dir {
        "m" => Kind::Manifest,
        "p" => Kind::Pack,
        "t" => Kind::Tombstone,
        "c" => Kind::Catalog,
        "b" => Kind::Backup,
        _ => return None,
    };
    let (id, version) = rest.rsplit_once('.')?;
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(())?;
    Some((kind, id, version.parse().ok()?))
}

/// The keys that seal records: one per master key version, derived from it.
pub struct Ledger {
    keys: MasterKey,
    random: Arc<dyn SecureRandom>,
    /// One catalog generation written at a time.
    publishing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("versions", &self.keys.versions()).finish()
    }
}

/// The records key of master key material: HKDF-SHA256 with its own label, so that
/// it seals nothing else and the master key seals no record.
fn derive(material: &DataKey) -> DataKey {
    DataKey::from_bytes(*crate::keys::derive(material, b"skyshard ledger", b"records v1"))
}

impl Ledger {
    /// A ledger sealing with keys derived from the master key ring `ring` (the
    /// highest version seals new records, every one opens).
    pub fn new(
        engine: &dyn AeadEngine,
        ring: &[(DataKey, u32)],
        random: Arc<dyn SecureRandom>,
    ) -> Result<Self, LedgerError> {
        let ((first, v1), rest) =
            ring.split_first().ok_or(LedgerError::Codec(codec::CodecError::Unwrap { kek_version: 0 }))?;
        let keys = MasterKey::new(engine, &derive(first), *v1)?;
        for (m, v) in rest {
            keys.add(engine, &derive(m), *v)?;
        }
        Ok(Self { keys, random, publishing: tokio::sync::Mutex::new(()) })
    }

    /// Adds master key version `version` (a rotation): it seals from now on.
    pub fn add(&self, engine: &dyn AeadEngine, material: &DataKey, version: u32) -> Result<(), LedgerError> {
        Ok(self.keys.add(engine, &derive(material), version)?)
    }

    /// Retires master key version `version` (a rotation that finished).
    pub fn retire(&self, version: u32) {
        self.keys.retire(version);
    }

    /// The key version new records are sealed under.
    pub fn version(&self) -> u32 {
        self.keys.version()
    }

    /// The name of a record of `kind` with `id`, sealed under the current key.
    pub fn name(&self, kind: Kind, id: &str) -> String {
        format!("{}/{id}.{}", kind.dir(), self.version())
    }

    /// A fresh random id (tombstones, catalog generations).
    pub fn random_id(&self) -> Result<String, LedgerError> {
        let mut b = [0u8; 12];
        self.random.fill(&mut b).map_err(|e| LedgerError::Codec(codec::CodecError::Random(e)))?;
        Ok(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// `body` sealed as the record `name`.
    pub fn seal<T: Serialize>(&self, name: &str, body: &T) -> Result<Bytes, LedgerError> {
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(body).map_err(|e| LedgerError::Format(name.into(), e.to_string()))?,
        );
        Ok(self.keys.seal_secret(&json, name.as_bytes(), self.random.as_ref())?.into())
    }

    /// Opens the record `name` (under whichever key version sealed it).
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &[u8]) -> Result<T, LedgerError> {
        let (_, _, version) =
            parse_name(name).ok_or_else(|| LedgerError::Format(name.into(), "not a record".into()))?;
        // The version in the name is the one that sealed it (the name is bound in).
        let sealed_by = MasterKey::sealed_version(sealed);
        if sealed_by != Some(version) {
            return Err(LedgerError::Open(name.into()));
        }
        let plain = self.keys.open_secret(sealed, name.as_bytes()).map_err(|_| LedgerError::Open(name.into()))?;
        serde_json::from_slice(&plain).map_err(|e| LedgerError::Format(name.into(), e.to_string()))
    }
}

/// Copies of a record needed at `written` locations that hold fragments of which
/// `k` rebuild the data: enough that one copy remains whenever `k` fragments do.
pub fn quorum(written: usize, k: usize) -> usize {
    (written + 1).saturating_sub(k).max(1).min(written.max(1))
}

/// How long the copies still in flight may take once enough have landed: a slow
/// location does not hold a write back for longer.
const STRAGGLER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes `bytes` as the record `name` to every one of `locations` at once (a
/// record rewritten — a lock or tag change — replaces the copy of its name); fails
/// unless `needed` copies landed. Once they have, the others get
/// [`STRAGGLER_GRACE`] more. Returns the locations that may hold it (every one
/// tried: one given up on may still have stored it, and deleting a record that is
/// not there counts as done).
pub async fn write(
    store: &dyn FragmentStore,
    name: &str,
    bytes: Bytes,
    locations: &[String],
    needed: usize,
) -> Result<Vec<String>, LedgerError> {
    use futures::StreamExt as _;
    let mut puts: futures::stream::FuturesUnordered<_> = locations
        .iter()
        .map(|location| {
            let at = FragmentRef {
                location: location.clone(),
                name: name.to_string(),
                len: bytes.len() as u64,
                tenant: None,
            };
            let body = bytes.clone();
            async move {
                let r = store.replace(&at, Box::pin(futures::stream::once(async move { Ok(body) }))).await;
                if let Err(e) = &r {
                    tracing::warn!(location = %at.location, record = %at.name, error = %e, "record not written");
                }
                r.is_ok()
            }
        })
        .collect();
    let mut landed = 0;
    while landed < needed {
        match puts.next().await {
            Some(ok) => landed += usize::from(ok),
            None => return Err(LedgerError::Quorum { name: name.to_string(), needed, landed }),
        }
    }
    let _ = tokio::time::timeout(STRAGGLER_GRACE, async { while puts.next().await.is_some() {} }).await;
    Ok(locations.to_vec())
}

/// Writes `bytes` as the record `name` to `copies` of `candidates`: the first ones,
/// and for each that fails the next. Returns the locations that hold it; fails if
/// the candidates run out first.
pub async fn write_copies(
    store: &dyn FragmentStore,
    name: &str,
    bytes: Bytes,
    candidates: &[String],
    copies: usize,
) -> Result<Vec<String>, LedgerError> {
    use futures::StreamExt as _;
    let put = |location: String| {
        let at = FragmentRef { location, name: name.to_string(), len: bytes.len() as u64, tenant: None };
        let body = bytes.clone();
        async move {
            let r = store.replace(&at, Box::pin(futures::stream::once(async move { Ok(body) }))).await;
            if let Err(e) = &r {
                tracing::warn!(location = %at.location, record = %at.name, error = %e, "record not written");
            }
            (at.location, r.is_ok())
        }
    };
    let copies = copies.min(candidates.len());
    let mut next = candidates.iter().cloned();
    let mut puts: futures::stream::FuturesUnordered<_> = next.by_ref().take(copies).map(put).collect();
    let mut landed = Vec::with_capacity(copies);
    while landed.len() < copies {
        match puts.next().await {
            Some((location, true)) => landed.push(location),
            Some((_, false)) => {
                if let Some(l) = next.next() {
                    puts.push(put(l));
                }
            }
            None => return Err(LedgerError::Quorum { name: name.to_string(), needed: copies, landed: landed.len() }),
        }
    }
    Ok(landed)
}

/// Reads the record `name` from the first of `locations` that has it whole, at most
/// `max` bytes.
pub async fn read(
    store: &dyn FragmentStore,
    name: &str,
    size: u64,
    locations: &[String],
) -> Result<Bytes, LedgerError> {
    let mut last = TransferError::Protocol(format!("record {name}: no location holds it"));
    for location in locations {
        let at = FragmentRef { location: location.clone(), name: name.to_string(), len: size, tenant: None };
        match read_whole(store, &at).await {
            Ok(b) => return Ok(b),
            Err(e) => last = e,
        }
    }
    Err(last.into())
}

async fn read_whole(store: &dyn FragmentStore, at: &FragmentRef) -> Result<Bytes, TransferError> {
    use futures::StreamExt as _;
    let mut stream = store.get(at, 0..at.len).await?;
    let mut out = bytes::BytesMut::with_capacity(at.len as usize);
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.freeze())
}

/// Deletes the record `name` at each of `locations`; `true` if every one is gone.
pub async fn delete(store: &dyn FragmentStore, name: &str, locations: &[String]) -> bool {
    let deletes = locations.iter().map(|location| {
        let at = FragmentRef { location: location.clone(), name: name.to_string(), len: 0, tenant: None };
        async move { store.delete(&at).await.is_ok() }
    });
    futures::future::join_all(deletes).await.into_iter().all(|ok| ok)
}

#[cfg(test)]
mod tests {
    use offload::random::SystemRandom;

    use super::*;

    fn ledger(versions: &[(u8, u32)]) -> Ledger {
        let (offload, _) =
            offload::Offload::select(&offload::OffloadConfig::default(), &offload::probe()).expect("engines");
        let engine = offload.aead.as_ref();
        let keys: Vec<(DataKey, u32)> = versions.iter().map(|(b, v)| (DataKey::from_bytes([*b; 32]), *v)).collect();
        Ledger::new(engine, &keys, Arc::new(SystemRandom::new())).expect("ledger")
    }

    #[test]
    fn records_open_under_their_name_and_key_only() {
        let l = ledger(&[(1, 1)]);
        let name = l.name(Kind::Tombstone, "abc");
        assert_eq!(name, "t/abc.1");
        let sealed = l.seal(&name, &vec!["x".to_string()]).expect("seal");
        let back: Vec<String> = l.open(&name, &sealed).expect("open");
        assert_eq!(back, vec!["x".to_string()]);
        // Another name, another key, a flipped byte: refused.
        assert!(matches!(l.open::<Vec<String>>("t/abd.1", &sealed), Err(LedgerError::Open(_))));
        assert!(matches!(ledger(&[(2, 1)]).open::<Vec<String>>(&name, &sealed), Err(LedgerError::Open(_))));
        let mut bad = sealed.to_vec();
        bad[20] ^= 1;
        assert!(matches!(l.open::<Vec<String>>(&name, &bad), Err(LedgerError::Open(_))));
        // A newer key seals; both open.
        let both = ledger(&[(1, 1), (3, 2)]);
        assert_eq!(both.name(Kind::Manifest, "v"), "m/v.2");
        assert_eq!(both.open::<Vec<String>>(&name, &sealed).expect("old"), vec!["x".to_string()]);
    }

    #[test]
    fn names_and_quorums() {
        assert_eq!(parse_name("m/ab12.1"), Some((Kind::Manifest, "ab12", 1)));
        assert_eq!(parse_name("c/000123-ff.7"), Some((Kind::Catalog, "000123-ff", 7)));
        for bad in ["m/ab12", "x/ab.1", "ab/3", "m/.1", "m/a b.1", "m/ab.x"] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        // 4 of 6: three copies, so that with any two locations lost one remains.
        assert_eq!(quorum(6, 4), 3);
        assert_eq!(quorum(5, 4), 2);
        assert_eq!(quorum(4, 4), 1);
        assert_eq!(quorum(1, 1), 1);
        assert_eq!(quorum(0, 4), 1);
    }
}

//! Master key rotation by re-wrapping only: a new version joins the ring (appended
//! to the key file, in force at once for everything sealed from then on), a job
//! re-wraps every data key and seals every secret and record again under it, and
//! when a pass finds nothing left under an older version, the older versions leave
//! the ring and the key file. No fragment is rewritten: data keys change their
//! wrapping, never their value.
//!
//! | what | where | how |
//! |---|---|---|
//! | data keys | seals | unwrapped, wrapped again; replaced only if unchanged meanwhile |
//! | access key secrets | access_keys | opened, sealed again; likewise |
//! | location secrets | catalog_locations | opened, sealed again |
//! | cache tenant keys | the cache index | opened, sealed again, logged |
//! | manifests, tombstones | the locations | read, data keys re-wrapped, sealed under the new version's name, written where they were; the old ones left to the collector |
//! | the catalog | the locations | a new generation |
//!
//! A configured master key (configuration or environment) is the operator's to
//! change, so it is not rotated here. Replicas on one PostgreSQL store each need the
//! new ring before the rotation starts; this rotates one gateway's key file.

use codec::{CodecError, MasterKey, WrappedKey};
use offload::aead::{AeadEngine, DataKey};

use crate::keys::{KeyError, MASTER_KEY_FILE};
use crate::ledger::{self, Kind, LedgerError, ManifestRecord, PackRecord, TombstoneRecord};
use crate::meta::{MetaError, RecordRow};
use crate::state::Gateway;

/// The master key ring as the codec uses it.
pub fn master_ring(engine: &dyn AeadEngine, ring: &[(DataKey, u32)]) -> Result<MasterKey, CodecError> {
    let ((first, v1), rest) = ring.split_first().ok_or(CodecError::Unwrap { kek_version: 0 })?;
    let master = MasterKey::new(engine, first, *v1)?;
    for (key, version) in rest {
        master.add(engine, key, *version)?;
    }
    Ok(master)
}

/// A rotation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RekeyError {
    /// The master key comes from the configuration or the environment.
    #[error(
        "the master key is configured (master_key or SKYSHARD_MASTER_KEY): change it there; only a key file \
         (<data>/master.key) is rotated by the gateway"
    )]
    Configured,
    /// The key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Wrapping or sealing.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Records.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The metadata store.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Adds a new master key version to the key file and the ring; returns it.
pub fn begin(gw: &Gateway) -> Result<u32, RekeyError> {
    if gw.settings.master_key.is_some() {
        return Err(RekeyError::Configured);
    }
    let path = gw.settings.data_dir.join(MASTER_KEY_FILE);
    let mut ring = crate::keys::parse_ring(&crate::keys::read_private_file(&path)?)?;
    let version = ring.iter().map(|(_, v)| *v).max().unwrap_or(0).max(gw.master.version()) + 1;
    let key = DataKey::generate(gw.offload.random.as_ref()).map_err(CodecError::from)?;
    ring.push((key.clone(), version));
    crate::keys::write_ring(&path, &ring)?;
    gw.master.add(gw.offload.aead.as_ref(), &key, version)?;
    gw.pipeline.ledger.add(gw.offload.aead.as_ref(), &key, version)?;
    tracing::info!(version, "master key version added; re-wrapping under it");
    Ok(version)
}

fn kek_version(sealed: &[u8]) -> Option<u32> {
    MasterKey::sealed_version(sealed)
}

/// What a step did: items re-wrapped, and items still under an older version
/// (changed meanwhile, or failed: the next pass tries them again).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Re-wrapped or sealed again.
    pub done: u64,
    /// Left under an older version.
    pub left: u64,
}

/// Re-wraps the data keys of up to `limit` seals after `after`; returns the step
/// and the cursor for the next one (`None` at the end).
pub async fn rewrap_seals(gw: &Gateway, after: &str, limit: i64) -> Result<(Step, Option<String>), RekeyError> {
    let current = gw.master.version();
    // Seals and pack members (each member has a key of its own) in one order of
    // ids: the first `limit` of both pages, so that none below the cursor is missed.
    let mut page: Vec<(String, Vec<u8>, bool)> =
        gw.meta.wrapped_keys(after, limit).await?.into_iter().map(|(i, w)| (i, w, false)).collect();
    page.extend(gw.meta.member_keys(after, limit).await?.into_iter().map(|(i, w)| (i, w, true)));
    page.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let full = page.len() as i64 >= limit;
    page.truncate(usize::try_from(limit).unwrap_or(0));
    let mut step = Step::default();
    for (id, wrapped, member) in &page {
        if kek_version(wrapped) == Some(current) {
            continue;
        }
        let seal: crate::meta::SealId = id.parse()?;
        let old = WrappedKey::from_bytes(wrapped)?;
        let key = gw.master.unwrap_key(&old, &seal.codec())?;
        let new = gw.master.wrap(&key, &seal.codec(), gw.offload.random.as_ref())?;
        let done = match member {
            false => gw.meta.rewrap_seal(id, wrapped, &new.0).await?,
            true => gw.meta.rewrap_member(id, wrapped, &new.0).await?,
        };
        if done {
            step.done += 1;
        } else {
            step.left += 1;
        }
    }
    let next = full.then(|| page.last().map(|(id, ..)| id.clone())).flatten();
    Ok((step, next))
}

/// Seals access key secrets, location secrets and the cache's tenant keys again.
pub async fn reseal_secrets(gw: &Gateway) -> Result<Step, RekeyError> {
    let current = gw.master.version();
    let random = gw.offload.random.as_ref();
    let mut step = Step::default();
    for k in gw.meta.access_keys().await? {
        if kek_version(&k.secret_sealed) == Some(current) {
            continue;
        }
        let secret = gw.master.open_secret(&k.secret_sealed, k.id.as_bytes())?;
        let again = gw.master.seal_secret(&secret, k.id.as_bytes(), random)?;
        if gw.meta.reseal_access_key(&k.id, &k.secret_sealed, &again, i64::from(current)).await? {
            step.done += 1;
        } else {
            step.left += 1;
        }
    }
    for mut row in gw.meta.catalog(false).await? {
        if kek_version(&row.secret_sealed) == Some(current) {
            continue;
        }
        match gw.catalog.reseal_secret(&row.name, &row.secret_sealed, random) {
            Ok(again) => {
                row.secret_sealed = again;
                if gw.meta.put_catalog(false, &row, false).await? {
                    step.done += 1;
                }
            }
            Err(e) => {
                tracing::warn!(location = %row.name, error = %e, "location secret not sealed again");
                step.left += 1;
            }
        }
    }
    if let Some(cache) = &gw.cache {
        match cache.reseal_keys() {
            Ok(n) => step.done += n as u64,
            Err(e) => {
                tracing::warn!(error = %e, "cache tenant keys not sealed again");
                step.left += 1;
            }
        }
    }
    Ok(step)
}

/// Rewrites up to `limit` live records after `after` sealed under an older
/// version; returns the step and the cursor for the next one.
pub async fn rewrite_records(gw: &Gateway, after: &str, limit: i64) -> Result<(Step, Option<String>), RekeyError> {
    let current = gw.master.version();
    let page = gw.meta.live_records(after, limit).await?;
    let mut step = Step::default();
    let mut catalog_old = false;
    for (i, r) in page.iter().enumerate() {
        // A pack record once, however many rows it has.
        if i > 0 && page[i - 1].name == r.name {
            continue;
        }
        let Some((kind, id, version)) = ledger::parse_name(&r.name) else { continue };
        if version == current {
            continue;
        }
        if kind == Kind::Catalog {
            catalog_old = true;
            continue;
        }
        match rewrite_one(gw, r, kind, id).await {
            Ok(true) => step.done += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(record = %r.name, error = %e, "record not rewritten; the next pass tries again");
                step.left += 1;
            }
        }
    }
    if catalog_old {
        gw.publish_catalog_now().await?;
        step.done += 1;
    }
    let next = (page.len() as i64 == limit).then(|| page.last().map(|r| r.name.clone())).flatten();
    Ok((step, next))
}

/// A data key of a record (hex, wrapped with `id` bound) wrapped again.
fn rewrap_hex(gw: &Gateway, id: &str, hex: &str, record: &str) -> Result<String, RekeyError> {
    let id: crate::meta::SealId = id.parse()?;
    let wrapped = crate::ledger::records::key_of(hex)
        .ok_or_else(|| MetaError::Corrupt(format!("record {record}: a wrapped key")))?;
    let key = gw.master.unwrap_key(&WrappedKey::from_bytes(&wrapped)?, &id.codec())?;
    let again = gw.master.wrap(&key, &id.codec(), gw.offload.random.as_ref())?;
    Ok(crate::ledger::records::key_hex(&again.0))
}

/// Every key a manifest's part holds wrapped again: its seal's, its pack member's,
/// and those of where a compaction moved it from.
fn rewrap_part(gw: &Gateway, p: &mut crate::ledger::records::RecordPart, record: &str) -> Result<(), RekeyError> {
    p.seal.wrapped_key = rewrap_hex(gw, &p.seal.id, &p.seal.wrapped_key, record)?;
    if let Some(m) = &mut p.member {
        m.wrapped_key = rewrap_hex(gw, &m.id, &m.wrapped_key, record)?;
    }
    if let Some(before) = &mut p.previous {
        rewrap_part(gw, before, record)?;
    }
    Ok(())
}

/// One record read, sealed again under the current version and written where it
/// was; `false` if it was retired meanwhile.
async fn rewrite_one(gw: &Gateway, r: &RecordRow, kind: Kind, id: &str) -> Result<bool, RekeyError> {
    let ctx = &gw.pipeline;
    let store = ctx.locations.as_ref();
    let bytes = ledger::read(store, &r.name, r.size, &r.locations).await?;
    let name = ctx.ledger.name(kind, id);
    let (sealed, k) = match kind {
        Kind::Manifest => {
            let mut m: ManifestRecord = ctx.ledger.open(&r.name, &bytes)?;
            let mut k = 1;
            for p in &mut m.parts {
                rewrap_part(gw, p, &r.name)?;
                k = k.max(usize::from(p.seal.k));
            }
            (ctx.ledger.seal(&name, &m)?, k)
        }
        Kind::Pack => {
            let mut p: PackRecord = ctx.ledger.open(&r.name, &bytes)?;
            p.seal.wrapped_key = rewrap_hex(gw, &p.seal.id, &p.seal.wrapped_key, &r.name)?;
            for e in &mut p.members {
                e.member.wrapped_key = rewrap_hex(gw, &e.member.id, &e.member.wrapped_key, &r.name)?;
                if let Some(before) = &mut e.previous {
                    rewrap_part(gw, before, &r.name)?;
                }
            }
            // Written later than the record it replaces, so a recovery finding
            // both takes this one.
            p.written = p.written.max(crate::meta::now_ms());
            (ctx.ledger.seal(&name, &p)?, usize::from(p.seal.k))
        }
        _ => {
            let t: TombstoneRecord = ctx.ledger.open(&r.name, &bytes)?;
            (ctx.ledger.seal(&name, &t)?, 1)
        }
    };
    let sealed_len = sealed.len() as u64;
    let needed = ledger::quorum(r.locations.len(), k);
    let landed = ledger::write(store, &name, sealed, &r.locations, needed).await?;
    let new = RecordRow { name: name.clone(), locations: landed.clone(), size: sealed_len, ..r.clone() };
    if gw.meta.replace_record(&r.name, &new).await? {
        return Ok(true);
    }
    // Retired meanwhile (its object deleted or replaced): the copy goes too.
    ledger::delete(store, &name, &landed).await;
    Ok(false)
}

/// Retires every version older than the current one: from the ring, the ledger and
/// the key file. Called after a pass found nothing left under them.
pub fn finish(gw: &Gateway) -> Result<Vec<u32>, RekeyError> {
    let current = gw.master.version();
    let path = gw.settings.data_dir.join(MASTER_KEY_FILE);
    let ring = crate::keys::parse_ring(&crate::keys::read_private_file(&path)?)?;
    let (keep, old): (Vec<_>, Vec<_>) = ring.into_iter().partition(|(_, v)| *v == current);
    if keep.is_empty() {
        return Err(RekeyError::Key(KeyError::Format));
    }
    crate::keys::write_ring(&path, &keep)?;
    let retired: Vec<u32> = old.iter().map(|(_, v)| *v).collect();
    for v in &retired {
        gw.master.retire(*v);
        gw.pipeline.ledger.retire(*v);
    }
    tracing::info!(?retired, current, "master key rotation finished; older versions retired");
    Ok(retired)
}

impl From<offload::random::RandomError> for RekeyError {
    fn from(e: offload::random::RandomError) -> Self {
        RekeyError::Codec(CodecError::Random(e))
    }
}

//! The catalog record: tenants, buckets, access keys, admin token hashes, and the
//! locations and policies added at run time, written as a new generation whenever
//! they changed (after every change made through the APIs, and checked again
//! periodically, so that a write that failed is made up for).

use ring::digest::{SHA256, digest};

use super::{CatalogRecord, FORMAT, Kind, Ledger, LedgerError, quorum, write};
use crate::backend::FragmentStore;
use crate::meta::{MetaStore, RecordKind, RecordRow, now_ms};

/// Writes the catalog to `locations` (of which `k` are needed to read data) unless
/// the latest record holds it already (and it is sealed under the current key
/// version); `true` if a new generation was written.
pub async fn publish(
    ledger: &Ledger,
    meta: &MetaStore,
    store: &dyn FragmentStore,
    locations: &[String],
    k: usize,
) -> Result<bool, LedgerError> {
    let _one = ledger.publishing.lock().await;
    let snapshot = meta.catalog_snapshot().await?;
    let json = serde_json::to_vec(&snapshot).map_err(|e| LedgerError::Format("catalog".into(), e.to_string()))?;
    let digest: String = digest(&SHA256, &json).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let latest = meta.catalog_digest().await?;
    let current =
        latest.as_ref().is_some_and(|(name, _)| super::parse_name(name).is_some_and(|(_, _, v)| v == ledger.version()));
    if current && latest.as_ref().map(|(_, d)| d.as_str()) == Some(digest.as_str()) {
        return Ok(false);
    }
    let at = now_ms();
    let name = ledger.name(Kind::Catalog, &format!("{at:015}-{}", ledger.random_id()?));
    let sealed = ledger.seal(&name, &CatalogRecord { format: FORMAT, at, catalog: snapshot })?;
    let size = sealed.len() as u64;
    let landed = write(store, &name, sealed, locations, quorum(locations.len(), k)).await?;
    meta.put_catalog_record(&RecordRow {
        size,
        name,
        kind: RecordKind::Catalog,
        version_id: None,
        bucket: None,
        key: None,
        at,
        locations: landed,
        digest,
    })
    .await?;
    Ok(true)
}

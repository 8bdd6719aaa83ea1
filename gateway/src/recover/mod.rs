//! `skyshard recover`: the metadata store rebuilt from the locations and the master
//! key alone (see [`crate::ledger`] for what the locations hold).
//!
//! 1. Every location of the configuration is listed whole, through URLs the
//!    presigner signs: fragments by seal, records by name. A location that does not
//!    answer is passed over — any `k` of a seal's `n` suffice.
//! 2. The newest catalog record that opens gives tenants, buckets, access keys,
//!    admin token hashes and the locations and policies added at run time (which are
//!    then listed too).
//! 3. Every manifest and tombstone is read and opened. Per key, tombstones remove
//!    the manifests they cover (or the one version they name); of the `null`
//!    versions left (every version of a bucket never versioned) the latest wins,
//!    and every other version stays; the losers are superseded (their records and
//!    fragments left for the collector and the sweep).
//! 4. Each winning version is written back with its seals; each fragment as the
//!    listings found it (the newest copy of an index), as recorded where its
//!    location did not answer, and `missing` (for repair) where a location that
//!    answered does not have it. A version fewer than `k` of whose fragments can be
//!    had is reported lost and not written.
//!
//! Writing back only adds what the store lacks, so a run can be repeated or resumed
//! after a crash; a dry run does the same into a scratch database and reports. With
//! a backup (`skyshard admin backup`), its catalog and versions take the place of
//! the records; the locations are still listed for where the fragments are.

mod scan;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use offload::{Offload, probe};

use self::scan::Scan;
use crate::backend::http::PresignedStore;
use crate::backend::{LocationSigner, Presigner};
use crate::config::{Config, Settings};
use crate::ledger::{CatalogRecord, Kind, Ledger, ManifestRecord, PackRecord, TombstoneRecord};
use crate::meta::{Fragment, FragmentState, MetaStore, RecordKind, RecordRow, RestoredVersion};
use crate::server::ServeError;

/// What to recover, and how.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// The configuration file (locations, policies, database).
    pub config: PathBuf,
    /// Data directory override (where `master.key` is, and the SQLite store).
    pub data_dir: Option<PathBuf>,
    /// Database URL override.
    pub database_url: Option<String>,
    /// Only report what would be restored.
    pub dry_run: bool,
    /// Restore this backup (`skyshard admin backup`) instead of reading the
    /// records at the locations (which are still listed for the fragments).
    pub from_backup: Option<PathBuf>,
}

/// How far a recovery is: its phase, work done and work known.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// What a recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoverReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Locations listed whole.
    pub listed: Vec<String>,
    /// Locations that could not be listed, with why.
    pub unreachable: Vec<(String, String)>,
    /// The catalog record used.
    pub catalog: Option<String>,
    /// Tenants, buckets and access keys in it.
    pub tenants: usize,
    /// Buckets.
    pub buckets: usize,
    /// Access keys.
    pub access_keys: usize,
    /// Buckets found only in manifests (made again from them).
    pub buckets_from_manifests: usize,
    /// Manifests read.
    pub manifests: usize,
    /// Records that could not be read or opened, with why.
    pub unreadable: Vec<(String, String)>,
    /// Object versions restored now.
    pub restored: usize,
    /// Object versions the store had already (an earlier run).
    pub present: usize,
    /// Bytes of the versions restored or present.
    pub bytes: u64,
    /// Versions superseded by a later one of their key (conflicts resolved).
    pub superseded: usize,
    /// Versions removed by a tombstone.
    pub deleted: usize,
    /// Versions with fewer than `k` fragments found (kept only where locations that
    /// did not answer are recorded to hold enough).
    pub at_risk: usize,
    /// Versions that cannot be had (fewer than `k` fragments anywhere): not restored.
    pub lost: Vec<String>,
    /// Fragments listed that belong to no restored version (the sweep's).
    pub orphan_fragments: usize,
}

/// Why a recovery could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// Setting up (configuration, master key, database, locations).
    #[error(transparent)]
    Setup(#[from] ServeError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    /// No location could be listed.
    #[error("no location could be listed: {0}")]
    NoLocation(String),
    /// The locations hold records, and none opens under this master key.
    #[error(
        "none of the {0} records at the locations opens under this master key: it is not the key they were \
         sealed with (combine the right one from its shares: skyshard keys combine); nothing was written"
    )]
    WrongKey(usize),
}

/// Rebuilds the metadata store; see the module documentation.
pub async fn recover(opts: &RecoverOptions, progress: Progress<'_>) -> Result<RecoverReport, RecoverError> {
    crate::keys::private_umask();
    let config = Config::load(&opts.config).map_err(ServeError::from)?;
    let data_dir = opts.data_dir.clone().or(config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("skyshard-data"));
    let settings = Settings::from_config(config, None, Some(data_dir.clone()), opts.database_url.clone())
        .map_err(ServeError::from)?;
    let random = offload::random::SystemRandom::new();
    let (offload, _) = Offload::select(&settings.offload, &probe()).map_err(ServeError::from)?;
    let (ring, _) =
        crate::keys::master_key(settings.master_key.as_deref().map(|s| s.as_str()), &data_dir, &random, false)
            .map_err(ServeError::from)?;
    let master = Arc::new(crate::rekey::master_ring(offload.aead.as_ref(), &ring).map_err(ServeError::from)?);
    let ledger = Ledger::new(offload.aead.as_ref(), &ring, offload.random.clone()).map_err(ServeError::from)?;
    drop(ring);

    let database_url = if opts.dry_run {
        format!("sqlite://{}", tempdir()?.join("dry-run.db").display())
    } else {
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| ServeError::Io { what: format!("creating {}", data_dir.display()), source: e })?;
        settings.database_url.to_string()
    };
    let meta = MetaStore::connect(&database_url).await?;

    let transfer = crate::server::build_transfer(&settings, &offload.tls)?;
    let presigner: Arc<dyn Presigner> = Arc::new(LocationSigner::new(settings.locations.clone()));
    let store = PresignedStore::new(presigner.clone(), transfer.clone(), settings.pipeline.presign_ttl.0);

    let mut report = RecoverReport { dry_run: opts.dry_run, ..RecoverReport::default() };
    let mut scan = Scan::default();
    let listed = std::sync::atomic::AtomicU64::new(0);
    let count = |n: u64| {
        let done = listed.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        progress("listing locations", done, 0);
    };
    for name in settings.locations.keys() {
        scan.list(&store, name, &count).await;
    }
    if scan.listed.is_empty() {
        return Err(RecoverError::NoLocation(
            scan.unreachable.iter().map(|(l, e)| format!("{l}: {e}")).collect::<Vec<_>>().join("; "),
        ));
    }

    // A backup, when one is restored: its catalog and versions, not the records'.
    let backup = match &opts.from_backup {
        Some(file) => {
            let f = std::fs::File::open(file)
                .map_err(|e| ServeError::Io { what: format!("opening {}", file.display()), source: e })?;
            let (catalog, manifests) =
                crate::ledger::backup::read(&ledger, std::io::BufReader::new(f)).map_err(ServeError::from)?;
            report.tenants = catalog.tenants.len();
            report.buckets = catalog.buckets.len();
            report.access_keys = catalog.access_keys.len();
            meta.restore_catalog(&catalog).await?;
            report.catalog = Some(format!("backup {}", file.display()));
            Some(manifests)
        }
        None => None,
    };
    // The catalog: the newest record that opens.
    let mut catalogs = if backup.is_some() { Vec::new() } else { scan.names(Kind::Catalog) };
    catalogs.sort_by(|a, b| b.cmp(a));
    for name in catalogs {
        let (opened, bad) = scan::read_all::<CatalogRecord>(&store, &ledger, &scan, vec![name.clone()], &|_| ()).await;
        report.unreadable.extend(bad);
        if let Some((_, c)) = opened.into_iter().next() {
            report.tenants = c.catalog.tenants.len();
            report.buckets = c.catalog.buckets.len();
            report.access_keys = c.catalog.access_keys.len();
            meta.restore_catalog(&c.catalog).await?;
            report.catalog = Some(name);
            break;
        }
    }
    // Locations added through the API, now in the catalog: listed too.
    let catalog = crate::catalog::Catalog::new(&settings.locations, &settings.policies, master.clone());
    if let Ok(view) = catalog.reload(&meta).await {
        for (name, loc) in &view.locations {
            if !settings.locations.contains_key(name)
                && let Ok(config) = crate::tls::location_client_config(loc, &offload.tls)
            {
                transfer.set_location(name, config);
            }
        }
        presigner.set_locations(&view.locations);
        for name in view.locations.keys().filter(|n| !settings.locations.contains_key(*n)) {
            scan.list(&store, name, &count).await;
        }
    }
    report.listed = scan.listed.iter().cloned().collect();
    report.unreachable = scan.unreachable.iter().map(|(l, e)| (l.clone(), e.clone())).collect();

    // Manifests and tombstones (a backup's versions are its own, each named as its
    // manifest at the locations, if there is one).
    let (manifests, packs, tombstones) = match &backup {
        Some(_) => (Vec::new(), Vec::new(), Vec::new()),
        None => (scan.names(Kind::Manifest), scan.names(Kind::Pack), scan.names(Kind::Tombstone)),
    };
    let total = (manifests.len() + packs.len() + tombstones.len()) as u64;
    let read = std::sync::atomic::AtomicU64::new(0);
    let tick = |n: u64| {
        let done = read.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        progress("reading records", done, total);
    };
    let (manifests, bad) = scan::read_all::<ManifestRecord>(&store, &ledger, &scan, manifests, &tick).await;
    report.unreadable.extend(bad);
    let (packs, bad) = scan::read_all::<PackRecord>(&store, &ledger, &scan, packs, &tick).await;
    report.unreadable.extend(bad);
    let (mut manifests, stale) = preferred(manifests, packs);
    if let Some(versions) = backup {
        let named: HashMap<String, String> = scan
            .names(Kind::Manifest)
            .into_iter()
            .filter_map(|n| crate::ledger::parse_name(&n).map(|(_, id, _)| (id.to_string(), n.clone())))
            .collect();
        manifests = versions.into_iter().map(|m| (named.get(&m.version_id).cloned().unwrap_or_default(), m)).collect();
    }
    let (tombstones, bad) = scan::read_all::<TombstoneRecord>(&store, &ledger, &scan, tombstones, &tick).await;
    report.unreadable.extend(bad);
    report.manifests = manifests.len();
    if report.catalog.is_none() && manifests.is_empty() && !report.unreadable.is_empty() {
        return Err(RecoverError::WrongKey(report.unreadable.len()));
    }

    let resolved = resolve(manifests, &tombstones, &mut report);
    let total = resolved.winners.len() as u64;
    let mut used = std::collections::HashSet::new();
    for (done, (name, m)) in resolved.winners.iter().enumerate() {
        progress("restoring objects", done as u64, total);
        let Some(v) = restore_one(&scan, name, m, &mut report)? else { continue };
        used.extend(v.seals.iter().map(|s| s.id));
        if meta.bucket(&m.bucket).await?.is_none() {
            meta.restore_bucket(&m.bucket, &m.policy, &m.tenant, m.at).await?;
            report.buckets_from_manifests += 1;
        }
        report.bytes += m.size;
        if meta.restore_version(&v).await? {
            report.restored += 1;
        } else {
            report.present += 1;
        }
    }
    progress("restoring objects", total, total);
    // What the collector deletes in time: superseded manifests, and tombstones
    // (kept while a manifest they cover may still be at a location).
    let mut leftovers = Vec::new();
    for (name, m) in resolved.losers.iter().chain(&stale) {
        leftovers.push((record_row(&scan, name, RecordKind::Manifest, Some(m), m.at), true));
    }
    for (name, t) in &tombstones {
        let mut row = record_row(&scan, name, RecordKind::Tombstone, None, t.covers);
        row.bucket = Some(t.bucket.clone());
        row.key = crate::ledger::records::key_of(&t.key);
        leftovers.push((row, false));
    }
    meta.restore_records(&leftovers).await?;
    report.orphan_fragments =
        scan.fragments.iter().filter(|(seal, _)| !used.contains(*seal)).map(|(_, f)| f.len()).sum();
    meta.close().await;
    if opts.dry_run {
        let _ = std::fs::remove_dir_all(scratch_path());
    }
    Ok(report)
}

/// Where a dry run keeps its scratch database (private, like every store).
fn scratch_path() -> PathBuf {
    std::env::temp_dir().join(format!("skyshard-recover-{}", std::process::id()))
}

fn tempdir() -> Result<PathBuf, ServeError> {
    let dir = scratch_path();
    std::fs::create_dir_all(&dir)
        .map_err(|e| ServeError::Io { what: format!("creating {}", dir.display()), source: e })?;
    Ok(dir)
}

/// Each version's manifest, from records of its own and pack records: one of its
/// own wins (a pack record is never rewritten: a change of tags or lock moves the
/// manifest to one of its own), then the pack record written last (a compaction's,
/// a rotation's). Also returns the copies that lost, for the collector.
type Named = Vec<(String, ManifestRecord)>;
fn preferred(own: Named, packs: Vec<(String, PackRecord)>) -> (Named, Named) {
    let mut best: BTreeMap<String, (i64, String, ManifestRecord)> = BTreeMap::new();
    let mut stale = Vec::new();
    let all = own.into_iter().map(|(name, m)| (i64::MAX, name, m)).chain(
        packs.into_iter().flat_map(|(name, p)| p.manifests().into_iter().map(move |m| (p.written, name.clone(), m))),
    );
    for (rank, name, m) in all {
        match best.get(&m.version_id) {
            // A copy that loses to the one kept.
            Some((r, ..)) if *r >= rank => stale.push((name, m)),
            _ => {
                if let Some((_, n, old)) = best.insert(m.version_id.clone(), (rank, name, m)) {
                    stale.push((n, old));
                }
            }
        }
    }
    // Copies of a manifest of its own under two names (a rotation cut short) are
    // resolved as before: either one serves.
    stale.retain(|(name, _)| name.starts_with("p/"));
    (best.into_values().map(|(_, name, m)| (name, m)).collect(), stale)
}

/// Manifests sorted out per key.
struct Resolved {
    winners: Vec<(String, ManifestRecord)>,
    losers: Vec<(String, ManifestRecord)>,
}

fn resolve(
    manifests: Vec<(String, ManifestRecord)>,
    tombstones: &[(String, TombstoneRecord)],
    report: &mut RecoverReport,
) -> Resolved {
    // A tombstone of one version removes that version; one of a key, every
    // manifest of the key it covers.
    let mut covered: HashMap<(String, String), i64> = HashMap::new();
    let mut removed = std::collections::HashSet::new();
    for (_, t) in tombstones {
        if t.only_version {
            removed.insert(t.version_id.clone());
            continue;
        }
        let c = covered.entry((t.bucket.clone(), t.key.clone())).or_insert(i64::MIN);
        *c = (*c).max(t.covers);
    }
    // One manifest per version (a rotation may have left it under two names).
    let mut by_version: BTreeMap<String, (String, ManifestRecord)> = BTreeMap::new();
    for (name, m) in manifests {
        by_version.entry(m.version_id.clone()).or_insert((name, m));
    }
    let mut by_key: BTreeMap<(String, String), Vec<(String, ManifestRecord)>> = BTreeMap::new();
    let mut losers = Vec::new();
    for (_, (name, m)) in by_version {
        let key = (m.bucket.clone(), m.key.clone());
        if removed.contains(&m.version_id) || covered.get(&key).is_some_and(|c| m.at <= *c) {
            report.deleted += 1;
            losers.push((name, m));
        } else {
            by_key.entry(key).or_default().push((name, m));
        }
    }
    // Of a key's `null` versions the latest replaced the others; its other
    // versions (written while the bucket's versioning was enabled) all stay.
    let mut winners = Vec::new();
    for (_, versions) in by_key {
        let (mut nulls, kept): (Vec<_>, Vec<_>) = versions.into_iter().partition(|(_, m)| m.null_version);
        nulls.sort_by(|a, b| (a.1.at, &a.1.version_id).cmp(&(b.1.at, &b.1.version_id)));
        if let Some(w) = nulls.pop() {
            report.superseded += nulls.len();
            losers.extend(nulls);
            winners.push(w);
        }
        winners.extend(kept);
    }
    Resolved { winners, losers }
}

fn record_row(scan: &Scan, name: &str, kind: RecordKind, m: Option<&ManifestRecord>, at: i64) -> RecordRow {
    RecordRow {
        name: name.to_string(),
        kind,
        version_id: m.and_then(|m| m.version_id.parse().ok()),
        bucket: m.map(|m| m.bucket.clone()),
        key: m.and_then(|m| m.key_bytes()),
        at,
        locations: scan.records.get(name).map(|r| r.0.clone()).unwrap_or_default(),
        digest: String::new(),
        size: scan.records.get(name).map_or(0, |r| r.1),
    }
}

/// The rows of one winning version, its fragments as found; `None` (and reported
/// lost) if fewer than `k` of some part's fragments can be had.
fn restore_one(
    scan: &Scan,
    name: &str,
    m: &ManifestRecord,
    report: &mut RecoverReport,
) -> Result<Option<RestoredVersion>, RecoverError> {
    let corrupt = |why: String| crate::meta::MetaError::Corrupt(format!("manifest {name}: {why}"));
    let found = |id: &str| id.parse().ok().and_then(|s| scan.fragments.get(&s)).map_or(0, Vec::len);
    let m = &m.settled(found);
    let version = m.version().map_err(corrupt)?;
    let parts = m.part_rows().map_err(corrupt)?;
    let mut seals = Vec::with_capacity(m.parts.len());
    let mut at_risk = false;
    for p in &m.parts {
        let id = p.seal.id.parse().map_err(|_| corrupt("seal id".into()))?;
        let found = scan.fragments.get(&id).map(Vec::as_slice).unwrap_or_default();
        let size = found.first().map_or(p.seal.fragment_size, |f| f.size);
        let mut fragments: BTreeMap<u8, Fragment> = BTreeMap::new();
        // The newest copy of each index (a rebuilt one, when a repair made one).
        for f in found {
            let newer = fragments.get(&f.index).is_none_or(|have| f.name > have.name);
            if f.index < p.seal.n && newer {
                fragments.insert(
                    f.index,
                    Fragment {
                        index: f.index,
                        location: f.location.clone(),
                        name: f.name.clone(),
                        size: f.size,
                        state: FragmentState::Stored,
                        verified_at: 0,
                    },
                );
            }
        }
        let listed = fragments.len();
        for mut f in p.seal.recorded_fragments() {
            if fragments.contains_key(&f.index) {
                continue;
            }
            f.size = size;
            if scan.listed.contains(&f.location) {
                // Its location answered without it: lost, for repair to rebuild.
                f.state = FragmentState::Missing;
            }
            fragments.insert(f.index, f);
        }
        let k = usize::from(p.seal.k);
        let usable = fragments.values().filter(|f| f.state == FragmentState::Stored).count();
        if usable < k || size == 0 {
            report.lost.push(format!("{}/{}", m.bucket, String::from_utf8_lossy(&version.key)));
            return Ok(None);
        }
        at_risk |= listed < k;
        seals.push(p.seal.to_seal(fragments.into_values().collect()).map_err(corrupt)?);
    }
    if at_risk {
        report.at_risk += 1;
    }
    // Its manifest at the locations (a version from a backup may have none yet: the
    // backfill writes it).
    let record = scan.records.get(name).map(|(locations, size)| RecordRow {
        name: name.to_string(),
        kind: RecordKind::Manifest,
        version_id: Some(version.id),
        bucket: Some(version.bucket.clone()),
        key: Some(version.key.clone()),
        at: m.at,
        locations: locations.clone(),
        digest: String::new(),
        size: *size,
    });
    Ok(Some(RestoredVersion { version, parts, seals, record }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(key: &str, version: &str, at: i64) -> (String, ManifestRecord) {
        let m = ManifestRecord {
            format: 1,
            at,
            tenant: "default".into(),
            policy: "default".into(),
            bucket: "b".into(),
            key: crate::ledger::records::key_hex(key.as_bytes()),
            version_id: version.into(),
            size: 1,
            etag: "e".into(),
            last_modified: at,
            content_type: None,
            headers: BTreeMap::new(),
            user_metadata: BTreeMap::new(),
            checksum_algorithm: None,
            checksum_value: None,
            checksum_type: None,
            customer_key: None,
            parts: Vec::new(),
            null_version: true,
            delete_marker: false,
            lock_mode: None,
            retain_until: None,
            legal_hold: false,
            tags: BTreeMap::new(),
        };
        (format!("m/{version}.1"), m)
    }

    /// A pack record written at `written`, holding `versions` (with `tags` set to
    /// tell copies apart).
    fn pack(id: &str, written: i64, versions: &[&str], tag: &str) -> (String, PackRecord) {
        let seal = crate::ledger::RecordSeal {
            id: id.into(),
            size: 1,
            k: 1,
            n: 1,
            segment_size: 4096,
            compression: None,
            sealed_lens: None,
            wrapped_key: String::new(),
            created_at: 0,
            fragments: Vec::new(),
            fragment_size: 0,
            slots: versions.len() as u32,
        };
        let members = (0u32..)
            .zip(versions)
            .map(|(slot, v)| {
                let (_, mut manifest) = manifest("k", v, 5);
                manifest.tags.insert("from".into(), tag.into());
                let member = crate::ledger::records::RecordMember {
                    slot,
                    id: String::new(),
                    size: 1,
                    wrapped_key: String::new(),
                };
                crate::ledger::PackEntry { manifest, member, previous: None }
            })
            .collect();
        (format!("p/{id}.1"), PackRecord { format: 1, written, seal, members })
    }

    #[test]
    fn a_manifest_of_its_own_beats_a_pack_record_and_the_later_pack_record_the_earlier() {
        let (own_name, mut own) = manifest("k", "v1", 5);
        own.tags.insert("from".into(), "own".into());
        let packs = vec![pack("old", 10, &["v1", "v2", "v3"], "old"), pack("new", 20, &["v1", "v2"], "new")];
        let (winners, stale) = preferred(vec![(own_name.clone(), own)], packs);
        let from: BTreeMap<String, (String, String)> =
            winners.into_iter().map(|(n, m)| (m.version_id.clone(), (n, m.tags["from"].clone()))).collect();
        assert_eq!(from["v1"], (own_name, "own".to_string()), "a tag change moved it to one of its own");
        assert_eq!(from["v2"], ("p/new.1".to_string(), "new".to_string()), "a compaction's record is later");
        assert_eq!(from["v3"], ("p/old.1".to_string(), "old".to_string()), "held by the old record only");
        assert_eq!(from["v3"].1, "old");
        // Every copy that lost is left for the collector, as a row of its record.
        let mut lost: Vec<(String, String)> = stale.into_iter().map(|(n, m)| (n, m.version_id)).collect();
        lost.sort();
        let expect = [("p/new.1", "v1"), ("p/old.1", "v1"), ("p/old.1", "v2")];
        assert_eq!(lost, expect.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    /// A version written while its bucket's versioning was enabled.
    fn versioned(key: &str, version: &str, at: i64) -> (String, ManifestRecord) {
        let (name, m) = manifest(key, version, at);
        (name, ManifestRecord { null_version: false, ..m })
    }

    fn tombstone(key: &str, covers: i64) -> (String, TombstoneRecord) {
        let t = TombstoneRecord {
            format: 1,
            at: covers + 5,
            covers,
            bucket: "b".into(),
            key: crate::ledger::records::key_hex(key.as_bytes()),
            version_id: String::new(),
            only_version: false,
        };
        (format!("t/{key}{covers}.1"), t)
    }

    #[test]
    fn versions_stay_the_latest_null_replaces_the_others_and_a_version_tombstone_removes_one() {
        let mut report = RecoverReport::default();
        let manifests = vec![
            manifest("k", "n1", 10),
            versioned("k", "v2", 20),
            versioned("k", "v3", 30),
            // Suspended: a null version again, replacing n1 only.
            manifest("k", "n4", 40),
            versioned("k", "v5", 50),
        ];
        let (name, mut gone) = tombstone("k", 0);
        gone.only_version = true;
        gone.version_id = "v3".into();
        let r = resolve(manifests, &[(name, gone)], &mut report);
        let mut won: Vec<&str> = r.winners.iter().map(|(_, m)| m.version_id.as_str()).collect();
        won.sort_unstable();
        assert_eq!(won, ["n4", "v2", "v5"]);
        assert_eq!((report.superseded, report.deleted), (1, 1));
    }

    #[test]
    fn the_latest_manifest_wins_and_tombstones_remove_what_they_cover_only() {
        let mut report = RecoverReport::default();
        let manifests = vec![
            manifest("over", "v1", 10),
            manifest("over", "v2", 20),
            manifest("gone", "v3", 10),
            manifest("back", "v4", 10),
            manifest("back", "v5", 30),
            // The same version under two key versions (a rotation): counted once.
            ("m/v5.2".into(), manifest("back", "v5", 30).1),
        ];
        let tombstones = vec![tombstone("gone", 10), tombstone("back", 10)];
        let r = resolve(manifests, &tombstones, &mut report);
        let mut won: Vec<&str> = r.winners.iter().map(|(_, m)| m.version_id.as_str()).collect();
        won.sort_unstable();
        assert_eq!(won, ["v2", "v5"], "a write after a delete survives it");
        assert_eq!((report.superseded, report.deleted), (1, 2));
        assert_eq!(r.losers.len(), 3);
    }
}

//! What the locations hold: every location listed whole (fragments by seal,
//! records by name), and records read and opened, many at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::backend::FragmentStore;
use crate::durability::sweep::fragment_name;
use crate::ledger::{self, Ledger};
use crate::meta::SealId;

/// A listing page that takes longer than this counts as the location not answering.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Records read at once.
const READS_IN_FLIGHT: usize = 32;

/// A fragment found at a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    /// Its index.
    pub(super) index: u8,
    /// The location.
    pub(super) location: String,
    /// Its name there.
    pub(super) name: String,
    /// Bytes.
    pub(super) size: u64,
    /// Last modified (Unix ms).
    pub(super) modified: i64,
}

/// Everything the listings showed.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Locations listed whole.
    pub(super) listed: BTreeSet<String>,
    /// Locations that could not be listed, with why.
    pub(super) unreachable: BTreeMap<String, String>,
    /// Fragments by seal.
    pub(super) fragments: HashMap<SealId, Vec<Found>>,
    /// Records by name: where each is, and its size.
    pub(super) records: BTreeMap<String, (Vec<String>, u64)>,
    /// Objects listed.
    pub(super) objects: u64,
}

impl Scan {
    /// Lists `location` whole into the scan (a location that fails is unreachable).
    pub(super) async fn list(&mut self, store: &dyn FragmentStore, location: &str, progress: &dyn Fn(u64)) {
        let mut after: Option<String> = None;
        let mut found = Vec::new();
        loop {
            let page = match tokio::time::timeout(PAGE_TIMEOUT, store.list(location, after.as_deref())).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    self.unreachable.insert(location.to_string(), e.to_string());
                    return;
                }
                Err(_) => {
                    self.unreachable.insert(location.to_string(), "no answer to a listing in 30 s".into());
                    return;
                }
            };
            progress(page.objects.len() as u64);
            found.extend(page.objects);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.listed.insert(location.to_string());
        for o in found {
            self.objects += 1;
            if fragment_name(&o.name) {
                let Some((seal, rest)) = o.name.split_once('/') else { continue };
                let index = rest.split('.').next().and_then(|i| i.parse::<u8>().ok());
                if let (Ok(seal), Some(index)) = (seal.parse::<SealId>(), index) {
                    self.fragments.entry(seal).or_default().push(Found {
                        index,
                        location: location.to_string(),
                        name: o.name,
                        size: o.size,
                        modified: o.modified,
                    });
                }
            } else if ledger::parse_name(&o.name).is_some() {
                let entry = self.records.entry(o.name).or_insert_with(|| (Vec::new(), o.size));
                entry.0.push(location.to_string());
            }
        }
    }

    /// Names of the records of `kind`.
    pub(super) fn names(&self, kind: ledger::Kind) -> Vec<String> {
        self.records.keys().filter(|n| ledger::parse_name(n).is_some_and(|(k, ..)| k == kind)).cloned().collect()
    }
}

/// Reads and opens the records `names`, many at once. Returns those that opened
/// (with their name) and those that did not, with why.
pub(super) async fn read_all<T: DeserializeOwned + Send + 'static>(
    store: &dyn FragmentStore,
    ledger: &Ledger,
    scan: &Scan,
    names: Vec<String>,
    progress: &(dyn Fn(u64) + Sync),
) -> (Vec<(String, T)>, Vec<(String, String)>) {
    let reads = futures::stream::iter(names)
        .map(|name| async move {
            let Some((holders, size)) = scan.records.get(&name) else {
                return (name, Err("not listed".to_string()));
            };
            let opened = match ledger::read(store, &name, *size, holders).await {
                Ok(bytes) => ledger.open::<T>(&name, &bytes).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            progress(1);
            (name, opened)
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (name, r) in reads {
        match r {
            Ok(v) => ok.push((name, v)),
            Err(e) => bad.push((name, e)),
        }
    }
    (ok, bad)
}

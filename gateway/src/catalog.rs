//! The catalog: locations and placement policies in force, and the state of each
//! location. Those of the configuration file are fixed for the life of the process;
//! operators add more through the admin API, which keeps them in the metadata store
//! (a location's secret sealed under the master key) so that every replica sharing
//! the store sees them. Each replica re-reads the store's part every few seconds.
//!
//! A location is `active` (gets new fragments), `draining` (a drain job is moving
//! its fragments away; it gets no new ones), `drained` (holds nothing the gateway
//! knows of) or `removed`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use codec::MasterKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{
    CompressionChoice, ConfigError, Location, LocationConfig, LocationKind, Policy, PolicyConfig, Size, Tier,
};
pub use crate::meta::LocationState;
use crate::meta::{CatalogRow, MetaError, MetaStore};

/// Where a catalog entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The configuration file: change it there.
    Config,
    /// The admin API.
    Api,
}

/// A location as the admin API takes it. The secret is write-only: it is sealed
/// under the master key and never returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationSpec {
    /// Unique name (letters, digits, `-`, `_`); fragments record it.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub name: String,
    /// `s3`, `swift` or `edge`.
    #[schema(value_type = String, pattern = "^(s3|swift|edge)$")]
    pub kind: LocationKind,
    /// Base URL (`https://host:port`; for Swift the account URL `…/v1/AUTH_…`).
    pub endpoint: String,
    /// `cloud` or `edge` (default: `edge` for edge stores, `cloud` otherwise).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(cloud|edge)$")]
    pub tier: Option<Tier>,
    /// A region tag.
    #[serde(default)]
    pub region: Option<String>,
    /// Who runs it (policies may limit the fragments of an object per provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub provider: Option<String>,
    /// Whose law it is under (policies may limit or require fragments per
    /// jurisdiction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub jurisdiction: Option<String>,
    /// Prefix of fragment names at the location (default `skyshard`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// S3: the bucket holding fragments.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Swift: the container holding fragments.
    #[serde(default)]
    pub container: Option<String>,
    /// S3: the access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// S3: the region of signatures (default `us-east-1`).
    #[serde(default)]
    pub signing_region: Option<String>,
    /// CA certificates (PEM file on the gateway's host) trusted for its endpoint.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The S3 secret key, Swift TempURL key or edge secret (write-only).
    #[serde(default, skip_serializing)]
    #[schema(write_only, min_length = 8)]
    pub secret: Option<String>,
}

impl LocationSpec {
    /// The location this describes, checked like one of the configuration file.
    pub fn check(&self) -> Result<Location, ConfigError> {
        let secret = self.secret.clone();
        let (mut s3, mut swift, mut edge) = (None, None, None);
        match self.kind {
            LocationKind::S3 => s3 = secret,
            LocationKind::Swift => swift = secret,
            LocationKind::Edge => edge = secret,
        }
        crate::config::check_location(LocationConfig {
            name: self.name.clone(),
            kind: self.kind,
            endpoint: self.endpoint.clone(),
            tier: self.tier,
            region: self.region.clone(),
            provider: self.provider.clone(),
            jurisdiction: self.jurisdiction.clone(),
            weight: 1,
            prefix: self.prefix.clone().unwrap_or_else(|| "skyshard".into()),
            bucket: self.bucket.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: s3,
            secret_access_key_file: None,
            signing_region: self.signing_region.clone(),
            container: self.container.clone(),
            temp_url_key: swift,
            temp_url_key_file: None,
            secret: edge,
            secret_file: None,
            ca_file: self.ca_file.clone().map(Into::into),
        })
    }

    /// The spec of a location in force (without its secret).
    pub fn of(l: &Location) -> Self {
        let s3 = l.kind == LocationKind::S3;
        Self {
            name: l.name.clone(),
            kind: l.kind,
            endpoint: l.endpoint.to_string(),
            tier: Some(l.tier),
            region: l.region.clone(),
            provider: l.provider.clone(),
            jurisdiction: l.jurisdiction.clone(),
            prefix: Some(l.prefix.clone()),
            bucket: s3.then(|| l.container.clone()),
            container: (l.kind == LocationKind::Swift).then(|| l.container.clone()),
            access_key_id: s3.then(|| l.access_key_id.clone()),
            signing_region: s3.then(|| l.signing_region.clone()),
            ca_file: l.ca_file.as_ref().map(|p| p.display().to_string()),
            secret: None,
        }
    }
}

/// A placement policy as the admin API takes and shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Fragments needed to read (at most `n`).
    #[schema(minimum = 1, maximum = 254)]
    pub k: u8,
    /// Fragments written, one per location.
    #[schema(minimum = 1, maximum = 254)]
    pub n: u8,
    /// Locations it may use (empty: every active location, added ones included).
    #[serde(default)]
    pub locations: Vec<String>,
    /// Fragments that must go to cloud locations.
    #[serde(default)]
    pub min_cloud: u8,
    /// Fragments that must go to edge locations.
    #[serde(default)]
    pub min_edge: u8,
    /// Plaintext bytes per segment (default 4 MiB).
    #[serde(default)]
    #[schema(minimum = 4096, maximum = 67108864)]
    pub segment_size: Option<u64>,
    /// `none`, `zstd` or `lz4`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(none|zstd|lz4)$")]
    pub compression: Option<CompressionChoice>,
    /// Fragments that must land before a write is acknowledged (default `k + 1`).
    #[serde(default)]
    pub write_quorum: Option<u8>,
    /// Objects up to this many bytes written close in time are coded together as
    /// one pack (default 64 KiB or the segment size if smaller; 0: never).
    #[serde(default)]
    #[schema(maximum = 1048576)]
    pub pack_threshold: Option<u64>,
    /// At most this many fragments of an object with any one provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_per_provider: Option<u8>,
    /// At most this many fragments of an object in any one jurisdiction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_per_jurisdiction: Option<u8>,
    /// At least so many fragments of each object in each jurisdiction named.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_per_jurisdiction: BTreeMap<String, u8>,
}

impl PolicySpec {
    /// The policy `name` this describes, checked against `locations`.
    pub fn check(&self, name: &str, locations: &BTreeMap<String, Location>) -> Result<Policy, ConfigError> {
        let config = PolicyConfig {
            k: self.k,
            n: self.n,
            locations: self.locations.clone(),
            min_cloud: self.min_cloud,
            min_edge: self.min_edge,
            segment_size: self.segment_size.map_or(PolicyConfig::default().segment_size, Size),
            compression: self.compression.unwrap_or_default(),
            write_quorum: self.write_quorum,
            pack_threshold: self.pack_threshold.map(Size),
            max_per_provider: self.max_per_provider,
            max_per_jurisdiction: self.max_per_jurisdiction,
            min_per_jurisdiction: self.min_per_jurisdiction.clone(),
        };
        crate::config::check_policy(name, config, locations)
    }

    /// The spec of a policy in force.
    pub fn of(p: &Policy) -> Self {
        Self {
            k: p.params.k(),
            n: p.params.n(),
            locations: if p.all_locations { Vec::new() } else { p.locations.clone() },
            min_cloud: p.min_cloud,
            min_edge: p.min_edge,
            segment_size: Some(u64::from(p.params.segment_size())),
            compression: Some(match p.compression {
                None => CompressionChoice::None,
                Some(offload::compress::Algorithm::Zstd) => CompressionChoice::Zstd,
                Some(offload::compress::Algorithm::Lz4) => CompressionChoice::Lz4,
            }),
            write_quorum: Some(p.write_quorum),
            pack_threshold: Some(p.pack_threshold),
            max_per_provider: p.constraints.max_per_provider,
            max_per_jurisdiction: p.constraints.max_per_jurisdiction,
            min_per_jurisdiction: p.constraints.min_per_jurisdiction.clone(),
        }
    }
}

/// The catalog at one moment.
#[derive(Debug, Clone, Default)]
pub struct CatalogView {
    /// Every location, by name.
    pub locations: BTreeMap<String, Location>,
    /// Where each location comes from.
    pub location_origins: BTreeMap<String, Origin>,
    /// Recorded states (a location without one is active).
    pub states: BTreeMap<String, LocationState>,
    /// Every policy, by name.
    pub policies: BTreeMap<String, Policy>,
    /// Where each policy comes from.
    pub policy_origins: BTreeMap<String, Origin>,
    /// API entries that no longer check (a location they name is gone), with why.
    pub invalid: Vec<String>,
}

impl CatalogView {
    /// A location's state.
    pub fn state(&self, location: &str) -> LocationState {
        self.states.get(location).copied().unwrap_or_default()
    }

    /// `policy` restricted to the locations that take new fragments now (for a
    /// policy over all locations: every active one, added ones included).
    pub fn writable(&self, policy: &Policy) -> Policy {
        let mut p = policy.clone();
        if p.all_locations {
            p.locations = self.locations.keys().cloned().collect();
        }
        p.locations.retain(|l| self.state(l) == LocationState::Active && self.locations.contains_key(l));
        p
    }
}

/// Why the catalog could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A stored entry cannot be read (corrupt, or sealed under another master key).
    #[error("catalog entry {name}: {reason}")]
    Corrupt {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The catalog in force, shared by the data path and the admin API.
pub struct Catalog {
    view: RwLock<Arc<CatalogView>>,
    config: CatalogView,
    master: Arc<MasterKey>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

/// The additional data a location's sealed secret is bound to.
fn secret_context(name: &str) -> Vec<u8> {
    format!("skyshard location secret\0{name}").into_bytes()
}

impl Catalog {
    /// The catalog of the configuration file's `locations` and `policies` (API
    /// entries come with [`Self::reload`]).
    pub fn new(
        locations: &BTreeMap<String, Location>,
        policies: &BTreeMap<String, Policy>,
        master: Arc<MasterKey>,
    ) -> Self {
        let config = CatalogView {
            locations: locations.clone(),
            location_origins: locations.keys().map(|l| (l.clone(), Origin::Config)).collect(),
            states: BTreeMap::new(),
            policies: policies.clone(),
            policy_origins: policies.keys().map(|p| (p.clone(), Origin::Config)).collect(),
            invalid: Vec::new(),
        };
        Self { view: RwLock::new(Arc::new(config.clone())), config, master }
    }

    /// The catalog now.
    pub fn view(&self) -> Arc<CatalogView> {
        self.view.read().map(|v| v.clone()).unwrap_or_default()
    }

    /// Seals a location's secret for the store.
    pub fn seal_secret(
        &self,
        name: &str,
        secret: &str,
        random: &dyn offload::random::SecureRandom,
    ) -> Result<Vec<u8>, CatalogError> {
        self.master
            .seal_secret(secret.as_bytes(), &secret_context(name), random)
            .map_err(|e| CatalogError::Corrupt { name: name.into(), reason: e.to_string() })
    }

    /// A location's sealed secret sealed again under the master key's current
    /// version (a rotation).
    pub fn reseal_secret(
        &self,
        name: &str,
        sealed: &[u8],
        random: &dyn offload::random::SecureRandom,
    ) -> Result<Vec<u8>, CatalogError> {
        let corrupt = |e: codec::CodecError| CatalogError::Corrupt { name: name.into(), reason: e.to_string() };
        let secret = self.master.open_secret(sealed, &secret_context(name)).map_err(corrupt)?;
        self.master.seal_secret(&secret, &secret_context(name), random).map_err(corrupt)
    }

    /// Re-reads the API's entries and location states from `meta`. Entries that no
    /// longer check are left out and listed in [`CatalogView::invalid`].
    pub async fn reload(&self, meta: &MetaStore) -> Result<Arc<CatalogView>, CatalogError> {
        let mut view = self.config.clone();
        for row in meta.catalog(false).await? {
            match self.open_location(&row) {
                Ok(loc) if !view.locations.contains_key(&row.name) => {
                    view.location_origins.insert(row.name.clone(), Origin::Api);
                    view.locations.insert(row.name.clone(), loc);
                }
                Ok(_) => view.invalid.push(format!("location {}: also defined in the configuration", row.name)),
                Err(e) => view.invalid.push(e.to_string()),
            }
        }
        for row in meta.catalog(true).await? {
            let checked = serde_json::from_str::<PolicySpec>(&row.definition)
                .map_err(|e| e.to_string())
                .and_then(|spec| spec.check(&row.name, &view.locations).map_err(|e| e.to_string()));
            match checked {
                Ok(p) if !view.policies.contains_key(&row.name) => {
                    view.policy_origins.insert(row.name.clone(), Origin::Api);
                    view.policies.insert(row.name.clone(), p);
                }
                Ok(_) => view.invalid.push(format!("policy {}: also defined in the configuration", row.name)),
                Err(e) => view.invalid.push(format!("policy {}: {e}", row.name)),
            }
        }
        view.states.extend(meta.location_states().await?);
        let view = Arc::new(view);
        if let Ok(mut v) = self.view.write() {
            *v = view.clone();
        }
        Ok(view)
    }

    fn open_location(&self, row: &CatalogRow) -> Result<Location, CatalogError> {
        let corrupt = |reason: String| CatalogError::Corrupt { name: row.name.clone(), reason };
        let mut spec: LocationSpec = serde_json::from_str(&row.definition).map_err(|e| corrupt(e.to_string()))?;
        let secret = self
            .master
            .open_secret(&row.secret_sealed, &secret_context(&row.name))
            .map_err(|e| corrupt(format!("secret: {e}")))?;
        spec.secret = Some(String::from_utf8_lossy(&secret).into_owned());
        spec.check().map_err(|e| corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge_spec(name: &str) -> LocationSpec {
        LocationSpec {
            name: name.into(),
            kind: LocationKind::Edge,
            endpoint: "https://127.0.0.1:7000".into(),
            tier: None,
            region: None,
            provider: None,
            jurisdiction: None,
            prefix: None,
            bucket: None,
            container: None,
            access_key_id: None,
            signing_region: None,
            ca_file: None,
            secret: Some("an-edge-secret".into()),
        }
    }

    #[test]
    fn specs_check_like_the_configuration_and_never_show_the_secret() {
        let loc = edge_spec("e1").check().expect("valid");
        assert_eq!(loc.tier, Tier::Edge);
        let shown = serde_json::to_string(&LocationSpec::of(&loc)).expect("json");
        assert!(!shown.contains("an-edge-secret"), "{shown}");
        let mut short = edge_spec("e2");
        short.secret = Some("short".into());
        assert!(short.check().is_err());
        let mut bad = edge_spec("bad name");
        bad.secret = Some("long-enough".into());
        assert!(bad.check().is_err());
    }

    #[test]
    fn writable_policies_leave_out_locations_not_active() {
        let locations: BTreeMap<String, Location> =
            ["a", "b", "c"].iter().map(|n| (n.to_string(), edge_spec(n).check().expect("valid"))).collect();
        let spec = PolicySpec {
            k: 2,
            n: 3,
            locations: Vec::new(),
            min_cloud: 0,
            min_edge: 0,
            segment_size: None,
            compression: None,
            write_quorum: None,
            pack_threshold: None,
            max_per_provider: None,
            max_per_jurisdiction: None,
            min_per_jurisdiction: BTreeMap::new(),
        };
        let policy = spec.check("p", &locations).expect("valid");
        let mut view = CatalogView { locations, ..CatalogView::default() };
        view.states.insert("b".into(), LocationState::Draining);
        assert_eq!(view.writable(&policy).locations, ["a", "c"]);
        assert_eq!(PolicySpec::of(&policy).write_quorum, Some(3));
    }
}

//! Settings: the configuration checked once — locations with their secrets
//! resolved, policies checked against the locations — and the checks the admin API
//! applies to what it is given at run time.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codec::CodingParams;
use offload::OffloadConfig;
use offload::compress::Algorithm;
use zeroize::Zeroizing;

use super::*;

/// Reads a secret from (in order of precedence) an environment variable, a file, or
/// an inline value.
pub fn resolve_secret(
    inline: Option<&str>,
    file: Option<&Path>,
    env: &str,
) -> Result<Option<Zeroizing<String>>, ConfigError> {
    if let Ok(v) = std::env::var(env)
        && !v.is_empty()
    {
        return Ok(Some(Zeroizing::new(v)));
    }
    if let Some(path) = file {
        crate::keys::refuse_public(path).map_err(|e| invalid(e.to_string()))?;
        let v =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        return Ok(Some(Zeroizing::new(v.trim().to_string())));
    }
    Ok(inline.map(|s| Zeroizing::new(s.to_string())))
}

/// The environment variable holding a location's secret.
pub fn location_secret_env(name: &str) -> String {
    let upper: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("SKYSHARD_LOCATION_{upper}_SECRET")
}

/// A location ready to use.
#[derive(Clone)]
pub struct Location {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: LocationKind,
    /// Base URL.
    pub endpoint: url::Url,
    /// Tier.
    pub tier: Tier,
    /// Region tag.
    pub region: Option<String>,
    /// Who runs it.
    pub provider: Option<String>,
    /// Whose law it is under.
    pub jurisdiction: Option<String>,
    /// Fragment name prefix.
    pub prefix: String,
    /// Bucket (S3) or container (Swift); unused for edge.
    pub container: String,
    /// Access key id (S3).
    pub access_key_id: String,
    /// The signing secret: S3 secret key, Swift TempURL key or edge secret.
    pub secret: Zeroizing<String>,
    /// SigV4 region (S3).
    pub signing_region: String,
    /// Extra CA certificates for its `https` endpoint.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint.as_str())
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

/// Objects packed by default: up to 64 KiB.
pub const DEFAULT_PACK_THRESHOLD: u64 = 64 * 1024;

/// The largest `pack_threshold` a policy may set (a pack is built in memory).
pub const MAX_PACK_THRESHOLD: u64 = 1024 * 1024;

/// A policy ready to use.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name.
    pub name: String,
    /// `k`, `n`, segment size.
    pub params: CodingParams,
    /// Locations it may use, in configuration order.
    pub locations: Vec<String>,
    /// Whether it was given no list: it then uses every active location, including
    /// those added later through the admin API.
    pub all_locations: bool,
    /// Fragments required on cloud locations.
    pub min_cloud: u8,
    /// Fragments required on edge locations.
    pub min_edge: u8,
    /// Compression, if any.
    pub compression: Option<Algorithm>,
    /// Fragments that must land before a write succeeds.
    pub write_quorum: u8,
    /// Objects up to this many bytes are packed (0: none).
    pub pack_threshold: u64,
    /// Where its fragments may be, by the locations' provider and jurisdiction.
    pub constraints: super::Constraints,
}

/// Validated settings the gateway runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// S3 endpoint address.
    pub listen: SocketAddr,
    /// Admin endpoint address.
    pub admin_listen: SocketAddr,
    /// State directory.
    pub data_dir: PathBuf,
    /// Metadata database URL.
    pub database_url: Zeroizing<String>,
    /// Reported region.
    pub region: String,
    /// Virtual-host domains.
    pub domains: Vec<String>,
    /// ETag algorithm.
    pub etag: EtagAlgorithm,
    /// Master key, if configured (else the data directory's key file is used).
    pub master_key: Option<Zeroizing<String>>,
    /// Admin token, if configured.
    pub admin_token: Option<Zeroizing<String>>,
    /// First access key id, if configured.
    pub access_key_id: Option<String>,
    /// First secret, if configured.
    pub secret_access_key: Option<Zeroizing<String>>,
    /// TLS of the S3 endpoint.
    pub tls: TlsConfig,
    /// Offload engine choices.
    pub offload: OffloadConfig,
    /// Locations by name.
    pub locations: BTreeMap<String, Location>,
    /// Policies by name.
    pub policies: BTreeMap<String, Policy>,
    /// Name of the default policy.
    pub default_policy: String,
    /// Bucket → policy for new buckets.
    pub bucket_policies: BTreeMap<String, String>,
    /// Pipeline tuning.
    pub pipeline: PipelineConfig,
    /// Repair, scrub, sweep.
    pub durability: DurabilityConfig,
    /// Connection, request and transfer limits.
    pub limits: LimitsConfig,
    /// The fragment cache.
    pub cache: CacheConfig,
    /// Edge stores to run in this process.
    pub run_edges: Vec<RunEdge>,
}

impl Settings {
    /// Checks a configuration; `listen` and `data_dir` given on the command line
    /// override the file.
    pub fn from_config(
        config: Config,
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
    ) -> Result<Self, ConfigError> {
        let data_dir = data_dir.or(config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("skyshard-data"));
        let listen = listen.or(config.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)));
        let admin_listen = config.admin_listen.unwrap_or_else(|| default_admin_listen(listen));
        let database_url = match database_url {
            Some(u) => Zeroizing::new(u),
            None => match resolve_secret(
                config.database_url.as_deref(),
                config.database_url_file.as_deref(),
                "SKYSHARD_DATABASE_URL",
            )? {
                Some(u) => u,
                None => Zeroizing::new(format!("sqlite://{}", data_dir.join("meta.db").display())),
            },
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres:")
            || database_url.starts_with("postgresql:"))
        {
            return Err(invalid("database_url must start with sqlite:// or postgres://"));
        }
        let master_key =
            resolve_secret(config.master_key.as_deref(), config.master_key_file.as_deref(), "SKYSHARD_MASTER_KEY")?;
        let admin_token =
            resolve_secret(config.admin_token.as_deref(), config.admin_token_file.as_deref(), "SKYSHARD_ADMIN_TOKEN")?;
        let access_key_id =
            std::env::var("SKYSHARD_ACCESS_KEY_ID").ok().filter(|s| !s.is_empty()).or(config.access_key_id);
        let secret_access_key = resolve_secret(
            config.secret_access_key.as_deref(),
            config.secret_access_key_file.as_deref(),
            "SKYSHARD_SECRET_ACCESS_KEY",
        )?;
        if access_key_id.is_some() != secret_access_key.is_some() {
            return Err(invalid("access_key_id and secret_access_key go together"));
        }
        if let (Some(id), Some(secret)) = (&access_key_id, &secret_access_key) {
            check_credentials(id, secret)?;
        }

        let mut locations = BTreeMap::new();
        for l in config.locations {
            let loc = check_location(l)?;
            if locations.insert(loc.name.clone(), loc).is_some() {
                return Err(invalid("two locations have the same name"));
            }
        }
        let mut policies = BTreeMap::new();
        let mut policy_configs = config.policies;
        if !policy_configs.contains_key("default") {
            policy_configs.insert("default".into(), PolicyConfig::default());
        }
        for (name, p) in policy_configs {
            let policy = check_policy(&name, p, &locations)?;
            policies.insert(name, policy);
        }
        for (bucket, policy) in &config.bucket_policies {
            if !policies.contains_key(policy) {
                return Err(invalid(format!("bucket {bucket:?} names unknown policy {policy:?}")));
            }
        }
        for e in &config.run_edges {
            match locations.get(&e.name) {
                Some(l) if l.kind == LocationKind::Edge => {}
                _ => return Err(invalid(format!("run_edges: {:?} is not an edge location", e.name))),
            }
        }
        if config.tls.cert_file.is_some() != config.tls.key_file.is_some() {
            return Err(invalid("tls.cert_file and tls.key_file go together"));
        }
        if config.tls.plain_http && config.tls.cert_file.is_some() {
            return Err(invalid("tls.plain_http and tls.cert_file contradict each other"));
        }
        let d = &config.durability;
        if d.repair_concurrency == 0 {
            return Err(invalid("durability.repair_concurrency must be at least 1"));
        }
        if [d.repair_interval, d.watch_interval, d.repair_backoff].iter().any(|i| i.0 < Duration::from_millis(100)) {
            return Err(invalid(
                "durability.repair_interval, watch_interval and repair_backoff must be at least 100ms",
            ));
        }
        let p = &config.pipeline;
        if p.depth == 0 || p.max_transfers == 0 {
            return Err(invalid("pipeline.depth and pipeline.max_transfers must be at least 1"));
        }
        if !(p.hedge_share.is_finite() && p.hedge_share >= 0.0) {
            return Err(invalid("pipeline.hedge_share must be a share of at least 0 (0.5: half as many bytes again)"));
        }
        if p.presign_ttl.0 < Duration::from_secs(10) || p.presign_ttl.0 > Duration::from_secs(7 * 24 * 3600) {
            return Err(invalid("pipeline.presign_ttl must be between 10s and 7 days"));
        }
        config.limits.check().map_err(|e| invalid(&e))?;
        if admin_listen == listen && listen.port() != 0 {
            return Err(invalid("admin_listen must differ from listen"));
        }
        Ok(Self {
            listen,
            admin_listen,
            data_dir,
            database_url,
            region: config.region.unwrap_or_else(|| "us-east-1".into()),
            domains: config.domains,
            etag: config.etag,
            master_key,
            admin_token,
            access_key_id,
            secret_access_key,
            tls: config.tls,
            offload: config.offload,
            locations,
            policies,
            default_policy: "default".into(),
            bucket_policies: config.bucket_policies,
            pipeline: config.pipeline,
            durability: config.durability,
            limits: config.limits,
            cache: config.cache,
            run_edges: config.run_edges,
        })
    }

    /// The policy for a new bucket.
    pub fn policy_for_new_bucket(&self, bucket: &str) -> &str {
        self.bucket_policies.get(bucket).map_or(self.default_policy.as_str(), String::as_str)
    }
}

/// The admin endpoint's default address: the S3 endpoint's, next port (port 0 when
/// the S3 endpoint's is 0, so that tests and benches get free ports for both).
pub fn default_admin_listen(listen: SocketAddr) -> SocketAddr {
    let port = match listen.port() {
        0 | u16::MAX => 0,
        p => p + 1,
    };
    SocketAddr::new(listen.ip(), port)
}

/// Access key ids are 3–128 characters of `[A-Za-z0-9_-]`; secrets 8–128 printable.
pub fn check_credentials(id: &str, secret: &str) -> Result<(), ConfigError> {
    check_access_key_id(id)?;
    check_secret_access_key(secret)
}

/// Access key ids are 3–128 characters of `[A-Za-z0-9_-]`.
pub fn check_access_key_id(id: &str) -> Result<(), ConfigError> {
    if !(3..=128).contains(&id.len()) || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid("access key ids are 3-128 characters of A-Z, a-z, 0-9, _ and -"));
    }
    Ok(())
}

/// The tenant of keys created without one, and of everything from before tenants.
pub const DEFAULT_TENANT: &str = "default";

/// Tenant names are 1–63 characters of `[a-z0-9-]`, starting with a letter or digit.
pub fn check_tenant_name(name: &str) -> Result<(), ConfigError> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !ok {
        return Err(invalid(format!("tenant {name:?}: use 1-63 of a-z, 0-9 and -, not starting with -")));
    }
    Ok(())
}

/// Secret access keys are 8–128 printable ASCII characters.
pub fn check_secret_access_key(secret: &str) -> Result<(), ConfigError> {
    if !(8..=128).contains(&secret.len()) || !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid("secret access keys are 8-128 printable ASCII characters"));
    }
    Ok(())
}

pub(crate) fn check_location(l: LocationConfig) -> Result<Location, ConfigError> {
    let name = l.name.clone();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid(format!("location name {name:?}: use letters, digits, - and _")));
    }
    let endpoint = url::Url::parse(&l.endpoint)
        .map_err(|e| invalid(format!("location {name}: endpoint {:?}: {e}", l.endpoint)))?;
    if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
        return Err(invalid(format!("location {name}: endpoint must be an http(s) URL with a host")));
    }
    if l.prefix.is_empty() || l.prefix.contains("..") || l.prefix.starts_with('/') {
        return Err(invalid(format!("location {name}: prefix must be a relative path")));
    }
    let env = location_secret_env(&name);
    let need = |what: &str, v: Option<String>| v.ok_or_else(|| invalid(format!("location {name}: {what} is required")));
    let (container, access_key_id, secret, signing_region) = match l.kind {
        LocationKind::S3 => {
            let secret = resolve_secret(l.secret_access_key.as_deref(), l.secret_access_key_file.as_deref(), &env)?
                .ok_or_else(|| invalid(format!("location {name}: secret_access_key is required")))?;
            (
                need("bucket", l.bucket)?,
                need("access_key_id", l.access_key_id)?,
                secret,
                l.signing_region.unwrap_or_else(|| "us-east-1".into()),
            )
        }
        LocationKind::Swift => {
            let secret = resolve_secret(l.temp_url_key.as_deref(), l.temp_url_key_file.as_deref(), &env)?
                .ok_or_else(|| invalid(format!("location {name}: temp_url_key is required")))?;
            if !endpoint.path().contains("/v1/") {
                return Err(invalid(format!(
                    "location {name}: a Swift endpoint is the account URL, …/v1/AUTH_<account>"
                )));
            }
            (need("container", l.container)?, String::new(), secret, String::new())
        }
        LocationKind::Edge => {
            let secret = resolve_secret(l.secret.as_deref(), l.secret_file.as_deref(), &env)?
                .ok_or_else(|| invalid(format!("location {name}: secret is required")))?;
            (String::new(), String::new(), secret, String::new())
        }
    };
    if secret.len() < 8 {
        return Err(invalid(format!("location {name}: the secret is too short")));
    }
    let tier = l.tier.unwrap_or(if l.kind == LocationKind::Edge { Tier::Edge } else { Tier::Cloud });
    let provider = attribute(&name, "provider", l.provider)?;
    let jurisdiction = attribute(&name, "jurisdiction", l.jurisdiction)?;
    Ok(Location {
        name,
        kind: l.kind,
        endpoint,
        tier,
        region: l.region,
        provider,
        jurisdiction,
        prefix: l.prefix.trim_end_matches('/').to_string(),
        container,
        access_key_id,
        secret,
        signing_region,
        ca_file: l.ca_file,
    })
}

/// A location's provider or jurisdiction: 1-64 letters, digits, `-`, `_`, `.`.
fn attribute(location: &str, what: &str, v: Option<String>) -> Result<Option<String>, ConfigError> {
    match v {
        Some(v)
            if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Err(invalid(format!("location {location}: {what} {v:?}: use 1-64 letters, digits, -, _ and .")))
        }
        v => Ok(v),
    }
}

/// A policy's sovereignty constraints: sound, stated by every location it names,
/// and satisfiable by its locations.
fn check_constraints(
    name: &str,
    p: &PolicyConfig,
    names: &[String],
    locations: &BTreeMap<String, Location>,
) -> Result<super::Constraints, ConfigError> {
    let c = super::Constraints {
        max_per_provider: p.max_per_provider,
        max_per_jurisdiction: p.max_per_jurisdiction,
        min_per_jurisdiction: p.min_per_jurisdiction.clone(),
    };
    if c.max_per_provider == Some(0)
        || c.max_per_jurisdiction == Some(0)
        || c.min_per_jurisdiction.values().any(|&m| m == 0)
    {
        return Err(invalid(format!("policy {name}: constraints count at least one fragment")));
    }
    for j in c.min_per_jurisdiction.keys() {
        attribute(name, "jurisdiction", Some(j.clone()))?;
    }
    if c.min_per_jurisdiction.values().map(|&m| u16::from(m)).sum::<u16>() > u16::from(p.n) {
        return Err(invalid(format!("policy {name}: min_per_jurisdiction asks for more than n fragments")));
    }
    if c.is_empty() {
        return Ok(c);
    }
    let all = p.locations.is_empty();
    let usable: Vec<&Location> = names.iter().filter_map(|l| locations.get(l)).collect();
    for l in &usable {
        if !all && !c.countable(l) {
            return Err(invalid(format!(
                "policy {name}: its constraints ({c}) count locations by provider and jurisdiction, and location {} \
                 states no {}",
                l.name,
                if c.max_per_provider.is_some() && l.provider.is_none() { "provider" } else { "jurisdiction" }
            )));
        }
    }
    if !usable.is_empty() && c.choose(&usable, usize::from(p.n), &|_, _| true).is_none() {
        return Err(invalid(format!("policy {name}: no {} of its locations satisfy its constraints ({c})", p.n)));
    }
    Ok(c)
}

pub(crate) fn check_policy(
    name: &str,
    p: PolicyConfig,
    locations: &BTreeMap<String, Location>,
) -> Result<Policy, ConfigError> {
    let segment_size =
        u32::try_from(p.segment_size.0).map_err(|_| invalid(format!("policy {name}: segment_size too large")))?;
    let params = CodingParams::new(p.k, p.n, segment_size).map_err(|e| invalid(format!("policy {name}: {e}")))?;
    let all_locations = p.locations.is_empty();
    let names: Vec<String> = if all_locations { locations.keys().cloned().collect() } else { p.locations.clone() };
    for l in &names {
        if !locations.contains_key(l) {
            return Err(invalid(format!("policy {name}: unknown location {l:?}")));
        }
    }
    if !locations.is_empty() && names.len() < usize::from(p.n) {
        return Err(invalid(format!(
            "policy {name}: n = {} fragments need as many locations; {} available",
            p.n,
            names.len()
        )));
    }
    let count = |t: Tier| names.iter().filter(|l| locations.get(*l).is_some_and(|x| x.tier == t)).count();
    if !locations.is_empty()
        && (count(Tier::Cloud) < usize::from(p.min_cloud) || count(Tier::Edge) < usize::from(p.min_edge))
    {
        return Err(invalid(format!("policy {name}: not enough cloud or edge locations for min_cloud/min_edge")));
    }
    if u16::from(p.min_cloud) + u16::from(p.min_edge) > u16::from(p.n) {
        return Err(invalid(format!("policy {name}: min_cloud + min_edge exceeds n")));
    }
    let quorum = p.write_quorum.unwrap_or(p.k.saturating_add(1).min(p.n));
    if quorum < p.k || quorum > p.n {
        return Err(invalid(format!("policy {name}: write_quorum must be between k ({}) and n ({})", p.k, p.n)));
    }
    let pack_threshold = match p.pack_threshold {
        Some(Size(t)) if t > MAX_PACK_THRESHOLD || t > u64::from(segment_size) => {
            return Err(invalid(format!(
                "policy {name}: pack_threshold must be at most the segment size and {MAX_PACK_THRESHOLD} bytes"
            )));
        }
        Some(Size(t)) => t,
        None => DEFAULT_PACK_THRESHOLD.min(u64::from(segment_size)),
    };
    let compression = match p.compression {
        CompressionChoice::None => None,
        CompressionChoice::Zstd => Some(Algorithm::Zstd),
        CompressionChoice::Lz4 => Some(Algorithm::Lz4),
    };
    let constraints = check_constraints(name, &p, &names, locations)?;
    Ok(Policy {
        name: name.to_string(),
        params,
        locations: names,
        all_locations,
        min_cloud: p.min_cloud,
        min_edge: p.min_edge,
        compression,
        write_quorum: quorum,
        pack_threshold,
        constraints,
    })
}

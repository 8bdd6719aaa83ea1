//! Configuration: one TOML file read into [`Config`] (what the operator wrote), then
//! checked once into [`Settings`] (what the gateway runs with).
//!
//! Every secret can be given inline, as a `*_file` path, or through an environment
//! variable named in its documentation; files win over inline values, environment
//! variables over both. Unknown keys are rejected with the path to the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codec::CodingParams;
use offload::OffloadConfig;
use offload::compress::Algorithm;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::units::{parse_duration, parse_size};

/// A configuration problem, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the offending key.
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// A byte size written with units (`"4M"`, `"64MiB"`, `4096`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SizeRepr", into = "String")]
pub struct Size(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Number(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for Size {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Number(n) => Ok(Size(n)),
            SizeRepr::Text(s) => parse_size(&s).map(Size),
        }
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.0.to_string()
    }
}

/// A duration written with units (`"15m"`, `"30s"`, `"500ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s).map(HumanDuration)
    }
}

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        format!("{}ms", d.0.as_millis())
    }
}

/// How single-part ETags are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EtagAlgorithm {
    /// The MD5 of the content, as S3 clients expect (about 0.5 GB/s per core).
    #[default]
    Md5,
    /// The first 128 bits of BLAKE3 (several GB/s per core). Clients that check an
    /// ETag against the MD5 they computed will complain.
    Blake3,
}

/// Kind of storage location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocationKind {
    /// Any S3-compatible endpoint, through SigV4 presigned URLs.
    S3,
    /// An OpenStack Swift container, through TempURLs.
    Swift,
    /// A `skyshard edge` store.
    Edge,
}

/// Tier of a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Public or private cloud storage.
    Cloud,
    /// An edge device.
    Edge,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Cloud => "cloud",
            Tier::Edge => "edge",
        })
    }
}

/// Segment compression of a policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionChoice {
    /// Store segments as they are.
    #[default]
    None,
    /// Zstandard (level from `offload.zstd_level`).
    Zstd,
    /// LZ4.
    Lz4,
}

/// One storage location.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Unique name; fragments record it, so do not rename a location holding data.
    pub name: String,
    /// `s3`, `swift` or `edge`.
    pub kind: LocationKind,
    /// Base URL: `http(s)://host:port` for S3 and edge; the account URL
    /// (`http://host:port/v1/AUTH_account`) for Swift.
    pub endpoint: String,
    /// `cloud` or `edge` (default: `edge` for edge stores, `cloud` otherwise).
    pub tier: Option<Tier>,
    /// A region tag, for operators and placement reports.
    pub region: Option<String>,
    /// Relative share of fragments (reserved for weighted placement; default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Prefix of fragment object names at this location.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// S3: the bucket holding fragments.
    pub bucket: Option<String>,
    /// S3: access key id.
    pub access_key_id: Option<String>,
    /// S3: secret access key (or `secret_access_key_file`, or the environment
    /// variable `SKYSHARD_LOCATION_<NAME>_SECRET`).
    pub secret_access_key: Option<String>,
    /// S3: file holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// S3: region used in signatures (default `us-east-1`).
    pub signing_region: Option<String>,
    /// Swift: the container holding fragments.
    pub container: Option<String>,
    /// Swift: the account's `Temp-URL-Key` (or `temp_url_key_file`, or
    /// `SKYSHARD_LOCATION_<NAME>_SECRET`).
    pub temp_url_key: Option<String>,
    /// Swift: file holding the TempURL key.
    pub temp_url_key_file: Option<PathBuf>,
    /// Edge: the shared signing secret (or `secret_file`, or
    /// `SKYSHARD_LOCATION_<NAME>_SECRET`).
    pub secret: Option<String>,
    /// Edge: file holding the signing secret.
    pub secret_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for this location's `https` endpoint, in
    /// addition to the system's roots. Verification cannot be turned off.
    pub ca_file: Option<PathBuf>,
}

/// TLS of the S3 endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve plain HTTP. Only for a trusted network or behind a proxy that
    /// terminates TLS.
    #[serde(default)]
    pub plain_http: bool,
    /// Certificate chain (PEM, the server's first). Without one, a CA and a server
    /// certificate are generated under `<data_dir>/tls/` (the CA is kept; the server
    /// certificate is reissued at each start for the names in use).
    pub cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the generated certificate (`localhost`,
    /// `127.0.0.1`, `::1`, the listen address and the virtual-host domains are
    /// always in it).
    #[serde(default)]
    pub names: Vec<String>,
}

/// The local fragment cache (off unless `path` is given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// A file (created and sized to `size`) or a block device (used whole: an NVMe
    /// namespace, local or over NVMe/TCP; a loop device).
    pub path: Option<PathBuf>,
    /// Size of a cache file.
    #[serde(default = "default_cache_size")]
    pub size: Size,
    /// The index log (default `<data_dir>/cache.index`).
    pub index: Option<PathBuf>,
    /// Eviction: `s3fifo` (default) or `lru`.
    #[serde(default = "default_cache_policy")]
    pub policy: String,
    /// Cache fragments as a PUT uploads them.
    #[serde(default = "yes")]
    pub write_through: bool,
    /// Cache fragments a GET reads whole from locations.
    #[serde(default = "yes")]
    pub fill_on_read: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            path: None,
            size: default_cache_size(),
            index: None,
            policy: default_cache_policy(),
            write_through: true,
            fill_on_read: true,
        }
    }
}

fn default_cache_size() -> Size {
    Size(1 << 30)
}

fn default_cache_policy() -> String {
    "s3fifo".into()
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn default_prefix() -> String {
    "skyshard".into()
}

/// A placement policy: how objects of the buckets using it are coded and spread.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Fragments needed to read.
    #[serde(default = "default_k")]
    pub k: u8,
    /// Fragments written, one per location.
    #[serde(default = "default_n")]
    pub n: u8,
    /// Locations this policy may use (default: all).
    #[serde(default)]
    pub locations: Vec<String>,
    /// Fragments that must go to cloud locations.
    #[serde(default)]
    pub min_cloud: u8,
    /// Fragments that must go to edge locations.
    #[serde(default)]
    pub min_edge: u8,
    /// Plaintext bytes per segment.
    #[serde(default = "default_segment_size")]
    pub segment_size: Size,
    /// Segment compression.
    #[serde(default)]
    pub compression: CompressionChoice,
    /// Fragments that must land before a write is acknowledged (default `k + 1`,
    /// at most `n`, never below `k`).
    pub write_quorum: Option<u8>,
}

fn default_k() -> u8 {
    4
}

fn default_n() -> u8 {
    6
}

fn default_segment_size() -> Size {
    Size(u64::from(codec::params::DEFAULT_SEGMENT_SIZE))
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            k: default_k(),
            n: default_n(),
            locations: Vec::new(),
            min_cloud: 0,
            min_edge: 0,
            segment_size: default_segment_size(),
            compression: CompressionChoice::None,
            write_quorum: None,
        }
    }
}

/// Data-path tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Segments a request may have in flight between stages. Memory per request is
    /// about `depth × segment_size × (2 + n/k)`.
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Requests moving object data at once; more wait their turn. With `depth`, this
    /// bounds the gateway's memory.
    #[serde(default = "default_max_transfers")]
    pub max_transfers: usize,
    /// Lifetime of presigned URLs.
    #[serde(default = "default_presign_ttl")]
    pub presign_ttl: HumanDuration,
    /// Time to connect to a location.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// A location that makes no progress for this long is given up on.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: HumanDuration,
    /// How often garbage (fragments of deleted, overwritten or failed writes) is
    /// collected.
    #[serde(default = "default_gc_interval")]
    pub gc_interval: HumanDuration,
    /// An unfinished write older than this is considered dead and collected.
    #[serde(default = "default_pending_grace")]
    pub pending_grace: HumanDuration,
    /// Largest object compressed when its policy asks for compression: fragment
    /// sizes must be known before the upload starts, so compressed fragments are
    /// built in memory; larger objects are stored uncompressed.
    #[serde(default = "default_compress_max")]
    pub compress_max_object: Size,
}

fn default_depth() -> usize {
    2
}
fn default_max_transfers() -> usize {
    32
}
fn default_presign_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(15 * 60))
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_stall_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_gc_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_pending_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
fn default_compress_max() -> Size {
    Size(64 << 20)
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            depth: default_depth(),
            max_transfers: default_max_transfers(),
            presign_ttl: default_presign_ttl(),
            connect_timeout: default_connect_timeout(),
            stall_timeout: default_stall_timeout(),
            gc_interval: default_gc_interval(),
            pending_grace: default_pending_grace(),
            compress_max_object: default_compress_max(),
        }
    }
}

/// The configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the S3 endpoint (default `127.0.0.1:9000`).
    pub listen: Option<SocketAddr>,
    /// Address of the admin endpoint: metrics, health, the offload report (default:
    /// the S3 address with the next port; port 0 when the S3 port is 0).
    pub admin_listen: Option<SocketAddr>,
    /// Directory for local state (default `./skyshard-data`).
    pub data_dir: Option<PathBuf>,
    /// Metadata database: `sqlite://PATH` (default `<data_dir>/meta.db`) or
    /// `postgres://…` (also `database_url_file`, or `SKYSHARD_DATABASE_URL`).
    pub database_url: Option<String>,
    /// File holding the database URL.
    pub database_url_file: Option<PathBuf>,
    /// Region the endpoint reports (default `us-east-1`).
    pub region: Option<String>,
    /// Domains for virtual-host-style requests: `bucket.<domain>`.
    #[serde(default)]
    pub domains: Vec<String>,
    /// ETag of single-part objects: `md5` (default) or `blake3`.
    #[serde(default)]
    pub etag: EtagAlgorithm,
    /// Master key, 64 hex digits (or `master_key_file`, or `SKYSHARD_MASTER_KEY`).
    /// Without any, `<data_dir>/master.key` is used, created if missing (0600).
    pub master_key: Option<String>,
    /// File holding the master key (64 hex digits).
    pub master_key_file: Option<PathBuf>,
    /// A bearer token of the admin API (`sst_<id>_<secret>`, as `skyshard admin
    /// token` prints; or `admin_token_file`, or `SKYSHARD_ADMIN_TOKEN`), stored
    /// (hashed) if new. Without any, the first start creates one in
    /// `<data_dir>/admin.token` (0600).
    pub admin_token: Option<String>,
    /// File holding an admin token.
    pub admin_token_file: Option<PathBuf>,
    /// First access key, created when the store has none (also
    /// `SKYSHARD_ACCESS_KEY_ID`); generated if not given.
    pub access_key_id: Option<String>,
    /// Its secret (or `secret_access_key_file`, or `SKYSHARD_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// File holding the first secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// TLS of the S3 endpoint.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Offload engines.
    #[serde(default)]
    pub offload: OffloadConfig,
    /// Storage locations.
    #[serde(default)]
    pub locations: Vec<LocationConfig>,
    /// Placement policies by name; `default` is used unless a bucket says otherwise.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Policy of buckets created with names listed here (bucket → policy).
    #[serde(default)]
    pub bucket_policies: BTreeMap<String, String>,
    /// Data-path tuning.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// The local fragment cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Edge stores this process runs itself, each serving the edge location of the
    /// same name (the embedded default uses six).
    #[serde(default)]
    pub run_edges: Vec<RunEdge>,
}

/// An edge store run inside the gateway process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEdge {
    /// The edge location it serves.
    pub name: String,
    /// Address it listens on.
    pub listen: SocketAddr,
    /// Directory holding its fragments.
    pub data_dir: PathBuf,
}

impl Config {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: origin.to_path_buf(), message: e.to_string() })
    }
}

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
        if crate::cache::evict::by_name(&config.cache.policy, 1).is_none() {
            return Err(invalid(format!("cache.policy {:?}: use s3fifo or lru", config.cache.policy)));
        }
        let p = &config.pipeline;
        if p.depth == 0 || p.max_transfers == 0 {
            return Err(invalid("pipeline.depth and pipeline.max_transfers must be at least 1"));
        }
        if p.presign_ttl.0 < Duration::from_secs(10) || p.presign_ttl.0 > Duration::from_secs(7 * 24 * 3600) {
            return Err(invalid("pipeline.presign_ttl must be between 10s and 7 days"));
        }
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
    Ok(Location {
        name,
        kind: l.kind,
        endpoint,
        tier,
        region: l.region,
        prefix: l.prefix.trim_end_matches('/').to_string(),
        container,
        access_key_id,
        secret,
        signing_region,
        ca_file: l.ca_file,
    })
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
    let names: Vec<String> = if all_locations { locations.keys().cloned().collect() } else { p.locations };
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
    let compression = match p.compression {
        CompressionChoice::None => None,
        CompressionChoice::Zstd => Some(Algorithm::Zstd),
        CompressionChoice::Lz4 => Some(Algorithm::Lz4),
    };
    Ok(Policy {
        name: name.to_string(),
        params,
        locations: names,
        all_locations,
        min_cloud: p.min_cloud,
        min_edge: p.min_edge,
        compression,
        write_quorum: quorum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    const SIX_EDGES: &str = r#"
        [[locations]]
        name = "e1"
        kind = "edge"
        endpoint = "http://127.0.0.1:9101"
        secret = "0123456789abcdef"
        [[locations]]
        name = "e2"
        kind = "edge"
        endpoint = "http://127.0.0.1:9102"
        secret = "0123456789abcdef"
        [[locations]]
        name = "c3"
        kind = "s3"
        endpoint = "http://127.0.0.1:9103"
        bucket = "frags"
        access_key_id = "AK"
        secret_access_key = "SECRETSECRET"
    "#;

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = parse("listen = \"127.0.0.1:1\"\nlisten_port = 3").expect_err("unknown key");
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = parse("[pipeline]\ndepht = 3").expect_err("unknown nested key");
        assert!(err.to_string().contains("depht"), "{err}");
        let err = parse(&format!("{SIX_EDGES}\n[policies.x]\nk = 2\nn = 3\nfoo = 1")).expect_err("unknown policy key");
        assert!(err.to_string().contains("foo"), "{err}");
    }

    #[test]
    fn human_units_and_defaults() {
        let c = parse(&format!(
            "{SIX_EDGES}\n[policies.default]\nk = 2\nn = 3\nsegment_size = \"1M\"\n[pipeline]\npresign_ttl = \"5m\""
        ))
        .expect("parse");
        let s = Settings::from_config(c, None, Some("/tmp/x".into()), None).expect("valid");
        let p = &s.policies["default"];
        assert_eq!((p.params.k(), p.params.n(), p.params.segment_size()), (2, 3, 1 << 20));
        assert_eq!(p.write_quorum, 3);
        assert_eq!(s.pipeline.presign_ttl.0, Duration::from_secs(300));
        assert_eq!(s.locations["e1"].tier, Tier::Edge);
        assert_eq!(s.locations["c3"].tier, Tier::Cloud);
        assert!(s.database_url.starts_with("sqlite:///tmp/x/meta.db"));
    }

    #[test]
    fn impossible_policies_are_refused() {
        for bad in [
            "[policies.default]\nk = 4\nn = 6", // 3 locations only
            "[policies.default]\nk = 2\nn = 3\nwrite_quorum = 1",
            "[policies.default]\nk = 2\nn = 3\nmin_cloud = 2",
            "[policies.default]\nk = 2\nn = 3\nlocations = [\"e1\", \"nope\", \"c3\"]",
            "[policies.default]\nk = 4\nn = 3",
        ] {
            let c = parse(&format!("{SIX_EDGES}\n{bad}")).expect("parses");
            assert!(Settings::from_config(c, None, None, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_need_their_secrets() {
        let c = parse("[[locations]]\nname = \"x\"\nkind = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"b\"\naccess_key_id = \"a\"")
            .expect("parses");
        let err = Settings::from_config(c, None, None, None).expect_err("no secret");
        assert!(err.to_string().contains("secret_access_key"), "{err}");
        assert_eq!(location_secret_env("edge-1"), "SKYSHARD_LOCATION_EDGE_1_SECRET");
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../deploy/examples/skyshard.toml");
        let c = parse(text).expect("deploy/examples/skyshard.toml must stay valid");
        assert_eq!(c.locations.len(), 6);
        assert_eq!(c.policies["default"].min_edge, 2);
        assert_eq!(c.bucket_policies["logs"], "archive");
    }

    #[test]
    fn secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("skyshard-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("secret");
        std::fs::write(&f, "from-a-file\n").expect("write");
        let got = resolve_secret(Some("inline"), Some(&f), "SKYSHARD_TEST_UNSET_VARIABLE").expect("read");
        assert_eq!(got.as_deref().map(String::as_str), Some("from-a-file"));
        let got = resolve_secret(Some("inline"), None, "SKYSHARD_TEST_UNSET_VARIABLE").expect("read");
        assert_eq!(got.as_deref().map(String::as_str), Some("inline"));
    }
}

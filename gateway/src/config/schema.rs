//! The configuration file's shape: what an operator may write, with a doc comment
//! per key and a default where one makes sense.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use offload::OffloadConfig;
use serde::{Deserialize, Serialize};

use super::{ConfigError, HumanDuration, LimitsConfig, Size};

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

/// Which fragments a read asks for first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadOrder {
    /// Those expected to arrive soonest, by each location's recent latency and
    /// rate.
    #[default]
    Fastest,
    /// Any, at random (what a gateway blind to its locations' speed does; kept to
    /// compare against).
    Random,
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
    /// Who runs it (`aws`, `ovh`, `own`, …): policies may limit the fragments of an
    /// object with one provider.
    pub provider: Option<String>,
    /// Whose law it is under (`EU`, `CH`, `US`, …): policies may limit the fragments
    /// of an object in one jurisdiction, or require some in a named one.
    pub jurisdiction: Option<String>,
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
    #[serde(default)]
    pub policy: Eviction,
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
            policy: Eviction::default(),
            write_through: true,
            fill_on_read: true,
        }
    }
}

fn default_cache_size() -> Size {
    Size(1 << 30)
}

/// How the fragment cache chooses what to evict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// S3-FIFO: a small probationary queue in front of the main one; one-hit
    /// wonders leave without displacing what is reused.
    #[default]
    S3fifo,
    /// Least recently used.
    Lru,
}

impl Eviction {
    /// The name in the configuration (`s3fifo`, `lru`).
    pub fn as_str(self) -> &'static str {
        match self {
            Eviction::S3fifo => "s3fifo",
            Eviction::Lru => "lru",
        }
    }
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
    /// Objects up to this size written close in time are coded together, as one
    /// pack (default 64 KiB, or the segment size if smaller; at most 1 MiB and the
    /// segment size; 0: never).
    pub pack_threshold: Option<Size>,
    /// At most this many fragments of an object with any one provider (`k - 1`:
    /// no provider can read it alone). Locations stating no provider are not used.
    pub max_per_provider: Option<u8>,
    /// At most this many fragments of an object in any one jurisdiction.
    /// Locations stating no jurisdiction are not used.
    pub max_per_jurisdiction: Option<u8>,
    /// At least so many fragments of each object in each jurisdiction named
    /// (`{ EU = 4 }`).
    #[serde(default)]
    pub min_per_jurisdiction: BTreeMap<String, u8>,
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
            pack_threshold: None,
            max_per_provider: None,
            max_per_jurisdiction: None,
            min_per_jurisdiction: BTreeMap::new(),
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
    /// Lifetime of presigned URLs: long enough for a transfer to start (a location
    /// checks it when a request arrives), short enough that a leaked URL is soon
    /// useless.
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
    /// Fragments of versions deleted or overwritten are kept this long before they
    /// are collected: a read that read the version's manifest just before the
    /// delete holds its seals moments later, and reads at other replicas are not
    /// seen by this one's collector at all.
    #[serde(default = "default_retired_grace")]
    pub retired_grace: HumanDuration,
    /// Largest object compressed when its policy asks for compression: fragment
    /// sizes must be known before the upload starts, so compressed fragments are
    /// built in memory; larger objects are stored uncompressed.
    #[serde(default = "default_compress_max")]
    pub compress_max_object: Size,
    /// Bytes the gateway holds, across all writes, for locations slower than their
    /// write's quorum: a write runs at the pace of its quorum, a slower location's
    /// fragment goes on landing in the background from this buffer, and a location
    /// that would need more than what is left is given up on (repair writes its
    /// fragment later).
    #[serde(default = "default_lag_buffer")]
    pub lag_buffer: Size,
    /// Spare fragments asked for at once, beyond the `k` needed, when an object of
    /// one segment is read: the first `k` to arrive are decoded, so one slow
    /// location does not hold the read up. 0 asks for exactly `k`.
    #[serde(default = "default_read_spares")]
    pub read_spares: u8,
    /// Extra bytes a large read may fetch to hedge a straggling location (another
    /// location's fragment is read in its place, from where it fell behind), as a
    /// share of the bytes the read needs.
    #[serde(default = "default_hedge_share")]
    pub hedge_share: f64,
    /// Which fragments a read asks for first (after locally cached ones, and
    /// before any at a location that just failed).
    #[serde(default)]
    pub read_order: ReadOrder,
}

fn default_depth() -> usize {
    2
}
fn default_max_transfers() -> usize {
    32
}
fn default_presign_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(5 * 60))
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
fn default_retired_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_compress_max() -> Size {
    Size(64 << 20)
}
fn default_lag_buffer() -> Size {
    Size(256 << 20)
}
fn default_read_spares() -> u8 {
    1
}
fn default_hedge_share() -> f64 {
    0.5
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
            retired_grace: default_retired_grace(),
            compress_max_object: default_compress_max(),
            lag_buffer: default_lag_buffer(),
            read_spares: default_read_spares(),
            hedge_share: default_hedge_share(),
            read_order: ReadOrder::default(),
        }
    }
}

/// Keeping every object at full redundancy: repair rebuilds lost or corrupt
/// fragments by recoding, scrub reads fragments back to find what was lost
/// quietly, the sweep removes fragments no seal references. Each runs on one
/// replica at a time, at a bounded rate, so that clients keep their bandwidth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DurabilityConfig {
    /// Repair degraded objects in the background.
    pub repair: bool,
    /// Bytes per second repair may move: fragments read to recode from, plus those
    /// written (`0`: unlimited).
    pub repair_rate: Size,
    /// Objects repaired at once.
    pub repair_concurrency: usize,
    /// How often the repair queue is looked at.
    pub repair_interval: HumanDuration,
    /// How long an object whose repair failed waits before it is tried again (a
    /// location it waits for coming back ends the wait at once).
    pub repair_backoff: HumanDuration,
    /// Bytes per second the background scrub reads back and checks (`0`: no
    /// background scrub; `skyshard admin scrub` still runs one pass).
    pub scrub_rate: Size,
    /// Pause between two complete background scrub passes.
    pub scrub_interval: HumanDuration,
    /// How often each location is probed, to notice one coming back.
    pub watch_interval: HumanDuration,
    /// How often each location is listed for orphans: fragments that no seal
    /// references, older than `pipeline.pending_grace`, which are deleted (`0s`:
    /// no background sweep).
    pub sweep_interval: HumanDuration,
    /// How often buckets' lifecycle rules are applied.
    pub lifecycle_interval: HumanDuration,
    /// How long a lifecycle "day" is: a day. Shorter only to test lifecycle rules
    /// (`1s` makes a rule's days seconds).
    pub lifecycle_day: HumanDuration,
    /// How often packs are looked at for compaction (`0s`: never).
    pub compact_interval: HumanDuration,
    /// A pack whose dead members (deleted or overwritten objects) weigh at least
    /// this share of it, in percent, is rewritten with its live members only.
    pub compact_dead_percent: u8,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        Self {
            repair: true,
            repair_rate: Size(32 << 20),
            repair_concurrency: 2,
            repair_interval: HumanDuration(Duration::from_secs(5)),
            repair_backoff: HumanDuration(Duration::from_secs(60)),
            scrub_rate: Size(4 << 20),
            scrub_interval: HumanDuration(Duration::from_secs(3600)),
            watch_interval: HumanDuration(Duration::from_secs(10)),
            sweep_interval: HumanDuration(Duration::from_secs(6 * 3600)),
            lifecycle_interval: HumanDuration(Duration::from_secs(3600)),
            lifecycle_day: HumanDuration(Duration::from_secs(86_400)),
            compact_interval: HumanDuration(Duration::from_secs(600)),
            compact_dead_percent: 50,
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
    /// Keeping objects at full redundancy: repair, scrub, orphan sweep.
    #[serde(default)]
    pub durability: DurabilityConfig,
    /// Connection, request and transfer limits.
    #[serde(default)]
    pub limits: LimitsConfig,
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

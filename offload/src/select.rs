//! Choosing engines: `auto` takes the first candidate the machine supports, in an
//! order set by measurement, and records why it passed over the others; a pinned
//! engine the machine lacks is an error, never a silent fallback.

use std::fmt;
use std::sync::Arc;

use crate::aead::AeadEngine;
use crate::compress::{Algorithm, Compressor};
use crate::crc::Crc32c;
use crate::engine::compress::{Lz4, Zstd};
use crate::engine::crc::{CrcFast, PortableCrc, Sse42Crc};
use crate::engine::gf_avx2::Avx2Kernel;
use crate::engine::gf_gfni::{GfniKernel, Width};
use crate::engine::gf_portable::PortableKernel;
use crate::engine::pool::AeadPool;
use crate::engine::ring::RingAead;
use crate::engine::rustcrypto::{RustCryptoAead, RustCryptoXts};
use crate::engine::xts_batched::BatchedXts;
use crate::gf::GfKernel;
use crate::isal::{IsalCrc, IsalKernel};
use crate::meter::{Clock, MeteredAead, MeteredCompressor, MeteredCrc, MeteredGf, MeteredXts, Meters};
use crate::probe::Capabilities;
use crate::random::{SecureRandom, SystemRandom};
use crate::tls::{TlsEngine, TlsKind};
use crate::xts::XtsEngine;

/// `auto`, or one engine by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EngineChoice {
    /// The best engine this machine supports.
    #[default]
    Auto,
    /// Exactly this engine; start-up fails if it is unavailable.
    Named(String),
}

impl From<String> for EngineChoice {
    fn from(s: String) -> Self {
        if s == "auto" { Self::Auto } else { Self::Named(s) }
    }
}

impl From<EngineChoice> for String {
    fn from(c: EngineChoice) -> Self {
        match c {
            EngineChoice::Auto => "auto".into(),
            EngineChoice::Named(s) => s,
        }
    }
}

impl fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Named(s) => f.write_str(s),
        }
    }
}

/// Which engines to use; every field defaults to `auto` or a measured default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OffloadConfig {
    /// AES-256-GCM: `auto`, `ring`, `rustcrypto`, `pool` (dedicated threads in front
    /// of `aead_pool_inner`), or `aws-lc` when built with that feature.
    pub aead: EngineChoice,
    /// The engine the `pool` engine runs on its threads.
    pub aead_pool_inner: EngineChoice,
    /// Threads of the `pool` engine; 0 means one per CPU.
    pub aead_pool_threads: usize,
    /// Batches that may wait in the `pool` engine's queue.
    pub aead_pool_queue_depth: usize,
    /// GF(2^8) kernel: `auto`, `gfni-avx512`, `gfni-avx2`, `avx2`, `isal`, `portable`.
    pub gf: EngineChoice,
    /// CRC32C: `auto`, `sse42`, `crc-fast`, `isal`, `portable`.
    pub crc32c: EngineChoice,
    /// AES-256-XTS: `auto`, `batched`, `rustcrypto`.
    pub xts: EngineChoice,
    /// zstd level for compressing segments (1 = fast).
    pub zstd_level: i32,
    /// TLS record layer: `auto` (kernel TLS where the kernel has it, else rustls),
    /// `rustls`, `ktls`.
    pub tls: EngineChoice,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        Self {
            aead: EngineChoice::Auto,
            aead_pool_inner: EngineChoice::Auto,
            aead_pool_threads: 0,
            aead_pool_queue_depth: 8,
            gf: EngineChoice::Auto,
            crc32c: EngineChoice::Auto,
            xts: EngineChoice::Auto,
            zstd_level: 1,
            tls: EngineChoice::Auto,
        }
    }
}

/// The engines in use, each metered. Fields are public so that a test or an operator
/// can replace one part: `Offload { gf: Arc::new(PortableKernel), ..probed }`.
#[derive(Debug, Clone)]
pub struct Offload {
    /// AES-256-GCM.
    pub aead: Arc<dyn AeadEngine>,
    /// GF(2^8) multiply-accumulate.
    pub gf: Arc<dyn GfKernel>,
    /// CRC32C.
    pub crc32c: Arc<dyn Crc32c>,
    /// AES-256-XTS.
    pub xts: Arc<dyn XtsEngine>,
    /// Zstandard.
    pub zstd: Arc<dyn Compressor>,
    /// LZ4.
    pub lz4: Arc<dyn Compressor>,
    /// Randomness for keys and coefficients.
    pub random: Arc<dyn SecureRandom>,
    /// TLS for every connection.
    pub tls: TlsEngine,
    /// Usage counters of the engines above.
    pub meters: Arc<Meters>,
}

impl Offload {
    /// Picks every engine for a machine with `caps` as `config` says.
    pub fn select(config: &OffloadConfig, caps: &Capabilities) -> Result<(Self, Selection), SelectError> {
        let meters = Arc::new(Meters::default());
        let mut selection = Selection::default();

        let aead = select_aead(config, caps, &meters, &mut selection)?;
        let gf: Arc<dyn GfKernel> = {
            let k = pick("gf", &config.gf, gf_candidates(), caps, &mut selection)?;
            let name = k.name();
            Arc::new(MeteredGf::new(k, meters.register("gf", name)))
        };
        let crc32c: Arc<dyn Crc32c> = {
            let c = pick("crc32c", &config.crc32c, crc_candidates(), caps, &mut selection)?;
            let name = c.name();
            Arc::new(MeteredCrc::new(c, meters.register("crc32c", name)))
        };
        let xts: Arc<dyn XtsEngine> = {
            let x = pick("xts", &config.xts, xts_candidates(), caps, &mut selection)?;
            let name = x.name();
            // Called per 4 KiB sector: the cheap clock.
            Arc::new(MeteredXts::new(x, meters.register_with("xts", name, Clock::Tsc)))
        };
        let zstd: Arc<dyn Compressor> =
            Arc::new(MeteredCompressor::new(Arc::new(Zstd::new(config.zstd_level)), meters.register("zstd", "zstd")));
        let lz4: Arc<dyn Compressor> = Arc::new(MeteredCompressor::new(Arc::new(Lz4), meters.register("lz4", "lz4")));
        let random: Arc<dyn SecureRandom> = Arc::new(SystemRandom::new());
        selection.push("compression", "zstd+lz4".into(), false, Vec::new());
        selection.push("random", random.name().into(), false, Vec::new());
        let tls = TlsEngine::new(*pick("tls", &config.tls, tls_candidates(), caps, &mut selection)?, &meters);
        Ok((Self { aead, gf, crc32c, xts, zstd, lz4, random, tls, meters }, selection))
    }

    /// The compressor for `algorithm`.
    pub fn compressor(&self, algorithm: Algorithm) -> &Arc<dyn Compressor> {
        match algorithm {
            Algorithm::Zstd => &self.zstd,
            Algorithm::Lz4 => &self.lz4,
        }
    }
}

fn select_aead(
    config: &OffloadConfig,
    caps: &Capabilities,
    meters: &Arc<Meters>,
    selection: &mut Selection,
) -> Result<Arc<dyn AeadEngine>, SelectError> {
    if config.aead == EngineChoice::Named("pool".into()) {
        let inner = pick("aead", &config.aead_pool_inner, aead_candidates(), caps, selection)?;
        let threads = if config.aead_pool_threads == 0 { caps.cpus } else { config.aead_pool_threads };
        let name = format!("pool({}, {threads} threads, depth {})", inner.name(), config.aead_pool_queue_depth);
        // Meter the inner engine: its keys run on the pool's threads, which is where
        // the cycles are spent. Metering the pool itself would count waiting.
        let metered: Arc<dyn AeadEngine> = Arc::new(MeteredAead::new(inner, meters.register("aead", name.clone())));
        let pool = AeadPool::new(metered, threads, config.aead_pool_queue_depth);
        if let Some(last) = selection.choices.last_mut() {
            last.chosen = name.clone();
            last.pinned = true;
        }
        return Ok(Arc::new(pool));
    }
    let engine = pick("aead", &config.aead, aead_candidates(), caps, selection)?;
    let name = engine.name();
    Ok(Arc::new(MeteredAead::new(engine, meters.register("aead", name))))
}

/// One engine by name, unmetered, outside any [`Offload`]: for benchmarks and tests
/// that compare engines side by side. Fails as a pinned engine does in
/// [`Offload::select`]: unknown name, or this machine cannot run it.
fn named<T: ?Sized>(
    job: &'static str,
    name: &str,
    candidates: Vec<Candidate<T>>,
    caps: &Capabilities,
) -> Result<Arc<T>, SelectError> {
    pick(job, &EngineChoice::Named(name.into()), candidates, caps, &mut Selection::default())
}

/// The AES-256-GCM engine `name` (`ring`, `rustcrypto`, `aws-lc` with that feature).
pub fn aead_engine(name: &str, caps: &Capabilities) -> Result<Arc<dyn AeadEngine>, SelectError> {
    named("aead", name, aead_candidates(), caps)
}

/// The GF(2^8) kernel `name` (`gfni-avx512`, `gfni-avx2`, `avx2`, `isal`, `portable`).
pub fn gf_kernel(name: &str, caps: &Capabilities) -> Result<Arc<dyn GfKernel>, SelectError> {
    named("gf", name, gf_candidates(), caps)
}

/// The CRC32C engine `name` (`isal`, `sse42`, `crc-fast`, `portable`).
pub fn crc32c_engine(name: &str, caps: &Capabilities) -> Result<Arc<dyn Crc32c>, SelectError> {
    named("crc32c", name, crc_candidates(), caps)
}

/// The AES-256-XTS engine `name` (`batched`, `rustcrypto`).
pub fn xts_engine(name: &str, caps: &Capabilities) -> Result<Arc<dyn XtsEngine>, SelectError> {
    named("xts", name, xts_candidates(), caps)
}

/// The names of a job's engines, best first (`aead`, `gf`, `crc32c`, `xts`).
pub fn engine_names(job: &str) -> Vec<&'static str> {
    fn names<T: ?Sized>(c: Vec<Candidate<T>>) -> Vec<&'static str> {
        c.iter().map(|c| c.name).collect()
    }
    match job {
        "aead" => names(aead_candidates()),
        "gf" => names(gf_candidates()),
        "crc32c" => names(crc_candidates()),
        "xts" => names(xts_candidates()),
        _ => Vec::new(),
    }
}

/// What [`Offload::select`] decided, for the start-up log and the health endpoint.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Selection {
    /// One entry per job.
    pub choices: Vec<Choice>,
}

impl Selection {
    fn push(&mut self, job: &'static str, chosen: String, pinned: bool, rejected: Vec<Rejected>) {
        self.choices.push(Choice { job, chosen, pinned, rejected });
    }
}

/// The engine chosen for one job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Choice {
    /// The job.
    pub job: &'static str,
    /// The engine doing it.
    pub chosen: String,
    /// Whether configuration named it (rather than `auto`).
    pub pinned: bool,
    /// Better-ranked engines passed over, and why.
    pub rejected: Vec<Rejected>,
}

/// An engine `auto` did not take.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rejected {
    /// The engine.
    pub engine: &'static str,
    /// Why this machine cannot run it.
    pub reason: String,
}

/// The configuration asks for an engine that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// The engine exists but this machine lacks what it needs.
    #[error("{job} engine {engine:?} is not available on this machine: {reason}")]
    Unavailable {
        /// The job.
        job: &'static str,
        /// The engine asked for.
        engine: String,
        /// What is missing.
        reason: String,
    },
    /// No engine has that name.
    #[error("unknown {job} engine {engine:?} (known: auto, {known})")]
    Unknown {
        /// The job.
        job: &'static str,
        /// The name asked for.
        engine: String,
        /// The names that exist.
        known: String,
    },
}

type Build<T> = fn(&Capabilities) -> Result<Arc<T>, String>;

/// A candidate engine: its name, whether `auto` may take it, and how to build it.
struct Candidate<T: ?Sized> {
    name: &'static str,
    auto: bool,
    build: Build<T>,
}

fn pick<T: ?Sized>(
    job: &'static str,
    choice: &EngineChoice,
    candidates: Vec<Candidate<T>>,
    caps: &Capabilities,
    selection: &mut Selection,
) -> Result<Arc<T>, SelectError> {
    match choice {
        EngineChoice::Named(name) => {
            let Some(c) = candidates.iter().find(|c| c.name == name) else {
                let known = candidates.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
                return Err(SelectError::Unknown { job, engine: name.clone(), known });
            };
            let engine =
                (c.build)(caps).map_err(|reason| SelectError::Unavailable { job, engine: name.clone(), reason })?;
            selection.push(job, c.name.into(), true, Vec::new());
            Ok(engine)
        }
        EngineChoice::Auto => {
            let mut rejected = Vec::new();
            for c in candidates.iter().filter(|c| c.auto) {
                match (c.build)(caps) {
                    Ok(engine) => {
                        selection.push(job, c.name.into(), false, rejected);
                        return Ok(engine);
                    }
                    Err(reason) => rejected.push(Rejected { engine: c.name, reason }),
                }
            }
            let reason = rejected.iter().map(|r| format!("{}: {}", r.engine, r.reason)).collect::<Vec<_>>().join("; ");
            Err(SelectError::Unavailable { job, engine: "auto".into(), reason })
        }
    }
}

fn require(present: bool, what: &str) -> Result<(), String> {
    if present { Ok(()) } else { Err(format!("the CPU lacks {what}")) }
}

/// ISA-L engines need the library the probe found.
fn require_isal(caps: &Capabilities) -> Result<(), String> {
    match (&caps.isal, &caps.isal_error) {
        (Some(_), _) => Ok(()),
        (None, Some(e)) => Err(format!("ISA-L not loadable: {e}")),
        (None, None) => Err("ISA-L not loadable".into()),
    }
}

/// AEAD engines, best first. ring is the fastest AES-256-GCM measured on the target
/// machines (2× aws-lc-rs, 3× RustCrypto); RustCrypto is the portable fallback.
fn aead_candidates() -> Vec<Candidate<dyn AeadEngine>> {
    let mut v: Vec<Candidate<dyn AeadEngine>> = vec![
        Candidate { name: "ring", auto: true, build: |_| Ok(Arc::new(RingAead)) },
        Candidate { name: "rustcrypto", auto: true, build: |_| Ok(Arc::new(RustCryptoAead)) },
    ];
    #[cfg(feature = "aws-lc")]
    v.push(Candidate { name: "aws-lc", auto: false, build: |_| Ok(Arc::new(crate::engine::aws_lc::AwsLcAead)) });
    v.push(Candidate { name: "pool", auto: false, build: |_| Err("`pool` wraps another engine".into()) });
    v
}

/// GF kernels, best first: GFNI where the CPU has it (one instruction per product
/// vector), then the AVX2 kernel, which beats ISA-L's AVX2 code by 5–30%
/// (`skyshard bench codec`; the `group_sizes` tuning run in `engine/gf_avx2.rs`).
fn gf_candidates() -> Vec<Candidate<dyn GfKernel>> {
    vec![
        Candidate {
            name: "gfni-avx512",
            auto: true,
            build: |caps| {
                require(caps.gfni && caps.avx512f && caps.avx512bw, "GFNI and AVX-512BW")?;
                GfniKernel::new(Width::Zmm)
                    .map(|k| Arc::new(k) as Arc<dyn GfKernel>)
                    .ok_or_else(|| "the CPU lacks GFNI or AVX-512BW".into())
            },
        },
        Candidate {
            name: "gfni-avx2",
            auto: true,
            build: |caps| {
                require(caps.gfni && caps.avx2, "GFNI and AVX2")?;
                GfniKernel::new(Width::Ymm)
                    .map(|k| Arc::new(k) as Arc<dyn GfKernel>)
                    .ok_or_else(|| "the CPU lacks GFNI or AVX2".into())
            },
        },
        Candidate {
            name: "avx2",
            auto: true,
            build: |caps| {
                require(caps.avx2, "AVX2")?;
                Avx2Kernel::new().map(|k| Arc::new(k) as Arc<dyn GfKernel>).ok_or_else(|| "the CPU lacks AVX2".into())
            },
        },
        Candidate {
            name: "isal",
            auto: true,
            build: |caps| {
                require_isal(caps)?;
                IsalKernel::new().map(|k| Arc::new(k) as Arc<dyn GfKernel>).map_err(str::to_string)
            },
        },
        Candidate { name: "portable", auto: true, build: |_| Ok(Arc::new(PortableKernel)) },
    ]
}

/// CRC32C engines, best first. Measured on the target machines (`skyshard bench
/// codec`): ISA-L's `crc32_iscsi` 18–22 GB/s at 4 KiB and 1 MiB, the `crc32c` crate's
/// 3-way `crc32` instruction loop 12–17 at 4 KiB and 14–20 at 1 MiB, `crc-fast`
/// (whose fast paths need AVX-512) 9–13.
fn crc_candidates() -> Vec<Candidate<dyn Crc32c>> {
    vec![
        Candidate {
            name: "isal",
            auto: true,
            build: |caps| {
                require_isal(caps)?;
                IsalCrc::new().map(|c| Arc::new(c) as Arc<dyn Crc32c>).map_err(str::to_string)
            },
        },
        Candidate {
            name: "sse42",
            auto: true,
            build: |caps| {
                require(caps.sse42, "SSE4.2")?;
                Ok(Arc::new(Sse42Crc))
            },
        },
        Candidate { name: "crc-fast", auto: true, build: |_| Ok(Arc::new(CrcFast)) },
        Candidate { name: "portable", auto: true, build: |_| Ok(Arc::new(PortableCrc)) },
    ]
}

/// TLS engines, best first: kernel TLS moves record crypto out of the process (and
/// onto the NIC where it offloads TLS); rustls runs everywhere.
fn tls_candidates() -> Vec<Candidate<TlsKind>> {
    vec![
        Candidate {
            name: "ktls",
            auto: true,
            build: |caps| match &caps.ktls_error {
                None if caps.ktls => Ok(Arc::new(TlsKind::Ktls)),
                None => Err("the kernel has no \"tls\" upper-layer protocol".into()),
                Some(e) => Err(e.clone()),
            },
        },
        Candidate { name: "rustls", auto: true, build: |_| Ok(Arc::new(TlsKind::Rustls)) },
    ]
}

/// XTS engines, best first: batching a sector's blocks through AES-NI runs several
/// times faster than `xts-mode`'s block-at-a-time loop (`cargo bench -p
/// skyshard-offload -- xts`, `skyshard offload status`).
fn xts_candidates() -> Vec<Candidate<dyn XtsEngine>> {
    vec![
        Candidate { name: "batched", auto: true, build: |_| Ok(Arc::new(BatchedXts)) },
        Candidate { name: "rustcrypto", auto: true, build: |_| Ok(Arc::new(RustCryptoXts)) },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::probe;

    fn bare_caps() -> Capabilities {
        Capabilities {
            avx2: false,
            avx512f: false,
            avx512bw: false,
            gfni: false,
            sse42: false,
            isal: None,
            isal_error: Some("not installed".into()),
            ktls: false,
            ktls_error: Some("no tls ULP in this test".into()),
            ..probe()
        }
    }

    #[test]
    fn tls_falls_back_to_rustls_and_pinned_ktls_without_the_kernel_is_an_error() {
        let (offload, selection) = Offload::select(&OffloadConfig::default(), &bare_caps()).expect("select");
        assert_eq!(offload.tls.kind(), TlsKind::Rustls);
        let tls = selection.choices.iter().find(|c| c.job == "tls").expect("tls choice");
        assert_eq!((tls.chosen.as_str(), tls.rejected[0].engine), ("rustls", "ktls"));
        assert!(tls.rejected[0].reason.contains("no tls ULP"), "{:?}", tls.rejected);
        let config = OffloadConfig { tls: EngineChoice::Named("ktls".into()), ..Default::default() };
        let err = Offload::select(&config, &bare_caps()).expect_err("must refuse");
        assert!(matches!(err, SelectError::Unavailable { job: "tls", .. }), "{err}");
    }

    #[test]
    fn auto_falls_back_and_says_why() {
        let (offload, selection) = Offload::select(&OffloadConfig::default(), &bare_caps()).expect("select");
        assert_eq!(offload.gf.name(), "portable");
        let gf = selection.choices.iter().find(|c| c.job == "gf").expect("gf choice");
        let engines: Vec<&str> = gf.rejected.iter().map(|r| r.engine).collect();
        assert_eq!(engines, ["gfni-avx512", "gfni-avx2", "avx2", "isal"]);
        assert!(gf.rejected[0].reason.contains("GFNI"), "{:?}", gf.rejected);
        assert!(gf.rejected[2].reason.contains("AVX2"), "{:?}", gf.rejected);
        let crc = selection.choices.iter().find(|c| c.job == "crc32c").expect("crc choice");
        assert_eq!(crc.chosen, "crc-fast");
    }

    #[test]
    fn pinned_engine_the_machine_lacks_is_an_error() {
        let config = OffloadConfig { gf: EngineChoice::Named("avx2".into()), ..Default::default() };
        let err = Offload::select(&config, &bare_caps()).expect_err("must refuse");
        assert!(matches!(err, SelectError::Unavailable { job: "gf", .. }), "{err}");
    }

    #[test]
    fn unknown_engine_lists_the_known_ones() {
        let config = OffloadConfig { crc32c: EngineChoice::Named("crc-slow".into()), ..Default::default() };
        let err = Offload::select(&config, &probe()).expect_err("must refuse");
        let msg = err.to_string();
        assert!(msg.contains("crc-slow") && msg.contains("sse42") && msg.contains("portable"), "{msg}");
    }

    #[test]
    fn pool_wraps_the_inner_engine() {
        let config = OffloadConfig {
            aead: EngineChoice::Named("pool".into()),
            aead_pool_inner: EngineChoice::Named("rustcrypto".into()),
            aead_pool_threads: 2,
            ..Default::default()
        };
        let (offload, selection) = Offload::select(&config, &probe()).expect("select");
        assert_eq!(offload.aead.name(), "pool");
        let aead = selection.choices.iter().find(|c| c.job == "aead").expect("aead choice");
        assert!(aead.chosen.starts_with("pool(rustcrypto"), "{}", aead.chosen);
    }

    #[test]
    fn engines_by_name_are_the_ones_selection_would_pin() {
        let caps = bare_caps();
        assert_eq!(crc32c_engine("portable", &caps).expect("portable").name(), "portable");
        assert_eq!(gf_kernel("portable", &caps).expect("portable").name(), "portable");
        assert_eq!(aead_engine("ring", &caps).expect("ring").name(), "ring");
        assert!(matches!(gf_kernel("avx2", &caps), Err(SelectError::Unavailable { job: "gf", .. })));
        assert!(matches!(xts_engine("nope", &caps), Err(SelectError::Unknown { job: "xts", .. })));
        assert_eq!(engine_names("crc32c"), ["isal", "sse42", "crc-fast", "portable"]);
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let err = serde_json::from_str::<OffloadConfig>(r#"{"aead":"ring","gpu":"yes"}"#).expect_err("unknown key");
        assert!(err.to_string().contains("gpu"), "{err}");
        let ok: OffloadConfig = serde_json::from_str(r#"{"aead":"ring"}"#).expect("parse");
        assert_eq!(ok.aead, EngineChoice::Named("ring".into()));
        assert_eq!(ok.gf, EngineChoice::Auto);
    }
}

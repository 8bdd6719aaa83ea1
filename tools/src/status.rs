//! `skyshard offload status`: what this machine offers, which engine each job got
//! and which were passed over (and why), and a short calibration of every chosen
//! engine through the same meters the gateway exports — so the ns/byte printed here
//! and the ones `/metrics` reports mean the same thing.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use offload::aead::{DataKey, Nonce};
use offload::meter::{EngineUsage, Meters};
use offload::tls::TlsEngine;
use offload::tls::loopback::Loopback;
use offload::xts::XtsKeyMaterial;
use offload::{Capabilities, Offload, OffloadConfig, Selection};

use gateway::config::{Config, EtagAlgorithm};
use gateway::meta::ChecksumAlgorithm;
use gateway::pipeline::checksum::{HashMeters, Hashes};

/// Arguments of `skyshard offload status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Read the `[offload]` section of this configuration file (default: `auto` for
    /// every job).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Bytes each engine processes for its calibration.
    #[arg(long, default_value = "32M", value_parser = gateway::config::units::parse_size)]
    pub calibrate: u64,
    /// Skip the calibration.
    #[arg(long)]
    pub no_calibration: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Everything `offload status` reports.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    /// The machine.
    pub machine: crate::bench::MachineInfo,
    /// What it offers the engines.
    pub capabilities: Capabilities,
    /// Engines chosen and passed over.
    pub selection: Selection,
    /// ns/byte of each chosen engine, measured now (empty without calibration).
    pub calibration: Vec<EngineUsage>,
}

/// Runs the command.
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?.offload,
        None => OffloadConfig::default(),
    };
    let caps = offload::probe();
    let (offload, selection) = Offload::select(&config, &caps).context("choosing engines")?;
    let hashes = HashMeters::register(&offload.meters);
    let calibration = if args.no_calibration {
        Vec::new()
    } else {
        calibrate(&offload, &hashes, args.calibrate as usize)?;
        offload.meters.snapshot().into_iter().filter(|u| u.bytes > 0).collect()
    };
    let status = Status { machine: crate::bench::MachineInfo::read(), capabilities: caps, selection, calibration };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

/// Runs every engine of `offload` (and the hash functions) over about `bytes` bytes,
/// charging their meters. TLS runs over loopback: the chosen engine serves, a
/// separately metered client talks to it, so the meters see the server's side only.
pub fn calibrate(offload: &Offload, hashes: &HashMeters, bytes: usize) -> anyhow::Result<()> {
    const CHUNK: usize = 1 << 20;
    let rounds = bytes.div_ceil(CHUNK).max(1);
    let mut buf = vec![0u8; CHUNK];
    offload.random.fill(&mut buf).map_err(|_| anyhow::anyhow!("the system random source failed"))?;

    let key = offload.aead.key(&DataKey::generate(offload.random.as_ref())?)?;
    for i in 0..rounds {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key.seal(&Nonce(nonce), b"calibration", &mut buf)?;
        key.open(&Nonce(nonce), b"calibration", &mut buf, &tag)?;
    }

    // 4-of-6 coding of 256 KiB symbols, as a segment of the default policy.
    let k = 4;
    let coeffs: Vec<u8> = (1..=(k * 6) as u8).collect();
    let mut out = vec![vec![0u8; CHUNK / k]; 6];
    for _ in 0..rounds {
        let inputs: Vec<&[u8]> = buf.chunks(CHUNK / k).collect();
        let mut outputs: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        offload.gf.dot_prod(&coeffs, &inputs, &mut outputs);
    }

    let mut crc = 0;
    for _ in 0..rounds {
        crc = offload.crc32c.append(crc, &buf);
    }
    std::hint::black_box(crc);

    let xts = offload.xts.key(&XtsKeyMaterial::generate(offload.random.as_ref())?);
    for round in 0..rounds {
        for (i, sector) in buf.chunks_mut(4096).enumerate() {
            xts.encrypt_sector((round * CHUNK / 4096 + i) as u128, sector);
        }
    }

    let passes = [
        (EtagAlgorithm::Md5, ChecksumAlgorithm::Sha256),
        (EtagAlgorithm::Blake3, ChecksumAlgorithm::Crc64Nvme),
        (EtagAlgorithm::Md5, ChecksumAlgorithm::Sha1),
        (EtagAlgorithm::Blake3, ChecksumAlgorithm::Crc32),
    ];
    for (etag, checksum) in passes {
        let mut h = Hashes::new(etag, Some(checksum), false, offload.crc32c.clone(), hashes);
        for _ in 0..rounds.div_ceil(2) {
            h.update(&buf);
        }
        std::hint::black_box(h.finish());
    }

    let client = TlsEngine::new(offload.tls.kind(), &Meters::default());
    let loopback = Loopback::new(offload.tls.clone(), client, None)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(loopback.exchange(rounds * CHUNK, 64 << 10)).context("TLS over loopback")?;
    Ok(())
}

/// The report as text.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let c = &s.capabilities;
    let flags: Vec<&str> = [
        (c.aes_ni, "AES-NI"),
        (c.pclmulqdq, "PCLMULQDQ"),
        (c.vaes, "VAES"),
        (c.vpclmulqdq, "VPCLMULQDQ"),
        (c.sse42, "SSE4.2"),
        (c.avx2, "AVX2"),
        (c.avx512f, "AVX-512F"),
        (c.avx512bw, "AVX-512BW"),
        (c.gfni, "GFNI"),
    ]
    .into_iter()
    .filter_map(|(has, name)| has.then_some(name))
    .collect();
    let _ = writeln!(out, "Machine: {} ({} CPUs, {})", s.machine.cpu, s.machine.cpus, c.arch);
    let _ = writeln!(out, "  CPU features: {}", flags.join(" "));
    let _ = writeln!(out, "  ISA-L: {}", c.isal.as_deref().or(c.isal_error.as_deref()).unwrap_or("-"));
    let ktls = if c.ktls { "available".to_string() } else { c.ktls_error.clone().unwrap_or_default() };
    let _ = writeln!(out, "  kernel TLS: {ktls}");
    let _ = writeln!(out, "\nEngines:");
    for choice in &s.selection.choices {
        let how = if choice.pinned { "configured" } else { "auto" };
        let _ = writeln!(out, "  {:<12} {} ({how})", choice.job, choice.chosen);
        for r in &choice.rejected {
            let _ = writeln!(out, "  {:<12}   passed over {}: {}", "", r.engine, r.reason);
        }
    }
    if !s.calibration.is_empty() {
        let _ = writeln!(out, "\nCalibration (this machine, now; one thread; TLS: server side over loopback):");
        let _ = writeln!(out, "  {:<10} {:<34} {:>10} {:>12} {:>9}", "job", "engine", "ns/byte", "cycles/byte", "GB/s");
        for u in &s.calibration {
            let gbs = if u.ns_per_byte > 0.0 { 1.0 / u.ns_per_byte } else { 0.0 };
            let _ = writeln!(
                out,
                "  {:<10} {:<34} {:>10.3} {:>12.2} {:>9.2}",
                u.job, u.engine, u.ns_per_byte, u.cycles_per_byte, gbs
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_charges_every_chosen_engine() {
        let (offload, _) = Offload::select(&OffloadConfig::default(), &offload::probe()).expect("select");
        let hashes = HashMeters::register(&offload.meters);
        calibrate(&offload, &hashes, 2 << 20).expect("calibrate");
        let usage = offload.meters.snapshot();
        for job in ["aead", "gf", "crc32c", "xts", "tls-send", "tls-recv"] {
            assert!(usage.iter().any(|u| u.job == job && u.bytes >= 2 << 20 && u.busy_ns > 0), "{job}: {usage:?}");
        }
        for engine in ["md5", "blake3", "sha256", "sha1", "crc32", "crc64nvme"] {
            assert!(usage.iter().any(|u| u.job == "hash" && u.engine == engine && u.bytes > 0), "{engine}");
        }
    }
}

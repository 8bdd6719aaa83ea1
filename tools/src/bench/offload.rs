//! `skyshard bench offload`: where the CPU of a PUT and a GET goes, engine by engine,
//! for every combination of engines this machine offers — TLS off, rustls, kernel
//! TLS; AES-GCM on the calling threads (`ring`) or on a dedicated pool (`pool`).
//!
//! Each combination runs the real path: six `skyshard edge` processes and a
//! `skyshard serve` process configured with that combination; this process is the
//! client (rustls, the same in every combination), uploading and downloading one
//! large object through presigned URLs. Before and after each operation it reads the
//! gateway's `/v1/offload` (per-engine meters and the process's CPU time), so the
//! figures are the gateway's alone: edges and client run in other processes.
//!
//! A second part sweeps TLS record sizes and write sizes over loopback for each TLS
//! engine. Everything is printed as a table, written as JSON and drawn as a PNG.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use offload::meter::{Meters, ticks_per_second};
use offload::tls::loopback::Loopback;
use offload::tls::{TlsEngine, TlsKind};

use super::MachineInfo;
use super::rig::{self, BenchClient, Rig, RigOptions};
use gateway::config::units::{format_size, parse_size};

/// Arguments of `skyshard bench offload`.
#[derive(Debug, Clone, clap::Args)]
pub struct OffloadBenchArgs {
    /// Size of the object each PUT and GET moves.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub size: u64,
    /// PUT+GET rounds per combination; the median round is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// TLS modes to run (default: off, rustls, and ktls where the kernel has it).
    #[arg(long, value_delimiter = ',')]
    pub tls: Vec<String>,
    /// AEAD engines to run.
    #[arg(long, value_delimiter = ',', default_value = "ring,pool")]
    pub aead: Vec<String>,
    /// Fragments needed to rebuild.
    #[arg(long, default_value_t = 4)]
    pub k: u8,
    /// Fragments written.
    #[arg(long, default_value_t = 6)]
    pub n: u8,
    /// Bytes each way per point of the TLS record and write size sweep (0 skips it).
    #[arg(long, default_value = "32M", value_parser = parse_size)]
    pub sweep_size: u64,
    /// Directory for the report (`offload.json`, `offload.png`) and the runs' logs.
    #[arg(long, default_value = "bench-offload")]
    pub out: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One operation of one combination, the median of its rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpResult {
    /// `PUT` or `GET`.
    pub op: &'static str,
    /// TLS mode of both legs: `off`, `rustls`, `ktls`.
    pub tls: String,
    /// AEAD engine.
    pub aead: String,
    /// Object bytes per second of wall time, in MiB/s.
    pub mib_per_s: f64,
    /// Gateway CPU time (user and system) per object byte.
    pub cpu_ns_per_byte: f64,
    /// The same in time-stamp-counter cycles.
    pub cpu_cycles_per_byte: f64,
    /// Engine time per object byte, by engine class (`TLS`, `AES-GCM`, `RLNC`,
    /// `CRC32C`, `hashing`), plus `rest` (the CPU no engine meter accounts for).
    pub breakdown: BTreeMap<String, f64>,
    /// Share of the gateway's CPU spent in TLS, by its meters.
    pub tls_share: f64,
}

/// One point of the TLS sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepPoint {
    /// TLS engine.
    pub engine: String,
    /// Plaintext bytes per record.
    pub record: usize,
    /// Bytes per write call.
    pub write: usize,
    /// Server sending: ns/byte of its TLS meter.
    pub send_ns_per_byte: f64,
    /// Server receiving: ns/byte of its TLS meter.
    pub recv_ns_per_byte: f64,
    /// Client to server, MiB/s of wall time.
    pub up_mib_per_s: f64,
    /// Server to client, MiB/s of wall time.
    pub down_mib_per_s: f64,
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The machine.
    pub machine: MachineInfo,
    /// Why kernel TLS was not run, if it was not.
    pub ktls_unavailable: Option<String>,
    /// Object size.
    pub size: u64,
    /// Coding.
    pub k: u8,
    /// Coding.
    pub n: u8,
    /// PUT and GET per combination.
    pub ops: Vec<OpResult>,
    /// TLS as its own cost: with TLS minus without, over with, per operation and
    /// AEAD engine (needs the `off` mode in the run).
    pub tls_share_by_difference: Vec<(String, String, String, f64)>,
    /// The record and write size sweep.
    pub sweep: Vec<SweepPoint>,
}

/// Engine meters of the gateway, as `/v1/offload` reports them.
#[derive(Debug, Clone, serde::Deserialize)]
struct Usage {
    job: String,
    busy_ns: u64,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct OffloadReport {
    usage: Vec<Usage>,
    process_cpu_seconds: f64,
}

/// The engine class a meter's job belongs to.
fn class(job: &str) -> &'static str {
    match job {
        "tls-send" | "tls-recv" => "TLS",
        "aead" => "AES-GCM",
        "gf" => "RLNC",
        "crc32c" => "CRC32C",
        "hash" => "hashing",
        _ => "other engines",
    }
}

/// Runs the benchmark.
pub fn run(args: &OffloadBenchArgs) -> anyhow::Result<()> {
    if args.size == 0 || args.rounds == 0 {
        bail!("--size and --rounds must be positive");
    }
    let caps = offload::probe();
    let ktls_unavailable = (!caps.ktls).then(|| caps.ktls_error.clone().unwrap_or_default());
    let modes: Vec<String> = if args.tls.is_empty() {
        let mut m = vec!["off".to_string(), "rustls".to_string()];
        if caps.ktls {
            m.push("ktls".into());
        }
        m
    } else {
        args.tls.clone()
    };
    for m in &modes {
        match m.as_str() {
            "off" | "rustls" => {}
            "ktls" if caps.ktls => {}
            "ktls" => bail!("kernel TLS is not available here: {}", ktls_unavailable.clone().unwrap_or_default()),
            other => bail!("unknown TLS mode {other:?} (off, rustls, ktls)"),
        }
    }
    for a in &args.aead {
        if !matches!(a.as_str(), "ring" | "rustcrypto" | "pool") {
            bail!("unknown AEAD engine {a:?} (ring, rustcrypto, pool)");
        }
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)?;
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut ops = Vec::new();
    for tls in &modes {
        for aead in &args.aead {
            eprintln!("bench offload: TLS {tls}, AEAD {aead}: {} rounds of {}", args.rounds, format_size(args.size));
            let combo = Combo { tls: tls.clone(), aead: aead.clone() };
            ops.extend(rt.block_on(run_combo(args, &combo, &work))?);
        }
    }
    let sweep = if args.sweep_size > 0 {
        let engines: Vec<TlsKind> = modes
            .iter()
            .filter_map(|m| match m.as_str() {
                "rustls" => Some(TlsKind::Rustls),
                "ktls" => Some(TlsKind::Ktls),
                _ => None,
            })
            .collect();
        rt.block_on(sweep_tls(&engines, args.sweep_size as usize))?
    } else {
        Vec::new()
    };
    let tls_share_by_difference = by_difference(&ops);
    let report = Report {
        machine: MachineInfo::read(),
        ktls_unavailable,
        size: args.size,
        k: args.k,
        n: args.n,
        ops,
        tls_share_by_difference,
        sweep,
    };
    let png = out.join("offload.png");
    let chart = super::chart::draw(&report, &png);
    super::publish(&out, "offload.json", &report, args.json, render)?;
    match chart {
        Ok(()) => eprintln!("bench offload: wrote {} and {}", out.join("offload.json").display(), png.display()),
        Err(e) => bail!("drawing {}: {e:#}", png.display()),
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// TLS mode and AEAD engine of one run.
#[derive(Debug, Clone)]
struct Combo {
    tls: String,
    aead: String,
}

async fn run_combo(args: &OffloadBenchArgs, combo: &Combo, work: &Path) -> anyhow::Result<Vec<OpResult>> {
    let dir = work.join(format!("{}-{}", combo.tls, combo.aead));
    let options = RigOptions {
        tls: combo.tls.clone(),
        aead: combo.aead.clone(),
        k: args.k,
        n: args.n,
        extra: String::new(),
        gateway_binary: None,
    };
    let rig = Rig::start(&dir, &work.join("ca"), &options).await?;
    let client = &rig.client;
    let pattern = rig::pattern()?;
    let size = args.size;
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    for round in 0..args.rounds {
        let object = format!("object-{round}");
        let before = report(client).await?;
        let started = Instant::now();
        client.put(&object, size, &pattern).await?;
        let put_wall = started.elapsed();
        let middle = report(client).await?;
        let started = Instant::now();
        client.get_verified(&object, size, &pattern).await?;
        let get_wall = started.elapsed();
        let after = report(client).await?;
        puts.push(op_result("PUT", combo, size, put_wall, &before, &middle));
        gets.push(op_result("GET", combo, size, get_wall, &middle, &after));
        client.delete(&object).await?;
    }
    Ok(vec![median_op(puts), median_op(gets)])
}

/// The gateway's `/v1/offload`.
async fn report(client: &BenchClient) -> anyhow::Result<OffloadReport> {
    Ok(serde_json::from_slice(&client.admin("/v1/offload").await?)?)
}

fn op_result(
    op: &'static str,
    combo: &Combo,
    size: u64,
    wall: Duration,
    before: &OffloadReport,
    after: &OffloadReport,
) -> OpResult {
    let bytes = size as f64;
    let cpu_ns = (after.process_cpu_seconds - before.process_cpu_seconds).max(0.0) * 1e9;
    let mut breakdown: BTreeMap<String, f64> = BTreeMap::new();
    for (a, b) in after.usage.iter().zip(&before.usage) {
        let ns = a.busy_ns.saturating_sub(b.busy_ns) as f64;
        *breakdown.entry(class(&a.job).to_string()).or_default() += ns / bytes;
    }
    breakdown.retain(|_, v| *v > 0.0);
    let metered: f64 = breakdown.values().sum();
    let cpu_ns_per_byte = cpu_ns / bytes;
    breakdown.insert("rest".into(), (cpu_ns_per_byte - metered).max(0.0));
    let tls = breakdown.get("TLS").copied().unwrap_or(0.0);
    OpResult {
        op,
        tls: combo.tls.clone(),
        aead: combo.aead.clone(),
        mib_per_s: bytes / (1 << 20) as f64 / wall.as_secs_f64(),
        cpu_ns_per_byte,
        cpu_cycles_per_byte: cpu_ns_per_byte * ticks_per_second() / 1e9,
        breakdown,
        tls_share: if cpu_ns_per_byte > 0.0 { (tls / cpu_ns_per_byte).min(1.0) } else { 0.0 },
    }
}

/// The round with the median CPU per byte.
fn median_op(mut v: Vec<OpResult>) -> OpResult {
    v.sort_by(|a, b| a.cpu_ns_per_byte.total_cmp(&b.cpu_ns_per_byte));
    let mid = (v.len() - 1) / 2;
    v.swap_remove(mid)
}

/// TLS's share by difference: (CPU with TLS − CPU without) / CPU with TLS.
fn by_difference(ops: &[OpResult]) -> Vec<(String, String, String, f64)> {
    let mut out = Vec::new();
    for with in ops.iter().filter(|o| o.tls != "off") {
        if let Some(without) = ops.iter().find(|o| o.tls == "off" && o.op == with.op && o.aead == with.aead) {
            let share = (with.cpu_ns_per_byte - without.cpu_ns_per_byte) / with.cpu_ns_per_byte;
            out.push((with.op.to_string(), with.tls.clone(), with.aead.clone(), share));
        }
    }
    out
}

/// Write size of the record-size sweep.
pub const SWEEP_WRITE: usize = 64 << 10;
/// Record size of the write-size sweep (the protocol's largest).
pub const SWEEP_RECORD: usize = 16 << 10;

/// Record sizes and write sizes over loopback, per TLS engine: the server's meters.
async fn sweep_tls(engines: &[TlsKind], len: usize) -> anyhow::Result<Vec<SweepPoint>> {
    let mut points = Vec::new();
    let records = [1 << 10, 2 << 10, 4 << 10, 8 << 10];
    let writes = [1 << 10, 4 << 10, 16 << 10, 64 << 10];
    for &kind in engines {
        // Each point once: the record sweep at SWEEP_WRITE, the write sweep at
        // SWEEP_RECORD (which includes their crossing).
        let grid = records.iter().map(|&r| (r, SWEEP_WRITE)).chain(writes.iter().map(|&w| (SWEEP_RECORD, w)));
        for (record, write) in grid {
            let mut runs = Vec::new();
            for _ in 0..3 {
                let meters = Meters::default();
                let server = TlsEngine::new(kind, &meters);
                let client = TlsEngine::new(kind, &Meters::default());
                let max_record = (record < SWEEP_RECORD).then_some(record);
                let lo = Loopback::new(server, client, max_record)?;
                let ex = lo.exchange(len, write).await.with_context(|| format!("{} loopback", kind.name()))?;
                let usage = meters.snapshot();
                let ns = |job: &str| usage.iter().find(|u| u.job == job).map_or(0.0, |u| u.ns_per_byte);
                let mib = |d: Duration| len as f64 / (1 << 20) as f64 / d.as_secs_f64().max(1e-9);
                runs.push(SweepPoint {
                    engine: kind.name().into(),
                    record,
                    write,
                    send_ns_per_byte: ns("tls-send"),
                    recv_ns_per_byte: ns("tls-recv"),
                    up_mib_per_s: mib(ex.upload),
                    down_mib_per_s: mib(ex.download),
                });
            }
            runs.sort_by(|a, b| {
                (a.send_ns_per_byte + a.recv_ns_per_byte).total_cmp(&(b.send_ns_per_byte + b.recv_ns_per_byte))
            });
            points.push(runs.swap_remove(1));
        }
    }
    Ok(points)
}

/// The report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Skyshard offload benchmark — {} ({} CPUs); {} object, {}-of-{}; gateway process only",
        r.machine.cpu,
        r.machine.cpus,
        format_size(r.size),
        r.k,
        r.n
    );
    if let Some(why) = &r.ktls_unavailable {
        let _ = writeln!(out, "kernel TLS not run: {why}");
    }
    let classes = ["TLS", "AES-GCM", "RLNC", "CRC32C", "hashing", "other engines", "rest"];
    let _ = write!(out, "\n{:<4} {:<7} {:<6} {:>8} {:>8} {:>8} |", "op", "tls", "aead", "MiB/s", "ns/B", "cyc/B");
    for c in classes {
        let _ = write!(out, " {:>8}", short(c));
    }
    let _ = writeln!(out, " {:>9}", "TLS share");
    for o in &r.ops {
        let _ = write!(
            out,
            "{:<4} {:<7} {:<6} {:>8.1} {:>8.2} {:>8.2} |",
            o.op, o.tls, o.aead, o.mib_per_s, o.cpu_ns_per_byte, o.cpu_cycles_per_byte
        );
        for c in classes {
            let _ = write!(out, " {:>8.2}", o.breakdown.get(c).copied().unwrap_or(0.0));
        }
        let _ = writeln!(out, " {:>8.0}%", o.tls_share * 100.0);
    }
    let _ = writeln!(out, "(ns/B and the engine columns: gateway CPU per object byte; rest = CPU no engine meter saw)");
    if !r.tls_share_by_difference.is_empty() {
        let _ = writeln!(out, "\nTLS share by difference ((CPU with TLS - CPU with TLS off) / CPU with TLS):");
        for (op, tls, aead, share) in &r.tls_share_by_difference {
            let _ = writeln!(out, "  {op:<4} {tls:<7} {aead:<6} {:>5.0}%", share * 100.0);
        }
    }
    if !r.sweep.is_empty() {
        let _ = writeln!(out, "\nTLS over loopback (server side):");
        let _ = writeln!(
            out,
            "  {:<7} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10}",
            "engine", "record", "write", "send ns/B", "recv ns/B", "up MiB/s", "down MiB/s"
        );
        for p in &r.sweep {
            let _ = writeln!(
                out,
                "  {:<7} {:>8} {:>8} {:>12.3} {:>12.3} {:>10.0} {:>10.0}",
                p.engine,
                format_size(p.record as u64),
                format_size(p.write as u64),
                p.send_ns_per_byte,
                p.recv_ns_per_byte,
                p.up_mib_per_s,
                p.down_mib_per_s
            );
        }
    }
    out
}

fn short(class: &str) -> &str {
    match class {
        "AES-GCM" => "AES",
        "hashing" => "hash",
        "other engines" => "other",
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(process: f64, tls: u64, aead: u64) -> OffloadReport {
        OffloadReport {
            usage: vec![Usage { job: "tls-send".into(), busy_ns: tls }, Usage { job: "aead".into(), busy_ns: aead }],
            process_cpu_seconds: process,
        }
    }

    #[test]
    fn breakdown_is_per_object_byte_and_the_rest_is_unmetered_cpu() {
        let combo = Combo { tls: "rustls".into(), aead: "ring".into() };
        let before = report(1.0, 100, 100);
        let after = report(2.0, 100 + 400_000_000, 100 + 100_000_000);
        let r = op_result("PUT", &combo, 1_000_000_000, Duration::from_secs(1), &before, &after);
        assert!((r.cpu_ns_per_byte - 1.0).abs() < 1e-9);
        assert!((r.breakdown["TLS"] - 0.4).abs() < 1e-9 && (r.breakdown["AES-GCM"] - 0.1).abs() < 1e-9);
        assert!((r.breakdown["rest"] - 0.5).abs() < 1e-9);
        assert!((r.tls_share - 0.4).abs() < 1e-9);
    }

    #[test]
    fn tls_share_by_difference_pairs_the_same_op_and_aead() {
        let mk = |op: &'static str, tls: &str, ns: f64| OpResult {
            op,
            tls: tls.into(),
            aead: "ring".into(),
            mib_per_s: 1.0,
            cpu_ns_per_byte: ns,
            cpu_cycles_per_byte: ns,
            breakdown: BTreeMap::new(),
            tls_share: 0.0,
        };
        let ops = vec![mk("PUT", "off", 2.0), mk("PUT", "rustls", 5.0), mk("GET", "rustls", 4.0)];
        let d = by_difference(&ops);
        assert_eq!(d.len(), 1);
        assert!((d[0].3 - 0.6).abs() < 1e-9);
    }
}

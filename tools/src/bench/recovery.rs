//! `skyshard bench recovery`: what writing manifests to the locations costs a PUT,
//! and how fast `skyshard recover` rebuilds a lost metadata store — measured in one
//! run against six edge-store processes (4-of-6, rustls on both legs).
//!
//! 1. **PUT overhead**: small objects (many clients) and large objects (one client)
//!    written through this build's gateway and through a previous release's
//!    (`--baseline`, a `skyshard` binary built from it), alternately, twice each;
//!    the medians' ratio is the overhead.
//! 2. **Recovery**: objects written, the gateway stopped and its data directory
//!    deleted (the master key is in the configuration), `skyshard recover` timed;
//!    against a client reading every object once through the gateway before (the
//!    cheapest way anything could touch every object).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::MachineInfo;
use super::durability::each;
use super::rig::{self, Rig, RigOptions};
use gateway::config::units::{format_size, parse_size};

/// Arguments of `skyshard bench recovery`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoveryBenchArgs {
    /// Objects written, then recovered.
    #[arg(long, default_value_t = 10_000)]
    pub objects: usize,
    /// Size of each small object.
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    pub small: u64,
    /// Small objects per PUT-overhead round.
    #[arg(long, default_value_t = 2_000)]
    pub small_count: usize,
    /// Size of each large object.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub large: u64,
    /// Large objects per PUT-overhead round.
    #[arg(long, default_value_t = 2)]
    pub large_count: usize,
    /// PUT rounds per build (alternating).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Concurrent clients for small objects.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// A previous release's `skyshard` binary, for the PUT overhead baseline.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Directory for the report (`recovery.json`) and the runs' logs.
    #[arg(long, default_value = "bench-recovery")]
    pub out: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// PUT rates of one build.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PutRates {
    /// Small objects per second (median of the rounds).
    pub small_per_s: f64,
    /// Large-object MB/s (median of the rounds).
    pub large_mb_s: f64,
    /// Each round's small objects per second.
    pub small_rounds: Vec<f64>,
    /// Each round's large-object MB/s.
    pub large_rounds: Vec<f64>,
}

impl PutRates {
    fn of(small: Vec<f64>, large: Vec<f64>) -> Self {
        Self {
            small_per_s: median(small.clone()),
            large_mb_s: median(large.clone()),
            small_rounds: small,
            large_rounds: large,
        }
    }
}

/// The report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoveryReport {
    /// The machine.
    pub machine: MachineInfo,
    /// This build.
    pub current: PutRates,
    /// The previous release, if measured.
    pub baseline: Option<PutRates>,
    /// Objects recovered.
    pub objects: usize,
    /// Seconds `skyshard recover` took.
    pub recover_s: f64,
    /// Objects per second recovered.
    pub recover_per_s: f64,
    /// Seconds a client took to GET every object once (same clients).
    pub read_all_s: f64,
    /// What recover reported.
    pub recover_report: serde_json::Value,
}

fn options(binary: Option<PathBuf>) -> RigOptions {
    RigOptions { tls: "rustls".into(), aead: "ring".into(), k: 4, n: 6, extra: String::new(), gateway_binary: binary }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 0 => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        n => v[n / 2],
    }
}

/// One round of PUTs through a fresh rig: small objects per second, large MB/s.
async fn put_round(
    dir: &std::path::Path,
    a: &RecoveryBenchArgs,
    binary: Option<PathBuf>,
) -> anyhow::Result<(f64, f64)> {
    // A fresh rig each round (an earlier run's directory goes).
    let _ = std::fs::remove_dir_all(dir);
    let rig = Rig::start(dir, &a.out.join("ca"), &options(binary)).await?;
    let pattern = rig::pattern()?;
    let c = &rig.client;
    let t = each(a.small_count, a.clients, |i| {
        let p = pattern.clone();
        async move { c.put(&format!("s{i}"), a.small, &p).await }
    })
    .await?;
    let small = a.small_count as f64 / t.as_secs_f64();
    let started = Instant::now();
    for i in 0..a.large_count {
        c.put(&format!("l{i}"), a.large, &pattern).await?;
    }
    let large = (a.large * a.large_count as u64) as f64 / 1e6 / started.elapsed().as_secs_f64();
    Ok((small, large))
}

/// Runs the benchmark.
pub fn run(a: &RecoveryBenchArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(measure(a))?;
    super::publish(&a.out, "recovery.json", &report, a.json, render)
}

async fn measure(a: &RecoveryBenchArgs) -> anyhow::Result<RecoveryReport> {
    // 1. PUT overhead, alternating builds.
    let (mut cur, mut base) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for round in 0..a.rounds {
        if let Some(b) = &a.baseline {
            let (s, l) = put_round(&a.out.join(format!("put-baseline-{round}")), a, Some(b.clone())).await?;
            base.0.push(s);
            base.1.push(l);
        }
        let (s, l) = put_round(&a.out.join(format!("put-current-{round}")), a, None).await?;
        cur.0.push(s);
        cur.1.push(l);
    }
    let current = PutRates::of(cur.0, cur.1);
    let baseline = a.baseline.as_ref().map(|_| PutRates::of(base.0, base.1));

    // 2. Recovery.
    let dir = a.out.join("recover");
    let _ = std::fs::remove_dir_all(&dir);
    let mut rig = Rig::start(&dir, &a.out.join("ca"), &options(None)).await?;
    let pattern = rig::pattern()?;
    let c = &rig.client;
    each(a.objects, a.clients, |i| {
        let p = pattern.clone();
        async move { c.put(&format!("o{i}"), a.small, &p).await }
    })
    .await?;
    let read_all = each(a.objects, a.clients, |i| {
        let p = pattern.clone();
        async move { c.get_verified(&format!("o{i}"), a.small, &p).await }
    })
    .await?;
    // The records of the bucket reach the locations with the catalog: wait for it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    rig.stop_gateway().await;
    std::fs::remove_dir_all(&rig.gateway_data).context("losing the data directory")?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let out = tokio::process::Command::new(exe)
        .args(["recover", "--json", "--config"])
        .arg(&rig.config)
        .env("SKYSHARD_LOG", "warn")
        .output()
        .await?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("skyshard recover failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let recover_report: serde_json::Value = serde_json::from_slice(&out.stdout).context("recover's report")?;
    let restored = recover_report["restored"].as_u64().unwrap_or(0) as usize;
    if restored != a.objects {
        bail!("recover restored {restored} of {} objects: {recover_report}", a.objects);
    }
    Ok(RecoveryReport {
        machine: MachineInfo::read(),
        current,
        baseline,
        objects: a.objects,
        recover_s: took.as_secs_f64(),
        recover_per_s: a.objects as f64 / took.as_secs_f64(),
        read_all_s: read_all.as_secs_f64(),
        recover_report,
    })
}

fn render(r: &RecoveryReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "machine: {}, {} CPUs", r.machine.cpu, r.machine.cpus);
    let _ = writeln!(
        s,
        "PUT (medians of {} rounds)            this build   previous release   ratio",
        r.current.small_rounds.len()
    );
    let ratio = |c: f64, b: Option<f64>| b.map_or("-".into(), |b| format!("{:.2}x", c / b));
    let b = r.baseline.as_ref();
    let _ = writeln!(
        s,
        "  small objects per s                {:>9.0}   {:>16}   {}",
        r.current.small_per_s,
        b.map_or("-".into(), |b| format!("{:.0}", b.small_per_s)),
        ratio(r.current.small_per_s, b.map(|b| b.small_per_s))
    );
    let _ = writeln!(
        s,
        "  large objects MB/s                 {:>9.1}   {:>16}   {}",
        r.current.large_mb_s,
        b.map_or("-".into(), |b| format!("{:.1}", b.large_mb_s)),
        ratio(r.current.large_mb_s, b.map(|b| b.large_mb_s))
    );
    let _ = writeln!(
        s,
        "recover: {} objects in {:.1} s ({:.0} objects/s); a client reading each once: {:.1} s ({:.2}x recover's time)",
        r.objects,
        r.recover_s,
        r.recover_per_s,
        r.read_all_s,
        r.read_all_s / r.recover_s
    );
    let _ = writeln!(
        s,
        "object size {}",
        format_size(r.recover_report["bytes"].as_u64().unwrap_or(0) / r.objects.max(1) as u64)
    );
    s
}

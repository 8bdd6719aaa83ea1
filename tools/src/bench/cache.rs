//! `skyshard bench cache`: what the fragment cache buys a read-mostly, skewed
//! workload, measured in one run.
//!
//! 1. **Policies** (in process): LRU against S3-FIFO on a Zipf-distributed stream of
//!    object reads, at several cache sizes — the hit ratio of each.
//! 2. **End to end**: six edge-store processes and a gateway (rustls on both legs),
//!    once with no cache and once per eviction policy (the cache filled by reads,
//!    smaller than the working set); the same Zipf sequence of GETs from concurrent
//!    clients after a warm-up; throughput, latency p50/p99, the cache's hit ratio and
//!    the bytes it served against those read from locations.
//!
//! The locations here are loopback processes whose files sit in the page cache, the
//! fastest a location can be: against real WAN locations a hit saves far more.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::MachineInfo;
use super::rig::{self, Rig, RigOptions};
use gateway::cache::evict::{Zipf, by_name, hit_ratio};
use gateway::config::units::{format_size, parse_size};

/// Arguments of `skyshard bench cache`.
#[derive(Debug, Clone, clap::Args)]
pub struct CacheBenchArgs {
    /// Objects in the working set.
    #[arg(long, default_value_t = 192)]
    pub objects: usize,
    /// Size of each object.
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    pub object_size: u64,
    /// Size of the cache file (smaller than the working set's fragments).
    #[arg(long, default_value = "48M", value_parser = parse_size)]
    pub cache_size: u64,
    /// Measured GETs per configuration (after as many again to warm up).
    #[arg(long, default_value_t = 1200)]
    pub requests: usize,
    /// Zipf exponent of the object popularity.
    #[arg(long, default_value_t = 0.99)]
    pub zipf: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Directory for the report (`cache.json`) and the runs' logs.
    #[arg(long, default_value = "bench-cache")]
    pub out: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Hit ratios of the policies at one cache size (in process).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyPoint {
    /// Cache size as a fraction of the working set.
    pub cache_fraction: f64,
    /// LRU's hit ratio.
    pub lru: f64,
    /// S3-FIFO's hit ratio.
    pub s3fifo: f64,
}

/// One end-to-end configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GetRun {
    /// `off`, `lru` or `s3fifo`.
    pub cache: String,
    /// Object bytes per second, MiB/s.
    pub mib_per_s: f64,
    /// Median GET latency, ms.
    pub p50_ms: f64,
    /// 99th percentile GET latency, ms.
    pub p99_ms: f64,
    /// Fragment lookups the cache answered, over all lookups (0 with no cache).
    pub hit_ratio: f64,
    /// Fragment bytes served by the cache.
    pub cache_bytes: f64,
    /// Fragment bytes read from locations (with the cache on).
    pub location_bytes: f64,
}

/// The report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The machine.
    pub machine: MachineInfo,
    /// Working set.
    pub objects: usize,
    /// Object size.
    pub object_size: u64,
    /// Cache size.
    pub cache_size: u64,
    /// Zipf exponent.
    pub zipf: f64,
    /// The in-process policy comparison.
    pub policies: Vec<PolicyPoint>,
    /// The end-to-end runs.
    pub gets: Vec<GetRun>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Runs the benchmark.
pub fn run(args: &CacheBenchArgs) -> anyhow::Result<()> {
    if args.objects == 0 || args.object_size == 0 || args.requests == 0 || args.clients == 0 {
        bail!("--objects, --object-size, --requests and --clients must be positive");
    }
    // 1. Policies, in process: keys are objects, sizes in 4 KiB blocks.
    let blocks = args.object_size.div_ceil(4096).max(1);
    let mut policies = Vec::new();
    for fraction in [0.05, 0.1, 0.2, 0.4] {
        let capacity = ((args.objects as f64 * fraction) as u64 * blocks).max(blocks);
        let ratio = |name: &str| {
            let mut p = by_name(name, capacity).expect("known policy");
            let mut z = Zipf::new(args.objects, args.zipf, 42);
            hit_ratio(p.as_mut(), &mut z, 50 * args.objects, |_| blocks)
        };
        policies.push(PolicyPoint { cache_fraction: fraction, lru: ratio("lru"), s3fifo: ratio("s3fifo") });
    }

    // 2. End to end.
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut gets = Vec::new();
    for mode in ["off", "lru", "s3fifo"] {
        eprintln!("bench cache: cache {mode}");
        gets.push(rt.block_on(run_gets(args, mode, &work))?);
    }
    let report = Report {
        machine: MachineInfo::read(),
        objects: args.objects,
        object_size: args.object_size,
        cache_size: args.cache_size,
        zipf: args.zipf,
        policies,
        gets,
    };
    super::publish(&out, "cache.json", &report, args.json, render)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

async fn run_gets(args: &CacheBenchArgs, mode: &str, work: &std::path::Path) -> anyhow::Result<GetRun> {
    let dir = work.join(mode);
    let extra = if mode == "off" {
        String::new()
    } else {
        format!(
            "[cache]\npath = \"{}\"\nsize = {}\npolicy = \"{mode}\"\nwrite_through = false\n",
            dir.join("cache.img").display(),
            args.cache_size
        )
    };
    let options = RigOptions { tls: "rustls".into(), aead: "ring".into(), k: 4, n: 6, extra, gateway_binary: None };
    let rig = Arc::new(Rig::start(&dir, &work.join("ca"), &options).await?);
    let pattern = rig::pattern()?;
    for i in 0..args.objects {
        rig.client.put(&format!("o{i}"), args.object_size, &pattern).await?;
    }
    // One Zipf sequence for every configuration: warm-up, then the measured part.
    let mut zipf = Zipf::new(args.objects, args.zipf, 7);
    let sequence: Arc<Vec<u64>> = Arc::new((0..2 * args.requests).map(|_| zipf.next_key()).collect());
    let drive = |range: std::ops::Range<usize>| {
        let (rig, sequence, pattern) = (rig.clone(), sequence.clone(), pattern.clone());
        let next = Arc::new(AtomicUsize::new(range.start));
        let size = args.object_size;
        let clients = (0..args.clients).map(move |_| {
            let (rig, sequence, pattern, next, end) =
                (rig.clone(), sequence.clone(), pattern.clone(), next.clone(), range.end);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return anyhow::Ok(latencies);
                    }
                    let started = Instant::now();
                    rig.client.get_verified(&format!("o{}", sequence[i]), size, &pattern).await?;
                    latencies.push(started.elapsed());
                }
            })
        });
        futures::future::join_all(clients)
    };
    for r in drive(0..args.requests).await {
        r??;
    }
    let before = rig.client.metrics().await?;
    let started = Instant::now();
    let mut latencies = Vec::new();
    for r in drive(args.requests..2 * args.requests).await {
        latencies.extend(r??);
    }
    let wall = started.elapsed();
    let after = rig.client.metrics().await?;
    let delta = |name: &str| after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0);
    let (hits, misses) = (delta("skyshard_cache_hits_total"), delta("skyshard_cache_misses_total"));
    latencies.sort();
    Ok(GetRun {
        cache: mode.into(),
        mib_per_s: (args.requests as u64 * args.object_size) as f64 / (1 << 20) as f64 / wall.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        hit_ratio: if hits + misses > 0.0 { hits / (hits + misses) } else { 0.0 },
        cache_bytes: delta("skyshard_cache_read_bytes_total"),
        location_bytes: delta("skyshard_cache_location_read_bytes_total"),
    })
}

/// The report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Skyshard cache benchmark — {} ({} CPUs); {} objects of {} (Zipf {}), cache {}",
        r.machine.cpu,
        r.machine.cpus,
        r.objects,
        format_size(r.object_size),
        r.zipf,
        format_size(r.cache_size)
    );
    let _ = writeln!(out, "\nEviction policies in process (hit ratio by cache size, as a share of the working set):");
    let _ = writeln!(out, "  {:>8} {:>8} {:>8}", "cache", "LRU", "S3-FIFO");
    for p in &r.policies {
        let _ =
            writeln!(out, "  {:>7.0}% {:>7.1}% {:>7.1}%", p.cache_fraction * 100.0, p.lru * 100.0, p.s3fifo * 100.0);
    }
    let _ = writeln!(out, "\nGETs through the gateway (6 edge stores, 4-of-6, rustls both legs):");
    let _ = writeln!(
        out,
        "  {:<8} {:>9} {:>9} {:>9} {:>10} {:>14} {:>16}",
        "cache", "MiB/s", "p50 ms", "p99 ms", "hit ratio", "from cache", "from locations"
    );
    for g in &r.gets {
        let _ = writeln!(
            out,
            "  {:<8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}% {:>14} {:>16}",
            g.cache,
            g.mib_per_s,
            g.p50_ms,
            g.p99_ms,
            g.hit_ratio * 100.0,
            if g.cache == "off" { "-".into() } else { format_size(g.cache_bytes as u64) },
            if g.cache == "off" { "-".into() } else { format_size(g.location_bytes as u64) },
        );
    }
    out
}

//! `skyshard bench durability`: how fast the gateway keeps redundancy, and what
//! that costs its clients, measured in one run against six edge-store processes
//! (4-of-6, rustls on both legs).
//!
//! 1. **Repair and scrub capacity** (rates unlimited): objects are written, one
//!    store loses every file (a disk replaced); a scrub job finds the fragments
//!    missing, a repair job rebuilds them by recoding. Fragment bytes checked and
//!    rebuilt per second, against the rate a client's GETs of the same objects read
//!    at (median of three rounds), all in this run.
//! 2. **Collection**: small objects written by concurrent clients, then deleted; a
//!    collection job clears their seals. Seals collected per second against seals
//!    written per second: collection keeps up when the ratio is at least 1.
//! 3. **The cost of repair to clients**: with the default repair rate, concurrent
//!    clients' GET and PUT throughput while a repair runs (one store was down while
//!    objects were written, and is back) against the same with nothing to repair
//!    (measured before and after; their mean is the baseline).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};

use super::MachineInfo;
use super::rig::{self, Rig, RigOptions};
use gateway::config::units::{format_size, parse_size};

/// Arguments of `skyshard bench durability`.
#[derive(Debug, Clone, clap::Args)]
pub struct DurabilityBenchArgs {
    /// Objects GET and repaired in part 1, and read by clients in part 3.
    #[arg(long, default_value_t = 48)]
    pub objects: usize,
    /// Size of each object.
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    pub object_size: u64,
    /// Garbage seals to collect in part 2.
    #[arg(long, default_value_t = 10_000)]
    pub garbage: usize,
    /// Size of each garbage object.
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    pub garbage_size: u64,
    /// Bytes written while one store is down in part 3 (what the repair rebuilds
    /// while clients are measured).
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    pub degraded: u64,
    /// Length of each measured client window in part 3, seconds.
    #[arg(long, default_value_t = 8.0)]
    pub window: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Directory for the report (`durability.json`) and the runs' logs.
    #[arg(long, default_value = "bench-durability")]
    pub out: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Part 1.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Capacity {
    /// Object bytes per second a client's GETs read (median of three rounds), MiB/s.
    pub get_mib_s: f64,
    /// Fragment bytes the scrub job read back and checked per second, MiB/s.
    pub scrub_mib_s: f64,
    /// Fragments the scrub found missing.
    pub scrub_found_missing: u64,
    /// Fragment bytes the repair job rebuilt per second, MiB/s.
    pub repair_mib_s: f64,
    /// Surviving fragment bytes it read per second to do so, MiB/s.
    pub repair_read_mib_s: f64,
    /// Fragments rebuilt.
    pub rebuilt: u64,
}

/// Part 2.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Collection {
    /// Seals (small objects) written per second by the clients.
    pub put_seals_s: f64,
    /// Objects deleted per second by the clients.
    pub delete_s: f64,
    /// Seals the collection job cleared per second (each one fragment deleted at
    /// each of six locations).
    pub gc_seals_s: f64,
    /// Seals it collected.
    pub collected: u64,
}

/// Client throughput in one window of part 3.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Window {
    /// GET object bytes per second, MiB/s.
    pub get_mib_s: f64,
    /// PUT object bytes per second, MiB/s.
    pub put_mib_s: f64,
    /// Fragment bytes rebuilt per second meanwhile, MiB/s.
    pub repair_mib_s: f64,
}

/// Part 3.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Cost {
    /// Nothing to repair, before.
    pub idle_before: Window,
    /// While the repair runs at its default rate.
    pub repairing: Window,
    /// Nothing to repair, after.
    pub idle_after: Window,
    /// Whether the repair was still running when the measured windows ended.
    pub repair_outlasted_windows: bool,
    /// Seconds the whole repair took.
    pub repair_seconds: f64,
}

/// The report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The machine.
    pub machine: MachineInfo,
    /// Object size.
    pub object_size: u64,
    /// Objects.
    pub objects: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Part 1.
    pub capacity: Capacity,
    /// Part 2.
    pub collection: Collection,
    /// Part 3.
    pub cost: Cost,
}

const MIB: f64 = (1 << 20) as f64;

/// Runs the benchmark.
pub fn run(args: &DurabilityBenchArgs) -> anyhow::Result<()> {
    if args.objects == 0 || args.object_size == 0 || args.garbage == 0 || args.clients == 0 || args.window <= 0.0 {
        bail!("--objects, --object-size, --garbage, --clients and --window must be positive");
    }
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let pattern = rig::pattern()?;
    eprintln!("bench durability: repair and scrub capacity, collection");
    let (capacity, collection) = rt.block_on(capacity_and_collection(args, &work, &pattern))?;
    eprintln!("bench durability: the cost of repair to clients");
    let cost = rt.block_on(cost(args, &work, &pattern))?;
    let report = Report {
        machine: MachineInfo::read(),
        object_size: args.object_size,
        objects: args.objects,
        clients: args.clients,
        capacity,
        collection,
        cost,
    };
    super::publish(&out, "durability.json", &report, args.json, render)?;
    // The logs stay; the stores' gigabytes go.
    for entry in walk_dirs(&work) {
        if entry.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("edge-")) && entry.is_dir() {
            let _ = std::fs::remove_dir_all(&entry);
        }
    }
    Ok(())
}

/// Directories two levels below `dir`.
fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let level = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d).map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default()
    };
    level(dir).iter().flat_map(|d| level(d)).collect()
}

fn options(extra: &str) -> RigOptions {
    RigOptions { tls: "rustls".into(), aead: "ring".into(), k: 4, n: 6, extra: extra.into(), gateway_binary: None }
}

/// Runs `op(i)` for `0..count`, `clients` at a time; the time it took.
pub(super) async fn each<F, Fut>(count: usize, clients: usize, op: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    futures::stream::iter((0..count).map(op)).buffer_unordered(clients).try_collect::<Vec<()>>().await?;
    Ok(started.elapsed())
}

/// Runs `op(j)` with `clients` at a time for `window`; the operations done.
async fn during<F, Fut>(window: Duration, clients: usize, op: F) -> anyhow::Result<u64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + window;
    let ops = futures::stream::iter(0..).take_while(|_| std::future::ready(Instant::now() < deadline)).map(op);
    let done: Vec<()> = ops.buffer_unordered(clients).try_collect().await?;
    Ok(done.len() as u64)
}

/// A counter from the gateway's metrics.
async fn counter(rig: &Rig, name: &str) -> anyhow::Result<f64> {
    Ok(rig.client.metrics().await?.get(name).copied().unwrap_or(0.0))
}

/// Starts a job with `skyshard admin ARGS --wait`; its final state and how long it
/// took.
async fn job(rig: &Rig, args: &[&str]) -> anyhow::Result<(serde_json::Value, Duration)> {
    let started = Instant::now();
    let j = rig.admin_cli(args).await?;
    if j["state"] != "succeeded" {
        bail!("{} did not succeed: {j}", args.join(" "));
    }
    Ok((j, started.elapsed()))
}

async fn capacity_and_collection(
    args: &DurabilityBenchArgs,
    work: &Path,
    pattern: &Bytes,
) -> anyhow::Result<(Capacity, Collection)> {
    // Nothing in the background: every step is a job, measured alone. Nothing reads
    // what is deleted here, so garbage is collectable at once (no retired grace).
    let extra = "[durability]\nrepair = false\nrepair_rate = \"0\"\nscrub_rate = \"0\"\nsweep_interval = \"0s\"\n\
                 [pipeline]\ngc_interval = \"1h\"\nretired_grace = \"0s\"\n";
    let rig = Rig::start(&work.join("capacity"), &work.join("ca"), &options(extra)).await?;
    let c = &rig.client;
    let size = args.object_size;
    each(args.objects, args.clients, |i| async move { c.put(&format!("o{i}"), size, pattern).await }).await?;
    let mut rounds = Vec::new();
    for _ in 0..3 {
        rounds.push(
            each(args.objects, args.clients, |i| async move { c.get_verified(&format!("o{i}"), size, pattern).await })
                .await?,
        );
    }
    let get_mib_s = (args.objects as u64 * size) as f64 / MIB / super::median(rounds).as_secs_f64();

    // One store loses everything.
    let edge = rig.edge_dir(0).context("edge store 0")?;
    std::fs::remove_dir_all(Path::new(edge).join("objects")).context("removing the store's files")?;
    let scrubbed_before = counter(&rig, "skyshard_scrub_bytes_total").await?;
    let (_, scrub_time) = job(&rig, &["scrub", "--wait"]).await?;
    let scrubbed = counter(&rig, "skyshard_scrub_bytes_total").await? - scrubbed_before;
    let scrub_found_missing = counter(&rig, "skyshard_scrub_found_missing_total").await? as u64;
    let (_, repair_time) = job(&rig, &["repair", "--wait"]).await?;
    let rebuilt_bytes = counter(&rig, "skyshard_repair_rebuilt_bytes_total").await?;
    let read_bytes = counter(&rig, "skyshard_repair_survivor_read_bytes_total").await?;
    let rebuilt = counter(&rig, "skyshard_repair_rebuilt_fragments_total").await? as u64;
    if rebuilt as usize != args.objects {
        bail!("{rebuilt} fragments rebuilt, {} expected", args.objects);
    }
    each(args.objects, args.clients, |i| async move { c.get_verified(&format!("o{i}"), size, pattern).await }).await?;
    let capacity = Capacity {
        get_mib_s,
        scrub_mib_s: scrubbed / MIB / scrub_time.as_secs_f64(),
        scrub_found_missing,
        repair_mib_s: rebuilt_bytes / MIB / repair_time.as_secs_f64(),
        repair_read_mib_s: read_bytes / MIB / repair_time.as_secs_f64(),
        rebuilt,
    };

    // Garbage: written, deleted, collected.
    let small = args.garbage_size;
    let clients = args.clients * 2;
    let packs_before = counter(&rig, "skyshard_packs_written_total").await?;
    let packed_before = counter(&rig, "skyshard_packed_objects_total").await?;
    let put = each(args.garbage, clients, |i| async move { c.put(&format!("g{i}"), small, pattern).await }).await?;
    // Small objects written together share a seal (a pack): one seal per pack, and
    // one per object written alone.
    let packs = (counter(&rig, "skyshard_packs_written_total").await? - packs_before) as usize;
    let packed = (counter(&rig, "skyshard_packed_objects_total").await? - packed_before) as usize;
    let seals = packs + args.garbage.saturating_sub(packed);
    let deleted = each(args.garbage, clients, |i| async move { c.delete(&format!("g{i}")).await }).await?;
    let collected_before = counter(&rig, "skyshard_gc_seals_total").await?;
    let started = rig.admin_cli(&["jobs", "gc"]).await?;
    let id = started["id"].as_str().context("job id")?.to_string();
    let (_, gc_time) = job(&rig, &["jobs", "watch", &id]).await?;
    let collected = (counter(&rig, "skyshard_gc_seals_total").await? - collected_before) as u64;
    if (collected as usize) < seals {
        bail!(
            "{collected} seals collected, {seals} expected ({} objects, {packed} of them in {packs} packs)",
            args.garbage
        );
    }
    let collection = Collection {
        put_seals_s: args.garbage as f64 / put.as_secs_f64(),
        delete_s: args.garbage as f64 / deleted.as_secs_f64(),
        gc_seals_s: collected as f64 / gc_time.as_secs_f64(),
        collected,
    };
    Ok((capacity, collection))
}

/// GETs of the read set and PUTs of new objects for a window each; the repair's
/// progress meanwhile.
async fn window(rig: &Rig, args: &DurabilityBenchArgs, pattern: &Bytes, tag: &str) -> anyhow::Result<Window> {
    let c = &rig.client;
    let (size, n) = (args.object_size, args.objects);
    let length = Duration::from_secs_f64(args.window);
    let rebuilt_before = counter(rig, "skyshard_repair_rebuilt_bytes_total").await?;
    let started = Instant::now();
    let gets =
        during(length, args.clients, |j| async move { c.get_verified(&format!("o{}", j % n), size, pattern).await })
            .await?;
    let get_time = started.elapsed();
    let put_started = Instant::now();
    let puts =
        during(length, args.clients, |j| async move { c.put(&format!("w-{tag}-{j}"), size, pattern).await }).await?;
    let put_time = put_started.elapsed();
    let rebuilt = counter(rig, "skyshard_repair_rebuilt_bytes_total").await? - rebuilt_before;
    Ok(Window {
        get_mib_s: (gets * size) as f64 / MIB / get_time.as_secs_f64(),
        put_mib_s: (puts * size) as f64 / MIB / put_time.as_secs_f64(),
        repair_mib_s: rebuilt / MIB / started.elapsed().as_secs_f64(),
    })
}

/// Seals waiting for repair, as the admin API counts them now.
async fn backlog(rig: &Rig) -> anyhow::Result<i64> {
    let status = rig.admin_cli(&["status"]).await?;
    status["redundancy"]["repair_queue_objects"].as_i64().context("no repair queue in the status")
}

async fn cost(args: &DurabilityBenchArgs, work: &Path, pattern: &Bytes) -> anyhow::Result<Cost> {
    // The default repair rate; a store back is noticed within a second.
    let extra = "[durability]\nscrub_rate = \"0\"\nwatch_interval = \"1s\"\nrepair_interval = \"1s\"\n";
    let mut rig = Rig::start(&work.join("cost"), &work.join("ca"), &options(extra)).await?;
    let size = args.object_size;
    {
        let c = &rig.client;
        each(args.objects, args.clients, |i| async move { c.put(&format!("o{i}"), size, pattern).await }).await?;
    }
    let idle_before = window(&rig, args, pattern, "idle1").await?;

    // Written while a store is down: each object one fragment short.
    rig.stop_edge(0).await;
    let degraded = args.degraded.div_ceil(size).max(1) as usize;
    {
        let c = &rig.client;
        each(degraded, args.clients, |i| async move { c.put(&format!("d{i}"), size, pattern).await }).await?;
    }
    rig.restart_edge(0).await?;
    let back = Instant::now();
    // Measured once the repair has begun.
    let deadline = back + Duration::from_secs(30);
    while counter(&rig, "skyshard_repair_rebuilt_bytes_total").await? == 0.0 {
        if Instant::now() > deadline {
            bail!("no repair began within 30 s of the store's return");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let repairing = window(&rig, args, pattern, "repair").await?;
    let repair_outlasted_windows = backlog(&rig).await? > 0;
    let deadline = Instant::now() + Duration::from_secs(3600);
    while backlog(&rig).await? > 0 {
        if Instant::now() > deadline {
            bail!("the repair did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let repair_seconds = back.elapsed().as_secs_f64();
    let idle_after = window(&rig, args, pattern, "idle2").await?;
    Ok(Cost { idle_before, repairing, idle_after, repair_outlasted_windows, repair_seconds })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Skyshard durability benchmark — {} ({} CPUs); 6 edge stores, 4-of-6, rustls both legs; {} objects of {}, {} clients",
        r.machine.cpu,
        r.machine.cpus,
        r.objects,
        format_size(r.object_size),
        r.clients
    );
    let c = &r.capacity;
    let _ = writeln!(out, "\n1. Repair and scrub capacity (rates unlimited), against a GET's read rate:");
    let _ = writeln!(out, "  GET (baseline)        {:>8.1} MiB/s of objects", c.get_mib_s);
    let _ = writeln!(
        out,
        "  scrub                 {:>8.1} MiB/s of fragments checked   {:>5.2}× GET  ({} found missing)",
        c.scrub_mib_s,
        ratio(c.scrub_mib_s, c.get_mib_s),
        c.scrub_found_missing
    );
    let _ = writeln!(
        out,
        "  repair                {:>8.1} MiB/s of fragments rebuilt   {:>5.2}× GET  ({} rebuilt, reading {:.1} MiB/s of survivors)",
        c.repair_mib_s,
        ratio(c.repair_mib_s, c.get_mib_s),
        c.rebuilt,
        c.repair_read_mib_s
    );
    let g = &r.collection;
    let _ = writeln!(out, "\n2. Collection of {} garbage seals:", g.collected);
    let _ = writeln!(out, "  written (baseline)    {:>8.0} seals/s", g.put_seals_s);
    let _ = writeln!(out, "  deleted by clients    {:>8.0} objects/s", g.delete_s);
    let _ = writeln!(
        out,
        "  collected             {:>8.0} seals/s   {:>5.2}× written",
        g.gc_seals_s,
        ratio(g.gc_seals_s, g.put_seals_s)
    );
    let k = &r.cost;
    let idle_get = (k.idle_before.get_mib_s + k.idle_after.get_mib_s) / 2.0;
    let idle_put = (k.idle_before.put_mib_s + k.idle_after.put_mib_s) / 2.0;
    let _ = writeln!(out, "\n3. Client throughput while a repair runs at the default rate, against idle:");
    let _ = writeln!(out, "  {:<22} {:>10} {:>10} {:>16}", "", "GET MiB/s", "PUT MiB/s", "rebuilt MiB/s");
    for (name, w) in [("idle, before", &k.idle_before), ("repairing", &k.repairing), ("idle, after", &k.idle_after)] {
        let _ = writeln!(out, "  {name:<22} {:>10.1} {:>10.1} {:>16.1}", w.get_mib_s, w.put_mib_s, w.repair_mib_s);
    }
    let _ = writeln!(
        out,
        "  while repairing: GET {:.2}×, PUT {:.2}× of idle; the repair took {:.0} s{}",
        ratio(k.repairing.get_mib_s, idle_get),
        ratio(k.repairing.put_mib_s, idle_put),
        k.repair_seconds,
        if k.repair_outlasted_windows { "" } else { " (it ended before the windows did: raise --degraded)" }
    );
    out
}

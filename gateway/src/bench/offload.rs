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
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use offload::meter::{Meters, ticks_per_second};
use offload::tls::loopback::Loopback;
use offload::tls::{TlsEngine, TlsKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::MachineInfo;
use crate::backend::transfer::Transfer;
use crate::backend::{LocationSigner, Method, Presigner};
use crate::config::{Location, LocationKind, Tier};
use crate::keys::{SECRET_ALPHABET, random_token, write_private_file};
use crate::units::{format_size, parse_size};

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
    std::fs::write(out.join("offload.json"), serde_json::to_string_pretty(&report)?)?;
    let png = out.join("offload.png");
    let chart = super::chart::draw(&report, &png);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
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

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Starts `skyshard ARGS`, logging stderr to `log`, and reads its standard output
/// until `ready` has what it needs (or the process dies, or 30 s pass).
async fn spawn<T>(
    args: &[String],
    envs: &[(&str, &str)],
    log: &Path,
    mut ready: impl FnMut(&str) -> Option<T>,
) -> anyhow::Result<(Proc, T)> {
    let exe = std::env::current_exe().context("finding the skyshard binary")?;
    let stderr = std::fs::File::create(log)?;
    let mut child = Command::new(exe)
        .args(args)
        .envs(envs.iter().copied())
        .env("SKYSHARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .context("starting skyshard")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(t) = ready(&line) {
                return Ok(Some(t));
            }
        }
        anyhow::Ok(None)
    })
    .await;
    let proc = Proc(child);
    match found {
        Ok(Ok(Some(t))) => {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok((proc, t))
        }
        _ => {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("skyshard {} did not start:\n{log_text}", args.first().map_or("", String::as_str))
        }
    }
}

/// The benchmark's client: a location-like view of the gateway, so that this
/// process presigns URLs for its own PUT and GET and moves them with the transfer
/// client (rustls, metered apart from the gateway).
struct BenchClient {
    signer: LocationSigner,
    transfer: Transfer,
    admin: url::Url,
}

impl BenchClient {
    fn new(endpoint: &str, admin: &str, ca: &Path, access: &str, secret: &str) -> anyhow::Result<Self> {
        let engine = TlsEngine::new(TlsKind::Rustls, &Meters::default());
        let extra = crate::tls::load_ca_bundle(ca)?;
        let config = crate::tls::client_config(&extra, &engine)?;
        // Objects live in the bucket `bench`: the bucket is the location's prefix.
        let location = Location { prefix: "bench".into(), ..client_location(endpoint, access, secret)? };
        let signer = LocationSigner::new(BTreeMap::from([("gateway".to_string(), location)]));
        let transfer = Transfer::new(
            &engine,
            std::collections::HashMap::from([("gateway".to_string(), config.clone())]),
            config,
            Duration::from_secs(5),
            Duration::from_secs(120),
        );
        Ok(Self { signer, transfer, admin: url::Url::parse(admin)?.join("/v1/offload")? })
    }

    fn url(&self, method: Method, object: &str) -> anyhow::Result<url::Url> {
        Ok(self.signer.presign("gateway", method, object, Duration::from_secs(3600))?)
    }

    async fn report(&self) -> anyhow::Result<OffloadReport> {
        let mut body = Vec::new();
        let mut s = self.transfer.get("gateway", self.admin.clone(), None).await?;
        while let Some(chunk) = s.next().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

/// The object's bytes: a random block repeated; chunk `i` starts at `i * CHUNK`.
const CHUNK: usize = 1 << 20;
const BLOCK: usize = 8 << 20;

async fn run_combo(args: &OffloadBenchArgs, combo: &Combo, work: &Path) -> anyhow::Result<Vec<OpResult>> {
    let dir = work.join(format!("{}-{}", combo.tls, combo.aead));
    std::fs::create_dir_all(&dir)?;
    let random = offload::random::SystemRandom::new();
    let tls = combo.tls != "off";
    let scheme = if tls { "https" } else { "http" };

    // Certificates for the edges and the gateway, from a CA of this run.
    let (ca, _) = crate::tls::LocalCa::open_or_create(&work.join("ca"))?;
    let issued = ca.issue(&["127.0.0.1".to_string()])?;
    let (cert, key) = (work.join("server.pem"), work.join("server.key"));
    std::fs::write(&cert, &issued.chain_pem)?;
    let _ = std::fs::remove_file(&key);
    write_private_file(&key, issued.key_pem.as_bytes())?;

    let mut procs = Vec::new();
    let mut config = String::new();
    let mut names = Vec::new();
    for i in 1..=args.n {
        let secret = random_token(&random, 40, SECRET_ALPHABET)?;
        let mut a = vec![
            "edge".into(),
            "--data".into(),
            dir.join(format!("edge-{i}")).display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        if tls {
            a.extend(["--tls-cert".into(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()]);
            a.extend(["--tls-engine".into(), combo.tls.clone()]);
        } else {
            a.push("--plain-http".into());
        }
        let log = dir.join(format!("edge-{i}.log"));
        let (p, addr) = spawn(&a, &[("SKYSHARD_EDGE_SECRET", &secret)], &log, |l| {
            l.rsplit_once("://").map(|(_, addr)| addr.trim().to_string())
        })
        .await?;
        procs.push(p);
        let name = format!("edge-{i}");
        let _ = write!(
            config,
            "[[locations]]\nname = \"{name}\"\nkind = \"edge\"\nendpoint = \"{scheme}://{addr}\"\nsecret = \"{secret}\"\n\
             ca_file = \"{}\"\n\n",
            ca.cert_path().display()
        );
        names.push(format!("\"{name}\""));
    }
    let access = random_token(&random, 20, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")?;
    let secret = random_token(&random, 40, SECRET_ALPHABET)?;
    let master = random_token(&random, 64, b"0123456789abcdef")?;
    let tls_section = if tls {
        format!("[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n", cert.display(), key.display())
    } else {
        "[tls]\nplain_http = true\n\n".into()
    };
    let offload_section = match combo.aead.as_str() {
        "pool" => "aead = \"pool\"\naead_pool_inner = \"ring\"".to_string(),
        a => format!("aead = \"{a}\""),
    };
    let offload_tls = if tls { combo.tls.as_str() } else { "auto" };
    let gateway_config = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nmaster_key = \"{master}\"\n\
         access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n\n{tls_section}\
         [offload]\n{offload_section}\ntls = \"{offload_tls}\"\n\n{config}\
         [policies.default]\nk = {}\nn = {}\nlocations = [{}]\n",
        dir.join("gw").display(),
        args.k,
        args.n,
        names.join(", ")
    );
    let config_path = dir.join("skyshard.toml");
    write_private_file(&config_path, gateway_config.as_bytes())?;
    let (mut s3, mut admin) = (None, None);
    let serve = vec!["serve".to_string(), "--config".into(), config_path.display().to_string()];
    let (gateway, ()) = spawn(&serve, &[], &dir.join("gateway.log"), |l| {
        if let Some((_, e)) = l.split_once("S3 endpoint: ") {
            s3 = Some(e.trim().to_string());
        }
        if let Some((_, e)) = l.split_once("admin endpoint: ") {
            admin = e.split(' ').next().map(str::to_string);
        }
        (s3.is_some() && admin.is_some()).then_some(())
    })
    .await?;
    let (s3, admin) = (s3.unwrap_or_default(), admin.unwrap_or_default());
    let client = BenchClient::new(&s3, &admin, ca.cert_path(), &access, &secret)?;

    // The bucket: a presigned PUT of the bucket's own URL.
    let bucket_url = client.url(Method::Put, "")?;
    client.transfer.put("gateway", bucket_url, 0, futures::stream::empty()).await.context("creating the bucket")?;

    let mut block = vec![0u8; BLOCK];
    offload::random::SecureRandom::fill(&random, &mut block).map_err(|_| anyhow::anyhow!("random source"))?;
    let block = Bytes::from(block);
    let size = args.size;
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    for round in 0..args.rounds {
        let object = format!("object-{round}");
        let before = client.report().await?;
        let started = Instant::now();
        let chunks = size.div_ceil(CHUNK as u64);
        let body = futures::stream::iter((0..chunks).map({
            let block = block.clone();
            move |i| {
                let at = (i as usize * CHUNK) % BLOCK;
                let len = (size - i * CHUNK as u64).min(CHUNK as u64) as usize;
                Ok::<_, std::io::Error>(block.slice(at..at + len))
            }
        }));
        client.transfer.put("gateway", client.url(Method::Put, &object)?, size, body).await.context("PUT")?;
        let put_wall = started.elapsed();
        let middle = client.report().await?;
        let started = Instant::now();
        let mut stream = client.transfer.get("gateway", client.url(Method::Get, &object)?, None).await?;
        let mut at = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("GET")?;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let off = at % BLOCK;
                let n = rest.len().min(BLOCK - off);
                if rest[..n] != block[off..off + n] {
                    bail!("GET returned different bytes at offset {at}");
                }
                rest = &rest[n..];
                at += n;
            }
        }
        let get_wall = started.elapsed();
        if at as u64 != size {
            bail!("GET returned {at} bytes, expected {size}");
        }
        let after = client.report().await?;
        puts.push(op_result("PUT", combo, size, put_wall, &before, &middle));
        gets.push(op_result("GET", combo, size, get_wall, &middle, &after));
        let delete = client.url(Method::Delete, &object)?;
        client.transfer.delete("gateway", delete).await?;
    }
    drop(gateway);
    drop(procs);
    Ok(vec![median_op(puts), median_op(gets)])
}

/// The gateway as an S3 location with the benchmark's credentials.
fn client_location(endpoint: &str, access: &str, secret: &str) -> anyhow::Result<Location> {
    Ok(Location {
        name: "gateway".into(),
        kind: LocationKind::S3,
        endpoint: url::Url::parse(endpoint).with_context(|| format!("endpoint {endpoint:?}"))?,
        tier: Tier::Cloud,
        region: None,
        prefix: String::new(),
        container: String::new(),
        access_key_id: access.into(),
        secret: zeroize::Zeroizing::new(secret.into()),
        signing_region: "us-east-1".into(),
        ca_file: None,
    })
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

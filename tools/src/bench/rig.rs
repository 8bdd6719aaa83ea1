//! A gateway and its edge stores as separate processes, and a client for them: what
//! the end-to-end benchmarks (`bench offload`, `bench cache`) run against.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use offload::meter::Meters;
use offload::tls::{TlsEngine, TlsKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use gateway::backend::transfer::Transfer;
use gateway::backend::{LocationSigner, Method, Presigner};
use gateway::config::{Location, LocationKind, Tier};
use gateway::keys::{SECRET_ALPHABET, random_token, write_private_file};

/// A child process killed when dropped.
pub struct Proc(Child);

impl Proc {
    /// Kills it and waits until it is gone (its port free again).
    pub async fn stop(mut self) {
        let _ = self.0.kill().await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Starts `skyshard ARGS`, logging stderr to `log`, and reads its standard output
/// until `ready` has what it needs (or the process dies, or 30 s pass).
pub async fn spawn<T>(
    args: &[String],
    envs: &[(&str, &str)],
    log: &Path,
    ready: impl FnMut(&str) -> Option<T>,
) -> anyhow::Result<(Proc, T)> {
    let exe = std::env::current_exe().context("finding the skyshard binary")?;
    spawn_exe(&exe, args, envs, log, ready).await
}

/// [`spawn`] with another `skyshard` binary (a previous release, say).
pub async fn spawn_exe<T>(
    exe: &Path,
    args: &[String],
    envs: &[(&str, &str)],
    log: &Path,
    mut ready: impl FnMut(&str) -> Option<T>,
) -> anyhow::Result<(Proc, T)> {
    let stderr = std::fs::File::create(log)?;
    // Quiet unless asked otherwise (`SKYSHARD_BENCH_LOG=info`).
    let level = std::env::var("SKYSHARD_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let mut child = Command::new(exe)
        .args(args)
        .envs(envs.iter().copied())
        .env("SKYSHARD_LOG", level)
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

/// The gateway as an S3 location with the benchmark's credentials.
fn client_location(endpoint: &str, access: &str, secret: &str) -> anyhow::Result<Location> {
    Ok(Location {
        name: "gateway".into(),
        kind: LocationKind::S3,
        endpoint: url::Url::parse(endpoint).with_context(|| format!("endpoint {endpoint:?}"))?,
        tier: Tier::Cloud,
        region: None,
        provider: None,
        jurisdiction: None,
        // Objects live in the bucket `bench`: the bucket is the location's prefix.
        prefix: "bench".into(),
        container: String::new(),
        access_key_id: access.into(),
        secret: zeroize::Zeroizing::new(secret.into()),
        signing_region: "us-east-1".into(),
        ca_file: None,
    })
}

/// The benchmark's client: a location-like view of the gateway, so that this
/// process presigns URLs for its own PUT and GET and moves them with the transfer
/// client (rustls, metered apart from the gateway).
pub struct BenchClient {
    signer: LocationSigner,
    /// Moves the bytes.
    pub transfer: Transfer,
    admin: url::Url,
}

/// Bytes of the pattern objects are made of: a random block repeated.
pub const PATTERN: usize = 8 << 20;
/// Bytes per body piece of a PUT.
const CHUNK: usize = 1 << 20;

impl BenchClient {
    fn new(endpoint: &str, admin: &str, ca: &Path, access: &str, secret: &str) -> anyhow::Result<Self> {
        let engine = TlsEngine::new(TlsKind::Rustls, &Meters::default());
        let extra = gateway::tls::load_ca_bundle(ca)?;
        let config = gateway::tls::client_config(&extra, &engine)?;
        let location = client_location(endpoint, access, secret)?;
        let signer = LocationSigner::new(BTreeMap::from([("gateway".to_string(), location)]));
        let transfer = Transfer::new(
            &engine,
            std::collections::HashMap::from([("gateway".to_string(), config.clone())]),
            config,
            Duration::from_secs(5),
            Duration::from_secs(120),
        );
        Ok(Self { signer, transfer, admin: url::Url::parse(admin)? })
    }

    /// A presigned URL for `object` in the bench bucket (`""`: the bucket itself).
    pub fn url(&self, method: Method, object: &str) -> anyhow::Result<url::Url> {
        Ok(self.signer.presign("gateway", method, object, Duration::from_secs(3600))?)
    }

    /// `GET` of an admin path.
    pub async fn admin(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut s = self.transfer.get("gateway", self.admin.join(path)?, None).await?;
        while let Some(chunk) = s.next().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(body)
    }

    /// The gateway's metrics, by `name{labels}`.
    pub async fn metrics(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let text = String::from_utf8(self.admin("/metrics").await?)?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
            .collect())
    }

    /// PUTs `size` bytes of `pattern` as `object`.
    pub async fn put(&self, object: &str, size: u64, pattern: &Bytes) -> anyhow::Result<()> {
        let chunks = size.div_ceil(CHUNK as u64);
        let body = futures::stream::iter((0..chunks).map({
            let pattern = pattern.clone();
            move |i| {
                let at = (i as usize * CHUNK) % PATTERN;
                let len = (size - i * CHUNK as u64).min(CHUNK as u64) as usize;
                Ok::<_, std::io::Error>(pattern.slice(at..at + len))
            }
        }));
        self.transfer.put("gateway", self.url(Method::Put, object)?, size, body).await.context("PUT")?;
        Ok(())
    }

    /// GETs `object` and checks it is `size` bytes of `pattern`.
    pub async fn get_verified(&self, object: &str, size: u64, pattern: &Bytes) -> anyhow::Result<()> {
        let mut stream = self.transfer.get("gateway", self.url(Method::Get, object)?, None).await?;
        let mut at = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("GET")?;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let off = at % PATTERN;
                let n = rest.len().min(PATTERN - off);
                if rest[..n] != pattern[off..off + n] {
                    bail!("GET {object} returned different bytes at offset {at}");
                }
                rest = &rest[n..];
                at += n;
            }
        }
        if at as u64 != size {
            bail!("GET {object} returned {at} bytes, expected {size}");
        }
        Ok(())
    }

    /// Deletes `object`.
    pub async fn delete(&self, object: &str) -> anyhow::Result<()> {
        self.transfer.delete("gateway", self.url(Method::Delete, object)?).await?;
        Ok(())
    }
}

/// A random pattern for object bodies.
pub fn pattern() -> anyhow::Result<Bytes> {
    let mut block = vec![0u8; PATTERN];
    offload::random::SecureRandom::fill(&offload::random::SystemRandom::new(), &mut block)
        .map_err(|_| anyhow::anyhow!("random source"))?;
    Ok(Bytes::from(block))
}

/// How to start a rig.
#[derive(Debug, Clone)]
pub struct RigOptions {
    /// `off` (plain HTTP), `rustls` or `ktls`, on both legs.
    pub tls: String,
    /// AEAD engine: `ring`, `rustcrypto` or `pool`.
    pub aead: String,
    /// Coding.
    pub k: u8,
    /// Coding.
    pub n: u8,
    /// More top-level TOML for the gateway (a `[cache]` section, say).
    pub extra: String,
    /// The `skyshard` binary that runs the gateway (default: this one).
    pub gateway_binary: Option<std::path::PathBuf>,
}

/// One edge store: how it was started, so that it can start again on its address.
struct EdgeProc {
    proc: Option<Proc>,
    args: Vec<String>,
    secret: String,
    addr: String,
    log: std::path::PathBuf,
}

/// Edge stores, a gateway configured over them, a bucket, and a client.
pub struct Rig {
    /// The client.
    pub client: BenchClient,
    admin: String,
    /// The gateway's data directory.
    pub gateway_data: std::path::PathBuf,
    /// The gateway's configuration file.
    pub config: std::path::PathBuf,
    ca: std::path::PathBuf,
    gateway: Option<Proc>,
    edges: Vec<EdgeProc>,
}

impl Rig {
    /// Starts `o.n` edge stores and a gateway in `dir`, with certificates from the CA
    /// in `ca_dir` (created if missing), and creates the bucket `bench`.
    pub async fn start(dir: &Path, ca_dir: &Path, o: &RigOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let random = offload::random::SystemRandom::new();
        let tls = o.tls != "off";
        let scheme = if tls { "https" } else { "http" };
        let (ca, _) = gateway::tls::LocalCa::open_or_create(ca_dir)?;
        let issued = ca.issue(&["127.0.0.1".to_string()])?;
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::write(&cert, &issued.chain_pem)?;
        let _ = std::fs::remove_file(&key);
        write_private_file(&key, issued.key_pem.as_bytes())?;

        let mut edges = Vec::new();
        let mut config = String::new();
        let mut names = Vec::new();
        for i in 1..=o.n {
            let secret = random_token(&random, 40, SECRET_ALPHABET)?;
            let mut a = vec![
                "edge".into(),
                "--data".into(),
                dir.join(format!("edge-{i}")).display().to_string(),
                "--listen".into(),
                "127.0.0.1:0".into(),
            ];
            if tls {
                a.extend([
                    "--tls-cert".into(),
                    cert.display().to_string(),
                    "--tls-key".into(),
                    key.display().to_string(),
                ]);
                a.extend(["--tls-engine".into(), o.tls.clone()]);
            } else {
                a.push("--plain-http".into());
            }
            let log = dir.join(format!("edge-{i}.log"));
            let (p, addr) = spawn(&a, &[("SKYSHARD_EDGE_SECRET", &secret)], &log, announced).await?;
            edges.push(EdgeProc { proc: Some(p), args: a, secret: secret.to_string(), addr: addr.clone(), log });
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
        let offload_section = match o.aead.as_str() {
            "pool" => "aead = \"pool\"\naead_pool_inner = \"ring\"".to_string(),
            a => format!("aead = \"{a}\""),
        };
        let offload_tls = if tls { o.tls.as_str() } else { "auto" };
        let gateway_config = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nmaster_key = \"{master}\"\n\
             access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n\n{tls_section}\
             [offload]\n{offload_section}\ntls = \"{offload_tls}\"\n\n{}\n\n{config}\
             [policies.default]\nk = {}\nn = {}\nlocations = [{}]\n",
            dir.join("gw").display(),
            o.extra,
            o.k,
            o.n,
            names.join(", ")
        );
        let config_path = dir.join("skyshard.toml");
        write_private_file(&config_path, gateway_config.as_bytes())?;
        let (mut s3, mut admin) = (None, None);
        let serve = vec!["serve".to_string(), "--config".into(), config_path.display().to_string()];
        let exe = match &o.gateway_binary {
            Some(b) => b.clone(),
            None => std::env::current_exe().context("finding the skyshard binary")?,
        };
        let (gateway, ()) = spawn_exe(&exe, &serve, &[], &dir.join("gateway.log"), |l| {
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
        let bucket = client.url(Method::Put, "")?;
        client.transfer.put("gateway", bucket, 0, futures::stream::empty()).await.context("creating the bucket")?;
        Ok(Self {
            client,
            admin,
            gateway_data: dir.join("gw"),
            config: config_path,
            ca: ca.cert_path().to_path_buf(),
            gateway: Some(gateway),
            edges,
        })
    }

    /// Stops the gateway (the edge stores keep running).
    pub async fn stop_gateway(&mut self) {
        if let Some(p) = self.gateway.take() {
            p.stop().await;
        }
    }

    /// Stops edge store `i` (from 0), as a location lost.
    pub async fn stop_edge(&mut self, i: usize) {
        if let Some(p) = self.edges.get_mut(i).and_then(|e| e.proc.take()) {
            p.stop().await;
        }
    }

    /// Starts edge store `i` again on its address, with what it stored.
    pub async fn restart_edge(&mut self, i: usize) -> anyhow::Result<()> {
        let e = self.edges.get_mut(i).context("no such edge store")?;
        if e.proc.is_some() {
            return Ok(());
        }
        let mut args = e.args.clone();
        if let Some(listen) = args.iter().position(|a| a == "--listen") {
            args[listen + 1] = e.addr.clone();
        }
        // The address may take a moment to be free again.
        for _ in 0..20 {
            if let Ok((p, _)) = spawn(&args, &[("SKYSHARD_EDGE_SECRET", &e.secret)], &e.log, announced).await {
                e.proc = Some(p);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("edge store {i} did not start again on {}", e.addr)
    }

    /// The data directory of edge store `i`.
    pub fn edge_dir(&self, i: usize) -> Option<&str> {
        let e = self.edges.get(i)?;
        e.args.iter().position(|a| a == "--data").and_then(|d| e.args.get(d + 1)).map(String::as_str)
    }

    /// Runs `skyshard admin --json ARGS` against the gateway; its JSON answer.
    pub async fn admin_cli(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let exe = std::env::current_exe().context("finding the skyshard binary")?;
        let out = Command::new(exe)
            .args(["admin", "--endpoint", &self.admin, "--json", "--data"])
            .arg(&self.gateway_data)
            .arg("--ca-file")
            .arg(&self.ca)
            .args(args)
            .env("SKYSHARD_LOG", "warn")
            .output()
            .await
            .context("running skyshard admin")?;
        if !out.status.success() {
            bail!("skyshard admin {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        serde_json::from_slice(&out.stdout).context("skyshard admin printed no JSON")
    }
}

/// The address a server announces on its first line (`… on https://ADDR`).
fn announced(line: &str) -> Option<String> {
    line.rsplit_once("://").map(|(_, addr)| addr.trim().to_string())
}

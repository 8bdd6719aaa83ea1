//! `skyshard`: command line entry point.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Skyshard: an on-premise S3 gateway that seals every object with AES-256-GCM and
/// spreads it, RLNC-coded, over several storage locations.
#[derive(Debug, Parser)]
#[command(name = "skyshard", version, about, long_about = None)]
struct Cli {
    /// Log format of `serve` and `edge` (standard error): `text`, or `json` (one
    /// object per line, with the request id of S3 requests) for log collectors.
    #[arg(long, global = true, env = "SKYSHARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the S3 gateway. Without --config: the embedded default (SQLite, a master
    /// key file, six local edge stores, 4-of-6 coding) in --data.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Directory for local state.
        #[arg(long = "data")]
        data: Option<PathBuf>,
        /// Address of the S3 endpoint (port 0 picks a free one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Address of the admin endpoint: /metrics, /health, /v1/offload (default:
        /// the S3 address, next port).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Metadata database (sqlite://PATH or postgres://…).
        #[arg(long, env = "SKYSHARD_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Start with an empty metadata store although the locations hold fragments
        /// (a lost database): abandons them — the orphan sweep deletes them.
        #[arg(long)]
        fresh: bool,
    },
    /// Run an edge fragment store, reachable only through URLs presigned for it.
    Edge {
        /// Directory holding fragments.
        #[arg(long = "data")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// File holding the secret shared with the gateway's presigner (also
        /// SKYSHARD_EDGE_SECRET). Without either, `<data>/edge.secret` is used,
        /// created if missing.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Certificate chain (PEM) to serve HTTPS with (`skyshard tls issue` makes
        /// one from the gateway's CA).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Private key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP instead (a trusted network only).
        #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
        plain_http: bool,
        /// TLS engine: auto, rustls or ktls.
        #[arg(long, default_value = "auto")]
        tls_engine: String,
    },
    /// Certificates.
    Tls {
        #[command(subcommand)]
        what: TlsCommand,
    },
    /// The master key in m-of-n shares for custodians (`split`), and back
    /// (`combine`).
    Keys {
        #[command(subcommand)]
        what: KeysCommand,
    },
    /// Rebuild a lost metadata store from the locations and the master key (any k
    /// locations of each object suffice); `--dry-run` shows what would come back.
    Recover(tools::recover::RecoverArgs),
    /// Configuration files.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// The offload layer on this machine.
    Offload {
        #[command(subcommand)]
        what: OffloadCommand,
    },
    /// Operate a running gateway through its admin API: locations (add, drain,
    /// remove), policies, access keys, buckets, object placement, jobs, status.
    Admin(Box<tools::admin::AdminArgs>),
    /// Measure Skyshard's stages against baselines run on the same machine.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Issue a server certificate (for an edge store, say) from a Skyshard CA
    /// directory: the gateway's is `<data>/tls`; one is created if DIR has none.
    Issue {
        /// Directory holding `ca.pem` and `ca.key`.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// DNS name or IP address the certificate is for (repeatable).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Where to write the certificate chain (PEM).
        #[arg(long)]
        cert_out: PathBuf,
        /// Where to write the private key (PEM, mode 0600).
        #[arg(long)]
        key_out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Splits the master key into shares, any `--threshold` of which rebuild it
    /// (Shamir's secret sharing); prints one share per line.
    Split(tools::escrow::SplitArgs),
    /// Rebuilds the master key from shares (arguments, or lines on standard input).
    Combine(tools::escrow::CombineArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Parses a configuration file: syntax, known keys, value types.
    Check {
        /// The file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum OffloadCommand {
    /// The engines chosen for each job, those passed over and why, and ns/byte per
    /// engine measured now.
    Status(tools::status::StatusArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Seal, open, RLNC encode/decode/recode: GB/s per core against ring, ISA-L and
    /// reed-solomon-erasure.
    Codec(tools::bench::codec::CodecBenchArgs),
    /// PUT and GET of a large object through edge stores for every combination of
    /// TLS (off, rustls, kernel TLS) and AEAD engine (ring, pool): throughput and the
    /// gateway's CPU per byte by engine, plus a TLS record and write size sweep; a
    /// table, JSON and a PNG chart.
    Offload(tools::bench::offload::OffloadBenchArgs),
    /// The fragment cache: LRU against S3-FIFO on a Zipf workload, and GET throughput,
    /// latency and hit ratio through the gateway with the cache off and on.
    Cache(tools::bench::cache::CacheBenchArgs),
    /// Redundancy upkeep: repair and scrub throughput against a GET's read rate,
    /// collection rate against the write rate, and client throughput while a repair
    /// runs against idle.
    Durability(tools::bench::durability::DurabilityBenchArgs),
    /// Recovery: the PUT overhead of writing manifests to the locations against a
    /// previous release (--baseline), and `skyshard recover`'s rate against a client
    /// reading every object once.
    Recovery(tools::bench::recovery::RecoveryBenchArgs),
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKYSHARD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn,hyper_util=warn,rustls=warn")
    });
    // s3s logs whole requests at debug — SSE-C keys and signatures included — so it
    // never logs below info, whatever SKYSHARD_LOG asks.
    let filter = match "s3s=info".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        fmt.json().with_current_span(true).with_span_list(false).init();
    } else {
        fmt.init();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// How `skyshard edge` was asked to speak.
struct EdgeTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    plain_http: bool,
    engine: String,
}

fn edge(data: PathBuf, listen: SocketAddr, secret_file: Option<PathBuf>, tls: EdgeTls) -> anyhow::Result<()> {
    gateway::keys::private_umask();
    gateway::keys::raise_open_files();
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    gateway::keys::make_private(&data, 0o700)?;
    let secret = match (std::env::var("SKYSHARD_EDGE_SECRET").ok().filter(|s| !s.is_empty()), secret_file) {
        (Some(s), _) => s,
        (None, Some(f)) => gateway::keys::read_private_file(&f)?.trim().to_string(),
        (None, None) => {
            let f = data.join("edge.secret");
            if !f.exists() {
                let random = offload::random::SystemRandom::new();
                let s = gateway::keys::random_token(&random, 48, gateway::keys::SECRET_ALPHABET)?;
                gateway::keys::write_private_file(&f, s.as_bytes())?;
                eprintln!("skyshard edge: created the signing secret in {} (give it to the gateway)", f.display());
            }
            gateway::keys::read_private_file(&f)?.trim().to_string()
        }
    };
    anyhow::ensure!(secret.len() >= 16, "the edge secret must be at least 16 characters");
    let transport = match (tls.cert, tls.key) {
        (Some(cert), Some(key)) => {
            let config = offload::OffloadConfig { tls: offload::EngineChoice::from(tls.engine), ..Default::default() };
            let caps = offload::probe();
            let (offload, selection) = offload::Offload::select(&config, &caps)?;
            for r in selection.choices.iter().filter(|c| c.job == "tls").flat_map(|c| &c.rejected) {
                tracing::info!(engine = r.engine, reason = %r.reason, "TLS engine passed over");
            }
            let identity = gateway::tls::load_identity(&cert, &key)?;
            let config = gateway::tls::server_config(identity, &offload.tls)?;
            gateway::net::Transport::Tls { engine: offload.tls, config }
        }
        _ if tls.plain_http => gateway::net::Transport::Plain,
        _ => anyhow::bail!(
            "the edge store serves HTTPS: give --tls-cert and --tls-key (`skyshard tls issue` makes them), \
             or --plain-http on a trusted network"
        ),
    };
    runtime()?.block_on(async move {
        let state = gateway::edge::EdgeState::new(data.clone(), secret.as_bytes())?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        println!("skyshard edge: serving {} on {}://{}", data.display(), transport.scheme(), listener.local_addr()?);
        let limits = gateway::edge::limits(&gateway::config::LimitsConfig::default());
        let guard = gateway::net::ConnGuard::new(limits, Default::default());
        gateway::edge::serve(listener, transport, state, guard).await;
        Ok(())
    })
}

fn tls_issue(ca: PathBuf, names: Vec<String>, cert_out: PathBuf, key_out: PathBuf) -> anyhow::Result<()> {
    let (ca, created) = gateway::tls::LocalCa::open_or_create(&ca)?;
    if created {
        eprintln!("skyshard tls: created a CA in {}", ca.cert_path().display());
    }
    let issued = ca.issue(&names)?;
    std::fs::write(&cert_out, &issued.chain_pem).with_context(|| format!("writing {}", cert_out.display()))?;
    let _ = std::fs::remove_file(&key_out);
    gateway::keys::write_private_file(&key_out, issued.key_pem.as_bytes())?;
    println!("{} (chain) and {} (key) issued for {}", cert_out.display(), key_out.display(), names.join(", "));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Serve { config, data, listen, admin_listen, database_url, fresh } => {
            init_tracing(&cli.log_format);
            let opts =
                gateway::server::ServeOptions { config, data_dir: data, listen, admin_listen, database_url, fresh };
            runtime().and_then(|rt| rt.block_on(gateway::server::serve(opts)).map_err(Into::into))
        }
        Command::Edge { data, listen, secret_file, tls_cert, tls_key, plain_http, tls_engine } => {
            init_tracing(&cli.log_format);
            edge(data, listen, secret_file, EdgeTls { cert: tls_cert, key: tls_key, plain_http, engine: tls_engine })
        }
        Command::Tls { what: TlsCommand::Issue { ca, names, cert_out, key_out } } => {
            tls_issue(ca, names, cert_out, key_out)
        }
        Command::Offload { what: OffloadCommand::Status(args) } => tools::status::run(&args),
        Command::Config { what: ConfigCommand::Check { config } } => gateway::config::Config::load(&config)
            .map(|c| {
                println!("{}: ok ({} locations, {} policies)", config.display(), c.locations.len(), c.policies.len())
            })
            .map_err(Into::into),
        Command::Admin(args) => tools::admin::run(&args),
        Command::Recover(args) => {
            init_tracing(&cli.log_format);
            tools::recover::run(&args)
        }
        Command::Keys { what: KeysCommand::Split(args) } => tools::escrow::split(&args),
        Command::Keys { what: KeysCommand::Combine(args) } => tools::escrow::combine(&args),
        Command::Bench { what: BenchCommand::Codec(args) } => tools::bench::codec::run(&args).map_err(Into::into),
        Command::Bench { what: BenchCommand::Offload(args) } => tools::bench::offload::run(&args),
        Command::Bench { what: BenchCommand::Cache(args) } => tools::bench::cache::run(&args),
        Command::Bench { what: BenchCommand::Durability(args) } => tools::bench::durability::run(&args),
        Command::Bench { what: BenchCommand::Recovery(args) } => tools::bench::recovery::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skyshard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

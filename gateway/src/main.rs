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
        /// Metadata database (sqlite://PATH or postgres://…).
        #[arg(long, env = "SKYSHARD_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
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
    },
    /// Measure Skyshard's stages against baselines run on the same machine.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Seal, open, RLNC encode/decode/recode: GB/s per core against ring, ISA-L and
    /// reed-solomon-erasure.
    Codec(gateway::bench::codec::CodecBenchArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKYSHARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn edge(data: PathBuf, listen: SocketAddr, secret_file: Option<PathBuf>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
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
    runtime()?.block_on(async move {
        let state = gateway::edge::EdgeState::new(data.clone(), secret.as_bytes())?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        println!("skyshard edge: serving {} on http://{}", data.display(), listener.local_addr()?);
        gateway::edge::serve(listener, state).await?;
        Ok(())
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Serve { config, data, listen, database_url } => {
            init_tracing();
            let opts = gateway::server::ServeOptions { config, data_dir: data, listen, database_url };
            runtime().and_then(|rt| rt.block_on(gateway::server::serve(opts)).map_err(Into::into))
        }
        Command::Edge { data, listen, secret_file } => {
            init_tracing();
            edge(data, listen, secret_file)
        }
        Command::Bench { what: BenchCommand::Codec(args) } => gateway::bench::codec::run(&args).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skyshard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

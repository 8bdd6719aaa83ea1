//! `skyshard`: command line entry point.

use std::process::ExitCode;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
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

//! `skyshard keys split` and `skyshard keys combine`: the master key in m-of-n
//! shares for custodians, and back.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use zeroize::Zeroizing;

/// `skyshard keys split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Shares to make (one per custodian).
    #[arg(long)]
    pub shares: usize,
    /// Shares needed to rebuild the key.
    #[arg(long)]
    pub threshold: usize,
    /// The master key file (default: `<data>/master.key`).
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub key_file: Option<PathBuf>,
    /// The gateway's data directory.
    #[arg(long, default_value = "skyshard-data")]
    pub data: PathBuf,
}

/// `skyshard keys combine`.
#[derive(Debug, Args)]
pub struct CombineArgs {
    /// Shares (at least the threshold); without any, read one per line from
    /// standard input.
    pub shares: Vec<String>,
    /// Write the key to this file (created, mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Prints the shares of the master key, one per line.
pub fn split(args: &SplitArgs) -> anyhow::Result<()> {
    let file = args.key_file.clone().unwrap_or_else(|| args.data.join(gateway::keys::MASTER_KEY_FILE));
    let text = gateway::keys::read_private_file(&file)?;
    let ring = gateway::keys::parse_ring(&text)?;
    let [(key, version)] = ring.as_slice() else {
        anyhow::bail!(
            "{} holds {} master key versions (a rotation is in progress): split it when the rotation finished",
            file.display(),
            ring.len()
        );
    };
    let random = offload::random::SystemRandom::new();
    let shares = gateway::escrow::split(key.expose_secret(), args.shares, args.threshold, &random)?;
    let mut out = std::io::stdout().lock();
    for s in &shares {
        // A key version other than the first travels with each share.
        match version {
            1 => writeln!(out, "{}", s.as_str())?,
            v => writeln!(out, "{}-v{v}", s.as_str())?,
        }
    }
    eprintln!(
        "skyshard keys: {} shares of the master key in {}, any {} of which rebuild it \
         (skyshard keys combine); give each to a different custodian",
        args.shares,
        file.display(),
        args.threshold
    );
    Ok(())
}

/// Rebuilds the master key from shares.
pub fn combine(args: &CombineArgs) -> anyhow::Result<()> {
    let mut lines: Vec<Zeroizing<String>> = args.shares.iter().map(|s| Zeroizing::new(s.clone())).collect();
    if lines.is_empty() {
        for l in std::io::stdin().lock().lines() {
            let l = Zeroizing::new(l.context("reading shares")?);
            if !l.trim().is_empty() {
                lines.push(l);
            }
        }
    }
    let mut versions = std::collections::BTreeSet::new();
    let shares: Vec<&str> = lines
        .iter()
        .map(|s| {
            let s = s.trim();
            match s.rsplit_once("-v").filter(|(_, v)| v.parse::<u32>().is_ok()) {
                Some((share, v)) => {
                    versions.insert(v.to_string());
                    share
                }
                None => {
                    versions.insert("1".to_string());
                    s
                }
            }
        })
        .collect();
    if versions.len() > 1 {
        anyhow::bail!("the shares are of different master key versions ({versions:?})");
    }
    let key = gateway::escrow::combine(&shares)?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let hex = Zeroizing::new(match versions.first().map(String::as_str) {
        Some("1") | None => format!("{hex}\n"),
        Some(v) => format!("{v}:{hex}\n"),
    });
    match &args.out {
        Some(path) => {
            gateway::keys::write_private_file(path, hex.as_bytes())?;
            eprintln!("skyshard keys: master key rebuilt into {}", path.display());
        }
        None => std::io::stdout().lock().write_all(hex.as_bytes())?,
    }
    Ok(())
}

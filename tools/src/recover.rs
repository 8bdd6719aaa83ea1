//! `skyshard recover`: rebuilds the metadata store from the locations and the master
//! key, with a progress bar and a report (or the report as JSON).

use std::path::PathBuf;

use anyhow::Context as _;
use gateway::recover::{RecoverOptions, RecoverReport};

/// `skyshard recover`.
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The gateway's configuration file (its locations, policies and database).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Directory for local state (where `master.key` is, and the SQLite store).
    #[arg(long = "data")]
    pub data: Option<PathBuf>,
    /// Metadata database to rebuild (sqlite://PATH or postgres://…).
    #[arg(long, env = "SKYSHARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Show what would be restored; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore this backup (`skyshard admin backup FILE`) instead of the records at
    /// the locations (which are still listed for where the fragments are).
    #[arg(long, value_name = "FILE")]
    pub from_backup: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a recovery.
pub fn run(args: &RecoverArgs) -> anyhow::Result<()> {
    let opts = RecoverOptions {
        config: args.config.clone(),
        data_dir: args.data.clone(),
        database_url: args.database_url.clone(),
        dry_run: args.dry_run,
        from_backup: args.from_backup.clone(),
    };
    let bar = indicatif::ProgressBar::new(0);
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg:20} {bar:40} {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |phase: &str, done: u64, total: u64| {
        bar.set_message(phase.to_string());
        bar.set_length(total.max(done));
        bar.set_position(done);
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let report = rt.block_on(gateway::recover::recover(&opts, &progress))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary(&report));
    }
    if !report.lost.is_empty() {
        anyhow::bail!("{} object(s) could not be recovered: fewer than k fragments anywhere", report.lost.len());
    }
    Ok(())
}

fn summary(r: &RecoverReport) -> String {
    let mut s = String::new();
    let verb = if r.dry_run { "would restore" } else { "restored" };
    s.push_str(&format!(
        "locations listed: {} ({}); unreachable: {}\n",
        r.listed.len(),
        r.listed.join(", "),
        if r.unreachable.is_empty() {
            "none".to_string()
        } else {
            r.unreachable.iter().map(|(l, e)| format!("{l} ({e})")).collect::<Vec<_>>().join(", ")
        }
    ));
    match &r.catalog {
        Some(c) => s.push_str(&format!(
            "catalog {c}: {} tenants, {} buckets, {} access keys\n",
            r.tenants, r.buckets, r.access_keys
        )),
        None => s.push_str("catalog: none found (buckets are made again from the manifests)\n"),
    }
    s.push_str(&format!(
        "objects: {verb} {} ({} bytes), already present {}; manifests read {}\n",
        r.restored, r.bytes, r.present, r.manifests
    ));
    s.push_str(&format!(
        "conflicts resolved: {} superseded by a later version, {} deleted by a tombstone\n",
        r.superseded, r.deleted
    ));
    s.push_str(&format!(
        "at risk (fewer than k fragments answered): {}; lost: {}; fragments belonging to nothing: {}\n",
        r.at_risk,
        r.lost.len(),
        r.orphan_fragments
    ));
    for (name, why) in &r.unreadable {
        s.push_str(&format!("unreadable record {name}: {why}\n"));
    }
    for l in &r.lost {
        s.push_str(&format!("lost: {l}\n"));
    }
    s
}

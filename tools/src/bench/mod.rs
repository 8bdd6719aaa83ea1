//! `skyshard bench`: figures measured against baselines in the same run.
//!
//! These machines are shared and noisy, so every figure is a median of several
//! rounds, ours and the baseline alternate within a round, and time is the calling
//! thread's CPU time (not wall time) so that a neighbour's load costs us nothing.
//! Results are reported as ratios to the baseline.

pub mod cache;
pub mod chart;
pub mod codec;
pub mod durability;
pub mod offload;
pub mod recovery;
pub mod rig;

use std::time::Duration;

/// CPU time the calling thread spends in `f`.
pub fn thread_cpu<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = cpu_time::ThreadTime::now();
    let out = f();
    (out, start.elapsed())
}

/// The median of some durations (the lower middle for an even count).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or_default()
}

/// Gigabytes (10^9 bytes) per second.
pub fn gbps(bytes: u64, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { bytes as f64 / d.as_secs_f64() / 1e9 }
}

/// Writes `report` to `out/file` as JSON, and prints it: as JSON with `json`, else
/// as `render` writes it.
pub fn publish<R: serde::Serialize>(
    out: &std::path::Path,
    file: &str,
    report: &R,
    json: bool,
    render: impl FnOnce(&R) -> String,
) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join(file), &text)?;
    if json {
        println!("{text}");
    } else {
        print!("{}", render(report));
    }
    Ok(())
}

/// What the machine is, for the report header.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MachineInfo {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Whether `GLIBC_TUNABLES` raises `x86_rep_movsb_threshold` (the workaround for
    /// glibc bug 30994, slow copies to misaligned destinations).
    pub glibc_rep_movsb_tunable: bool,
}

impl MachineInfo {
    /// Reads this machine.
    pub fn read() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let glibc_rep_movsb_tunable =
            std::env::var("GLIBC_TUNABLES").is_ok_and(|v| v.contains("glibc.cpu.x86_rep_movsb_threshold"));
        Self { cpu, cpus: std::thread::available_parallelism().map_or(1, |n| n.get()), glibc_rep_movsb_tunable }
    }
}

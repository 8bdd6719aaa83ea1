//! The admin endpoint's Prometheus metrics: collectors that read the gateway's
//! counters when scraped (offload meters, process, location health, placement,
//! redundancy, cache). Figures that need a metadata query are counted at most
//! every 15 s and shared by scrapes.

use std::sync::Arc;
use std::time::Instant;

use offload::Selection;
use offload::meter::{EngineUsage, Meters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::state::Gateway;

/// A label value in the text format: backslash, double quote and newline escaped.
pub(super) fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes one metric family of constant values.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else { return Ok(()) };
    let mut metric = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: M,
) -> Result<(), std::fmt::Error> {
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

/// Per-engine usage from the offload meters, and the engine selection.
#[derive(Debug)]
pub(super) struct OffloadCollector {
    pub(super) meters: Arc<Meters>,
    pub(super) selection: Selection,
}

impl Collector for OffloadCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let usage = self.meters.snapshot();
        let labels = |u: &EngineUsage| vec![("job", label(u.job)), ("engine", label(&u.engine))];
        family(
            &mut encoder,
            "offload_bytes",
            "Bytes processed by an offload engine (plaintext bytes for TLS, input bytes for coding and hashing).",
            usage.iter().map(|u| (labels(u), ConstCounter::new(u.bytes))),
        )?;
        family(
            &mut encoder,
            "offload_operations",
            "Calls into an offload engine.",
            usage.iter().map(|u| (labels(u), ConstCounter::new(u.ops))),
        )?;
        family(
            &mut encoder,
            "offload_busy_seconds",
            "Time the calling threads spent inside an offload engine (CPU time unless preempted; for TLS, record crypto plus the socket call).",
            usage.iter().map(|u| (labels(u), ConstCounter::new(u.busy_ns as f64 / 1e9))),
        )?;
        family(
            &mut encoder,
            "offload_ns_per_byte",
            "Nanoseconds of engine time per byte since start.",
            usage.iter().map(|u| (labels(u), ConstGauge::new(u.ns_per_byte))),
        )?;
        family(
            &mut encoder,
            "offload_engine_selected",
            "1 for the engine chosen for each job (pinned = named in the configuration).",
            self.selection.choices.iter().map(|c| {
                let l = vec![("job", label(c.job)), ("engine", label(&c.chosen)), ("pinned", c.pinned.to_string())];
                (l, ConstGauge::new(1i64))
            }),
        )?;
        family(
            &mut encoder,
            "offload_engine_rejected",
            "1 for each better-ranked engine `auto` passed over, with the reason.",
            self.selection.choices.iter().flat_map(|c| {
                c.rejected.iter().map(|r| {
                    let l = vec![("job", label(c.job)), ("engine", label(r.engine)), ("reason", label(&r.reason))];
                    (l, ConstGauge::new(1i64))
                })
            }),
        )
    }
}

/// Process CPU time, resident memory and uptime.
#[derive(Debug)]
pub(super) struct ProcessCollector {
    pub(super) started: Instant,
}

/// CPU time (user and system) of this process so far, in seconds.
pub fn process_cpu_seconds() -> f64 {
    cpu_time::ProcessTime::try_now().map(|t| t.as_duration().as_secs_f64()).unwrap_or(0.0)
}

/// Resident set size in bytes, from `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cpu = process_cpu_seconds();
        single(
            &mut encoder,
            "process_cpu_seconds",
            "CPU time (user and system) of the gateway process.",
            ConstCounter::new(cpu),
        )?;
        if let Some(rss) = resident_bytes() {
            let help = "Resident memory of the gateway process.";
            single(&mut encoder, "process_resident_memory_bytes", help, ConstGauge::new(rss as i64))?;
        }
        let uptime = ConstGauge::new(self.started.elapsed().as_secs_f64());
        single(&mut encoder, "uptime_seconds", "Seconds since the admin endpoint started.", uptime)
    }
}

/// Recent failures per location.
#[derive(Debug)]
pub(super) struct HealthCollector {
    pub(super) gw: Arc<Gateway>,
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let q = &self.gw.pipeline.quorum_failures;
        family(
            &mut encoder,
            "quorum_failures",
            "Writes that stored fewer fragments than the write quorum, and segment reads that found fewer than k usable.",
            [("write", q.write.load(Relaxed)), ("read", q.read.load(Relaxed))]
                .map(|(op, n)| (vec![("operation", op.to_string())], ConstCounter::new(n))),
        )?;
        let packer = &self.gw.pipeline.packer;
        let help = "Packs written: small objects coded together in one fragment set.";
        single(&mut encoder, "packs_written", help, ConstCounter::new(packer.written.load(Relaxed)))?;
        let help = "Objects written in packs (over packs_written: objects per pack).";
        single(&mut encoder, "packed_objects", help, ConstCounter::new(packer.members.load(Relaxed)))?;
        let help = "Packs rewritten with their live members only (compaction).";
        single(&mut encoder, "packs_compacted", help, ConstCounter::new(packer.compacted.load(Relaxed)))?;
        family(
            &mut encoder,
            "location_recent_failures",
            "Consecutive failed operations at a location in the last 30 seconds (0 = healthy).",
            self.gw.catalog.view().locations.keys().map(|name| {
                (vec![("location", label(name))], ConstGauge::new(i64::from(self.gw.health.failures(name))))
            }),
        )
    }
}

/// How long fragment counts per location are reused: counting reads the whole
/// fragment index, so scrapes (perhaps by several Prometheus servers) share one
/// count for this long.
const PLACEMENT_TTL: std::time::Duration = std::time::Duration::from_secs(15);

/// Locations with their fragments and bytes.
type LocationCounts = Vec<(String, i64, i64)>;

/// Fragments and their bytes per location, as last counted, and when.
#[derive(Debug, Default)]
pub(super) struct PlacementCounts {
    last: std::sync::RwLock<Option<(Instant, LocationCounts)>>,
}

impl PlacementCounts {
    /// Counts again if the last count is older than [`PLACEMENT_TTL`]. Every
    /// location of the catalog appears (0 when it holds nothing), and so does any
    /// other location the metadata still places fragments at.
    pub(super) async fn refresh(&self, gw: &Gateway) {
        let fresh = self.last.read().ok().and_then(|l| l.as_ref().map(|(at, _)| at.elapsed() < PLACEMENT_TTL));
        if fresh == Some(true) {
            return;
        }
        let counted = match gw.meta.fragments_per_location().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count fragments per location; metrics keep the last count");
                return;
            }
        };
        let mut all: std::collections::BTreeMap<String, (i64, i64)> =
            gw.catalog.view().locations.keys().map(|l| (l.clone(), (0, 0))).collect();
        all.extend(counted.into_iter().map(|(l, n, b)| (l, (n, b))));
        let rows = all.into_iter().map(|(l, (n, b))| (l, n, b)).collect();
        if let Ok(mut last) = self.last.write() {
            *last = Some((Instant::now(), rows));
        }
    }
}

/// Fragments and bytes the metadata places at each location.
#[derive(Debug)]
pub(super) struct PlacementCollector {
    pub(super) counts: Arc<PlacementCounts>,
}

impl Collector for PlacementCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let rows = self.counts.last.read().ok().and_then(|l| l.as_ref().map(|(_, r)| r.clone())).unwrap_or_default();
        family(
            &mut encoder,
            "location_fragments",
            "Fragments the metadata places at a location (counted at most every 15 s).",
            rows.iter().map(|(l, n, _)| (vec![("location", label(l))], ConstGauge::new(*n))),
        )?;
        family(
            &mut encoder,
            "location_fragment_bytes",
            "Bytes of the fragments the metadata places at a location (counted at most every 15 s).",
            rows.iter().map(|(l, _, b)| (vec![("location", label(l))], ConstGauge::new(*b))),
        )
    }
}

/// The fragment cache's counters (its CRC32C and XTS CPU is in the offload meters).
#[derive(Debug)]
pub(super) struct CacheCollector {
    pub(super) cache: Arc<crate::cache::store::Cache>,
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.cache.stats;
        let counters = [
            ("cache_hits", "Fragment lookups the cache answered.", s.hits.load(Relaxed)),
            ("cache_misses", "Fragment lookups the cache could not answer.", s.misses.load(Relaxed)),
            ("cache_read_bytes", "Fragment bytes served from the cache.", s.bytes_read.load(Relaxed)),
            (
                "cache_location_read_bytes",
                "Fragment bytes GETs read from locations.",
                s.bytes_from_locations.load(Relaxed),
            ),
            ("cache_written_bytes", "Fragment bytes written into the cache.", s.bytes_written.load(Relaxed)),
            ("cache_evictions", "Entries evicted to make room.", s.evictions.load(Relaxed)),
            (
                "cache_integrity_errors",
                "Cache blocks that failed their check (each a miss).",
                s.integrity_errors.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            single(&mut encoder, name, help, ConstCounter::new(v))?;
        }
        let blocks = |n: u64| ConstGauge::new((n * crate::cache::device::BLOCK as u64) as i64);
        single(&mut encoder, "cache_used_bytes", "Bytes of cache blocks in use.", blocks(self.cache.used_blocks()))?;
        single(&mut encoder, "cache_capacity_bytes", "Bytes of cache blocks.", blocks(self.cache.capacity_blocks()))?;
        single(&mut encoder, "cache_entries", "Fragments cached.", ConstGauge::new(self.cache.len() as i64))
    }
}

/// The redundancy figures that need the metadata store: seals by margin, the
/// repair backlog, the background scrub's pass — as last counted, and when.
#[derive(Debug, Default)]
pub(super) struct RedundancyCounts {
    last: std::sync::RwLock<Option<(Instant, RedundancySnapshot)>>,
}

#[derive(Debug, Clone, Default)]
struct RedundancySnapshot {
    margins: Vec<crate::meta::MarginCount>,
    backlog: (i64, i64),
    scrub: Option<crate::meta::PassRow>,
}

impl RedundancyCounts {
    /// Counts again if the last count is older than [`PLACEMENT_TTL`].
    pub(super) async fn refresh(&self, gw: &Gateway) {
        let fresh = self.last.read().ok().and_then(|l| l.as_ref().map(|(at, _)| at.elapsed() < PLACEMENT_TTL));
        if fresh == Some(true) {
            return;
        }
        let counted = async {
            Ok::<_, crate::meta::MetaError>(RedundancySnapshot {
                margins: gw.meta.margins().await?,
                backlog: gw.meta.repair_backlog().await?,
                scrub: gw.meta.pass(crate::durability::scrub::BACKGROUND).await?,
            })
        };
        match counted.await {
            Ok(snapshot) => {
                if let Ok(mut last) = self.last.write() {
                    *last = Some((Instant::now(), snapshot));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot count redundancy; metrics keep the last count"),
        }
    }
}

/// Redundancy: seals by margin, the repair queue, what repair, scrub, the sweep
/// and collection did.
#[derive(Debug)]
pub(super) struct RedundancyCollector {
    pub(super) counts: Arc<RedundancyCounts>,
    pub(super) gw: Arc<Gateway>,
}

impl Collector for RedundancyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use crate::durability::Stats;
        let snap = self.counts.last.read().ok().and_then(|l| l.as_ref().map(|(_, s)| s.clone())).unwrap_or_default();
        family(
            &mut encoder,
            "seals_by_margin",
            "Stored seals (objects, or parts of multipart objects) by margin: healthy fragments minus k, the fragments each can still lose (counted at most every 15 s).",
            snap.margins.iter().map(|m| (vec![("margin", m.margin.to_string())], ConstGauge::new(m.seals))),
        )?;
        family(
            &mut encoder,
            "seal_bytes_by_margin",
            "Plaintext bytes of the stored seals at each margin.",
            snap.margins.iter().map(|m| (vec![("margin", m.margin.to_string())], ConstGauge::new(m.bytes))),
        )?;
        single(
            &mut encoder,
            "repair_backlog_seals",
            "Seals with fewer than n healthy fragments.",
            ConstGauge::new(snap.backlog.0),
        )?;
        single(
            &mut encoder,
            "repair_backlog_fragments",
            "Fragments those seals miss.",
            ConstGauge::new(snap.backlog.1),
        )?;
        let s = &self.gw.upkeep.stats;
        let counters = [
            ("repair_rebuilt_fragments", "Fragments rebuilt by recoding.", Stats::get(&s.rebuilt)),
            ("repair_rebuilt_bytes", "Bytes of the fragments rebuilt.", Stats::get(&s.rebuilt_bytes)),
            (
                "repair_survivor_read_bytes",
                "Bytes read from surviving fragments to rebuild others.",
                Stats::get(&s.survivor_bytes),
            ),
            (
                "repair_restored_fragments",
                "Fragments found good again when checked before a rebuild.",
                Stats::get(&s.restored),
            ),
            ("repair_failures", "Rebuilds that failed (retried after the backoff).", Stats::get(&s.repair_failures)),
            ("scrub_fragments", "Fragments the background scrub read back and found good.", Stats::get(&s.scrubbed)),
            ("scrub_bytes", "Their bytes.", Stats::get(&s.scrubbed_bytes)),
            ("scrub_found_missing", "Fragments scrub found missing.", Stats::get(&s.found_missing)),
            ("scrub_found_corrupt", "Fragments scrub found corrupt.", Stats::get(&s.found_corrupt)),
            (
                "sweep_orphans_deleted",
                "Fragments at locations that no seal referenced, deleted.",
                Stats::get(&s.orphans_deleted),
            ),
            ("gc_seals", "Seals collected (their fragments deleted).", Stats::get(&s.collected)),
        ];
        for (name, help, v) in counters {
            single(&mut encoder, name, help, ConstCounter::new(v))?;
        }
        if let Some(p) = &snap.scrub {
            let seconds = |ms: i64| ConstGauge::new(ms as f64 / 1000.0);
            single(
                &mut encoder,
                "scrub_pass_started_timestamp_seconds",
                "When the scrub pass in progress began.",
                seconds(p.started_at),
            )?;
            single(
                &mut encoder,
                "scrub_last_full_pass_timestamp_seconds",
                "When the last complete scrub pass ended (0: never).",
                seconds(p.finished_at),
            )?;
            single(
                &mut encoder,
                "scrub_pass_fragments",
                "Fragments the scrub pass in progress has checked.",
                ConstGauge::new(p.checked),
            )?;
        }
        Ok(())
    }
}

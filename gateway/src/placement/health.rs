//! What the gateway has lately seen of each location: consecutive failures, so
//! that reads try healthy locations first and writes avoid locations that just
//! failed; and speed — a moving average of the time to a response's head and of
//! the rate data moves at, from every fragment transfer — so that reads ask the
//! fastest locations and writes place fewer fragments on a slow one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Recent failures and speed per location.
#[derive(Debug, Default)]
pub struct Health {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    speeds: Mutex<HashMap<String, Speed>>,
}

/// How long a failure counts against a location.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// How long speed measurements count: a location not used for longer (because it
/// was slow, say) is judged afresh, so one bad hour is not held against it for ever.
const SPEED_MEMORY: Duration = Duration::from_secs(120);

/// The transfer by which locations are compared for placement: a fragment of a
/// few megabytes.
const SLOW_PROBE: u64 = 4 << 20;

/// Expected transfer times below this are all as good as each other (see
/// [`Health::rank`]).
const RANK_FLOOR: Duration = Duration::from_millis(20);

/// Weight of a new measurement in the moving averages.
const WEIGHT: f64 = 0.25;

/// A location's recent speed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Speed {
    /// Moving average of the time to a response's head, in seconds (`None`: no
    /// measurement lately).
    latency: Option<f64>,
    /// Moving average of the time a byte took to move, in seconds (the average of
    /// times, not of rates: one slow transfer counts as much as it delays).
    pace: Option<f64>,
    latency_at: Instant,
    rate_at: Instant,
}

impl Speed {
    fn fresh(&self) -> (Option<f64>, Option<f64>) {
        let keep = |v: Option<f64>, at: Instant| v.filter(|_| at.elapsed() < SPEED_MEMORY);
        (keep(self.latency, self.latency_at), keep(self.pace, self.rate_at).map(|p| 1.0 / p.max(1e-12)))
    }
}

fn average(old: Option<f64>, at: Instant, new: f64) -> f64 {
    match old.filter(|_| at.elapsed() < SPEED_MEMORY) {
        Some(o) => o + (new - o) * WEIGHT,
        None => new,
    }
}

impl Health {
    /// Notes that a request to `location` had its response's head after `took`.
    pub fn observe_latency(&self, location: &str, took: Duration) {
        if let Ok(mut m) = self.speeds.lock() {
            let now = Instant::now();
            let s = m.entry(location.to_string()).or_insert(Speed {
                latency: None,
                pace: None,
                latency_at: now,
                rate_at: now,
            });
            s.latency = Some(average(s.latency, s.latency_at, took.as_secs_f64()));
            s.latency_at = now;
        }
    }

    /// Notes that `bytes` moved to or from `location` in `took`. Transfers too short
    /// to tell a rate from a latency are not counted.
    pub fn observe_rate(&self, location: &str, bytes: u64, took: Duration) {
        if bytes < 64 * 1024 || took < Duration::from_millis(1) {
            return;
        }
        if let Ok(mut m) = self.speeds.lock() {
            let now = Instant::now();
            let s = m.entry(location.to_string()).or_insert(Speed {
                latency: None,
                pace: None,
                latency_at: now,
                rate_at: now,
            });
            s.pace = Some(average(s.pace, s.rate_at, took.as_secs_f64() / bytes as f64));
            s.rate_at = now;
        }
    }

    /// The recent latency (seconds) and rate (bytes per second) of `location`,
    /// measurements older than [`SPEED_MEMORY`] forgotten.
    pub fn speed(&self, location: &str) -> (Option<f64>, Option<f64>) {
        self.speeds.lock().ok().and_then(|m| m.get(location).map(Speed::fresh)).unwrap_or((None, None))
    }

    /// How long `location` would take, by what was seen of it lately, to deliver
    /// `bytes`: its latency plus the bytes at its rate. A location not measured
    /// lately is expected to be instant — it is tried, and so measured.
    pub fn expected(&self, location: &str, bytes: u64) -> Duration {
        let (latency, rate) = self.speed(location);
        let secs = latency.unwrap_or(0.0) + rate.map_or(0.0, |r| bytes as f64 / r.max(1.0));
        Duration::from_secs_f64(secs.min(1e6))
    }

    /// Those of `locations` that are slow beside the others: expected to take more
    /// than three times as long as the median location (and 100 ms longer) to move
    /// [`SLOW_PROBE`] bytes. Locations not measured lately are not slow.
    pub fn slow<'a>(&self, locations: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
        let timed: Vec<(&String, f64)> =
            locations.into_iter().map(|l| (l, self.expected(l, SLOW_PROBE).as_secs_f64())).collect();
        let mut times: Vec<f64> = timed.iter().map(|t| t.1).collect();
        times.sort_by(f64::total_cmp);
        let Some(&median) = times.get(times.len() / 2) else { return Vec::new() };
        timed.into_iter().filter(|&(_, t)| t > 3.0 * median && t > median + 0.1).map(|(l, _)| l).collect()
    }

    /// [`Health::expected`] in bands: 0 below [`RANK_FLOOR`], then one band per
    /// factor of 1.5. Reads sort locations by band, and equally fast locations by
    /// fragment index — which placement rotates from object to object —, so that
    /// load spreads over them instead of following measurement noise to the same
    /// few.
    pub fn rank(&self, location: &str, bytes: u64) -> u32 {
        let t = self.expected(location, bytes).as_secs_f64();
        let floor = RANK_FLOOR.as_secs_f64();
        if t < floor { 0 } else { 1 + ((t / floor).ln() / 1.5f64.ln()) as u32 }
    }

    /// Notes a failed operation at `location`.
    pub fn failed(&self, location: &str) {
        if let Ok(mut m) = self.failures.lock() {
            let e = m.entry(location.to_string()).or_insert((0, Instant::now()));
            e.0 = e.0.saturating_add(1);
            e.1 = Instant::now();
        }
    }

    /// Notes a successful operation at `location`.
    pub fn succeeded(&self, location: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(location);
        }
    }

    /// Recent consecutive failures (0 = healthy).
    pub fn failures(&self, location: &str) -> u32 {
        self.failures
            .lock()
            .ok()
            .and_then(|m| m.get(location).filter(|(_, t)| t.elapsed() < FAILURE_MEMORY).map(|(n, _)| *n))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_forgets_success() {
        let h = Health::default();
        h.failed("a");
        h.failed("a");
        assert_eq!(h.failures("a"), 2);
        h.succeeded("a");
        assert_eq!(h.failures("a"), 0);
    }

    #[test]
    fn speed_follows_transfers_and_ranks_locations() {
        let h = Health::default();
        assert_eq!(h.expected("a", 1 << 20), Duration::ZERO, "unmeasured: tried first");
        h.observe_latency("a", Duration::from_millis(100));
        h.observe_latency("a", Duration::from_millis(20));
        let (lat, _) = h.speed("a");
        assert!((lat.expect("latency") - 0.080).abs() < 1e-9, "{lat:?}");
        // Too short to be a rate: ignored.
        h.observe_rate("a", 1000, Duration::from_millis(1));
        assert_eq!(h.speed("a").1, None);
        h.observe_rate("a", 4 << 20, Duration::from_secs(1));
        h.observe_rate("b", 4 << 20, Duration::from_millis(100));
        h.observe_latency("b", Duration::from_millis(80));
        // 1 MiB: a at 0.08 + 0.25 s, b at 0.08 + 0.025 s.
        assert!(h.expected("b", 1 << 20) < h.expected("a", 1 << 20));
        let a = h.expected("a", 1 << 20).as_secs_f64();
        assert!((a - 0.33).abs() < 1e-3, "{a}");
        // 0.33 s is 1 + floor(log1.5(16.5)) = 7 bands up; under 20 ms is band 0.
        assert_eq!(h.rank("a", 1 << 20), 7);
        h.observe_latency("c", Duration::from_millis(5));
        h.observe_latency("d", Duration::from_millis(15));
        assert_eq!((h.rank("c", 1000), h.rank("d", 1000)), (0, 0));
    }

    #[test]
    fn slow_is_relative_to_the_others() {
        let h = Health::default();
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        for l in &names[..3] {
            h.observe_rate(l, 4 << 20, Duration::from_millis(500));
        }
        assert!(h.slow(&names).is_empty(), "d is not measured, so not slow");
        h.observe_rate("d", 4 << 20, Duration::from_millis(1200));
        assert!(h.slow(&names).is_empty(), "2.4 times the median is not slow");
        h.observe_rate("d", 4 << 20, Duration::from_secs(20));
        assert_eq!(h.slow(&names), vec![&names[3]]);
    }
}

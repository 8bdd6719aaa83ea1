//! Per-location request figures, kept by the transfer client: requests and errors
//! by operation, latency histograms (Prometheus), and a moving average of latency
//! for the admin API's location report.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the per-location metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocationLabels {
    /// Location name.
    pub location: String,
    /// `put`, `get` or `delete`.
    pub operation: &'static str,
}

/// Labels of the per-location request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Location name.
    pub location: String,
    /// `put`, `get` or `delete`.
    pub operation: &'static str,
    /// `ok` or the error class (`unavailable`, `not_found`, `rejected`, …).
    pub outcome: &'static str,
}

fn histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A location's recent latency.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recent {
    /// Moving average of successful request latency (weight 1/8), in milliseconds.
    pub latency_ms: f64,
    /// Requests since start.
    pub requests: u64,
    /// Failed requests since start.
    pub errors: u64,
}

/// Per-location request figures.
#[derive(Debug)]
pub struct LocationStats {
    requests: Family<OutcomeLabels, Counter>,
    latency: Family<LocationLabels, Histogram, fn() -> Histogram>,
    recent: Mutex<HashMap<String, Recent>>,
}

impl Default for LocationStats {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(histogram),
            recent: Mutex::new(HashMap::new()),
        }
    }
}

impl LocationStats {
    /// Notes one request to `location` that took `elapsed` and ended in `outcome`.
    pub fn observe(&self, location: &str, operation: &'static str, elapsed: Duration, outcome: &'static str) {
        let labels = OutcomeLabels { location: location.to_string(), operation, outcome };
        self.requests.get_or_create(&labels).inc();
        let ok = outcome == "ok";
        if ok {
            self.latency
                .get_or_create(&LocationLabels { location: location.to_string(), operation })
                .observe(elapsed.as_secs_f64());
        }
        if let Ok(mut m) = self.recent.lock() {
            let r = m.entry(location.to_string()).or_default();
            r.requests += 1;
            if ok {
                let ms = elapsed.as_secs_f64() * 1e3;
                r.latency_ms = if r.latency_ms == 0.0 { ms } else { r.latency_ms + (ms - r.latency_ms) / 8.0 };
            } else {
                r.errors += 1;
            }
        }
    }

    /// Recent figures of `location`.
    pub fn recent(&self, location: &str) -> Recent {
        self.recent.lock().ok().and_then(|m| m.get(location).copied()).unwrap_or_default()
    }

    /// Registers the Prometheus families.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "location_requests",
            "Requests to storage locations by operation and outcome.",
            self.requests.clone(),
        );
        registry.register(
            "location_request_seconds",
            "Latency of successful requests to storage locations (PUT: whole upload; GET: to the response head).",
            self.latency.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_latency_follows_successes_and_counts_errors() {
        let s = LocationStats::default();
        s.observe("a", "get", Duration::from_millis(10), "ok");
        s.observe("a", "get", Duration::from_millis(90), "ok");
        s.observe("a", "put", Duration::from_secs(5), "unavailable");
        let r = s.recent("a");
        assert_eq!((r.requests, r.errors), (3, 1));
        assert!((r.latency_ms - 20.0).abs() < 1e-9, "{r:?}");
        let mut registry = Registry::default();
        s.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(r#"location_requests_total{location="a",operation="put",outcome="unavailable"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"location_request_seconds_count{location="a",operation="get"} 2"#), "{text}");
    }
}

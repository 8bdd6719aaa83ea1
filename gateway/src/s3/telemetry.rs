//! Per-request telemetry of the S3 endpoint: a request id for every request
//! (returned in `x-amz-request-id` and carried by the request's tracing span), and
//! Prometheus metrics per S3 operation — requests by status, latency to the
//! response head, bytes received and sent.
//!
//! The operation is the one s3s routed the request to: the access hook
//! ([`super::access::Tenancy`]) writes its name into a slot the outer service put in
//! the request's extensions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use s3s::access::S3AccessContext;

/// Where the access hook leaves the operation's name.
#[derive(Debug, Clone, Default)]
pub struct OpSlot(pub Arc<OnceLock<String>>);

/// Records the operation s3s chose (called by the access hook, which s3s runs
/// once it has routed the request).
pub fn record_operation(cx: &mut S3AccessContext<'_>) {
    let name = cx.s3_op().name().to_string();
    if let Some(slot) = cx.extensions_mut().get::<OpSlot>() {
        let _ = slot.0.set(name);
    }
}

/// Labels of the per-operation metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// S3 operation (`PutObject`, …), or `none` when the request never reached one.
    pub operation: String,
}

/// Labels of the request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// S3 operation.
    pub operation: String,
    /// HTTP status code.
    pub status: u16,
}

type LatencyFamily = Family<OpLabels, Histogram, fn() -> Histogram>;

/// The S3 endpoint's metrics.
#[derive(Debug)]
pub struct S3Metrics {
    requests: Family<StatusLabels, Counter>,
    latency: LatencyFamily,
    received: Family<OpLabels, Counter>,
    sent: Family<OpLabels, Counter>,
    prefix: String,
    next_id: AtomicU64,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl S3Metrics {
    /// Empty metrics; request ids start from a random prefix so that ids of
    /// different processes (replicas, restarts) do not collide.
    pub fn new(random: &dyn offload::random::SecureRandom) -> Self {
        let mut p = [0u8; 4];
        let _ = random.fill(&mut p);
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            received: Family::default(),
            sent: Family::default(),
            prefix: hex::encode_upper(p),
            next_id: AtomicU64::new(1),
        }
    }

    /// Registers the metrics with `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("s3_requests", "S3 requests by operation and HTTP status.", self.requests.clone());
        registry.register(
            "s3_request_duration_seconds",
            "Time from a request's arrival to its response head, by S3 operation.",
            self.latency.clone(),
        );
        registry.register("s3_received_bytes", "Request body bytes announced, by S3 operation.", self.received.clone());
        registry.register("s3_sent_bytes", "Response body bytes announced, by S3 operation.", self.sent.clone());
    }

    /// A new request id: 16 upper-case hex digits.
    pub fn request_id(&self) -> String {
        format!("{}{:08X}", self.prefix, self.next_id.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF)
    }

    /// Records one answered request.
    pub fn record(&self, operation: &str, status: u16, seconds: f64, received: u64, sent: u64) {
        let op = OpLabels { operation: operation.to_string() };
        self.requests.get_or_create(&StatusLabels { operation: op.operation.clone(), status }).inc();
        self.latency.get_or_create(&op).observe(seconds);
        if received > 0 {
            self.received.get_or_create(&op).inc_by(received);
        }
        if sent > 0 {
            self.sent.get_or_create(&op).inc_by(sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_metrics_are_labelled_by_operation() {
        let m = S3Metrics::new(&offload::random::SystemRandom::new());
        let (a, b) = (m.request_id(), m.request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        m.record("PutObject", 200, 0.012, 1000, 0);
        m.record("GetObject", 404, 0.002, 0, 120);
        let mut registry = Registry::with_prefix("skyshard");
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains(r#"skyshard_s3_requests_total{operation="PutObject",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"skyshard_s3_received_bytes_total{operation="PutObject"} 1000"#), "{text}");
        assert!(text.contains(r#"skyshard_s3_request_duration_seconds_count{operation="GetObject"} 1"#), "{text}");
    }
}

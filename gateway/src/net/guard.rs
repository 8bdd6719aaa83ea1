//! Admission of connections: at most so many open at once per endpoint and per
//! client address; the ones over a limit are answered `503 SlowDown` (while a small
//! overflow allowance lasts, closed at once beyond it), and every connection closed
//! or refused for a limit is counted by reason.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::pace::MinRate;

/// Labels of the connection metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    /// `s3`, `admin` or `edge`.
    pub(super) endpoint: String,
    /// Why.
    pub(super) reason: String,
}

/// Labels of the open-connections gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EndpointLabels {
    /// `s3`, `admin` or `edge`.
    pub(super) endpoint: String,
}

/// Connections refused and closed by the limits, and those open.
#[derive(Debug, Default)]
pub struct ConnMetrics {
    refused: Family<ReasonLabels, Counter>,
    closed: Family<ReasonLabels, Counter>,
    open: Family<EndpointLabels, Gauge<i64, AtomicI64>>,
}

impl ConnMetrics {
    /// Adds the metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections_refused",
            "Connections refused on arrival by a limit (limit: the endpoint's; client_limit: one address's; \
             overflow: closed without an answer), by endpoint.",
            self.refused.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed by a limit (handshake_timeout, header_timeout, body_too_slow), by endpoint.",
            self.closed.clone(),
        );
        registry.register("connections_open", "Connections open, by endpoint.", self.open.clone());
    }

    /// Counts a connection refused on arrival.
    pub fn refused(&self, endpoint: &str, reason: &str) {
        self.refused.get_or_create(&ReasonLabels { endpoint: endpoint.into(), reason: reason.into() }).inc();
    }

    /// Counts a connection closed by a limit.
    pub fn closed(&self, endpoint: &str, reason: &str) {
        self.closed.get_or_create(&ReasonLabels { endpoint: endpoint.into(), reason: reason.into() }).inc();
    }

    /// Connections refused for `reason` on `endpoint` so far.
    pub fn refused_count(&self, endpoint: &str, reason: &str) -> u64 {
        self.refused.get_or_create(&ReasonLabels { endpoint: endpoint.into(), reason: reason.into() }).get()
    }

    /// Connections closed for `reason` on `endpoint` so far.
    pub fn closed_count(&self, endpoint: &str, reason: &str) -> u64 {
        self.closed.get_or_create(&ReasonLabels { endpoint: endpoint.into(), reason: reason.into() }).get()
    }

    fn open(&self, endpoint: &str) -> Gauge<i64, AtomicI64> {
        self.open.get_or_create(&EndpointLabels { endpoint: endpoint.into() }).clone()
    }
}

/// The limits one endpoint applies.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// The endpoint's name in metrics.
    pub endpoint: &'static str,
    /// TLS handshake.
    pub handshake_timeout: Duration,
    /// Request head, and idle time between requests.
    pub header_timeout: Duration,
    /// Request bodies.
    pub body_rate: MinRate,
    /// Connections at once.
    pub max_connections: usize,
    /// Connections at once from one address.
    pub max_per_client: usize,
}

impl ConnLimits {
    /// The limits of `endpoint` from the configuration.
    pub fn from_config(endpoint: &'static str, c: &crate::config::LimitsConfig) -> Self {
        Self {
            endpoint,
            handshake_timeout: c.handshake_timeout.0,
            header_timeout: c.header_timeout.0,
            body_rate: MinRate { min: c.min_body_rate.0, window: c.body_rate_window.0 },
            max_connections: c.max_connections,
            max_per_client: c.max_connections_per_client,
        }
    }
}

/// Counts of open connections, overall and by address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    refusing: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Admits connections to one endpoint.
#[derive(Debug)]
pub struct ConnGuard {
    /// The limits.
    pub limits: ConnLimits,
    /// Where refusals and closes are counted.
    pub metrics: Arc<ConnMetrics>,
    counts: Arc<Mutex<Counts>>,
    open: Gauge<i64, AtomicI64>,
}

/// An admitted connection's place, given back when it is dropped.
#[derive(Debug)]
pub struct Ticket {
    counts: Arc<Mutex<Counts>>,
    client: Option<IpAddr>,
    open: Option<Gauge<i64, AtomicI64>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match self.client {
            Some(ip) => {
                c.total -= 1;
                if let Some(n) = c.by_client.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        c.by_client.remove(&ip);
                    }
                }
            }
            None => c.refusing -= 1,
        }
        if let Some(g) = &self.open {
            g.dec();
        }
    }
}

impl ConnGuard {
    /// A guard applying `limits`, counting in `metrics`.
    pub fn new(limits: ConnLimits, metrics: Arc<ConnMetrics>) -> Arc<Self> {
        let open = metrics.open(limits.endpoint);
        Arc::new(Self { limits, metrics, counts: Arc::default(), open })
    }

    /// Admits a connection from `client`, or says why not: the ticket of a refused
    /// connection holds its place in the overflow allowance while it is answered.
    pub fn admit(&self, client: IpAddr) -> Result<Ticket, Option<(&'static str, Ticket)>> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let reason = if c.total >= self.limits.max_connections {
            "limit"
        } else if c.by_client.get(&client).copied().unwrap_or(0) >= self.limits.max_per_client {
            "client_limit"
        } else {
            c.total += 1;
            *c.by_client.entry(client).or_default() += 1;
            self.open.inc();
            return Ok(Ticket { counts: self.counts.clone(), client: Some(client), open: Some(self.open.clone()) });
        };
        self.metrics.refused(self.limits.endpoint, reason);
        if c.refusing >= overflow_allowance(self.limits.max_connections) {
            self.metrics.refused(self.limits.endpoint, "overflow");
            return Err(None);
        }
        c.refusing += 1;
        Err(Some((reason, Ticket { counts: self.counts.clone(), client: None, open: None })))
    }
}

/// Connections over the limit answered at once; beyond these, closed unanswered.
fn overflow_allowance(max: usize) -> usize {
    (max / 8).clamp(16, 1024)
}

/// The answer to every request of a connection over a limit: `503 SlowDown`, in the
/// S3 error shape, asking the client to come back in a second.
pub(super) fn slow_down() -> Response<Full<Bytes>> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate: too many connections.</Message></Error>";
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    h.insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: usize, per_client: usize) -> Arc<ConnGuard> {
        let limits = ConnLimits {
            endpoint: "s3",
            handshake_timeout: Duration::from_secs(1),
            header_timeout: Duration::from_secs(1),
            body_rate: MinRate { min: 0, window: Duration::from_secs(1) },
            max_connections: max,
            max_per_client: per_client,
        };
        ConnGuard::new(limits, Arc::default())
    }

    #[test]
    fn limits_per_endpoint_and_per_client() {
        let g = guard(3, 2);
        let (a, b) = ("10.0.0.1".parse().expect("test value"), "10.0.0.2".parse().expect("test value"));
        let t1 = g.admit(a).expect("test value");
        let _t2 = g.admit(a).expect("test value");
        let Err(Some(("client_limit", _))) = g.admit(a) else { panic!("a third from one address") };
        let _t3 = g.admit(b).expect("test value");
        let Err(Some(("limit", _))) = g.admit(b) else { panic!("a fourth in all") };
        drop(t1);
        assert!(g.admit(a).is_ok(), "a place given back is free again");
        assert_eq!(g.metrics.refused_count("s3", "client_limit"), 1);
        assert_eq!(g.metrics.refused_count("s3", "limit"), 1);
    }

    #[test]
    fn refusals_beyond_the_allowance_are_closed_unanswered() {
        let g = guard(1, 1);
        let a: IpAddr = "10.0.0.1".parse().expect("test value");
        let _held = g.admit(a).expect("test value");
        let refusing: Vec<_> = (0..16).map(|_| g.admit(a).expect_err("an error").expect("answered")).collect();
        assert!(g.admit(a).expect_err("an error").is_none(), "the 17th is closed at once");
        drop(refusing);
        assert!(g.admit(a).expect_err("an error").is_some(), "the allowance is given back");
        assert_eq!(g.metrics.refused_count("s3", "overflow"), 1);
    }
}

//! `[limits]`: what one connection, one client address, one tenant and one access
//! key may hold of the gateway, so that no client — slow, hostile or numerous — can
//! stop the service for the others.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Size};

/// Connection and request limits of the S3, admin and edge endpoints.
///
/// The defaults let an honest client on a slow WAN link through (a TLS handshake
/// over a 1 s round trip, a request head within 30 s, an upload at 1 KiB/s) and
/// close what no honest client does: a connection that sends nothing, or half a
/// head, or a body at a few bytes per second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Time a client has to complete the TLS handshake.
    pub handshake_timeout: HumanDuration,
    /// Time a client has to send a whole request head; also how long a kept-alive
    /// connection may stay idle between two requests.
    pub header_timeout: HumanDuration,
    /// Least a request body must move, in bytes per second, averaged over
    /// `body_rate_window` of waiting for the client (`0`: no minimum). Slower
    /// uploads end with `RequestTimeout`.
    pub min_body_rate: Size,
    /// The time over which `min_body_rate` is averaged.
    pub body_rate_window: HumanDuration,
    /// Connections open at once, per endpoint; more are answered `503 SlowDown` and
    /// closed.
    pub max_connections: usize,
    /// Connections open at once from one client address, per endpoint.
    pub max_connections_per_client: usize,
    /// Transfer slots (`pipeline.max_transfers`) one tenant may hold at once: the
    /// rest stay free for the other tenants.
    pub transfers_per_tenant: usize,
    /// Transfer slots one access key may hold at once (within its tenant's share).
    pub transfers_per_key: usize,
    /// Requests per second one access key may make, averaged (a token bucket of
    /// `request_burst` tokens); more are answered `503 SlowDown` with `Retry-After`
    /// (`0`: no limit).
    pub requests_per_second: u32,
    /// Requests one access key may make at once above its rate.
    pub request_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: HumanDuration(Duration::from_secs(10)),
            header_timeout: HumanDuration(Duration::from_secs(30)),
            min_body_rate: Size(1024),
            body_rate_window: HumanDuration(Duration::from_secs(30)),
            max_connections: 4096,
            max_connections_per_client: 1024,
            transfers_per_tenant: 24,
            transfers_per_key: 16,
            requests_per_second: 0,
            request_burst: 0,
        }
    }
}

impl LimitsConfig {
    /// What is wrong with these limits, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.handshake_timeout.0 < Duration::from_millis(100) || self.header_timeout.0 < Duration::from_millis(100) {
            return Err("limits.handshake_timeout and limits.header_timeout must be at least 100ms".into());
        }
        if self.body_rate_window.0 < Duration::from_secs(1) {
            return Err("limits.body_rate_window must be at least 1s".into());
        }
        if [self.max_connections, self.max_connections_per_client, self.transfers_per_tenant, self.transfers_per_key]
            .contains(&0)
        {
            return Err("limits.max_connections, max_connections_per_client, transfers_per_tenant and \
                        transfers_per_key must be at least 1"
                .into());
        }
        if self.requests_per_second > 0 && self.request_burst == 0 {
            return Err("limits.request_burst must be at least 1 when requests_per_second is set".into());
        }
        Ok(())
    }
}

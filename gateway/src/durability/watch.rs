//! The location watcher: each location of the catalog is probed (a connection and,
//! for HTTPS, a handshake) every `durability.watch_interval`. A location seen up
//! after being down — or for the first time since start — puts the degraded seals
//! with a fragment there back at the head of the repair queue, so that what it
//! missed is rebuilt within a probe interval of its return instead of after the
//! repair backoff. Every replica watches (cheap); only the repairer repairs.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::{info, warn};

use super::Upkeep;
use crate::backend::transfer::Transfer;

/// Tells whether a location answers.
#[async_trait::async_trait]
pub trait Prober: Send + Sync + std::fmt::Debug {
    /// Whether `location`, at `endpoint`, accepts a connection (and a TLS
    /// handshake, for `https`) now; why not, if not.
    async fn probe(&self, location: &str, endpoint: &url::Url) -> Result<(), String>;
}

#[async_trait::async_trait]
impl Prober for Transfer {
    async fn probe(&self, location: &str, endpoint: &url::Url) -> Result<(), String> {
        Transfer::probe(self, location, endpoint).await.map_err(|e| e.to_string())
    }
}

/// A location answers again: the failures it had are history (data requests keep
/// its health from here on), and the degraded seals with a fragment there are
/// repaired now.
pub async fn location_back(up: &Upkeep, name: &str) {
    up.ctx.health.succeeded(name);
    match up.ctx.meta.resume_repairs_at(name).await {
        Ok(0) => {}
        Ok(n) => info!(location = %name, seals = n, "location up: what it missed is repaired now"),
        Err(e) => warn!(location = %name, error = %e, "cannot resume repairs"),
    }
}

/// Probes every location once. A location answering is "back" when the last probe
/// found it down — or when data requests failed there since (an outage shorter
/// than the probe interval still delayed repairs, which must not wait out their
/// backoff).
pub async fn watch_once(up: &Upkeep, up_before: &mut HashMap<String, bool>) {
    let view = up.ctx.catalog.view();
    for (name, loc) in view.locations.iter() {
        let answer = up.prober.probe(name, &loc.endpoint).await;
        let was = up_before.insert(name.clone(), answer.is_ok());
        match answer {
            Ok(()) if was != Some(true) || up.ctx.health.failures(name) > 0 => location_back(up, name).await,
            Ok(()) => {}
            Err(e) => {
                up.ctx.health.failed(name);
                if was != Some(false) {
                    warn!(location = %name, error = %e, "location check failed");
                }
            }
        }
    }
}

/// Starts the watcher.
pub fn spawn(up: Arc<Upkeep>) {
    tokio::spawn(async move {
        let mut up_before: HashMap<String, bool> = HashMap::new();
        loop {
            watch_once(&up, &mut up_before).await;
            tokio::time::sleep(up.config.watch_interval.0).await;
        }
    });
}

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
    /// handshake, for `https`) now.
    async fn probe(&self, location: &str, endpoint: &url::Url) -> bool;
}

#[async_trait::async_trait]
impl Prober for Transfer {
    async fn probe(&self, location: &str, endpoint: &url::Url) -> bool {
        Transfer::probe(self, location, endpoint).await.is_ok()
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

/// Starts the watcher.
pub fn spawn(up: Arc<Upkeep>) {
    tokio::spawn(async move {
        let mut up_before: HashMap<String, bool> = HashMap::new();
        loop {
            let view = up.ctx.catalog.view();
            for (name, loc) in view.locations.iter() {
                let ok = up.prober.probe(name, &loc.endpoint).await;
                let was = up_before.insert(name.clone(), ok);
                if !ok {
                    up.ctx.health.failed(name);
                }
                if ok && was != Some(true) {
                    location_back(&up, name).await;
                } else if !ok && was != Some(false) {
                    warn!(location = %name, "location down");
                }
            }
            tokio::time::sleep(up.config.watch_interval.0).await;
        }
    });
}

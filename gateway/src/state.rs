//! The gateway's shared state: what the S3 front end, the admin API and the
//! background jobs reach. The data path gets only its part, [`PipelineCtx`].

use std::sync::Arc;

use codec::MasterKey;
use offload::Offload;

use crate::backend::Presigner;
use crate::backend::transfer::Transfer;
use crate::cache::store::Cache;
use crate::catalog::{Catalog, CatalogError, CatalogView};
use crate::config::Settings;
use crate::durability::Upkeep;
use crate::meta::MetaStore;
use crate::node::Node;
use crate::pipeline::PipelineCtx;
use crate::placement::Health;

/// Everything a request or a job needs.
pub struct Gateway {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Locations and policies in force.
    pub catalog: Arc<Catalog>,
    /// Offload engines.
    pub offload: Offload,
    /// Metadata.
    pub meta: MetaStore,
    /// The master key (wraps data keys and access key secrets).
    pub master: Arc<MasterKey>,
    /// Issues presigned URLs; the only holder of location credentials.
    pub presigner: Arc<dyn Presigner>,
    /// Moves bytes through presigned URLs (its figures feed the metrics).
    pub transfer: Transfer,
    /// The local fragment cache, when configured (for its figures: the data path
    /// reaches it as a layer of its fragment store).
    pub cache: Option<Arc<Cache>>,
    /// Recent failures per location.
    pub health: Arc<Health>,
    /// This replica's identity (recorded on its pending writes, holds its leases).
    pub node: Arc<Node>,
    /// The data path.
    pub pipeline: Arc<PipelineCtx>,
    /// Repair, scrub, sweep, collection: their settings and figures.
    pub upkeep: Arc<Upkeep>,
    /// Signs evidence of where objects' fragments are.
    pub evidence: Arc<crate::evidence::Signer>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// Re-reads the catalog from the metadata store and hands new or changed
    /// locations to the presigner and the transfer client.
    pub async fn refresh_catalog(&self) -> Result<Arc<CatalogView>, CatalogError> {
        let before = self.catalog.view();
        let view = self.catalog.reload(&self.meta).await?;
        for (name, loc) in &view.locations {
            let changed = before.locations.get(name).is_none_or(|b| b.ca_file != loc.ca_file);
            if changed || !self.transfer.knows(name) {
                match crate::tls::location_client_config(loc, &self.offload.tls) {
                    Ok(config) => self.transfer.set_location(name, config),
                    Err(e) => tracing::warn!(location = %name, error = %e, "location TLS configuration unusable"),
                }
            }
        }
        self.presigner.set_locations(&view.locations);
        Ok(view)
    }

    /// Writes the catalog to the locations if it changed since its last record
    /// (a failure is logged: the periodic check tries again).
    pub async fn publish_catalog(&self) {
        match self.publish_catalog_now().await {
            Ok(true) => tracing::debug!("catalog record written"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "catalog record not written; will try again"),
        }
    }

    /// Writes the catalog to the locations if it changed since its last record, or
    /// that record is sealed under an older master key version; `true` if written.
    pub async fn publish_catalog_now(&self) -> Result<bool, crate::ledger::LedgerError> {
        let view = self.catalog.view();
        let locations: Vec<String> =
            view.locations.keys().filter(|l| view.state(l) == crate::meta::LocationState::Active).cloned().collect();
        let k = view.policies.get(&self.settings.default_policy).map_or(1, |p| usize::from(p.params.k()));
        let ctx = &self.pipeline;
        crate::ledger::catalog::publish(&ctx.ledger, &self.meta, ctx.locations.as_ref(), &locations, k).await
    }
}

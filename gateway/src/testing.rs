//! What unit tests share: scratch directories, and a data path over an in-memory
//! store (`Rig`) for the in-process tests of the pipeline and the upkeep.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use codec::{CodingParams, MasterKey};
use futures::StreamExt;
use offload::aead::DataKey;
use offload::compress::Algorithm;
use zeroize::Zeroizing;

use crate::backend::memory::MemoryStore;
use crate::catalog::Catalog;
use crate::config::{HumanDuration, Location, LocationKind, Policy, Tier};
use crate::meta::{Manifest, ObjectAttrs, SealState};
use crate::pipeline::shared;
use crate::pipeline::{
    BodyStream, BoxError, Expected, PipelineCtx, PipelineError, PutOutcome, PutRequest, PutTarget, QuorumFailures,
};
use crate::placement::Spread;

/// An empty scratch directory `skyshard-<name>-<pid>` under the system's temporary
/// directory (emptied first if an earlier run left it).
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skyshard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A small segment, so that objects span many of them quickly.
pub(crate) const SEG: u32 = 4096;

/// How a rig is set up.
pub(crate) struct Options {
    pub(crate) k: u8,
    pub(crate) n: u8,
    pub(crate) segment: u32,
    /// Locations beyond the `n` the policy uses (targets for moves).
    pub(crate) spare_locations: usize,
    pub(crate) compression: Option<Algorithm>,
    /// Put the fragment cache (on a file) in front of the store.
    pub(crate) cache: bool,
    /// The policy uses every location (spare ones too), not the first `n`.
    pub(crate) all_locations: bool,
    /// Objects up to this size are packed (0: none, the default here).
    pub(crate) pack_threshold: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            k: 4,
            n: 6,
            segment: SEG,
            spare_locations: 0,
            compression: None,
            cache: false,
            all_locations: false,
            pack_threshold: 0,
        }
    }
}

/// A data path over an in-memory store, with bucket `b` of tenant `default`.
pub(crate) struct Rig {
    pub(crate) ctx: Arc<PipelineCtx>,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) cache: Option<Arc<crate::cache::store::Cache>>,
    pub(crate) policy: Policy,
}

fn location(name: &str) -> Location {
    Location {
        name: name.into(),
        kind: LocationKind::Edge,
        endpoint: url::Url::parse("https://127.0.0.1:1").expect("url"),
        tier: Tier::Edge,
        region: None,
        provider: None,
        jurisdiction: None,
        prefix: "p".into(),
        container: String::new(),
        access_key_id: String::new(),
        secret: Zeroizing::new("a-secret-for-tests".into()),
        signing_region: String::new(),
        ca_file: None,
    }
}

impl Rig {
    pub(crate) async fn new(o: Options) -> Rig {
        static RIGS: AtomicU64 = AtomicU64::new(0);
        let dir = crate::testing::scratch_dir(&format!("pipeline-{}", RIGS.fetch_add(1, Ordering::Relaxed)));
        let (offload, _) =
            offload::Offload::select(&offload::OffloadConfig::default(), &offload::probe()).expect("engines");
        let meta = crate::meta::MetaStore::connect(&format!("sqlite://{}", dir.join("meta.db").display()))
            .await
            .expect("metadata");
        let master = Arc::new(MasterKey::new(offload.aead.as_ref(), &DataKey::from_bytes([5; 32]), 1).expect("kek"));
        let names: Vec<String> = (0..usize::from(o.n) + o.spare_locations).map(|i| format!("l{i}")).collect();
        let locations: BTreeMap<String, Location> = names.iter().map(|n| (n.clone(), location(n))).collect();
        let policy = Policy {
            name: "p".into(),
            params: CodingParams::new(o.k, o.n, o.segment).expect("params"),
            locations: if o.all_locations { names.clone() } else { names[..usize::from(o.n)].to_vec() },
            all_locations: o.all_locations,
            min_cloud: 0,
            min_edge: 0,
            compression: o.compression,
            write_quorum: (o.k + 1).min(o.n),
            pack_threshold: o.pack_threshold,
            constraints: Default::default(),
        };
        let policies = BTreeMap::from([("p".to_string(), policy.clone())]);
        let store = Arc::new(MemoryStore::default());
        let cache = o.cache.then(|| {
            let device = crate::cache::device::FileDevice::open(&dir.join("cache.img"), 16 << 20).expect("device");
            let blocks = crate::cache::device::BlockDevice::block_count(&device);
            let evict = crate::cache::evict::by_name("s3fifo", blocks).expect("policy");
            let cache = crate::cache::store::Cache::open(
                Arc::new(device),
                &dir.join("cache.index"),
                evict,
                offload.clone(),
                master.clone(),
            )
            .expect("cache");
            Arc::new(cache)
        });
        let fragments: Arc<dyn crate::backend::FragmentStore> = match &cache {
            Some(c) => Arc::new(crate::cache::layer::CachedStore::new(store.clone(), c.clone(), true, true)),
            None => store.clone(),
        };
        let node = crate::node::Node::claim(&dir, offload.random.as_ref()).expect("node");
        let config = crate::config::PipelineConfig {
            stall_timeout: HumanDuration(Duration::from_millis(800)),
            retired_grace: HumanDuration(Duration::ZERO),
            ..Default::default()
        };
        let ledger = Arc::new(
            crate::ledger::Ledger::new(
                offload.aead.as_ref(),
                &[(DataKey::from_bytes([5; 32]), 1)],
                offload.random.clone(),
            )
            .expect("ledger"),
        );
        let ctx = Arc::new(PipelineCtx {
            config,
            ledger,
            etag: crate::config::EtagAlgorithm::Md5,
            hashes: crate::pipeline::checksum::HashMeters::register(&offload.meters),
            offload,
            meta,
            catalog: Arc::new(Catalog::new(&locations, &policies, master.clone())),
            master,
            store: fragments,
            locations: store.clone(),
            placement: Arc::new(Spread),
            health: Arc::default(),
            node: Arc::new(node),
            matrices: shared::MatrixCache::default(),
            buffers: shared::BufferPool::new(4),
            transfers: Arc::new(shared::Transfers::new(8, 8, 8)),
            lagging: Arc::new(tokio::sync::Semaphore::new(64 << 20)),
            quorum_failures: QuorumFailures::default(),
            reads: Default::default(),
            packer: Default::default(),
        });
        assert!(ctx.meta.create_bucket("b", "p", "default").await.expect("bucket"));
        Rig { ctx, store, cache, policy }
    }

    pub(crate) fn request(&self, key: &str, len: u64, body: BodyStream, expect: Expected) -> PutRequest {
        PutRequest {
            policy: self.policy.clone(),
            tenant: 0,
            len,
            body,
            checksum: None,
            expect,
            target: PutTarget::Object {
                bucket: "b".into(),
                key: key.as_bytes().to_vec(),
                attrs: ObjectAttrs::default(),
                condition: Default::default(),
                lock: Default::default(),
            },
            customer: None,
            requester: None,
        }
    }

    pub(crate) async fn try_put(&self, key: &str, data: &[u8]) -> Result<PutOutcome, PipelineError> {
        crate::pipeline::put(&self.ctx, self.request(key, data.len() as u64, body(data), Expected::default())).await
    }

    pub(crate) async fn put(&self, key: &str, data: &[u8]) -> PutOutcome {
        self.try_put(key, data).await.unwrap_or_else(|e| panic!("PUT {key} ({} B): {e}", data.len()))
    }

    pub(crate) async fn manifest(&self, key: &str) -> Option<Manifest> {
        self.ctx.meta.manifest("b", key.as_bytes()).await.expect("manifest")
    }

    /// Bytes `range` of `key`: an error before the first byte is the pipeline's,
    /// one later is the stream's.
    pub(crate) async fn get(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>, String> {
        let m = self.manifest(key).await.ok_or("no such key")?;
        let mut stream = crate::pipeline::get(&self.ctx, m, range, None, None).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| format!("mid-stream: {e}"))?);
        }
        Ok(out)
    }

    pub(crate) async fn get_all(&self, key: &str) -> Vec<u8> {
        let size = self.manifest(key).await.expect("visible").version.size;
        self.get(key, 0..size).await.unwrap_or_else(|e| panic!("GET {key}: {e}"))
    }

    /// Where each fragment of `key`'s first part is: (location, name).
    pub(crate) async fn fragments(&self, key: &str) -> Vec<(String, String)> {
        let m = self.manifest(key).await.expect("visible");
        m.parts[0].seal.fragments.iter().map(|f| (f.location.clone(), f.name.clone())).collect()
    }

    /// Waits until the seal's discard (spawned when a write is dropped) is recorded.
    pub(crate) async fn seal_state(&self, seal: crate::meta::SealId) -> Option<SealState> {
        self.ctx.meta.seal(seal).await.expect("seal").map(|s| s.state)
    }
}

pub(crate) fn body(data: &[u8]) -> BodyStream {
    let chunks: Vec<Result<Bytes, BoxError>> = data.chunks(7919).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

/// Incompressible bytes.
pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Seals written so far, by state.
pub(crate) async fn seals_in(rig: &Rig, state: SealState) -> usize {
    let dead = crate::meta::DeadWrites { before: i64::MAX, writer: "", writer_before: 0, retired_before: i64::MAX };
    let all = rig.ctx.meta.collectable_seals(&dead, 1000).await.expect("seals");
    all.iter().filter(|s| s.state == state).count()
}

impl Rig {
    /// The upkeep of this data path, its watcher probing the in-memory locations,
    /// at unlimited rates, with a backoff of one minute.
    pub(crate) fn upkeep(&self) -> crate::durability::Upkeep {
        let config = crate::config::DurabilityConfig {
            repair_rate: crate::config::Size(0),
            scrub_rate: crate::config::Size(0),
            ..Default::default()
        };
        crate::durability::Upkeep::new(self.ctx.clone(), config, "p".into(), self.store.clone())
    }
}

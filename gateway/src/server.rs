//! `skyshard serve`: wiring the pieces together, and the embedded default.
//!
//! Without a configuration file, `serve` runs Skyshard on a laptop: it creates the
//! data directory, a master key file (0600), an SQLite database and a configuration
//! (`skyshard.toml`, 0600: it holds the edge secrets) describing a 4-of-6 policy over
//! six edge stores it runs itself on loopback, then prints the endpoint, the
//! credentials and an aws-cli command. A second start on the same directory reuses
//! all of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use codec::MasterKey;
use offload::{Offload, probe};
use tokio::net::TcpListener;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::auth::CredentialStore;
use crate::backend::LocationSigner;
use crate::backend::http::PresignedStore;
use crate::backend::transfer::Transfer;
use crate::config::{Config, ConfigError, LocationConfig, LocationKind, PolicyConfig, RunEdge, Settings, Tier};
use crate::keys::{SECRET_ALPHABET, random_token, write_private_file};
use crate::meta::MetaStore;
use crate::net::{ConnLimits, Transport};
use crate::pipeline::PipelineCtx;
use crate::pipeline::checksum::HashMeters;
use crate::pipeline::shared::{BufferPool, MatrixCache};
use crate::placement::{Health, Spread};
use crate::s3::S3Front;
use crate::state::Gateway;

/// Name of the configuration file the embedded default writes.
pub const EMBEDDED_CONFIG: &str = "skyshard.toml";

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory belongs to another process, or its node id is unusable.
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    /// An engine pinned in the configuration is missing.
    #[error(transparent)]
    Offload(#[from] offload::SelectError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    /// The master key could not be had.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// Credentials could not be set up.
    #[error(transparent)]
    Credentials(#[from] crate::auth::CredentialError),
    /// The master key could not be used.
    #[error("master key: {0}")]
    Codec(#[from] codec::CodecError),
    /// The master key ring holds no key.
    #[error("master key: the key ring is empty")]
    EmptyRing,
    /// The records key could not be made.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// A listener or directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Certificates or TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The admin token cannot be set up.
    #[error(transparent)]
    AdminToken(#[from] crate::admin::token::TokenError),
    /// The catalog in the metadata store cannot be read.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// The metadata store is empty but a location holds fragments.
    #[error(
        "the metadata store is empty, but location {location} holds this gateway's data ({fragments} fragments \
         and records in its first listing page): its database was lost. Rebuild it from the locations with \
         `skyshard recover --config FILE` (the master key and any k locations suffice), or start with --fresh \
         to abandon that data (the orphan sweep then deletes it after pipeline.pending_grace)"
    )]
    LostStore {
        /// The location.
        location: String,
        /// Fragments seen.
        fragments: usize,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Command-line choices for `serve`.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Configuration file; `None` runs the embedded default.
    pub config: Option<PathBuf>,
    /// Data directory override.
    pub data_dir: Option<PathBuf>,
    /// Listen address override.
    pub listen: Option<SocketAddr>,
    /// Admin endpoint address override.
    pub admin_listen: Option<SocketAddr>,
    /// Database URL override.
    pub database_url: Option<String>,
    /// Start with an empty metadata store even over locations holding fragments
    /// (abandoning them: the orphan sweep deletes them after the pending grace).
    pub fresh: bool,
}

/// Creates (on first start) or loads the embedded default configuration.
pub fn embedded_config(
    data_dir: &Path,
    random: &dyn offload::random::SecureRandom,
) -> Result<(Config, bool), ServeError> {
    let path = data_dir.join(EMBEDDED_CONFIG);
    if path.exists() {
        return Ok((Config::load(&path)?, false));
    }
    let mut locations = Vec::new();
    let mut run_edges = Vec::new();
    for i in 1..=6 {
        let name = format!("edge-{i}");
        // Ports are chosen now and kept; a taken port is replaced at start.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("choosing a port"))?;
        let addr = probe.local_addr().map_err(io("choosing a port"))?;
        drop(probe);
        let secret = random_token(random, 48, SECRET_ALPHABET)?;
        locations.push(LocationConfig {
            name: name.clone(),
            kind: LocationKind::Edge,
            endpoint: format!("https://{addr}"),
            tier: Some(Tier::Edge),
            region: Some("local".into()),
            provider: None,
            jurisdiction: None,
            weight: 1,
            prefix: "skyshard".into(),
            bucket: None,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            signing_region: None,
            container: None,
            temp_url_key: None,
            temp_url_key_file: None,
            secret: Some(secret),
            secret_file: None,
            // The in-process edge stores' certificates come from the local CA.
            ca_file: Some(data_dir.join(crate::tls::TLS_DIR).join(crate::tls::CA_CERT_FILE)),
        });
        run_edges.push(RunEdge { name, listen: addr, data_dir: data_dir.join("edges").join(format!("edge-{i}")) });
    }
    let config = Config {
        data_dir: Some(data_dir.to_path_buf()),
        locations,
        policies: BTreeMap::from([("default".to_string(), PolicyConfig::default())]),
        run_edges,
        ..Config::default()
    };
    save_config(&path, &config)?;
    Ok((config, true))
}

fn save_config(path: &Path, config: &Config) -> Result<(), ServeError> {
    let text = format!(
        "# Written by `skyshard serve` (embedded default). It holds the edge stores' secrets: keep it private.\n{}",
        toml::to_string_pretty(config)
            .map_err(|e| ServeError::Io { what: "writing config".into(), source: std::io::Error::other(e) })?
    );
    let tmp = path.with_extension("toml.new");
    let _ = std::fs::remove_file(&tmp);
    write_private_file(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))?;
    Ok(())
}

/// Binds each in-process edge store, moving it to a new port if its own is taken
/// (and rewriting `config` if so). Returns the listeners.
async fn bind_edges(config: &mut Config) -> Result<(Vec<TcpListener>, bool), ServeError> {
    let mut listeners = Vec::new();
    let mut moved = false;
    for e in &mut config.run_edges {
        let l = match TcpListener::bind(e.listen).await {
            Ok(l) => l,
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                let l =
                    TcpListener::bind(SocketAddr::new(e.listen.ip(), 0)).await.map_err(io("binding an edge store"))?;
                let addr = l.local_addr().map_err(io("binding an edge store"))?;
                warn!(edge = %e.name, old = %e.listen, new = %addr, "edge port taken; moved");
                e.listen = addr;
                if let Some(loc) = config.locations.iter_mut().find(|l| l.name == e.name) {
                    let scheme = if loc.endpoint.starts_with("https:") { "https" } else { "http" };
                    loc.endpoint = format!("{scheme}://{addr}");
                }
                moved = true;
                l
            }
            Err(err) => return Err(io(format!("binding edge store {} on {}", e.name, e.listen))(err)),
        };
        listeners.push(l);
    }
    Ok((listeners, moved))
}

/// The transfer client: one TLS client configuration per location (system roots
/// plus its `ca_file`).
pub(crate) fn build_transfer(settings: &Settings, engine: &offload::tls::TlsEngine) -> Result<Transfer, ServeError> {
    let mut configs = std::collections::HashMap::new();
    for (name, loc) in &settings.locations {
        configs.insert(name.clone(), crate::tls::location_client_config(loc, engine)?);
    }
    Ok(Transfer::new(
        engine,
        configs,
        crate::tls::client_config(&[], engine)?,
        settings.pipeline.connect_timeout.0,
        settings.pipeline.stall_timeout.0,
    ))
}

/// Opens the fragment cache when one is configured.
fn open_cache(
    settings: &Settings,
    offload: &Offload,
    master: &Arc<MasterKey>,
) -> Result<Option<Arc<crate::cache::store::Cache>>, ServeError> {
    let c = &settings.cache;
    let Some(path) = &c.path else { return Ok(None) };
    let device = crate::cache::device::FileDevice::open(path, c.size.0)
        .map_err(io(format!("opening the cache device {}", path.display())))?;
    let index = c.index.clone().unwrap_or_else(|| settings.data_dir.join("cache.index"));
    let blocks = crate::cache::device::BlockDevice::block_count(&device);
    let policy = crate::cache::evict::by_name(c.policy.as_str(), blocks)
        .ok_or_else(|| ConfigError::Invalid(format!("cache.policy {:?}", c.policy.as_str())))?;
    let (kind, direct) = (device.kind(), crate::cache::device::BlockDevice::direct(&device));
    let cache = crate::cache::store::Cache::open(Arc::new(device), &index, policy, offload.clone(), master.clone())
        .map_err(|e| ServeError::Io {
            what: format!("opening the cache {}", path.display()),
            source: std::io::Error::other(e),
        })?;
    info!(
        path = %path.display(),
        kind = ?kind,
        o_direct = direct,
        blocks,
        entries = cache.len(),
        policy = c.policy.as_str(),
        "fragment cache open"
    );
    Ok(Some(Arc::new(cache)))
}

/// The local CA, created on first use.
fn local_ca(data_dir: &Path) -> Result<crate::tls::LocalCa, ServeError> {
    let (ca, created) = crate::tls::LocalCa::open_or_create(&data_dir.join(crate::tls::TLS_DIR))?;
    if created {
        info!(file = %ca.cert_path().display(), "local certificate authority created");
    }
    Ok(ca)
}

/// How the S3 endpoint on `addr` speaks: plain HTTP when configured so, else TLS
/// with the configured certificate or one issued by the local CA. Returns the CA
/// file clients should trust when the certificate is the local CA's.
fn s3_transport(
    settings: &Settings,
    addr: SocketAddr,
    engine: &offload::tls::TlsEngine,
) -> Result<(Transport, Option<PathBuf>), ServeError> {
    let tls = &settings.tls;
    if tls.plain_http {
        warn!(
            "the S3 endpoint serves plain HTTP (tls.plain_http): credentials' signatures and data travel in the clear"
        );
        return Ok((Transport::Plain, None));
    }
    let (identity, ca_file) = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => (crate::tls::load_identity(cert, key)?, None),
        _ => {
            let ca = local_ca(&settings.data_dir)?;
            let names = crate::tls::endpoint_names(addr.ip(), &settings.domains, &tls.names);
            (ca.issue(&names)?.identity, Some(ca.cert_path().to_path_buf()))
        }
    };
    let config = crate::tls::server_config(identity, engine)?;
    Ok((Transport::Tls { engine: engine.clone(), config }, ca_file))
}

/// How often a replica re-reads the catalog (locations and policies other replicas
/// may have changed).
const CATALOG_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

fn spawn_catalog_refresh(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CATALOG_REFRESH).await;
            if let Err(e) = gw.refresh_catalog().await {
                warn!(error = %e, "catalog refresh failed; keeping the previous one");
            }
            gw.publish_catalog().await;
        }
    });
}

/// Makes the data directory and the SQLite files (object names, wrapped keys)
/// private, as a version before these rules may have left them, and raises the
/// limit on open files so that the connection limits decide.
fn make_private(settings: &Settings) -> Result<(), ServeError> {
    crate::keys::make_private(&settings.data_dir, 0o700)?;
    if let Some(path) = settings.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            crate::keys::make_private(Path::new(&format!("{path}{suffix}")), 0o600)?;
        }
    }
    let endpoints = 2 + settings.run_edges.len() as u64;
    let wanted = endpoints * settings.limits.max_connections as u64 + 256;
    match crate::keys::raise_open_files() {
        Some(have) if have < wanted => warn!(
            open_files = have,
            wanted,
            "the limit on open files is below what limits.max_connections allows: raise it (ulimit -n) or lower that"
        ),
        _ => {}
    }
    Ok(())
}

/// An empty metadata store over locations that hold fragments is a lost database
/// (or another gateway's locations), not a new gateway: starting would issue new
/// keys and leave every fragment unreachable. Each location is listed once (one
/// that cannot be listed or does not answer is passed over, with a warning).
async fn refuse_empty_store_over_fragments(
    locations: &dyn crate::backend::FragmentStore,
    settings: &Settings,
) -> Result<(), ServeError> {
    for name in settings.locations.keys() {
        let listed = tokio::time::timeout(std::time::Duration::from_secs(10), locations.list(name, None)).await;
        match listed {
            Ok(Ok(page)) => {
                let held = page
                    .objects
                    .iter()
                    .filter(|o| {
                        crate::durability::sweep::fragment_name(&o.name) || crate::ledger::parse_name(&o.name).is_some()
                    })
                    .count();
                if held > 0 {
                    return Err(ServeError::LostStore { location: name.clone(), fragments: held });
                }
            }
            Ok(Err(e)) => {
                warn!(location = %name, error = %e, "cannot list the location to see whether it holds fragments")
            }
            Err(_) => warn!(location = %name, "the location did not answer a listing in 10 s"),
        }
    }
    Ok(())
}

/// Starts everything and serves until interrupted.
pub async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    crate::keys::private_umask();
    let random = offload::random::SystemRandom::new();
    let embedded = opts.config.is_none();
    let (mut config, data_dir) = match &opts.config {
        Some(path) => {
            let c = Config::load(path)?;
            let d = opts.data_dir.clone().or(c.data_dir.clone()).unwrap_or_else(|| PathBuf::from("skyshard-data"));
            (c, d)
        }
        None => {
            let d = opts.data_dir.clone().unwrap_or_else(|| PathBuf::from("skyshard-data"));
            std::fs::create_dir_all(&d).map_err(io(format!("creating {}", d.display())))?;
            let (c, created) = embedded_config(&d, &random)?;
            if created {
                info!(dir = %d.display(), "embedded default created");
            }
            (c, d)
        }
    };
    std::fs::create_dir_all(&data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
    // First of all, the directory becomes this process's: a second gateway on it
    // stops here, before it moves ports in its configuration.
    let node = crate::node::Node::claim(&data_dir, &random)?;
    info!(node = node.id(), "node identity");
    let (edge_listeners, moved) = bind_edges(&mut config).await?;
    if moved && embedded {
        save_config(&data_dir.join(EMBEDDED_CONFIG), &config)?;
    }
    let mut settings = Settings::from_config(config, opts.listen, Some(data_dir.clone()), opts.database_url.clone())?;
    if let Some(admin) = opts.admin_listen {
        settings.admin_listen = admin;
    } else if opts.listen.is_some() {
        // A listen address given on the command line moves the default admin address.
        settings.admin_listen = crate::config::default_admin_listen(settings.listen);
    }
    let settings = Arc::new(settings);
    make_private(&settings)?;

    let caps = probe();
    let (offload, selection) = Offload::select(&settings.offload, &caps)?;
    for c in &selection.choices {
        info!(job = c.job, engine = %c.chosen, pinned = c.pinned, "offload engine");
        for r in &c.rejected {
            info!(job = c.job, engine = r.engine, reason = %r.reason, "offload engine passed over");
        }
    }

    let conn_metrics = Arc::new(crate::net::ConnMetrics::default());
    for (e, listener) in settings.run_edges.iter().zip(edge_listeners) {
        let loc = &settings.locations[&e.name];
        let state = crate::edge::EdgeState::new(e.data_dir.clone(), loc.secret.as_bytes())
            .map_err(io(format!("opening edge store {}", e.data_dir.display())))?;
        let transport = if loc.endpoint.scheme() == "https" {
            let names = crate::tls::endpoint_names(e.listen.ip(), &[], &[]);
            let identity = local_ca(&data_dir)?.issue(&names)?.identity;
            Transport::Tls { engine: offload.tls.clone(), config: crate::tls::server_config(identity, &offload.tls)? }
        } else {
            Transport::Plain
        };
        info!(edge = %e.name, listen = %e.listen, scheme = transport.scheme(), "edge store running");
        let guard = crate::net::ConnGuard::new(crate::edge::limits(&settings.limits), conn_metrics.clone());
        tokio::spawn(crate::edge::serve(listener, transport, state, guard));
    }

    let transfer = build_transfer(&settings, &offload.tls)?;
    let presigner: Arc<dyn crate::backend::Presigner> = Arc::new(LocationSigner::new(settings.locations.clone()));
    let locations: Arc<dyn crate::backend::FragmentStore> =
        Arc::new(PresignedStore::new(presigner.clone(), transfer.clone(), settings.pipeline.presign_ttl.0));

    let meta = MetaStore::connect(&settings.database_url).await?;
    // A key is created only for a store that holds nothing sealed yet; a key that
    // does not open what is stored is refused before anything is written.
    let sealed = !meta.access_keys().await?.is_empty();
    if !sealed && !opts.fresh {
        refuse_empty_store_over_fragments(locations.as_ref(), &settings).await?;
    }
    let (ring, created_key) =
        crate::keys::master_key(settings.master_key.as_deref().map(|s| s.as_str()), &data_dir, &random, !sealed)?;
    if created_key {
        info!(file = %data_dir.join(crate::keys::MASTER_KEY_FILE).display(), "master key created");
    }
    let master = Arc::new(crate::rekey::master_ring(offload.aead.as_ref(), &ring)?);
    let ledger = Arc::new(crate::ledger::Ledger::new(offload.aead.as_ref(), &ring, offload.random.clone())?);
    let evidence = Arc::new(crate::evidence::Signer::from_ring(&ring).ok_or(ServeError::EmptyRing)?);
    drop(ring);
    let credentials = CredentialStore::new(meta.clone(), master.clone(), offload.random.clone());
    credentials.check_master().await?;
    let (access_key, secret, created) = credentials
        .ensure_initial(settings.access_key_id.as_deref(), settings.secret_access_key.as_deref().map(|s| s.as_str()))
        .await?;

    let admin_token_file = crate::admin::token::ensure(
        &meta,
        settings.admin_token.as_deref().map(|s| s.as_str()),
        &data_dir,
        offload.random.as_ref(),
    )
    .await?;
    let hashes = HashMeters::register(&offload.meters);
    let cache = open_cache(&settings, &offload, &master)?;
    let catalog = Arc::new(crate::catalog::Catalog::new(&settings.locations, &settings.policies, master.clone()));
    let store = match &cache {
        Some(cache) => {
            let c = &settings.cache;
            Arc::new(crate::cache::layer::CachedStore::new(
                locations.clone(),
                cache.clone(),
                c.write_through,
                c.fill_on_read,
            ))
        }
        None => locations.clone(),
    };
    let health = Arc::new(Health::default());
    let node = Arc::new(node);
    let pipeline = Arc::new(PipelineCtx {
        config: settings.pipeline.clone(),
        etag: settings.etag,
        offload: offload.clone(),
        meta: meta.clone(),
        master: master.clone(),
        ledger,
        store,
        locations,
        placement: Arc::new(Spread),
        catalog: catalog.clone(),
        health: health.clone(),
        node: node.clone(),
        matrices: MatrixCache::default(),
        buffers: BufferPool::new(2 * settings.pipeline.max_transfers.min(16)),
        hashes,
        transfers: Arc::new(crate::pipeline::shared::Transfers::new(
            settings.pipeline.max_transfers,
            settings.limits.transfers_per_tenant.min(settings.pipeline.max_transfers),
            settings.limits.transfers_per_key.min(settings.pipeline.max_transfers),
        )),
        lagging: Arc::new(tokio::sync::Semaphore::new(settings.pipeline.lag_buffer.0 as usize)),
        quorum_failures: Default::default(),
        reads: Default::default(),
        packer: Default::default(),
    });
    let upkeep = Arc::new(crate::durability::Upkeep::new(
        pipeline.clone(),
        settings.durability.clone(),
        settings.default_policy.clone(),
        Arc::new(transfer.clone()),
    ));
    let gw = Arc::new(Gateway {
        settings: settings.clone(),
        catalog,
        offload,
        meta: meta.clone(),
        master,
        presigner,
        transfer,
        cache,
        health,
        node,
        pipeline,
        upkeep,
        evidence,
    });
    let view = gw.refresh_catalog().await?;
    for why in &view.invalid {
        warn!(entry = %why, "catalog entry left out");
    }
    gw.publish_catalog().await;
    spawn_catalog_refresh(gw.clone());
    crate::jobs::spawn_runner(gw.clone());
    crate::durability::spawn(gw.upkeep.clone());

    let mut builder = s3s::service::S3ServiceBuilder::new(S3Front::new(gw.clone()));
    builder.set_auth(credentials.clone());
    let rates = crate::s3::rate::KeyRates::new(settings.limits.requests_per_second, settings.limits.request_burst);
    builder.set_access(crate::s3::access::Tenancy::new(credentials.clone(), meta.clone(), rates));
    let s3_metrics = Arc::new(crate::s3::telemetry::S3Metrics::new(gw.offload.random.as_ref()));
    if !settings.domains.is_empty() {
        builder.set_host(crate::s3::host::Domains::new(&settings.domains));
    }
    let mut s3_config = s3s::config::S3Config::default();
    s3_config.xml_max_body_size = crate::s3::limits::MAX_XML_BODY as usize;
    s3_config.post_object_max_file_size = crate::s3::limits::POST_OBJECT_MAX;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(s3_config))));
    let service = crate::s3::limits::Guarded::new(builder.build(), s3_metrics.clone());

    let listener = TcpListener::bind(settings.listen).await.map_err(io(format!("binding {}", settings.listen)))?;
    let addr = listener.local_addr().map_err(io("reading the listen address"))?;
    let (transport, ca_file) = s3_transport(&settings, addr, &gw.offload.tls)?;
    let endpoint = format!("{}://{addr}", transport.scheme());

    let admin_listener =
        TcpListener::bind(settings.admin_listen).await.map_err(io(format!("binding {}", settings.admin_listen)))?;
    let admin_addr = admin_listener.local_addr().map_err(io("reading the admin address"))?;
    let admin_transport = match &transport {
        Transport::Tls { .. } if admin_addr.ip() != addr.ip() => {
            s3_transport(&settings, admin_addr, &gw.offload.tls)?.0
        }
        t => t.clone(),
    };
    let admin_endpoint = format!("{}://{admin_addr}", admin_transport.scheme());
    let admin = crate::admin::Admin::new(gw.clone(), caps, selection, &s3_metrics, &conn_metrics, credentials).router();
    let admin = hyper_util::service::TowerToHyperService::new(admin);
    let admin_guard =
        crate::net::ConnGuard::new(ConnLimits::from_config("admin", &settings.limits), conn_metrics.clone());
    tokio::spawn(crate::net::serve(admin_listener, admin_transport, admin, admin_guard, std::future::pending()));

    let urls = Endpoints {
        s3: &endpoint,
        admin: &admin_endpoint,
        ca_file: ca_file.as_deref(),
        admin_token_file: admin_token_file.as_deref(),
    };
    announce(&settings, &urls, &access_key, &secret, embedded || created, embedded);
    let guard = crate::net::ConnGuard::new(ConnLimits::from_config("s3", &settings.limits), conn_metrics);
    crate::net::serve(listener, transport, service, guard, shutdown_signal()).await;
    meta.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Where the gateway answers.
struct Endpoints<'a> {
    s3: &'a str,
    admin: &'a str,
    ca_file: Option<&'a Path>,
    admin_token_file: Option<&'a Path>,
}

/// Prints how to reach the gateway. Credentials go to standard output, never to the
/// log; the secret only when it was just created or for the embedded default.
fn announce(
    settings: &Settings,
    urls: &Endpoints<'_>,
    access_key: &str,
    secret: &Zeroizing<String>,
    show_secret: bool,
    embedded: bool,
) {
    let mut out = String::new();
    let (endpoint, ca_file) = (urls.s3, urls.ca_file);
    out.push_str(&format!("Skyshard {} — S3 endpoint: {endpoint}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!("  admin endpoint: {} (/metrics, /health, /ready, /v1: `skyshard admin`)\n", urls.admin));
    if let Some(f) = urls.admin_token_file {
        out.push_str(&format!("  admin token:    in {}\n", f.display()));
    }
    out.push_str(&format!("  data directory: {}\n", settings.data_dir.display()));
    let policy = &settings.policies[&settings.default_policy];
    out.push_str(&format!(
        "  default policy: {}-of-{} over {} locations{}\n",
        policy.params.k(),
        policy.params.n(),
        policy.locations.len(),
        if embedded { " (edge stores run by this process)" } else { "" }
    ));
    out.push_str(&format!("  access key id:  {access_key}\n"));
    if show_secret {
        out.push_str(&format!("  secret key:     {}\n", secret.as_str()));
    }
    let ca_arg = match ca_file {
        Some(ca) => {
            out.push_str(&format!(
                "  TLS: certificate issued by this gateway's CA; trust {} (aws-cli: --ca-bundle; boto3: verify=)\n",
                ca.display()
            ));
            format!(" --ca-bundle {}", ca.display())
        }
        None => String::new(),
    };
    let creds = if show_secret {
        format!("AWS_ACCESS_KEY_ID={access_key} AWS_SECRET_ACCESS_KEY={} ", secret.as_str())
    } else {
        String::new()
    };
    out.push_str(&format!("Try:\n  {creds}aws --endpoint-url {endpoint}{ca_arg} s3 ls\n"));
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

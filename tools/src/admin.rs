//! `skyshard admin …`: the admin REST API from the command line. Tables by default,
//! the API's JSON with `--json`; a progress bar while a drain runs.
//!
//! The endpoint, token and CA default to what `skyshard serve` set up in its data
//! directory (`--data`, default `./skyshard-data`): `admin.token` and `tls/ca.pem`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use gateway::backend::transfer::Transfer;

mod evidence;

/// Options shared by every `skyshard admin` command.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin endpoint (as `skyshard serve` prints it).
    #[arg(long, env = "SKYSHARD_ADMIN_ENDPOINT", default_value = "https://127.0.0.1:9001")]
    pub endpoint: String,
    /// Admin token (default: `<data>/admin.token`).
    #[arg(long, env = "SKYSHARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The gateway's data directory, for its admin token and CA.
    #[arg(long = "data", default_value = "skyshard-data")]
    pub data: PathBuf,
    /// CA certificates (PEM) to trust for the endpoint (default: `<data>/tls/ca.pem`).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `skyshard admin` commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The gateway at a glance.
    Status,
    /// Print the API's OpenAPI description (YAML); needs no gateway.
    Openapi,
    /// Storage locations.
    Locations {
        /// What to do.
        #[command(subcommand)]
        what: LocationsCommand,
    },
    /// Placement policies.
    Policies {
        /// What to do.
        #[command(subcommand)]
        what: PoliciesCommand,
    },
    /// Tenants: the owners of access keys and buckets.
    Tenants {
        /// What to do.
        #[command(subcommand)]
        what: TenantsCommand,
    },
    /// S3 access keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        what: KeysCommand,
    },
    /// Buckets and their usage.
    Buckets {
        /// What to do.
        #[command(subcommand)]
        what: BucketsCommand,
    },
    /// Where an object's fragments live, and how they are locked.
    Object {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// A version of it (`null` for the null version); the current one if absent.
        #[arg(long)]
        version_id: Option<String>,
        /// A report signed by the gateway (checked here before it is shown).
        #[arg(long)]
        evidence: bool,
        /// With `--evidence`: the public key it must be signed with (base64), as
        /// `GET /v1/evidence/key` gave it.
        #[arg(long, requires = "evidence")]
        public_key: Option<String>,
    },
    /// Check a signed report saved from `object --evidence --json` (needs no
    /// gateway): its signature, and its key when `--public-key` is given.
    VerifyEvidence {
        /// The saved report (JSON).
        file: PathBuf,
        /// The public key it must be signed with (base64).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Background jobs.
    Jobs {
        /// What to do.
        #[command(subcommand)]
        what: JobsCommand,
    },
    /// Write a backup of the metadata store to FILE (mode 0600): one snapshot of the
    /// catalog and every object version, sealed under a key derived from the master
    /// key. Restore it with `skyshard recover --from-backup FILE`.
    Backup {
        /// Where to write it (must not exist).
        file: std::path::PathBuf,
    },
    /// The master key.
    MasterKey {
        /// What to do.
        #[command(subcommand)]
        what: MasterKeyCommand,
    },
    /// Read every stored fragment back from its location now and check it (missing
    /// or corrupt ones go to the repair queue). Starts a job.
    Scrub {
        /// Follow the job to its end, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// Repair every degraded object now, backoffs ignored: lost and corrupt
    /// fragments checked again, then rebuilt by recoding. Starts a job.
    Repair {
        /// Follow the job to its end, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// List every location now and delete the fragments no object references
    /// (older than the pending grace). Starts a job.
    Sweep {
        /// Follow the job to its end, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
}

/// `skyshard admin locations …`
#[derive(Debug, Subcommand)]
pub enum LocationsCommand {
    /// List locations with state, health and fragments.
    List,
    /// Show one location.
    Show {
        /// Name.
        name: String,
    },
    /// Add a location.
    Add(Box<LocationFlags>),
    /// Change a location added through the API (without --secret-file the secret is kept).
    Update(Box<LocationFlags>),
    /// Move every fragment off a location (by recoding from the others), then mark it drained.
    Drain {
        /// Name.
        name: String,
        /// Return once the job started instead of following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Put a drained location back in service.
    Activate {
        /// Name.
        name: String,
    },
    /// Remove a location that holds no fragment.
    Remove {
        /// Name.
        name: String,
    },
}

/// A location's definition.
#[derive(Debug, Args)]
pub struct LocationFlags {
    /// Name.
    pub name: String,
    /// `s3`, `swift` or `edge`.
    #[arg(long)]
    pub kind: String,
    /// Base URL.
    #[arg(long)]
    pub endpoint: String,
    /// File holding the secret (S3 secret key, Swift TempURL key or edge secret).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// `cloud` or `edge`.
    #[arg(long)]
    pub tier: Option<String>,
    /// Region tag.
    #[arg(long)]
    pub region: Option<String>,
    /// Who runs it (`aws`, `ovh`, `own`, …), for policies' `--max-per-provider`.
    #[arg(long)]
    pub provider: Option<String>,
    /// Whose law it is under (`EU`, `CH`, …), for policies' jurisdiction limits.
    #[arg(long)]
    pub jurisdiction: Option<String>,
    /// Fragment name prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// S3 bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Swift container.
    #[arg(long)]
    pub container: Option<String>,
    /// S3 access key id.
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// S3 signing region.
    #[arg(long)]
    pub signing_region: Option<String>,
    /// CA file (on the gateway's host) for the location's endpoint.
    #[arg(long)]
    pub location_ca_file: Option<String>,
}

/// `skyshard admin policies …`
#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// List policies.
    List,
    /// Show one policy.
    Show {
        /// Name.
        name: String,
    },
    /// Create or replace a policy.
    Put {
        /// Name.
        name: String,
        /// Fragments needed to read.
        #[arg(long)]
        k: u8,
        /// Fragments written.
        #[arg(long)]
        n: u8,
        /// Locations it may use (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        locations: Vec<String>,
        /// Fragments on cloud locations at least.
        #[arg(long, default_value_t = 0)]
        min_cloud: u8,
        /// Fragments on edge locations at least.
        #[arg(long, default_value_t = 0)]
        min_edge: u8,
        /// `none`, `zstd` or `lz4`.
        #[arg(long)]
        compression: Option<String>,
        /// Fragments that must land before a write is acknowledged.
        #[arg(long)]
        write_quorum: Option<u8>,
        /// At most this many fragments of an object with one provider.
        #[arg(long)]
        max_per_provider: Option<u8>,
        /// At most this many fragments of an object in one jurisdiction.
        #[arg(long)]
        max_per_jurisdiction: Option<u8>,
        /// At least COUNT fragments of each object in JURISDICTION (repeatable).
        #[arg(long, value_name = "JURISDICTION=COUNT", value_parser = jurisdiction_count)]
        min_per_jurisdiction: Vec<(String, u8)>,
    },
    /// Delete a policy no bucket uses.
    Delete {
        /// Name.
        name: String,
    },
    /// Make a bucket's new writes use a policy.
    Assign {
        /// Bucket.
        bucket: String,
        /// Policy.
        policy: String,
    },
}

/// `skyshard admin tenants …`
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List tenants with their keys and buckets.
    List,
    /// Create a tenant (then give it keys: `keys create --tenant NAME`).
    Create {
        /// Name (a-z, 0-9 and -).
        name: String,
    },
    /// Show one tenant.
    Show {
        /// Name.
        name: String,
    },
    /// Delete a tenant that owns no key and no bucket.
    Delete {
        /// Name.
        name: String,
    },
}

/// `skyshard admin keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List access keys.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Create a key pair (printed once).
    Create {
        /// Access key id (generated if absent).
        #[arg(long)]
        id: Option<String>,
        /// The tenant it acts for (default: `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// It may delete versions under governance retention (and shorten it)
        /// with `x-amz-bypass-governance-retention: true`.
        #[arg(long)]
        bypass_governance: bool,
    },
    /// Disable a key.
    Revoke {
        /// Access key id.
        id: String,
    },
    /// Give a key a new secret (printed once).
    Rotate {
        /// Access key id.
        id: String,
    },
    /// Delete a key.
    Delete {
        /// Access key id.
        id: String,
    },
}

/// `skyshard admin buckets …`
#[derive(Debug, Subcommand)]
pub enum BucketsCommand {
    /// List buckets with objects, bytes and fragments per location.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one bucket.
    Show {
        /// Name.
        name: String,
    },
    /// Check every object's placement against the sovereignty constraints of the
    /// bucket's policy; fails when one is not kept.
    Audit {
        /// Name.
        name: String,
    },
}

/// `skyshard admin master-key …`
#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Rotate it: a new version is added to the key file and seals from now on; a
    /// job re-wraps every data key and seals every secret and record again under
    /// it (no fragment is rewritten), then retires the old version. Starts a job.
    Rotate {
        /// Follow the job to its end, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
}

/// `skyshard admin jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List,
    /// Show a job.
    Show {
        /// Job id.
        id: String,
    },
    /// Collect garbage now, until nothing collectable is left (a job).
    Gc,
    /// Follow a job with a progress bar until it ends.
    Watch {
        /// Job id.
        id: String,
    },
    /// Cancel a job.
    Cancel {
        /// Job id.
        id: String,
    },
}

/// The API's answers beyond this are refused.
const MAX_ANSWER: usize = 64 << 20;

/// A client of the admin API.
struct Client {
    transfer: Transfer,
    base: url::Url,
    token: Option<String>,
}

impl Client {
    fn new(args: &AdminArgs) -> anyhow::Result<Self> {
        let base = url::Url::parse(&args.endpoint).with_context(|| format!("--endpoint {:?}", args.endpoint))?;
        let engine = offload::tls::TlsEngine::new(offload::tls::TlsKind::Rustls, &offload::meter::Meters::default());
        let ca = args.ca_file.clone().or_else(|| Some(args.data.join("tls/ca.pem")).filter(|p| p.exists()));
        let extra = match &ca {
            Some(f) => gateway::tls::load_ca_bundle(f)?,
            None => Vec::new(),
        };
        let config = gateway::tls::client_config(&extra, &engine)?;
        let transfer = Transfer::new(
            &engine,
            std::collections::HashMap::new(),
            config,
            Duration::from_secs(10),
            Duration::from_secs(60),
        );
        let token = match &args.token {
            Some(t) => Some(t.trim().to_string()),
            None => gateway::keys::read_private_file(&args.data.join(gateway::admin::token::TOKEN_FILE))
                .ok()
                .map(|t| t.trim().to_string()),
        };
        Ok(Self { transfer, base, token })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = self.base.join(path)?;
        let mut headers = vec![(http::header::ACCEPT, "application/json".to_string())];
        if let Some(t) = &self.token {
            headers.push((http::header::AUTHORIZATION, format!("Bearer {t}")));
        }
        let bytes = match &body {
            Some(b) => {
                headers.push((http::header::CONTENT_TYPE, "application/json".into()));
                Bytes::from(serde_json::to_vec(b)?)
            }
            None => Bytes::new(),
        };
        let (status, _, answer) =
            self.transfer.exchange(method, &url, &headers, bytes, MAX_ANSWER).await.with_context(|| {
                format!("cannot reach the admin API at {} (is `skyshard serve` running? see --endpoint)", self.base)
            })?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let value: Value =
            serde_json::from_slice(&answer).unwrap_or_else(|_| json!({ "detail": String::from_utf8_lossy(&answer) }));
        if status.is_success() {
            return Ok(value);
        }
        let detail = value.get("detail").and_then(Value::as_str).unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED {
            bail!("{detail} (pass --token, SKYSHARD_ADMIN_TOKEN, or --data with the gateway's data directory)");
        }
        bail!("{} {}: {detail}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// Every item of a paged list.
    async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.base.join(path)?;
            url.query_pairs_mut().append_pair("limit", "1000");
            if let Some(c) = &cursor {
                url.query_pairs_mut().append_pair("cursor", c);
            }
            let page = self.get(&format!("{}?{}", url.path(), url.query().unwrap_or_default())).await?;
            items.extend(page.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(items),
            }
        }
    }
}

/// Percent-encodes a path segment.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn bytes_h(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_i64)
        .map_or_else(|| "-".into(), |b| gateway::config::units::format_size(b.max(0) as u64))
}

/// A table with aligned columns.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn location_rows(items: &[Value]) -> String {
    let rows = items
        .iter()
        .map(|l| {
            let d = l.get("definition").cloned().unwrap_or_default();
            vec![
                text(l, "name"),
                text(&d, "kind"),
                text(&d, "tier"),
                text(l, "state"),
                text(l, "origin"),
                if l.get("recent_failures").and_then(Value::as_u64).unwrap_or(0) > 0 { "failing" } else { "ok" }.into(),
                format!("{:.1}", l.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0)),
                text(l, "fragments"),
                bytes_h(l, "fragment_bytes"),
                if l.get("enforces_retention").and_then(Value::as_bool) == Some(true) { "enforced" } else { "-" }
                    .into(),
                text(&d, "endpoint"),
            ]
        })
        .collect();
    let headers = [
        "NAME",
        "KIND",
        "TIER",
        "STATE",
        "ORIGIN",
        "HEALTH",
        "LATENCY_MS",
        "FRAGMENTS",
        "BYTES",
        "RETENTION",
        "ENDPOINT",
    ];
    table(&headers, rows)
}

fn job_rows(items: &[Value]) -> String {
    let rows = items
        .iter()
        .map(|j| {
            vec![
                text(j, "id"),
                text(j, "kind"),
                text(j, "location"),
                text(j, "state"),
                format!("{}/{}", text(j, "done"), text(j, "total")),
                text(j, "message"),
            ]
        })
        .collect();
    table(&["ID", "KIND", "LOCATION", "STATE", "DONE", "MESSAGE"], rows)
}

fn bucket_rows(items: &[Value]) -> String {
    let rows = items
        .iter()
        .map(|b| {
            let per: Vec<String> = b
                .get("locations")
                .and_then(Value::as_array)
                .map(|ls| ls.iter().map(|l| format!("{}:{}", text(l, "location"), text(l, "fragments"))).collect())
                .unwrap_or_default();
            vec![
                text(b, "name"),
                text(b, "tenant"),
                text(b, "policy"),
                text(b, "objects"),
                bytes_h(b, "bytes"),
                per.join(" "),
            ]
        })
        .collect();
    table(&["NAME", "TENANT", "POLICY", "OBJECTS", "BYTES", "FRAGMENTS_PER_LOCATION"], rows)
}

fn tenant_rows(items: &[Value]) -> String {
    let rows = items.iter().map(|t| vec![text(t, "name"), text(t, "keys"), text(t, "buckets")]).collect();
    table(&["NAME", "KEYS", "BUCKETS"], rows)
}

/// A list path, narrowed to one tenant when given.
fn of_tenant(path: &str, tenant: &Option<String>) -> String {
    match tenant {
        Some(t) => format!("{path}?tenant={}", seg(t)),
        None => path.to_string(),
    }
}

fn policy_rows(items: &[Value]) -> String {
    let rows = items
        .iter()
        .map(|p| {
            let d = p.get("definition").cloned().unwrap_or_default();
            let locs = d.get("locations").and_then(Value::as_array).map_or(0, Vec::len);
            let buckets = p.get("buckets").and_then(Value::as_array).map_or(0, Vec::len);
            vec![
                text(p, "name"),
                format!("{}-of-{}", text(&d, "k"), text(&d, "n")),
                locs.to_string(),
                text(&d, "min_cloud"),
                text(&d, "min_edge"),
                text(&d, "compression"),
                text(&d, "write_quorum"),
                text(p, "origin"),
                buckets.to_string(),
            ]
        })
        .collect();
    table(&["NAME", "CODE", "LOCATIONS", "MIN_CLOUD", "MIN_EDGE", "COMPRESSION", "QUORUM", "ORIGIN", "BUCKETS"], rows)
}

/// `EU=2` → (`EU`, 2).
fn jurisdiction_count(s: &str) -> Result<(String, u8), String> {
    let (j, c) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected JURISDICTION=COUNT"))?;
    let c = c.parse().map_err(|_| format!("{s:?}: COUNT must be 0-255"))?;
    Ok((j.to_string(), c))
}

fn location_body(f: &LocationFlags, secret_required: bool) -> anyhow::Result<Value> {
    let secret = match &f.secret_file {
        Some(p) => Some(gateway::keys::read_private_file(p)?.trim().to_string()),
        None if secret_required => bail!("--secret-file is required"),
        None => None,
    };
    let mut body = json!({ "name": f.name, "kind": f.kind, "endpoint": f.endpoint });
    let optional = [
        ("tier", &f.tier),
        ("region", &f.region),
        ("provider", &f.provider),
        ("jurisdiction", &f.jurisdiction),
        ("prefix", &f.prefix),
        ("bucket", &f.bucket),
        ("container", &f.container),
        ("access_key_id", &f.access_key_id),
        ("signing_region", &f.signing_region),
        ("ca_file", &f.location_ca_file),
        ("secret", &secret),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    Ok(body)
}

/// Follows a job until it ends, with a progress bar (or, with `json`, prints the
/// final job). Fails unless it succeeded.
async fn watch(client: &Client, id: &str, json_out: bool) -> anyhow::Result<Value> {
    let bar = indicatif::ProgressBar::new(0);
    if json_out {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} fragments  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    loop {
        let job = client.get(&format!("/v1/jobs/{}", seg(id))).await?;
        let total = job.get("total").and_then(Value::as_u64).unwrap_or(0);
        let done = job.get("done").and_then(Value::as_u64).unwrap_or(0);
        bar.set_length(total.max(done));
        bar.set_position(done);
        bar.set_message(text(&job, "message"));
        match job.get("state").and_then(Value::as_str).unwrap_or_default() {
            "succeeded" => {
                bar.finish_with_message(text(&job, "message"));
                return Ok(job);
            }
            state @ ("failed" | "cancelled") => {
                bar.abandon();
                bail!("job {id} {state}: {}", text(&job, "message"));
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

fn print(json_out: bool, value: &Value, human: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human(value));
    }
    Ok(())
}

/// A Unix-milliseconds field as a UTC date and time (`-` for 0 or none).
fn when(v: &Value, key: &str) -> String {
    let ms = v.get(key).and_then(Value::as_i64).unwrap_or(0);
    if ms <= 0 {
        return "-".into();
    }
    match time::OffsetDateTime::from_unix_timestamp(ms / 1000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{ms} ms"),
    }
}

/// `skyshard admin status` for people.
fn status_text(v: &Value) -> String {
    let mut out = String::new();
    let locations = v.get("locations").and_then(Value::as_object).cloned().unwrap_or_default();
    let locations: Vec<String> = locations.iter().map(|(state, n)| format!("{n} {state}")).collect();
    out.push_str(&format!(
        "skyshard {} on {}: locations {}; {} policies; {} live jobs\n",
        text(v, "version"),
        text(v, "database"),
        locations.join(", "),
        text(v, "policies"),
        text(v, "live_jobs")
    ));
    if let Some(unhealthy) = v.get("unhealthy_locations").and_then(Value::as_array).filter(|u| !u.is_empty()) {
        let names: Vec<String> = unhealthy.iter().filter_map(Value::as_str).map(str::to_string).collect();
        out.push_str(&format!("failing recently: {}\n", names.join(", ")));
    }
    let r = v.get("redundancy").cloned().unwrap_or_default();
    let margins: Vec<Vec<String>> = r
        .get("margins")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| vec![text(m, "margin"), text(m, "objects"), bytes_h(m, "bytes")])
        .collect();
    if margins.is_empty() {
        out.push_str("no objects stored\n");
    } else {
        out.push_str("objects by margin (fragments each can still lose):\n");
        out.push_str(&table(&["MARGIN", "OBJECTS", "BYTES"], margins));
    }
    let rate = r.get("repair_fragments_per_second").and_then(Value::as_f64).unwrap_or(0.0);
    out.push_str(&format!(
        "repair queue: {} objects missing {} fragments; since start {} rebuilt ({rate:.2}/s over the last minute), \
         {} found good again, {} failed attempts\n",
        text(&r, "repair_queue_objects"),
        text(&r, "repair_queue_fragments"),
        text(&r, "rebuilt"),
        text(&r, "restored"),
        text(&r, "repair_failures")
    ));
    match r.get("scrub") {
        Some(s) => out.push_str(&format!(
            "scrub: {} fragments checked in this pass ({} problems), started {}; last full pass {}\n",
            text(s, "checked"),
            text(s, "found"),
            when(s, "started_at"),
            when(s, "last_full_pass")
        )),
        None => out.push_str("scrub: no pass yet\n"),
    }
    out.push_str(&format!(
        "collected {} seals, deleted {} orphans since start; CPU {:.1} s\n",
        text(&r, "collected"),
        text(&r, "orphans_deleted"),
        v.get("process_cpu_seconds").and_then(Value::as_f64).unwrap_or(0.0)
    ));
    out
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// Runs `skyshard admin …`.
pub fn run(args: &AdminArgs) -> anyhow::Result<()> {
    if let AdminCommand::Openapi = args.command {
        print!("{}", gateway::admin::openapi::yaml());
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &AdminArgs) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let j = args.json;
    match &args.command {
        AdminCommand::Openapi => print!("{}", gateway::admin::openapi::yaml()),
        AdminCommand::Status => print(j, &c.get("/v1/status").await?, status_text)?,
        AdminCommand::Scrub { wait }
        | AdminCommand::Repair { wait }
        | AdminCommand::Sweep { wait }
        | AdminCommand::MasterKey { what: MasterKeyCommand::Rotate { wait } } => {
            let kind = match args.command {
                AdminCommand::Scrub { .. } => "scrub",
                AdminCommand::Repair { .. } => "repair",
                AdminCommand::MasterKey { .. } => "rekey",
                _ => "sweep",
            };
            let job = c.call(Method::POST, "/v1/jobs", Some(json!({ "kind": kind }))).await?;
            let v = if *wait { watch(&c, &text(&job, "id"), j).await? } else { job };
            print(j, &v, |v| job_rows(std::slice::from_ref(v)))?
        }
        AdminCommand::Backup { file } => {
            const MAX_BACKUP: usize = 4 << 30;
            let url = c.base.join("/v1/backup")?;
            let mut headers = Vec::new();
            if let Some(t) = &c.token {
                headers.push((http::header::AUTHORIZATION, format!("Bearer {t}")));
            }
            let (status, _, body) = c
                .transfer
                .exchange(Method::GET, &url, &headers, Bytes::new(), MAX_BACKUP)
                .await
                .with_context(|| format!("reading the backup from {}", c.base))?;
            if !status.is_success() {
                bail!("{} {}", status.as_u16(), String::from_utf8_lossy(&body));
            }
            gateway::keys::write_private_file(file, &body)?;
            print(j, &json!({ "file": file.display().to_string(), "bytes": body.len() }), |v| {
                format!("backup written to {} ({} bytes)\n", text(v, "file"), v["bytes"])
            })?
        }
        AdminCommand::Locations { what } => match what {
            LocationsCommand::List => {
                let items = c.all("/v1/locations").await?;
                print(j, &Value::Array(items.clone()), |_| location_rows(&items))?
            }
            LocationsCommand::Show { name } => {
                print(j, &c.get(&format!("/v1/locations/{}", seg(name))).await?, pretty)?
            }
            LocationsCommand::Add(f) => {
                let v = c.call(Method::POST, "/v1/locations", Some(location_body(f, true)?)).await?;
                print(j, &v, |v| location_rows(std::slice::from_ref(v)))?
            }
            LocationsCommand::Update(f) => {
                let path = format!("/v1/locations/{}", seg(&f.name));
                let v = c.call(Method::PUT, &path, Some(location_body(f, false)?)).await?;
                print(j, &v, |v| location_rows(std::slice::from_ref(v)))?
            }
            LocationsCommand::Drain { name, no_wait } => {
                let job = c.call(Method::POST, &format!("/v1/locations/{}/drain", seg(name)), None).await?;
                let id = text(&job, "id");
                if *no_wait {
                    print(j, &job, |v| job_rows(std::slice::from_ref(v)))?
                } else {
                    if !j {
                        eprintln!("draining {name} (job {id}); Ctrl-C leaves it running");
                    }
                    let done = watch(&c, &id, j).await?;
                    print(j, &done, |v| {
                        format!(
                            "{}\n{name} is drained: it holds no fragment; `skyshard admin locations remove {name}` takes it out\n",
                            text(v, "message")
                        )
                    })?
                }
            }
            LocationsCommand::Activate { name } => {
                let v = c.call(Method::POST, &format!("/v1/locations/{}/activate", seg(name)), None).await?;
                print(j, &v, |v| location_rows(std::slice::from_ref(v)))?
            }
            LocationsCommand::Remove { name } => {
                c.call(Method::DELETE, &format!("/v1/locations/{}", seg(name)), None).await?;
                print(j, &json!({ "removed": name }), |_| format!("removed location {name}\n"))?
            }
        },
        AdminCommand::Policies { what } => match what {
            PoliciesCommand::List => {
                let items = c.all("/v1/policies").await?;
                print(j, &Value::Array(items.clone()), |_| policy_rows(&items))?
            }
            PoliciesCommand::Show { name } => print(j, &c.get(&format!("/v1/policies/{}", seg(name))).await?, pretty)?,
            PoliciesCommand::Put {
                name,
                k,
                n,
                locations,
                min_cloud,
                min_edge,
                compression,
                write_quorum,
                max_per_provider,
                max_per_jurisdiction,
                min_per_jurisdiction,
            } => {
                let at_least: serde_json::Map<String, Value> =
                    min_per_jurisdiction.iter().map(|(j, c)| (j.clone(), json!(c))).collect();
                let body = json!({
                    "k": k, "n": n, "locations": locations, "min_cloud": min_cloud, "min_edge": min_edge,
                    "compression": compression, "write_quorum": write_quorum,
                    "max_per_provider": max_per_provider, "max_per_jurisdiction": max_per_jurisdiction,
                    "min_per_jurisdiction": at_least,
                });
                let v = c.call(Method::PUT, &format!("/v1/policies/{}", seg(name)), Some(body)).await?;
                print(j, &v, |v| policy_rows(std::slice::from_ref(v)))?
            }
            PoliciesCommand::Delete { name } => {
                c.call(Method::DELETE, &format!("/v1/policies/{}", seg(name)), None).await?;
                print(j, &json!({ "deleted": name }), |_| format!("deleted policy {name}\n"))?
            }
            PoliciesCommand::Assign { bucket, policy } => {
                let path = format!("/v1/buckets/{}/policy", seg(bucket));
                let v = c.call(Method::PUT, &path, Some(json!({ "policy": policy }))).await?;
                print(j, &v, |v| bucket_rows(std::slice::from_ref(v)))?
            }
        },
        AdminCommand::Tenants { what } => match what {
            TenantsCommand::List => {
                let items = c.all("/v1/tenants").await?;
                print(j, &Value::Array(items.clone()), |_| tenant_rows(&items))?
            }
            TenantsCommand::Create { name } => {
                let v = c.call(Method::POST, "/v1/tenants", Some(json!({ "name": name }))).await?;
                print(j, &v, |v| tenant_rows(std::slice::from_ref(v)))?
            }
            TenantsCommand::Show { name } => {
                let v = c.get(&format!("/v1/tenants/{}", seg(name))).await?;
                print(j, &v, |v| tenant_rows(std::slice::from_ref(v)))?
            }
            TenantsCommand::Delete { name } => {
                c.call(Method::DELETE, &format!("/v1/tenants/{}", seg(name)), None).await?;
                print(j, &json!({ "deleted": name }), |_| format!("deleted tenant {name}\n"))?
            }
        },
        AdminCommand::Keys { what } => match what {
            KeysCommand::List { tenant } => {
                let items = c.all(&of_tenant("/v1/keys", tenant)).await?;
                print(j, &Value::Array(items.clone()), |_| {
                    let rows = items
                        .iter()
                        .map(|k| vec![text(k, "access_key_id"), text(k, "tenant"), text(k, "enabled")])
                        .collect();
                    table(&["ACCESS_KEY_ID", "TENANT", "ENABLED"], rows)
                })?
            }
            KeysCommand::Create { id, tenant, bypass_governance } => {
                let body = json!({ "access_key_id": id, "tenant": tenant, "bypass_governance": bypass_governance });
                let v = c.call(Method::POST, "/v1/keys", Some(body)).await?;
                print(j, &v, |v| {
                    format!(
                        "access key id:  {}\nsecret key:     {}\ntenant:         {}\n(the secret is shown this once)\n",
                        text(v, "access_key_id"),
                        text(v, "secret_access_key"),
                        text(v, "tenant")
                    )
                })?
            }
            KeysCommand::Revoke { id } => {
                let v = c.call(Method::POST, &format!("/v1/keys/{}/revoke", seg(id)), None).await?;
                print(j, &v, |_| format!("revoked {id}\n"))?
            }
            KeysCommand::Rotate { id } => {
                let v = c.call(Method::POST, &format!("/v1/keys/{}/rotate", seg(id)), None).await?;
                print(j, &v, |v| format!("new secret key for {id}: {}\n", text(v, "secret_access_key")))?
            }
            KeysCommand::Delete { id } => {
                c.call(Method::DELETE, &format!("/v1/keys/{}", seg(id)), None).await?;
                print(j, &json!({ "deleted": id }), |_| format!("deleted {id}\n"))?
            }
        },
        AdminCommand::Buckets { what } => match what {
            BucketsCommand::List { tenant } => {
                let items = c.all(&of_tenant("/v1/buckets", tenant)).await?;
                print(j, &Value::Array(items.clone()), |_| bucket_rows(&items))?
            }
            BucketsCommand::Show { name } => {
                let v = c.get(&format!("/v1/buckets/{}", seg(name))).await?;
                print(j, &v, |v| bucket_rows(std::slice::from_ref(v)))?
            }
            BucketsCommand::Audit { name } => evidence::audit(&c, j, name).await?,
        },
        AdminCommand::Object { bucket, key, version_id, evidence, public_key } => {
            let mut query = format!("bucket={}&key={}", seg(bucket), seg(key));
            if let Some(v) = version_id {
                query.push_str(&format!("&version={}", seg(v)));
            }
            if *evidence {
                evidence::object(&c, j, &query, public_key.as_deref()).await?
            } else {
                let v = c.get(&format!("/v1/objects?{query}")).await?;
                print(j, &v, evidence::object_text)?
            }
        }
        AdminCommand::VerifyEvidence { file, public_key } => evidence::verify_file(file, public_key.as_deref(), j)?,
        AdminCommand::Jobs { what } => match what {
            JobsCommand::List => {
                let items = c.all("/v1/jobs").await?;
                print(j, &Value::Array(items.clone()), |_| job_rows(&items))?
            }
            JobsCommand::Show { id } => {
                let v = c.get(&format!("/v1/jobs/{}", seg(id))).await?;
                print(j, &v, |v| job_rows(std::slice::from_ref(v)))?
            }
            JobsCommand::Gc => {
                let v = c.call(Method::POST, "/v1/jobs", Some(json!({ "kind": "gc" }))).await?;
                print(j, &v, |v| job_rows(std::slice::from_ref(v)))?
            }
            JobsCommand::Watch { id } => {
                let v = watch(&c, id, j).await?;
                print(j, &v, |v| job_rows(std::slice::from_ref(v)))?
            }
            JobsCommand::Cancel { id } => {
                let v = c.call(Method::POST, &format!("/v1/jobs/{}/cancel", seg(id)), None).await?;
                print(j, &v, |v| job_rows(std::slice::from_ref(v)))?
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "LONGER"], vec![vec!["xyz".into(), "1".into()], vec!["a".into(), "22".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\na    22\n");
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(when(&json!({ "t": 0 }), "t"), "-");
        assert_eq!(when(&json!({ "t": 1_700_000_000_123i64 }), "t"), "2023-11-14 22:13:20");
        assert_eq!(when(&json!({ "t": 951_782_400_000i64 }), "t"), "2000-02-29 00:00:00");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}

//! The end-to-end harness: real processes, real clients, real locations.
//!
//! It starts the `skyshard` release binary (built by `./test`), `rclone serve s3`
//! instances from the Python environment `./test` prepares, and `skyshard edge`
//! stores; it drives Debian's aws-cli (`/usr/bin/aws`) and boto3 (through
//! `tests/py/s3ops.py`). PostgreSQL and Swift are started by `./test`, which passes
//! their addresses in `SKYSHARD_TEST_POSTGRES_URL` and `SKYSHARD_TEST_SWIFT`.
//!
//! Every server listens on 127.0.0.1. Processes are killed when their handles drop.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod wan;

/// Access key every test gateway starts with.
pub const ACCESS_KEY: &str = "SKYTESTACCESSKEY0001";
/// Its secret.
pub const SECRET_KEY: &str = "skytestsecretkey0000000000000000000000001";
/// Marker written into test files; it must never appear at a location.
pub const MARKER: &str = "SKYSHARD-PLAINTEXT-MARKER-7f3a";

/// Where the tools are.
#[derive(Debug)]
pub struct Env {
    /// Repository root.
    pub root: PathBuf,
    /// The `skyshard` binary.
    pub skyshard: PathBuf,
    /// Python with boto3.
    pub python: PathBuf,
    /// rclone.
    pub rclone: PathBuf,
    /// aws-cli v2.
    pub aws: PathBuf,
    /// restic (a backup tool, as a client).
    pub restic: PathBuf,
}

/// The tools, found once; a missing one is a setup error with the fix in its message.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
        let venv = std::env::var_os("SKYSHARD_VENV").map(PathBuf::from).unwrap_or_else(|| root.join(".venv"));
        let e = Env {
            skyshard: std::env::var_os("SKYSHARD_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/release/skyshard")),
            python: venv.join("bin/python"),
            rclone: venv.join("bin/rclone"),
            aws: PathBuf::from("/usr/bin/aws"),
            restic: PathBuf::from("/usr/bin/restic"),
            root,
        };
        let tools = [
            ("skyshard", &e.skyshard),
            ("python", &e.python),
            ("rclone", &e.rclone),
            ("aws-cli", &e.aws),
            ("restic", &e.restic),
        ];
        for (what, p) in tools {
            assert!(
                p.exists(),
                "{what} not found at {}: run ./test, which installs and builds everything",
                p.display()
            );
        }
        e
    })
}

/// A directory removed when dropped (kept when `SKYSHARD_KEEP_TEST_DIRS` is set).
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after `name`.
    pub fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::var_os("SKYSHARD_TEST_TMP").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!("skyshard-e2e-{}-{}-{name}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    /// A path inside.
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SKYSHARD_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Waits until something accepts connections on `port`.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A certificate and key for `127.0.0.1`/`localhost` issued by a test CA, made with
/// `skyshard tls issue`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (what a client trusts).
    pub ca: PathBuf,
    /// The server certificate chain.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

impl Pki {
    /// Issues a certificate from the CA in `dir` (created if missing).
    pub fn issue(dir: &Path, names: &[&str]) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let (ca_dir, cert, key) = (dir.join("ca"), dir.join("server.pem"), dir.join("server.key"));
        let mut cmd = Command::new(&env().skyshard);
        cmd.args(["tls", "issue", "--ca"]).arg(&ca_dir);
        for n in names {
            cmd.args(["--name", n]);
        }
        let out = cmd.arg("--cert-out").arg(&cert).arg("--key-out").arg(&key).output().expect("skyshard tls issue");
        assert!(out.status.success(), "skyshard tls issue: {}", String::from_utf8_lossy(&out.stderr));
        Pki { ca: ca_dir.join("ca.pem"), cert, key }
    }
}

/// The certificate every test location serves (one CA per test process, apart
/// from the gateways' own).
pub fn locations_pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = env().root.join(format!("target/e2e-pki/{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Pki::issue(&dir, &["127.0.0.1", "localhost"])
    })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// An `rclone serve s3` location: its own directory, port and key pair; it checks
/// presigned signatures for real.
#[derive(Debug)]
pub struct Rclone {
    /// Port.
    pub port: u16,
    /// Directory served (top-level directories are buckets).
    pub dir: PathBuf,
    /// The bucket fragments go to.
    pub bucket: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// The certificate it serves HTTPS with.
    pub pki: Pki,
    child: Option<Child>,
}

impl Rclone {
    /// Starts one serving `dir` over HTTPS, with bucket `bucket` created.
    pub fn start(dir: PathBuf, bucket: &str, n: usize) -> Self {
        Self::start_with(dir, bucket, n, locations_pki().clone())
    }

    /// Starts one serving HTTPS with `pki`'s certificate.
    pub fn start_with(dir: PathBuf, bucket: &str, n: usize, pki: Pki) -> Self {
        std::fs::create_dir_all(dir.join(bucket)).expect("bucket dir");
        let mut r = Rclone {
            port: 0,
            dir,
            bucket: bucket.into(),
            access_key: format!("RCLONEKEY{n:04}"),
            secret_key: format!("rclone-secret-{n:04}-abcdefgh"),
            pki,
            child: None,
        };
        r.restart();
        r
    }

    /// Starts (again) on a new port if it is not running.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            return;
        }
        for _ in 0..5 {
            let port = if self.port == 0 { free_port() } else { self.port };
            let child = Command::new(&env().rclone)
                .args(["serve", "s3", "--addr", &format!("127.0.0.1:{port}")])
                .args(["--auth-key", &format!("{},{}", self.access_key, self.secret_key)])
                .arg("--cert")
                .arg(&self.pki.cert)
                .arg("--key")
                .arg(&self.pki.key)
                .arg(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn rclone");
            self.child = Some(child);
            if wait_port(port, Duration::from_secs(10)) {
                self.port = port;
                return;
            }
            self.stop();
            self.port = 0;
        }
        panic!("rclone serve s3 did not start");
    }

    /// Kills it (a location lost).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Every file it stores.
    pub fn files(&self) -> Vec<PathBuf> {
        walk(&self.dir)
    }
}

impl Drop for Rclone {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A standalone `skyshard edge` process.
#[derive(Debug)]
pub struct Edge {
    /// Port.
    pub port: u16,
    /// Data directory.
    pub dir: PathBuf,
    /// Signing secret.
    pub secret: String,
    child: Option<Child>,
}

impl Edge {
    /// Starts one on a free port, serving HTTPS with the locations' certificate.
    pub fn start(dir: PathBuf, n: usize) -> Self {
        let secret = format!("edge-secret-{n:04}-0123456789abcdef");
        let mut e = Edge { port: 0, dir, secret, child: None };
        e.restart();
        e
    }

    /// Starts it (again) if it is not running: on the same port and directory, as a
    /// location back from an outage.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            return;
        }
        let pki = locations_pki();
        for _ in 0..5 {
            let port = if self.port == 0 { free_port() } else { self.port };
            let child = Command::new(&env().skyshard)
                .args(["edge", "--data"])
                .arg(&self.dir)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .arg("--tls-cert")
                .arg(&pki.cert)
                .arg("--tls-key")
                .arg(&pki.key)
                .env("SKYSHARD_EDGE_SECRET", &self.secret)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn skyshard edge");
            self.child = Some(child);
            if wait_port(port, Duration::from_secs(10)) {
                self.port = port;
                return;
            }
            self.stop();
        }
        panic!("skyshard edge did not start on port {}", self.port);
    }

    /// Kills it (a location lost).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Every fragment file it stores.
    pub fn files(&self) -> Vec<PathBuf> {
        walk(&self.dir.join("objects"))
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which metadata database a gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// The embedded SQLite file.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// A new, empty PostgreSQL database on the server `./test` started.
pub fn postgres_database() -> String {
    let admin = std::env::var("SKYSHARD_TEST_POSTGRES_URL")
        .expect("SKYSHARD_TEST_POSTGRES_URL is not set: ./test starts PostgreSQL and sets it");
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!("e2e_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let out = Command::new("psql")
        .arg(&admin)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(out.status.success(), "CREATE DATABASE failed: {}", String::from_utf8_lossy(&out.stderr));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
    format!("{base}/{name}")
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// `https://127.0.0.1:PORT` (or `http://` when configured so), as its banner
    /// announces it.
    pub endpoint: String,
    /// The admin endpoint (`/metrics`, `/health`, `/v1/offload`), as its banner
    /// announces it.
    pub admin: String,
    /// The CA certificate its banner says to trust, if it issued its own.
    pub ca: Option<PathBuf>,
    /// Access key id.
    pub access_key: String,
    /// Secret.
    pub secret_key: String,
    /// Data directory.
    pub data: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Gateway {
    /// Starts `skyshard serve` with a configuration file (or the embedded default
    /// when `config` is `None`) on a free port.
    pub fn start(data: &Path, config: Option<&str>, db: Db) -> Self {
        std::fs::create_dir_all(data).expect("data dir");
        let mut args = vec!["serve".to_string(), "--data".into(), data.display().to_string()];
        if let Some(text) = config {
            let path = data.join("test-config.toml");
            std::fs::write(&path, text).expect("write config");
            args.push("--config".into());
            args.push(path.display().to_string());
        }
        if db == Db::Postgres {
            args.push("--database-url".into());
            args.push(postgres_database());
        }
        let port = free_port();
        args.push("--listen".into());
        args.push(format!("127.0.0.1:{port}"));
        args.extend(["--admin-listen".into(), "127.0.0.1:0".into()]);
        let envs = vec![
            ("SKYSHARD_ACCESS_KEY_ID".to_string(), ACCESS_KEY.to_string()),
            ("SKYSHARD_SECRET_ACCESS_KEY".to_string(), SECRET_KEY.to_string()),
            ("SKYSHARD_LOG".to_string(), "info,sqlx=warn".to_string()),
        ];
        let mut g = Gateway {
            endpoint: String::new(),
            admin: String::new(),
            ca: None,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            data: data.to_path_buf(),
            args,
            envs,
            log: data.join("gateway.log"),
            child: None,
        };
        g.launch();
        g
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut child = Command::new(&env().skyshard)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn skyshard serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match lines.next() {
                Some(Ok(l)) => {
                    banner.push_str(&l);
                    banner.push('\n');
                    if l.starts_with("Try:") {
                        break;
                    }
                }
                _ => {
                    let status = child.wait().ok();
                    panic!("gateway exited ({status:?}) before it was ready:\n{banner}\n{}", self.log_text());
                }
            }
            assert!(Instant::now() < deadline, "gateway did not start");
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let endpoint = banner
            .lines()
            .find_map(|l| l.split_once("S3 endpoint: ").map(|(_, e)| e.trim().to_string()))
            .unwrap_or_else(|| panic!("no endpoint in the banner:\n{banner}"));
        assert!(self.endpoint.is_empty() || self.endpoint == endpoint, "the endpoint moved:\n{banner}");
        self.endpoint = endpoint;
        self.admin = banner
            .lines()
            .find_map(|l| l.split_once("admin endpoint: ").and_then(|(_, e)| e.split(' ').next()).map(str::to_string))
            .unwrap_or_else(|| panic!("no admin endpoint in the banner:\n{banner}"));
        self.ca = banner.lines().find_map(|l| {
            l.split_once("; trust ").map(|(_, rest)| PathBuf::from(rest.split(' ').next().unwrap_or("")))
        });
        self.child = Some(child);
    }

    /// The gateway's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `skyshard admin …` against this gateway (its admin endpoint, and the
    /// token and CA in its data directory).
    pub fn admin_cli(&self, args: &[&str]) -> Out {
        run(Command::new(&env().skyshard)
            .args(["admin", "--endpoint", &self.admin, "--data"])
            .arg(&self.data)
            .args(args)
            .env_remove("SKYSHARD_ADMIN_TOKEN")
            .env_remove("SKYSHARD_ADMIN_ENDPOINT"))
    }

    /// `skyshard admin …` with another token.
    pub fn admin_cli_with_token(&self, token: &str, args: &[&str]) -> Out {
        run(Command::new(&env().skyshard)
            .args(["admin", "--endpoint", &self.admin, "--data"])
            .arg(&self.data)
            .args(["--token", token])
            .args(args))
    }

    /// `skyshard admin --json …`, parsed.
    pub fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.admin_cli(&[&["--json"], args].concat()).ok();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("admin {args:?}: {e}: {}", out.stdout))
    }

    /// A client holding a key of `tenant`, a tenant created here with that key
    /// (`key_id`) through the admin CLI.
    pub fn tenant_client(&self, tenant: &str, key_id: &str) -> Client {
        self.admin_cli(&["tenants", "create", tenant]).ok();
        let k = self.admin_json(&["keys", "create", "--id", key_id, "--tenant", tenant]);
        Client {
            access_key: key_id.into(),
            secret_key: k["secret_access_key"].as_str().expect("secret").to_string(),
            ..Client::from(self)
        }
    }

    /// The admin token the gateway wrote at its first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token")).expect("admin.token").trim().to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Runs `skyshard serve` once more with the same arguments while this one is
    /// stopped, expecting it to refuse: its exit status and standard error, or
    /// `None` for the status if it was still running after `timeout` (then killed).
    pub fn serve_refused(&self, timeout: Duration) -> (Option<std::process::ExitStatus>, String) {
        let err = self.data.with_extension("refused.log");
        let mut child = Command::new(&env().skyshard)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&err).expect("stderr file")))
            .spawn()
            .expect("spawn skyshard serve");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait().expect("wait") {
                Some(s) => break Some(s),
                None if Instant::now() > deadline => {
                    kill(&mut child);
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        (status, std::fs::read_to_string(&err).unwrap_or_default())
    }

    /// The value of a command-line option (`--database-url`, say).
    pub fn arg_value(&self, flag: &str) -> Option<String> {
        self.args.iter().position(|a| a == flag).and_then(|i| self.args.get(i + 1).cloned())
    }

    /// Sets the value of a command-line option for the next (re)start.
    pub fn set_arg_value(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => self.args[i + 1] = value.to_string(),
            None => self.args.extend([flag.to_string(), value.to_string()]),
        }
    }

    /// Adds a command-line argument for the next (re)start.
    pub fn add_arg(&mut self, arg: &str) {
        self.args.push(arg.to_string());
    }

    /// Starts it again with the same arguments (same port, data and database).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Peak resident memory so far, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
        // A failing test shows what the gateway warned about (the whole log stays
        // with SKYSHARD_KEEP_TEST_DIRS).
        if std::thread::panicking() {
            let log = self.log_text();
            let notable: Vec<String> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .map(|l| {
                    l.split('\x1b')
                        .enumerate()
                        .map(|(i, p)| if i == 0 { p } else { p.split_once('m').map_or("", |x| x.1) })
                        .collect()
                })
                .collect();
            let tail = &notable[notable.len().saturating_sub(40)..];
            eprintln!(
                "gateway {} warned ({} lines, last {}):\n{}",
                self.log.display(),
                notable.len(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// TOML for one S3 location served by an rclone instance (HTTPS; the gateway
/// trusts the locations' test CA for it).
pub fn rclone_location(name: &str, r: &Rclone) -> String {
    rclone_location_at(name, r, r.port)
}

/// [`rclone_location`] reached through `port` (a [`wan::Link`] in front of it).
pub fn rclone_location_at(name: &str, r: &Rclone, port: u16) -> String {
    format!(
        "[[locations]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"https://127.0.0.1:{}\"\nbucket = \"{}\"\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nca_file = \"{}\"\n",
        port,
        r.bucket,
        r.access_key,
        r.secret_key,
        locations_pki().ca.display()
    )
}

/// `skyshard admin locations add` arguments (after `add`) for `r` as location
/// `name`, its secret in the private file `secret`.
pub fn location_add_args(name: &str, r: &Rclone, secret: &Path) -> Vec<String> {
    [
        name,
        "--kind",
        "s3",
        "--endpoint",
        &format!("https://127.0.0.1:{}", r.port),
        "--bucket",
        &r.bucket,
        "--access-key-id",
        &r.access_key,
        "--secret-file",
        &secret.display().to_string(),
        "--location-ca-file",
        &locations_pki().ca.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// TOML for a standalone edge store (HTTPS).
pub fn edge_location(name: &str, e: &Edge) -> String {
    format!(
        "[[locations]]\nname = \"{name}\"\nkind = \"edge\"\nendpoint = \"https://127.0.0.1:{}\"\nsecret = \"{}\"\n\
         ca_file = \"{}\"\n",
        e.port,
        e.secret,
        locations_pki().ca.display()
    )
}

/// A gateway over six rclone locations with a `k`-of-6 default policy.
#[derive(Debug)]
pub struct Cluster {
    /// The gateway.
    pub gw: Gateway,
    /// The locations.
    pub locations: Vec<Rclone>,
    /// Scratch space for the test.
    pub dir: TempDir,
}

impl Cluster {
    /// Starts six rclone locations and a gateway on `db` with `policy` TOML
    /// (`[policies.default]` body) and `extra` top-level TOML.
    pub fn start(name: &str, db: Db, policy: &str, extra: &str) -> Self {
        Self::start_described(name, db, policy, extra, &[])
    }

    /// [`Self::start`] with more TOML for each location (`described[i]` for `rc{i}`:
    /// its provider and jurisdiction, say).
    pub fn start_described(name: &str, db: Db, policy: &str, extra: &str, described: &[&str]) -> Self {
        let dir = TempDir::new(name);
        let locations: Vec<Rclone> =
            (0..6).map(|i| Rclone::start(dir.join(&format!("loc{i}")), &format!("frags-{i}"), i)).collect();
        let mut config = String::from(extra);
        config.push('\n');
        for (i, r) in locations.iter().enumerate() {
            config.push_str(&rclone_location(&format!("rc{i}"), r));
            if let Some(more) = described.get(i) {
                config.push_str(more);
                config.push('\n');
            }
        }
        config.push_str("[policies.default]\n");
        config.push_str(policy);
        config.push_str("\n[pipeline]\ngc_interval = \"500ms\"\nretired_grace = \"2s\"\n");
        let gw = Gateway::start(&dir.join("gw"), Some(&config), db);
        Cluster { gw, locations, dir }
    }

    /// A 4-of-6 cluster with 1 MiB segments (so that test objects span several).
    pub fn standard(name: &str, db: Db) -> Self {
        Self::start(name, db, "k = 4\nn = 6\nsegment_size = \"1M\"", "")
    }

    /// Bytes of the fragment files at the locations (see [`Self::fragment_files`]).
    pub fn fragment_bytes(&self) -> u64 {
        self.fragment_paths().iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
    }

    /// Fragment files at the locations (not rclone's own, not the gateway's records:
    /// manifests, tombstones and catalog generations live in `m/`, `t/` and `c/`).
    pub fn fragment_files(&self) -> usize {
        self.fragment_paths().len()
    }

    fn fragment_paths(&self) -> Vec<PathBuf> {
        let record = |f: &Path| {
            f.parent()
                .and_then(|d| d.file_name())
                .and_then(|d| d.to_str())
                .is_some_and(|d| ["m", "p", "t", "c"].contains(&d))
        };
        self.locations
            .iter()
            .flat_map(|l| l.files().into_iter().filter(|f| !f.to_string_lossy().contains(".rclone") && !record(f)))
            .collect()
    }
}

/// `GET url` with curl (trusting the client's CA); the body.
pub fn http_get(cl: &Client, url: &str) -> String {
    let out = cl.curl().args(["-sf", url]).output().expect("curl");
    assert!(out.status.success(), "GET {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `name{labels} value` lines of an OpenMetrics text, keyed by `name{labels}`.
pub fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// The gateway's metrics, scraped from its admin endpoint.
pub fn metrics(gw: &Gateway) -> std::collections::HashMap<String, f64> {
    samples(&http_get(&Client::from(gw), &format!("{}/metrics", gw.admin)))
}

/// Output of a client command.
#[derive(Debug)]
pub struct Out {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Panics with the command's output unless it succeeded.
    pub fn ok(self) -> Self {
        assert!(self.status.success(), "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// Panics unless it failed mentioning `what` (an S3 error code).
    pub fn fails_with(self, what: &str) -> Self {
        assert!(!self.status.success(), "expected failure with {what}, but it succeeded:\n{}", self.stdout);
        assert!(
            self.stderr.contains(what) || self.stdout.contains(what),
            "expected {what}:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().expect("run client");
    Out {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// Client credentials and endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    /// Endpoint URL.
    pub endpoint: String,
    /// Access key.
    pub access_key: String,
    /// Secret.
    pub secret_key: String,
    /// CA certificate to trust (`AWS_CA_BUNDLE` for aws-cli and boto3, `--cacert`
    /// for curl).
    pub ca: Option<PathBuf>,
}

impl From<&Gateway> for Client {
    fn from(g: &Gateway) -> Self {
        Client {
            endpoint: g.endpoint.clone(),
            access_key: g.access_key.clone(),
            secret_key: g.secret_key.clone(),
            ca: g.ca.clone(),
        }
    }
}

impl Client {
    fn ca_env(&self, cmd: &mut Command) {
        match &self.ca {
            Some(ca) => cmd.env("AWS_CA_BUNDLE", ca),
            None => cmd.env_remove("AWS_CA_BUNDLE"),
        };
    }

    /// curl, trusting the gateway's CA.
    pub fn curl(&self) -> Command {
        let mut cmd = Command::new("curl");
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        cmd
    }

    /// Runs aws-cli v2 against the gateway.
    pub fn aws(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&env().aws);
        self.ca_env(&mut cmd);
        run(cmd
            .args(["--endpoint-url", &self.endpoint])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", ""))
    }

    /// Runs `tests/py/<script>` with `args` after the endpoint and the key pair,
    /// trusting the gateway's CA; its JSON output.
    pub fn script(&self, script: &str, args: &[&str]) -> serde_json::Value {
        let mut cmd = Command::new(&env().python);
        self.ca_env(&mut cmd);
        cmd.arg(env().root.join("tests/py").join(script)).args([&self.endpoint, &self.access_key, &self.secret_key]);
        let out = run(cmd.args(args));
        assert!(out.status.success(), "{script} failed ({}):\n{}\n{}", out.status, out.stdout, out.stderr);
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{script} printed {:?}: {e}", out.stdout))
    }

    /// Runs restic on the repository at `bucket/prefix` of the gateway, with the
    /// repository password `password` and no local cache.
    pub fn restic(&self, repository: &str, password: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(&env().restic);
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        run(cmd
            .args(["--no-cache", "-r", &format!("s3:{}/{repository}", self.endpoint)])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("RESTIC_PASSWORD", password))
    }

    /// Runs rclone as an S3 client of the gateway; remote paths are `:s3:bucket/key`.
    pub fn rclone(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&env().rclone);
        cmd.args(["--config", "", "--s3-provider", "Other", "--s3-region", "us-east-1", "--s3-force-path-style"])
            .args(["--s3-endpoint", &self.endpoint, "--s3-access-key-id", &self.access_key])
            .args(["--s3-secret-access-key", &self.secret_key, "--low-level-retries", "1", "--retries", "1"]);
        if let Some(ca) = &self.ca {
            cmd.arg("--ca-cert").arg(ca);
        }
        run(cmd.args(args))
    }

    /// Runs s3cmd against the gateway (path-style, SigV4).
    pub fn s3cmd(&self, args: &[&str]) -> Out {
        let host = self.endpoint.split_once("://").map_or(self.endpoint.as_str(), |(_, h)| h);
        let mut cmd = Command::new(env().python.with_file_name("s3cmd"));
        cmd.args(["-c", "/dev/null", "--access_key", &self.access_key, "--secret_key", &self.secret_key]).args([
            "--host",
            host,
            "--host-bucket",
            host,
            "--region",
            "us-east-1",
        ]);
        match &self.ca {
            Some(ca) => cmd.arg("--ssl").arg(format!("--ca-certs={}", ca.display())),
            None => cmd.arg("--no-ssl"),
        };
        run(cmd.args(args))
    }

    /// Runs one boto3 operation (`tests/py/s3ops.py`): `params` is the operation's
    /// JSON; a streaming body goes to or comes from `file`. Returns the JSON result:
    /// `{"ok": …}` or `{"error": {"code", "status", "message"}}`.
    pub fn boto(&self, op: &str, params: serde_json::Value, file: Option<&Path>) -> serde_json::Value {
        let mut cmd = Command::new(&env().python);
        self.ca_env(&mut cmd);
        cmd.arg(env().root.join("tests/py/s3ops.py"))
            .args([&self.endpoint, &self.access_key, &self.secret_key, op])
            .arg(params.to_string());
        if let Some(f) = file {
            cmd.arg(f);
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "s3ops.py crashed:\n{}\n{}", out.stdout, out.stderr);
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("s3ops.py printed {:?}: {e}", out.stdout))
    }

    /// The error code of a failed boto3 call (panics if it succeeded).
    pub fn boto_error(&self, op: &str, params: serde_json::Value) -> (String, u64) {
        let r = self.boto(op, params, None);
        let e = r.get("error").unwrap_or_else(|| panic!("{op} succeeded, an error was expected: {r}"));
        (e["code"].as_str().unwrap_or_default().to_string(), e["status"].as_u64().unwrap_or(0))
    }
}

/// The result of a boto3 call that succeeded ([`Client::boto`]); panics with the
/// error of one that did not.
pub fn ok(v: serde_json::Value) -> serde_json::Value {
    assert!(v.get("ok").is_some(), "call failed: {v}");
    v["ok"].clone()
}

/// A file of `len` deterministic pseudo-random bytes, with [`MARKER`] written every
/// 64 KiB so that a plaintext leak would show.
pub fn data_file(path: &Path, len: usize, seed: u64) -> PathBuf {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    let mut off = 0;
    while off + MARKER.len() <= len {
        v[off..off + MARKER.len()].copy_from_slice(MARKER.as_bytes());
        off += 64 << 10;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("dir");
    }
    std::fs::write(path, &v).expect("write data file");
    path.to_path_buf()
}

/// Whether two files have the same bytes.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Every regular file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Asserts that no file under `dirs` contains any of `needles`, in its path or its
/// bytes.
pub fn assert_no_leak(dirs: &[&Path], needles: &[&str]) {
    let mut checked = 0;
    for d in dirs {
        for f in walk(d) {
            let rel = f.strip_prefix(d).unwrap_or(&f).display().to_string();
            let mut bytes = Vec::new();
            if let Ok(mut h) = std::fs::File::open(&f) {
                let _ = h.read_to_end(&mut bytes);
            }
            for n in needles {
                assert!(!rel.contains(n), "{n:?} appears in the name of {}", f.display());
                assert!(!bytes.windows(n.len()).any(|w| w == n.as_bytes()), "{n:?} appears inside {}", f.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no location file was checked");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

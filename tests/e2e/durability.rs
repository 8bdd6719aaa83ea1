//! Redundancy the gateway maintains: a location's outage repaired once it is back,
//! corruption found by scrub and rebuilt by repair, a fragment restored after a 404
//! seen as stored again, orphans swept from edge and S3 locations, repair and scrub
//! resumed after a kill, and a GET that cannot finish ending in a reset connection.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use e2e::{
    Client, Db, Edge, Gateway, Rclone, TempDir, data_file, edge_location, eventually, rclone_location, same_file,
};

use crate::on_both_databases;

/// A location of either kind, run as its own process.
enum Site {
    Edge(Edge),
    S3(Rclone),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Edge,
    S3,
}

impl Site {
    fn start(kind: Kind, dir: PathBuf, n: usize) -> Site {
        match kind {
            Kind::Edge => Site::Edge(Edge::start(dir, n)),
            Kind::S3 => Site::S3(Rclone::start(dir, &format!("frags-{n}"), n)),
        }
    }

    fn stop(&mut self) {
        match self {
            Site::Edge(e) => e.stop(),
            Site::S3(r) => r.stop(),
        }
    }

    /// Starts it again on the same port, with what it stored.
    fn restart(&mut self) {
        match self {
            Site::Edge(e) => e.restart(),
            Site::S3(r) => r.restart(),
        }
    }

    fn toml(&self, name: &str) -> String {
        match self {
            Site::Edge(e) => edge_location(name, e),
            Site::S3(r) => rclone_location(name, r),
        }
    }

    /// The directory fragments are stored under (the default prefix `skyshard`).
    fn fragment_dir(&self) -> PathBuf {
        match self {
            Site::Edge(e) => e.dir.join("objects/skyshard"),
            Site::S3(r) => r.dir.join(&r.bucket).join("skyshard"),
        }
    }

    /// Every fragment file (`<seal>/<index>`, or `<seal>/<index>.<tag>` when
    /// rebuilt) it holds.
    fn fragments(&self) -> Vec<PathBuf> {
        let index = |n: &str| n.split_once('.').map_or(n, |(i, _)| i).parse::<u8>().is_ok();
        let mut v: Vec<PathBuf> = e2e::walk(&self.fragment_dir())
            .into_iter()
            .filter(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(index))
            .collect();
        v.sort();
        v
    }

    /// The file of fragment `index` of `seal`.
    fn fragment(&self, seal: &str, index: i64) -> PathBuf {
        self.fragment_dir().join(seal).join(index.to_string())
    }
}

/// A gateway over six sites with a 4-of-6 policy and 1 MiB segments.
struct Rig {
    gw: Gateway,
    sites: Vec<Site>,
    dir: TempDir,
}

impl Rig {
    fn start(name: &str, db: Db, kinds: [Kind; 6], extra: &str) -> Rig {
        let dir = TempDir::new(name);
        let sites: Vec<Site> =
            kinds.iter().enumerate().map(|(i, k)| Site::start(*k, dir.join(&format!("site{i}")), i)).collect();
        let mut config = format!("{extra}\n");
        for (i, s) in sites.iter().enumerate() {
            config.push_str(&s.toml(&format!("s{i}")));
        }
        config.push_str("[policies.default]\nk = 4\nn = 6\nsegment_size = \"1M\"\n");
        let gw = Gateway::start(&dir.join("gw"), Some(&config), db);
        Rig { gw, sites, dir }
    }

    fn client(&self) -> Client {
        Client::from(&self.gw)
    }

    /// `admin object` of each key.
    fn objects(&self, bucket: &str, keys: &[String]) -> Vec<Value> {
        keys.iter().map(|k| self.gw.admin_json(&["object", bucket, k])).collect()
    }

    /// Whether every part of every key has all six fragments stored.
    fn all_whole(&self, bucket: &str, keys: &[String]) -> bool {
        self.objects(bucket, keys).iter().all(|o| parts(o).iter().all(|p| stored(p) == 6 && p["margin"] == 2))
    }

    /// Seals by margin, from `admin status`.
    fn margins(&self) -> Vec<(i64, i64)> {
        let status = self.gw.admin_json(&["status"]);
        status["redundancy"]["margins"]
            .as_array()
            .expect("margins")
            .iter()
            .map(|m| (m["margin"].as_i64().expect("margin"), m["objects"].as_i64().expect("objects")))
            .collect()
    }

    /// Downloads the whole bucket and compares it with `files` (named by key).
    fn read_back(&self, bucket: &str, files: &[PathBuf], round: &str) {
        let into = self.dir.join(&format!("back-{round}"));
        let _ = std::fs::remove_dir_all(&into);
        let out =
            self.client().aws(&["s3", "cp", "--recursive", "--no-progress", &format!("s3://{bucket}"), &path(&into)]);
        assert!(out.status.success(), "{round}: {}\n{}", out.stderr, self.gw.log_text());
        for f in files {
            let key = f.file_name().expect("name");
            assert!(same_file(f, &into.join(key)), "{round}: {key:?} came back different");
        }
    }

    /// Stops every pair of sites but `spared` in turn, and reads everything back
    /// with the four left.
    fn survives_any_two_stopped(&mut self, spared: usize, bucket: &str, files: &[PathBuf]) {
        for a in 0..6 {
            for b in a + 1..6 {
                if a == spared || b == spared {
                    continue;
                }
                self.sites[a].stop();
                self.sites[b].stop();
                self.read_back(bucket, files, &format!("without-{a}-{b}"));
                self.sites[a].restart();
                self.sites[b].restart();
            }
        }
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn parts(obj: &Value) -> Vec<Value> {
    obj["parts"].as_array().cloned().expect("parts")
}

fn fragments(part: &Value) -> Vec<Value> {
    part["fragments"].as_array().cloned().expect("fragments")
}

fn stored(part: &Value) -> usize {
    fragments(part).iter().filter(|f| f["state"] == "stored").count()
}

/// Uploads `(len, seed)` files as objects named `o<seed>`.
fn upload(rig: &Rig, bucket: &str, specs: &[(usize, u64)]) -> (Vec<PathBuf>, Vec<String>) {
    let cl = rig.client();
    let d = rig.dir.join("files");
    let files: Vec<PathBuf> =
        specs.iter().map(|&(len, seed)| data_file(&d.join(format!("o{seed}")), len, seed)).collect();
    for f in &files {
        let key = f.file_name().and_then(|n| n.to_str()).expect("name");
        cl.aws(&["s3", "cp", "--no-progress", &path(f), &format!("s3://{bucket}/{key}")]).ok();
    }
    let keys = specs.iter().map(|(_, seed)| format!("o{seed}")).collect();
    (files, keys)
}

/// The outage drill: a location stops, three objects are written (five fragments
/// each, the write quorum), the location comes back. With the default settings,
/// every object is back to six healthy fragments within 90 s, and then survives any
/// two other locations stopped.
fn outage_drill(kind: Kind, db: Db) {
    let mut rig = Rig::start("drill", db, [kind; 6], "");
    rig.client().aws(&["s3", "mb", "s3://drill"]).ok();
    rig.sites[2].stop();
    let (files, keys) = upload(&rig, "drill", &[(10_000, 1), (2_500_000, 2), (300_000, 3)]);
    for o in rig.objects("drill", &keys) {
        for p in parts(&o) {
            assert_eq!((stored(&p), p["margin"].as_i64()), (5, Some(1)), "landed at the write quorum: {o}");
            let at_2: Vec<Value> = fragments(&p).into_iter().filter(|f| f["location"] == "s2").collect();
            assert_eq!(at_2.len(), 1, "its sixth fragment still belongs at s2: {o}");
            assert_ne!(at_2[0]["state"], "stored");
        }
    }
    assert_eq!(rig.margins(), [(1, 3)], "status counts them at margin 1");

    let back = Instant::now();
    rig.sites[2].restart();
    assert!(
        eventually(Duration::from_secs(90), || rig.all_whole("drill", &keys)),
        "not back to six fragments 90 s after the location returned: {:?}\n{}",
        rig.objects("drill", &keys),
        rig.gw.log_text()
    );
    eprintln!(
        "outage drill ({kind:?}, {db:?}): whole again {:.1} s after the location returned",
        back.elapsed().as_secs_f64()
    );
    assert_eq!(rig.sites[2].fragments().len(), 3, "one fragment of each object rebuilt at s2");
    assert_eq!(rig.margins(), [(2, 3)]);
    let status = rig.gw.admin_json(&["status"]);
    assert_eq!(status["redundancy"]["repair_queue_objects"], 0, "{status}");
    let m = e2e::metrics(&rig.gw);
    assert_eq!(m.get("skyshard_repair_rebuilt_fragments_total").copied(), Some(3.0), "{m:?}");
    assert_eq!(m.get(r#"skyshard_seals_by_margin{margin="2"}"#).copied(), Some(3.0), "{m:?}");

    rig.survives_any_two_stopped(2, "drill", &files);
}

fn outage_drill_over_edges(db: Db) {
    outage_drill(Kind::Edge, db);
}

on_both_databases!(outage_drill_over_edges);

#[test]
fn outage_drill_over_rclone() {
    outage_drill(Kind::S3, Db::Sqlite);
}

/// Flips one byte in the middle of `file`.
fn flip(file: &Path) {
    let mut bytes = std::fs::read(file).expect("read fragment");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(file, bytes).expect("write fragment");
}

/// A job run to its end with `--wait --json`: its final state.
fn job(gw: &Gateway, what: &str) -> Value {
    let j = gw.admin_json(&[what, "--wait"]);
    assert_eq!(j["state"], "succeeded", "{what}: {j}");
    j
}

/// Upkeep driven by hand (background repair off, so that each step is seen): a
/// fragment file gone and put back, a byte flipped in every fragment at one
/// location, orphans planted at an edge and at an S3 location.
fn maintenance(db: Db) {
    use Kind::{Edge, S3};
    let extra = "[durability]\nrepair = false\n[pipeline]\npending_grace = \"4s\"\n";
    let mut rig = Rig::start("upkeep", db, [Edge, Edge, Edge, S3, S3, S3], extra);
    rig.client().aws(&["s3", "mb", "s3://keep"]).ok();
    let (files, keys) = upload(&rig, "keep", &[(10_000, 1), (2_500_000, 2), (300_000, 3), (1, 4)]);
    let seal_of = |o: &Value| parts(o)[0]["seal"].as_str().expect("seal").to_string();
    let objects = rig.objects("keep", &keys);

    // A fragment file goes away: scrub finds it missing.
    let gone = rig.sites[0].fragment(&seal_of(&objects[1]), fragment_index(&objects[1], "s0"));
    let aside = rig.dir.join("aside");
    std::fs::rename(&gone, &aside).expect("move the fragment away");
    let j = job(&rig.gw, "scrub");
    assert!(j["message"].as_str().unwrap_or_default().contains("1 missing, 0 corrupt"), "{j}");
    let o = rig.gw.admin_json(&["object", "keep", &keys[1]]);
    assert_eq!(state_at(&o, "s0"), "missing", "{o}");
    // It comes back (a restored backup, a remounted disk): repair checks before it
    // rebuilds, and finds it good again — the same file, not a rebuilt one.
    std::fs::rename(&aside, &gone).expect("put it back");
    let inode = ino(&gone);
    let j = job(&rig.gw, "repair");
    assert!(j["message"].as_str().unwrap_or_default().starts_with("0 fragments rebuilt, 1 found good again"), "{j}");
    assert_eq!(ino(&gone), inode, "kept, not rebuilt");
    let o = rig.gw.admin_json(&["object", "keep", &keys[1]]);
    assert_eq!(state_at(&o, "s0"), "stored", "{o}");

    // A byte flipped in every fragment at s3 (an S3 location): scrub finds each one
    // corrupt; repair rebuilds them; then any two other locations may stop.
    let tampered = rig.sites[3].fragments();
    assert_eq!(tampered.len(), 4);
    for f in &tampered {
        flip(f);
    }
    let flipped: Vec<Vec<u8>> = tampered.iter().map(|f| std::fs::read(f).expect("read")).collect();
    let j = job(&rig.gw, "scrub");
    assert!(j["message"].as_str().unwrap_or_default().contains("0 missing, 4 corrupt"), "{j}");
    assert_eq!(j["failed"], 4, "{j}");
    for o in rig.objects("keep", &keys) {
        assert_eq!(state_at(&o, "s3"), "corrupt", "{o}");
        assert_eq!(parts(&o)[0]["margin"], 1, "{o}");
    }
    assert_eq!(rig.margins(), [(1, 4)]);
    let human = rig.gw.admin_cli(&["status"]).ok().stdout;
    assert!(human.contains("objects by margin"), "status shows objects by margin:\n{human}");
    let j = job(&rig.gw, "repair");
    assert!(j["message"].as_str().unwrap_or_default().starts_with("4 fragments rebuilt"), "{j}");
    // Rebuilt under new names (a location takes each name once); the corrupt copies
    // are deleted.
    assert!(tampered.iter().all(|f| !f.exists()), "corrupt copies deleted");
    let rebuilt = rig.sites[3].fragments();
    assert_eq!(rebuilt.len(), 4, "{rebuilt:?}");
    for f in &rebuilt {
        assert!(!flipped.contains(&std::fs::read(f).expect("rebuilt")), "{} is new", f.display());
    }
    for o in rig.objects("keep", &keys) {
        let at = fragments(&parts(&o)[0]).into_iter().find(|f| f["location"] == "s3").expect("at s3");
        assert_eq!(at["state"], "stored", "{o}");
        assert!(at["verified_at"].as_i64().unwrap_or(0) > 0, "a rebuilt fragment counts as verified when written: {o}");
    }
    assert_eq!(rig.margins(), [(2, 4)]);
    let m = e2e::metrics(&rig.gw);
    assert_eq!(m.get("skyshard_repair_rebuilt_fragments_total").copied(), Some(4.0), "{m:?}");
    assert_eq!(m.get("skyshard_repair_restored_fragments_total").copied(), Some(1.0), "{m:?}");
    rig.survives_any_two_stopped(3, "keep", &files);

    // Orphans: fragment files no seal references, at an edge and an S3 location (a
    // crash between an upload and its record leaves these). Young ones are left for
    // the grace; then they go, and nothing else does.
    let live: Vec<Vec<PathBuf>> = rig.sites.iter().map(Site::fragments).collect();
    let orphans = [
        rig.sites[1].fragment_dir().join("0123456789abcdef0123456789abcdef/1"),
        rig.sites[4].fragment_dir().join("fedcba9876543210fedcba9876543210/4"),
    ];
    let stranger = rig.sites[4].fragment_dir().join("notes.txt");
    for o in orphans.iter().chain([&stranger]) {
        std::fs::create_dir_all(o.parent().expect("dir")).expect("dir");
        std::fs::write(o, b"left behind by a crash").expect("plant");
    }
    let j = job(&rig.gw, "sweep");
    assert!(j["message"].as_str().unwrap_or_default().contains("0 orphans deleted, 2 younger than the grace"), "{j}");
    assert!(orphans.iter().all(|o| o.exists()));
    std::thread::sleep(Duration::from_secs(4));
    let j = job(&rig.gw, "sweep");
    assert!(j["message"].as_str().unwrap_or_default().contains("2 orphans deleted, 0 younger"), "{j}");
    assert!(orphans.iter().all(|o| !o.exists()), "orphans removed");
    assert!(stranger.exists(), "a file that is no fragment is not the sweep's to delete");
    let now: Vec<Vec<PathBuf>> = rig.sites.iter().map(Site::fragments).collect();
    assert_eq!(now, live, "every live fragment kept");
    let m = e2e::metrics(&rig.gw);
    assert_eq!(m.get("skyshard_sweep_orphans_deleted_total").copied(), Some(2.0), "{m:?}");
    rig.read_back("keep", &files, "after-sweep");
}

on_both_databases!(maintenance);

fn fragment_index(obj: &Value, location: &str) -> i64 {
    fragments(&parts(obj)[0])
        .iter()
        .find(|f| f["location"] == location)
        .and_then(|f| f["index"].as_i64())
        .expect("index")
}

fn state_at(obj: &Value, location: &str) -> String {
    fragments(&parts(obj)[0])
        .iter()
        .find(|f| f["location"] == location)
        .and_then(|f| f["state"].as_str())
        .expect("state")
        .to_string()
}

fn ino(f: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(f).expect("metadata").ino()
}

/// GET requests the gateway sent to locations since it started.
fn location_gets(gw: &Gateway) -> f64 {
    e2e::metrics(gw)
        .iter()
        .filter(|(k, _)| k.starts_with("skyshard_location_requests_total{") && k.contains(r#"operation="get""#))
        .map(|(_, v)| v)
        .sum()
}

/// Repair and scrub killed half-way (SIGKILL) carry on after the restart from where
/// they were, instead of starting over.
fn upkeep_resumes_after_a_kill(db: Db) {
    // No background scrub: the scrub counted here is the job's.
    let extra =
        "[durability]\nrepair_rate = \"1M\"\nrepair_interval = \"1s\"\nwatch_interval = \"1s\"\nscrub_rate = \"0\"\n";
    let mut rig = Rig::start("resume", db, [Kind::S3; 6], extra);
    rig.client().aws(&["s3", "mb", "s3://many"]).ok();
    rig.sites[1].stop();
    let specs: Vec<(usize, u64)> = (1..=12).map(|i| (1 << 20, i)).collect();
    let (files, keys) = upload(&rig, "many", &specs);

    // Twelve fragments to rebuild at s1, about 1.25 MiB of transfers each at 1 MiB/s.
    rig.sites[1].restart();
    assert!(eventually(Duration::from_secs(60), || rig.sites[1].fragments().len() >= 2), "repair did not start");
    rig.gw.kill9();
    let before = rig.sites[1].fragments().len();
    assert!(before < 12, "repair finished before the kill ({before})");
    rig.gw.restart();
    assert!(
        eventually(Duration::from_secs(60), || rig.all_whole("many", &keys)),
        "repair did not resume: {:?}\n{}",
        rig.objects("many", &keys),
        rig.gw.log_text()
    );
    let rebuilt = e2e::metrics(&rig.gw).get("skyshard_repair_rebuilt_fragments_total").copied().unwrap_or(0.0);
    assert!(rebuilt <= (12 - before) as f64 + 1.0, "rebuilt {rebuilt} after the restart, {before} were done before");
    // A rebuilt copy written but not yet recorded when the kill came is an orphan
    // under a name of its own (the sweep's, after the grace): at most one.
    let at_s1 = rig.sites[1].fragments().len();
    assert!((12..=13).contains(&at_s1), "{at_s1} fragments at s1");
    for o in rig.objects("many", &keys) {
        assert!(fragments(&parts(&o)[0]).iter().all(|f| f["state"] == "stored"), "nothing left repairing: {o}");
    }
    // What s1 got back is sound: read everything with two others stopped.
    rig.sites[0].stop();
    rig.sites[5].stop();
    rig.read_back("many", &files, "rebuilt");
    rig.sites[0].restart();
    rig.sites[5].restart();

    // A scrub of 72 fragments (18 MiB) at 1 MiB/s, killed after a few.
    let started = rig.gw.admin_json(&["scrub"]);
    let id = started["id"].as_str().expect("job id").to_string();
    assert!(
        eventually(Duration::from_secs(60), || rig.gw.admin_json(&["jobs", "show", &id])["done"].as_i64() >= Some(8)),
        "scrub made no progress"
    );
    rig.gw.kill9();
    rig.gw.restart();
    let j = rig.gw.admin_json(&["jobs", "watch", &id]);
    assert_eq!(j["state"], "succeeded", "{j}");
    assert!(j["message"].as_str().unwrap_or_default().starts_with("72 fragments checked: 0 missing, 0 corrupt"), "{j}");
    let gets = location_gets(&rig.gw);
    assert!(gets < 72.0 - 4.0, "the resumed scrub read {gets} fragments: it started over");
}

on_both_databases!(upkeep_resumes_after_a_kill);

/// A GET whose later records are damaged at more locations than the code can
/// tolerate: the first segments are already sent when the failure is found, so the
/// connection is reset — curl reports an error rather than a short, clean body.
#[test]
fn a_get_that_cannot_finish_resets_its_connection() {
    let rig = Rig::start("reset", Db::Sqlite, [Kind::S3; 6], "[durability]\nrepair = false\nscrub_rate = \"0\"\n");
    let cl = rig.client();
    cl.aws(&["s3", "mb", "s3://cut"]).ok();
    let (files, keys) = upload(&rig, "cut", &[(6 << 20, 7)]);
    // Three of six fragments damaged in their last record: segments 1–5 decode,
    // the sixth cannot (k = 4).
    for site in &rig.sites[..3] {
        let f = site.fragments().into_iter().next().expect("fragment");
        let mut bytes = std::fs::read(&f).expect("read");
        let at = bytes.len() - 1000;
        bytes[at] ^= 0x01;
        std::fs::write(&f, bytes).expect("write");
    }
    let url = cl.aws(&["s3", "presign", &format!("s3://cut/{}", keys[0]), "--expires-in", "600"]).ok().stdout;
    let out_file = rig.dir.join("cut.out");
    let out = cl.curl().args(["-sS", "-o", &path(&out_file), "-w", "%{http_code}", url.trim()]).output().expect("curl");
    let code = out.status.code().unwrap_or(-1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "curl took the cut response for a complete one");
    assert!([18, 56].contains(&code), "curl exit {code}: {err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "the status line went out before the failure");
    let got = std::fs::metadata(&out_file).map(|m| m.len()).unwrap_or(0);
    let whole = std::fs::metadata(&files[0]).expect("file").len();
    assert!(got < whole, "got {got} of {whole} bytes");
    let log = rig.gw.log_text();
    assert!(log.contains("read failed mid-stream"), "the abort is logged:\n{log}");
}

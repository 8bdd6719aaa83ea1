//! `skyshard edge`: a small fragment store for an edge device.
//!
//! It serves `PUT`, `GET` (with a byte range), `HEAD` and `DELETE` on `/f/<path>`, a
//! listing of the fragments below a prefix on `GET /l/<prefix>` and a batch delete
//! on `POST /d/<prefix>` (`bulk.rs`), fragment locks on `/r/<path>` (`locks.rs`:
//! deletes before a signed retain-until date are refused), and accepts only URLs
//! presigned for it: an
//! HMAC-SHA256 over method, expiry and path under the secret it shares with the
//! gateway's presigner (see
//! [`crate::backend::verify_edge`]). Writes are durable before they are acknowledged:
//! the body goes to a temporary file that is synced, linked into place, and the
//! directory synced. A name is written once: a PUT to a name that exists is
//! refused (412), so a presigned URL replayed within its lifetime cannot replace a
//! fragment. It never sees plaintext or object names: only fragments under
//! random names.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;
use tokio::io::AsyncSeekExt;
use tokio_util::io::ReaderStream;
use zeroize::Zeroizing;

use crate::backend::{EdgeGrant, verify_edge};

mod bulk;
mod locks;

/// An edge store.
pub struct EdgeState {
    root: PathBuf,
    secret: Zeroizing<Vec<u8>>,
    /// Orders lock changes and deletes (see `locks.rs`).
    locks: std::sync::Mutex<()>,
}

impl std::fmt::Debug for EdgeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeState").field("root", &self.root).finish_non_exhaustive()
    }
}

impl EdgeState {
    /// A store keeping fragments under `root`, verifying URLs with `secret`.
    pub fn new(root: PathBuf, secret: &[u8]) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(root.join("objects"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("locks"))?;
        // Temporary files of writes a crash interrupted are garbage.
        for e in std::fs::read_dir(root.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(Arc::new(Self { root, secret: Zeroizing::new(secret.to_vec()), locks: std::sync::Mutex::new(()) }))
    }
}

/// The edge store's HTTP routes.
pub fn router(state: Arc<EdgeState>) -> Router {
    Router::new().route("/health", axum::routing::get(|| async { "ok" })).fallback(handle).with_state(state)
}

/// Serves the edge store on `listener` until the process ends, under `guard`'s
/// connection limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    transport: crate::net::Transport,
    state: Arc<EdgeState>,
    guard: Arc<crate::net::ConnGuard>,
) {
    let service = hyper_util::service::TowerToHyperService::new(router(state));
    crate::net::serve(listener, transport, service, guard, std::future::pending()).await;
}

/// The connection limits of an edge store. Bodies are not held to a minimum rate:
/// only the gateway, whose URLs are checked before a body is read, sends any, and
/// its fragment streams pause while a slow client's next segment arrives.
pub fn limits(config: &crate::config::LimitsConfig) -> crate::net::ConnLimits {
    let mut l = crate::net::ConnLimits::from_config("edge", config);
    l.body_rate.min = 0;
    l
}

fn plain(status: StatusCode, msg: &'static str) -> Response {
    (status, msg).into_response()
}

/// A fresh, random name under `tmp/` for a file being written (what a crash leaves
/// there is removed at start).
fn tmp_path(root: &Path) -> std::io::Result<PathBuf> {
    let mut name = [0u8; 12];
    offload::random::SecureRandom::fill(&offload::random::SystemRandom::new(), &mut name)
        .map_err(|_| std::io::Error::other("no randomness"))?;
    Ok(root.join("tmp").join(name.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// Maps `/f/<path>` to a file under `objects/`, refusing anything that could escape.
fn object_path(root: &Path, url_path: &str) -> Option<PathBuf> {
    tree_path(root, "objects", url_path.strip_prefix("/f/")?)
}

/// Maps the relative path `rel` to a file under `tree/` (`objects/`, `locks/`),
/// refusing anything that could escape.
fn tree_path(root: &Path, tree: &str, rel: &str) -> Option<PathBuf> {
    if rel.len() > 512 {
        return None;
    }
    let mut p = root.join(tree);
    let mut n = 0;
    for seg in rel.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            return None;
        }
        p.push(seg);
        n += 1;
    }
    (n <= 16).then_some(p)
}

async fn handle(State(state): State<Arc<EdgeState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let signed_as = if method == Method::HEAD { "GET" } else { method.as_str() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let grant = match verify_edge(&state.secret, signed_as, &path, &query, now) {
        Ok(g) => g,
        Err(why) => return (StatusCode::FORBIDDEN, why).into_response(),
    };
    if let Some(prefix) = path.strip_prefix("/l/") {
        return match method {
            Method::GET => bulk::list_response(&state.root, prefix, &query).await,
            _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
    }
    if let Some(prefix) = path.strip_prefix("/d/") {
        return match method {
            Method::POST => bulk::delete_response(state.clone(), prefix, req, grant.bypass).await,
            _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
    }
    if let Some(rel) = path.strip_prefix("/r/") {
        return locks::respond(state.clone(), method, rel.to_string(), grant).await;
    }
    let Some(file) = object_path(&state.root, &path) else {
        return plain(StatusCode::BAD_REQUEST, "bad object path");
    };
    let result = match method {
        Method::PUT => put(&state, &file, req, grant).await,
        Method::GET | Method::HEAD => get(&file, req.headers(), method == Method::HEAD).await,
        Method::DELETE => locks::delete(state.clone(), file, grant.bypass).await,
        _ => Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "edge request failed");
        plain(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
    })
}

async fn put(state: &Arc<EdgeState>, file: &Path, req: Request, grant: EdgeGrant) -> std::io::Result<Response> {
    let Some(expected) =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    else {
        return Ok(plain(StatusCode::LENGTH_REQUIRED, "Content-Length required"));
    };
    // The URL allows the length it was signed for and no other.
    if grant.length.is_some_and(|l| l != expected) {
        return Ok(plain(StatusCode::BAD_REQUEST, "Content-Length is not the length this URL was signed for"));
    }
    // The file is written by one blocking task, fed the body through a channel: a
    // handful of thread hand-offs per fragment, not one per file operation.
    let (tx, rx) = tokio::sync::mpsc::channel::<Option<Bytes>>(4);
    let job = {
        let (state, file) = (state.clone(), file.to_path_buf());
        tokio::task::spawn_blocking(move || store(&state, &file, rx, expected, grant.replace))
    };
    let mut body = req.into_body().into_data_stream();
    let mut got = 0u64;
    let mut refusal = None;
    let mut failure = None;
    loop {
        let chunk = match body.try_next().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                failure = Some(std::io::Error::other(e));
                break;
            }
        };
        got += chunk.len() as u64;
        if got > expected {
            refusal = Some(plain(StatusCode::BAD_REQUEST, "body longer than Content-Length"));
            break;
        }
        if tx.send(Some(chunk)).await.is_err() {
            break;
        }
    }
    if refusal.is_some() || failure.is_some() {
        // Nothing of an upload that went wrong is kept.
        let _ = tx.send(None).await;
    }
    drop(tx);
    let stored = job.await.map_err(std::io::Error::other)??;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(r) = refusal {
        return Ok(r);
    }
    Ok(match stored {
        Stored::Done => StatusCode::OK.into_response(),
        Stored::Exists => {
            plain(StatusCode::PRECONDITION_FAILED, "a fragment of this name exists; fragments are never replaced")
        }
        Stored::Short => plain(StatusCode::BAD_REQUEST, "body shorter than Content-Length"),
        Stored::Aborted => plain(StatusCode::BAD_REQUEST, "upload abandoned"),
        Stored::Locked(why) => (StatusCode::FORBIDDEN, why).into_response(),
    })
}

/// What a write of one file came to.
enum Stored {
    Done,
    /// The name was taken (and the upload did not replace).
    Exists,
    /// The body ended short of its length.
    Short,
    /// The request side gave up (`None` on the channel).
    Aborted,
    /// What the name holds is locked (a replacing upload).
    Locked(String),
}

/// Writes the chunks from `rx` (exactly `expected` bytes; a `None` abandons the
/// write) as `file`, durably: a synced temporary file, linked into place (or, when
/// `replace`, renamed over what the name holds unless it is locked), then the
/// directory synced. Each name is written once otherwise: a presigned URL replayed
/// cannot replace a fragment.
fn store(
    state: &EdgeState,
    file: &Path,
    mut rx: tokio::sync::mpsc::Receiver<Option<Bytes>>,
    expected: u64,
    replace: bool,
) -> std::io::Result<Stored> {
    if !replace && file.exists() {
        return Ok(Stored::Exists);
    }
    let tmp = tmp_path(&state.root)?;
    let written = (|| {
        let mut out = std::fs::File::create(&tmp)?;
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            let Some(chunk) = chunk else { return Ok(Some(Stored::Aborted)) };
            written += chunk.len() as u64;
            std::io::Write::write_all(&mut out, &chunk)?;
        }
        if written != expected {
            return Ok(Some(if written < expected { Stored::Short } else { Stored::Aborted }));
        }
        out.sync_all()?;
        Ok::<_, std::io::Error>(None)
    })();
    match written {
        Ok(None) => {}
        other => {
            let _ = std::fs::remove_file(&tmp);
            return other.map(|s| s.unwrap_or(Stored::Aborted));
        }
    }
    let parent = file.parent().unwrap_or(&state.root);
    std::fs::create_dir_all(parent)?;
    if replace {
        if let Err(why) = locks::replace(state, &tmp, file)? {
            return Ok(Stored::Locked(why));
        }
    } else {
        // A link, not a rename: it fails if the name was taken meanwhile (two PUTs
        // of one URL racing), where a rename would replace the file.
        let linked = std::fs::hard_link(&tmp, file);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Stored::Exists),
            Err(e) => return Err(e),
        }
    }
    // The link is durable once the directory is.
    std::fs::File::open(parent)?.sync_all()?;
    Ok(Stored::Done)
}

/// Parses a single `bytes=` range against an object of `size` bytes.
fn parse_range(v: &str, size: u64) -> Result<(u64, u64), ()> {
    let spec = v.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    if size == 0 {
        return Err(());
    }
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 =
            if b.is_empty() { size.saturating_sub(1) } else { b.parse::<u64>().map_err(|_| ())?.min(size - 1) };
        (start, end)
    };
    if start > end || start >= size { Err(()) } else { Ok((start, end)) }
}

async fn get(file: &Path, headers: &HeaderMap, head: bool) -> std::io::Result<Response> {
    let mut f = match tokio::fs::File::open(file).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(plain(StatusCode::NOT_FOUND, "no such object"));
        }
        Err(e) => return Err(e),
    };
    let size = f.metadata().await?.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match range.map(|r| parse_range(r, size)) {
        None => (StatusCode::OK, 0, size),
        Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        Some(Err(())) => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let mut builder =
        Response::builder().status(status).header(header::CONTENT_LENGTH, len).header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", start + len - 1));
    }
    let body = if head {
        Body::empty()
    } else {
        f.seek(SeekFrom::Start(start)).await?;
        Body::from_stream(ReaderStream::with_capacity(tokio::io::AsyncReadExt::take(f, len), 256 << 10))
    };
    builder.body(body).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        let root = Path::new("/srv/edge");
        assert_eq!(object_path(root, "/f/sky/abc/3"), Some(PathBuf::from("/srv/edge/objects/sky/abc/3")));
        for bad in ["/f/../x", "/f/a//b", "/f/a/./b", "/x/a", "/f/a%2F..", "/f/", "/f/a b"] {
            assert_eq!(object_path(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Ok((95, 99)));
        for bad in ["bytes=100-", "bytes=5-1", "bytes=0-1,3-4", "items=0-1", "bytes=-0"] {
            assert!(parse_range(bad, 100).is_err(), "{bad}");
        }
        assert!(parse_range("bytes=0-0", 0).is_err());
    }
}

#[cfg(test)]
mod uploads {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use tower::ServiceExt as _;

    use super::*;
    use crate::backend::{LocationSigner, Method as Signed, Presigner};
    use crate::config::{LocationKind, Tier};

    const SECRET: &str = "an edge secret of some length";

    fn signer() -> LocationSigner {
        let loc = crate::config::Location {
            name: "e".into(),
            kind: LocationKind::Edge,
            endpoint: url::Url::parse("http://127.0.0.1:1").expect("url"),
            tier: Tier::Edge,
            region: None,
            provider: None,
            jurisdiction: None,
            prefix: "sky".into(),
            container: String::new(),
            access_key_id: String::new(),
            secret: Zeroizing::new(SECRET.into()),
            signing_region: String::new(),
            ca_file: None,
        };
        LocationSigner::new(BTreeMap::from([("e".to_string(), loc)]))
    }

    async fn send(
        state: &Arc<EdgeState>,
        method: Method,
        url: &url::Url,
        body: &'static [u8],
    ) -> (StatusCode, Vec<u8>) {
        let target = format!("{}?{}", url.path(), url.query().unwrap_or(""));
        let req = axum::http::Request::builder()
            .method(method)
            .uri(target)
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .expect("request");
        let resp = router(state.clone()).oneshot(req).await.expect("answer");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        (status, bytes.to_vec())
    }

    #[tokio::test]
    async fn a_fragment_is_written_once_and_at_the_signed_length() {
        let dir = crate::testing::scratch_dir("edge-once");
        let state = EdgeState::new(dir, SECRET.as_bytes()).expect("store");
        let s = signer();
        let ttl = Duration::from_secs(60);
        let put = s.presign_put("e", "aaaa/1", 5, ttl).expect("sign");
        assert_eq!(send(&state, Method::PUT, &put, b"first").await.0, StatusCode::OK);
        // The same URL replayed, with other bytes of the same length: refused.
        let (status, _) = send(&state, Method::PUT, &put, b"other").await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        let get = s.presign("e", Signed::Get, "aaaa/1", ttl).expect("sign");
        assert_eq!(send(&state, Method::GET, &get, b"").await, (StatusCode::OK, b"first".to_vec()));
        // A URL signed for 5 bytes stores 5 bytes, not 6.
        let put2 = s.presign_put("e", "aaaa/2", 5, ttl).expect("sign");
        assert_eq!(send(&state, Method::PUT, &put2, b"longer").await.0, StatusCode::BAD_REQUEST);
        assert_eq!(send(&state, Method::PUT, &put2, b"right").await.0, StatusCode::OK);

        // A URL signed to replace does (a record rewritten)…
        let again = s.presign_replace("e", "aaaa/1", 5, ttl).expect("sign");
        assert_eq!(send(&state, Method::PUT, &again, b"newer").await.0, StatusCode::OK);
        assert_eq!(send(&state, Method::GET, &get, b"").await, (StatusCode::OK, b"newer".to_vec()));
        // …unless what the name holds is locked: then it stays, and so does its lock.
        let lock = crate::backend::FragmentLock { until: u64::MAX / 2, compliance: true };
        let retain = s.presign_retain("e", "aaaa/1", lock, ttl).expect("sign");
        assert_eq!(send(&state, Method::POST, &retain, b"").await.0, StatusCode::OK);
        assert_eq!(send(&state, Method::PUT, &again, b"later").await.0, StatusCode::FORBIDDEN);
        assert_eq!(send(&state, Method::GET, &get, b"").await, (StatusCode::OK, b"newer".to_vec()));
        let delete = s.presign("e", Signed::Delete, "aaaa/1", ttl).expect("sign");
        assert_eq!(send(&state, Method::DELETE, &delete, b"").await.0, StatusCode::FORBIDDEN);
        assert!(std::fs::read_dir(state.root.join("tmp")).expect("tmp").next().is_none(), "no temporary file left");
    }
}

//! Moving fragment bytes through presigned URLs.
//!
//! Requests carry no credentials and no `x-amz-*` header: whatever the URL's
//! signature covers is all there is, so S3-compatible servers that reject unsigned
//! `x-amz-*` headers accept them.
//!
//! The client is hyper's, over connections made by the offload layer's TLS engine
//! (rustls or kernel TLS), one client per location so that each trusts the system's
//! roots plus that location's own CA bundle. A location whose certificate does not
//! verify gets no byte of a fragment: the handshake fails before the request.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use offload::tls::{TlsEngine, TlsStream};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tracing::debug;

use super::error::Attempt::{self, Failed, Lost};
pub use super::error::{TransferError, redact};
use super::replay::Replay;

type Body = UnsyncBoxBody<Bytes, io::Error>;
/// A location's connector (for start-up probes) and client.
type LocationClient = (Connector, Client<Connector, Body>);

/// A connection to a location: plain TCP for `http`, the offload TLS engine for
/// `https`.
enum Conn {
    Plain(TokioIo<TcpStream>),
    Tls(TokioIo<TlsStream>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Opens connections: TCP, then for `https` a handshake through the TLS engine.
#[derive(Clone)]
struct Connector {
    tls: TlsEngine,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
}

impl tower::Service<Uri> for Connector {
    type Response = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let https = match uri.scheme_str() {
                Some("https") => true,
                Some("http") => false,
                other => return Err(io::Error::other(format!("unsupported scheme {other:?}"))),
            };
            let host = uri.host().ok_or_else(|| io::Error::other("URL without a host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                if !https {
                    return Ok(Conn::Plain(TokioIo::new(tcp)));
                }
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::other(format!("{host:?} is not a valid TLS server name: {e}")))?;
                Ok(Conn::Tls(TokioIo::new(this.tls.connect(tcp, name, this.config.clone()).await?)))
            };
            tokio::time::timeout(this.connect_timeout, connect).await.map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {host}:{port} timed out"))
            })?
        })
    }
}

/// The HTTP clients for locations.
#[derive(Clone)]
pub struct Transfer {
    clients: Arc<RwLock<HashMap<String, LocationClient>>>,
    fallback: LocationClient,
    stall: Duration,
    tls: TlsEngine,
    connect_timeout: Duration,
    /// Requests, errors and latency per location.
    pub stats: Arc<super::stats::LocationStats>,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer").finish_non_exhaustive()
    }
}

/// How long a connection to a location may idle in the pool: under the 30 s
/// `limits.header_timeout` after which a `skyshard edge` closes an idle one (and
/// under the idle timeouts of the usual S3 servers), so that the pool seldom hands
/// out a connection its server is closing.
const POOL_IDLE: Duration = Duration::from_secs(20);

fn client(connector: Connector) -> LocationClient {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(16)
        .build(connector.clone());
    (connector, client)
}

/// A request future raced against a watchdog: it fails once `progress` (the
/// milliseconds since `epoch` at which the request last moved) is older than
/// `stall`.
async fn watched<T>(
    fut: impl Future<Output = T>,
    epoch: Instant,
    progress: &AtomicU64,
    stall: Duration,
) -> Result<T, TransferError> {
    tokio::pin!(fut);
    let tick = (stall / 4).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            out = &mut fut => return Ok(out),
            () = tokio::time::sleep(tick) => {
                let idle = epoch.elapsed().saturating_sub(Duration::from_millis(progress.load(Ordering::Relaxed)));
                if idle > stall {
                    return Err(TransferError::Unavailable(format!("no progress for {} s", idle.as_secs())));
                }
            }
        }
    }
}

impl Transfer {
    /// Clients over `tls`: per location (name → client configuration), and a
    /// fallback trusting `fallback` for URLs of unknown locations. `stall_timeout`
    /// bounds how long a request may make no progress.
    pub fn new(
        tls: &TlsEngine,
        locations: HashMap<String, Arc<ClientConfig>>,
        fallback: Arc<ClientConfig>,
        connect_timeout: Duration,
        stall_timeout: Duration,
    ) -> Self {
        let connector = |config| Connector { tls: tls.clone(), config, connect_timeout };
        let clients = locations.into_iter().map(|(name, config)| (name, client(connector(config)))).collect();
        Self {
            clients: Arc::new(RwLock::new(clients)),
            fallback: client(connector(fallback)),
            stall: stall_timeout,
            tls: tls.clone(),
            connect_timeout,
            stats: Arc::default(),
        }
    }

    /// Adds (or replaces) the client of a location added at run time.
    pub fn set_location(&self, name: &str, config: Arc<ClientConfig>) {
        let c = client(Connector { tls: self.tls.clone(), config, connect_timeout: self.connect_timeout });
        if let Ok(mut m) = self.clients.write() {
            m.insert(name.to_string(), c);
        }
    }

    /// Whether `name` has a client of its own.
    pub fn knows(&self, name: &str) -> bool {
        self.clients.read().is_ok_and(|m| m.contains_key(name))
    }

    fn location_client(&self, location: &str) -> LocationClient {
        self.clients.read().ok().and_then(|m| m.get(location).cloned()).unwrap_or_else(|| self.fallback.clone())
    }

    fn client(&self, location: &str) -> Client<Connector, Body> {
        self.location_client(location).1
    }

    fn request(method: Method, url: &url::Url, body: Body) -> Result<Request<Body>, TransferError> {
        let uri: Uri =
            url.as_str().parse().map_err(|_| TransferError::Protocol("presigned URL is not a URI".into()))?;
        Request::builder().method(method).uri(uri).body(body).map_err(|e| TransferError::Protocol(e.to_string()))
    }

    /// Sends a bodiless request and waits (at most the stall timeout) for the
    /// answer's head.
    async fn send_empty(
        &self,
        location: &str,
        method: Method,
        url: &url::Url,
        range: Option<&Range<u64>>,
    ) -> Result<http::Response<hyper::body::Incoming>, TransferError> {
        let mut req = Self::request(method, url, Empty::new().map_err(|never| match never {}).boxed_unsync())?;
        if let Some(r) = range {
            let value = format!("bytes={}-{}", r.start, r.end - 1);
            req.headers_mut().insert(RANGE, value.parse().map_err(|_| TransferError::Protocol("range".into()))?);
        }
        self.head(&self.client(location), req).await
    }

    /// Sends `req` through `client` and waits (at most the stall timeout) for the
    /// answer's head.
    async fn head(
        &self,
        client: &Client<Connector, Body>,
        req: Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, TransferError> {
        // GET, HEAD and DELETE (bodiless here) change nothing when sent twice: one
        // whose connection went away before the answer is sent again.
        let again = matches!(*req.method(), Method::GET | Method::HEAD | Method::DELETE).then(|| {
            let mut r = Request::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
            *r.method_mut() = req.method().clone();
            *r.uri_mut() = req.uri().clone();
            *r.headers_mut() = req.headers().clone();
            r
        });
        let mut r = self.head_once(client, req).await;
        if let (Err(Lost(e)), Some(again)) = (&r, again) {
            debug!(error = %e, "connection lost before the answer: asking again");
            r = self.head_once(client, again).await;
        }
        r.map_err(Attempt::into_error)
    }

    async fn head_once(
        &self,
        client: &Client<Connector, Body>,
        req: Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, Attempt> {
        match tokio::time::timeout(self.stall, client.request(req)).await {
            Ok(r) => r.map_err(|e| Attempt::of(&e)),
            Err(_) => Err(Failed(TransferError::Unavailable(format!("no answer within {} s", self.stall.as_secs())))),
        }
    }

    fn observe<T>(&self, location: &str, op: &'static str, started: Instant, r: &Result<T, TransferError>) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(e) => e.class(),
        };
        self.stats.observe(location, op, started.elapsed(), outcome);
    }

    /// Uploads exactly `len` bytes from `body` to `location`.
    pub async fn put<S>(&self, location: &str, url: url::Url, len: u64, body: S) -> Result<(), TransferError>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    {
        let started = Instant::now();
        let r = self.put_inner(location, url, len, body).await;
        self.observe(location, "put", started, &r);
        r
    }

    async fn put_inner<S>(&self, location: &str, url: url::Url, len: u64, body: S) -> Result<(), TransferError>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    {
        let body = Replay::new(body);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.put_once(location, &url, len, body.attempt()).await {
                Err(Lost(e)) if tries < 2 && body.can_replay() => {
                    debug!(location, error = %e, "connection lost before the answer: sending the fragment again");
                }
                Err(Lost(e) | Failed(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
    }

    async fn put_once<S>(&self, location: &str, url: &url::Url, len: u64, body: S) -> Result<(), Attempt>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    {
        // Progress is hyper asking for more of the body (it could write the last
        // piece): a location that stops reading stalls it. After the body, the
        // answer must come within the stall timeout.
        let epoch = Instant::now();
        let progress = Arc::new(AtomicU64::new(0));
        let mark = progress.clone();
        let body = futures::stream::poll_fn({
            let mut body = Box::pin(body);
            move |cx| {
                mark.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                body.as_mut().poll_next(cx)
            }
        })
        .map_ok(Frame::data);
        let mut req = Self::request(Method::PUT, url, BodyExt::boxed_unsync(StreamBody::new(body))).map_err(Failed)?;
        req.headers_mut().insert(CONTENT_LENGTH, len.into());
        let resp = watched(self.client(location).request(req), epoch, &progress, self.stall).await.map_err(Failed)?;
        let resp = resp.map_err(|e| Attempt::of(&e))?;
        check(resp).await.map(|_| ()).map_err(Failed)
    }

    /// Reads the object at `location`, or `range` of it, as a stream of bytes; each
    /// piece must arrive within the stall timeout.
    pub async fn get(
        &self,
        location: &str,
        url: url::Url,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, TransferError>>, TransferError> {
        if range.as_ref().is_some_and(Range::is_empty) {
            return Ok(futures::stream::empty().boxed());
        }
        let started = Instant::now();
        let resp = match self.send_empty(location, Method::GET, &url, range.as_ref()).await {
            Ok(r) => check(r).await,
            Err(e) => Err(e),
        };
        self.observe(location, "get", started, &resp);
        let resp = resp?;
        let expected = range.as_ref().map(|r| r.end - r.start);
        if let Some(r) = &range {
            // The Content-Range must name exactly the bytes asked for: a server that
            // ignored the range would send the whole object. (rclone answers a range
            // with 200 and a correct Content-Range; that is accepted.)
            let cr = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !cr.starts_with(&format!("bytes {}-{}/", r.start, r.end - 1)) {
                return Err(TransferError::Protocol(format!("asked for bytes {r:?}, got Content-Range {cr:?}")));
            }
        }
        let stall = self.stall;
        let mut data = BodyDataStream::new(resp.into_body());
        let stream = futures::stream::poll_fn(move |cx| data.poll_next_unpin(cx));
        let stream = tokio_stream_timeout(stream, stall);
        Ok(match expected {
            Some(n) => exact_length(stream, n).boxed(),
            None => stream.boxed(),
        })
    }

    /// Reads the whole (small) answer to a GET of `url` at `location`: a listing, a
    /// lock (`op` names it in the metrics). Fails past `max` bytes.
    pub async fn get_small(
        &self,
        location: &str,
        op: &'static str,
        url: url::Url,
        max: usize,
    ) -> Result<Bytes, TransferError> {
        let started = Instant::now();
        let r = async {
            self.read_small(check(self.send_empty(location, Method::GET, &url, None).await?).await?, max).await
        }
        .await;
        self.observe(location, op, started, &r);
        r
    }

    /// POSTs `body` (with `headers`) to `url` at `location` and reads the whole
    /// (small) answer: a batch of deletes, a lock (`op` names it in the metrics).
    /// Fails past `max` bytes.
    pub async fn post_small(
        &self,
        location: &str,
        op: &'static str,
        url: url::Url,
        body: Bytes,
        headers: &[(http::header::HeaderName, String)],
        max: usize,
    ) -> Result<Bytes, TransferError> {
        let started = Instant::now();
        let r = async {
            let body = http_body_util::Full::new(body).map_err(|never| match never {}).boxed_unsync();
            let mut req = Self::request(Method::POST, &url, body)?;
            for (name, value) in headers {
                let value = value.parse().map_err(|_| TransferError::Protocol(format!("header {name}")))?;
                req.headers_mut().insert(name, value);
            }
            let resp = check(self.head(&self.client(location), req).await?).await?;
            self.read_small(resp, max).await
        }
        .await;
        self.observe(location, op, started, &r);
        r
    }

    /// An answer's body, whole; at most `max` bytes, each piece within the stall
    /// timeout.
    async fn read_small(
        &self,
        resp: http::Response<hyper::body::Incoming>,
        max: usize,
    ) -> Result<Bytes, TransferError> {
        let mut out = Vec::new();
        let mut data = BodyDataStream::new(resp.into_body());
        while let Some(chunk) = tokio::time::timeout(self.stall, data.next())
            .await
            .map_err(|_| TransferError::Unavailable("the answer stalled".into()))?
        {
            let chunk = chunk.map_err(|e| TransferError::Unavailable(redact(&e.to_string())))?;
            if out.len() + chunk.len() > max {
                return Err(TransferError::Protocol(format!("answer larger than {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }

    /// Deletes the object at `location`; a missing object counts as deleted.
    pub async fn delete(&self, location: &str, url: url::Url) -> Result<(), TransferError> {
        let started = Instant::now();
        let r = match self.send_empty(location, Method::DELETE, &url, None).await {
            Ok(resp) => match check(resp).await {
                Ok(_) | Err(TransferError::NotFound) => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        self.observe(location, "delete", started, &r);
        r
    }

    /// Sends a request with `headers` and a small `body` through the client of
    /// unknown locations (the admin CLI talks to the admin API this way) and returns
    /// the status, content type and whole response body (at most `max` bytes).
    pub async fn exchange(
        &self,
        method: Method,
        url: &url::Url,
        headers: &[(http::header::HeaderName, String)],
        body: Bytes,
        max: usize,
    ) -> Result<(StatusCode, String, Bytes), TransferError> {
        let len = body.len();
        let body = http_body_util::Full::new(body).map_err(|never| match never {}).boxed_unsync();
        let mut req = Self::request(method, url, body)?;
        for (name, value) in headers {
            let v = value.parse().map_err(|_| TransferError::Protocol(format!("header {name}")))?;
            req.headers_mut().insert(name.clone(), v);
        }
        req.headers_mut().insert(CONTENT_LENGTH, len.into());
        let resp = self.head(&self.fallback.1, req).await?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut out = Vec::new();
        let mut data = BodyDataStream::new(resp.into_body());
        while let Some(chunk) = tokio::time::timeout(self.stall, data.next())
            .await
            .map_err(|_| TransferError::Unavailable("the answer stalled".into()))?
        {
            let chunk = chunk.map_err(|e| TransferError::Unavailable(e.to_string()))?;
            if out.len() + chunk.len() > max {
                return Err(TransferError::Protocol(format!("answer larger than {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((status, content_type, Bytes::from(out)))
    }

    /// Opens a connection to `url`'s host (and for `https`, completes the TLS
    /// handshake) without sending a request: a start-up check of a location.
    pub async fn probe(&self, location: &str, url: &url::Url) -> Result<(), TransferError> {
        let uri: Uri = url.as_str().parse().map_err(|_| TransferError::Protocol("endpoint is not a URI".into()))?;
        let mut connector = self.location_client(location).0;
        tower::Service::call(&mut connector, uri).await.map(|_| ()).map_err(|e| {
            let tls = e.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            if tls { TransferError::Tls(e.to_string()) } else { TransferError::Unavailable(e.to_string()) }
        })
    }
}

/// Maps body errors and bounds the wait for each piece.
fn tokio_stream_timeout(
    inner: impl Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static,
    stall: Duration,
) -> impl Stream<Item = Result<Bytes, TransferError>> + Send + 'static {
    futures::stream::unfold(Box::pin(inner), move |mut s| async move {
        match tokio::time::timeout(stall, s.next()).await {
            Ok(Some(Ok(b))) => Some((Ok(b), s)),
            Ok(Some(Err(e))) => Some((Err(TransferError::Unavailable(redact(&e.to_string()))), s)),
            Ok(None) => None,
            Err(_) => Some((Err(TransferError::Unavailable(format!("no data for {} s", stall.as_secs()))), s)),
        }
    })
}

async fn check(
    resp: http::Response<hyper::body::Incoming>,
) -> Result<http::Response<hyper::body::Incoming>, TransferError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // The first bytes of an error body, for the log (bounded: a body is not trusted).
    let mut detail = Vec::new();
    let mut body = BodyDataStream::new(resp.into_body());
    while let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_secs(5), body.next()).await {
        detail.extend_from_slice(&b[..b.len().min(512 - detail.len().min(512))]);
        if detail.len() >= 512 {
            break;
        }
    }
    let detail: String = String::from_utf8_lossy(&detail).chars().take(200).collect();
    Err(match status {
        StatusCode::NOT_FOUND => TransferError::NotFound,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            TransferError::Unavailable(format!("HTTP {s}: {detail}"))
        }
        s => TransferError::Refused { status: s.as_u16(), detail },
    })
}

/// Fails the stream if it ends before `n` bytes or runs past them.
fn exact_length(
    inner: impl Stream<Item = Result<Bytes, TransferError>> + Send + 'static,
    n: u64,
) -> impl Stream<Item = Result<Bytes, TransferError>> + Send + 'static {
    futures::stream::unfold((Box::pin(inner), 0u64, false), move |(mut s, seen, done)| async move {
        if done {
            return None;
        }
        match s.next().await {
            Some(Ok(b)) => {
                let seen = seen + b.len() as u64;
                if seen > n {
                    Some((Err(TransferError::Protocol("more bytes than asked for".into())), (s, seen, true)))
                } else {
                    Some((Ok(b), (s, seen, false)))
                }
            }
            Some(Err(e)) => Some((Err(e), (s, seen, true))),
            None if seen < n => Some((
                Err(TransferError::Unavailable(format!("stream ended after {seen} of {n} bytes"))),
                (s, seen, true),
            )),
            None => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_query_strings() {
        let m = "error sending request for url (http://h:1/b/x?X-Amz-Signature=abc&X-Amz-Credential=AK) reason";
        let r = redact(m);
        assert!(!r.contains("abc") && !r.contains("AK)"), "{r}");
        assert!(r.contains("http://h:1/b/x?…") && r.ends_with(") reason"), "{r}");
    }

    #[tokio::test]
    async fn exact_length_catches_short_and_long_streams() {
        let chunks = |v: Vec<&'static [u8]>| futures::stream::iter(v.into_iter().map(|b| Ok(Bytes::from_static(b))));
        let ok: Vec<_> = exact_length(chunks(vec![b"ab", b"c"]), 3).collect().await;
        assert!(ok.iter().all(Result::is_ok));
        let short: Vec<_> = exact_length(chunks(vec![b"ab"]), 3).collect().await;
        assert!(short.last().is_some_and(Result::is_err));
        let long: Vec<_> = exact_length(chunks(vec![b"ab", b"cd"]), 3).collect().await;
        assert!(long.last().is_some_and(Result::is_err));
    }
}

//! Serving HTTP/1.1 on a listener, in plain TCP or through the offload layer's TLS
//! engine: the S3 endpoint and the edge store share this accept loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use offload::tls::TlsEngine;
use rustls::ServerConfig;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

pub use guard::{ConnGuard, ConnLimits, ConnMetrics};
pub use pace::{BodyTooSlow, MinRate, Paced, TOO_SLOW};

mod guard;
mod pace;

/// How long, and how much, a connection's input is read and dropped once the server
/// is done with it (see [`linger`]).
const LINGER: Duration = Duration::from_secs(2);
/// See [`LINGER`].
const LINGER_BYTES: usize = 16 << 20;

/// Plain TCP or TLS.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP (only when configured so).
    Plain,
    /// HTTPS through `engine`, with `config` (prepared for that engine).
    Tls {
        /// The TLS engine (rustls or kernel TLS).
        engine: TlsEngine,
        /// The server configuration.
        config: Arc<ServerConfig>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain => f.write_str("Plain"),
            Self::Tls { engine, .. } => write!(f, "Tls({})", engine.kind().name()),
        }
    }
}

impl Transport {
    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Plain => "http",
            Self::Tls { .. } => "https",
        }
    }
}

/// The request body every service behind [`serve`] reads: the connection's body
/// held to the endpoint's minimum rate.
pub type Body = Paced<Incoming>;

/// Serves `service` on `listener` until `shutdown` completes, under `guard`'s
/// limits: connections over them are answered `503 SlowDown`, a TLS handshake or a
/// request head that takes too long (also the wait for the next request on a kept
/// connection) closes the connection, and request bodies are held to the minimum
/// rate.
pub async fn serve<S, B>(
    listener: TcpListener,
    transport: Transport,
    service: S,
    guard: Arc<ConnGuard>,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        // Out of descriptors, typically: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ticket = match guard.admit(peer.ip()) {
                    Ok(t) => t,
                    Err(None) => continue,
                    Err(Some((reason, ticket))) => {
                        debug!(peer = %peer, reason, "connection over the limit: answered 503 SlowDown");
                        tokio::spawn(refuse(tcp, transport.clone(), guard.clone(), ticket));
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let handle = match second_handle(&tcp) {
                    Ok(h) => h,
                    Err(e) => {
                        warn!(peer = %peer, error = %e, "cannot take the connection");
                        continue;
                    }
                };
                let (transport, guard) = (transport.clone(), guard.clone());
                let rule = guard.limits.body_rate;
                let metrics = (guard.metrics.clone(), guard.limits.endpoint);
                let service = service.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    service.call(req.map(|b| Paced::new(b, rule, Some(metrics.clone()))))
                });
                tokio::spawn(async move {
                    let _ticket = ticket;
                    let http = http1(&guard.limits, true);
                    let result = match transport {
                        Transport::Plain => http.serve_connection(TokioIo::new(tcp), svc).await,
                        Transport::Tls { engine, config } => {
                            let Some(stream) = handshake(&engine, tcp, config, &guard, peer).await else { return };
                            http.serve_connection(TokioIo::new(stream), svc).await
                        }
                    };
                    if let Err(e) = result {
                        if aborted(&e) {
                            // A response cut short must not pass for a whole one.
                            warn!(peer = %peer, error = %e, "response cut short: connection reset");
                            reset(handle);
                            return;
                        }
                        if e.is_timeout() {
                            guard.metrics.closed(guard.limits.endpoint, "header_timeout");
                            debug!(peer = %peer, "no whole request head in time: connection closed");
                        } else {
                            debug!(peer = %peer, error = %e, "connection ended with an error");
                        }
                    }
                    linger(handle).await;
                });
            }
            () = &mut shutdown => {
                info!("shutting down");
                return;
            }
        }
    }
}

/// An HTTP/1.1 connection builder under `limits` (HTTP/1.1 only: no protocol
/// sniffing that would wait for bytes outside the head timeout).
fn http1(limits: &ConnLimits, keep_alive: bool) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(keep_alive);
    b
}

/// The TLS handshake of a connection, within the handshake timeout.
async fn handshake(
    engine: &TlsEngine,
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    guard: &ConnGuard,
    peer: std::net::SocketAddr,
) -> Option<offload::tls::TlsStream> {
    match tokio::time::timeout(guard.limits.handshake_timeout, engine.accept(tcp, config)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            debug!(peer = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            guard.metrics.closed(guard.limits.endpoint, "handshake_timeout");
            debug!(peer = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Answers a connection over the limits: one `503 SlowDown` (after the TLS
/// handshake, within the same timeouts), then closed.
async fn refuse(tcp: TcpStream, transport: Transport, guard: Arc<ConnGuard>, ticket: guard::Ticket) {
    let _ticket = ticket;
    let _ = tcp.set_nodelay(true);
    let Ok(handle) = second_handle(&tcp) else { return };
    let http = http1(&guard.limits, false);
    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
        Ok::<_, std::convert::Infallible>(guard::slow_down())
    });
    let peer = tcp.peer_addr().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let _ = match transport {
        Transport::Plain => http.serve_connection(TokioIo::new(tcp), svc).await,
        Transport::Tls { engine, config } => {
            let Some(stream) = handshake(&engine, tcp, config, &guard, peer).await else { return };
            http.serve_connection(TokioIo::new(stream), svc).await
        }
    };
    linger(handle).await;
}

/// The error a response body fails with when the response cannot be finished (a
/// read of stored data failed after the status line went out): the connection is
/// then reset, not closed, so that no client takes the short body for a whole one
/// — with a close, a client that does not check the length would.
#[derive(Debug, thiserror::Error)]
#[error("response aborted: {0}")]
pub struct AbortResponse(pub String);

impl AbortResponse {
    /// The error to end a response body with.
    pub fn io(why: impl std::fmt::Display) -> std::io::Error {
        std::io::Error::other(AbortResponse(why.to_string()))
    }
}

/// Whether a connection's error comes from a body that ended in [`AbortResponse`].
fn aborted(e: &hyper::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<AbortResponse>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<AbortResponse>())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Resets a connection: closed with a zero linger time, the kernel sends RST.
fn reset(handle: std::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(&handle).set_linger(Some(Duration::ZERO)) {
        debug!(error = %e, "cannot set a zero linger time");
    }
    drop(handle);
}

/// A second handle on a connection's socket (a duplicated descriptor), which keeps
/// the socket open after the HTTP layer (and the TLS engine under it) dropped theirs.
fn second_handle(tcp: &TcpStream) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd as _;
    Ok(std::net::TcpStream::from(tcp.as_fd().try_clone_to_owned()?))
}

/// Closes a connection without destroying the last response: when the server
/// answered before reading the whole request — a 400 for a malformed head, a 401,
/// or an S3 error sent before the body — and the socket were closed with the rest
/// of the body unread, the kernel would send a reset, which can overtake the
/// response and reach the client as a broken connection instead. So the write side
/// is shut, and what still arrives is read and dropped (for at most [`LINGER`] and
/// [`LINGER_BYTES`]) before the socket closes.
async fn linger(handle: std::net::TcpStream) {
    let _ = handle.shutdown(std::net::Shutdown::Write);
    let Ok(mut sock) = TcpStream::from_std(handle) else { return };
    let mut buf = vec![0u8; 16 << 10];
    let mut dropped = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while dropped < LINGER_BYTES {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

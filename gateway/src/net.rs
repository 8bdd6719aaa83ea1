//! Serving HTTP/1.1 on a listener, in plain TCP or through the offload layer's TLS
//! engine: the S3 endpoint and the edge store share this accept loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use offload::tls::TlsEngine;
use rustls::ServerConfig;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Serves `service` on `listener` until `shutdown` completes.
pub async fn serve<S, B>(listener: TcpListener, transport: Transport, service: S, shutdown: impl Future<Output = ()>)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
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
                let _ = tcp.set_nodelay(true);
                let handle = match second_handle(&tcp) {
                    Ok(h) => h,
                    Err(e) => {
                        warn!(peer = %peer, error = %e, "cannot take the connection");
                        continue;
                    }
                };
                let (svc, transport) = (service.clone(), transport.clone());
                tokio::spawn(async move {
                    let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let result = match transport {
                        Transport::Plain => conn.serve_connection(TokioIo::new(tcp), svc).await,
                        Transport::Tls { engine, config } => {
                            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, engine.accept(tcp, config)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    debug!(peer = %peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    debug!(peer = %peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                            conn.serve_connection(TokioIo::new(stream), svc).await
                        }
                    };
                    if let Err(e) = result {
                        if aborted(e.as_ref()) {
                            // A response cut short must not pass for a whole one.
                            warn!(peer = %peer, error = %e, "response cut short: connection reset");
                            reset(handle);
                            return;
                        }
                        debug!(peer = %peer, error = %e, "connection ended with an error");
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
fn aborted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
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

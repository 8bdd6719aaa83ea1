//! TLS engines: every TLS byte Skyshard sends or receives — the S3 endpoint, the
//! admin endpoint, the edge store and the transfers to locations — goes through a
//! [`TlsEngine`].
//!
//! Two engines exist. `rustls` runs the record layer in user space. `ktls` does the
//! handshake with rustls, then hands the traffic keys to the kernel (`TCP_ULP` "tls")
//! so that record encryption happens in the kernel — and on NICs with inline TLS
//! offload, in hardware. The kernel needs the `tls` upper-layer protocol; the probe
//! looks for it and tries it on a socket, and `auto` falls back to rustls when it is
//! missing.
//!
//! Both engines are metered: the time spent in each read and write of a TLS stream
//! (record crypto plus the system call) and the plaintext bytes moved, as the jobs
//! `tls-send` and `tls-recv`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::meter::{Meter, Meters};

#[cfg(target_os = "linux")]
pub mod ktls;
pub mod loopback;

/// The TLS engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TlsKind {
    /// rustls in user space.
    Rustls,
    /// rustls handshake, kernel record layer.
    Ktls,
}

impl TlsKind {
    /// The engine's name in configuration and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rustls => "rustls",
            Self::Ktls => "ktls",
        }
    }
}

/// The crypto provider every TLS configuration uses (ring: the fastest AES-GCM
/// measured here).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server configuration builder on [`provider`] with the safe protocol versions.
pub fn server_builder() -> rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier> {
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

/// Client configuration builder on [`provider`] with the safe protocol versions.
pub fn client_builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

/// A TLS engine with its meters.
#[derive(Debug, Clone)]
pub struct TlsEngine {
    kind: TlsKind,
    send: Arc<Meter>,
    recv: Arc<Meter>,
}

impl TlsEngine {
    /// The engine `kind`, charging `meters`.
    pub fn new(kind: TlsKind, meters: &Meters) -> Self {
        Self { kind, send: meters.register("tls-send", kind.name()), recv: meters.register("tls-recv", kind.name()) }
    }

    /// Which engine this is.
    pub fn kind(&self) -> TlsKind {
        self.kind
    }

    /// Adjusts a server configuration for this engine. kTLS needs the traffic
    /// secrets exported after the handshake, and session tickets off (the kernel
    /// would have to pass them back up).
    pub fn prepare_server(&self, config: &mut ServerConfig) {
        if self.kind == TlsKind::Ktls {
            config.enable_secret_extraction = true;
            config.send_tls13_tickets = 0;
        }
    }

    /// Adjusts a client configuration for this engine.
    pub fn prepare_client(&self, config: &mut ClientConfig) {
        if self.kind == TlsKind::Ktls {
            config.enable_secret_extraction = true;
        }
    }

    /// Server side of a handshake on an accepted connection. `config` must have
    /// been through [`TlsEngine::prepare_server`].
    pub async fn accept(&self, tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let inner = match self.kind {
            TlsKind::Rustls => {
                Inner::Rustls(Box::new(tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?.into()))
            }
            #[cfg(target_os = "linux")]
            TlsKind::Ktls => Inner::Ktls(ktls::accept(tcp, config).await?),
            #[cfg(not(target_os = "linux"))]
            TlsKind::Ktls => return Err(io::Error::other("kernel TLS needs Linux")),
        };
        Ok(self.stream(inner))
    }

    /// Client side of a handshake with `name`. `config` must have been through
    /// [`TlsEngine::prepare_client`].
    pub async fn connect(
        &self,
        tcp: TcpStream,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsStream> {
        let inner = match self.kind {
            TlsKind::Rustls => {
                Inner::Rustls(Box::new(tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?.into()))
            }
            #[cfg(target_os = "linux")]
            TlsKind::Ktls => Inner::Ktls(ktls::connect(tcp, name, config).await?),
            #[cfg(not(target_os = "linux"))]
            TlsKind::Ktls => return Err(io::Error::other("kernel TLS needs Linux")),
        };
        Ok(self.stream(inner))
    }

    fn stream(&self, inner: Inner) -> TlsStream {
        TlsStream { inner, send: self.send.clone(), recv: self.recv.clone() }
    }
}

enum Inner {
    Rustls(Box<tokio_rustls::TlsStream<TcpStream>>),
    #[cfg(target_os = "linux")]
    Ktls(ktls::KtlsStream),
}

/// An established TLS connection, metered.
pub struct TlsStream {
    inner: Inner,
    send: Arc<Meter>,
    recv: Arc<Meter>,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").field("kind", &self.kind().name()).finish_non_exhaustive()
    }
}

impl TlsStream {
    /// The engine carrying this connection.
    pub fn kind(&self) -> TlsKind {
        match self.inner {
            Inner::Rustls(_) => TlsKind::Rustls,
            #[cfg(target_os = "linux")]
            Inner::Ktls(_) => TlsKind::Ktls,
        }
    }

    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Rustls(s) => s.get_ref().0,
            #[cfg(target_os = "linux")]
            Inner::Ktls(s) => s.tcp(),
        }
    }

    /// The ALPN protocol agreed on, if any.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        match &self.inner {
            Inner::Rustls(s) => s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec),
            #[cfg(target_os = "linux")]
            Inner::Ktls(s) => s.alpn().map(<[u8]>::to_vec),
        }
    }
}

/// What both engines' streams are.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl TlsStream {
    /// The engine's stream.
    fn io(&mut self) -> Pin<&mut dyn Io> {
        match &mut self.inner {
            Inner::Rustls(s) => Pin::new(s.as_mut()),
            #[cfg(target_os = "linux")]
            Inner::Ktls(s) => Pin::new(s),
        }
    }

    /// A write-side call, charged to the send meter with the bytes it took.
    fn metered_write(
        &mut self,
        f: impl FnOnce(Pin<&mut dyn Io>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let start = self.send.start();
        let out = f(self.io());
        let n = match &out {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.send.finish(start, n);
        out
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let start = this.recv.start();
        let out = this.io().poll_read(cx, buf);
        this.recv.finish(start, buf.filled().len() - before);
        out
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().metered_write(|io| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().metered_write(|io| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Rustls(s) => s.is_write_vectored(),
            #[cfg(target_os = "linux")]
            Inner::Ktls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = this.send.start();
        let out = this.io().poll_flush(cx);
        this.send.finish(start, 0);
        out
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;

//! Two TLS endpoints over loopback, for probes, the kernel-TLS check and the
//! benchmarks: a throwaway self-signed certificate, a server engine, a client engine,
//! and a verified exchange of bytes in both directions.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{TlsEngine, client_builder, server_builder};

/// Bytes of the repeating block an exchange sends (random, so that nothing
/// compresses or short-cuts).
const BLOCK: usize = 64 << 10;

/// A server and a client engine with matching certificates.
#[derive(Debug)]
pub struct Loopback {
    server_engine: TlsEngine,
    client_engine: TlsEngine,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    block: Arc<Vec<u8>>,
}

/// What one exchange measured.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// Client to server, from the first write to the server's last read.
    pub upload: Duration,
    /// Server to client, from the server's first write to the client's last read.
    pub download: Duration,
}

/// Configuration failures are programming errors here; say so as I/O errors.
fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Loopback {
    /// Endpoints for `server_engine` and `client_engine`. `max_record` limits the
    /// plaintext per TLS record (`None`: the protocol's 16 KiB).
    pub fn new(server_engine: TlsEngine, client_engine: TlsEngine, max_record: Option<usize>) -> io::Result<Self> {
        let key = rcgen::KeyPair::generate().map_err(other)?;
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .map_err(other)?
            .self_signed(&key)
            .map_err(other)?;
        let der = CertificateDer::from(cert.der().to_vec());
        let mut server = server_builder()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
            .map_err(other)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).map_err(other)?;
        let mut client = client_builder().with_root_certificates(roots).with_no_client_auth();
        server.max_fragment_size = max_record.map(|r| r + 5);
        client.max_fragment_size = max_record.map(|r| r + 5);
        server_engine.prepare_server(&mut server);
        client_engine.prepare_client(&mut client);
        let mut block = vec![0u8; BLOCK];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut block).map_err(other)?;
        Ok(Self {
            server_engine,
            client_engine,
            server: Arc::new(server),
            client: Arc::new(client),
            block: Arc::new(block),
        })
    }

    /// One connection: `len` bytes up in writes of `chunk` bytes, checked by the
    /// server; `len` bytes down, checked by the client; then `close_notify` both ways.
    pub async fn exchange(&self, len: usize, chunk: usize) -> io::Result<Exchange> {
        let chunk = chunk.clamp(1, BLOCK);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (engine, config, block) = (self.server_engine.clone(), self.server.clone(), self.block.clone());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let mut s = engine.accept(tcp, config).await?;
            let mut buf = vec![0u8; BLOCK];
            let started = Instant::now();
            read_checked(&mut s, &block, len, &mut buf).await?;
            let upload_done = started.elapsed();
            let down = Instant::now();
            write_pattern(&mut s, &block, len, chunk).await?;
            s.shutdown().await?;
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await?;
            if !rest.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes after the exchange"));
            }
            io::Result::Ok((upload_done, down))
        });
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("localhost").map_err(other)?;
        let mut c = self.client_engine.connect(tcp, name, self.client.clone()).await?;
        let up = Instant::now();
        write_pattern(&mut c, &self.block, len, chunk).await?;
        c.flush().await?;
        let mut buf = vec![0u8; BLOCK];
        read_checked(&mut c, &self.block, len, &mut buf).await?;
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await?;
        if !rest.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes after the exchange"));
        }
        c.shutdown().await?;
        let (_, down_started) = server.await.map_err(other)??;
        let download = down_started.elapsed();
        let upload = up.elapsed().saturating_sub(download);
        Ok(Exchange { upload, download })
    }
}

async fn write_pattern(s: &mut super::TlsStream, block: &[u8], len: usize, chunk: usize) -> io::Result<()> {
    let mut sent = 0;
    while sent < len {
        let at = sent % BLOCK;
        let n = chunk.min(len - sent).min(BLOCK - at);
        s.write_all(&block[at..at + n]).await?;
        sent += n;
    }
    s.flush().await
}

async fn read_checked(s: &mut super::TlsStream, block: &[u8], len: usize, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < len {
        let at = got % BLOCK;
        let want = (len - got).min(BLOCK - at);
        let n = s.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("stream ended after {got} of {len} bytes"),
            ));
        }
        if buf[..n] != block[at..at + n] {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bytes differ near offset {got}")));
        }
        got += n;
    }
    Ok(())
}

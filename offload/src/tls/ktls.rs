//! Kernel TLS: rustls does the handshake, the kernel does the records.
//!
//! The handshake reads the socket one TLS record at a time, so that when it ends
//! rustls has consumed exactly the handshake and every later byte is still in the
//! socket for the kernel to decrypt. Then the traffic secrets are exported from
//! rustls and installed with `setsockopt(SOL_TLS, TLS_TX/TLS_RX)` after
//! `setsockopt(TCP_ULP, "tls")`. Reads go through `recvmsg`, whose control message
//! names each record's type: application data is returned, a `close_notify` alert
//! ends the stream, a session ticket is skipped, anything else is an error (never a
//! panic: these bytes come from the peer).
//!
//! On a NIC with inline TLS offload (ConnectX and the like) the kernel moves the
//! record crypto into hardware by itself (`ethtool -K IF tls-hw-tx-offload on`); the
//! user-space side is the same.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::crypto::cipher::{AeadKey, Iv};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ConnectionTrafficSecrets, ServerConfig, ServerConnection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use zeroize::Zeroize;

const SOL_TLS: libc::c_int = 282;
const TCP_ULP: libc::c_int = 31;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;
const TLS_SET_RECORD_TYPE: libc::c_int = 1;
const TLS_GET_RECORD_TYPE: libc::c_int = 2;
const TLS_1_2_VERSION: u16 = 0x0303;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;
const TLS_CIPHER_AES_GCM_256: u16 = 52;
const TLS_CIPHER_CHACHA20_POLY1305: u16 = 54;

const RECORD_ALERT: u8 = 21;
const RECORD_HANDSHAKE: u8 = 22;
const RECORD_APPLICATION_DATA: u8 = 23;
const HANDSHAKE_NEW_SESSION_TICKET: u8 = 4;
const ALERT_FATAL: u8 = 2;
const ALERT_CLOSE_NOTIFY: u8 = 0;
/// The largest TLS ciphertext record (2^14 plus expansion).
const MAX_RECORD: usize = (1 << 14) + 2048;

#[repr(C)]
#[derive(Zeroize)]
struct Info {
    version: u16,
    cipher_type: u16,
}

#[repr(C)]
#[derive(Zeroize)]
struct AesGcm128 {
    info: Info,
    iv: [u8; 8],
    key: [u8; 16],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

#[repr(C)]
#[derive(Zeroize)]
struct AesGcm256 {
    info: Info,
    iv: [u8; 8],
    key: [u8; 32],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

#[repr(C)]
#[derive(Zeroize)]
struct Chacha20Poly1305 {
    info: Info,
    iv: [u8; 12],
    key: [u8; 32],
    rec_seq: [u8; 8],
}

/// Whether this kernel can run kernel TLS: tries `TCP_ULP` "tls" on a loopback
/// socket. The error says why not, for the start-up log.
pub fn trial() -> Result<(), String> {
    let listed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unreadable: {e}"));
    let attempt = || -> io::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let _server = listener.accept()?;
        set_ulp(client.as_raw_fd())
    };
    attempt().map_err(|e| {
        format!(
            "the kernel has no \"tls\" upper-layer protocol (setsockopt TCP_ULP \"tls\" on a trial socket: {e}; \
             /proc/sys/net/ipv4/tcp_available_ulp lists: {})",
            if listed.is_empty() { "nothing" } else { &listed }
        )
    })
}

fn set_ulp(fd: RawFd) -> io::Result<()> {
    let name = b"tls";
    // SAFETY: the option value is a valid buffer of the given length.
    let r =
        unsafe { libc::setsockopt(fd, libc::SOL_TCP, TCP_ULP, name.as_ptr().cast(), name.len() as libc::socklen_t) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn set_crypto<T: Zeroize>(fd: RawFd, direction: libc::c_int, mut info: T) -> io::Result<()> {
    // SAFETY: `info` is one of the `repr(C)` `tls12_crypto_info_*` layouts the
    // kernel expects for its cipher type, and lives across the call.
    let r = unsafe {
        libc::setsockopt(fd, SOL_TLS, direction, (&raw const info).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    info.zeroize();
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn split_iv(iv: &Iv) -> io::Result<([u8; 4], [u8; 8])> {
    let iv = iv.as_ref();
    match (iv.get(..4), iv.get(4..12)) {
        (Some(salt), Some(rest)) if iv.len() == 12 => {
            let mut s = [0u8; 4];
            let mut r = [0u8; 8];
            s.copy_from_slice(salt);
            r.copy_from_slice(rest);
            Ok((s, r))
        }
        _ => Err(io::Error::other("unexpected TLS IV length")),
    }
}

fn key<const N: usize>(key: &AeadKey) -> io::Result<[u8; N]> {
    key.as_ref().try_into().map_err(|_| io::Error::other("unexpected TLS key length"))
}

fn install_direction(
    fd: RawFd,
    direction: libc::c_int,
    version: u16,
    (seq, secrets): (u64, ConnectionTrafficSecrets),
) -> io::Result<()> {
    let rec_seq = seq.to_be_bytes();
    match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key: k, iv } | ConnectionTrafficSecrets::Aes256Gcm { key: k, iv } => {
            let (salt, iv) = split_iv(&iv)?;
            if k.as_ref().len() == 16 {
                let info = Info { version, cipher_type: TLS_CIPHER_AES_GCM_128 };
                set_crypto(fd, direction, AesGcm128 { info, iv, key: key(&k)?, salt, rec_seq })
            } else {
                let info = Info { version, cipher_type: TLS_CIPHER_AES_GCM_256 };
                set_crypto(fd, direction, AesGcm256 { info, iv, key: key(&k)?, salt, rec_seq })
            }
        }
        ConnectionTrafficSecrets::Chacha20Poly1305 { key: k, iv } => {
            let iv: [u8; 12] = iv.as_ref().try_into().map_err(|_| io::Error::other("unexpected TLS IV length"))?;
            let info = Info { version, cipher_type: TLS_CIPHER_CHACHA20_POLY1305 };
            set_crypto(fd, direction, Chacha20Poly1305 { info, iv, key: key(&k)?, rec_seq })
        }
        _ => Err(io::Error::new(io::ErrorKind::Unsupported, "the negotiated cipher suite has no kernel TLS support")),
    }
}

/// Reads exactly one TLS record.
async fn read_record(tcp: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 5];
    tcp.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_RECORD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS record longer than the protocol allows"));
    }
    let mut record = vec![0u8; 5 + len];
    record[..5].copy_from_slice(&header);
    tcp.read_exact(&mut record[5..]).await?;
    Ok(record)
}

async fn flush(tcp: &mut TcpStream, conn: &mut Connection) -> io::Result<()> {
    while conn.wants_write() {
        let mut out = Vec::new();
        conn.write_tls(&mut out)?;
        tcp.write_all(&out).await?;
    }
    Ok(())
}

/// Runs the handshake, feeding rustls one record at a time.
async fn handshake(tcp: &mut TcpStream, conn: &mut Connection) -> io::Result<()> {
    loop {
        flush(tcp, conn).await?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        let record = read_record(tcp).await?;
        let mut rest = &record[..];
        while !rest.is_empty() {
            if conn.read_tls(&mut rest)? == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS record not accepted"));
            }
        }
        if let Err(e) = conn.process_new_packets() {
            let _ = flush(tcp, conn).await; // the alert
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// Hands a finished connection's record layer to the kernel.
fn install(tcp: TcpStream, mut conn: Connection) -> io::Result<KtlsStream> {
    let version = match conn.negotiated_cipher_suite() {
        Some(rustls::SupportedCipherSuite::Tls12(_)) => TLS_1_2_VERSION,
        Some(rustls::SupportedCipherSuite::Tls13(_)) => TLS_1_3_VERSION,
        None => return Err(io::Error::other("no cipher suite negotiated")),
    };
    // Plaintext rustls decrypted before the switch (none is expected: the handshake
    // stops at the record that completes it) is handed out first.
    let mut pending = Vec::new();
    match conn.reader().read_to_end(&mut pending) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let secrets = match conn {
        Connection::Client(c) => c.dangerous_extract_secrets(),
        Connection::Server(c) => c.dangerous_extract_secrets(),
    }
    .map_err(|e| io::Error::other(format!("exporting TLS secrets for the kernel: {e}")))?;
    let fd = tcp.as_raw_fd();
    set_ulp(fd).map_err(|e| io::Error::new(e.kind(), format!("setsockopt TCP_ULP \"tls\": {e}")))?;
    install_direction(fd, TLS_TX, version, secrets.tx)?;
    install_direction(fd, TLS_RX, version, secrets.rx)?;
    Ok(KtlsStream { tcp, pending, pending_at: 0, read_closed: false, write_closed: false, alpn })
}

/// Server side: handshake with rustls, then kernel TLS.
pub(crate) async fn accept(mut tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<KtlsStream> {
    let mut conn = Connection::Server(ServerConnection::new(config).map_err(io::Error::other)?);
    handshake(&mut tcp, &mut conn).await?;
    install(tcp, conn)
}

/// Client side: handshake with rustls, then kernel TLS.
pub(crate) async fn connect(
    mut tcp: TcpStream,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> io::Result<KtlsStream> {
    let mut conn = Connection::Client(ClientConnection::new(config, name).map_err(io::Error::other)?);
    handshake(&mut tcp, &mut conn).await?;
    install(tcp, conn)
}

/// A TCP connection whose TLS records the kernel seals and opens.
#[derive(Debug)]
pub struct KtlsStream {
    tcp: TcpStream,
    pending: Vec<u8>,
    pending_at: usize,
    read_closed: bool,
    write_closed: bool,
    alpn: Option<Vec<u8>>,
}

/// One `recvmsg`: the bytes read and the type of the record they came from.
fn recv_record(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes valid, writable buffers.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut record_type = RECORD_APPLICATION_DATA;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled in.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == SOL_TLS && (*cmsg).cmsg_type == TLS_GET_RECORD_TYPE {
                record_type = *libc::CMSG_DATA(cmsg);
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok((n as usize, record_type))
}

/// Sends a `close_notify` alert through the kernel's record layer.
fn send_close_notify(fd: RawFd) -> io::Result<()> {
    let alert = [1u8, ALERT_CLOSE_NOTIFY]; // warning, close_notify
    let mut iov = libc::iovec { iov_base: alert.as_ptr() as *mut libc::c_void, iov_len: alert.len() };
    let mut control = [0u64; 8];
    // SAFETY: as in `recv_record`; the control message is built with CMSG_* in a
    // buffer large enough for one byte of data.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(1) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for a control message"));
        }
        (*cmsg).cmsg_level = SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = RECORD_ALERT;
        if libc::sendmsg(fd, &raw const msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl KtlsStream {
    /// The TCP connection.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The ALPN protocol agreed on in the handshake.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
}

impl AsyncRead for KtlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending_at < this.pending.len() {
            let n = buf.remaining().min(this.pending.len() - this.pending_at);
            buf.put_slice(&this.pending[this.pending_at..this.pending_at + n]);
            this.pending_at += n;
            return Poll::Ready(Ok(()));
        }
        if this.read_closed || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let fd = this.tcp.as_raw_fd();
        loop {
            ready!(this.tcp.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let (n, record_type) = match this.tcp.try_io(Interest::READABLE, || recv_record(fd, unfilled)) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBADMSG) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "TLS record failed to decrypt",
                    )));
                }
                Err(e) => return Poll::Ready(Err(e)),
            };
            match record_type {
                RECORD_APPLICATION_DATA => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                RECORD_ALERT => {
                    let (level, description) = (unfilled.first().copied(), unfilled.get(1).copied());
                    if n >= 2 && description == Some(ALERT_CLOSE_NOTIFY) {
                        this.read_closed = true;
                        return Poll::Ready(Ok(()));
                    }
                    if n >= 1 && level == Some(ALERT_FATAL) {
                        this.read_closed = true;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            format!("TLS alert from the peer: {}", description.unwrap_or(0)),
                        )));
                    }
                    // A warning other than close_notify: keep reading.
                }
                RECORD_HANDSHAKE if n >= 1 && unfilled[0] == HANDSHAKE_NEW_SESSION_TICKET => {
                    // A session ticket: resumption is not used, skip it.
                }
                RECORD_HANDSHAKE => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "post-handshake message (key update?) that kernel TLS cannot follow",
                    )));
                }
                other => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected TLS record type {other}"),
                    )));
                }
            }
        }
    }
}

impl AsyncWrite for KtlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "TLS stream shut down")));
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "TLS stream shut down")));
        }
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            // Best effort: a peer that stopped reading does not get its alert.
            let _ = send_close_notify(this.tcp.as_raw_fd());
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

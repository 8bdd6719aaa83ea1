//! A WAN and fault emulator: a TCP proxy in front of one location, adding what
//! real links do — latency and jitter, a bandwidth cap per direction, stalls (how
//! loss looks to a TCP stream), a slow first byte, connections cut mid-body —
//! switchable while a test runs. This kernel has no `netem`, so it is done here,
//! in user space, one pair of threads per connection and direction.
//!
//! It works below TLS: the gateway connects to the proxy's port and speaks TLS
//! through it to the location, whose certificate names `127.0.0.1` whatever the
//! port, and presigned URLs are signed for the host and port the gateway sees.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What a link does to the bytes crossing it. The default passes them untouched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    /// Added to every piece, each way.
    pub latency: Duration,
    /// Up to this much more, drawn per piece (pieces keep their order).
    pub jitter: Duration,
    /// Cap on bytes per second from clients to the location, shared by all
    /// connections (a link's capacity, not a connection's).
    pub up_rate: Option<u64>,
    /// Cap on bytes per second from the location to clients, likewise shared.
    pub down_rate: Option<u64>,
    /// Nothing crosses, either way, while set: what lost packets do to a stream.
    pub stalled: bool,
    /// A connection stalls for good once this many bytes came from the location.
    pub stall_after: Option<u64>,
    /// A connection is cut (reset) once this many bytes came from the location.
    pub reset_after: Option<u64>,
    /// Before a connection's first byte from the location (for a TLS location, its
    /// handshake's: below TLS a proxy sees connections, not requests).
    pub first_byte_delay: Duration,
}

/// Bytes moved through a link so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// From clients to the location.
    pub up: u64,
    /// From the location to clients.
    pub down: u64,
}

#[derive(Debug, Default)]
struct Shared {
    conditions: Mutex<Conditions>,
    closing: AtomicBool,
    up: AtomicU64,
    down: AtomicU64,
    connections: AtomicU64,
    /// When each direction of the link is free again (up, down).
    free_at: [Mutex<Option<Instant>>; 2],
}

impl Shared {
    /// Waits until `n` bytes have crossed a link of `rate` bytes per second going
    /// `way`, after everything sent that way before them on any connection.
    fn transmit(&self, way: Way, n: usize, rate: u64) {
        let done = {
            let mut free = self.free_at[way as usize].lock().expect("link clock");
            let start = free.map_or_else(Instant::now, |f| f.max(Instant::now()));
            let done = start + Duration::from_secs_f64(n as f64 / rate as f64);
            *free = Some(done);
            done
        };
        if let Some(wait) = done.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
}

/// One location's link: listens on its own port, forwards to the location's.
#[derive(Debug)]
pub struct Link {
    /// The port to give the gateway instead of the location's.
    pub port: u16,
    shared: Arc<Shared>,
}

impl Link {
    /// A link to `127.0.0.1:upstream`, passing bytes untouched until told otherwise.
    pub fn start(upstream: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a link");
        let port = listener.local_addr().expect("link address").port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.closing.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(location) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue; // the location is down: the client sees the connection close
                };
                s.connections.fetch_add(1, Ordering::Relaxed);
                connect(&s, client, location);
            }
        });
        Link { port, shared }
    }

    /// The conditions from now on (connections already open included).
    pub fn set(&self, conditions: Conditions) {
        *self.shared.conditions.lock().expect("conditions") = conditions;
    }

    /// Bytes moved so far.
    pub fn moved(&self) -> Moved {
        Moved { up: self.shared.up.load(Ordering::Relaxed), down: self.shared.down.load(Ordering::Relaxed) }
    }

    /// Connections made through it so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        // Wakes the accept loop; open connections are cut at their next piece
        // (the writers check `closing`), or end with their peers.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Up = 0,
    Down = 1,
}

fn connect(shared: &Arc<Shared>, client: TcpStream, location: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = location.set_nodelay(true);
    let pair = || (client.try_clone().expect("clone client"), location.try_clone().expect("clone location"));
    let (c, l) = pair();
    pump(shared.clone(), Way::Up, c, l);
    let (c, l) = pair();
    pump(shared.clone(), Way::Down, l, c);
}

/// Moves bytes from `from` to `to`: one thread reads and stamps each piece with the
/// time it may leave (latency, jitter), another holds it until then and writes it
/// at the capped rate, unless the link stalls or cuts the connection.
fn pump(shared: Arc<Shared>, way: Way, mut from: TcpStream, mut to: TcpStream) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader_shared = shared.clone();
    let source = from.try_clone().expect("clone stream");
    thread::spawn(move || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut seed = (now.as_nanos() as u64 ^ u64::from(std::process::id())) | 1;
        let mut last = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let c = reader_shared.conditions.lock().expect("conditions").clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let extra =
                if c.jitter.is_zero() { Duration::ZERO } else { c.jitter.mul_f64((seed % 1000) as f64 / 1000.0) };
            // In order: a piece never leaves before the one read before it.
            last = last.max(Instant::now() + c.latency + extra);
            if tx.send((last, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    thread::spawn(move || {
        let mut sent: u64 = 0;
        for (due, piece) in rx {
            let c = shared.conditions.lock().expect("conditions").clone();
            if way == Way::Down && sent == 0 && !c.first_byte_delay.is_zero() {
                thread::sleep(c.first_byte_delay);
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            let mut at = 0;
            while at < piece.len() {
                let c = shared.conditions.lock().expect("conditions").clone();
                if c.reset_after.is_some_and(|limit| way == Way::Down && sent >= limit)
                    || shared.closing.load(Ordering::Relaxed)
                {
                    cut(&source, &to);
                    return;
                }
                let stalled_for_good = way == Way::Down && c.stall_after.is_some_and(|limit| sent >= limit);
                if c.stalled || stalled_for_good {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                // Pieces of at most 4 KiB under a cap, so that a rate is kept smoothly.
                let limit = match way {
                    Way::Up => c.up_rate,
                    Way::Down => c.down_rate,
                };
                let mut end = piece.len();
                if limit.is_some() {
                    end = end.min(at + 4096);
                }
                if let Some(limit) = c.reset_after.filter(|_| way == Way::Down) {
                    end = end.min(at + (limit - sent) as usize);
                }
                if let Some(limit) = c.stall_after.filter(|_| way == Way::Down) {
                    end = end.min(at + (limit - sent) as usize);
                }
                if let Some(rate) = limit.filter(|&r| r > 0) {
                    shared.transmit(way, end - at, rate);
                }
                if to.write_all(&piece[at..end]).is_err() {
                    return;
                }
                let n = (end - at) as u64;
                at = end;
                sent += n;
                match way {
                    Way::Up => shared.up.fetch_add(n, Ordering::Relaxed),
                    Way::Down => shared.down.fetch_add(n, Ordering::Relaxed),
                };
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Resets a connection, as a middlebox or a crashed peer does: with a zero linger
/// the last close sends RST instead of an orderly FIN, and shutting the read sides
/// wakes the threads still reading, whose closes are the last.
fn cut(a: &TcpStream, b: &TcpStream) {
    for s in [a, b] {
        let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        let _ = s.shutdown(Shutdown::Read);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A location that sends `len` bytes to every connection after reading a line,
    /// and echoes nothing else.
    fn upstream(len: usize) -> (u16, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let d = data.clone();
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                let d = d.clone();
                thread::spawn(move || {
                    let mut line = [0u8; 1];
                    while s.read(&mut line).is_ok_and(|n| n == 1 && line[0] != b'\n') {}
                    let _ = s.write_all(&d);
                });
            }
        });
        (port, data)
    }

    fn fetch(link: &Link) -> (std::io::Result<Vec<u8>>, Duration) {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", link.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(b"go\n").expect("ask");
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got).map(|_| got);
        (r, t.elapsed())
    }

    #[test]
    fn untouched_bytes_pass_untouched() {
        let (port, data) = upstream(300_000);
        let link = Link::start(port);
        let (got, _) = fetch(&link);
        assert_eq!(got.expect("read"), data);
        // Counted before the end is passed on (the request's count may trail it).
        assert_eq!(link.moved().down, data.len() as u64);
        assert_eq!(link.connections(), 1);
    }

    #[test]
    fn latency_and_rate_slow_a_transfer_down() {
        let (port, data) = upstream(200_000);
        let link = Link::start(port);
        link.set(Conditions { latency: Duration::from_millis(100), down_rate: Some(1_000_000), ..Default::default() });
        let (got, took) = fetch(&link);
        assert_eq!(got.expect("read"), data);
        // One way up, one way down, and 200 KB at 1 MB/s: at least 0.4 s.
        assert!(took >= Duration::from_millis(400), "took {took:?}");
    }

    #[test]
    fn connections_share_the_link() {
        let (port, data) = upstream(100_000);
        let link = Link::start(port);
        link.set(Conditions { down_rate: Some(1_000_000), ..Default::default() });
        let t = Instant::now();
        let both: Vec<_> = (0..2)
            .map(|_| {
                let port = link.port;
                thread::spawn(move || {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    s.write_all(b"go\n").expect("ask");
                    let mut got = Vec::new();
                    s.read_to_end(&mut got).expect("read");
                    got
                })
            })
            .collect();
        for h in both {
            assert_eq!(h.join().expect("reader"), data);
        }
        // 2 × 100 KB through one 1 MB/s link: at least 0.2 s, not 0.1.
        assert!(t.elapsed() >= Duration::from_millis(190), "took {:?}", t.elapsed());
    }

    #[test]
    fn a_slow_first_byte_is_slow() {
        let (port, data) = upstream(10);
        let link = Link::start(port);
        link.set(Conditions { first_byte_delay: Duration::from_millis(300), ..Default::default() });
        let (got, took) = fetch(&link);
        assert_eq!(got.expect("read"), data);
        assert!(took >= Duration::from_millis(300), "took {took:?}");
    }

    #[test]
    fn a_stalled_link_moves_nothing_until_it_clears() {
        let (port, data) = upstream(50_000);
        let link = Link::start(port);
        link.set(Conditions { stall_after: Some(10_000), ..Default::default() });
        let mut s = TcpStream::connect(("127.0.0.1", link.port)).expect("connect");
        s.write_all(b"go\n").expect("ask");
        s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let mut got = vec![0u8; 10_000];
        s.read_exact(&mut got).expect("the bytes before the stall");
        assert_eq!(got, data[..10_000]);
        let mut more = [0u8; 1];
        let e = s.read(&mut more).expect_err("nothing while stalled");
        assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}");
        link.set(Conditions::default());
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("the rest once cleared");
        assert_eq!(rest, data[10_000..]);
    }

    #[test]
    fn a_cut_connection_ends_mid_body() {
        let (port, data) = upstream(100_000);
        let link = Link::start(port);
        link.set(Conditions { reset_after: Some(30_000), ..Default::default() });
        let (got, _) = fetch(&link);
        // A reset reads as an error, or as an early end: never as the whole body.
        match got {
            Ok(bytes) => {
                assert!(bytes.len() <= 30_000, "{} bytes after the cut", bytes.len());
                assert_eq!(bytes, data[..bytes.len()]);
            }
            Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        }
        assert!(link.moved().down <= 30_000);
    }
}

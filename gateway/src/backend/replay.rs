//! Sending a request again when its connection went away before the location
//! answered — a pooled keep-alive connection the location closed as it was reused
//! is the usual case. Every request to a location is idempotent (a fragment or
//! record is PUT under a fixed name, and GET, HEAD and DELETE change nothing on a
//! second go), so one more try on a fresh connection is safe; an upload body can
//! be sent again only while what it has given so far is still held, which
//! [`Replay`] does for its first [`REPLAY_MAX`] bytes.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::Stream;

/// Upload bytes held so that a request failed early can be sent again: a
/// fragment's header and first slice at the default segment size, or all of a
/// small one.
pub(super) const REPLAY_MAX: u64 = 2 << 20;

/// Whether a client error means the connection went away before any answer came
/// (reset, closed, or cut short), so that the request may be sent again.
pub(super) fn connection_lost(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

struct Held<S> {
    body: Pin<Box<S>>,
    /// What the body has given so far, while it is at most `REPLAY_MAX` bytes.
    given: Vec<Bytes>,
    given_len: u64,
    /// Pieces the body has given in all.
    count: usize,
    /// More than `REPLAY_MAX` was given: it cannot be sent again.
    spilled: bool,
}

/// An upload body that keeps what it has given, up to [`REPLAY_MAX`] bytes:
/// [`Replay::attempt`] is a stream of the whole body, and a second attempt gives
/// the held bytes again before the rest.
pub(super) struct Replay<S> {
    held: Arc<Mutex<Held<S>>>,
}

impl<S> Replay<S>
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
{
    pub(super) fn new(body: S) -> Self {
        Self {
            held: Arc::new(Mutex::new(Held {
                body: Box::pin(body),
                given: Vec::new(),
                given_len: 0,
                count: 0,
                spilled: false,
            })),
        }
    }

    /// Whether a new attempt would send the whole body.
    pub(super) fn can_replay(&self) -> bool {
        self.held.lock().is_ok_and(|h| !h.spilled)
    }

    /// The body from its start (the held bytes, then the rest).
    pub(super) fn attempt(&self) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let held = self.held.clone();
        let mut at = 0usize;
        futures::stream::poll_fn(move |cx: &mut Context<'_>| {
            let Ok(mut h) = held.lock() else {
                return Poll::Ready(Some(Err(io::Error::other("upload body poisoned"))));
            };
            if at < h.count {
                // A later attempt: what the body gave before, while it is held.
                let Some(b) = h.given.get(at).cloned() else {
                    return Poll::Ready(Some(Err(io::Error::other("upload body no longer held"))));
                };
                at += 1;
                return Poll::Ready(Some(Ok(b)));
            }
            let next = h.body.as_mut().poll_next(cx);
            if let Poll::Ready(Some(Ok(b))) = &next {
                h.count += 1;
                at += 1;
                h.given_len += b.len() as u64;
                if h.given_len <= REPLAY_MAX && !h.spilled {
                    h.given.push(b.clone());
                } else {
                    h.spilled = true;
                    h.given = Vec::new();
                }
            }
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn body(pieces: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        futures::stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p))))
    }

    async fn take(s: impl Stream<Item = Result<Bytes, io::Error>>, n: usize) -> Vec<u8> {
        let mut s = std::pin::pin!(s);
        let mut out = Vec::new();
        for _ in 0..n {
            match s.next().await {
                Some(Ok(b)) => out.extend_from_slice(&b),
                _ => break,
            }
        }
        out
    }

    #[tokio::test]
    async fn a_second_attempt_sends_the_held_bytes_then_the_rest() {
        let r = Replay::new(body(vec![b"head".to_vec(), b"one".to_vec(), b"two".to_vec()]));
        assert_eq!(take(r.attempt(), 2).await, b"headone", "the first attempt dies after two pieces");
        assert!(r.can_replay());
        assert_eq!(take(r.attempt(), 10).await, b"headonetwo");
    }

    #[tokio::test]
    async fn a_body_past_the_bound_is_not_sent_again() {
        let big = REPLAY_MAX as usize + 1;
        let r = Replay::new(body(vec![b"head".to_vec(), vec![7; big]]));
        assert_eq!(take(r.attempt(), 2).await.len(), big + 4);
        assert!(!r.can_replay());
        let mut again = std::pin::pin!(r.attempt());
        assert!(matches!(again.next().await, Some(Err(_))), "never a body with a hole in it");
    }

    /// A location that reads each request and closes the connection unanswered
    /// the first `drop_first` times, then answers `200`; gives back every request
    /// it saw, whole.
    async fn flaky_location(drop_first: usize) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..=drop_first {
                let (mut conn, _) = listener.accept().await.expect("accept");
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Head, then as much body as its content-length says.
                loop {
                    let n = conn.read(&mut buf).await.expect("read");
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.trim().parse().expect("length"));
                        if req.len() >= end + 4 + len || n == 0 {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                seen.push(req);
                if i == drop_first {
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.expect("answer");
                }
                // Dropped: closed, answered or not.
            }
            seen
        });
        (addr, seen)
    }

    fn transfer() -> super::super::transfer::Transfer {
        let engine = offload::tls::TlsEngine::new(offload::tls::TlsKind::Rustls, &offload::meter::Meters::default());
        let config = crate::tls::client_config(&[], &engine).expect("client config");
        let (connect, stall) = (std::time::Duration::from_secs(2), std::time::Duration::from_secs(5));
        super::super::transfer::Transfer::new(&engine, std::collections::HashMap::new(), config, connect, stall)
    }

    #[tokio::test]
    async fn an_upload_whose_connection_is_closed_unanswered_is_sent_again_whole() {
        let (addr, seen) = flaky_location(1).await;
        let url = url::Url::parse(&format!("http://{addr}/f/1")).expect("url");
        let pieces = vec![b"header".to_vec(), vec![1; 100_000], vec![2; 50_000]];
        let len = pieces.iter().map(Vec::len).sum::<usize>() as u64;
        transfer().put("l", url, len, body(pieces)).await.expect("stored on the second try");
        let seen = seen.await.expect("server");
        assert_eq!(seen.len(), 2);
        for req in &seen {
            assert!(req.ends_with(&[2; 50_000]) && req.len() > 150_006, "both tries carried the whole body");
        }
    }

    #[tokio::test]
    async fn a_bodiless_request_is_asked_once_more_and_no_more() {
        let (addr, seen) = flaky_location(1).await;
        let url = url::Url::parse(&format!("http://{addr}/f/1")).expect("url");
        transfer().delete("l", url).await.expect("deleted on the second try");
        assert_eq!(seen.await.expect("server").len(), 2);

        let (addr, _seen) = flaky_location(2).await;
        let url = url::Url::parse(&format!("http://{addr}/f/1")).expect("url");
        let err = transfer().delete("l", url).await.expect_err("two lost connections fail it");
        assert!(matches!(err, super::super::TransferError::Unavailable(_)), "{err}");
    }
}

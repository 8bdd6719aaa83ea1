//! Moving fragment bytes through presigned URLs.
//!
//! Requests carry no credentials and no `x-amz-*` header: whatever the URL's
//! signature covers is all there is, so S3-compatible servers that reject unsigned
//! `x-amz-*` headers accept them.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};

/// A transfer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransferError {
    /// The location has no such object.
    #[error("not found at the location")]
    NotFound,
    /// The location refused the request (signature, expiry, permissions, size).
    #[error("refused by the location: HTTP {status}: {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// First bytes of the body.
        detail: String,
    },
    /// The location is unreachable, failing (5xx) or too slow.
    #[error("location unavailable: {0}")]
    Unavailable(String),
    /// The location answered something that does not fit the request.
    #[error("unexpected answer from the location: {0}")]
    Protocol(String),
}

impl TransferError {
    fn from_reqwest(e: &reqwest::Error) -> Self {
        TransferError::Unavailable(redact(&e.to_string()))
    }
}

/// Drops query strings from a message so that presigned signatures never reach logs.
pub fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut skip = false;
    for c in msg.chars() {
        match c {
            '?' => {
                skip = true;
                out.push_str("?…");
            }
            ' ' | ')' | '"' | '\'' => {
                skip = false;
                out.push(c);
            }
            _ if skip => {}
            _ => out.push(c),
        }
    }
    out
}

/// The HTTP client for locations.
#[derive(Debug, Clone)]
pub struct Transfer {
    client: reqwest::Client,
}

impl Transfer {
    /// A client with the given connect timeout and per-read stall timeout, using
    /// `tls` for https locations (rustls, ring provider; from the offload layer).
    pub fn new(
        connect_timeout: Duration,
        stall_timeout: Duration,
        tls: rustls::ClientConfig,
    ) -> Result<Self, TransferError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(stall_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .no_proxy()
            .http1_only()
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| TransferError::Protocol(e.to_string()))?;
        Ok(Self { client })
    }

    /// Uploads exactly `len` bytes from `body`.
    pub async fn put<S>(&self, url: url::Url, len: u64, body: S) -> Result<(), TransferError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let resp = self
            .client
            .put(url)
            .header(CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| TransferError::from_reqwest(&e))?;
        check(resp).await.map(|_| ())
    }

    /// Reads the object, or `range` of it, as a stream of bytes.
    pub async fn get(
        &self,
        url: url::Url,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, TransferError>>, TransferError> {
        let mut req = self.client.get(url);
        if let Some(r) = &range {
            if r.is_empty() {
                return Ok(futures::stream::empty().boxed());
            }
            req = req.header(RANGE, format!("bytes={}-{}", r.start, r.end - 1));
        }
        let resp = check(req.send().await.map_err(|e| TransferError::from_reqwest(&e))?).await?;
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
        let stream = resp.bytes_stream().map_err(|e| TransferError::from_reqwest(&e));
        Ok(match expected {
            Some(n) => exact_length(stream, n).boxed(),
            None => stream.boxed(),
        })
    }

    /// Deletes the object; a missing object counts as deleted.
    pub async fn delete(&self, url: url::Url) -> Result<(), TransferError> {
        let resp = self.client.delete(url).send().await.map_err(|e| TransferError::from_reqwest(&e))?;
        match check(resp).await {
            Ok(_) | Err(TransferError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response, TransferError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let detail: String = resp.text().await.unwrap_or_default().chars().take(200).collect();
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

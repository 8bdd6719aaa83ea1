//! A minimum rate for request bodies: a body that keeps the server waiting longer
//! than the window for less than the window's worth of bytes ends with
//! [`BodyTooSlow`], so that an upload trickling a byte a second cannot hold a
//! transfer slot (and its memory) for hours.
//!
//! Only the time the server spends waiting for the client counts: while the
//! consumer is busy elsewhere (the pipeline waiting for a location, say) the body is
//! not polled, and the client is not to blame for that.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::guard::ConnMetrics;

/// How the message of [`BodyTooSlow`] begins: layers that box errors hide its type
/// (a `Box<dyn Error>`'s source is its content's source, not its content).
pub const TOO_SLOW: &str = "the request body arrived at less than";

/// The error a body too slow ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived at less than {min} bytes per second over {window:?}")]
pub struct BodyTooSlow {
    /// The least rate, bytes per second.
    pub min: u64,
    /// The window it is averaged over.
    pub window: Duration,
}

/// The rule: at least `min` bytes per second, averaged over `window` of waiting.
#[derive(Debug, Clone, Copy)]
pub struct MinRate {
    /// Bytes per second (`0`: no rule).
    pub min: u64,
    /// Averaging window.
    pub window: Duration,
}

/// A request body held to a [`MinRate`].
pub struct Paced<B> {
    inner: B,
    rule: MinRate,
    /// Time spent waiting for the client in this window, and bytes received in it.
    waited: Duration,
    received: u64,
    /// When the current wait began (the last poll that found nothing).
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    metrics: Option<(Arc<ConnMetrics>, &'static str)>,
    failed: bool,
}

impl<B> std::fmt::Debug for Paced<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced").field("rule", &self.rule).field("received", &self.received).finish_non_exhaustive()
    }
}

impl<B> Paced<B> {
    /// `inner` held to `rule`; a body ended for being too slow is counted in
    /// `metrics` under `endpoint`.
    pub fn new(inner: B, rule: MinRate, metrics: Option<(Arc<ConnMetrics>, &'static str)>) -> Self {
        Self {
            inner,
            rule,
            waited: Duration::ZERO,
            received: 0,
            waiting_since: None,
            timer: None,
            metrics,
            failed: false,
        }
    }

    /// Accounts for the wait that just ended, and for `n` bytes it brought; whether
    /// the client is too slow.
    fn account(&mut self, now: Instant, n: u64) -> bool {
        if let Some(since) = self.waiting_since.take() {
            self.waited += now.saturating_duration_since(since);
        }
        self.received += n;
        if self.waited < self.rule.window {
            return false;
        }
        let owed = (self.rule.min as f64 * self.waited.as_secs_f64()) as u64;
        if self.received < owed {
            return true;
        }
        self.waited = Duration::ZERO;
        self.received = 0;
        false
    }
}

impl<B> Body for Paced<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        if this.rule.min == 0 {
            return Pin::new(&mut this.inner).poll_frame(cx).map_err(Into::into);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if this.account(Instant::now(), n) {
                    return Poll::Ready(Some(Err(this.fail())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let now = Instant::now();
                if this.account(now, 0) {
                    return Poll::Ready(Some(Err(this.fail())));
                }
                this.waiting_since = Some(now);
                // Wake when the window would be over with nothing more received.
                let deadline = now + this.rule.window.saturating_sub(this.waited) + Duration::from_millis(1);
                match &mut this.timer {
                    Some(t) => t.as_mut().reset(deadline),
                    None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                if let Some(t) = &mut this.timer {
                    ready!(t.as_mut().poll(cx));
                    // The deadline passed while registering: account for it now.
                    if this.account(Instant::now(), 0) {
                        return Poll::Ready(Some(Err(this.fail())));
                    }
                    this.waiting_since = Some(Instant::now());
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Paced<B> {
    fn fail(&mut self) -> Box<dyn std::error::Error + Send + Sync> {
        self.failed = true;
        if let Some((m, endpoint)) = &self.metrics {
            m.closed(endpoint, "body_too_slow");
        }
        Box::new(BodyTooSlow { min: self.rule.min, window: self.rule.window })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use http_body_util::{BodyExt as _, StreamBody};

    fn body_of(
        chunks: Vec<(u64, usize)>,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin + Send + 'static {
        let s = futures::stream::iter(chunks).then(|(delay_ms, len)| async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![7u8; len])))
        });
        StreamBody::new(Box::pin(s))
    }

    async fn collect<B: Body<Data = Bytes> + Unpin>(b: B) -> Result<usize, String>
    where
        B::Error: std::fmt::Display,
    {
        let mut b = b;
        let mut n = 0;
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => n += f.data_ref().map_or(0, |d| d.len()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(n)
    }

    const RULE: MinRate = MinRate { min: 100, window: Duration::from_secs(10) };

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_passes() {
        // 200 bytes per second for 60 s.
        let body = Paced::new(body_of(vec![(1000, 200); 60]), RULE, None);
        assert_eq!(collect(body).await, Ok(12_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_ends_after_the_window() {
        let started = Instant::now();
        let body = Paced::new(body_of(vec![(1000, 1); 600]), RULE, None);
        let err = collect(body).await.expect_err("an error");
        assert!(err.contains("less than 100 bytes per second"), "{err}");
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(10) && took < Duration::from_secs(12), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_ends_at_the_window() {
        let started = Instant::now();
        let body = Paced::new(body_of(vec![(0, 10), (3_600_000, 10)]), RULE, None);
        assert!(collect(body).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_consumer_is_away_does_not_count() {
        // Bytes are there at once, but the consumer reads one chunk a minute.
        let mut body = Paced::new(body_of(vec![(0, 10); 5]), RULE, None);
        let mut n = 0;
        while let Some(f) = body.frame().await {
            n += f.expect("test value").data_ref().map_or(0, |d| d.len());
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        assert_eq!(n, 50);
    }

    #[tokio::test(start_paused = true)]
    async fn no_rule_no_limit() {
        let rule = MinRate { min: 0, window: Duration::from_secs(1) };
        let body = Paced::new(body_of(vec![(5000, 1); 3]), rule, None);
        assert_eq!(collect(body).await, Ok(3));
    }
}

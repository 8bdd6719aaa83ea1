//! Request rates per access key: a token bucket each (`limits.requests_per_second`
//! refilled, `limits.request_burst` deep); a request finding its key's bucket empty
//! is answered `503 SlowDown` with the seconds until a token is back in
//! `Retry-After`, as S3 answers a prefix over its request rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most; when more keys are seen, full ones are forgotten (a full
/// bucket and a new one are the same).
const MAX_BUCKETS: usize = 65_536;

/// Token buckets per access key.
#[derive(Debug)]
pub struct KeyRates {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl KeyRates {
    /// `rate` requests per second, `burst` at once; `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| Self { rate: f64::from(rate), burst: f64::from(burst.max(1)), buckets: Mutex::default() })
    }

    /// Takes a token for `key` at `now`, or says how long until one is back.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() >= MAX_BUCKETS && !b.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, (tokens, at)| *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = b.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// The `503 SlowDown` of a key over its rate.
pub fn slow_down(wait: Duration) -> s3s::S3Error {
    let mut e = s3s::s3_error!(SlowDown, "Please reduce your request rate.");
    let mut h = http::HeaderMap::new();
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
        h.insert(http::header::RETRY_AFTER, v);
    }
    e.set_headers(h);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let r = KeyRates::new(10, 5).expect("test value");
        let t0 = Instant::now();
        for _ in 0..5 {
            r.take("a", t0).expect("test value");
        }
        let wait = r.take("a", t0).expect_err("an error");
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        r.take("b", t0).expect("another key has its own bucket");
        r.take("a", t0 + Duration::from_millis(100)).expect("a token back after 1/rate");
        assert!(r.take("a", t0 + Duration::from_millis(100)).is_err());
        for _ in 0..5 {
            r.take("a", t0 + Duration::from_secs(60)).expect("test value");
        }
        assert!(r.take("a", t0 + Duration::from_secs(60)).is_err(), "never more than the burst");
    }

    #[test]
    fn no_rate_no_limit() {
        assert!(KeyRates::new(0, 5).is_none());
    }
}

//! A token bucket: background work takes bytes from it and waits when it runs dry,
//! so that repair and scrub move at most their configured rate and leave the rest
//! of the bandwidth to clients.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Bytes per second, with up to one second of burst.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A bucket refilled at `rate` bytes per second (`0`: unlimited).
    pub fn new(rate: u64) -> Self {
        Self { rate, state: Mutex::new((rate as f64, Instant::now())) }
    }

    /// Takes `bytes`, waiting as long as the rate requires. A request larger than
    /// the burst is let through and paid for by waiting afterwards' debt.
    pub async fn acquire(&self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let rate = self.rate as f64;
        let mut s = self.state.lock().await;
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * rate).min(rate);
        s.1 = now;
        s.0 -= bytes as f64;
        if s.0 < 0.0 {
            // Holding the lock while waiting queues the other takers behind us.
            let wait = Duration::from_secs_f64(-s.0 / rate);
            tokio::time::sleep(wait).await;
            s.0 = 0.0;
            s.1 = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_keeps_to_its_rate() {
        let bucket = RateLimiter::new(1000);
        let start = tokio::time::Instant::now();
        // One second of burst, then 3000 bytes at 1000/s.
        for _ in 0..40 {
            bucket.acquire(100).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(2900) && took <= Duration::from_millis(3100), "{took:?}");
        let unlimited = RateLimiter::new(0);
        let start = tokio::time::Instant::now();
        unlimited.acquire(u64::MAX).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

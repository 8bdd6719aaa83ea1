//! Recent failures per location, so that reads try healthy locations first and
//! writes avoid locations that just failed when they have a choice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Recent consecutive failures per location.
#[derive(Debug, Default)]
pub struct Health(Mutex<HashMap<String, (u32, Instant)>>);

/// How long a failure counts against a location.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);

impl Health {
    /// Notes a failed operation at `location`.
    pub fn failed(&self, location: &str) {
        if let Ok(mut m) = self.0.lock() {
            let e = m.entry(location.to_string()).or_insert((0, Instant::now()));
            e.0 = e.0.saturating_add(1);
            e.1 = Instant::now();
        }
    }

    /// Notes a successful operation at `location`.
    pub fn succeeded(&self, location: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(location);
        }
    }

    /// Recent consecutive failures (0 = healthy).
    pub fn failures(&self, location: &str) -> u32 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(location).filter(|(_, t)| t.elapsed() < FAILURE_MEMORY).map(|(n, _)| *n))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_forgets_success() {
        let h = Health::default();
        h.failed("a");
        h.failed("a");
        assert_eq!(h.failures("a"), 2);
        h.succeeded("a");
        assert_eq!(h.failures("a"), 0);
    }
}

//! Which fragments the cache keeps: a policy sees every lookup and every admission
//! and names the entries to evict, so that the blocks in use never exceed the
//! capacity. Two policies, to be chosen by measurement on a skewed workload:
//!
//! - **LRU**: evicts the least recently used entry.
//! - **S3-FIFO** (Yang et al., SOSP 2023): new entries enter a small FIFO (10% of the
//!   capacity); those read again while there move to the main FIFO, the others leave
//!   and are remembered in a ghost FIFO (keys only), so that a key coming back soon
//!   goes straight to the main FIFO. The main FIFO gives an entry read since its last
//!   pass another round (up to three) instead of evicting it. One-hit wonders, which
//!   dominate object-store traffic, leave quickly without pushing out the hot set.
//!
//! Sizes are in blocks; keys are the cache's entry ids.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// An eviction policy.
pub trait Policy: Send + std::fmt::Debug {
    /// Its name in configuration and reports.
    fn name(&self) -> &'static str;

    /// A lookup of `key`: whether it is cached (a hit also counts as a use).
    fn touch(&mut self, key: u64) -> bool;

    /// Admits `key` of `size` blocks, returning the keys evicted to make room (never
    /// `key` itself unless it cannot fit at all, in which case it is not admitted and
    /// is returned alone).
    fn insert(&mut self, key: u64, size: u64) -> Vec<u64>;

    /// Forgets `key` (deleted, or found corrupt).
    fn remove(&mut self, key: u64);

    /// Blocks held by admitted entries.
    fn used(&self) -> u64;

    /// Entries held.
    fn len(&self) -> usize;

    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A policy by name: `lru` or `s3fifo`.
pub fn by_name(name: &str, capacity: u64) -> Option<Box<dyn Policy>> {
    match name {
        "lru" => Some(Box::new(Lru::new(capacity))),
        "s3fifo" => Some(Box::new(S3Fifo::new(capacity))),
        _ => None,
    }
}

/// Least recently used.
#[derive(Debug)]
pub struct Lru {
    capacity: u64,
    used: u64,
    clock: u64,
    entries: HashMap<u64, (u64, u64)>,
    order: BTreeMap<u64, u64>,
}

impl Lru {
    /// An empty LRU of `capacity` blocks.
    pub fn new(capacity: u64) -> Self {
        Self { capacity, used: 0, clock: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    fn bump(&mut self, key: u64) {
        if let Some((_, stamp)) = self.entries.get_mut(&key) {
            self.order.remove(stamp);
            self.clock += 1;
            *stamp = self.clock;
            self.order.insert(self.clock, key);
        }
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }

    fn touch(&mut self, key: u64) -> bool {
        let hit = self.entries.contains_key(&key);
        self.bump(key);
        hit
    }

    fn insert(&mut self, key: u64, size: u64) -> Vec<u64> {
        self.remove(key);
        if size > self.capacity {
            return vec![key];
        }
        let mut evicted = Vec::new();
        while self.used + size > self.capacity {
            let Some((_, victim)) = self.order.pop_first() else { break };
            if let Some((s, _)) = self.entries.remove(&victim) {
                self.used -= s;
            }
            evicted.push(victim);
        }
        self.clock += 1;
        self.entries.insert(key, (size, self.clock));
        self.order.insert(self.clock, key);
        self.used += size;
        evicted
    }

    fn remove(&mut self, key: u64) {
        if let Some((size, stamp)) = self.entries.remove(&key) {
            self.order.remove(&stamp);
            self.used -= size;
        }
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    freq: u8,
    queue: Queue,
}

/// S3-FIFO: small, main and ghost FIFOs.
#[derive(Debug)]
pub struct S3Fifo {
    capacity: u64,
    small_target: u64,
    small_used: u64,
    main_used: u64,
    entries: HashMap<u64, Entry>,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    ghost: VecDeque<u64>,
    ghosts: HashSet<u64>,
}

impl S3Fifo {
    /// An empty S3-FIFO of `capacity` blocks.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            small_target: (capacity / 10).max(1),
            small_used: 0,
            main_used: 0,
            entries: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            ghosts: HashSet::new(),
        }
    }

    fn remember(&mut self, key: u64) {
        if self.ghosts.insert(key) {
            self.ghost.push_back(key);
        }
        // As many ghosts as the main queue has entries (at least a few).
        while self.ghost.len() > self.main.len().max(16) {
            if let Some(old) = self.ghost.pop_front() {
                self.ghosts.remove(&old);
            }
        }
    }

    /// Evicts one entry (or moves one from small to main); `None` when empty.
    fn evict_one(&mut self, evicted: &mut Vec<u64>) -> Option<()> {
        if self.small_used >= self.small_target || self.main.is_empty() {
            while let Some(key) = self.small.pop_front() {
                // Entries removed meanwhile, or moved, are skipped.
                let Some(e) = self.entries.get_mut(&key).filter(|e| e.queue == Queue::Small) else { continue };
                self.small_used -= e.size;
                if e.freq > 0 {
                    e.queue = Queue::Main;
                    e.freq = 0;
                    self.main_used += e.size;
                    self.main.push_back(key);
                    return Some(());
                }
                self.entries.remove(&key);
                self.remember(key);
                evicted.push(key);
                return Some(());
            }
        }
        while let Some(key) = self.main.pop_front() {
            let Some(e) = self.entries.get_mut(&key).filter(|e| e.queue == Queue::Main) else { continue };
            if e.freq > 0 {
                e.freq -= 1;
                self.main.push_back(key);
                continue;
            }
            self.main_used -= e.size;
            self.entries.remove(&key);
            evicted.push(key);
            return Some(());
        }
        None
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    fn touch(&mut self, key: u64) -> bool {
        match self.entries.get_mut(&key) {
            Some(e) => {
                e.freq = (e.freq + 1).min(3);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: u64, size: u64) -> Vec<u64> {
        self.remove(key);
        if size > self.capacity {
            return vec![key];
        }
        let mut evicted = Vec::new();
        while self.small_used + self.main_used + size > self.capacity {
            if self.evict_one(&mut evicted).is_none() {
                break;
            }
        }
        let queue = if self.ghosts.remove(&key) { Queue::Main } else { Queue::Small };
        match queue {
            Queue::Small => {
                self.small_used += size;
                self.small.push_back(key);
            }
            Queue::Main => {
                self.main_used += size;
                self.main.push_back(key);
            }
        }
        self.entries.insert(key, Entry { size, freq: 0, queue });
        evicted
    }

    fn remove(&mut self, key: u64) {
        if let Some(e) = self.entries.remove(&key) {
            match e.queue {
                Queue::Small => self.small_used -= e.size,
                Queue::Main => self.main_used -= e.size,
            }
        }
    }

    fn used(&self) -> u64 {
        self.small_used + self.main_used
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A Zipf-distributed key stream over `keys` keys with exponent `s` (deterministic
/// for a seed), for the benchmark and the tests: key `i` is drawn with probability
/// proportional to `1 / (i + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    /// The distribution over `keys` keys.
    pub fn new(keys: usize, s: f64, seed: u64) -> Self {
        let mut cdf = Vec::with_capacity(keys);
        let mut total = 0.0;
        for i in 0..keys {
            total += 1.0 / ((i + 1) as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Self { cdf, state: seed | 1 }
    }

    /// The next key.
    pub fn next_key(&mut self) -> u64 {
        // xorshift64*: fast, deterministic, good enough for a workload.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let u = (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

/// Hit ratio of `policy` on `requests` lookups from `zipf`, admitting every miss
/// with `size(key)` blocks.
pub fn hit_ratio(policy: &mut dyn Policy, zipf: &mut Zipf, requests: usize, size: impl Fn(u64) -> u64) -> f64 {
    let mut hits = 0usize;
    for _ in 0..requests {
        let key = zipf.next_key();
        if policy.touch(key) {
            hits += 1;
        } else {
            policy.insert(key, size(key));
        }
    }
    hits as f64 / requests.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(capacity: u64) -> Vec<Box<dyn Policy>> {
        vec![Box::new(Lru::new(capacity)), Box::new(S3Fifo::new(capacity))]
    }

    #[test]
    fn capacity_is_never_exceeded_and_the_books_balance() {
        for mut p in policies(100) {
            let mut zipf = Zipf::new(2000, 0.9, 7);
            let mut held: HashSet<u64> = HashSet::new();
            let size = |k: u64| 1 + k % 7;
            for i in 0..50_000 {
                let key = zipf.next_key();
                if i % 97 == 0 {
                    p.remove(key);
                    held.remove(&key);
                    continue;
                }
                if !p.touch(key) {
                    assert!(!held.contains(&key), "{}: a held key missed", p.name());
                    for gone in p.insert(key, size(key)) {
                        assert!(held.remove(&gone), "{}: evicted {gone}, which it did not hold", p.name());
                    }
                    held.insert(key);
                } else {
                    assert!(held.contains(&key), "{}: hit on a key it does not hold", p.name());
                }
                assert!(p.used() <= 100, "{}: {} blocks used", p.name(), p.used());
                assert_eq!(p.used(), held.iter().map(|&k| size(k)).sum::<u64>(), "{}", p.name());
                assert_eq!(p.len(), held.len());
            }
        }
    }

    #[test]
    fn an_entry_larger_than_the_cache_is_refused() {
        for mut p in policies(10) {
            assert_eq!(p.insert(1, 11), vec![1]);
            assert!(p.is_empty() && p.used() == 0);
        }
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut p = Lru::new(3);
        for k in 1..=3 {
            p.insert(k, 1);
        }
        assert!(p.touch(1));
        assert_eq!(p.insert(4, 1), vec![2]);
    }

    #[test]
    fn s3fifo_keeps_the_hot_set_through_a_scan() {
        // Hot keys read repeatedly, then a long scan of keys read once: the scan
        // passes through the small queue and the hot keys stay.
        let mut p = S3Fifo::new(100);
        for _ in 0..3 {
            for k in 0..50 {
                if !p.touch(k) {
                    p.insert(k, 1);
                }
            }
        }
        for k in 1000..2000 {
            p.touch(k);
            p.insert(k, 1);
        }
        let kept = (0..50).filter(|&k| p.touch(k)).count();
        assert!(kept >= 45, "only {kept} of 50 hot keys survived the scan");
        let mut lru = Lru::new(100);
        for k in (0..50).chain(1000..2000) {
            lru.insert(k, 1);
        }
        assert_eq!((0..50).filter(|&k| lru.touch(k)).count(), 0, "LRU loses them all");
    }

    #[test]
    fn zipf_is_skewed_and_deterministic() {
        let mut a = Zipf::new(1000, 1.0, 3);
        let mut b = Zipf::new(1000, 1.0, 3);
        let draws: Vec<u64> = (0..10_000).map(|_| a.next_key()).collect();
        assert!(draws.iter().zip((0..10_000).map(|_| b.next_key())).all(|(x, y)| *x == y));
        let top = draws.iter().filter(|&&k| k < 10).count();
        assert!(top > 3000, "the 10 hottest of 1000 keys drew {top} of 10000");
        assert!(draws.iter().all(|&k| k < 1000));
    }
}

//! CPU accounting per engine: bytes processed and time spent inside the engine.
//!
//! Every engine handed out by [`crate::select::Offload::select`] is wrapped in a
//! metered twin that reads a clock before and after each call, on the thread that
//! runs the work (for the thread-pool AEAD engine: on the pool's threads). Two clocks
//! exist, chosen per meter ([`Clock`]):
//!
//! - the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), the default: it
//!   counts only cycles the thread really ran — user time and, for kernel TLS, the
//!   kernel's record crypto — and nothing while the thread was preempted, which on
//!   a loaded two-core machine otherwise inflates an engine's bill severalfold. It
//!   costs ~0.7 µs per read in these VMs, so it suits calls that move a segment, a
//!   record or a TLS read or write (≥ 16 KiB: ≤ 0.1 ns per byte);
//! - the x86 time-stamp counter (~13 ns to read), for engines called per 4 KiB block
//!   (AES-XTS of the cache), where the CPU clock would cost more than the work.
//!   Between its two reads it counts wall time, preemption included.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::aead::{AeadEngine, AeadKey, DataKey, EngineError, Nonce, SealError, Tag};
use crate::buf::AlignedBuf;
use crate::compress::{Algorithm, CompressError, Compressor};
use crate::crc::Crc32c;
use crate::gf::{GfKernel, Summed};
use crate::xts::{XtsEngine, XtsKey, XtsKeyMaterial};

/// A monotonic tick count: TSC cycles on x86-64, nanoseconds elsewhere.
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` exists on every x86-64 CPU and has no memory effects.
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: LazyLock<Instant> = LazyLock::new(Instant::now);
        START.elapsed().as_nanos() as u64
    }
}

/// Ticks per second, measured once against the monotonic clock.
pub fn ticks_per_second() -> f64 {
    static HZ: LazyLock<f64> = LazyLock::new(|| {
        let (t0, c0) = (Instant::now(), ticks());
        std::thread::sleep(Duration::from_millis(20));
        let (t1, c1) = (Instant::now(), ticks());
        c1.wrapping_sub(c0) as f64 / (t1 - t0).as_secs_f64()
    });
    *HZ
}

/// The calling thread's CPU time in nanoseconds.
#[inline]
pub fn thread_cpu_ns() -> u64 {
    cpu_time::ThreadTime::try_now().map_or(0, |t| t.as_duration().as_nanos() as u64)
}

/// How a meter measures the time spent in its engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The calling thread's CPU time: exact under preemption, ~0.7 µs per read.
    #[default]
    ThreadCpu,
    /// The time-stamp counter: ~13 ns per read, wall time between the reads.
    Tsc,
}

/// A reading of a meter's clock, taken before the work.
#[derive(Debug, Clone, Copy)]
pub struct Start(u64);

/// Counters of one engine.
#[derive(Debug, Default)]
pub struct Meter {
    clock: Clock,
    bytes: AtomicU64,
    ops: AtomicU64,
    /// Time-stamp-counter ticks (meters on [`Clock::Tsc`]).
    ticks: AtomicU64,
    /// Nanoseconds of thread CPU time (meters on [`Clock::ThreadCpu`]).
    cpu_ns: AtomicU64,
}

impl Meter {
    /// A meter reading `clock`.
    pub fn new(clock: Clock) -> Self {
        Self { clock, ..Self::default() }
    }

    /// Reads the clock before some work.
    #[inline]
    pub fn start(&self) -> Start {
        Start(match self.clock {
            Clock::ThreadCpu => thread_cpu_ns(),
            Clock::Tsc => ticks(),
        })
    }

    /// Charges the time since `start` and `bytes` (for work that is not one
    /// synchronous call, such as polling a stream). A call that moved no bytes
    /// charges its time but does not count as an operation.
    #[inline]
    pub fn finish(&self, start: Start, bytes: usize) {
        if bytes > 0 {
            self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            self.ops.fetch_add(1, Ordering::Relaxed);
        }
        match self.clock {
            Clock::ThreadCpu => self.cpu_ns.fetch_add(thread_cpu_ns().saturating_sub(start.0), Ordering::Relaxed),
            Clock::Tsc => self.ticks.fetch_add(ticks().wrapping_sub(start.0), Ordering::Relaxed),
        };
    }

    /// Runs `f`, charging its duration and `bytes` to this meter.
    #[inline]
    pub fn time<R>(&self, bytes: usize, f: impl FnOnce() -> R) -> R {
        let start = self.start();
        let out = f();
        self.finish(start, bytes);
        if bytes == 0 {
            self.ops.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Nanoseconds of this meter's clock since `start`.
    #[inline]
    pub fn elapsed_ns(&self, start: Start) -> u64 {
        match self.clock {
            Clock::ThreadCpu => thread_cpu_ns().saturating_sub(start.0),
            Clock::Tsc => (ticks().wrapping_sub(start.0) as f64 / ticks_per_second() * 1e9) as u64,
        }
    }

    /// Charges `bytes` and `ns` nanoseconds measured elsewhere (one operation).
    pub fn charge(&self, bytes: usize, ns: u64) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.cpu_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Current totals: bytes, operations, nanoseconds busy, TSC cycles busy
    /// (converted from nanoseconds for CPU-time meters, and the other way round).
    pub fn read(&self) -> (u64, u64, u64, u64) {
        let hz = ticks_per_second();
        let ticks = self.ticks.load(Ordering::Relaxed);
        let cpu_ns = self.cpu_ns.load(Ordering::Relaxed);
        let ns = cpu_ns + (ticks as f64 / hz * 1e9) as u64;
        let cycles = ticks + (cpu_ns as f64 * hz / 1e9) as u64;
        (self.bytes.load(Ordering::Relaxed), self.ops.load(Ordering::Relaxed), ns, cycles)
    }
}

/// One engine's totals, as reported by [`Meters::snapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EngineUsage {
    /// The job (`aead`, `gf`, `crc32c`, `xts`, `zstd`, `lz4`).
    pub job: &'static str,
    /// The engine doing it.
    pub engine: String,
    /// Bytes processed.
    pub bytes: u64,
    /// Calls.
    pub ops: u64,
    /// Time spent inside the engine, in nanoseconds.
    pub busy_ns: u64,
    /// Nanoseconds per byte (0 before any byte).
    pub ns_per_byte: f64,
    /// Time-stamp-counter cycles per byte (0 before any byte).
    pub cycles_per_byte: f64,
}

/// The meters of every engine in use.
#[derive(Default)]
pub struct Meters {
    entries: Mutex<Vec<(&'static str, String, Arc<Meter>)>>,
}

impl fmt::Debug for Meters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meters").finish_non_exhaustive()
    }
}

impl Meters {
    /// A new meter for `engine` doing `job`, on the thread CPU clock.
    pub fn register(&self, job: &'static str, engine: impl Into<String>) -> Arc<Meter> {
        self.register_with(job, engine, Clock::ThreadCpu)
    }

    /// A new meter for `engine` doing `job`, reading `clock`.
    pub fn register_with(&self, job: &'static str, engine: impl Into<String>, clock: Clock) -> Arc<Meter> {
        let meter = Arc::new(Meter::new(clock));
        if let Ok(mut entries) = self.entries.lock() {
            entries.push((job, engine.into(), meter.clone()));
        }
        meter
    }

    /// Totals of every registered engine.
    pub fn snapshot(&self) -> Vec<EngineUsage> {
        let entries = match self.entries.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        entries
            .into_iter()
            .map(|(job, engine, meter)| {
                let (bytes, ops, busy_ns, ticks) = meter.read();
                let per = |x: f64| if bytes == 0 { 0.0 } else { x / bytes as f64 };
                EngineUsage {
                    job,
                    engine,
                    bytes,
                    ops,
                    busy_ns,
                    ns_per_byte: per(busy_ns as f64),
                    cycles_per_byte: per(ticks as f64),
                }
            })
            .collect()
    }
}

/// An AEAD engine whose keys charge a meter.
#[derive(Debug)]
pub struct MeteredAead {
    inner: Arc<dyn AeadEngine>,
    meter: Arc<Meter>,
}

impl MeteredAead {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn AeadEngine>, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl AeadEngine for MeteredAead {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn key(&self, key: &DataKey) -> Result<Arc<dyn AeadKey>, EngineError> {
        Ok(Arc::new(MeteredKey { inner: self.inner.key(key)?, meter: self.meter.clone() }))
    }
}

struct MeteredKey {
    inner: Arc<dyn AeadKey>,
    meter: Arc<Meter>,
}

impl AeadKey for MeteredKey {
    fn seal(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, SealError> {
        self.meter.time(buf.len(), || self.inner.seal(nonce, aad, buf))
    }

    fn open(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), SealError> {
        self.meter.time(buf.len(), || self.inner.open(nonce, aad, buf, tag))
    }

    fn confidentiality_limit(&self) -> u64 {
        self.inner.confidentiality_limit()
    }
}

/// A GF kernel that charges a meter with the input bytes it reads.
#[derive(Debug)]
pub struct MeteredGf {
    inner: Arc<dyn GfKernel>,
    meter: Arc<Meter>,
}

impl MeteredGf {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn GfKernel>, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl GfKernel for MeteredGf {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn dot_prod(&self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        let bytes = inputs.iter().map(|r| r.len()).sum();
        self.meter.time(bytes, || self.inner.dot_prod(coeffs, inputs, outputs));
    }

    /// One reading of this meter's clock around the whole pass instead of two per
    /// block and row (~0.25 µs each in these VMs); the CRC's share of it is told
    /// apart by the time-stamp counter, which costs nothing to read, and charged to
    /// the CRC's meter.
    fn dot_prod_summed(
        &self,
        crc: &dyn Crc32c,
        coeffs: &[u8],
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        sums: Summed<'_>,
    ) {
        let bytes: usize = inputs.iter().map(|r| r.len()).sum();
        let Some((raw, crc_meter)) = crc.metered() else {
            return self.meter.time(bytes, || self.inner.dot_prod_summed(crc, coeffs, inputs, outputs, sums));
        };
        let summed = sums.rows() * inputs.first().map_or(0, |r| r.len());
        let timed = TickedCrc { inner: raw, ticks: AtomicU64::new(0) };
        let (start, t0) = (self.meter.start(), ticks());
        self.inner.dot_prod_summed(&timed, coeffs, inputs, outputs, sums);
        let (ns, all) = (self.meter.elapsed_ns(start), ticks().wrapping_sub(t0).max(1));
        let crc_ns = (ns as f64 * (timed.ticks.into_inner() as f64 / all as f64).min(1.0)) as u64;
        self.meter.charge(bytes, ns - crc_ns);
        crc_meter.charge(summed, crc_ns);
    }
}

/// A CRC32C engine counting the time-stamp-counter ticks spent in it.
#[derive(Debug)]
struct TickedCrc<'a> {
    inner: &'a dyn Crc32c,
    ticks: AtomicU64,
}

impl Crc32c for TickedCrc<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn append(&self, crc: u32, data: &[u8]) -> u32 {
        let t0 = ticks();
        let out = self.inner.append(crc, data);
        self.ticks.fetch_add(ticks().wrapping_sub(t0), Ordering::Relaxed);
        out
    }
}

/// A CRC32C engine that charges a meter.
#[derive(Debug)]
pub struct MeteredCrc {
    inner: Arc<dyn Crc32c>,
    meter: Arc<Meter>,
}

impl MeteredCrc {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Crc32c>, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl Crc32c for MeteredCrc {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn append(&self, crc: u32, data: &[u8]) -> u32 {
        self.meter.time(data.len(), || self.inner.append(crc, data))
    }

    fn metered(&self) -> Option<(&dyn Crc32c, &Meter)> {
        Some((self.inner.as_ref(), &self.meter))
    }
}

/// An XTS engine whose keys charge a meter.
#[derive(Debug)]
pub struct MeteredXts {
    inner: Arc<dyn XtsEngine>,
    meter: Arc<Meter>,
}

impl MeteredXts {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn XtsEngine>, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl XtsEngine for MeteredXts {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn key(&self, key: &XtsKeyMaterial) -> Arc<dyn XtsKey> {
        Arc::new(MeteredXtsKey { inner: self.inner.key(key), meter: self.meter.clone() })
    }
}

struct MeteredXtsKey {
    inner: Arc<dyn XtsKey>,
    meter: Arc<Meter>,
}

impl XtsKey for MeteredXtsKey {
    fn encrypt_sector(&self, sector: u128, buf: &mut [u8]) {
        self.meter.time(buf.len(), || self.inner.encrypt_sector(sector, buf));
    }

    fn decrypt_sector(&self, sector: u128, buf: &mut [u8]) {
        self.meter.time(buf.len(), || self.inner.decrypt_sector(sector, buf));
    }
}

/// A compressor that charges a meter with its input bytes.
#[derive(Debug)]
pub struct MeteredCompressor {
    inner: Arc<dyn Compressor>,
    meter: Arc<Meter>,
}

impl MeteredCompressor {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Compressor>, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl Compressor for MeteredCompressor {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }

    fn compress(&self, input: &[u8], out: &mut AlignedBuf) -> bool {
        self.meter.time(input.len(), || self.inner.compress(input, out))
    }

    fn decompress(&self, input: &[u8], out: &mut AlignedBuf, max_len: usize) -> Result<(), CompressError> {
        self.meter.time(input.len(), || self.inner.decompress(input, out, max_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::crc::PortableCrc;

    #[test]
    fn meters_count_bytes_and_time() {
        let meters = Meters::default();
        let crc = MeteredCrc::new(Arc::new(PortableCrc), meters.register("crc32c", "portable"));
        let data = vec![1u8; 1 << 20];
        for _ in 0..4 {
            crc.checksum(&data);
        }
        let usage = meters.snapshot();
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].bytes, 4 << 20);
        assert_eq!(usage[0].ops, 4);
        assert!(usage[0].busy_ns > 0);
        assert!(usage[0].ns_per_byte > 0.0 && usage[0].cycles_per_byte > 0.0);
    }

    #[test]
    fn a_summed_product_charges_each_meter_once() {
        let meters = Meters::default();
        let gf =
            MeteredGf::new(Arc::new(crate::engine::gf_portable::PortableKernel), meters.register("gf", "portable"));
        let crc = MeteredCrc::new(Arc::new(PortableCrc), meters.register("crc32c", "portable"));
        let rows: Vec<Vec<u8>> = (0..4).map(|j| vec![j as u8 + 1; 1 << 20]).collect();
        let inputs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let mut out = vec![vec![0u8; 1 << 20]; 2];
        let mut outputs: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        let mut sums = [0u32; 2];
        gf.dot_prod_summed(&crc, &[1; 8], &inputs, &mut outputs, Summed::Outputs(&mut sums));
        assert_eq!(sums, [PortableCrc.checksum(&out[0]), PortableCrc.checksum(&out[1])]);
        let usage = meters.snapshot();
        let of = |job: &str| usage.iter().find(|u| u.job == job).expect("meter").clone();
        let (g, c) = (of("gf"), of("crc32c"));
        assert_eq!((g.bytes, g.ops), (4 << 20, 1), "the product: its input bytes, one operation");
        assert_eq!((c.bytes, c.ops), (2 << 20, 1), "the sums: the summed rows' bytes, one operation");
        assert!(g.busy_ns > 0 && c.busy_ns > 0, "both charged time: {g:?} {c:?}");
    }
}

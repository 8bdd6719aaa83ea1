//! The cache proper: entries (one per fragment, by its opaque object name) stored
//! in protected blocks on a [`BlockDevice`], found through a persistent index, kept
//! within capacity by an eviction [`Policy`].
//!
//! # The index
//!
//! An append-only log next to the device (`<data>/cache.index` by default), one
//! record per line: the CRC32C of the JSON that follows, then the JSON. Records: a
//! tenant's XTS key sealed under the master key; an entry put (name, tenant,
//! generation, length, block runs); an entry dropped. Replayed at start (a torn or
//! corrupt line ends the replay, and is reported), then rewritten compactly.
//!
//! Data blocks are written before the index record that points at them and are not
//! flushed per entry: after a crash the index may name blocks that never reached
//! the device, and reading them fails the block check (generation and guard) — a
//! miss, never wrong bytes.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use codec::MasterKey;
use offload::Offload;
use offload::xts::XtsKeyMaterial;

use super::block::{BlockCipher, BlockError, PAYLOAD};
use super::device::BLOCK;
use super::device::{BlockDevice, Blocks};
use super::evict::Policy;

/// Why the cache failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The device or the index file.
    #[error("cache I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A tenant key could not be unsealed (another master key?).
    #[error("cache index: {0}")]
    Key(String),
    /// The entry does not fit in the cache at all.
    #[error("entry of {0} bytes is larger than the cache")]
    TooLarge(u64),
    /// The configuration names an unknown eviction policy.
    #[error("unknown eviction policy {0:?} (lru, s3fifo)")]
    Policy(String),
}

/// Counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Lookups that found the entry.
    pub hits: AtomicU64,
    /// Lookups that did not.
    pub misses: AtomicU64,
    /// Payload bytes served from the cache.
    pub bytes_read: AtomicU64,
    /// Payload bytes written into the cache.
    pub bytes_written: AtomicU64,
    /// Entries evicted to make room.
    pub evictions: AtomicU64,
    /// Blocks that failed their check (corrupt, torn, stale, foreign).
    pub integrity_errors: AtomicU64,
    /// Fragment bytes GETs read from locations instead.
    pub bytes_from_locations: AtomicU64,
}

/// Block runs `(first, count)`.
type Runs = Vec<(u64, u64)>;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum Record {
    Key { tenant: u32, sealed: String },
    Put { name: String, tenant: u32, generation: u64, len: u64, runs: Runs },
    Drop { name: String },
}

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    tenant: u32,
    generation: u64,
    len: u64,
    runs: Runs,
}

impl Entry {
    fn blocks(&self) -> u64 {
        self.runs.iter().map(|r| r.1).sum()
    }

    /// The LBA holding payload block `i` of the entry.
    fn lba(&self, mut i: u64) -> Option<u64> {
        for &(first, count) in &self.runs {
            if i < count {
                return Some(first + i);
            }
            i -= count;
        }
        None
    }
}

struct Index {
    entries: HashMap<String, Entry>,
    names: HashMap<u64, String>,
    next_id: u64,
    next_generation: u64,
    /// Free blocks, as runs keyed by first block.
    free: BTreeMap<u64, u64>,
    policy: Box<dyn Policy>,
    log: File,
    log_records: u64,
}

impl Index {
    /// Takes the entry `name` out of the index and the policy (a no-op there for an
    /// entry the policy just evicted) and gives its blocks back.
    fn release(&mut self, name: &str) -> Option<Entry> {
        let e = self.entries.remove(name)?;
        self.names.remove(&e.id);
        self.policy.remove(e.id);
        e.runs.iter().for_each(|&(f, n)| free_run(&mut self.free, f, n));
        Some(e)
    }
}

/// The fragment cache.
pub struct Cache {
    device: Arc<dyn BlockDevice>,
    index_path: PathBuf,
    ciphers: Mutex<HashMap<u32, Arc<BlockCipher>>>,
    sealed_keys: Mutex<HashMap<u32, String>>,
    index: Mutex<Index>,
    offload: Offload,
    master: Arc<MasterKey>,
    /// Counters.
    pub stats: CacheStats,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("device", &self.device).finish_non_exhaustive()
    }
}

fn key_context(tenant: u32) -> Vec<u8> {
    format!("skyshard cache tenant {tenant}").into_bytes()
}

fn line(record: &Record, crc: &dyn offload::crc::Crc32c) -> String {
    let json = serde_json::to_string(record).unwrap_or_default();
    format!("{:08x} {json}\n", crc.checksum(json.as_bytes()))
}

fn parse_line(text: &str, crc: &dyn offload::crc::Crc32c) -> Option<Record> {
    let (sum, json) = text.split_once(' ')?;
    let sum = u32::from_str_radix(sum, 16).ok()?;
    (crc.checksum(json.as_bytes()) == sum).then(|| serde_json::from_str(json).ok()).flatten()
}

/// Adds a free run, merging with neighbours.
fn free_run(free: &mut BTreeMap<u64, u64>, mut first: u64, mut count: u64) {
    if let Some((&prev, &n)) = free.range(..first).next_back()
        && prev + n == first
    {
        free.remove(&prev);
        first = prev;
        count += n;
    }
    if let Some(&n) = free.get(&(first + count)) {
        free.remove(&(first + count));
        count += n;
    }
    free.insert(first, count);
}

/// Takes `count` blocks, largest runs first so that entries stay in few pieces.
fn allocate(free: &mut BTreeMap<u64, u64>, mut count: u64) -> Option<Runs> {
    let total: u64 = free.values().sum();
    if total < count {
        return None;
    }
    let mut runs = Vec::new();
    while count > 0 {
        let (&first, &n) = free.iter().max_by_key(|(_, n)| **n)?;
        free.remove(&first);
        let take = n.min(count);
        if take < n {
            free.insert(first + take, n - take);
        }
        runs.push((first, take));
        count -= take;
    }
    Some(runs)
}

impl Cache {
    /// Opens the cache on `device` with its index at `index_path` (created if
    /// missing), evicting with `policy`. Tenant keys are sealed under `master`.
    pub fn open(
        device: Arc<dyn BlockDevice>,
        index_path: &Path,
        policy: Box<dyn Policy>,
        offload: Offload,
        master: Arc<MasterKey>,
    ) -> Result<Self, CacheError> {
        let crc = offload.crc32c.clone();
        let mut sealed_keys = HashMap::new();
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut torn = 0usize;
        if let Ok(f) = File::open(index_path) {
            for text in BufReader::new(f).lines() {
                let Some(record) = text.ok().and_then(|t| parse_line(&t, crc.as_ref())) else {
                    torn += 1;
                    break;
                };
                match record {
                    Record::Key { tenant, sealed } => {
                        sealed_keys.insert(tenant, sealed);
                    }
                    Record::Put { name, tenant, generation, len, runs } => {
                        entries.insert(name, Entry { id: 0, tenant, generation, len, runs });
                    }
                    Record::Drop { name } => {
                        entries.remove(&name);
                    }
                }
            }
        }
        if torn > 0 {
            tracing::warn!(index = %index_path.display(), "cache index ends in a torn record; replayed up to it");
        }
        let capacity = device.block_count();
        let mut free = BTreeMap::new();
        free_run(&mut free, 0, capacity);
        let mut index = Index {
            entries: HashMap::new(),
            names: HashMap::new(),
            next_id: 1,
            next_generation: 1,
            free,
            policy,
            log: File::create(index_path.with_extension("index.new"))?,
            log_records: 0,
        };
        // Admit the replayed entries whose blocks are free and inside the device.
        let mut replayed: Vec<(String, Entry)> = entries.into_iter().collect();
        replayed.sort_by_key(|(_, e)| e.generation);
        for (name, mut e) in replayed {
            index.next_generation = index.next_generation.max(e.generation + 1);
            let fits = e
                .runs
                .iter()
                .all(|&(first, n)| index.free.range(..=first).next_back().is_some_and(|(&f, &c)| f + c >= first + n));
            if !fits || e.blocks() != e.len.div_ceil(PAYLOAD as u64) || !sealed_keys.contains_key(&e.tenant) {
                continue;
            }
            for &(first, n) in &e.runs {
                take_exact(&mut index.free, first, n);
            }
            e.id = index.next_id;
            index.next_id += 1;
            for gone in index.policy.insert(e.id, e.blocks()) {
                if let Some(victim) = index.names.get(&gone).cloned() {
                    index.release(&victim);
                }
            }
            index.names.insert(e.id, name.clone());
            index.entries.insert(name, e);
        }
        let cache = Self {
            device,
            index_path: index_path.to_path_buf(),
            ciphers: Mutex::new(HashMap::new()),
            sealed_keys: Mutex::new(sealed_keys),
            index: Mutex::new(index),
            offload,
            master,
            stats: CacheStats::default(),
        };
        {
            let mut index = cache.lock();
            cache.compact(&mut index)?;
        }
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rewrites the index log with the current state only.
    fn compact(&self, index: &mut Index) -> Result<(), CacheError> {
        let crc = self.offload.crc32c.as_ref();
        let tmp = self.index_path.with_extension("index.new");
        let mut out = String::new();
        for (tenant, sealed) in self.sealed_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            out.push_str(&line(&Record::Key { tenant: *tenant, sealed: sealed.clone() }, crc));
        }
        for (name, e) in &index.entries {
            let r = Record::Put {
                name: name.clone(),
                tenant: e.tenant,
                generation: e.generation,
                len: e.len,
                runs: e.runs.clone(),
            };
            out.push_str(&line(&r, crc));
        }
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, &self.index_path)?;
        index.log = OpenOptions::new().append(true).open(&self.index_path)?;
        index.log_records = index.entries.len() as u64;
        Ok(())
    }

    fn append(&self, index: &mut Index, record: &Record) -> Result<(), CacheError> {
        index.log.write_all(line(record, self.offload.crc32c.as_ref()).as_bytes())?;
        index.log_records += 1;
        if index.log_records > 4 * index.entries.len() as u64 + 1024 {
            self.compact(index)?;
        }
        Ok(())
    }

    /// The block cipher of `tenant`, its key created (and logged, sealed) on first use.
    fn cipher(&self, tenant: u32) -> Result<Arc<BlockCipher>, CacheError> {
        let mut ciphers = self.ciphers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = ciphers.get(&tenant) {
            return Ok(c.clone());
        }
        let sealed = self.sealed_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&tenant).cloned();
        let material = match sealed {
            Some(hex_text) => {
                let bytes = hex::decode(&hex_text).map_err(|e| CacheError::Key(e.to_string()))?;
                let opened = self
                    .master
                    .open_secret(&bytes, &key_context(tenant))
                    .map_err(|e| CacheError::Key(format!("tenant {tenant}'s key does not unseal: {e}")))?;
                let raw: [u8; 64] =
                    opened.as_slice().try_into().map_err(|_| CacheError::Key("tenant key length".into()))?;
                XtsKeyMaterial::from_bytes(raw)
            }
            None => {
                let material = XtsKeyMaterial::generate(self.offload.random.as_ref())
                    .map_err(|_| CacheError::Key("the random source failed".into()))?;
                let sealed = self
                    .master
                    .seal_secret(material.expose_secret(), &key_context(tenant), self.offload.random.as_ref())
                    .map_err(|e| CacheError::Key(e.to_string()))?;
                let sealed = hex::encode(sealed);
                let mut index = self.lock();
                self.append(&mut index, &Record::Key { tenant, sealed: sealed.clone() })?;
                index.log.sync_data()?;
                self.sealed_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(tenant, sealed);
                material
            }
        };
        let c = Arc::new(BlockCipher::new(self.offload.xts.as_ref(), &material, self.offload.crc32c.clone(), tenant));
        ciphers.insert(tenant, c.clone());
        Ok(c)
    }

    /// Seals every tenant key again under the master key's current version (a
    /// rotation), logging each; returns how many were sealed again.
    pub fn reseal_keys(&self) -> Result<usize, CacheError> {
        let sealed: Vec<(u32, String)> = self
            .sealed_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(t, s)| (*t, s.clone()))
            .collect();
        let current = self.master.version();
        let mut n = 0;
        for (tenant, hex_text) in sealed {
            let bytes = hex::decode(&hex_text).map_err(|e| CacheError::Key(e.to_string()))?;
            if MasterKey::sealed_version(&bytes) == Some(current) {
                continue;
            }
            let opened = self
                .master
                .open_secret(&bytes, &key_context(tenant))
                .map_err(|e| CacheError::Key(format!("tenant {tenant}'s key does not unseal: {e}")))?;
            let again = self
                .master
                .seal_secret(&opened, &key_context(tenant), self.offload.random.as_ref())
                .map_err(|e| CacheError::Key(e.to_string()))?;
            let again = hex::encode(again);
            let mut index = self.lock();
            self.append(&mut index, &Record::Key { tenant, sealed: again.clone() })?;
            index.log.sync_data()?;
            self.sealed_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(tenant, again);
            n += 1;
        }
        Ok(n)
    }

    /// Blocks on the device.
    pub fn capacity_blocks(&self) -> u64 {
        self.device.block_count()
    }

    /// Blocks held by entries.
    pub fn used_blocks(&self) -> u64 {
        self.lock().policy.used()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` is cached (no use is counted).
    pub fn contains(&self, name: &str) -> bool {
        self.lock().entries.contains_key(name)
    }

    /// The tenant whose key protects entry `name`, if cached (no use is counted).
    pub fn tenant_of(&self, name: &str) -> Option<u32> {
        self.lock().entries.get(name).map(|e| e.tenant)
    }

    /// Stores `data` as the entry `name` of `tenant`, evicting as needed.
    pub fn insert(self: &Arc<Self>, tenant: u32, name: &str, data: &[u8]) -> Result<(), CacheError> {
        let mut filler = self.begin(tenant, name, data.len() as u64)?;
        filler.push(data)?;
        filler.commit()
    }

    /// Starts the entry `name` of `tenant`, `len` bytes long: room is made now (by
    /// eviction), the bytes come through [`Filler::push`], and the entry becomes
    /// visible at [`Filler::commit`]. A filler dropped before then gives its blocks
    /// back. An entry of the same name is replaced.
    pub fn begin(self: &Arc<Self>, tenant: u32, name: &str, len: u64) -> Result<Filler, CacheError> {
        let cipher = self.cipher(tenant)?;
        let need = len.div_ceil(PAYLOAD as u64).max(1);
        if need > self.device.block_count() {
            return Err(CacheError::TooLarge(len));
        }
        let mut index = self.lock();
        index.release(name);
        let id = index.next_id;
        index.next_id += 1;
        for victim in index.policy.insert(id, need) {
            let Some(n) = index.names.get(&victim).cloned() else { continue };
            if index.release(&n).is_some() {
                self.append(&mut index, &Record::Drop { name: n })?;
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Some(runs) = allocate(&mut index.free, need) else {
            index.policy.remove(id);
            return Err(CacheError::TooLarge(len));
        };
        let generation = index.next_generation;
        index.next_generation += 1;
        drop(index);
        Ok(Filler {
            cache: self.clone(),
            cipher,
            name: name.to_string(),
            entry: Some(Entry { id, tenant, generation, len, runs }),
            pending: Vec::with_capacity(PAYLOAD),
            next_block: 0,
            received: 0,
            batch: Vec::new(),
        })
    }

    /// Releases the blocks of an entry that never made it into the index.
    fn forget_entry(&self, entry: &Entry) {
        let mut index = self.lock();
        index.policy.remove(entry.id);
        entry.runs.iter().for_each(|&(f, n)| free_run(&mut index.free, f, n));
    }

    /// Drops `name` (deleted, or found bad).
    pub fn remove(&self, name: &str) {
        let mut index = self.lock();
        if index.release(name).is_some() {
            let _ = self.append(&mut index, &Record::Drop { name: name.to_string() });
        }
    }

    /// The entry's length, counting a hit or a miss.
    pub fn lookup(&self, name: &str) -> Option<u64> {
        let mut index = self.lock();
        let found = index.entries.get(name).map(|e| (e.id, e.len));
        match found {
            Some((id, len)) => {
                index.policy.touch(id);
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Some(len)
            }
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Reads `range` of entry `name`. `Ok(None)` when it is not cached, or when a
    /// block fails its check — then the entry is dropped and the error counted: the
    /// caller reads from a location instead.
    pub fn read(&self, name: &str, range: Range<u64>) -> Result<Option<Vec<u8>>, CacheError> {
        let entry = match self.lock().entries.get(name) {
            Some(e) if range.start <= range.end && range.end <= e.len => e.clone(),
            _ => return Ok(None),
        };
        let cipher = self.cipher(entry.tenant)?;
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        let (first, last) = (range.start / PAYLOAD as u64, range.end.div_ceil(PAYLOAD as u64));
        let mut i = first;
        while i < last {
            let Some(lba) = entry.lba(i) else { return Ok(None) };
            // Extend over consecutive blocks of the same run, up to 64 at a time.
            let mut n = 1;
            while i + n < last && n < 64 && entry.lba(i + n) == Some(lba + n) {
                n += 1;
            }
            let mut buf = Blocks::zeroed(n as usize);
            self.device.read_blocks(lba, &mut buf)?;
            for j in 0..n {
                let payload = match cipher.open(lba + j, entry.generation, buf.block_mut(j as usize)) {
                    Ok(p) => p,
                    Err(e) => {
                        self.bad_block(name, &e);
                        return Ok(None);
                    }
                };
                let block_start = (i + j) * PAYLOAD as u64;
                let from = range.start.saturating_sub(block_start).min(PAYLOAD as u64) as usize;
                let to = (range.end - block_start).min(PAYLOAD as u64) as usize;
                out.extend_from_slice(&payload[from..to]);
            }
            i += n;
        }
        self.stats.bytes_read.fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(Some(out))
    }

    fn bad_block(&self, name: &str, e: &BlockError) {
        self.stats.integrity_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "cache block failed its check; entry dropped, reading from a location");
        self.remove(name);
    }

    /// Makes everything written so far durable (device and index).
    pub fn flush(&self) -> Result<(), CacheError> {
        self.device.flush()?;
        self.lock().log.sync_data()?;
        Ok(())
    }
}

/// An entry being written: see [`Cache::begin`].
pub struct Filler {
    cache: Arc<Cache>,
    cipher: Arc<BlockCipher>,
    name: String,
    entry: Option<Entry>,
    pending: Vec<u8>,
    next_block: u64,
    received: u64,
    /// Sealed blocks not yet written: `(lba, block)`, written in runs of up to 64.
    batch: Vec<(u64, Box<[u8; BLOCK]>)>,
}

impl std::fmt::Debug for Filler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filler").field("received", &self.received).finish_non_exhaustive()
    }
}

impl Filler {
    /// Appends bytes of the entry.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), CacheError> {
        let Some(entry) = &self.entry else { return Ok(()) };
        if self.received + data.len() as u64 > entry.len {
            return Err(CacheError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "more bytes than announced",
            )));
        }
        self.received += data.len() as u64;
        while !data.is_empty() {
            let take = (PAYLOAD - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == PAYLOAD {
                self.seal_pending()?;
            }
        }
        Ok(())
    }

    fn seal_pending(&mut self) -> Result<(), CacheError> {
        let Some(entry) = &self.entry else { return Ok(()) };
        let Some(lba) = entry.lba(self.next_block) else {
            return Err(CacheError::Io(std::io::Error::other("entry overflows its blocks")));
        };
        let mut block = Box::new([0u8; BLOCK]);
        self.cipher.seal(lba, entry.generation, &self.pending, &mut block);
        self.pending.clear();
        self.next_block += 1;
        if self.batch.last().is_some_and(|(last, _)| last + 1 != lba) {
            self.write_batch()?;
        }
        self.batch.push((lba, block));
        if self.batch.len() == 64 {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), CacheError> {
        let Some(&(first, _)) = self.batch.first() else { return Ok(()) };
        let mut buf = Blocks::zeroed(self.batch.len());
        for (i, (_, b)) in self.batch.iter().enumerate() {
            buf.block_mut(i).copy_from_slice(&b[..]);
        }
        self.batch.clear();
        self.cache.device.write_blocks(first, &buf)?;
        Ok(())
    }

    /// Writes what remains and makes the entry visible. Fails (and gives the blocks
    /// back) if fewer bytes came than announced.
    pub fn commit(mut self) -> Result<(), CacheError> {
        let len = self.entry.as_ref().map_or(0, |e| e.len);
        if self.received != len {
            return Err(CacheError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "entry incomplete")));
        }
        if !self.pending.is_empty() || self.next_block == 0 {
            self.seal_pending()?;
        }
        self.write_batch()?;
        let Some(entry) = self.entry.take() else { return Ok(()) };
        let cache = self.cache.clone();
        let mut index = cache.lock();
        let record = Record::Put {
            name: self.name.clone(),
            tenant: entry.tenant,
            generation: entry.generation,
            len: entry.len,
            runs: entry.runs.clone(),
        };
        if let Err(e) = cache.append(&mut index, &record) {
            drop(index);
            cache.forget_entry(&entry);
            return Err(e);
        }
        // Another filler of the same name may have committed meanwhile: keep the newer.
        index.release(&self.name);
        index.names.insert(entry.id, self.name.clone());
        index.entries.insert(self.name.clone(), entry);
        cache.stats.bytes_written.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.cache.forget_entry(&entry);
        }
    }
}

/// Removes exactly `first..first+n` from the free runs (it must be inside one).
fn take_exact(free: &mut BTreeMap<u64, u64>, first: u64, n: u64) {
    if let Some((&f, &c)) = free.range(..=first).next_back()
        && f + c >= first + n
    {
        free.remove(&f);
        if first > f {
            free.insert(f, first - f);
        }
        if f + c > first + n {
            free.insert(first + n, f + c - first - n);
        }
    }
}

#[cfg(test)]
mod tests {
    use offload::aead::DataKey;

    use super::super::device::FileDevice;
    use super::super::evict::by_name;
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        crate::testing::scratch_dir(&format!("cache-{name}"))
    }

    fn offload() -> Offload {
        Offload::select(&offload::OffloadConfig::default(), &offload::probe()).expect("select").0
    }

    fn master(byte: u8) -> Arc<MasterKey> {
        Arc::new(MasterKey::new(offload().aead.as_ref(), &DataKey::from_bytes([byte; 32]), 1).expect("master"))
    }

    fn open(dir: &Path, blocks: u64, master_byte: u8) -> Result<Arc<Cache>, CacheError> {
        let device = Arc::new(FileDevice::open(&dir.join("cache.img"), blocks * BLOCK as u64).expect("device"));
        Cache::open(
            device,
            &dir.join("cache.index"),
            by_name("s3fifo", blocks).expect("policy"),
            offload(),
            master(master_byte),
        )
        .map(Arc::new)
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn entries_read_back_by_range_and_survive_a_restart() {
        let dir = scratch("restart");
        let cache = open(&dir, 64, 1).expect("open");
        let a = data(3 * PAYLOAD + 100, 1);
        cache.insert(0, "frag-a", &a).expect("insert");
        cache.insert(0, "frag-b", b"tiny").expect("insert");
        assert_eq!(cache.lookup("frag-a"), Some(a.len() as u64));
        assert_eq!(cache.read("frag-a", 0..a.len() as u64).expect("read"), Some(a.clone()));
        let mid = (PAYLOAD as u64 - 10)..(2 * PAYLOAD as u64 + 7);
        assert_eq!(
            cache.read("frag-a", mid.clone()).expect("read").as_deref(),
            Some(&a[mid.start as usize..mid.end as usize])
        );
        assert_eq!(cache.read("frag-a", 0..a.len() as u64 + 1).expect("read"), None, "past the end");
        assert_eq!(cache.read("nope", 0..1).expect("read"), None);
        cache.flush().expect("flush");
        drop(cache);
        let cache = open(&dir, 64, 1).expect("reopen");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.read("frag-a", 0..a.len() as u64).expect("read"), Some(a));
        assert_eq!(cache.read("frag-b", 0..4).expect("read").as_deref(), Some(&b"tiny"[..]));
        // Under another master key the tenant key does not unseal: a clear error.
        drop(cache);
        let other = open(&dir, 64, 2).expect("reopen");
        assert!(matches!(other.read("frag-b", 0..4), Err(CacheError::Key(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_filler_takes_any_chunking_and_gives_its_blocks_back_unless_committed() {
        let dir = scratch("filler");
        let cache = open(&dir, 16, 1).expect("open");
        let a = data(5 * PAYLOAD + 11, 5);
        let mut f = cache.begin(0, "frag-a", a.len() as u64).expect("begin");
        for chunk in a.chunks(1000) {
            f.push(chunk).expect("push");
        }
        assert!(!cache.contains("frag-a"), "invisible until committed");
        f.commit().expect("commit");
        assert_eq!(cache.read("frag-a", 0..a.len() as u64).expect("read"), Some(a.clone()));
        let used = cache.used_blocks();
        let mut g = cache.begin(0, "frag-b", 100).expect("begin");
        g.push(&[1; 50]).expect("push");
        assert!(g.push(&[1; 51]).is_err(), "more than announced");
        drop(g);
        assert_eq!(cache.used_blocks(), used, "a dropped filler gives its blocks back");
        let mut h = cache.begin(0, "frag-c", 100).expect("begin");
        h.push(&[1; 99]).expect("push");
        assert!(h.commit().is_err(), "incomplete");
        assert!(!cache.contains("frag-c"));
        assert_eq!(cache.used_blocks(), used);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_blocks_are_misses_that_are_counted_and_dropped() {
        let dir = scratch("corrupt");
        let cache = open(&dir, 16, 1).expect("open");
        let a = data(2 * PAYLOAD, 3);
        cache.insert(0, "frag-a", &a).expect("insert");
        cache.flush().expect("flush");
        // Flip one byte of every block in the image file.
        let img = dir.join("cache.img");
        let mut bytes = std::fs::read(&img).expect("image");
        for b in bytes.chunks_mut(BLOCK) {
            b[100] ^= 1;
        }
        std::fs::write(&img, &bytes).expect("write image");
        assert_eq!(cache.read("frag-a", 0..10).expect("read"), None);
        assert_eq!(cache.stats.integrity_errors.load(Ordering::Relaxed), 1);
        assert!(!cache.contains("frag-a"), "the bad entry is dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_cache_never_exceeds_its_size_and_a_torn_index_tail_is_ignored() {
        let dir = scratch("size");
        let cache = open(&dir, 32, 1).expect("open");
        for i in 0..200u32 {
            let len = (i as usize % 5 + 1) * PAYLOAD - 3;
            cache.insert(0, &format!("frag-{i}"), &data(len, i as u8)).expect("insert");
            assert!(cache.used_blocks() <= 32);
        }
        assert!(cache.stats.evictions.load(Ordering::Relaxed) > 0);
        assert!(matches!(cache.insert(0, "huge", &data(33 * PAYLOAD, 0)), Err(CacheError::TooLarge(_))));
        // Every entry still held reads back exactly.
        let held: Vec<u32> = (0..200).filter(|i| cache.contains(&format!("frag-{i}"))).collect();
        assert!(!held.is_empty());
        for &i in &held {
            let len = (i as usize % 5 + 1) * PAYLOAD - 3;
            let got = cache.read(&format!("frag-{i}"), 0..len as u64).expect("read");
            assert_eq!(got, Some(data(len, i as u8)), "frag-{i}");
        }
        cache.flush().expect("flush");
        drop(cache);
        // A torn last line of the index.
        let index = dir.join("cache.index");
        let mut text = std::fs::read_to_string(&index).expect("index");
        text.push_str("0badc0de {\"t\":\"put\",\"name\":\"half");
        std::fs::write(&index, text).expect("write index");
        let cache = open(&dir, 32, 1).expect("reopen");
        assert_eq!(cache.len(), held.len());
        assert!(cache.used_blocks() <= 32);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The local fragment cache on block storage (a file, or a raw block device such as
//! an NVMe namespace, local or over NVMe/TCP).
//!
//! Its pieces, bottom up:
//!
//! - [`device`]: whole 4 KiB blocks at aligned offsets from aligned memory, with
//!   `O_DIRECT` where the file system allows it;
//! - [`block`]: the block format — AES-256-XTS under the tenant's key with the block
//!   address as tweak, and a CRC32C guard binding payload, tenant, generation and
//!   address, so that corrupt, torn, misdirected, foreign or stale blocks are misses;
//! - [`evict`]: the eviction policies (LRU and S3-FIFO) and the skewed workload they
//!   are compared on;
//! - [`store`]: the cache itself — entries (one per fragment) in protected blocks,
//!   a persistent index, eviction within capacity, per-tenant keys sealed under the
//!   master key, and counters;
//! - [`layer`]: the cache in the data path, as a layer around the fragment store.
//!
//! The cache holds coded ciphertext fragments only — never plaintext, never names.

pub mod block;
pub mod device;
pub mod evict;
pub mod layer;
pub mod store;

//! The cache's block format: what protects each 4 KiB block on the device, in the
//! manner of NVMe protection information plus storage encryption.
//!
//! ```text
//! plaintext:  payload (4080 bytes) | guard: CRC32C (4) | tenant (4) | generation (8)
//! on disk:    AES-256-XTS(tenant's key, tweak = LBA) of the 4096 bytes above
//! ```
//!
//! The guard is the CRC32C of the payload, the tenant, the generation and the LBA,
//! so a block read back is accepted only if it decrypts (under this tenant's key, at
//! this address) to the bytes written there for this generation. A flipped bit, a
//! torn or misdirected write, a block of another tenant (another key: the decryption
//! is noise) or a stale block of an earlier generation is a miss, never data. Both
//! engines come from the offload layer, so their CPU is metered as `xts` and
//! `crc32c`.

use std::sync::Arc;

use offload::crc::Crc32c;
use offload::xts::{XtsEngine, XtsKey, XtsKeyMaterial};

use super::device::BLOCK;

/// Bytes of protection information at the end of each block.
pub const TRAILER: usize = 16;
/// Payload bytes per block.
pub const PAYLOAD: usize = BLOCK - TRAILER;

/// Why a block read back is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The guard does not match: corrupt, torn, misplaced, or another tenant's.
    #[error("cache block {lba}: integrity check failed")]
    Integrity {
        /// Where.
        lba: u64,
    },
    /// Intact, but written for another tenant (same key: a bookkeeping error).
    #[error("cache block {lba}: belongs to tenant {found}, not {expected}")]
    Foreign {
        /// Where.
        lba: u64,
        /// The tenant in the block.
        found: u32,
        /// The tenant asked for.
        expected: u32,
    },
    /// Intact, but of another generation (an older write to the same address).
    #[error("cache block {lba}: generation {found}, expected {expected}")]
    Stale {
        /// Where.
        lba: u64,
        /// The generation in the block.
        found: u64,
        /// The generation the index expects.
        expected: u64,
    },
}

/// Seals and opens blocks of one tenant.
pub struct BlockCipher {
    xts: Arc<dyn XtsKey>,
    crc: Arc<dyn Crc32c>,
    tenant: u32,
}

impl std::fmt::Debug for BlockCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCipher").field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

impl BlockCipher {
    /// A cipher for `tenant` with its key `material`, on the offload engines given.
    pub fn new(xts: &dyn XtsEngine, material: &XtsKeyMaterial, crc: Arc<dyn Crc32c>, tenant: u32) -> Self {
        Self { xts: xts.key(material), crc, tenant }
    }

    fn guard(&self, lba: u64, block: &[u8; BLOCK]) -> u32 {
        let crc = self.crc.append(0, &block[..PAYLOAD]);
        let crc = self.crc.append(crc, &block[PAYLOAD + 4..]);
        self.crc.append(crc, &lba.to_le_bytes())
    }

    /// Writes `payload` (at most [`PAYLOAD`] bytes; the rest is zero) as the block
    /// for `lba` and `generation` into `out`, encrypted.
    ///
    /// # Panics
    /// If `payload` is longer than [`PAYLOAD`]: a caller's bug.
    pub fn seal(&self, lba: u64, generation: u64, payload: &[u8], out: &mut [u8; BLOCK]) {
        assert!(payload.len() <= PAYLOAD, "a cache block holds {PAYLOAD} bytes");
        out[..payload.len()].copy_from_slice(payload);
        out[payload.len()..PAYLOAD].fill(0);
        out[PAYLOAD + 4..PAYLOAD + 8].copy_from_slice(&self.tenant.to_le_bytes());
        out[PAYLOAD + 8..].copy_from_slice(&generation.to_le_bytes());
        let guard = self.guard(lba, out);
        out[PAYLOAD..PAYLOAD + 4].copy_from_slice(&guard.to_le_bytes());
        self.xts.encrypt_sector(u128::from(lba), out);
    }

    /// Decrypts and checks the block read from `lba`, which the index says holds
    /// `generation`; returns its payload.
    pub fn open<'a>(&self, lba: u64, generation: u64, block: &'a mut [u8; BLOCK]) -> Result<&'a [u8], BlockError> {
        self.xts.decrypt_sector(u128::from(lba), block);
        let stored = u32::from_le_bytes(block[PAYLOAD..PAYLOAD + 4].try_into().unwrap_or_default());
        if stored != self.guard(lba, block) {
            return Err(BlockError::Integrity { lba });
        }
        let tenant = u32::from_le_bytes(block[PAYLOAD + 4..PAYLOAD + 8].try_into().unwrap_or_default());
        if tenant != self.tenant {
            return Err(BlockError::Foreign { lba, found: tenant, expected: self.tenant });
        }
        let found = u64::from_le_bytes(block[PAYLOAD + 8..].try_into().unwrap_or_default());
        if found != generation {
            return Err(BlockError::Stale { lba, found, expected: generation });
        }
        Ok(&block[..PAYLOAD])
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn cipher(tenant: u32, key: u8) -> BlockCipher {
        let caps = offload::probe();
        let xts = offload::xts_engine("batched", &caps).expect("batched XTS");
        let crc = offload::crc32c_engine("portable", &caps).expect("portable CRC32C");
        BlockCipher::new(xts.as_ref(), &XtsKeyMaterial::from_bytes([key; 64]), crc, tenant)
    }

    fn payload() -> Vec<u8> {
        (0..PAYLOAD).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn a_sealed_block_opens_to_its_payload_and_hides_it() {
        let c = cipher(1, 9);
        let mut block = [0u8; BLOCK];
        c.seal(42, 3, &payload(), &mut block);
        let same = block.iter().zip(payload()).filter(|(a, b)| **a == *b).count();
        assert!(same < 64, "the block on disk looks like its plaintext ({same} equal bytes)");
        assert_eq!(c.open(42, 3, &mut block).expect("open"), &payload()[..]);
        let mut short = [0u8; BLOCK];
        c.seal(5, 1, b"tail", &mut short);
        let got = c.open(5, 1, &mut short).expect("open");
        assert_eq!((&got[..4], got[4..].iter().all(|&b| b == 0)), (&b"tail"[..], true));
    }

    #[test]
    fn every_kind_of_bad_block_is_refused() {
        let c = cipher(1, 9);
        let mut sealed = [0u8; BLOCK];
        c.seal(42, 3, &payload(), &mut sealed);
        // A flipped bit anywhere.
        for at in [0, 1000, PAYLOAD - 1, PAYLOAD, BLOCK - 1] {
            let mut b = sealed;
            b[at] ^= 0x10;
            assert_eq!(c.open(42, 3, &mut b), Err(BlockError::Integrity { lba: 42 }), "bit at {at}");
        }
        // Read from the wrong address (misdirected write).
        let mut b = sealed;
        assert_eq!(c.open(43, 3, &mut b), Err(BlockError::Integrity { lba: 43 }));
        // Another tenant's key.
        let mut b = sealed;
        assert_eq!(cipher(2, 8).open(42, 3, &mut b), Err(BlockError::Integrity { lba: 42 }));
        // Same key, another tenant id.
        let mut b = sealed;
        assert_eq!(cipher(2, 9).open(42, 3, &mut b), Err(BlockError::Foreign { lba: 42, found: 1, expected: 2 }));
        // An older generation at that address.
        let mut b = sealed;
        assert_eq!(c.open(42, 4, &mut b), Err(BlockError::Stale { lba: 42, found: 3, expected: 4 }));
        // Never-written (zeroed) space.
        let mut zero = [0u8; BLOCK];
        assert!(c.open(7, 0, &mut zero).is_err());
    }
}

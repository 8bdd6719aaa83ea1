//! AES-256-XTS with the whole sector's tweaks computed up front and the AES rounds
//! run on many blocks at once.
//!
//! The `xts-mode` crate encrypts one 16-byte block per call into the `aes` crate, so
//! AES-NI never has more than one block in flight: 0.4 GB/s here. XTS blocks of one
//! sector are independent once their tweaks are known (the sector's encrypted tweak
//! times α^j in GF(2^128)), so this engine XORs a batch of blocks with their tweaks,
//! hands the batch to `aes`'s `encrypt_blocks` (which pipelines AES-NI over eight
//! blocks), and XORs again. Sectors that are not a multiple of 16 bytes (ciphertext
//! stealing) go to `xts-mode`; the cache's 4 KiB blocks never do.

use std::sync::Arc;

use aes::cipher::{BlockDecrypt as _, BlockEncrypt as _, KeyInit as _};
use aes::{Aes256, Block};

use crate::xts::{XTS_KEY_LEN, XtsEngine, XtsKey, XtsKeyMaterial};

/// Blocks per batch: 512 bytes, enough to keep AES-NI's pipeline full.
const BATCH: usize = 32;

/// Batched AES-256-XTS over the `aes` crate (AES-NI where the CPU has it).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BatchedXts;

impl XtsEngine for BatchedXts {
    fn name(&self) -> &'static str {
        "batched"
    }

    fn key(&self, key: &XtsKeyMaterial) -> Arc<dyn XtsKey> {
        let bytes: &[u8; XTS_KEY_LEN] = key.expose_secret();
        let data = Aes256::new(bytes[..32].into());
        let tweak = Aes256::new(bytes[32..].into());
        let stealing = xts_mode::Xts128::new(data.clone(), tweak.clone());
        Arc::new(BatchedKey { data, tweak, stealing: Box::new(stealing) })
    }
}

struct BatchedKey {
    data: Aes256,
    tweak: Aes256,
    stealing: Box<xts_mode::Xts128<Aes256>>,
}

/// Multiplies a tweak by α in GF(2^128), little-endian as IEEE 1619 orders it.
#[inline]
fn double(t: u128) -> u128 {
    (t << 1) ^ ((t >> 127) * 0x87)
}

impl BatchedKey {
    fn first_tweak(&self, sector: u128) -> u128 {
        let mut t = Block::from(sector.to_le_bytes());
        self.tweak.encrypt_block(&mut t);
        u128::from_le_bytes(t.into())
    }

    fn apply(&self, sector: u128, buf: &mut [u8], encrypt: bool) {
        let mut t = self.first_tweak(sector);
        let mut blocks = [Block::default(); BATCH];
        let mut tweaks = [0u128; BATCH];
        for chunk in buf.chunks_mut(16 * BATCH) {
            let n = chunk.len() / 16;
            for (j, (block, bytes)) in blocks.iter_mut().zip(chunk.chunks_exact(16)).enumerate() {
                tweaks[j] = t;
                let x = u128::from_le_bytes(bytes.try_into().unwrap_or_default()) ^ t;
                *block = Block::from(x.to_le_bytes());
                t = double(t);
            }
            if encrypt {
                self.data.encrypt_blocks(&mut blocks[..n]);
            } else {
                self.data.decrypt_blocks(&mut blocks[..n]);
            }
            for (j, (block, bytes)) in blocks[..n].iter().zip(chunk.chunks_exact_mut(16)).enumerate() {
                let x = u128::from_le_bytes((*block).into()) ^ tweaks[j];
                bytes.copy_from_slice(&x.to_le_bytes());
            }
        }
    }
}

impl XtsKey for BatchedKey {
    fn encrypt_sector(&self, sector: u128, buf: &mut [u8]) {
        if buf.len().is_multiple_of(16) && !buf.is_empty() {
            self.apply(sector, buf, true);
        } else {
            self.stealing.encrypt_sector(buf, xts_mode::get_tweak_default(sector));
        }
    }

    fn decrypt_sector(&self, sector: u128, buf: &mut [u8]) {
        if buf.len().is_multiple_of(16) && !buf.is_empty() {
            self.apply(sector, buf, false);
        } else {
            self.stealing.decrypt_sector(buf, xts_mode::get_tweak_default(sector));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::check_xts;
    use crate::engine::rustcrypto::RustCryptoXts;

    #[test]
    fn passes_ieee_1619_and_matches_xts_mode_on_every_length() {
        check_xts(&BatchedXts).unwrap_or_else(|f| panic!("{f}"));
        let material = XtsKeyMaterial::from_bytes(std::array::from_fn(|i| (i * 13 + 5) as u8));
        let (ours, reference) = (BatchedXts.key(&material), RustCryptoXts.key(&material));
        for len in [16usize, 32, 48, 500, 512, 528, 4096, 4100, 65536] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            for sector in [0u128, 1, 77, u64::MAX as u128 + 3] {
                let (mut a, mut b) = (data.clone(), data.clone());
                ours.encrypt_sector(sector, &mut a);
                reference.encrypt_sector(sector, &mut b);
                assert_eq!(a, b, "len {len} sector {sector}");
                ours.decrypt_sector(sector, &mut a);
                assert_eq!(a, data, "len {len} sector {sector} round trip");
            }
        }
    }
}

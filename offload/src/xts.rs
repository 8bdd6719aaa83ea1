//! AES-256-XTS, the storage cipher of the fragment cache: one key per tenant, one
//! tweak per block, no expansion, so a 4 KiB cache block stays 4 KiB on disk.

use std::fmt;
use std::sync::Arc;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::random::{RandomError, SecureRandom};

/// Bytes of XTS key material: a 256-bit data key followed by a 256-bit tweak key.
pub const XTS_KEY_LEN: usize = 64;

/// Key material for AES-256-XTS: zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct XtsKeyMaterial([u8; XTS_KEY_LEN]);

impl XtsKeyMaterial {
    /// Wraps raw key bytes (data key, then tweak key).
    pub fn from_bytes(bytes: [u8; XTS_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Fresh random key material. The two halves are independent, as IEEE 1619 requires.
    pub fn generate(random: &dyn SecureRandom) -> Result<Self, RandomError> {
        let mut key = Self([0; XTS_KEY_LEN]);
        random.fill(&mut key.0)?;
        Ok(key)
    }

    /// The key bytes. Handle with care.
    pub fn expose_secret(&self) -> &[u8; XTS_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for XtsKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XtsKeyMaterial(<redacted>)")
    }
}

/// An AES-256-XTS implementation.
pub trait XtsEngine: fmt::Debug + Send + Sync {
    /// Short stable name.
    fn name(&self) -> &'static str;

    /// A keyed instance.
    fn key(&self, key: &XtsKeyMaterial) -> Arc<dyn XtsKey>;
}

/// AES-256-XTS under one key. Sectors are at least 16 bytes long; a sector that is
/// not a multiple of 16 uses ciphertext stealing. The tweak is the sector number,
/// little-endian, as IEEE 1619 specifies.
pub trait XtsKey: Send + Sync {
    /// Encrypts one sector in place.
    ///
    /// # Panics
    /// If `buf` is shorter than 16 bytes.
    fn encrypt_sector(&self, sector: u128, buf: &mut [u8]);

    /// Decrypts one sector in place.
    ///
    /// # Panics
    /// If `buf` is shorter than 16 bytes.
    fn decrypt_sector(&self, sector: u128, buf: &mut [u8]);
}

//! AES-256-GCM: the algorithm ([`AeadEngine`]) and a keyed instance ([`AeadKey`]).
//!
//! Operations are in place with a detached tag, so a segment is sealed inside the
//! buffer that will be coded, and the tag is appended by the caller where the format
//! wants it. Failures are opaque ([`SealError`] carries nothing): a caller learns that
//! a ciphertext did not authenticate, never why.

use std::fmt;
use std::sync::Arc;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::random::{RandomError, SecureRandom};

/// Bytes in an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Bytes in a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes in a GCM authentication tag.
pub const TAG_LEN: usize = 16;

/// A 256-bit symmetric key: zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// Wraps raw key bytes (taking ownership; the caller should zeroize its copy).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh key from `random`.
    pub fn generate(random: &dyn SecureRandom) -> Result<Self, RandomError> {
        let mut key = Self([0; KEY_LEN]);
        random.fill(&mut key.0)?;
        Ok(key)
    }

    /// The key bytes, for wrapping under a master key. Handle with care.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A 96-bit GCM nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nonce(pub [u8; NONCE_LEN]);

/// A 128-bit GCM authentication tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag(pub [u8; TAG_LEN]);

/// Sealing or opening failed: a bad tag, or input the engine cannot take. Opaque by
/// design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AEAD operation failed")]
pub struct SealError;

/// Building a keyed instance failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine refused the key material.
    #[error("engine {engine} rejected the key")]
    KeyRejected {
        /// Engine name.
        engine: &'static str,
    },
    /// The engine is shutting down or its worker threads are gone.
    #[error("engine {engine} is not running")]
    Stopped {
        /// Engine name.
        engine: &'static str,
    },
}

/// An AES-256-GCM implementation.
pub trait AeadEngine: fmt::Debug + Send + Sync {
    /// Short stable name, as used in configuration (`ring`, `rustcrypto`, …).
    fn name(&self) -> &'static str;

    /// A keyed instance that seals and opens under `key`.
    fn key(&self, key: &DataKey) -> Result<Arc<dyn AeadKey>, EngineError>;
}

/// AES-256-GCM under one key.
pub trait AeadKey: Send + Sync {
    /// Encrypts `buf` in place and returns the tag over `aad` and the ciphertext.
    ///
    /// The caller must never use a nonce twice under one key.
    fn seal(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, SealError>;

    /// Checks `tag` over `aad` and `buf`, then decrypts `buf` in place. On error the
    /// contents of `buf` are unspecified and must not be used.
    fn open(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), SealError>;

    /// Messages that may be sealed under one key. The codec derives nonces from a
    /// 32-bit-bounded segment counter under a fresh random key per object version, so
    /// the default is that counter's range.
    fn confidentiality_limit(&self) -> u64 {
        1 << 32
    }
}

impl fmt::Debug for dyn AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

//! Sealing segments (the STREAM construction) and wrapping data keys.
//!
//! Each object version gets a fresh random 256-bit data key, so a nonce never repeats
//! under a key as long as segment indices do not, and they are a counter. The nonce is
//! the segment index; the associated data binds the object version id, the index, a
//! last-segment flag and the compression flag:
//!
//! * reordering segments changes the index a segment is opened under: it fails;
//! * moving a segment to another object changes the version id: it fails;
//! * dropping segments from the end makes the new last segment open with
//!   `last = 1` although it was sealed with `last = 0`: it fails;
//! * flipping the compression flag fails, so authenticated data is never fed to a
//!   decompressor it was not made for.
//!
//! Data keys are stored wrapped under a master key (key-encryption key) with
//! AES-256-GCM, the version id as associated data, and a random nonce.

use std::fmt;
use std::sync::Arc;

use offload::aead::{AeadEngine, AeadKey, DataKey, KEY_LEN, NONCE_LEN, Nonce, TAG_LEN, Tag};
use offload::compress::Algorithm;
use offload::random::SecureRandom;

use crate::error::CodecError;

/// Bytes in a [`VersionId`].
pub const VERSION_ID_LEN: usize = 16;

/// A random identifier of one object version. It names the version's fragments on
/// the locations, so it must reveal nothing: it is random, not derived.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(pub [u8; VERSION_ID_LEN]);

impl VersionId {
    /// A fresh random id.
    pub fn generate(random: &dyn SecureRandom) -> Result<Self, CodecError> {
        let mut id = [0u8; VERSION_ID_LEN];
        random.fill(&mut id)?;
        Ok(Self(id))
    }

    /// Lower-case hex, 32 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Self::to_hex`]'s output.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 2 * VERSION_ID_LEN || !s.is_ascii() {
            return None;
        }
        let mut id = [0u8; VERSION_ID_LEN];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(id))
    }
}

impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionId({})", self.to_hex())
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Per-segment flags bound into the associated data.
///
/// DO NOT CHANGE THE ENCODING: it is stored in fragment records and authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFlags {
    /// The last segment of the object.
    pub last: bool,
    /// How the plaintext was compressed before sealing, if it was.
    pub compression: Option<Algorithm>,
}

impl SegmentFlags {
    const LAST: u8 = 0x80;
    const COMPRESSION: u8 = 0x03;

    /// The stored byte.
    pub fn to_byte(self) -> u8 {
        let c = self.compression.map_or(0, Algorithm::code);
        c | if self.last { Self::LAST } else { 0 }
    }

    /// Parses a stored byte; `None` if reserved bits are set or the compression code
    /// is unknown.
    pub fn from_byte(b: u8) -> Option<Self> {
        if b & !(Self::LAST | Self::COMPRESSION) != 0 {
            return None;
        }
        let compression = match b & Self::COMPRESSION {
            0 => None,
            code => Some(Algorithm::from_code(code)?),
        };
        Some(Self { last: b & Self::LAST != 0, compression })
    }
}

/// Domain separation for segment associated data.
///
/// DO NOT CHANGE THIS VALUE: stored segments authenticate under it.
const SEGMENT_AAD_DOMAIN: &[u8; 8] = b"SKYSEG01";
/// Domain separation for wrapped data keys. DO NOT CHANGE THIS VALUE.
const WRAP_AAD_DOMAIN: &[u8; 8] = b"SKYWRAP1";
/// Domain separation for other secrets sealed under the master key. DO NOT CHANGE.
const SECRET_AAD_DOMAIN: &[u8; 8] = b"SKYSECR1";
/// Format byte of a sealed secret. DO NOT CHANGE: stored in the metadata database.
const SECRET_FORMAT_V1: u8 = 1;

/// Bytes of segment associated data.
pub const SEGMENT_AAD_LEN: usize = 8 + VERSION_ID_LEN + 8 + 1;

/// The nonce of segment `index`: four zero bytes, then the index big-endian.
pub fn segment_nonce(index: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce(n)
}

/// The associated data of segment `index` of `version`.
pub fn segment_aad(version: &VersionId, index: u64, flags: SegmentFlags) -> [u8; SEGMENT_AAD_LEN] {
    let mut aad = [0u8; SEGMENT_AAD_LEN];
    aad[..8].copy_from_slice(SEGMENT_AAD_DOMAIN);
    aad[8..24].copy_from_slice(&version.0);
    aad[24..32].copy_from_slice(&index.to_be_bytes());
    aad[32] = flags.to_byte();
    aad
}

/// Seals and opens the segments of one object version.
pub struct SegmentCipher {
    key: Arc<dyn AeadKey>,
    version: VersionId,
}

impl fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentCipher").field("version", &self.version).finish_non_exhaustive()
    }
}

impl SegmentCipher {
    /// A cipher for `version` under `key`, on `engine`.
    pub fn new(engine: &dyn AeadEngine, key: &DataKey, version: VersionId) -> Result<Self, CodecError> {
        Ok(Self { key: engine.key(key)?, version })
    }

    /// The object version.
    pub fn version(&self) -> &VersionId {
        &self.version
    }

    /// The keyed AEAD instance (to hand to an asynchronous engine).
    pub fn key(&self) -> &Arc<dyn AeadKey> {
        &self.key
    }

    /// Refuses an object with more segments than the key may seal.
    pub fn check_segment_count(&self, segments: u64) -> Result<(), CodecError> {
        if segments > self.key.confidentiality_limit() {
            return Err(CodecError::TooManySegments { segments });
        }
        Ok(())
    }

    /// Seals segment `index` in place and returns its tag.
    pub fn seal(&self, index: u64, flags: SegmentFlags, buf: &mut [u8]) -> Result<Tag, CodecError> {
        let aad = segment_aad(&self.version, index, flags);
        self.key.seal(&segment_nonce(index), &aad, buf).map_err(|_| CodecError::Seal { index })
    }

    /// Opens segment `index` in place.
    pub fn open(&self, index: u64, flags: SegmentFlags, buf: &mut [u8], tag: &Tag) -> Result<(), CodecError> {
        let aad = segment_aad(&self.version, index, flags);
        self.key.open(&segment_nonce(index), &aad, buf, tag).map_err(|_| CodecError::Authentication { index })
    }
}

/// Format byte of a [`WrappedKey`]. DO NOT CHANGE: stored in the metadata database.
const WRAP_FORMAT_V1: u8 = 1;
/// Bytes in a wrapped key: format, master key version, nonce, key, tag.
pub const WRAPPED_KEY_LEN: usize = 1 + 4 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// A data key encrypted under a master key, bound to one object version.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(pub [u8; WRAPPED_KEY_LEN]);

impl WrappedKey {
    /// Parses stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let arr: [u8; WRAPPED_KEY_LEN] = bytes.try_into().map_err(|_| CodecError::WrappedKeyFormat)?;
        if arr[0] != WRAP_FORMAT_V1 {
            return Err(CodecError::WrappedKeyFormat);
        }
        Ok(Self(arr))
    }

    /// The master key version that wrapped this key.
    pub fn kek_version(&self) -> u32 {
        u32::from_le_bytes([self.0[1], self.0[2], self.0[3], self.0[4]])
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey(kek v{})", self.kek_version())
    }
}

/// The master key (key-encryption key): a ring of numbered versions, the highest of
/// which wraps and seals; every version in the ring unwraps and opens what it
/// wrapped. Rotating the master key adds a version, re-wraps with it, and retires
/// the old one: data is never re-encrypted.
pub struct MasterKey {
    ring: std::sync::RwLock<Vec<(u32, Arc<dyn AeadKey>)>>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(v{:?}, <redacted>)", self.versions())
    }
}

impl MasterKey {
    /// A master key from raw material, numbered `version`, used on `engine`.
    pub fn new(engine: &dyn AeadEngine, material: &DataKey, version: u32) -> Result<Self, CodecError> {
        Ok(Self { ring: std::sync::RwLock::new(vec![(version, engine.key(material)?)]) })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(u32, Arc<dyn AeadKey>)>> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version that wraps and seals now (the highest).
    pub fn version(&self) -> u32 {
        self.read().last().map_or(0, |(v, _)| *v)
    }

    /// Every version in the ring, lowest first.
    pub fn versions(&self) -> Vec<u32> {
        self.read().iter().map(|(v, _)| *v).collect()
    }

    /// Adds `version` (which wraps and seals from now on if it is the highest).
    pub fn add(&self, engine: &dyn AeadEngine, material: &DataKey, version: u32) -> Result<(), CodecError> {
        let key = engine.key(material)?;
        let mut ring = self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        ring.retain(|(v, _)| *v != version);
        ring.push((version, key));
        ring.sort_by_key(|(v, _)| *v);
        Ok(())
    }

    /// Removes `version` from the ring, unless it is the current one.
    pub fn retire(&self, version: u32) {
        let mut ring = self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.last().is_some_and(|(v, _)| *v != version) {
            ring.retain(|(v, _)| *v != version);
        }
    }

    fn current(&self) -> Result<(u32, Arc<dyn AeadKey>), CodecError> {
        self.read().last().map(|(v, k)| (*v, k.clone())).ok_or(CodecError::Unwrap { kek_version: 0 })
    }

    fn key(&self, kek_version: u32) -> Result<Arc<dyn AeadKey>, CodecError> {
        self.read()
            .iter()
            .find(|(v, _)| *v == kek_version)
            .map(|(_, k)| k.clone())
            .ok_or(CodecError::Unwrap { kek_version })
    }

    fn aad(version_id: &VersionId, kek_version: u32) -> [u8; 8 + VERSION_ID_LEN + 4] {
        let mut aad = [0u8; 8 + VERSION_ID_LEN + 4];
        aad[..8].copy_from_slice(WRAP_AAD_DOMAIN);
        aad[8..24].copy_from_slice(&version_id.0);
        aad[24..].copy_from_slice(&kek_version.to_le_bytes());
        aad
    }

    /// Wraps `key` for object version `version_id` with a random nonce (96-bit random
    /// nonces are safe for 2^32 wraps under one master key).
    pub fn wrap(
        &self,
        key: &DataKey,
        version_id: &VersionId,
        random: &dyn SecureRandom,
    ) -> Result<WrappedKey, CodecError> {
        let (version, kek) = self.current()?;
        let mut out = [0u8; WRAPPED_KEY_LEN];
        out[0] = WRAP_FORMAT_V1;
        out[1..5].copy_from_slice(&version.to_le_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        random.fill(&mut nonce)?;
        out[5..17].copy_from_slice(&nonce);
        out[17..49].copy_from_slice(key.expose_secret());
        let tag = kek
            .seal(&Nonce(nonce), &Self::aad(version_id, version), &mut out[17..49])
            .map_err(|_| CodecError::Seal { index: 0 })?;
        out[49..].copy_from_slice(&tag.0);
        Ok(WrappedKey(out))
    }

    /// Unwraps a key wrapped for `version_id`.
    pub fn unwrap_key(&self, wrapped: &WrappedKey, version_id: &VersionId) -> Result<DataKey, CodecError> {
        let kek_version = wrapped.kek_version();
        let kek = self.key(kek_version)?;
        let w = &wrapped.0;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&w[5..17]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&w[49..]);
        let mut key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&w[17..49]);
        kek.open(&Nonce(nonce), &Self::aad(version_id, kek_version), &mut key[..], &Tag(tag))
            .map_err(|_| CodecError::Unwrap { kek_version })?;
        Ok(DataKey::from_bytes(*key))
    }
}

impl MasterKey {
    /// Seals a secret (an access key's secret, a location credential) under the master
    /// key, bound to `context` (for example the access key id): format byte, master
    /// key version, random nonce, ciphertext, tag.
    pub fn seal_secret(&self, secret: &[u8], context: &[u8], random: &dyn SecureRandom) -> Result<Vec<u8>, CodecError> {
        let (version, kek) = self.current()?;
        let mut out = Vec::with_capacity(1 + 4 + NONCE_LEN + secret.len() + TAG_LEN);
        out.push(SECRET_FORMAT_V1);
        out.extend_from_slice(&version.to_le_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        random.fill(&mut nonce)?;
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(secret);
        let aad = Self::secret_aad(version, context);
        let tag = kek.seal(&Nonce(nonce), &aad, &mut out[start..]).map_err(|_| CodecError::Seal { index: 0 })?;
        out.extend_from_slice(&tag.0);
        Ok(out)
    }

    /// The master key version that sealed a secret sealed by [`Self::seal_secret`]
    /// (`None` for bytes too short to be one).
    pub fn sealed_version(sealed: &[u8]) -> Option<u32> {
        sealed.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Opens a secret sealed by [`Self::seal_secret`] with the same `context`.
    pub fn open_secret(&self, sealed: &[u8], context: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, CodecError> {
        if sealed.len() < 1 + 4 + NONCE_LEN + TAG_LEN || sealed[0] != SECRET_FORMAT_V1 {
            return Err(CodecError::WrappedKeyFormat);
        }
        let kek_version = u32::from_le_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let kek = self.key(kek_version)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[5..5 + NONCE_LEN]);
        let body = &sealed[5 + NONCE_LEN..sealed.len() - TAG_LEN];
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&sealed[sealed.len() - TAG_LEN..]);
        let mut plain = zeroize::Zeroizing::new(body.to_vec());
        kek.open(&Nonce(nonce), &Self::secret_aad(kek_version, context), &mut plain, &Tag(tag))
            .map_err(|_| CodecError::Unwrap { kek_version })?;
        Ok(plain)
    }

    fn secret_aad(kek_version: u32, context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(12 + context.len());
        aad.extend_from_slice(SECRET_AAD_DOMAIN);
        aad.extend_from_slice(&kek_version.to_le_bytes());
        aad.extend_from_slice(context);
        aad
    }
}

#[cfg(test)]
mod tests {

    fn ring() -> std::sync::Arc<dyn offload::aead::AeadEngine> {
        offload::aead_engine("ring", &offload::probe()).expect("ring")
    }
    use offload::random::SystemRandom;

    use super::*;

    fn cipher(version: VersionId) -> SegmentCipher {
        SegmentCipher::new(ring().as_ref(), &DataKey::from_bytes([3; 32]), version).expect("key")
    }

    #[test]
    fn flags_round_trip_and_reject_reserved_bits() {
        for last in [false, true] {
            for compression in [None, Some(Algorithm::Zstd), Some(Algorithm::Lz4)] {
                let f = SegmentFlags { last, compression };
                assert_eq!(SegmentFlags::from_byte(f.to_byte()), Some(f));
            }
        }
        assert_eq!(SegmentFlags::from_byte(0x03), None);
        assert_eq!(SegmentFlags::from_byte(0x04), None);
        assert_eq!(SegmentFlags::from_byte(0x40), None);
    }

    #[test]
    fn stream_binds_index_version_and_last_flag() {
        let v = VersionId([1; 16]);
        let c = cipher(v);
        let flags = SegmentFlags { last: false, compression: None };
        let mut buf = b"segment five".to_vec();
        let tag = c.seal(5, flags, &mut buf).expect("seal");
        let sealed = buf.clone();

        let mut b = sealed.clone();
        assert!(c.open(6, flags, &mut b, &tag).is_err(), "moved to another index");
        let mut b = sealed.clone();
        assert!(c.open(5, SegmentFlags { last: true, ..flags }, &mut b, &tag).is_err(), "truncation");
        let mut b = sealed.clone();
        let zstd = SegmentFlags { compression: Some(Algorithm::Zstd), ..flags };
        assert!(c.open(5, zstd, &mut b, &tag).is_err(), "compression flag flipped");
        let mut b = sealed.clone();
        assert!(cipher(VersionId([2; 16])).open(5, flags, &mut b, &tag).is_err(), "another object");
        let mut b = sealed;
        c.open(5, flags, &mut b, &tag).expect("the right place opens");
        assert_eq!(b, b"segment five");
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let rng = SystemRandom::new();
        let kek = MasterKey::new(ring().as_ref(), &DataKey::from_bytes([9; 32]), 3).expect("kek");
        let dk = DataKey::generate(&rng).expect("key");
        let v = VersionId::generate(&rng).expect("id");
        let w = kek.wrap(&dk, &v, &rng).expect("wrap");
        assert_eq!(w.kek_version(), 3);
        assert_eq!(kek.unwrap_key(&w, &v).expect("unwrap"), dk);
        assert!(kek.unwrap_key(&w, &VersionId([0; 16])).is_err(), "bound to the version");
        let other = MasterKey::new(ring().as_ref(), &DataKey::from_bytes([8; 32]), 3).expect("kek");
        assert!(other.unwrap_key(&w, &v).is_err(), "another master key");
        let mut bad = w.clone();
        bad.0[20] ^= 1;
        assert!(kek.unwrap_key(&bad, &v).is_err(), "tampered");
        assert!(WrappedKey::from_bytes(&w.0[1..]).is_err());
        assert_eq!(WrappedKey::from_bytes(&w.0).expect("parse"), w);
        assert!(!format!("{w:?} {kek:?} {dk:?}").contains("09"), "no key material in Debug");
    }

    #[test]
    fn secrets_round_trip_bound_to_their_context() {
        let rng = SystemRandom::new();
        let kek = MasterKey::new(ring().as_ref(), &DataKey::from_bytes([4; 32]), 1).expect("kek");
        let sealed = kek.seal_secret(b"wJalrXUtnFEMI/K7MDENG", b"AKIDEXAMPLE", &rng).expect("seal");
        assert!(!sealed.windows(5).any(|w| w == b"wJalr"), "sealed, not stored in clear");
        assert_eq!(&kek.open_secret(&sealed, b"AKIDEXAMPLE").expect("open")[..], b"wJalrXUtnFEMI/K7MDENG");
        assert!(kek.open_secret(&sealed, b"AKIDOTHER").is_err(), "bound to the access key id");
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(kek.open_secret(&bad, b"AKIDEXAMPLE").is_err());
        assert!(kek.open_secret(&sealed[..10], b"AKIDEXAMPLE").is_err());
    }

    #[test]
    fn a_rotated_ring_wraps_with_the_new_version_and_opens_both_until_the_old_retires() {
        let rng = SystemRandom::new();
        let engine = ring();
        let kek = MasterKey::new(engine.as_ref(), &DataKey::from_bytes([4; 32]), 1).expect("kek");
        let v = VersionId([3; 16]);
        let dk = DataKey::from_bytes([9; 32]);
        let old = kek.wrap(&dk, &v, &rng).expect("wrap");
        let old_secret = kek.seal_secret(b"s", b"c", &rng).expect("seal");
        kek.add(engine.as_ref(), &DataKey::from_bytes([5; 32]), 2).expect("add");
        assert_eq!((kek.version(), kek.versions()), (2, vec![1, 2]));
        let new = kek.wrap(&dk, &v, &rng).expect("wrap");
        assert_eq!((old.kek_version(), new.kek_version()), (1, 2));
        assert_eq!(kek.unwrap_key(&old, &v).expect("old"), dk);
        assert_eq!(kek.unwrap_key(&new, &v).expect("new"), dk);
        assert_eq!(&kek.open_secret(&old_secret, b"c").expect("old secret")[..], b"s");
        kek.retire(2);
        assert_eq!(kek.versions(), vec![1, 2], "the current version is never retired");
        kek.retire(1);
        assert_eq!(kek.versions(), vec![2]);
        assert!(matches!(kek.unwrap_key(&old, &v), Err(CodecError::Unwrap { kek_version: 1 })));
        assert!(kek.open_secret(&old_secret, b"c").is_err());
        assert_eq!(kek.unwrap_key(&new, &v).expect("new"), dk);
    }

    #[test]
    fn version_id_hex() {
        let v = VersionId([0xab; 16]);
        assert_eq!(VersionId::from_hex(&v.to_hex()), Some(v));
        assert_eq!(VersionId::from_hex("zz"), None);
    }
}

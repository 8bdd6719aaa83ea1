//! Customer-provided keys (SSE-C): a key the client sends with every request and
//! the gateway never keeps. It protects an object in addition to the master key:
//! what is stored under the master key is the object's data key masked with a key
//! derived from the customer's (HMAC-SHA256 over the seal id), so the master key
//! alone opens nothing. What is kept to check the key of a later request is a
//! salted HMAC of it, compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use offload::aead::DataKey;
use offload::random::SecureRandom;
use ring::hmac;
use zeroize::Zeroizing;

use crate::meta::SealId;

/// Version tag of the stored key check.
const CHECK_V1: &str = "v1";

/// A customer-provided AES-256 key, for the length of one request.
pub struct CustomerKey {
    key: Zeroizing<[u8; 32]>,
    md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey").field("md5", &self.md5).finish_non_exhaustive()
    }
}

impl CustomerKey {
    /// The key of 32 bytes.
    pub fn new(key: [u8; 32]) -> Self {
        use md5::Digest as _;
        let md5 = B64.encode(md5::Md5::digest(key));
        Self { key: Zeroizing::new(key), md5 }
    }

    /// Base64 of the key's MD5, as `x-amz-server-side-encryption-customer-key-MD5`.
    pub fn key_md5(&self) -> &str {
        &self.md5
    }

    /// What checks this key later: `v1:<salt>:<HMAC-SHA256(key, salt)>`, base64.
    pub fn check(&self, random: &dyn SecureRandom) -> Result<String, String> {
        let mut salt = [0u8; 16];
        random.fill(&mut salt).map_err(|_| "no randomness".to_string())?;
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.key[..]), &salt);
        Ok(format!("{CHECK_V1}:{}:{}", B64.encode(salt), B64.encode(tag.as_ref())))
    }

    /// Whether this is the key `check` was made from (constant time).
    pub fn matches(&self, check: &str) -> bool {
        let mut parts = check.split(':');
        let (Some(CHECK_V1), Some(salt), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(salt), Ok(tag)) = (B64.decode(salt), B64.decode(tag)) else { return false };
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &self.key[..]), &salt, &tag).is_ok()
    }

    /// `data_key` masked (or unmasked: the mask is its own inverse) for `seal`.
    pub fn mask(&self, data_key: &DataKey, seal: SealId) -> DataKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key[..]);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(b"skyshard sse-c data key\0");
        ctx.update(&seal.0);
        let mask = ctx.sign();
        let mut out = Zeroizing::new([0u8; 32]);
        for (o, (k, m)) in out.iter_mut().zip(data_key.expose_secret().iter().zip(mask.as_ref())) {
            *o = k ^ m;
        }
        DataKey::from_bytes(*out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload::random::SystemRandom;

    #[test]
    fn checks_and_masks() {
        let rng = SystemRandom::new();
        let (a, b) = (CustomerKey::new([7; 32]), CustomerKey::new([8; 32]));
        let check = a.check(&rng).expect("check");
        assert!(a.matches(&check));
        assert!(!b.matches(&check));
        assert!(!a.matches("v1:AAAA:AAAA") && !a.matches("garbage") && !a.matches(""));
        assert_ne!(a.check(&rng).expect("check"), check, "salted");
        assert!(!check.contains(&B64.encode([7u8; 32])), "the key is not in its check");

        let seal = SealId::generate(&rng).expect("id");
        let data = DataKey::generate(&rng).expect("key");
        let masked = a.mask(&data, seal);
        assert_ne!(masked.expose_secret(), data.expose_secret());
        assert_eq!(a.mask(&masked, seal).expose_secret(), data.expose_secret(), "its own inverse");
        assert_ne!(b.mask(&masked, seal).expose_secret(), data.expose_secret(), "another key opens nothing");
        let other = SealId::generate(&rng).expect("id");
        assert_ne!(a.mask(&data, other).expose_secret(), masked.expose_secret(), "per seal");
        assert_eq!(a.key_md5(), B64.encode(<md5::Md5 as md5::Digest>::digest([7u8; 32])));
    }
}

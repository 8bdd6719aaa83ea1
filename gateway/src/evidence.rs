//! Signed evidence of where an object's fragments are: the gateway signs a report
//! with an Ed25519 key derived from its master key (HKDF-SHA256 with a label of its
//! own, so that the key signs nothing else and the master key signs nothing), and
//! anyone holding the public key checks it without trusting the channel or the
//! tool that carried it. Every replica on one master key signs with the same key;
//! a rotation gives a new one, named by the master key version.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use offload::aead::DataKey;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The only algorithm.
pub const ALGORITHM: &str = "Ed25519";

/// The signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
    version: u32,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("version", &self.version).field("public_key", &self.public_key()).finish()
    }
}

/// A signed report: `payload` is the report's bytes as signed (base64), so that a
/// verifier checks exactly what was signed before it reads anything in it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Signed {
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The master key version the signing key was derived from.
    pub key_version: u32,
    /// The public key (32 bytes, base64).
    pub public_key: String,
    /// The signed bytes (JSON, base64).
    pub payload: String,
    /// The signature over the payload's bytes (64 bytes, base64).
    pub signature: String,
}

/// Why a signed report does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    /// Not Ed25519.
    #[error("algorithm {0:?} is not Ed25519")]
    Algorithm(String),
    /// A field is not base64.
    #[error("{0} is not base64")]
    Encoding(&'static str),
    /// Signed by another key than the one expected.
    #[error("signed by key {found}, not by the expected {expected}")]
    Key {
        /// The key the report names.
        found: String,
        /// The key the verifier trusts.
        expected: String,
    },
    /// The signature does not match the payload under the key.
    #[error("the signature does not match the report")]
    Signature,
}

impl Signer {
    /// The signing key of the highest version in `ring` (master key material and
    /// versions). `None` for an empty ring.
    pub fn from_ring(ring: &[(DataKey, u32)]) -> Option<Self> {
        let (material, version) = ring.iter().max_by_key(|(_, v)| *v)?;
        let seed = crate::keys::derive(material, b"skyshard evidence", b"ed25519 v1");
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed[..]).ok()?;
        Some(Self { pair, version: *version })
    }

    /// The master key version the key is derived from.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The public key, base64.
    pub fn public_key(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    /// Signs `report` serialized as JSON.
    pub fn sign<T: Serialize>(&self, report: &T) -> Result<Signed, serde_json::Error> {
        let payload = serde_json::to_vec(report)?;
        let signature = self.pair.sign(&payload);
        Ok(Signed {
            algorithm: ALGORITHM.into(),
            key_version: self.version,
            public_key: self.public_key(),
            payload: B64.encode(&payload),
            signature: B64.encode(signature.as_ref()),
        })
    }
}

impl Signed {
    /// The payload's bytes once the signature is checked — under `trusted` (a
    /// public key, base64) when given, else under the key the report names (which
    /// proves only that the report is whole).
    pub fn verify(&self, trusted: Option<&str>) -> Result<Vec<u8>, Invalid> {
        if self.algorithm != ALGORITHM {
            return Err(Invalid::Algorithm(self.algorithm.clone()));
        }
        if let Some(t) = trusted
            && t.trim() != self.public_key
        {
            return Err(Invalid::Key { found: self.public_key.clone(), expected: t.trim().to_string() });
        }
        let key = B64.decode(&self.public_key).map_err(|_| Invalid::Encoding("public_key"))?;
        let payload = B64.decode(&self.payload).map_err(|_| Invalid::Encoding("payload"))?;
        let signature = B64.decode(&self.signature).map_err(|_| Invalid::Encoding("signature"))?;
        UnparsedPublicKey::new(&ED25519, &key).verify(&payload, &signature).map_err(|_| Invalid::Signature)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(versions: &[(u8, u32)]) -> Vec<(DataKey, u32)> {
        versions.iter().map(|&(b, v)| (DataKey::from_bytes([b; 32]), v)).collect()
    }

    #[test]
    fn a_report_verifies_and_any_change_to_it_does_not() {
        let s = Signer::from_ring(&ring(&[(1, 1)])).expect("signer");
        let signed = s.sign(&serde_json::json!({"fragments": ["a", "b"]})).expect("sign");
        let payload = signed.verify(Some(&s.public_key())).expect("verifies");
        assert_eq!(payload, br#"{"fragments":["a","b"]}"#);
        assert_eq!(signed.verify(None), Ok(payload.clone()));

        let mut forged = signed.clone();
        forged.payload = B64.encode(br#"{"fragments":["a","c"]}"#);
        assert_eq!(forged.verify(None), Err(Invalid::Signature));
        let mut flipped = signed.clone();
        let mut sig = B64.decode(&flipped.signature).expect("b64");
        sig[7] ^= 1;
        flipped.signature = B64.encode(sig);
        assert_eq!(flipped.verify(None), Err(Invalid::Signature));

        // Re-signed by another key: whole, but not by the key trusted.
        let other = Signer::from_ring(&ring(&[(2, 1)])).expect("signer");
        let resigned = other.sign(&serde_json::json!({"fragments": ["a", "c"]})).expect("sign");
        assert!(resigned.verify(None).is_ok());
        assert!(matches!(resigned.verify(Some(&s.public_key())), Err(Invalid::Key { .. })));
        let mut renamed = resigned.clone();
        renamed.public_key = s.public_key();
        assert_eq!(renamed.verify(Some(&s.public_key())), Err(Invalid::Signature));
        let mut other_alg = signed;
        other_alg.algorithm = "HS256".into();
        assert!(matches!(other_alg.verify(None), Err(Invalid::Algorithm(_))));
    }

    #[test]
    fn the_key_follows_the_newest_master_key_and_nothing_else() {
        let one = Signer::from_ring(&ring(&[(1, 1)])).expect("signer");
        let again = Signer::from_ring(&ring(&[(1, 1)])).expect("signer");
        assert_eq!(one.public_key(), again.public_key(), "one master key, one signing key");
        let rotated = Signer::from_ring(&ring(&[(1, 1), (9, 2)])).expect("signer");
        assert_eq!(rotated.version, 2);
        assert_ne!(rotated.public_key(), one.public_key());
        assert!(Signer::from_ring(&[]).is_none());
        // The seed is not the master key itself.
        let seed = crate::keys::derive(&DataKey::from_bytes([1; 32]), b"skyshard evidence", b"ed25519 v1");
        assert_ne!(&seed[..], &[1u8; 32][..]);
        assert!(!format!("{one:?}").contains("seed"));
    }
}

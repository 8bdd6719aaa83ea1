//! AES-256-GCM on aws-lc-rs, built only with the `aws-lc` feature: kept so that the
//! choice of ring as the default stays a measurement, not a belief.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as LcNonce, UnboundKey};

use crate::aead::{AeadEngine, AeadKey, DataKey, EngineError, Nonce, SealError, TAG_LEN, Tag};

/// The aws-lc-rs AEAD engine.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AwsLcAead;

impl AeadEngine for AwsLcAead {
    fn name(&self) -> &'static str {
        "aws-lc"
    }

    fn key(&self, key: &DataKey) -> Result<Arc<dyn AeadKey>, EngineError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.expose_secret())
            .map_err(|_| EngineError::KeyRejected { engine: "aws-lc" })?;
        Ok(Arc::new(AwsLcKey(LessSafeKey::new(unbound))))
    }
}

struct AwsLcKey(LessSafeKey);

impl AeadKey for AwsLcKey {
    fn seal(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, SealError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(LcNonce::assume_unique_for_key(nonce.0), Aad::from(aad), buf)
            .map_err(|_| SealError)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(Tag(out))
    }

    fn open(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), SealError> {
        self.0
            .open_in_place_separate_tag(LcNonce::assume_unique_for_key(nonce.0), Aad::from(aad), &tag.0, buf)
            .map(|_| ())
            .map_err(|_| SealError)
    }
}

//! Bearer tokens of the admin API: `sst_<id>_<secret>`. The metadata store keeps the
//! id and the SHA-256 of the secret (a 240-bit random secret needs no slow hash);
//! a presented secret is hashed and compared in constant time.

use std::path::{Path, PathBuf};

use offload::random::SecureRandom;
use ring::digest;

use crate::keys::{KEY_ID_ALPHABET, SECRET_ALPHABET, random_token};
use crate::meta::MetaStore;

/// The file the first start writes its token to, in the data directory (0600).
pub const TOKEN_FILE: &str = "admin.token";

const PREFIX: &str = "sst_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 40;

/// Why a token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `sst_<id>_<secret>`.
    #[error("admin token: expected sst_<12 characters>_<40 characters>, as `skyshard admin token` prints")]
    Malformed,
    /// The id is stored with another secret.
    #[error("admin token {0}: stored with a different secret")]
    Conflict(String),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    /// Generating or writing it failed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
}

/// A parsed token.
struct Token<'a> {
    id: &'a str,
    secret: &'a str,
}

fn parse(token: &str) -> Option<Token<'_>> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some(Token { id, secret })
}

fn sha256(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// A new random token.
pub fn generate(random: &dyn SecureRandom) -> Result<String, crate::keys::KeyError> {
    let id = random_token(random, ID_LEN, KEY_ID_ALPHABET)?;
    let secret = random_token(random, SECRET_LEN, SECRET_ALPHABET)?;
    Ok(format!("{PREFIX}{id}_{secret}"))
}

/// Stores `token` (hashed) under `name`; fine if it is stored already.
pub async fn store(meta: &MetaStore, token: &str, name: &str) -> Result<(), TokenError> {
    let t = parse(token).ok_or(TokenError::Malformed)?;
    if !meta.insert_admin_token(t.id, name, &sha256(t.secret)).await? && !verify(meta, token).await? {
        return Err(TokenError::Conflict(t.id.to_string()));
    }
    Ok(())
}

/// Makes sure the admin API can be reached: stores the configured token, or on a
/// store without any token creates one in `<data_dir>/admin.token` (0600). Returns
/// that file when it holds a token.
pub async fn ensure(
    meta: &MetaStore,
    configured: Option<&str>,
    data_dir: &Path,
    random: &dyn SecureRandom,
) -> Result<Option<PathBuf>, TokenError> {
    let file = data_dir.join(TOKEN_FILE);
    if let Some(token) = configured {
        store(meta, token, "configured").await?;
    } else if meta.admin_token_count().await? == 0 {
        let token = generate(random)?;
        store(meta, &token, "first start").await?;
        // A file left from an earlier store holds a token this store does not know.
        let _ = std::fs::remove_file(&file);
        crate::keys::write_private_file(&file, format!("{token}\n").as_bytes())?;
    }
    Ok(file.exists().then_some(file))
}

/// Whether `token` is a stored admin token.
pub async fn verify(meta: &MetaStore, token: &str) -> Result<bool, crate::meta::MetaError> {
    let Some(t) = parse(token) else { return Ok(false) };
    let Some(stored) = meta.admin_token_hash(t.id).await? else { return Ok(false) };
    #[allow(deprecated)]
    Ok(ring::constant_time::verify_slices_are_equal(&stored, &sha256(t.secret)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_others_do_not() {
        let random = offload::random::SystemRandom::new();
        let t = generate(&random).expect("token");
        assert!(parse(&t).is_some(), "{t}");
        for bad in ["", "sst_", "sst_abc_def", &t[..t.len() - 1], &t.replacen("sst_", "xyz_", 1), &format!("{t}x")] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}

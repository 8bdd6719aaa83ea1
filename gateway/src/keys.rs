//! The master key: from configuration (`master_key`, `master_key_file`,
//! `SKYSHARD_MASTER_KEY`) or from `<data_dir>/master.key`, created on first start
//! with mode 0600. A key file readable by others is refused.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use offload::aead::DataKey;
use offload::random::SecureRandom;
use zeroize::Zeroizing;

/// Name of the generated key file inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or creating the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key is not 64 hexadecimal digits.
    #[error("the master key must be 64 hexadecimal digits (256 bits)")]
    Format,
    /// The file may be read by other users.
    #[error("key file {0} is readable by group or others (it holds a secret); run: chmod 600 {0}")]
    Permissions(String),
    /// No master key, where one is needed to open what is stored.
    #[error(
        "no master key at {0}, but the metadata store holds data sealed under one: put the key back (or \
         combine its shares: skyshard keys combine); a new key would open nothing"
    )]
    Missing(String),
    /// A secret file every user may read.
    #[error("secret file {0} is readable by every user (it holds a secret); run: chmod 600 {0}")]
    Public(String),
    /// The random source failed.
    #[error("no randomness for a new master key")]
    Random,
}

/// Parses 64 hex digits.
pub fn parse_hex_key(text: &str) -> Result<DataKey, KeyError> {
    let t = text.trim();
    if t.len() != 64 || !t.is_ascii() {
        return Err(KeyError::Format);
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| KeyError::Format)?;
    }
    Ok(DataKey::from_bytes(*bytes))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.display().to_string(), source }
}

/// Writes a secret to a new file readable by its owner only; fails if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io(path))?;
    f.write_all(contents).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

/// Reads a secret file, refusing one that others may read.
pub fn read_private_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KeyError::Permissions(path.display().to_string()));
    }
    Ok(Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?))
}

/// Refuses a secret file that every user of the machine may read (or write). A
/// group bit is tolerated in files the operator provides: Kubernetes mounts
/// secrets group-readable for the pod's `fsGroup`.
pub fn refuse_public(path: &Path) -> Result<(), KeyError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.permissions().mode() & 0o007 != 0 {
        return Err(KeyError::Public(path.display().to_string()));
    }
    Ok(())
}

/// Makes what this process creates from now on private: files 0600, directories
/// 0700 (the metadata database and its WAL, fragment files, cache files, keys,
/// certificates' keys), whatever the umask it was started with.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Raises the soft limit on open files to the hard limit (connections are files:
/// the connection limits, not the default soft limit of 1,024, should decide how
/// many clients are served). Returns the limit now in force.
pub fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    getrlimit(Resource::Nofile).current
}

/// Tightens a file or directory that holds names or keys to `mode` when others may
/// read it (one created by an older version, or before [`private_umask`]).
pub fn make_private(path: &Path, mode: u32) -> Result<(), KeyError> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// A 32-byte key of master key material for one use: HKDF-SHA256 with that use's
/// own `salt` and `info`, so that each derived key serves nothing else and the
/// master key itself serves none of those uses.
pub fn derive(material: &DataKey, salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(material.expose_secret());
    let mut out = Zeroizing::new([0u8; 32]);
    // Expanding 32 bytes from SHA-256 cannot fail (the limit is 255 blocks).
    if let Ok(okm) = prk.expand(&[info], Len) {
        let _ = okm.fill(&mut out[..]);
    }
    out
}

/// A master key ring: each version's material, lowest version first.
pub type Ring = Vec<(DataKey, u32)>;

/// Parses a key ring: one key per line (or comma), `<version>:<64 hex digits>`, or
/// the 64 hex digits alone for version 1 (a key file from before rotation); blank
/// lines and `#` comments are skipped.
pub fn parse_ring(text: &str) -> Result<Ring, KeyError> {
    let mut ring: Ring = Vec::new();
    let items = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    for item in items {
        let (version, hex) = match item.split_once(':') {
            Some((v, hex)) => (v.trim().parse::<u32>().map_err(|_| KeyError::Format)?, hex),
            None => (1, item),
        };
        if version == 0 || ring.iter().any(|(_, v)| *v == version) {
            return Err(KeyError::Format);
        }
        ring.push((parse_hex_key(hex)?, version));
    }
    if ring.is_empty() {
        return Err(KeyError::Format);
    }
    ring.sort_by_key(|(_, v)| *v);
    Ok(ring)
}

fn ring_text(ring: &[(DataKey, u32)]) -> Zeroizing<String> {
    let mut text =
        Zeroizing::new(String::from("# Skyshard master key ring: one version per line, the highest seals new data.\n"));
    for (key, version) in ring {
        text.push_str(&format!("{version}:"));
        for b in key.expose_secret() {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
    }
    text
}

/// Replaces the key file at `path` with `ring`, atomically (a new private file
/// renamed over it, the directory synced): a crash leaves the old ring or the new.
pub fn write_ring(path: &Path, ring: &[(DataKey, u32)]) -> Result<(), KeyError> {
    let tmp = path.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    write_private_file(&tmp, ring_text(ring).as_bytes())?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    Ok(())
}

/// The configured master key ring, or the data directory's key file — created if
/// absent, but only when `may_create` (nothing is sealed under another key yet): a
/// new key for a store sealed under a lost one would open nothing, and would stay on
/// disk to confuse the next start. Returns the ring and whether it was just created.
pub fn master_key(
    configured: Option<&str>,
    data_dir: &Path,
    random: &dyn SecureRandom,
    may_create: bool,
) -> Result<(Ring, bool), KeyError> {
    if let Some(text) = configured {
        return Ok((parse_ring(text)?, false));
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    if path.exists() {
        return Ok((parse_ring(&read_private_file(&path)?)?, false));
    }
    if !may_create {
        return Err(KeyError::Missing(path.display().to_string()));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    random.fill(&mut bytes[..]).map_err(|_| KeyError::Random)?;
    let hex = Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    write_private_file(&path, format!("{}\n", hex.as_str()).as_bytes())?;
    Ok((vec![(DataKey::from_bytes(*bytes), 1)], true))
}

/// A random printable secret of `len` characters from `alphabet`.
pub fn random_token(random: &dyn SecureRandom, len: usize, alphabet: &[u8]) -> Result<String, KeyError> {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut b = [0u8; 1];
        random.fill(&mut b).map_err(|_| KeyError::Random)?;
        // Rejection sampling keeps the choice uniform.
        let limit = 256 - 256 % alphabet.len();
        if usize::from(b[0]) < limit {
            out.push(char::from(alphabet[usize::from(b[0]) % alphabet.len()]));
        }
    }
    Ok(out)
}

/// Characters of generated access key ids.
pub const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Characters of generated secrets.
pub const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[cfg(test)]
mod tests {
    use offload::random::SystemRandom;

    use super::*;

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = crate::testing::scratch_dir("keys");
        let rng = SystemRandom::new();
        let (k1, created) = master_key(None, &dir, &rng, true).expect("create");
        assert_eq!(k1.len(), 1);
        assert!(created);
        let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (k2, created) = master_key(None, &dir, &rng, true).expect("reuse");
        assert!(!created);
        assert_eq!(k1, k2);
        std::fs::set_permissions(dir.join(MASTER_KEY_FILE), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(master_key(None, &dir, &rng, true), Err(KeyError::Permissions(_))));
        // Gone, where a store sealed under it exists: not replaced.
        std::fs::remove_file(dir.join(MASTER_KEY_FILE)).expect("rm");
        let e = master_key(None, &dir, &rng, false).expect_err("not created");
        assert!(matches!(e, KeyError::Missing(_)) && e.to_string().contains("skyshard keys combine"), "{e}");
        assert!(!dir.join(MASTER_KEY_FILE).exists());
    }

    #[test]
    fn rings_round_trip_and_old_key_files_are_version_one() {
        let dir = crate::testing::scratch_dir("ring");
        let path = dir.join(MASTER_KEY_FILE);
        let ring = vec![(DataKey::from_bytes([1; 32]), 1), (DataKey::from_bytes([2; 32]), 3)];
        write_ring(&path, &ring).expect("write");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(parse_ring(&read_private_file(&path).expect("read")).expect("parse"), ring);
        write_ring(&path, &ring[1..]).expect("replace");
        assert_eq!(parse_ring(&read_private_file(&path).expect("read")).expect("parse"), ring[1..]);
        assert_eq!(parse_ring(&"ab".repeat(32)).expect("plain").first().map(|(_, v)| *v), Some(1));
        for bad in ["", "# only a comment", "0:00", &format!("1:{}\n1:{}", "ab".repeat(32), "cd".repeat(32))] {
            assert!(parse_ring(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configured_keys_are_hex() {
        let rng = SystemRandom::new();
        let dir = std::env::temp_dir();
        assert!(master_key(Some(&"ab".repeat(32)), &dir, &rng, true).is_ok());
        assert!(matches!(master_key(Some("abcd"), &dir, &rng, true), Err(KeyError::Format)));
        assert!(matches!(master_key(Some(&"zz".repeat(32)), &dir, &rng, true), Err(KeyError::Format)));
    }

    #[test]
    fn tokens_use_their_alphabet() {
        let t = random_token(&SystemRandom::new(), 40, SECRET_ALPHABET).expect("token");
        assert_eq!(t.len(), 40);
        assert!(t.bytes().all(|b| SECRET_ALPHABET.contains(&b)));
    }
}

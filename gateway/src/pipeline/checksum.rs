//! ETags and the checksums clients ask for, computed on a thread of their own while
//! the body is sealed and coded: MD5 (~0.5 GB/s) is the slowest stage of a PUT, so
//! it must run beside the others, not before them. (How a checksum travels in a
//! request — its header, a trailer — is the S3 front end's business.)

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use md5::Digest as _;
use offload::crc::Crc32c;
use offload::meter::{Meter, Meters};
use tokio::sync::mpsc;

use crate::config::EtagAlgorithm;
use crate::meta::ChecksumAlgorithm;

/// Meters of the hash functions the gateway runs itself (job `hash`; CRC32C is the
/// offload layer's `crc32c` engine and is metered there).
#[derive(Debug, Clone)]
pub struct HashMeters {
    md5: Arc<Meter>,
    blake3: Arc<Meter>,
    crc32: Arc<Meter>,
    crc64: Arc<Meter>,
    sha1: Arc<Meter>,
    sha256: Arc<Meter>,
}

impl HashMeters {
    /// Registers one meter per hash function with `meters`.
    pub fn register(meters: &Meters) -> Self {
        Self {
            md5: meters.register("hash", "md5"),
            blake3: meters.register("hash", "blake3"),
            crc32: meters.register("hash", "crc32"),
            crc64: meters.register("hash", "crc64nvme"),
            sha1: meters.register("hash", "sha1"),
            sha256: meters.register("hash", "sha256"),
        }
    }

    fn etag(&self, etag: EtagAlgorithm) -> Arc<Meter> {
        match etag {
            EtagAlgorithm::Md5 => self.md5.clone(),
            EtagAlgorithm::Blake3 => self.blake3.clone(),
        }
    }

    /// The meter of `alg`; `None` for CRC32C, which its engine meters.
    fn checksum(&self, alg: ChecksumAlgorithm) -> Option<Arc<Meter>> {
        match alg {
            ChecksumAlgorithm::Crc32 => Some(self.crc32.clone()),
            ChecksumAlgorithm::Crc32c => None,
            ChecksumAlgorithm::Crc64Nvme => Some(self.crc64.clone()),
            ChecksumAlgorithm::Sha1 => Some(self.sha1.clone()),
            ChecksumAlgorithm::Sha256 => Some(self.sha256.clone()),
        }
    }
}

enum State {
    Crc32(crc32fast::Hasher),
    Crc32c(Arc<dyn Crc32c>, u32),
    Crc64(crc_fast::Digest),
    Sha(ring::digest::Context),
}

/// Running ETag and checksum of a byte stream.
pub struct Hashes {
    etag: EtagAlgorithm,
    md5: md5::Md5,
    /// MD5 wanted besides a BLAKE3 ETag (a client sent Content-MD5): its meter.
    md5_too: Option<Arc<Meter>>,
    blake3: blake3::Hasher,
    checksum: Option<(ChecksumAlgorithm, State)>,
    len: u64,
    etag_meter: Arc<Meter>,
    checksum_meter: Option<Arc<Meter>>,
}

/// What [`Hashes`] computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashResult {
    /// ETag value, hex, without quotes.
    pub etag: String,
    /// The raw ETag digest (16 bytes), for multipart ETags.
    pub etag_digest: [u8; 16],
    /// The checksum, base64 of the big-endian value, if one was asked for.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
    /// The MD5 of the bytes: with MD5 ETags, or when asked for besides.
    pub md5: Option<[u8; 16]>,
    /// Bytes hashed.
    pub len: u64,
}

impl Hashes {
    /// Starts hashing with `etag`, `checksum` if given, and MD5 besides a BLAKE3
    /// ETag when `md5_too` (to check a client's Content-MD5), charging `meters`.
    pub fn new(
        etag: EtagAlgorithm,
        checksum: Option<ChecksumAlgorithm>,
        md5_too: bool,
        crc32c: Arc<dyn Crc32c>,
        meters: &HashMeters,
    ) -> Self {
        let checksum_meter = checksum.and_then(|a| meters.checksum(a));
        let checksum = checksum.map(|a| {
            let s = match a {
                ChecksumAlgorithm::Crc32 => State::Crc32(crc32fast::Hasher::new()),
                ChecksumAlgorithm::Crc32c => State::Crc32c(crc32c.clone(), 0),
                ChecksumAlgorithm::Crc64Nvme => State::Crc64(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme)),
                ChecksumAlgorithm::Sha1 => {
                    State::Sha(ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY))
                }
                ChecksumAlgorithm::Sha256 => State::Sha(ring::digest::Context::new(&ring::digest::SHA256)),
            };
            (a, s)
        });
        Self {
            etag,
            md5: md5::Md5::new(),
            md5_too: (md5_too && etag != EtagAlgorithm::Md5).then(|| meters.md5.clone()),
            blake3: blake3::Hasher::new(),
            checksum,
            len: 0,
            etag_meter: meters.etag(etag),
            checksum_meter,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        let (md5, blake3) = (&mut self.md5, &mut self.blake3);
        self.etag_meter.time(data.len(), || match self.etag {
            EtagAlgorithm::Md5 => md5.update(data),
            EtagAlgorithm::Blake3 => {
                blake3.update(data);
            }
        });
        if let Some(meter) = &self.md5_too {
            meter.time(data.len(), || md5.update(data));
        }
        let update = |state: &mut State| match state {
            State::Crc32(h) => h.update(data),
            State::Crc32c(e, c) => *c = e.append(*c, data),
            State::Crc64(d) => d.update(data),
            State::Sha(c) => c.update(data),
        };
        match (&mut self.checksum, &self.checksum_meter) {
            (None, _) => {}
            (Some((_, state)), Some(meter)) => meter.time(data.len(), || update(state)),
            (Some((_, state)), None) => update(state),
        }
    }

    /// The results.
    pub fn finish(self) -> HashResult {
        let md5: Option<[u8; 16]> =
            (self.etag == EtagAlgorithm::Md5 || self.md5_too.is_some()).then(|| self.md5.finalize().into());
        let etag_digest: [u8; 16] = match (self.etag, md5) {
            (EtagAlgorithm::Md5, Some(d)) => d,
            _ => {
                let mut d = [0u8; 16];
                d.copy_from_slice(&self.blake3.finalize().as_bytes()[..16]);
                d
            }
        };
        let checksum = self.checksum.map(|(a, s)| {
            let raw: Vec<u8> = match s {
                State::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
                State::Crc32c(_, c) => c.to_be_bytes().to_vec(),
                State::Crc64(d) => d.finalize().to_be_bytes().to_vec(),
                State::Sha(c) => c.finish().as_ref().to_vec(),
            };
            (a, B64.encode(raw))
        });
        HashResult { etag: hex(&etag_digest), etag_digest, checksum, md5, len: self.len }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes chunks on a blocking thread; send them through the returned sender and
/// await the handle for the result after dropping the sender.
pub fn spawn_hasher(hashes: Hashes) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<HashResult>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let handle = tokio::task::spawn_blocking(move || {
        let mut h = hashes;
        while let Some(chunk) = rx.blocking_recv() {
            h.update(&chunk);
        }
        h.finish()
    });
    (tx, handle)
}

/// The ETag of a multipart object: the digest of the parts' digests, `-N`.
pub fn multipart_etag(etag: EtagAlgorithm, part_digests: &[[u8; 16]]) -> String {
    let joined: Vec<u8> = part_digests.iter().flatten().copied().collect();
    let digest: [u8; 16] = match etag {
        EtagAlgorithm::Md5 => md5::Md5::digest(&joined).into(),
        EtagAlgorithm::Blake3 => {
            let mut d = [0u8; 16];
            d.copy_from_slice(&blake3::hash(&joined).as_bytes()[..16]);
            d
        }
    };
    format!("{}-{}", hex(&digest), part_digests.len())
}

/// The whole-object checksum of a multipart upload, from its parts' checksums
/// (base64, as stored) and sizes, in order: `COMPOSITE`, the checksum of the
/// parts' raw checksums joined, with `-N`; `FULL_OBJECT`, the parts' CRCs combined
/// into the CRC of the whole object (CRCs only). `None` if a part's checksum is
/// not one of `alg`.
pub fn multipart_checksum(alg: ChecksumAlgorithm, full_object: bool, parts: &[(&str, u64)]) -> Option<String> {
    let mut raw = Vec::with_capacity(parts.len());
    for (value, _) in parts {
        raw.push(B64.decode(value.trim()).ok()?);
    }
    if full_object {
        let (crc, width) = match alg {
            ChecksumAlgorithm::Crc32 => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
            ChecksumAlgorithm::Crc32c => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
            ChecksumAlgorithm::Crc64Nvme => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => return None,
        };
        let mut whole: Option<u64> = None;
        for (r, (_, size)) in raw.iter().zip(parts) {
            let bytes: [u8; 8] = match width {
                4 => <[u8; 4]>::try_from(r.as_slice()).ok().map(|b| u64::from(u32::from_be_bytes(b)).to_be_bytes())?,
                _ => <[u8; 8]>::try_from(r.as_slice()).ok()?,
            };
            let part = u64::from_be_bytes(bytes);
            whole = Some(match whole {
                None => part,
                Some(w) => crc_fast::checksum_combine(crc, w, part, *size),
            });
        }
        let whole = whole?;
        let out = match width {
            4 => (whole as u32).to_be_bytes().to_vec(),
            _ => whole.to_be_bytes().to_vec(),
        };
        return Some(B64.encode(out));
    }
    let joined: Vec<u8> = raw.concat();
    let digest: Vec<u8> = match alg {
        ChecksumAlgorithm::Crc32 => crc32fast::hash(&joined).to_be_bytes().to_vec(),
        ChecksumAlgorithm::Crc32c => {
            (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &joined) as u32).to_be_bytes().to_vec()
        }
        ChecksumAlgorithm::Sha1 => {
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &joined).as_ref().to_vec()
        }
        ChecksumAlgorithm::Sha256 => ring::digest::digest(&ring::digest::SHA256, &joined).as_ref().to_vec(),
        ChecksumAlgorithm::Crc64Nvme => return None,
    };
    Some(format!("{}-{}", B64.encode(digest), parts.len()))
}

/// Parses a hex ETag value (quotes allowed) into its 16-byte digest.
pub fn etag_digest(s: &str) -> Option<[u8; 16]> {
    let t = s.trim().trim_matches('"');
    if t.len() != 32 {
        return None;
    }
    let mut d = [0u8; 16];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(d)
}

#[cfg(test)]
mod tests {

    #[test]
    fn multipart_checksums_compose_and_combine_as_s3_does() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (a, b) = data.split_at(123_457);
        for alg in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme] {
            let [whole, pa, pb] =
                [&data[..], a, b].map(|d| compute(EtagAlgorithm::Md5, alg, d).checksum.expect("checksum").1);
            let combined = multipart_checksum(alg, true, &[(&pa, a.len() as u64), (&pb, b.len() as u64)]);
            assert_eq!(combined.as_deref(), Some(whole.as_str()), "{alg:?}: the CRC of the whole object");
        }
        // Composite: SHA-256 of the parts' raw SHA-256 digests, "-2".
        let [pa, pb] =
            [a, b].map(|d| compute(EtagAlgorithm::Md5, ChecksumAlgorithm::Sha256, d).checksum.expect("sha").1);
        let mut joined = B64.decode(&pa).expect("b64");
        joined.extend(B64.decode(&pb).expect("b64"));
        let want = format!("{}-2", B64.encode(ring::digest::digest(&ring::digest::SHA256, &joined)));
        let got = multipart_checksum(ChecksumAlgorithm::Sha256, false, &[(&pa, 1), (&pb, 1)]);
        assert_eq!(got, Some(want));
        assert_eq!(multipart_checksum(ChecksumAlgorithm::Sha256, true, &[(&pa, 1)]), None, "no full-object SHA");
    }

    fn portable_crc() -> Arc<dyn Crc32c> {
        offload::crc32c_engine("portable", &offload::probe()).expect("portable CRC32C")
    }

    use super::*;

    fn compute(etag: EtagAlgorithm, alg: ChecksumAlgorithm, data: &[u8]) -> HashResult {
        let mut h = Hashes::new(etag, Some(alg), false, portable_crc(), &HashMeters::register(&Meters::default()));
        for chunk in data.chunks(7) {
            h.update(chunk);
        }
        h.finish()
    }

    #[test]
    fn hashing_is_metered_per_function() {
        let meters = Meters::default();
        let mut h = Hashes::new(
            EtagAlgorithm::Md5,
            Some(ChecksumAlgorithm::Sha256),
            false,
            portable_crc(),
            &HashMeters::register(&meters),
        );
        h.update(&[7u8; 1000]);
        h.update(&[7u8; 24]);
        h.finish();
        let usage = meters.snapshot();
        let bytes = |engine: &str| usage.iter().find(|u| u.job == "hash" && u.engine == engine).map(|u| u.bytes);
        assert_eq!((bytes("md5"), bytes("sha256"), bytes("blake3")), (Some(1024), Some(1024), Some(0)));
    }

    #[test]
    fn known_values() {
        // MD5("hello world") and the S3 checksums of it, as AWS documents them.
        let r = compute(EtagAlgorithm::Md5, ChecksumAlgorithm::Crc32, b"hello world");
        assert_eq!(r.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(r.checksum, Some((ChecksumAlgorithm::Crc32, "DUoRhQ==".into())));
        let r = compute(EtagAlgorithm::Md5, ChecksumAlgorithm::Crc32c, b"hello world");
        assert_eq!(r.checksum.map(|c| c.1), Some("yZRlqg==".into()));
        let r = compute(EtagAlgorithm::Md5, ChecksumAlgorithm::Sha256, b"hello world");
        assert_eq!(r.checksum.map(|c| c.1), Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=".into()));
        let r = compute(EtagAlgorithm::Md5, ChecksumAlgorithm::Sha1, b"hello world");
        assert_eq!(r.checksum.map(|c| c.1), Some("Kq5sNclPz7QV2+lfQIuc6R7oRu0=".into()));
        assert_eq!(r.len, 11);
        let b = compute(EtagAlgorithm::Blake3, ChecksumAlgorithm::Crc64Nvme, b"hello world");
        assert_eq!(b.etag.len(), 32);
        assert_ne!(b.etag, r.etag);
    }

    #[test]
    fn content_md5_is_computed_beside_a_blake3_etag_when_asked() {
        let meters = HashMeters::register(&Meters::default());
        let mut with = Hashes::new(EtagAlgorithm::Blake3, None, true, portable_crc(), &meters);
        let mut without = Hashes::new(EtagAlgorithm::Blake3, None, false, portable_crc(), &meters);
        with.update(b"hello world");
        without.update(b"hello world");
        let (with, without) = (with.finish(), without.finish());
        assert_eq!(with.md5.map(|d| hex(&d)).as_deref(), Some("5eb63bbbe01eeed093cb22bb8f5acdc3"));
        assert_eq!(without.md5, None);
        assert_eq!(with.etag, without.etag, "the ETag stays BLAKE3");
    }

    #[test]
    fn multipart_etags() {
        let d1 = etag_digest("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"").expect("hex");
        assert_eq!(hex(&d1), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let e = multipart_etag(EtagAlgorithm::Md5, &[d1, d1]);
        assert!(e.ends_with("-2") && e.len() == 34, "{e}");
        assert!(etag_digest("nope").is_none());
    }
}

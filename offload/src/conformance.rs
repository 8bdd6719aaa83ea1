//! Known-answer vectors and checks that every engine must pass.
//!
//! One suite, run against every engine of a job (as rustls runs one API suite per
//! crypto provider): the unit tests call it for each engine built here, and an
//! operator can run it against the engines selected on a machine
//! (`skyshard selftest`, later) because it ships in the library, not only in tests.

use crate::aead::{AeadEngine, DataKey, Nonce, Tag};
use crate::crc::{CHECK_VALUE, Crc32c};
use crate::engine::gf_portable::PortableKernel;
use crate::gf::GfKernel;
use crate::random::{SecureRandom, SeededRandom};
use crate::xts::{XtsEngine, XtsKeyMaterial};

/// An AES-256-GCM known answer.
#[derive(Debug, Clone, Copy)]
pub struct GcmVector {
    /// Where it comes from.
    pub source: &'static str,
    /// Key, hex.
    pub key: &'static str,
    /// Nonce, hex.
    pub nonce: &'static str,
    /// Associated data, hex.
    pub aad: &'static str,
    /// Plaintext, hex.
    pub plaintext: &'static str,
    /// Ciphertext, hex.
    pub ciphertext: &'static str,
    /// Tag, hex.
    pub tag: &'static str,
}

/// AES-256-GCM vectors: NIST CAVP `gcmEncryptExtIV256.rsp` (96-bit IVs, 128-bit
/// tags) and the AES-256 cases of McGrew & Viega's GCM specification.
pub const GCM_VECTORS: &[GcmVector] = &[
    GcmVector {
        source: "CAVP gcmEncryptExtIV256 (PT=0, AAD=0)",
        key: "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
        nonce: "516c33929df5a3284ff463d7",
        aad: "",
        plaintext: "",
        ciphertext: "",
        tag: "bdc1ac884d332457a1d2664f168c76f0",
    },
    GcmVector {
        source: "CAVP gcmEncryptExtIV256 (PT=0, AAD=128)",
        key: "78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223",
        nonce: "d79cf22d504cc793c3fb6c8a",
        aad: "b96baa8c1c75a671bfb2d08d06be5f36",
        plaintext: "",
        ciphertext: "",
        tag: "3e5d486aa2e30b22e040b85723a06e76",
    },
    GcmVector {
        source: "CAVP gcmEncryptExtIV256 (PT=104, AAD=0)",
        key: "82c4f12eeec3b2d3d157b0f992d292b237478d2cecc1d5f161389b97f999057a",
        nonce: "7b40b20f5f397177990ef2d1",
        aad: "",
        plaintext: "982a296ee1cd7086afad976945",
        ciphertext: "ec8e05a0471d6b43a59ca5335f",
        tag: "113ddeafc62373cac2f5951bb9165249",
    },
    GcmVector {
        source: "CAVP gcmEncryptExtIV256 (PT=104, AAD=128)",
        key: "dad89d9be9bba138cdcf8752c45b579d7e27c3dbb40f53e771dd8cfd500aa2d5",
        nonce: "cfb2aec82cfa6c7d89ee72ff",
        aad: "6e43784a91851a77667a02198e28dc32",
        plaintext: "b526ba1050177d05b0f72f8d67",
        ciphertext: "8b29e66e924ecae84f6d8f7d68",
        tag: "1e365805c8f28b2ed8a5cadfd9079158",
    },
    GcmVector {
        source: "CAVP gcmEncryptExtIV256 (PT=408, AAD=384)",
        key: "4a8a12c0575ec65ae1c5784d2829bc7b04818eb00bd4c90a0d032ea281076e27",
        nonce: "959f113b705397fb738018b0",
        aad: "adb8bc96142a1025122dc22f826957197af33dcdcf6b7ab56bc1a5e17e8534e48b8daf685faf9543bb343614bdf6737f",
        plaintext: "0c5571195586e4fc7096fb86cfcd6684081446f3d7adc33a897f03ac4ff6c3cc2019b67bd3184c86070764f6deaa8a10d0d81f",
        ciphertext: "84212d5991231d35c4e8621163e5b370a0105a05856866e74df72c0808c062981570d32d274ea732fa4d29f9cfa7839cadbe6a",
        tag: "39cee3b8fa0bf92605666ccd9eb19840",
    },
    GcmVector {
        source: "CAVP gcmEncryptExtIV256 (PT=408, AAD=720)",
        key: "148579a3cbca86d5520d66c0ec71ca5f7e41ba78e56dc6eebd566fed547fe691",
        nonce: "b08a5ea1927499c6ecbfd4e0",
        aad: "e4f963f015ffbb99ee3349bbaf7e8e8e6c2a71c230a48f9d59860a29091d2747e01a5ca572347e247d25f56ba7ae8e05cde2be3c97931292c02370208ecd097ef692687fecf2f419d3200162a6480a57dad408a0dfeb492e2c5d",
        plaintext: "9d0b15fdf1bd595f91f8b3abc0f7dec927dfd4799935a1795d9ce00c9b879434420fe42c275a7cd7b39d638fb81ca52b49dc41",
        ciphertext: "2097e372950a5e9383c675e89eea1c314f999159f5611344b298cda45e62843716f215f82ee663919c64002a5c198d7878fd3f",
        tag: "adbecdb0d5c2224d804d2886ff9a5760",
    },
    GcmVector {
        source: "GCM spec test case 13",
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        nonce: "000000000000000000000000",
        aad: "",
        plaintext: "",
        ciphertext: "",
        tag: "530f8afbc74536b9a963b4f1c4cb738b",
    },
    GcmVector {
        source: "GCM spec test case 14",
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        nonce: "000000000000000000000000",
        aad: "",
        plaintext: "00000000000000000000000000000000",
        ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
        tag: "d0d1c8a799996bf0265b98b5d48ab919",
    },
    GcmVector {
        source: "GCM spec test case 15",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        nonce: "cafebabefacedbaddecaf888",
        aad: "",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        tag: "b094dac5d93471bdec1a502270e3cc6c",
    },
    GcmVector {
        source: "GCM spec test case 16",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        nonce: "cafebabefacedbaddecaf888",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
];

/// A conformance failure: which check, and what differed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{engine}: {check}")]
pub struct Failure {
    /// The engine that failed.
    pub engine: String,
    /// What went wrong.
    pub check: String,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
}

fn fail(engine: &str, check: String) -> Failure {
    Failure { engine: engine.to_string(), check }
}

/// Runs every GCM vector through `engine`: seal must give the ciphertext and tag,
/// open must give the plaintext, and a flipped bit in the ciphertext, the tag or the
/// associated data must be refused.
pub fn check_aead(engine: &dyn AeadEngine) -> Result<(), Failure> {
    let name = engine.name();
    for v in GCM_VECTORS {
        let mut key = [0u8; 32];
        key.copy_from_slice(&unhex(v.key));
        let key = engine.key(&DataKey::from_bytes(key)).map_err(|e| fail(name, format!("{}: {e}", v.source)))?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&unhex(v.nonce));
        let nonce = Nonce(nonce);
        let aad = unhex(v.aad);
        let mut buf = unhex(v.plaintext);
        let tag = key.seal(&nonce, &aad, &mut buf).map_err(|_| fail(name, format!("{}: seal failed", v.source)))?;
        if buf != unhex(v.ciphertext) || tag.0.to_vec() != unhex(v.tag) {
            return Err(fail(name, format!("{}: wrong ciphertext or tag", v.source)));
        }
        let sealed = buf.clone();
        key.open(&nonce, &aad, &mut buf, &tag).map_err(|_| fail(name, format!("{}: open refused", v.source)))?;
        if buf != unhex(v.plaintext) {
            return Err(fail(name, format!("{}: wrong plaintext", v.source)));
        }
        // Tampering anywhere must be refused.
        let mut bad_tag = tag;
        bad_tag.0[15] ^= 1;
        let mut b = sealed.clone();
        if key.open(&nonce, &aad, &mut b, &bad_tag).is_ok() {
            return Err(fail(name, format!("{}: accepted a wrong tag", v.source)));
        }
        if !sealed.is_empty() {
            let mut b = sealed.clone();
            b[0] ^= 0x80;
            if key.open(&nonce, &aad, &mut b, &tag).is_ok() {
                return Err(fail(name, format!("{}: accepted a changed ciphertext", v.source)));
            }
        }
        let mut bad_aad = aad.clone();
        bad_aad.push(0);
        let mut b = sealed.clone();
        if key.open(&nonce, &bad_aad, &mut b, &tag).is_ok() {
            return Err(fail(name, format!("{}: accepted changed associated data", v.source)));
        }
        let mut other_nonce = nonce;
        other_nonce.0[11] ^= 1;
        let mut b = sealed;
        if key.open(&other_nonce, &aad, &mut b, &tag).is_ok() {
            return Err(fail(name, format!("{}: accepted another nonce", v.source)));
        }
    }
    // Large buffers: a round trip through the engine, compared with ring.
    let reference = crate::engine::ring::RingAead;
    let key = DataKey::from_bytes([7; 32]);
    let (ours, theirs) = (
        engine.key(&key).map_err(|e| fail(name, e.to_string()))?,
        reference.key(&key).map_err(|e| fail(name, e.to_string()))?,
    );
    for len in [1usize, 15, 16, 17, 4095, 65_537, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let nonce = Nonce([len as u8; 12]);
        let (mut a, mut b) = (data.clone(), data.clone());
        let ta = ours.seal(&nonce, b"aad", &mut a).map_err(|_| fail(name, format!("seal {len} bytes")))?;
        let tb = theirs.seal(&nonce, b"aad", &mut b).map_err(|_| fail(name, format!("ring seal {len}")))?;
        if a != b || ta != tb {
            return Err(fail(name, format!("{len} bytes: differs from ring")));
        }
        ours.open(&nonce, b"aad", &mut a, &Tag(ta.0)).map_err(|_| fail(name, format!("open {len} bytes")))?;
        if a != data {
            return Err(fail(name, format!("{len} bytes: round trip differs")));
        }
    }
    Ok(())
}

/// Checks `kernel` against the portable kernel on random matrices and rows of many
/// shapes: every row count up to 24, unaligned lengths, zero and one coefficients.
pub fn check_gf(kernel: &dyn GfKernel) -> Result<(), Failure> {
    let rng = SeededRandom::new(0x5eed_6f00);
    let reference = PortableKernel;
    let shapes: &[(usize, usize, usize)] = &[
        (1, 1, 32),
        (4, 6, 0),
        (4, 6, 1),
        (4, 6, 31),
        (4, 6, 32),
        (4, 6, 33),
        (4, 6, 4096),
        (4, 4, 65_536 + 17),
        (8, 12, 5000),
        (8, 8, 100_000),
        (16, 24, 8192 + 96),
        (10, 16, 777),
        (3, 9, 64),
        (2, 1, 1024),
        (1, 24, 300),
        (32, 7, 2048),
    ];
    for &(k, rows, len) in shapes {
        let mut coeffs = vec![0u8; k * rows];
        rng.fill(&mut coeffs).map_err(|e| fail(kernel.name(), e.to_string()))?;
        // Exercise the special cases 0 and 1 too.
        if coeffs.len() > 2 {
            coeffs[0] = 0;
            coeffs[1] = 1;
        }
        let mut data = vec![0u8; k * len];
        rng.fill(&mut data).map_err(|e| fail(kernel.name(), e.to_string()))?;
        let inputs: Vec<&[u8]> = if len == 0 { vec![&[][..]; k] } else { data.chunks(len).collect() };
        let mut ours = vec![0xEEu8; rows * len];
        let mut theirs = vec![0x11u8; rows * len];
        {
            let mut outs: Vec<&mut [u8]> =
                if len == 0 { (0..rows).map(|_| &mut [][..]).collect() } else { ours.chunks_mut(len).collect() };
            kernel.dot_prod(&coeffs, &inputs, &mut outs);
            let mut refs: Vec<&mut [u8]> =
                if len == 0 { (0..rows).map(|_| &mut [][..]).collect() } else { theirs.chunks_mut(len).collect() };
            reference.dot_prod(&coeffs, &inputs, &mut refs);
        }
        if ours != theirs {
            return Err(fail(kernel.name(), format!("k={k} rows={rows} len={len}: differs from portable")));
        }
    }
    // Unaligned row starts.
    let k = 4;
    let len = 1000;
    let mut data = vec![0u8; k * len + 3];
    rng.fill(&mut data).map_err(|e| fail(kernel.name(), e.to_string()))?;
    let inputs: Vec<&[u8]> = data[3..].chunks(len).collect();
    let coeffs: Vec<u8> = (1..=24).collect();
    let mut ours = vec![0u8; 6 * len + 5];
    let mut theirs = vec![0u8; 6 * len];
    kernel.dot_prod(&coeffs, &inputs, &mut ours[5..].chunks_mut(len).collect::<Vec<_>>());
    reference.dot_prod(&coeffs, &inputs, &mut theirs.chunks_mut(len).collect::<Vec<_>>());
    if ours[5..] != theirs[..] {
        return Err(fail(kernel.name(), "unaligned rows: differs from portable".into()));
    }
    Ok(())
}

/// Checks a CRC32C engine: the catalogue check value, appending, and agreement with
/// the portable tables on many lengths and offsets.
pub fn check_crc(engine: &dyn Crc32c) -> Result<(), Failure> {
    let name = engine.name();
    if engine.checksum(b"123456789") != CHECK_VALUE {
        return Err(fail(name, "check value of \"123456789\"".into()));
    }
    if engine.checksum(b"") != 0 {
        return Err(fail(name, "checksum of nothing must be 0".into()));
    }
    let reference = crate::engine::crc::PortableCrc;
    let rng = SeededRandom::new(99);
    let mut data = vec![0u8; 70_000];
    rng.fill(&mut data).map_err(|e| fail(name, e.to_string()))?;
    for len in [1usize, 7, 8, 9, 63, 64, 65, 255, 4096, 4097, 69_999] {
        for off in [0usize, 1, 3] {
            let d = &data[off..off + len.min(data.len() - off)];
            if engine.checksum(d) != reference.checksum(d) {
                return Err(fail(name, format!("{} bytes at offset {off}", d.len())));
            }
            let (a, b) = d.split_at(d.len() / 3);
            if engine.append(engine.checksum(a), b) != reference.checksum(d) {
                return Err(fail(name, format!("append at {} of {}", a.len(), d.len())));
            }
        }
    }
    Ok(())
}

/// IEEE 1619-2007 XTS-AES-256 vector 10: 512-byte data unit, sequence number 0xFF.
pub const XTS_VECTOR_10: (&str, &str, u128, &str) = (
    "2718281828459045235360287471352662497757247093699959574966967627",
    "3141592653589793238462643383279502884197169399375105820974944592",
    0xFF,
    "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed43851ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151",
);

/// Checks an XTS engine against IEEE 1619 vector 10, and that sectors round-trip,
/// differ per sector number, and handle ciphertext stealing.
pub fn check_xts(engine: &dyn XtsEngine) -> Result<(), Failure> {
    let name = engine.name();
    let (k1, k2, sector, ct) = XTS_VECTOR_10;
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(&unhex(k1));
    key[32..].copy_from_slice(&unhex(k2));
    let key = engine.key(&XtsKeyMaterial::from_bytes(key));
    let plain: Vec<u8> = (0..512).map(|i| i as u8).collect();
    let mut buf = plain.clone();
    key.encrypt_sector(sector, &mut buf);
    if buf != unhex(ct) {
        return Err(fail(name, "IEEE 1619 vector 10 ciphertext".into()));
    }
    key.decrypt_sector(sector, &mut buf);
    if buf != plain {
        return Err(fail(name, "IEEE 1619 vector 10 decryption".into()));
    }
    let mut a = plain.clone();
    let mut b = plain.clone();
    key.encrypt_sector(1, &mut a);
    key.encrypt_sector(2, &mut b);
    if a == b {
        return Err(fail(name, "two sectors encrypt alike".into()));
    }
    for len in [16usize, 17, 31, 4096, 4100] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut buf = data.clone();
        key.encrypt_sector(9, &mut buf);
        key.decrypt_sector(9, &mut buf);
        if buf != data {
            return Err(fail(name, format!("{len}-byte sector round trip")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aead::AeadEngine;
    use crate::engine::crc::{CrcFast, PortableCrc, Sse42Crc};
    use crate::engine::gf_avx2::Avx2Kernel;
    use crate::engine::gf_gfni::{GfniKernel, Width};
    use crate::engine::pool::AeadPool;
    use crate::engine::ring::RingAead;
    use crate::engine::rustcrypto::{RustCryptoAead, RustCryptoXts};
    use crate::isal::{IsalCrc, IsalKernel};

    #[cfg_attr(not(feature = "aws-lc"), allow(unused_mut))]
    fn aead_engines() -> Vec<Arc<dyn AeadEngine>> {
        let mut v: Vec<Arc<dyn AeadEngine>> = vec![
            Arc::new(RingAead),
            Arc::new(RustCryptoAead),
            Arc::new(AeadPool::new(Arc::new(RingAead), 2, 4)),
            Arc::new(AeadPool::new(Arc::new(RustCryptoAead), 1, 1)),
        ];
        #[cfg(feature = "aws-lc")]
        v.push(Arc::new(crate::engine::aws_lc::AwsLcAead));
        v
    }

    #[test]
    fn every_aead_engine_passes_the_vectors() {
        for engine in aead_engines() {
            check_aead(engine.as_ref()).unwrap_or_else(|f| panic!("{f}"));
        }
    }

    #[test]
    fn every_gf_kernel_matches_portable() {
        check_gf(&PortableKernel).expect("portable against itself");
        match Avx2Kernel::new() {
            Some(k) => check_gf(&k).unwrap_or_else(|f| panic!("{f}")),
            None => eprintln!("skipping avx2: CPU lacks AVX2"),
        }
        for width in [Width::Zmm, Width::Ymm] {
            match GfniKernel::new(width) {
                Some(k) => check_gf(&k).unwrap_or_else(|f| panic!("{f}")),
                None => eprintln!("skipping {width:?} GFNI kernel: the CPU lacks GFNI or the vector width"),
            }
        }
        match IsalKernel::new() {
            Ok(k) => check_gf(&k).unwrap_or_else(|f| panic!("{f}")),
            Err(e) => eprintln!("skipping isal: {e}"),
        }
    }

    #[test]
    fn every_crc_engine_passes() {
        check_crc(&PortableCrc).unwrap_or_else(|f| panic!("{f}"));
        check_crc(&Sse42Crc).unwrap_or_else(|f| panic!("{f}"));
        check_crc(&CrcFast).unwrap_or_else(|f| panic!("{f}"));
        match IsalCrc::new() {
            Ok(c) => check_crc(&c).unwrap_or_else(|f| panic!("{f}")),
            Err(e) => eprintln!("skipping isal: {e}"),
        }
    }

    #[test]
    fn xts_passes_ieee_1619() {
        check_xts(&RustCryptoXts).unwrap_or_else(|f| panic!("{f}"));
    }

    #[test]
    fn a_broken_engine_fails_conformance() {
        // The suite must be able to fail: a kernel that drops the last row's work.
        #[derive(Debug)]
        struct Broken;
        impl GfKernel for Broken {
            fn name(&self) -> &'static str {
                "broken"
            }
            fn dot_prod(&self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
                PortableKernel.dot_prod(coeffs, inputs, outputs);
                if let Some(last) = outputs.last_mut().and_then(|r| r.last_mut()) {
                    *last ^= 1;
                }
            }
        }
        assert!(check_gf(&Broken).is_err());

        #[derive(Debug)]
        struct Lazy;
        impl Crc32c for Lazy {
            fn name(&self) -> &'static str {
                "lazy"
            }
            fn append(&self, crc: u32, data: &[u8]) -> u32 {
                PortableCrc.append(crc, &data[..data.len().min(4096)])
            }
        }
        assert!(check_crc(&Lazy).is_err());
    }
}

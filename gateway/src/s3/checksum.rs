//! How checksums travel in S3 requests and responses: the `x-amz-checksum-*`
//! headers (or trailers of an aws-chunked body), the algorithm a client asks for,
//! and the output fields that carry a value back.

use s3s::S3Request;

use crate::meta::ChecksumAlgorithm;
use crate::pipeline::GivenChecksum;

/// The header carrying `alg`'s value (`x-amz-checksum-crc32`, …).
pub fn header(alg: ChecksumAlgorithm) -> &'static str {
    match alg {
        ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
        ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
        ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
        ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
    }
}

/// The algorithm whose value header is `name`, any case.
pub fn from_header(name: &str) -> Option<ChecksumAlgorithm> {
    ChecksumAlgorithm::ALL.iter().copied().find(|a| header(*a).eq_ignore_ascii_case(name.trim()))
}

/// The checksum algorithm a request asks for: named in `x-amz-sdk-checksum-algorithm`
/// / `x-amz-checksum-algorithm`, implied by an `x-amz-checksum-*` header, or
/// announced as a trailer.
pub fn requested(
    headers: &http::HeaderMap,
    declared: Option<&s3s::dto::ChecksumAlgorithm>,
) -> Option<ChecksumAlgorithm> {
    if let Some(d) = declared.and_then(|d| ChecksumAlgorithm::from_name(d.as_str())) {
        return Some(d);
    }
    if let Some(a) = ChecksumAlgorithm::ALL.iter().copied().find(|a| headers.contains_key(header(*a))) {
        return Some(a);
    }
    let trailer = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok())?;
    trailer.split(',').find_map(from_header)
}

/// The value a client gave for `alg`: its header now, or else the trailer of the
/// same name once the body has been read.
pub fn given<T>(req: &S3Request<T>, alg: ChecksumAlgorithm) -> GivenChecksum {
    let name = header(alg);
    let now = req.headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
    let trailers = req.trailing_headers.clone();
    Box::new(move || {
        now.or_else(|| {
            trailers?.read(|h| h.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())).flatten()
        })
    })
}

/// Sets the checksum field of an output struct for `alg`.
macro_rules! set_checksum {
    ($out:expr, $alg:expr, $value:expr) => {
        match $alg {
            $crate::meta::ChecksumAlgorithm::Crc32 => $out.checksum_crc32 = Some($value),
            $crate::meta::ChecksumAlgorithm::Crc32c => $out.checksum_crc32c = Some($value),
            $crate::meta::ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64nvme = Some($value),
            $crate::meta::ChecksumAlgorithm::Sha1 => $out.checksum_sha1 = Some($value),
            $crate::meta::ChecksumAlgorithm::Sha256 => $out.checksum_sha256 = Some($value),
        }
    };
}
pub(super) use set_checksum;

/// The checksum field of an input struct for `alg`.
macro_rules! get_checksum {
    ($in:expr, $alg:expr) => {
        match $alg {
            $crate::meta::ChecksumAlgorithm::Crc32 => $in.checksum_crc32.clone(),
            $crate::meta::ChecksumAlgorithm::Crc32c => $in.checksum_crc32c.clone(),
            $crate::meta::ChecksumAlgorithm::Crc64Nvme => $in.checksum_crc64nvme.clone(),
            $crate::meta::ChecksumAlgorithm::Sha1 => $in.checksum_sha1.clone(),
            $crate::meta::ChecksumAlgorithm::Sha256 => $in.checksum_sha256.clone(),
        }
    };
}
pub(super) use get_checksum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_requests() {
        assert_eq!(from_header("X-Amz-Checksum-Sha256"), Some(ChecksumAlgorithm::Sha256));
        assert_eq!(from_header("x-amz-checksum-md5"), None);
        let mut h = http::HeaderMap::new();
        assert_eq!(requested(&h, None), None);
        h.insert("x-amz-trailer", "x-amz-checksum-crc32c".parse().expect("value"));
        assert_eq!(requested(&h, None), Some(ChecksumAlgorithm::Crc32c));
        h.insert("x-amz-checksum-sha1", "abc".parse().expect("value"));
        assert_eq!(requested(&h, None), Some(ChecksumAlgorithm::Sha1));
        let declared = s3s::dto::ChecksumAlgorithm::from_static(s3s::dto::ChecksumAlgorithm::CRC64NVME);
        assert_eq!(requested(&h, Some(&declared)), Some(ChecksumAlgorithm::Crc64Nvme));
    }
}

/// Whether a whole request body held in memory matches every digest its headers
/// give (`Content-MD5`, `x-amz-checksum-*`); `Err` names the first that does not.
/// For the XML bodies S3 checks before acting on them (DeleteObjects above all:
/// a body changed in transit must delete nothing).
pub fn check_whole_body(headers: &http::HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    use base64::Engine as _;
    let b64 = |raw: &[u8]| base64::engine::general_purpose::STANDARD.encode(raw);
    let given = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(md5) = given("content-md5") {
        use md5::Digest as _;
        if b64(&md5::Md5::digest(body)) != md5 {
            return Err("Content-MD5");
        }
    }
    for alg in ChecksumAlgorithm::ALL.iter().copied() {
        let Some(value) = given(header(alg)) else { continue };
        let raw: Vec<u8> = match alg {
            ChecksumAlgorithm::Crc32 => crc32fast::hash(body).to_be_bytes().to_vec(),
            ChecksumAlgorithm::Crc32c => {
                (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, body) as u32).to_be_bytes().to_vec()
            }
            ChecksumAlgorithm::Crc64Nvme => {
                crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, body).to_be_bytes().to_vec()
            }
            ChecksumAlgorithm::Sha1 => {
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, body).as_ref().to_vec()
            }
            ChecksumAlgorithm::Sha256 => ring::digest::digest(&ring::digest::SHA256, body).as_ref().to_vec(),
        };
        if b64(&raw) != value {
            return Err(header(alg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod whole_body_tests {
    use super::*;

    #[test]
    fn whole_body_digests() {
        let body = b"<Delete><Object><Key>a</Key></Object></Delete>";
        let mut h = http::HeaderMap::new();
        assert_eq!(check_whole_body(&h, body), Ok(()));
        // MD5 and CRC32 of the body, computed elsewhere (python3 hashlib/zlib).
        h.insert("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==".parse().expect("test value"));
        assert_eq!(check_whole_body(&h, b""), Ok(()), "the MD5 of nothing");
        assert_eq!(check_whole_body(&h, body), Err("Content-MD5"));
        h.remove("content-md5");
        h.insert("x-amz-checksum-crc32", "AAAAAA==".parse().expect("test value"));
        assert_eq!(check_whole_body(&h, b""), Ok(()), "the CRC32 of nothing");
        assert_eq!(check_whole_body(&h, body), Err("x-amz-checksum-crc32"));
    }
}

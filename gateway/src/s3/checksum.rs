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

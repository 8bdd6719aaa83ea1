//! SSE-C on the S3 side: the three request headers read and checked as S3 checks
//! them, the object's key check applied (400 without the key, 403 with another),
//! and the response headers that say which key was used.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use s3s::{S3Error, S3Result, s3_error};

use crate::pipeline::CustomerKey;

/// The customer key a request gives, if any: algorithm `AES256`, a key of 256 bits
/// in base64, and its MD5 in base64, all three or none; only over TLS.
pub(super) fn given(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
    secure: bool,
) -> S3Result<Option<Arc<CustomerKey>>> {
    if algorithm.is_none() && key.is_none() && key_md5.is_none() {
        return Ok(None);
    }
    if !secure {
        return Err(s3_error!(
            InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
        ));
    }
    match algorithm {
        Some("AES256") => {}
        Some(_) => {
            return Err(s3_error!(
                InvalidEncryptionAlgorithmError,
                "The encryption request you specified is not valid. The valid value is AES256."
            ));
        }
        None => {
            return Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide a valid \
                 encryption algorithm."
            ));
        }
    }
    let raw = key.and_then(|k| B64.decode(k.trim()).ok()).unwrap_or_default();
    let Ok(bytes) = <[u8; 32]>::try_from(raw.as_slice()) else {
        return Err(s3_error!(InvalidArgument, "The secret key was invalid for the specified algorithm."));
    };
    let customer = CustomerKey::new(bytes);
    // Both the key and its MD5 came with this request: nothing secret is compared.
    let md5_matches = key_md5.is_some_and(|m| B64.decode(m.trim()).is_ok_and(|d| d == md5_of(&bytes)));
    if !md5_matches {
        return Err(s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ));
    }
    Ok(Some(Arc::new(customer)))
}

fn md5_of(key: &[u8; 32]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(key).into()
}

/// Whether a request with `given` may use an object (or upload) whose key check is
/// `check`.
pub(super) fn admit(check: Option<&str>, given: Option<&CustomerKey>) -> S3Result<()> {
    match (check, given) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided \
             to retrieve the object."
        )),
        (None, Some(_)) => {
            Err(s3_error!(InvalidRequest, "The encryption parameters are not applicable to this object."))
        }
        (Some(check), Some(key)) if key.matches(check) => Ok(()),
        (Some(_), Some(_)) => Err(s3_error!(AccessDenied, "The customer key does not match the object's.")),
    }
}

/// The key check to keep for an object written with `given`.
pub(super) fn check_of(
    given: Option<&CustomerKey>,
    random: &dyn offload::random::SecureRandom,
) -> S3Result<Option<String>> {
    given.map(|c| c.check(random).map_err(|e| S3Error::with_message(s3s::S3ErrorCode::InternalError, e))).transpose()
}

/// The customer key an S3 input (PutObject, GetObject, HeadObject,
/// CreateMultipartUpload, UploadPart) gives, read by `front`.
macro_rules! customer_key_of {
    ($front:expr, $i:expr) => {
        $front.customer_key(
            $i.sse_customer_algorithm.as_deref(),
            $i.sse_customer_key.as_deref(),
            $i.sse_customer_key_md5.as_deref(),
        )
    };
}
pub(super) use customer_key_of;

/// Sets the SSE headers of a response about an object written with `given` (the
/// customer's algorithm and key MD5), or says every other object is SSE-S3.
macro_rules! set_sse {
    ($out:expr, $given:expr) => {
        match $given {
            Some(c) => {
                $out.sse_customer_algorithm = Some("AES256".to_string());
                $out.sse_customer_key_md5 = Some(c.key_md5().to_string());
            }
            None => $out.server_side_encryption = Some($crate::s3::sse_s3()),
        }
    };
}
pub(super) use set_sse;

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: S3Result<Option<Arc<CustomerKey>>>) -> String {
        r.expect_err("refused").code().as_str().to_string()
    }

    #[test]
    fn headers_as_s3_checks_them() {
        let key = [9u8; 32];
        let (k, m) = (B64.encode(key), B64.encode(md5_of(&key)));
        let c = given(Some("AES256"), Some(&k), Some(&m), true).expect("valid").expect("a key");
        assert_eq!(c.key_md5(), m);
        assert!(given(None, None, None, false).expect("none").is_none());
        assert_eq!(code(given(Some("AES256"), Some(&k), Some(&m), false)), "InvalidRequest");
        assert_eq!(code(given(Some("AES128"), Some(&k), Some(&m), true)), "InvalidEncryptionAlgorithmError");
        assert_eq!(code(given(None, Some(&k), Some(&m), true)), "InvalidArgument");
        assert_eq!(code(given(Some("AES256"), Some("c2hvcnQ="), Some(&m), true)), "InvalidArgument");
        assert_eq!(code(given(Some("AES256"), Some(&k), Some("AAAA"), true)), "InvalidArgument");
        assert_eq!(code(given(Some("AES256"), Some(&k), None, true)), "InvalidArgument");

        let rng = offload::random::SystemRandom::new();
        let check = check_of(Some(&c), &rng).expect("check").expect("some");
        admit(Some(&check), Some(&c)).expect("the same key");
        admit(None, None).expect("no key, none asked");
        let other = CustomerKey::new([1; 32]);
        assert_eq!(admit(Some(&check), Some(&other)).expect_err("another").code().as_str(), "AccessDenied");
        assert_eq!(admit(Some(&check), None).expect_err("missing").code().as_str(), "InvalidRequest");
        assert_eq!(admit(None, Some(&c)).expect_err("not applicable").code().as_str(), "InvalidRequest");
    }
}

//! Requests that ask for a protection are honoured or refused, never accepted and
//! dropped: a client that asked for a customer key, a retention period, a public
//! ACL or tags must not believe it has them when the gateway does not keep them.
//!
//! Honoured: SSE-S3 (`x-amz-server-side-encryption: AES256`) — every object is
//! encrypted (AES-256-GCM under its own data key), and responses say so —,
//! customer keys (SSE-C, in `sse_c.rs`) and object lock (`lock.rs`, which refuses
//! lock headers for a bucket without it) and tags (`tagging.rs`). Refused, with the
//! error S3 itself gives where it has one: KMS keys, ACLs other than private, grants.

use http::HeaderMap;
use s3s::{S3Error, S3Result, s3_error};

/// Operations that store a new object (or part) and so may ask for protections.
const WRITES: &[&str] = &["PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject", "UploadPartCopy"];

/// Checks the protection headers of a request to `op`.
pub(super) fn check(op: &str, headers: &HeaderMap) -> S3Result<()> {
    let has = |name: &str| headers.contains_key(name);
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if WRITES.contains(&op) {
        match value("x-amz-server-side-encryption") {
            None | Some("AES256") => {}
            Some(alg @ ("aws:kms" | "aws:kms:dsse")) => {
                return Err(not_implemented(format!(
                    "Server-side encryption {alg} (KMS keys) is not supported by this gateway; every object is \
                     encrypted with a key of its own (use AES256, or no header)."
                )));
            }
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "The server-side encryption algorithm must be AES256 (aws:kms is not supported)."
                ));
            }
        }
        if has("x-amz-server-side-encryption-aws-kms-key-id") || has("x-amz-server-side-encryption-context") {
            return Err(not_implemented("KMS keys are not supported by this gateway."));
        }
    }
    if matches!(op, "PutObject" | "CreateMultipartUpload" | "CopyObject" | "CreateBucket") {
        check_acl(headers)?;
    }
    Ok(())
}

/// Only the private ACL (the bucket owner has full control: what every object
/// here has) is accepted; S3 answers the same for a bucket with ACLs disabled.
fn check_acl(headers: &HeaderMap) -> S3Result<()> {
    if let Some(acl) = headers.get("x-amz-acl").and_then(|v| v.to_str().ok())
        && !matches!(acl.trim(), "private" | "bucket-owner-full-control")
    {
        return Err(acl_not_supported());
    }
    if headers.keys().any(|k| k.as_str().starts_with("x-amz-grant-")) {
        return Err(acl_not_supported());
    }
    Ok(())
}

fn acl_not_supported() -> S3Error {
    super::error::coded(
        "AccessControlListNotSupported",
        http::StatusCode::BAD_REQUEST,
        "The bucket does not allow ACLs: every object is private to its tenant.",
    )
}

fn not_implemented(msg: impl Into<std::borrow::Cow<'static, str>>) -> S3Error {
    S3Error::with_message(s3s::S3ErrorCode::NotImplemented, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().expect("test value"))).collect()
    }

    fn code(op: &str, pairs: &[(&'static str, &'static str)]) -> Option<String> {
        check(op, &headers(pairs)).err().map(|e| e.code().as_str().to_string())
    }

    #[test]
    fn refused_or_honoured() {
        assert_eq!(code("PutObject", &[]), None);
        assert_eq!(code("PutObject", &[("x-amz-server-side-encryption", "AES256")]), None);
        assert_eq!(code("PutObject", &[("x-amz-acl", "private")]), None);
        let sse_c = [("x-amz-server-side-encryption-customer-algorithm", "AES256")];
        assert_eq!(code("PutObject", &sse_c), None, "SSE-C is honoured (sse_c.rs)");
        assert_eq!(code("CopyObject", &sse_c), None, "copies of SSE-C objects are honoured (copy.rs)");
        assert_eq!(code("CopyObject", &[("x-amz-tagging-directive", "COPY")]), None, "tags are copied");
        assert_eq!(code("PutObject", &[("x-amz-tagging", "a=b")]), None, "tags are kept (tagging.rs)");
        let kms = [("x-amz-server-side-encryption", "aws:kms")];
        assert_eq!(code("CreateMultipartUpload", &kms).as_deref(), Some("NotImplemented"));
        assert_eq!(code("PutObject", &[("x-amz-server-side-encryption", "rot13")]).as_deref(), Some("InvalidArgument"));
        let public = [("x-amz-acl", "public-read")];
        assert_eq!(code("PutObject", &public).as_deref(), Some("AccessControlListNotSupported"));
        assert_eq!(code("CreateBucket", &public).as_deref(), Some("AccessControlListNotSupported"));
        let grant = [("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")];
        assert_eq!(code("PutObject", &grant).as_deref(), Some("AccessControlListNotSupported"));
        assert_eq!(code("ListObjectsV2", &sse_c), None, "a header that asks nothing of a listing");
    }
}

//! Request bodies: s3s's body stream (already unwrapped from aws-chunked framing,
//! each chunk's signature checked) as the data path's [`BodyStream`], with its
//! errors classified once into a typed [`BodyError`] that the error mapping reads
//! back.

use futures::StreamExt as _;
use s3s::dto::StreamingBlob;

use crate::pipeline::{BodyStream, BoxError};

/// Reading a request body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A chunk signature of an aws-chunked body did not match.
    #[error("a chunk signature of the request body did not match")]
    Signature,
    /// The aws-chunked framing is malformed or exceeds its limits.
    #[error("the aws-chunked request body is malformed: {0}")]
    Malformed(String),
    /// The body's SHA-256 is not the `x-amz-content-sha256` the request signed.
    #[error("the request body does not match its x-amz-content-sha256")]
    Sha256Mismatch,
    /// The client sent the body more slowly than the endpoint's minimum rate.
    #[error("the request body arrived too slowly: {0}")]
    TooSlow(String),
    /// The connection failed or ended while the body was read.
    #[error("the request body could not be read: {0}")]
    Read(String),
}

impl BodyError {
    /// Classifies an error of s3s's body stream. s3s keeps its aws-chunked error
    /// type private, so the messages of the error and its sources are what there is
    /// to tell a signature mismatch from a framing error: this is the one place
    /// that reads them.
    fn classify(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = Vec::new();
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(slow) = err.downcast_ref::<crate::net::BodyTooSlow>() {
                return BodyError::TooSlow(slow.to_string());
            }
            text.push(err.to_string());
            cur = err.source();
        }
        let all = text.join(": ");
        if all.contains(crate::net::TOO_SLOW) {
            BodyError::TooSlow(all)
        } else if all.contains("SignatureMismatch") {
            BodyError::Signature
        } else if all.contains("Sha256Mismatch") {
            BodyError::Sha256Mismatch
        } else if ["FormatError", "ChunkMetaTooLarge", "TrailersTooLarge", "TooManyTrailerHeaders"]
            .iter()
            .any(|k| all.contains(k))
        {
            BodyError::Malformed(all)
        } else {
            BodyError::Read(all)
        }
    }
}

/// The body of a request as the data path reads it.
pub fn stream(body: StreamingBlob) -> BodyStream {
    body.map(|r| r.map_err(|e| Box::new(BodyError::classify(e.as_ref())) as BoxError)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("AwsChunkedStreamError: {0}")]
    struct Chunked(&'static str);

    #[test]
    fn classifies_s3s_body_errors() {
        assert!(matches!(BodyError::classify(&Chunked("SignatureMismatch")), BodyError::Signature));
        assert!(matches!(BodyError::classify(&Chunked("FormatError")), BodyError::Malformed(_)));
        #[derive(Debug, thiserror::Error)]
        #[error("UploadStreamError: Sha256Mismatch")]
        struct Unsigned;
        assert!(matches!(BodyError::classify(&Unsigned), BodyError::Sha256Mismatch));
        let slow: Box<dyn std::error::Error + Send + Sync> =
            Box::new(crate::net::BodyTooSlow { min: 1024, window: std::time::Duration::from_secs(30) });
        let wrapped = std::io::Error::other(slow);
        assert!(matches!(BodyError::classify(&wrapped), BodyError::TooSlow(_)));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        assert!(matches!(BodyError::classify(&reset), BodyError::Read(_)));
    }
}

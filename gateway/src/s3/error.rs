//! S3 error codes live here and only here: internal errors are mapped once, and
//! their details go to the log (without URLs' signatures), not to the client.

use s3s::{S3Error, S3ErrorCode, s3_error};
use tracing::{error, warn};

use crate::meta::MetaError;
use crate::pipeline::PipelineError;

/// Maps a data-path failure to the S3 error a client should see.
pub fn pipeline(e: PipelineError) -> S3Error {
    match e {
        PipelineError::WriteQuorum { needed, landed } => {
            warn!(needed, landed, "write failed: not enough locations");
            let mut err = S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                format!(
                    "Only {landed} of the {needed} required storage locations accepted the data; nothing was stored."
                ),
            );
            err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
            err
        }
        PipelineError::ReadQuorum { segment, usable, needed } => {
            warn!(segment, usable, needed, "read failed: not enough locations");
            let mut err = S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                format!("Only {usable} of the {needed} storage locations needed to read this object are reachable."),
            );
            err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
            err
        }
        PipelineError::BodyLength { expected, got } if got < expected => s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ),
        PipelineError::BodyLength { .. } => s3_error!(InvalidRequest, "The body is longer than its Content-Length."),
        PipelineError::Body(msg) => {
            warn!(error = %msg, "request body failed");
            // Signature errors of aws-chunked bodies surface here.
            if msg.contains("signature") || msg.contains("Signature") {
                s3_error!(SignatureDoesNotMatch, "A chunk signature of the request body did not match.")
            } else {
                s3_error!(IncompleteBody, "The request body could not be read.")
            }
        }
        PipelineError::Corrupt { segment } => {
            error!(segment, "stored data failed authentication with every set of fragments");
            s3_error!(InternalError, "The object's stored data failed its integrity check; no data was returned.")
        }
        other => internal(other),
    }
}

/// Maps a metadata failure.
pub fn meta(e: MetaError) -> S3Error {
    internal(e)
}

/// An internal error: logged, reported as `InternalError`.
pub fn internal(e: impl std::fmt::Display) -> S3Error {
    error!(error = %crate::backend::transfer::redact(&e.to_string()), "internal error");
    s3_error!(InternalError, "We encountered an internal error. Please try again.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_failures_are_503() {
        let e = pipeline(PipelineError::WriteQuorum { needed: 5, landed: 3 });
        assert_eq!(e.code(), &S3ErrorCode::ServiceUnavailable);
        assert_eq!(e.status_code(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
        let e = pipeline(PipelineError::ReadQuorum { segment: 0, usable: 2, needed: 4 });
        assert_eq!(e.status_code(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
        let e = pipeline(PipelineError::BodyLength { expected: 10, got: 3 });
        assert_eq!(e.code(), &S3ErrorCode::IncompleteBody);
        let e = pipeline(PipelineError::Corrupt { segment: 3 });
        assert_eq!(e.code(), &S3ErrorCode::InternalError);
    }
}

//! S3 error codes live here and only here: internal errors are mapped once, and
//! their details go to the log (without URLs' signatures), not to the client.

use s3s::{S3Error, S3ErrorCode, s3_error};
use tracing::{error, warn};

use super::body::BodyError;
use crate::meta::MetaError;
use crate::pipeline::{Digest, PipelineError};

/// An error S3 answers with a code s3s does not name, and its status.
pub fn coded(code: &'static str, status: http::StatusCode, message: &'static str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(status);
    e
}

fn unavailable(message: String) -> S3Error {
    let mut err = S3Error::with_message(S3ErrorCode::ServiceUnavailable, message);
    err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
    err
}

/// Maps a data-path failure to the S3 error a client should see.
pub fn pipeline(e: PipelineError) -> S3Error {
    match e {
        PipelineError::WriteQuorum { needed, landed } => {
            warn!(needed, landed, "write failed: not enough locations");
            unavailable(format!(
                "Only {landed} of the {needed} required storage locations accepted the data; nothing was stored."
            ))
        }
        PipelineError::ReadQuorum { segment, usable, needed, damaged } => {
            warn!(segment, usable, needed, damaged, "read failed: not enough fragments");
            let why = match damaged {
                0 => "the others are at locations that do not answer".to_string(),
                d => format!(
                    "{d} were found missing or corrupt and are queued for repair; any others are at locations that do not answer"
                ),
            };
            unavailable(format!(
                "This object cannot be read now: only {usable} of the {needed} fragments needed are readable ({why})."
            ))
        }
        PipelineError::BodyLength { expected, got } if got < expected => s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ),
        PipelineError::BodyLength { .. } => s3_error!(InvalidRequest, "The body is longer than its Content-Length."),
        PipelineError::Body(e) => match e.downcast::<BodyError>() {
            Ok(b) => {
                warn!(error = %b, "request body failed");
                match *b {
                    BodyError::Signature => {
                        s3_error!(SignatureDoesNotMatch, "A chunk signature of the request body did not match.")
                    }
                    BodyError::Malformed(_) => s3_error!(IncompleteBody, "The aws-chunked request body is malformed."),
                    BodyError::Sha256Mismatch => coded(
                        "XAmzContentSHA256Mismatch",
                        http::StatusCode::BAD_REQUEST,
                        "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ),
                    BodyError::Read(_) => s3_error!(IncompleteBody, "The request body could not be read."),
                    BodyError::TooSlow(_) => s3_error!(
                        RequestTimeout,
                        "Your socket connection to the server was not read from or written to within the timeout \
                         period: the body arrived more slowly than the least rate allowed."
                    ),
                }
            }
            Err(other) => internal(other),
        },
        PipelineError::BadDigest(Digest::ContentMd5) => {
            s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received.")
        }
        PipelineError::BadDigest(Digest::Checksum(alg)) => s3_error!(
            BadDigest,
            "The {} you specified did not match the calculated checksum.",
            super::checksum::header(alg)
        ),
        PipelineError::NoSuchUpload => s3_error!(NoSuchUpload),
        PipelineError::PartOrder => s3_error!(InvalidPartOrder, "The list of parts was not in ascending order."),
        PipelineError::InvalidPart(n) => {
            s3_error!(InvalidPart, "Part {n} could not be found, or its ETag does not match what was uploaded.")
        }
        PipelineError::PartTooSmall(_) => {
            s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed size.")
        }
        PipelineError::Corrupt { segment } => {
            error!(segment, "stored data failed authentication with every set of fragments");
            s3_error!(InternalError, "The object's stored data failed its integrity check; no data was returned.")
        }
        PipelineError::Meta(e) => meta(e),
        PipelineError::Placement(p) => {
            warn!(reason = %p.reason, n = p.n, "write refused: its policy cannot place its fragments");
            unavailable(
                "The bucket's storage policy cannot place the object's fragments on the locations in service; \
                 nothing was stored."
                    .into(),
            )
        }
        other => internal(other),
    }
}

/// Maps a metadata failure.
pub fn meta(e: MetaError) -> S3Error {
    match e {
        MetaError::Conflict(why) => {
            warn!(reason = %why, "write lost to a concurrent change");
            unavailable("The write could not be completed; please retry.".into())
        }
        MetaError::Precondition(_) => {
            s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
        }
        MetaError::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        MetaError::Locked(why) => {
            warn!(protected_by = why, "a delete of a locked version refused");
            s3_error!(AccessDenied, "Access Denied because object protected by object lock.")
        }
        MetaError::NoSuchBucket => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        other => internal(other),
    }
}

/// An internal error: logged, reported as `InternalError`.
pub fn internal(e: impl std::fmt::Display) -> S3Error {
    error!(error = %crate::backend::transfer::redact(&e.to_string()), "internal error");
    s3_error!(InternalError, "We encountered an internal error. Please try again.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::PlacementError;

    #[test]
    fn data_path_errors_map_to_s3_codes() {
        let e = pipeline(PipelineError::WriteQuorum { needed: 5, landed: 3 });
        assert_eq!(e.code(), &S3ErrorCode::ServiceUnavailable);
        assert_eq!(e.status_code(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
        let e = pipeline(PipelineError::ReadQuorum { segment: 0, usable: 2, needed: 4, damaged: 2 });
        assert_eq!(e.status_code(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
        assert!(e.message().is_some_and(|m| m.contains("2 were found missing or corrupt")), "{e:?}");
        let e = pipeline(PipelineError::BodyLength { expected: 10, got: 3 });
        assert_eq!(e.code(), &S3ErrorCode::IncompleteBody);
        let e = pipeline(PipelineError::Corrupt { segment: 3 });
        assert_eq!(e.code(), &S3ErrorCode::InternalError);
        let e = pipeline(PipelineError::Body(Box::new(BodyError::Signature)));
        assert_eq!(e.code(), &S3ErrorCode::SignatureDoesNotMatch);
        let e = pipeline(PipelineError::BadDigest(Digest::Checksum(crate::meta::ChecksumAlgorithm::Crc32)));
        assert_eq!(e.code(), &S3ErrorCode::BadDigest);
        assert!(e.message().is_some_and(|m| m.contains("x-amz-checksum-crc32")), "{e:?}");
        assert_eq!(pipeline(PipelineError::PartOrder).code(), &S3ErrorCode::InvalidPartOrder);
        let refused = PlacementError { n: 4, reason: "no 4 of policy p's locations satisfy its constraints".into() };
        let e = pipeline(PipelineError::Placement(refused));
        assert_eq!(e.code(), &S3ErrorCode::ServiceUnavailable);
        assert!(e.message().is_some_and(|m| m.contains("nothing was stored") && !m.contains("policy p")), "{e:?}");
        assert_eq!(pipeline(PipelineError::PartTooSmall(1)).code(), &S3ErrorCode::EntityTooSmall);
        let e = meta(MetaError::Conflict("x".into()));
        assert_eq!(e.status_code(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    }
}

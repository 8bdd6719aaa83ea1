//! How a transfer with a location fails, told so that no presigned signature
//! reaches a message.

use std::io;

use super::replay::connection_lost;

/// A transfer failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The location has no such object.
    #[error("not found at the location")]
    NotFound,
    /// The location refused the request (signature, expiry, permissions, size).
    #[error("refused by the location: HTTP {status}: {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// First bytes of the body.
        detail: String,
    },
    /// The location is unreachable, failing (5xx) or too slow.
    #[error("location unavailable: {0}")]
    Unavailable(String),
    /// The location's TLS certificate did not verify (or the handshake failed):
    /// nothing was sent to it.
    #[error("TLS with the location failed: {0}")]
    Tls(String),
    /// The location answered something that does not fit the request.
    #[error("unexpected answer from the location: {0}")]
    Protocol(String),
    /// No URL could be signed for it (the location is not configured, or its
    /// credentials cannot sign): nothing was sent.
    #[error("cannot sign for the location: {0}")]
    Unsigned(String),
    /// The location cannot do this through a signed URL (a Swift TempURL cannot
    /// list or delete in bulk): nothing was sent.
    #[error("not supported by the location: {0}")]
    Unsupported(String),
}

impl TransferError {
    /// A short class name for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            TransferError::NotFound => "not_found",
            TransferError::Refused { .. } => "refused",
            TransferError::Unavailable(_) => "unavailable",
            TransferError::Tls(_) => "tls",
            TransferError::Protocol(_) => "protocol",
            TransferError::Unsigned(_) => "unsigned",
            TransferError::Unsupported(_) => "unsupported",
        }
    }

    fn from_client(e: &hyper_util::client::legacy::Error) -> Self {
        let mut chain = Vec::new();
        let mut tls = false;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            tls |= s.downcast_ref::<rustls::Error>().is_some();
            if let Some(io) = s.downcast_ref::<io::Error>() {
                tls |= io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            }
            chain.push(s.to_string());
            source = s.source();
        }
        chain.dedup();
        let msg = redact(&chain.join(": "));
        if tls { TransferError::Tls(msg) } else { TransferError::Unavailable(msg) }
    }
}

/// How one try of a request failed: its connection went away before any answer
/// (it may be sent again), or otherwise.
pub(super) enum Attempt {
    /// The connection went away before any answer came.
    Lost(TransferError),
    /// Anything else.
    Failed(TransferError),
}

impl Attempt {
    /// Classifies a client error.
    pub(super) fn of(e: &hyper_util::client::legacy::Error) -> Self {
        let err = TransferError::from_client(e);
        if connection_lost(e) && !matches!(err, TransferError::Tls(_)) {
            Attempt::Lost(err)
        } else {
            Attempt::Failed(err)
        }
    }

    /// The error, however it came.
    pub(super) fn into_error(self) -> TransferError {
        match self {
            Attempt::Lost(e) | Attempt::Failed(e) => e,
        }
    }
}

/// Drops query strings from a message so that presigned signatures never reach logs.
pub fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut skip = false;
    for c in msg.chars() {
        match c {
            '?' => {
                skip = true;
                out.push_str("?…");
            }
            ' ' | ')' | '"' | '\'' => {
                skip = false;
                out.push(c);
            }
            _ if skip => {}
            _ => out.push(c),
        }
    }
    out
}

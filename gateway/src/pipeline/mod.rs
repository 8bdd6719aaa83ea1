//! The data path. [`put`] turns a byte stream into a stored seal: segments, sealed
//! and coded off the async threads, streamed to `n` locations at once through
//! presigned URLs, with bounded channels between the stages. [`get`] reads any `k`
//! fragments back, replacing failed or corrupt ones as it goes, decodes and streams
//! plaintext out. [`cleanup`] deletes the fragments nothing references any more.
//!
//! ```text
//! body ─► segmenter ─(depth)─► seal+encode (blocking pool) ─(depth)─► n uploads
//!    └──► hasher thread (ETag, x-amz-checksum-*) — in parallel, not in series
//! ```
//!
//! Memory per request is bounded by `pipeline.depth` segments in each channel, never
//! by object size.

pub mod cached;
pub mod checksum;
pub mod cleanup;
pub mod drain;
pub mod get;
pub mod put;

use crate::backend::PresignError;
use crate::backend::transfer::TransferError;
use crate::meta::MetaError;
use crate::placement::PlacementError;

/// The data path failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The codec failed (a bug or corrupt metadata: never a location's fault).
    #[error("codec: {0}")]
    Codec(#[from] codec::CodecError),
    /// A URL could not be signed.
    #[error(transparent)]
    Presign(#[from] PresignError),
    /// No placement fits the policy.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// Fewer than the write quorum of fragments landed.
    #[error("only {landed} of {needed} required fragments could be stored")]
    WriteQuorum {
        /// Fragments required.
        needed: usize,
        /// Fragments that landed.
        landed: usize,
    },
    /// Fewer than `k` fragments could be read.
    #[error("segment {segment}: only {usable} of {needed} fragments readable")]
    ReadQuorum {
        /// The segment.
        segment: u64,
        /// Fragments that could be used.
        usable: usize,
        /// `k`.
        needed: usize,
    },
    /// Every combination of readable fragments failed authentication: the stored
    /// data was tampered with or the key is wrong. No bytes are returned.
    #[error("segment {segment} does not authenticate with any set of fragments")]
    Corrupt {
        /// The segment.
        segment: u64,
    },
    /// The client's body ended early or carried more than announced.
    #[error("request body: expected {expected} bytes, got {got}")]
    BodyLength {
        /// Announced length.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// Reading the client's body failed.
    #[error("request body: {0}")]
    Body(String),
    /// A transfer failed in a way that is not a location being down.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for PipelineError {
    fn from(e: tokio::task::JoinError) -> Self {
        PipelineError::Task(e.to_string())
    }
}

impl From<offload::random::RandomError> for PipelineError {
    fn from(e: offload::random::RandomError) -> Self {
        PipelineError::Codec(codec::CodecError::Random(e))
    }
}

/// A stream over a tokio receiver (what tokio-stream's `ReceiverStream` does,
/// without the extra dependency). `Sync` when its items are `Send`, as s3s's
/// response bodies need.
pub struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> ReceiverStream<T> {
    /// A stream of what `rx` receives.
    pub fn new(rx: tokio::sync::mpsc::Receiver<T>) -> Self {
        Self(rx)
    }
}

impl<T> futures::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

//! The data path: the only place where an object becomes fragments and back, and
//! where a write becomes visible. Each entry point owns its transaction end to end.
//!
//! | call | file | what |
//! |---|---|---|
//! | [`put()`] | `put.rs` | a single-part object or one part of an upload: pending record → fragments out → write quorum → digests checked → committed (or discarded) |
//! | [`complete()`] | `complete.rs` | a multipart upload's parts become one version |
//! | [`delete()`] | `record.rs` | a tombstone at the locations, then the key's version retired |
//! | [`get()`] | `get.rs` | bytes of an object from its [`Manifest`](crate::meta::Manifest): any `k` fragments, replaced as they fail |
//! | [`drain::move_fragment`] | `drain.rs` | a fragment recoded from the others onto another location |
//! | [`cleanup::collect_once`] | `cleanup.rs` | fragments nothing references, deleted |
//!
//! ```text
//! body ─► segmenter ─(depth)─► seal+encode (blocking pool) ─(depth)─► n uploads
//!    └──► hasher thread (ETag, checksum) — in parallel, not in series
//! ```
//!
//! Memory per request is bounded by `pipeline.depth` segments in each channel, never
//! by object size. Everything the data path uses comes in a [`PipelineCtx`]; locations
//! are a [`FragmentStore`], so the whole path runs in-process on an in-memory store
//! in the tests (`tests.rs`).

pub mod checksum;
pub mod cleanup;
pub mod compact;
mod complete;
mod copy;
mod customer;
pub mod drain;
mod get;
pub mod locks;
mod pack;
#[cfg(test)]
mod pack_tests;
mod put;
mod read;
pub mod rebuild;
mod record;
pub mod shared;
#[cfg(test)]
mod tests;
mod uploads;
pub mod verify;
#[cfg(test)]
mod wan_tests;
mod write;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use codec::MasterKey;
use offload::Offload;

pub use complete::{CompleteOutcome, CompleteRequest, MAX_PART_NUMBER, MIN_PART, complete};
pub use copy::{CopyOutcome, CopyRequest, CopySource, copy};
pub use customer::CustomerKey;
pub use get::get;
pub use pack::Packer;
pub use put::{Expected, GivenChecksum, PutOutcome, PutRequest, PutTarget, put};
pub use read::{fragment_layout, fragment_ref};
pub use record::{
    Deleted, backfill, collect_records, delete, delete_version, follow_fragment, rehome_records, restate,
};

use self::checksum::HashMeters;
use self::shared::{BufferPool, MatrixCache};
use crate::backend::{FragmentStore, TransferError};
use crate::catalog::Catalog;
use crate::config::{EtagAlgorithm, PipelineConfig};
use crate::meta::{ChecksumAlgorithm, MetaError, MetaStore};
use crate::node::Node;
use crate::placement::{Health, Placement, PlacementError};

/// Everything the data path needs — and nothing else of the gateway.
#[derive(Debug)]
pub struct PipelineCtx {
    /// Depth, transfers in flight, timeouts, grace, compression bound.
    pub config: PipelineConfig,
    /// The ETag function.
    pub etag: EtagAlgorithm,
    /// Offload engines.
    pub offload: Offload,
    /// Metadata.
    pub meta: MetaStore,
    /// The master key (wraps data keys).
    pub master: Arc<MasterKey>,
    /// Seals the records written to the locations.
    pub ledger: Arc<crate::ledger::Ledger>,
    /// The locations, as reads and writes reach them (the cache in front, when
    /// there is one).
    pub store: Arc<dyn FragmentStore>,
    /// The locations themselves, without the cache: what checking a location's
    /// copy reads.
    pub locations: Arc<dyn FragmentStore>,
    /// Chooses locations for fragments.
    pub placement: Arc<dyn Placement>,
    /// Locations and policies in force.
    pub catalog: Arc<Catalog>,
    /// Recent failures per location.
    pub health: Arc<Health>,
    /// This replica (recorded on the writes it starts).
    pub node: Arc<Node>,
    /// Coefficient matrices, one per `(k, n)`.
    pub matrices: MatrixCache,
    /// Recycled segment and record buffers.
    pub buffers: BufferPool,
    /// Meters of the ETag and checksum functions.
    pub hashes: HashMeters,
    /// Requests moving object data at once (`pipeline.max_transfers`), shared
    /// between tenants.
    pub transfers: Arc<shared::Transfers>,
    /// Bytes queued for locations slower than their write's quorum
    /// (`pipeline.lag_buffer`), shared by all writes.
    pub lagging: Arc<tokio::sync::Semaphore>,
    /// Operations that failed for want of enough fragments.
    pub quorum_failures: QuorumFailures,
    /// Seals being read, which the collector leaves until the reads end.
    pub reads: shared::ReadLeases,
    /// Small objects waiting for a pack.
    pub packer: pack::Packer,
}

/// Operations that failed for want of enough fragments.
#[derive(Debug, Default)]
pub struct QuorumFailures {
    /// Writes that stored fewer than the write quorum.
    pub write: AtomicU64,
    /// Reads of a segment that found fewer than `k` usable fragments (or no
    /// combination that authenticates).
    pub read: AtomicU64,
}

/// An error from the client's side of a request body, opaque to the data path: the
/// front end that made it reads it back ([`PipelineError::Body`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request body.
pub type BodyStream = futures::stream::BoxStream<'static, Result<bytes::Bytes, BoxError>>;

/// A digest the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// `Content-MD5`.
    ContentMd5,
    /// A checksum of the S3 API.
    Checksum(ChecksumAlgorithm),
}

/// The data path failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The codec failed (a bug or corrupt metadata: never a location's fault).
    #[error("codec: {0}")]
    Codec(#[from] codec::CodecError),
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
    #[error("segment {segment}: only {usable} of {needed} fragments readable ({damaged} missing or corrupt)")]
    ReadQuorum {
        /// The segment.
        segment: u64,
        /// Fragments that could be used.
        usable: usize,
        /// `k`.
        needed: usize,
        /// Fragments known missing or corrupt (the others that failed are at
        /// locations that did not answer).
        damaged: usize,
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
    /// Reading the client's body failed; the error is the front end's own.
    #[error("request body: {0}")]
    Body(BoxError),
    /// What the client sent does not match the digest it gave: nothing was stored.
    #[error("the body does not match its {0:?}")]
    BadDigest(Digest),
    /// The multipart upload does not exist (any more).
    #[error("no such upload")]
    NoSuchUpload,
    /// A Complete named parts out of order.
    #[error("parts not in ascending order")]
    PartOrder,
    /// A Complete named a part that was not uploaded, or with another ETag.
    #[error("part {0} not uploaded with that ETag")]
    InvalidPart(u32),
    /// A part other than the last is smaller than S3's minimum.
    #[error("part {0} is smaller than the minimum part size")]
    PartTooSmall(u32),
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
#[derive(Debug)]
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

/// The name of fragment `index` of a seal at its location: random ids only, no
/// bucket name, no object key.
pub(crate) fn fragment_name(seal: crate::meta::SealId, index: u8) -> String {
    format!("{seal}/{index}")
}

/// The name of a rebuilt fragment `index`: never the name of an earlier copy
/// (`<seal>/<index>.<random>`), since locations accept each name once — a
/// presigned URL replayed cannot replace a fragment, and a rebuild does not need
/// to.
pub(crate) fn rebuilt_fragment_name(
    seal: crate::meta::SealId,
    index: u8,
    random: &dyn offload::random::SecureRandom,
) -> Result<String, PipelineError> {
    let mut tag = [0u8; 6];
    random.fill(&mut tag).map_err(|_| PipelineError::Task("no randomness".into()))?;
    Ok(format!("{seal}/{index}.{}", checksum::hex(&tag)))
}

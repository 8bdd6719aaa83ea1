//! Reading an object: bytes `range` of the version a [`Manifest`] describes, part
//! by part (each a seal read by `read.rs`), streamed out. Nothing is asked of the
//! metadata store: the manifest already holds every seal and fragment.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use codec::SegmentLayout;
use tokio::sync::mpsc;
use tracing::warn;

use super::read::PartReader;
use super::{PipelineCtx, PipelineError, ReceiverStream};
use crate::meta::{Manifest, PackMember, Seal};
use crate::net::AbortResponse;

/// The reading of one part: its seal, its first and last segment, and the bytes of
/// those segments to keep (offset into the first, total count).
#[derive(Debug)]
struct Step {
    seal: Seal,
    member: Option<PackMember>,
    segments: (u64, u64),
    skip: usize,
    take: u64,
}

/// A part to read: opened (with its first segment read) before the answer, or
/// later.
enum Ready {
    Open(Box<PartReader>, Option<offload::AlignedBuf>, usize, u64),
    Later(Box<Step>),
}

/// The parts of `manifest` that `range` (object offsets, end exclusive) covers.
fn plan(manifest: Manifest, range: &Range<u64>) -> Vec<Step> {
    let mut steps = Vec::new();
    for p in manifest.parts {
        let (start, end) = (p.offset, p.offset + p.size);
        let (a, b) = (range.start.max(start), range.end.min(end));
        if a >= b {
            continue;
        }
        let segs = SegmentLayout::new(p.size, p.seal.params.segment_size());
        let (la, lb) = (a - start, b - start);
        let span = segs.segments_for(la, lb - 1);
        let skip = (la - segs.offset(*span.start())) as usize;
        steps.push(Step {
            seal: p.seal,
            member: p.member,
            segments: (*span.start(), *span.end()),
            skip,
            take: lb - la,
        });
    }
    steps
}

/// Reads bytes `range` of the object of `manifest`. The first segment is read
/// before this returns, so that an unreadable object is an error before any
/// response is sent; the rest streams from a task. The stream ends with an error if
/// a later segment cannot be read: the client then sees a truncated body, never
/// wrong bytes. An object written with a customer key (SSE-C) is read with
/// `customer` (the caller checked it against the object's key check). The transfer
/// slot is taken from the shares of the tenant and of `requester`, the access key.
pub async fn get(
    ctx: &Arc<PipelineCtx>,
    manifest: Manifest,
    range: Range<u64>,
    customer: Option<Arc<super::CustomerKey>>,
    requester: Option<Arc<str>>,
) -> Result<ReceiverStream<Result<Bytes, std::io::Error>>, PipelineError> {
    let permit = ctx
        .transfers
        .acquire(manifest.tenant_number, requester.as_ref())
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))?;
    read_range(ctx, manifest, range, customer, Some(permit)).await
}

/// [`get`] holding `permit`, or, for a read inside a transfer that holds a slot
/// already (a copy streaming into a write), none.
pub(super) async fn read_range(
    ctx: &Arc<PipelineCtx>,
    manifest: Manifest,
    range: Range<u64>,
    customer: Option<Arc<super::CustomerKey>>,
    permit: Option<super::shared::TransferSlot>,
) -> Result<ReceiverStream<Result<Bytes, std::io::Error>>, PipelineError> {
    let tenant = manifest.tenant_number;
    let lease = ctx.reads.take(manifest.parts.iter().map(|p| p.seal.id));
    let mut planned = plan(manifest, &range).into_iter();
    let Some(first) = planned.next() else {
        let (_, rx) = mpsc::channel(1);
        return Ok(ReceiverStream::new(rx));
    };
    // The first part's first segment is read before the answer starts, and so is
    // every later part's that the metadata already knows to be short of fragments:
    // a failure known now is a 503, not a response cut short.
    let (skip, take) = (first.skip, first.take);
    let mut reader =
        PartReader::open(ctx.clone(), (first.seal, first.member), tenant, first.segments, customer.as_deref())?;
    let head = reader.next_segment().await?;
    let mut rest = Vec::new();
    for step in planned {
        if step.seal.healthy() < usize::from(step.seal.params.k()) {
            let (skip, take) = (step.skip, step.take);
            let mut r =
                PartReader::open(ctx.clone(), (step.seal, step.member), tenant, step.segments, customer.as_deref())?;
            let head = r.next_segment().await?;
            rest.push(Ready::Open(Box::new(r), head, skip, take));
        } else {
            rest.push(Ready::Later(Box::new(step)));
        }
    }
    let mut steps = rest.into_iter();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(ctx.config.depth);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let (_permit, _lease) = (permit, lease);
        let mut current = Some((reader, head, skip, take));
        while let Some((mut reader, mut pending, mut skip, mut left)) = current.take() {
            loop {
                let seg = match pending.take() {
                    Some(seg) => seg,
                    None => match reader.next_segment().await {
                        Ok(Some(seg)) => seg,
                        Ok(None) => break,
                        Err(e) => {
                            warn!(error = %e, "read failed mid-stream: the response is aborted");
                            let _ = tx.send(Err(AbortResponse::io(e))).await;
                            return;
                        }
                    },
                };
                let lo = skip.min(seg.len());
                let hi = (lo as u64 + left).min(seg.len() as u64) as usize;
                skip = 0;
                left -= (hi - lo) as u64;
                let bytes = ctx.buffers.share_one(seg, lo..hi);
                if !bytes.is_empty() && tx.send(Ok(bytes)).await.is_err() {
                    return; // the client went away
                }
                if left == 0 {
                    break;
                }
            }
            match steps.next() {
                Some(Ready::Open(r, head, skip, take)) => current = Some((*r, head, skip, take)),
                Some(Ready::Later(step)) => {
                    let (skip, take) = (step.skip, step.take);
                    match PartReader::open(
                        ctx.clone(),
                        (step.seal, step.member),
                        tenant,
                        step.segments,
                        customer.as_deref(),
                    ) {
                        Ok(r) => current = Some((r, None, skip, take)),
                        Err(e) => {
                            warn!(error = %e, "read failed mid-stream: the response is aborted");
                            let _ = tx.send(Err(AbortResponse::io(e))).await;
                            return;
                        }
                    }
                }
                None => {}
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

//! Moving a fragment off a location by recoding: a new fragment with the same index
//! is computed from the seal's other fragments — random combinations of their coded
//! records — and written to another location. No key is unwrapped and nothing is
//! decrypted; the location being drained is never read, so a location that is
//! already gone drains the same way.
//!
//! The survivors are streamed record by record (memory: one record per survivor and
//! a few records in flight), and every survivor's coefficients are used to check
//! that the new fragment keeps every `k`-subset decodable.

use std::collections::BTreeSet;

use bytes::Bytes;
use codec::Recoder;

use super::read::{FragReader, fragment_layout, fragment_ref};
use super::{PipelineCtx, PipelineError, ReceiverStream};
use crate::backend::{FragmentRef, TransferError};
use crate::catalog::CatalogView;
use crate::meta::{FragmentAt, FragmentState, LocationState, MetaError};

/// Where a fragment went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The new location.
    pub to: String,
    /// Whether the seal was still stored when the move was recorded (if not, the
    /// new copy was deleted again).
    pub recorded: bool,
}

/// The location to move a fragment of a seal to, as placement chooses a
/// replacement: active, holding no other fragment of the seal, of the drained
/// location's tier if one is left, healthy first.
pub fn target(ctx: &PipelineCtx, view: &CatalogView, from: &str, item: &FragmentAt) -> Option<String> {
    let taken: BTreeSet<&str> = item.seal.fragments.iter().map(|f| f.location.as_str()).collect();
    let candidates: Vec<String> = view
        .locations
        .keys()
        .filter(|l| view.state(l) == LocationState::Active && !taken.contains(l.as_str()))
        .cloned()
        .collect();
    let tier = view.locations.get(from).map(|l| l.tier);
    ctx.placement.replacement(&candidates, &item.seal.id.0, tier, &view.locations, &ctx.health)
}

/// Recodes fragment `item.index` of its seal from the others and writes it to `to`;
/// then points the metadata at it and deletes the old copy at `from` (best effort).
pub async fn move_fragment(ctx: &PipelineCtx, from: &str, item: &FragmentAt, to: &str) -> Result<Moved, PipelineError> {
    let seal = &item.seal;
    let (k, index) = (seal.params.k(), item.index);
    let layout = fragment_layout(seal)?;
    let whole = layout.fragment_len();
    let name = item
        .fragment()
        .map(|f| f.name.clone())
        .ok_or_else(|| PipelineError::Meta(MetaError::Corrupt(format!("seal {} has no fragment {index}", seal.id))))?;

    // Open every other stored fragment whole; keep those whose header is right.
    let survivors = seal.fragments.iter().filter(|f| f.index != index && f.state == FragmentState::Stored);
    let opened = futures::future::join_all(survivors.map(|f| async move {
        let at = fragment_ref(f, whole, None);
        let mut reader = match ctx.store.get(&at, 0..whole).await {
            Ok(s) => FragReader::new(f.index, s),
            Err(e) => {
                ctx.health.failed(&f.location);
                return Err(e);
            }
        };
        let header = reader.check_header(ctx, seal).await?;
        Ok::<_, TransferError>((reader, header))
    }))
    .await;
    let mut readers = Vec::new();
    let mut header = None;
    for (reader, h) in opened.into_iter().flatten() {
        header = Some(h);
        readers.push(reader);
    }
    let Some(header) = header.filter(|_| readers.len() >= usize::from(k)) else {
        return Err(PipelineError::ReadQuorum { segment: 0, usable: readers.len(), needed: usize::from(k) });
    };
    let recoder = Recoder::new(&ctx.offload, &header, index)?;

    // Records are recoded as the upload asks for them.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let producer = async move {
        if tx.send(Ok(Bytes::copy_from_slice(&recoder.header()))).await.is_err() {
            return Ok(());
        }
        for segment in 0..layout.count() {
            let range = layout.record_range(segment);
            let len = (range.end - range.start) as usize;
            let mut records = Vec::with_capacity(readers.len());
            for r in readers.iter_mut() {
                match r.next_record(len).await {
                    Ok(b) => records.push((r.index(), b)),
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return Err(PipelineError::ReadQuorum { segment, usable: 0, needed: usize::from(k) });
                    }
                }
            }
            let survivors: Vec<(u8, &[u8])> = records.iter().map(|(i, b)| (*i, b.as_ref())).collect();
            let rec = match recoder.recode_segment(segment, &survivors) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return Err(e.into());
                }
            };
            if tx.send(Ok(Bytes::from_owner(rec))).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    };
    let at =
        |location: &str| FragmentRef { location: location.to_string(), name: name.clone(), len: whole, tenant: None };
    let new = at(to);
    let body = futures::StreamExt::boxed(ReceiverStream::new(rx));
    let (produced, uploaded) = tokio::join!(producer, ctx.store.put(&new, body));
    produced?;
    if let Err(e) = uploaded {
        ctx.health.failed(to);
        return Err(e.into());
    }
    ctx.health.succeeded(to);

    let row = crate::meta::Fragment {
        index,
        location: to.to_string(),
        name: name.clone(),
        size: whole,
        state: FragmentState::Stored,
    };
    let recorded = ctx.meta.move_fragment(seal.id, from, &row).await?;
    // The copy no longer referenced: the old one, or the new one when the seal was
    // deleted meanwhile. Best effort: a location being drained may be gone.
    let stale = at(if recorded { from } else { to });
    if let Err(e) = ctx.store.delete(&stale).await {
        tracing::debug!(location = %stale.location, error = %e, "old fragment copy not deleted");
    }
    Ok(Moved { to: to.to_string(), recorded })
}

//! Rebuilding one fragment by recoding: a new fragment with the same index (and a
//! name of its own: locations accept each name once) is
//! computed from the seal's other stored fragments — random combinations of their
//! coded records — and written to a location. No key is unwrapped and nothing is
//! decrypted; the fragment being replaced is never read, so one whose location is
//! gone is rebuilt the same way. Drain and repair both come here.
//!
//! The survivors are streamed record by record (memory: one record per survivor and
//! a few records in flight), and every survivor's coefficients are used to check
//! that the new fragment keeps every `k`-subset decodable. A survivor whose header
//! or a record fails its check is left out, and reported so that it is repaired too.

use std::collections::BTreeSet;

use bytes::Bytes;
use codec::Recoder;

use super::read::{FragReader, ReadFault, fragment_layout, fragment_ref};
use super::{PipelineCtx, PipelineError, ReceiverStream};
use crate::backend::FragmentRef;
use crate::meta::{Fragment, FragmentState, MetaError, Seal};

/// A fragment rebuilt and stored, not yet recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The new fragment (its location, name and size).
    pub fragment: Fragment,
    /// Survivors found corrupt on the way (their indices).
    pub corrupt: BTreeSet<u8>,
    /// Bytes read from survivors.
    pub read: u64,
}

/// Recodes fragment `index` of `seal` from its other stored fragments and writes it
/// to location `to` under the fragment's name. Nothing is recorded: the caller
/// points the metadata at the new copy (or deletes it).
pub async fn rebuild(ctx: &PipelineCtx, seal: &Seal, index: u8, to: &str) -> Result<Rebuilt, PipelineError> {
    let k = seal.params.k();
    let layout = fragment_layout(seal)?;
    let whole = layout.fragment_len();
    if seal.fragment(index).is_none() {
        return Err(PipelineError::Meta(MetaError::Corrupt(format!("seal {} has no fragment {index}", seal.id))));
    }
    let name = super::rebuilt_fragment_name(seal.id, index, ctx.offload.random.as_ref())?;

    // Open every other stored fragment whole; keep those whose header is right.
    let survivors = seal.fragments.iter().filter(|f| f.index != index && f.state == FragmentState::Stored);
    let opened = futures::future::join_all(survivors.map(|f| async move {
        let at = fragment_ref(f, whole, None);
        let stream = ctx.store.get(&at, 0..whole).await.map_err(ReadFault::Transfer);
        let mut reader = match stream {
            Ok(s) => FragReader::new(f.index, s),
            Err(e) => return Err((f.index, e)),
        };
        match reader.check_header(ctx, seal).await {
            Ok(h) => Ok((reader, h)),
            Err(e) => Err((f.index, e)),
        }
    }))
    .await;
    let mut readers = Vec::new();
    let mut header = None;
    let mut corrupt = BTreeSet::new();
    for r in opened {
        match r {
            Ok((reader, h)) => {
                header = Some(h);
                readers.push(reader);
            }
            Err((i, ReadFault::Corrupt(_))) => {
                corrupt.insert(i);
            }
            Err((i, ReadFault::Transfer(e))) => {
                if let Some(f) = seal.fragment(i) {
                    ctx.health.failed(&f.location);
                }
                tracing::debug!(seal = %seal.id, fragment = i, error = %e, "survivor unreadable");
            }
        }
    }
    let Some(header) = header.filter(|_| readers.len() >= usize::from(k)) else {
        return Err(PipelineError::ReadQuorum {
            segment: 0,
            usable: readers.len(),
            needed: usize::from(k),
            damaged: corrupt.len(),
        });
    };
    let recoder = Recoder::new(&ctx.offload, &header, index)?;

    // Records are recoded as the upload asks for them.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let survivors_read = (readers.len() as u64) * whole;
    let producer = async move {
        let mut corrupt = BTreeSet::new();
        if tx.send(Ok(Bytes::copy_from_slice(&recoder.header()))).await.is_err() {
            return Ok(corrupt);
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
                        return Err(PipelineError::ReadQuorum {
                            segment,
                            usable: 0,
                            needed: usize::from(k),
                            damaged: 0,
                        });
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
            corrupt.extend(rec.rejected.iter().map(|(i, _)| *i));
            if tx.send(Ok(Bytes::from_owner(rec.record))).await.is_err() {
                return Ok(corrupt);
            }
        }
        Ok(corrupt)
    };
    let new = FragmentRef { location: to.to_string(), name: name.clone(), len: whole, tenant: None };
    let body = futures::StreamExt::boxed(ReceiverStream::new(rx));
    let (produced, uploaded) = tokio::join!(producer, ctx.store.put(&new, body));
    corrupt.extend(produced?);
    if let Err(e) = uploaded {
        ctx.health.failed(to);
        return Err(e.into());
    }
    ctx.health.succeeded(to);
    super::locks::lock_rebuilt(ctx, seal.id, &new).await;
    let fragment =
        Fragment { index, location: to.to_string(), name, size: whole, state: FragmentState::Stored, verified_at: 0 };
    Ok(Rebuilt { fragment, corrupt, read: survivors_read })
}

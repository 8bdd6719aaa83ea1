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
use codec::fragment::{FragmentHeader, HEADER_LEN};
use codec::{CodingParams, Recoder, SegmentLayout, VersionId};

use super::get::FragReader;
use super::{PipelineError, ReceiverStream};
use crate::backend::Method;
use crate::backend::transfer::TransferError;
use crate::catalog::{CatalogView, LocationState};
use crate::meta::{FragmentAt, FragmentRow, FragmentState};
use crate::state::Gateway;

/// Where a fragment went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The new location.
    pub to: String,
    /// Whether the seal was still stored when the move was recorded (if not, the
    /// new copy was deleted again).
    pub recorded: bool,
}

/// The location to move a fragment of a seal to: active, holding no other fragment
/// of the seal, of the drained location's tier if one is left, healthiest first,
/// then rotated by the seal id so that moves spread.
pub fn target(view: &CatalogView, gw: &Gateway, from: &str, item: &FragmentAt) -> Option<String> {
    let taken: BTreeSet<&str> = item.fragments.iter().map(|f| f.location.as_str()).collect();
    let tier = view.locations.get(from).map(|l| l.tier);
    let mut candidates: Vec<&String> = view
        .locations
        .keys()
        .filter(|l| view.state(l) == LocationState::Active && !taken.contains(l.as_str()))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let rot = item.seal.id.bytes().fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(usize::from(b)));
    let len = candidates.len();
    candidates.rotate_left(rot % len);
    candidates.sort_by_key(|l| (view.locations.get(*l).map(|x| x.tier) != tier, gw.health.failures(l) > 0));
    candidates.first().map(|l| (*l).clone())
}

fn corrupt(why: String) -> PipelineError {
    PipelineError::Meta(crate::meta::MetaError::Corrupt(why))
}

/// Recodes fragment `item.idx` of its seal from the others and writes it to `to`;
/// then points the metadata at it and deletes the old copy at `from` (best effort).
pub async fn move_fragment(gw: &Gateway, from: &str, item: &FragmentAt, to: &str) -> Result<Moved, PipelineError> {
    let seal = &item.seal;
    let k = u8::try_from(seal.k).map_err(|_| corrupt("k out of range".into()))?;
    let n = u8::try_from(seal.n).map_err(|_| corrupt("n out of range".into()))?;
    let segment_size = u32::try_from(seal.segment_size).map_err(|_| corrupt("segment size".into()))?;
    let params = CodingParams::new(k, n, segment_size)?;
    let version = VersionId::from_hex(&seal.id).ok_or_else(|| corrupt(format!("seal id {}", seal.id)))?;
    let segs = SegmentLayout::new(seal.size as u64, segment_size);
    let layout = super::get::fragment_layout(seal, &params, &segs)?;
    let whole = layout.fragment_len();
    let ttl = gw.settings.pipeline.presign_ttl.0;

    // Open every other stored fragment; keep those that answer with the right header.
    let survivors: Vec<&FragmentRow> =
        item.fragments.iter().filter(|f| f.idx != item.idx && f.state == FragmentState::Stored).collect();
    let opened = futures::future::join_all(survivors.iter().map(|f| async move {
        let url = gw.presigner.presign(&f.location, Method::Get, &f.object_name, ttl)?;
        let stream = gw.transfer.get(&f.location, url, Some(0..whole)).await;
        let mut reader = match stream {
            Ok(s) => FragReader::new(f.idx as usize, s),
            Err(e) => {
                gw.health.failed(&f.location);
                return Ok::<_, PipelineError>(Err(e));
            }
        };
        let header = match reader.next_record(HEADER_LEN).await {
            Ok(b) => FragmentHeader::parse(&b, gw.offload.crc32c.as_ref())
                .map_err(|e| TransferError::Protocol(format!("fragment header: {e}"))),
            Err(e) => Err(e),
        };
        Ok(match header {
            Ok(h) if h.version == version && (h.k, h.n) == (k, n) && i64::from(h.index) == f.idx => Ok((reader, h)),
            Ok(_) => Err(TransferError::Protocol("fragment header names another object or index".into())),
            Err(e) => Err(e),
        })
    }))
    .await;
    let mut readers = Vec::new();
    let mut header = None;
    for r in opened {
        if let Ok((reader, h)) = r? {
            header = Some(h);
            readers.push(reader);
        }
    }
    let Some(header) = header.filter(|_| readers.len() >= usize::from(k)) else {
        return Err(PipelineError::ReadQuorum { segment: 0, usable: readers.len(), needed: usize::from(k) });
    };
    let index = u8::try_from(item.idx).map_err(|_| corrupt("fragment index".into()))?;
    let recoder = Recoder::new(&gw.offload, &header, index)?;

    // Records are recoded as the upload asks for them.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let producer = async move {
        if tx.send(Ok(Bytes::copy_from_slice(&recoder.header()))).await.is_err() {
            return Ok(());
        }
        for segment in 0..layout.count() {
            let range = layout.record_range(segment);
            let len = range.end - range.start;
            let mut records = Vec::with_capacity(readers.len());
            for r in readers.iter_mut() {
                match r.next_record(len as usize).await {
                    Ok(b) => records.push((r.frag() as u8, b)),
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
    let name = &seal_object_name(item);
    let url = gw.presigner.presign(to, Method::Put, name, ttl)?;
    let upload = gw.transfer.put(to, url, whole, ReceiverStream::new(rx));
    let (produced, uploaded) = tokio::join!(producer, upload);
    produced?;
    if let Err(e) = uploaded {
        gw.health.failed(to);
        return Err(e.into());
    }
    gw.health.succeeded(to);

    let row = FragmentRow {
        idx: item.idx,
        location: to.to_string(),
        object_name: name.clone(),
        size: whole as i64,
        state: FragmentState::Stored,
    };
    let recorded = gw.meta.move_fragment(&seal.id, item.idx, from, &row).await?;
    // The copy no longer referenced: the old one, or the new one when the seal was
    // deleted meanwhile. Best effort: a location being drained may be gone.
    let stale = if recorded { from } else { to };
    if let Ok(url) = gw.presigner.presign(stale, Method::Delete, name, ttl)
        && let Err(e) = gw.transfer.delete(stale, url).await
    {
        tracing::debug!(location = %stale, error = %e, "old fragment copy not deleted");
    }
    Ok(Moved { to: to.to_string(), recorded })
}

/// The object name of the fragment being moved (kept: names carry no location).
fn seal_object_name(item: &FragmentAt) -> String {
    item.fragments
        .iter()
        .find(|f| f.idx == item.idx)
        .map_or_else(|| format!("{}/{}", item.seal.id, item.idx), |f| f.object_name.clone())
}

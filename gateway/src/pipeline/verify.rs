//! Reading a fragment back whole from its location — never from the cache — and
//! checking it: the header must name this seal, index and code, and every record
//! must pass its checksum. What scrub and repair's re-check ask.

use codec::fragment::parse_record;
use offload::aead::TAG_LEN;

use super::PipelineCtx;
use super::read::{FragReader, ReadFault, fragment_layout, fragment_ref};
use crate::backend::TransferError;
use crate::meta::{Fragment, Seal};

/// What reading a fragment back found.
#[derive(Debug)]
pub enum Verdict {
    /// The header names this fragment and every record passes its check.
    Good,
    /// The location says it has no such object.
    Missing,
    /// It is there, but it is not the fragment (why).
    Corrupt(String),
    /// The location could not be asked (down, too slow, refusing): nothing is
    /// learnt about the fragment.
    Unreachable(TransferError),
}

/// A transfer error while reading a fragment: the location's fault, or the
/// object's (an answer that does not fit the fragment's length is the object's).
fn judge(e: TransferError) -> Verdict {
    match e {
        TransferError::NotFound => Verdict::Missing,
        TransferError::Protocol(why) => Verdict::Corrupt(why),
        other => Verdict::Unreachable(other),
    }
}

/// Reads fragment `f` of `seal` whole from its location and checks it.
pub async fn verify(ctx: &PipelineCtx, seal: &Seal, f: &Fragment) -> Verdict {
    let layout = match fragment_layout(seal) {
        Ok(l) => l,
        Err(e) => return Verdict::Corrupt(format!("layout: {e}")),
    };
    let whole = layout.fragment_len();
    let stream = match ctx.locations.get(&fragment_ref(f, whole, None), 0..whole).await {
        Ok(s) => s,
        Err(e) => return judge(e),
    };
    let mut reader = FragReader::new(f.index, stream);
    match reader.check_header(ctx, seal).await {
        Ok(_) => {}
        Err(ReadFault::Corrupt(why)) => return Verdict::Corrupt(why),
        Err(ReadFault::Transfer(e)) => return judge(e),
    }
    let (k, max_sealed) = (seal.params.k(), seal.params.segment_size() + TAG_LEN as u32);
    let version = seal.id.codec();
    for segment in 0..layout.count() {
        let range = layout.record_range(segment);
        let record = match reader.next_record((range.end - range.start) as usize).await {
            Ok(r) => r,
            Err(e) => return judge(e),
        };
        if let Err(e) = parse_record(&record, k, max_sealed, &version, segment, ctx.offload.crc32c.as_ref()) {
            return Verdict::Corrupt(format!("segment {segment}: {e}"));
        }
    }
    Verdict::Good
}

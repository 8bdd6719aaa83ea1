//! Backups of the metadata store, for operators who keep one besides the records at
//! the locations: one snapshot of the store (the catalog, and every visible version
//! with its seals and fragments, as manifests), sealed like records, streamed.
//!
//! A backup file is `SKYBKP01`, a one-byte length and a random backup id, then
//! frames: a big-endian `u32` length and a sealed [`Frame`] named
//! `b/<backup id>-<sequence>.<key version>` — so that frames cannot be reordered,
//! dropped or spliced from another backup — the last one marked `end` (a truncated
//! file is refused). `skyshard recover --from-backup FILE` restores one.

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::{FORMAT, Kind, Ledger, LedgerError, ManifestRecord};
use crate::meta::{CatalogSnapshot, MetaStore, PartRow};

/// The first bytes of a backup file.
pub const MAGIC: &[u8; 8] = b"SKYBKP01";
/// Versions per frame.
const PER_FRAME: i64 = 256;
/// Largest frame read back.
const MAX_FRAME: u32 = 256 << 20;

/// One sealed frame of a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Record format.
    pub format: u32,
    /// Its place in the file, from 0.
    pub seq: u64,
    /// The catalog (the first frame).
    pub catalog: Option<CatalogSnapshot>,
    /// Versions.
    pub manifests: Vec<ManifestRecord>,
    /// Whether this is the last frame.
    pub end: bool,
}

fn frame_name(ledger: &Ledger, id: &str, seq: u64) -> String {
    ledger.name(Kind::Backup, &format!("{id}-{seq}"))
}

/// Streams a backup of `meta`: `send` gets each piece of the file in order and
/// answers `false` to stop (the reader went away). Returns the versions written.
pub async fn write<F, Fut>(ledger: &Ledger, meta: &MetaStore, mut send: F) -> Result<u64, LedgerError>
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let id = ledger.random_id()?;
    let mut head = BytesMut::new();
    head.put_slice(MAGIC);
    head.put_u8(id.len() as u8);
    head.put_slice(id.as_bytes());
    if !send(head.freeze()).await {
        return Ok(0);
    }
    let mut backup = meta.begin_backup().await?;
    let catalog = backup.catalog().await?;
    let owners: std::collections::HashMap<String, (String, String)> =
        catalog.buckets.iter().map(|b| (b.name.clone(), (b.tenant.clone(), b.policy.clone()))).collect();
    let mut frame = Frame { format: FORMAT, seq: 0, catalog: Some(catalog), ..Frame::default() };
    let mut after = None;
    let mut count = 0u64;
    loop {
        let page = backup.versions(after.as_ref(), PER_FRAME).await?;
        frame.end = (page.len() as i64) < PER_FRAME;
        after = page.last().map(|m| (m.version.bucket.clone(), m.version.key.clone(), m.version.id.to_string()));
        for m in &page {
            let (tenant, policy) = owners.get(&m.version.bucket).cloned().unwrap_or_default();
            let parts: Vec<(PartRow, &crate::meta::Seal)> = m.parts.iter().map(|p| (p.row(), &p.seal)).collect();
            frame.manifests.push(ManifestRecord::of(m.version.recorded_at, &tenant, &policy, &m.version, &parts));
        }
        count += page.len() as u64;
        let sealed = ledger.seal(&frame_name(ledger, &id, frame.seq), &frame)?;
        let mut piece = BytesMut::with_capacity(4 + sealed.len());
        piece.put_u32(sealed.len() as u32);
        piece.put_slice(&sealed);
        if !send(piece.freeze()).await || frame.end {
            return Ok(count);
        }
        frame = Frame { format: FORMAT, seq: frame.seq + 1, ..Frame::default() };
    }
}

/// Reads a backup file whole: its catalog and its versions. A frame that does not
/// open, is out of place, or a file that ends before its last frame is refused.
pub fn read(ledger: &Ledger, mut file: impl Read) -> Result<(CatalogSnapshot, Vec<ManifestRecord>), LedgerError> {
    let bad = |why: &str| LedgerError::Format("backup".into(), why.to_string());
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).map_err(|_| bad("not a Skyshard backup"))?;
    if &magic != MAGIC {
        return Err(bad("not a Skyshard backup"));
    }
    let mut len = [0u8; 1];
    file.read_exact(&mut len).map_err(|_| bad("truncated"))?;
    let mut id = vec![0u8; usize::from(len[0])];
    file.read_exact(&mut id).map_err(|_| bad("truncated"))?;
    let id = String::from_utf8(id).map_err(|_| bad("backup id"))?;
    let (mut catalog, mut manifests) = (None, Vec::new());
    for seq in 0u64.. {
        let mut len = [0u8; 4];
        file.read_exact(&mut len).map_err(|_| bad("ends before its last frame (truncated)"))?;
        let len = u32::from_be_bytes(len);
        if len > MAX_FRAME {
            return Err(bad("frame too large"));
        }
        let mut sealed = vec![0u8; len as usize];
        file.read_exact(&mut sealed).map_err(|_| bad("ends before its last frame (truncated)"))?;
        // Sealed under whichever key version the backup was made with.
        let frame: Frame = ledger_open_any(ledger, &id, seq, &sealed)?;
        if frame.seq != seq {
            return Err(bad("frames out of order"));
        }
        if let Some(c) = frame.catalog {
            catalog = Some(c);
        }
        manifests.extend(frame.manifests);
        if frame.end {
            return Ok((catalog.ok_or_else(|| bad("no catalog"))?, manifests));
        }
    }
    Err(bad("endless"))
}

fn ledger_open_any(ledger: &Ledger, id: &str, seq: u64, sealed: &[u8]) -> Result<Frame, LedgerError> {
    let version = codec::MasterKey::sealed_version(sealed).unwrap_or(0);
    ledger.open(&format!("b/{id}-{seq}.{version}"), sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backup_reads_back_and_refuses_truncation_and_tampering() {
        let rig = crate::testing::Rig::new(crate::testing::Options::default()).await;
        for i in 0..300 {
            rig.put(&format!("k{i:03}"), &crate::testing::data(100, i)).await;
        }
        let mut file = Vec::new();
        let n = write(&rig.ctx.ledger, &rig.ctx.meta, |b| {
            file.extend_from_slice(&b);
            async { true }
        })
        .await
        .expect("backup");
        assert_eq!(n, 300);
        let (catalog, manifests) = read(&rig.ctx.ledger, &file[..]).expect("read");
        assert_eq!(manifests.len(), 300);
        assert!(catalog.buckets.iter().any(|b| b.name == "b"));
        assert_eq!(manifests[0].key_bytes().expect("key"), b"k000");
        assert!(read(&rig.ctx.ledger, &file[..file.len() - 10]).is_err(), "truncated");
        let mut bad = file.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        assert!(read(&rig.ctx.ledger, &bad[..]).is_err(), "tampered");
    }
}

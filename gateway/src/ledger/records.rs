//! What each record holds, and how a manifest is made from the rows of a version
//! and turned back into them.

use std::collections::BTreeMap;

use codec::{CodingParams, WrappedKey};
use serde::{Deserialize, Serialize};

use crate::meta::{
    CatalogSnapshot, ChecksumAlgorithm, Compression, Fragment, FragmentState, ObjectAttrs, PackMember, PartRow,
    Retention, Seal, SealState, VersionRow,
};

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// A seal as a manifest records it: its coding, its wrapped data key, and where
/// its fragments were written (recovery believes the locations' listings first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSeal {
    /// Seal id.
    pub id: String,
    /// Plaintext bytes.
    pub size: u64,
    /// `k`.
    pub k: u8,
    /// `n`.
    pub n: u8,
    /// Segment size.
    pub segment_size: u32,
    /// Compression (`zstd`, `lz4`), if any.
    pub compression: Option<String>,
    /// Sealed length of each segment, when compressed.
    pub sealed_lens: Option<Vec<u32>>,
    /// The data key wrapped under the master key, hex.
    pub wrapped_key: String,
    /// Creation time.
    pub created_at: i64,
    /// Fragments: index, location, name.
    pub fragments: Vec<(u8, String, String)>,
    /// Bytes of each fragment (all of a seal's are alike).
    #[serde(default)]
    pub fragment_size: u64,
    /// A pack's number of members (0: a seal of one object).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slots: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A part's member of a pack, as a manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMember {
    /// Its segment in the pack.
    pub slot: u32,
    /// Its own id.
    pub id: String,
    /// Plaintext bytes.
    pub size: u64,
    /// Its data key wrapped under the master key, hex.
    pub wrapped_key: String,
}

/// A part of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPart {
    /// Part number.
    pub number: u32,
    /// Offset in the object.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
    /// Its seal.
    pub seal: RecordSeal,
    /// Its member of that seal, if the seal is a pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<RecordMember>,
    /// Where the part was before a compaction moved it into another pack: what a
    /// recovery uses if the part's own fragments cannot be found (a compaction cut
    /// short before it committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<RecordPart>>,
}

/// An object version, whole: what recovery needs to serve it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// Record format.
    pub format: u32,
    /// When recorded (the later of two manifests of a key wins).
    pub at: i64,
    /// The bucket's tenant.
    pub tenant: String,
    /// The bucket's policy.
    pub policy: String,
    /// Bucket.
    pub bucket: String,
    /// Key bytes, hex.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// Bytes.
    pub size: u64,
    /// ETag.
    pub etag: String,
    /// Last-Modified (Unix ms).
    pub last_modified: i64,
    /// Content-Type.
    pub content_type: Option<String>,
    /// Standard headers.
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*`.
    pub user_metadata: BTreeMap<String, String>,
    /// Checksum algorithm.
    pub checksum_algorithm: Option<String>,
    /// Checksum value.
    pub checksum_value: Option<String>,
    /// Checksum type.
    pub checksum_type: Option<String>,
    /// SSE-C key check (never the key).
    pub customer_key: Option<String>,
    /// Parts (none for a delete marker).
    pub parts: Vec<RecordPart>,
    /// The key's `null` version (every version before versioning existed was):
    /// a later `null` version of the key replaces it; the others stay.
    #[serde(default = "yes")]
    pub null_version: bool,
    /// A delete marker.
    #[serde(default)]
    pub delete_marker: bool,
    /// Object lock: retention mode…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<String>,
    /// …retained until (Unix ms)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<i64>,
    /// …and legal hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// The manifests of a pack's members, written as one record by the pack's writer:
/// the pack's seal once, and each member's manifest without its one part, which
/// is its slot of the pack (and, after a compaction, where it was before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecord {
    /// Record format.
    pub format: u32,
    /// When written: of two records holding a version's manifest (a compaction's,
    /// a rotation's), the later one is its manifest.
    pub written: i64,
    /// The pack.
    pub seal: RecordSeal,
    /// Its members' manifests.
    pub members: Vec<PackEntry>,
}

/// A member's manifest in a pack record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// The manifest, without parts.
    #[serde(flatten)]
    pub manifest: ManifestRecord,
    /// Its slot of the pack.
    pub member: RecordMember,
    /// Where a compaction moved it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<RecordPart>>,
}

fn yes() -> bool {
    true
}

/// A delete: every manifest of the key recorded at or before `covers` (when the
/// version deleted was) is gone; one recorded later (a write that raced the delete)
/// is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombstoneRecord {
    /// Record format.
    pub format: u32,
    /// When recorded.
    pub at: i64,
    /// When the manifest of the version deleted was recorded.
    pub covers: i64,
    /// Bucket.
    pub bucket: String,
    /// Key bytes, hex.
    pub key: String,
    /// The version deleted.
    pub version_id: String,
    /// Only that version is gone (a delete of one version of a versioned key),
    /// not every manifest `covers` covers.
    #[serde(default)]
    pub only_version: bool,
}

/// The catalog at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRecord {
    /// Record format.
    pub format: u32,
    /// When recorded (the latest readable one wins).
    pub at: i64,
    /// What it holds.
    pub catalog: CatalogSnapshot,
}

impl RecordSeal {
    /// The record of `seal`.
    pub fn of(seal: &Seal) -> Self {
        Self {
            id: seal.id.to_string(),
            size: seal.size,
            k: seal.params.k(),
            n: seal.params.n(),
            segment_size: seal.params.segment_size(),
            compression: seal.compression.column().map(String::from),
            sealed_lens: seal.sealed_lens.clone(),
            wrapped_key: hex(&seal.wrapped_key.0),
            created_at: seal.created_at,
            fragments: seal.fragments.iter().map(|f| (f.index, f.location.clone(), f.name.clone())).collect(),
            fragment_size: seal.fragments.iter().map(|f| f.size).max().unwrap_or(0),
            slots: seal.slots,
        }
    }

    /// The seal again, with `fragments` (as found) in place of those recorded.
    pub fn to_seal(&self, fragments: Vec<Fragment>) -> Result<Seal, String> {
        let params = CodingParams::new(self.k, self.n, self.segment_size).map_err(|e| e.to_string())?;
        let wrapped = unhex(&self.wrapped_key).ok_or("wrapped key not hex")?;
        Ok(Seal {
            id: self.id.parse().map_err(|_| "seal id")?,
            state: SealState::Stored,
            size: self.size,
            params,
            compression: Compression::from_column(self.compression.clone()).map_err(|e| e.to_string())?,
            sealed_lens: self.sealed_lens.clone(),
            wrapped_key: WrappedKey::from_bytes(&wrapped).map_err(|e| e.to_string())?,
            created_at: self.created_at,
            slots: self.slots,
            fragments,
        })
    }

    /// The fragments recorded, as stored ones.
    pub fn recorded_fragments(&self) -> Vec<Fragment> {
        self.fragments
            .iter()
            .map(|(index, location, name)| Fragment {
                index: *index,
                location: location.clone(),
                name: name.clone(),
                size: self.fragment_size,
                state: FragmentState::Stored,
                verified_at: 0,
            })
            .collect()
    }
}

impl RecordMember {
    /// The record of `member`.
    pub fn of(member: &PackMember) -> Self {
        Self {
            slot: member.slot,
            id: member.id.to_string(),
            size: member.size,
            wrapped_key: hex(&member.wrapped_key.0),
        }
    }

    /// The member again.
    pub fn to_member(&self) -> Result<PackMember, String> {
        let wrapped = unhex(&self.wrapped_key).ok_or("member's wrapped key not hex")?;
        Ok(PackMember {
            slot: self.slot,
            id: self.id.parse().map_err(|_| "member id")?,
            size: self.size,
            wrapped_key: WrappedKey::from_bytes(&wrapped).map_err(|e| e.to_string())?,
        })
    }
}

impl ManifestRecord {
    /// The manifest of `version`, made of `parts` with their `seals` (in order).
    pub fn of(at: i64, tenant: &str, policy: &str, version: &VersionRow, parts: &[(PartRow, &Seal)]) -> Self {
        Self {
            format: super::FORMAT,
            at,
            tenant: tenant.to_string(),
            policy: policy.to_string(),
            bucket: version.bucket.clone(),
            key: hex(&version.key),
            version_id: version.id.to_string(),
            size: version.size,
            etag: version.etag.clone(),
            last_modified: version.last_modified,
            content_type: version.attrs.content_type.clone(),
            headers: version.attrs.headers.clone(),
            user_metadata: version.attrs.user_metadata.clone(),
            checksum_algorithm: version.attrs.checksum_algorithm.map(|a| a.as_str().to_string()),
            checksum_value: version.checksum_value.clone(),
            checksum_type: version.checksum_type.clone(),
            customer_key: version.attrs.customer_key.clone(),
            parts: parts
                .iter()
                .map(|(p, s)| RecordPart {
                    number: p.number,
                    offset: p.offset,
                    size: p.size,
                    seal: RecordSeal::of(s),
                    member: p.member.as_ref().map(RecordMember::of),
                    previous: None,
                })
                .collect(),
            null_version: version.null_version,
            delete_marker: version.delete_marker,
            lock_mode: version.lock.mode.map(|m| m.as_str().to_string()),
            retain_until: version.lock.until,
            legal_hold: version.lock.legal_hold,
            tags: version.attrs.tags.clone(),
        }
    }

    /// This manifest with each part a compaction moved taken from where its
    /// fragments are: its own place if `found` (fragments found of a seal id) has
    /// `k` of them there, else where it was before.
    pub fn settled(&self, found: impl Fn(&str) -> usize) -> ManifestRecord {
        let mut m = self.clone();
        for p in &mut m.parts {
            if let Some(before) = p.previous.take()
                && found(&p.seal.id) < usize::from(p.seal.k)
                && found(&before.seal.id) >= usize::from(before.seal.k)
            {
                *p = *before;
            }
        }
        m
    }

    /// The key bytes.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        unhex(&self.key)
    }

    /// The version row again.
    pub fn version(&self) -> Result<VersionRow, String> {
        let algorithm = match &self.checksum_algorithm {
            Some(a) => Some(a.parse::<ChecksumAlgorithm>().map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(VersionRow {
            id: self.version_id.parse().map_err(|_| "version id")?,
            bucket: self.bucket.clone(),
            key: self.key_bytes().ok_or("key not hex")?,
            size: self.size,
            etag: self.etag.clone(),
            last_modified: self.last_modified,
            attrs: ObjectAttrs {
                content_type: self.content_type.clone(),
                headers: self.headers.clone(),
                user_metadata: self.user_metadata.clone(),
                checksum_algorithm: algorithm,
                customer_key: self.customer_key.clone(),
                tags: self.tags.clone(),
            },
            checksum_value: self.checksum_value.clone(),
            checksum_type: self.checksum_type.clone(),
            part_count: self.parts.len() as u32,
            null_version: self.null_version,
            delete_marker: self.delete_marker,
            recorded_at: self.at,
            lock: Retention {
                mode: self
                    .lock_mode
                    .as_deref()
                    .map(str::parse::<crate::meta::LockMode>)
                    .transpose()
                    .map_err(|e| e.to_string())?,
                until: self.retain_until,
                legal_hold: self.legal_hold,
            },
        })
    }

    /// The part rows again.
    pub fn part_rows(&self) -> Result<Vec<PartRow>, String> {
        self.parts
            .iter()
            .map(|p| {
                Ok(PartRow {
                    number: p.number,
                    seal_id: p.seal.id.parse().map_err(|_| "seal id")?,
                    offset: p.offset,
                    size: p.size,
                    member: p.member.as_ref().map(RecordMember::to_member).transpose()?,
                })
            })
            .collect()
    }
}

impl PackRecord {
    /// The record of `manifests`, each a version whose one part is a member of the
    /// pack `seal`.
    pub fn of(written: i64, seal: RecordSeal, manifests: Vec<ManifestRecord>) -> Result<Self, String> {
        let members = manifests
            .into_iter()
            .map(|mut manifest| {
                let part = match manifest.parts.as_slice() {
                    [p] if p.seal.id == seal.id && p.number == 1 && p.offset == 0 => p.clone(),
                    _ => return Err(format!("version {}: not one member of pack {}", manifest.version_id, seal.id)),
                };
                let member = part.member.ok_or_else(|| format!("version {}: no slot", manifest.version_id))?;
                manifest.parts.clear();
                Ok(PackEntry { manifest, member, previous: part.previous })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { format: super::FORMAT, written, seal, members })
    }

    /// The members' manifests, whole.
    pub fn manifests(&self) -> Vec<ManifestRecord> {
        self.members
            .iter()
            .map(|e| {
                let mut m = e.manifest.clone();
                m.parts = vec![RecordPart {
                    number: 1,
                    offset: 0,
                    size: m.size,
                    seal: self.seal.clone(),
                    member: Some(e.member.clone()),
                    previous: e.previous.clone(),
                }];
                m
            })
            .collect()
    }
}

/// Hex of key bytes, as records hold them.
pub fn key_hex(key: &[u8]) -> String {
    hex(key)
}

/// Key bytes of a record's hex.
pub fn key_of(hex: &str) -> Option<Vec<u8>> {
    unhex(hex)
}

//! What the metadata store keeps, typed: ids, stored enums and rows. Rows are checked
//! as they are read: a value that does not fit (a state this version does not know,
//! `k` out of range, a malformed id) is [`MetaError::Corrupt`], never a panic and
//! never a silent default.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use codec::{CodingParams, WrappedKey};
use offload::random::{RandomError, SecureRandom};

use super::{LockDefault, MetaError, Retention};

/// Defines an enum stored as text: the variants with their stored names, `as_str`,
/// `FromStr` (an unknown name is [`MetaError::Corrupt`]), `Display` and `ALL`.
/// The names are part of the stored format: changing one breaks stored data.
macro_rules! db_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::meta::MetaError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err($crate::meta::MetaError::Corrupt(format!(
                        concat!(stringify!($name), " {:?}"),
                        other
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use db_enum;

/// Defines a random 16-byte id shown and stored as 32 lower-case hex digits.
macro_rules! hex_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn generate(random: &dyn SecureRandom) -> Result<Self, RandomError> {
                let mut b = [0u8; 16];
                random.fill(&mut b)?;
                Ok(Self(b))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = MetaError;
            fn from_str(s: &str) -> Result<Self, MetaError> {
                parse_hex16(s).map(Self).ok_or_else(|| MetaError::Corrupt(format!(concat!(stringify!($name), " {:?}"), s)))
            }
        }
    };
}

fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

hex_id!(
    /// A seal: one sealed, coded unit (a single-part object, or one part of a
    /// multipart upload). It is the codec's version id, bound into every segment's
    /// associated data, and names the seal's fragments at their locations.
    SealId
);

impl SealId {
    /// The codec's view of this id.
    pub fn codec(self) -> codec::VersionId {
        codec::VersionId(self.0)
    }
}

hex_id!(
    /// An object version.
    VersionId
);

hex_id!(
    /// A multipart upload.
    UploadId
);

db_enum! {
    /// The state of a seal.
    pub enum SealState {
        /// Being written; not referenced by any version yet.
        Pending = "pending",
        /// Fully written and referenced.
        Stored = "stored",
        /// No longer referenced: its fragments are to be deleted.
        Garbage = "garbage",
    }
}

db_enum! {
    /// The state of a fragment. Only `stored` counts towards a seal's margin; the
    /// others are repair candidates, and each is checked again before it is rebuilt
    /// (a file restored at its location is stored again, not rebuilt).
    pub enum FragmentState {
        /// Upload in progress.
        Pending = "pending",
        /// Landed at its location (and, when verified, read back whole).
        Stored = "stored",
        /// Failed to land, or its location answered that it has no such object.
        Missing = "missing",
        /// Read back with a record or header that failed its check.
        Corrupt = "corrupt",
        /// Being rebuilt.
        Repairing = "repairing",
    }
}

db_enum! {
    /// How a seal's segments were compressed before sealing.
    pub enum Compression {
        /// Not compressed.
        None = "none",
        /// Zstandard.
        Zstd = "zstd",
        /// LZ4.
        Lz4 = "lz4",
    }
}

impl Compression {
    /// The compressor, if any.
    pub fn algorithm(self) -> Option<offload::compress::Algorithm> {
        match self {
            Compression::None => None,
            Compression::Zstd => Some(offload::compress::Algorithm::Zstd),
            Compression::Lz4 => Some(offload::compress::Algorithm::Lz4),
        }
    }

    /// The compression of `algorithm`.
    pub fn of(algorithm: Option<offload::compress::Algorithm>) -> Self {
        match algorithm {
            None => Compression::None,
            Some(offload::compress::Algorithm::Zstd) => Compression::Zstd,
            Some(offload::compress::Algorithm::Lz4) => Compression::Lz4,
        }
    }

    /// The stored column: `NULL` for none (as rows from before this type have it).
    pub(crate) fn column(self) -> Option<&'static str> {
        (self != Compression::None).then(|| self.as_str())
    }

    /// Reads the stored column.
    pub(crate) fn from_column(c: Option<String>) -> Result<Self, MetaError> {
        c.map_or(Ok(Compression::None), |s| s.parse())
    }
}

db_enum! {
    /// A checksum algorithm of the S3 API, by the name stored with an object.
    pub enum ChecksumAlgorithm {
        /// CRC32 (IEEE).
        Crc32 = "CRC32",
        /// CRC32C (Castagnoli).
        Crc32c = "CRC32C",
        /// CRC64/NVME.
        Crc64Nvme = "CRC64NVME",
        /// SHA-1.
        Sha1 = "SHA1",
        /// SHA-256.
        Sha256 = "SHA256",
    }
}

impl ChecksumAlgorithm {
    /// Parses an API name, any case.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRow {
    /// Name.
    pub name: String,
    /// Placement policy name.
    pub policy: String,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// The tenant that owns it (that of the key that created it).
    pub tenant: String,
    /// That tenant's number (its fragment-cache key).
    pub tenant_number: u32,
    /// Its versioning state; `None` if versioning was never enabled.
    pub versioning: Option<Versioning>,
    /// Its object lock (with its default retention); `None`: not enabled.
    pub object_lock: Option<LockDefault>,
}

db_enum! {
    /// A bucket's versioning state, as S3 names it. Once enabled, a bucket's
    /// versioning can be suspended but never turned off again.
    pub enum Versioning {
        /// Every write makes a new version; a delete adds a delete marker.
        Enabled = "Enabled",
        /// Writes and deletes replace the key's `null` version; the others stay.
        Suspended = "Suspended",
    }
}

impl Versioning {
    /// Whether a write into a bucket in state `v` makes the key's `null` version.
    pub fn writes_null(v: Option<Self>) -> bool {
        v != Some(Self::Enabled)
    }
}

/// Where one fragment of a seal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Index, `0..n`.
    pub index: u8,
    /// Location name.
    pub location: String,
    /// Object name at the location.
    pub name: String,
    /// Bytes (0 until stored).
    pub size: u64,
    /// State.
    pub state: FragmentState,
    /// When it was last read back whole and found good (Unix ms; 0: not since it
    /// was written).
    pub verified_at: i64,
}

/// One sealed, coded unit and where its fragments are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// Random id.
    pub id: SealId,
    /// State.
    pub state: SealState,
    /// Plaintext bytes.
    pub size: u64,
    /// `k`, `n` and the segment size.
    pub params: CodingParams,
    /// Compression before sealing.
    pub compression: Compression,
    /// Sealed length of each segment, when compressed (they vary then).
    pub sealed_lens: Option<Vec<u32>>,
    /// Data key wrapped under the master key.
    pub wrapped_key: WrappedKey,
    /// Creation time.
    pub created_at: i64,
    /// A pack's number of members (its segments, one each); 0 for a seal of one
    /// object. A pack's `wrapped_key` seals nothing: each member has its own
    /// ([`PackMember`]).
    pub slots: u32,
    /// Its fragments, by index.
    pub fragments: Vec<Fragment>,
}

/// A member of a pack: one small object sealed under its own data key and id,
/// coded as segment `slot` of the pack's fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackMember {
    /// Its segment in the pack.
    pub slot: u32,
    /// Its own id (the codec's version id of its records).
    pub id: SealId,
    /// Plaintext bytes.
    pub size: u64,
    /// Its data key, wrapped under the master key.
    pub wrapped_key: WrappedKey,
}

impl Seal {
    /// The fragment of index `index`.
    pub fn fragment(&self, index: u8) -> Option<&Fragment> {
        self.fragments.iter().find(|f| f.index == index)
    }

    /// Fragments stored (the healthy ones).
    pub fn healthy(&self) -> usize {
        self.fragments.iter().filter(|f| f.state == FragmentState::Stored).count()
    }

    /// How many more fragments the seal can lose and still be read: healthy
    /// fragments minus `k` (negative: unreadable until repaired, if ever).
    pub fn margin(&self) -> i64 {
        margin(self.healthy(), self.params.k())
    }
}

/// The margin of a seal with `healthy` stored fragments of which `k` rebuild it.
pub fn margin(healthy: usize, k: u8) -> i64 {
    healthy as i64 - i64::from(k)
}

/// What a write learned of its fragments: which landed (and their bytes), which
/// did not, and the segments' sealed lengths when compressed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealFinish {
    /// Fragments stored: index and bytes.
    pub stored: Vec<(u8, u64)>,
    /// Fragments that did not land.
    pub missing: Vec<u8>,
    /// Sealed length of each segment, when compressed.
    pub sealed_lens: Option<Vec<u32>>,
    /// When some of `missing` are still being uploaded: repair leaves the seal
    /// alone until then (Unix ms; 0: repair when it likes).
    pub repair_after: i64,
}

/// Descriptive fields of an object version or multipart upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttrs {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Other standard headers (cache-control, content-disposition, …).
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` metadata, names without the prefix.
    pub user_metadata: BTreeMap<String, String>,
    /// Checksum algorithm requested or used.
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// Written with a customer-provided key (SSE-C): what checks the key a later
    /// request presents (a salted HMAC, never the key).
    pub customer_key: Option<String>,
    /// Tags (S3 object tagging).
    pub tags: BTreeMap<String, String>,
}

/// A visible (or about to be visible) object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Random id.
    pub id: VersionId,
    /// Bucket.
    pub bucket: String,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified, Unix ms.
    pub last_modified: i64,
    /// Descriptive fields.
    pub attrs: ObjectAttrs,
    /// Base64 checksum of the whole object, if one was given or asked for.
    pub checksum_value: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub checksum_type: Option<String>,
    /// Parts (1 for a single PUT; 0 for a delete marker).
    pub part_count: u32,
    /// The key's `null` version (written while versioning was off or suspended;
    /// S3 shows its id as `null`): a later `null` version replaces it.
    pub null_version: bool,
    /// A delete marker: no data; as the key's latest version, the key reads as
    /// deleted.
    pub delete_marker: bool,
    /// When its manifest was recorded (set by the commit): a key's versions are
    /// ordered by it, then by id.
    pub recorded_at: i64,
    /// Its object lock.
    pub lock: Retention,
}

impl VersionRow {
    /// Its id as S3 shows it: `null` for the key's null version.
    pub fn shown_id(&self) -> String {
        if self.null_version { "null".to_string() } else { self.id.to_string() }
    }
}

/// A version of a key as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    /// The key's `null` version.
    Null,
    /// A version by id.
    Id(VersionId),
}

impl std::str::FromStr for VersionRef {
    type Err = MetaError;
    fn from_str(s: &str) -> Result<Self, MetaError> {
        match s {
            "null" => Ok(Self::Null),
            id => id.parse().map(Self::Id),
        }
    }
}

/// A part of a version: a seal covering a byte range of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    /// Part number (1-based).
    pub number: u32,
    /// The seal.
    pub seal_id: SealId,
    /// Offset of the part in the object.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
    /// Its member of the pack `seal_id` names, if packed.
    pub member: Option<PackMember>,
}

/// Everything a read needs of an object, from one snapshot of the store: the
/// version, each part's seal with its fragments, and the owner's cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The version.
    pub version: VersionRow,
    /// Its parts in order, each with its seal.
    pub parts: Vec<ManifestPart>,
    /// The number of the tenant owning the bucket (its fragment-cache key).
    pub tenant_number: u32,
}

/// One part of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPart {
    /// Part number (1-based).
    pub number: u32,
    /// Offset of the part in the object.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
    /// Its seal and fragments.
    pub seal: Seal,
    /// Its member of that seal, if the seal is a pack.
    pub member: Option<PackMember>,
}

impl ManifestPart {
    /// Its row.
    pub fn row(&self) -> PartRow {
        PartRow {
            number: self.number,
            seal_id: self.seal.id,
            offset: self.offset,
            size: self.size,
            member: self.member.clone(),
        }
    }
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Key bytes.
    pub key: Vec<u8>,
    /// Bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified.
    pub last_modified: i64,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    /// Upload id.
    pub id: UploadId,
    /// Bucket.
    pub bucket: String,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Initiated, Unix ms.
    pub created_at: i64,
    /// Descriptive fields for the final object.
    pub attrs: ObjectAttrs,
    /// `COMPOSITE` or `FULL_OBJECT`: how the whole object's checksum is made from
    /// the parts' (with a checksum algorithm).
    pub checksum_type: Option<String>,
    /// The object lock of the version it makes.
    pub lock: Retention,
}

/// An uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPartRow {
    /// Part number.
    pub number: u32,
    /// Its seal.
    pub seal_id: SealId,
    /// Bytes.
    pub size: u64,
    /// ETag of the part (hex digest, no quotes).
    pub etag: String,
    /// Base64 checksum of the part, if any.
    pub checksum_value: Option<String>,
    /// Upload time.
    pub last_modified: i64,
}

/// An access key with its sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    /// Access key id.
    pub id: String,
    /// Secret sealed under the master key.
    pub secret_sealed: Vec<u8>,
    /// Master key version that sealed it.
    pub kek_version: i64,
    /// Whether it may be used.
    pub enabled: bool,
    /// Creation time.
    pub created_at: i64,
    /// The tenant it acts for.
    pub tenant: String,
    /// It may bypass governance retention (`x-amz-bypass-governance-retention`).
    pub bypass_governance: bool,
}

/// What a write requires of its key when it commits (S3's conditional writes:
/// `If-None-Match: *` and `If-Match` on PUT, CopyObject and
/// CompleteMultipartUpload). Checked in the commit's transaction, so that of
/// concurrent writers with the same condition exactly one succeeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    /// Nothing: the write replaces whatever the key holds.
    #[default]
    Any,
    /// The key holds no object.
    Absent,
    /// The key's object has this ETag (without quotes).
    ETag(String),
}

impl WriteCondition {
    /// Whether the condition holds for a key whose object has `etag` (`None`: the
    /// key holds nothing).
    pub fn check(&self, etag: Option<&str>) -> Result<(), super::MetaError> {
        match (self, etag) {
            (WriteCondition::Absent, Some(_)) => Err(super::MetaError::Precondition("the key holds an object")),
            (WriteCondition::ETag(_), None) => Err(super::MetaError::NoSuchKey),
            (WriteCondition::ETag(want), Some(have)) if want != have => {
                Err(super::MetaError::Precondition("the key's object has another ETag"))
            }
            _ => Ok(()),
        }
    }
}

/// What a delete requires of the object it removes (S3's conditional deletes:
/// `If-Match`, `x-amz-if-match-last-modified-time`, `x-amz-if-match-size`, and
/// the same conditions on each entry of DeleteObjects). Every one given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteCondition {
    /// The object's ETag (without quotes).
    pub etag: Option<String>,
    /// Its Last-Modified, in whole seconds since the epoch.
    pub last_modified_secs: Option<i64>,
    /// Its size.
    pub size: Option<u64>,
}

impl DeleteCondition {
    /// Whether the delete asks anything of the object.
    pub fn is_any(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `v` meets every condition given.
    pub fn holds(&self, v: &VersionRow) -> bool {
        self.etag.as_ref().is_none_or(|e| *e == v.etag)
            && self.last_modified_secs.is_none_or(|t| t == v.last_modified.div_euclid(1000))
            && self.size.is_none_or(|s| s == v.size)
    }
}

/// What committing a version replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replaced {
    /// The previous version's id, if the key had one.
    pub version_id: Option<VersionId>,
}

/// Which pending writes are dead: those last touched before `before` (the grace
/// period ran out), and those `writer` recorded before `writer_before` (the node
/// restarted since, so the process that wrote them is gone).
#[derive(Debug, Clone, Copy)]
pub struct DeadWrites<'a> {
    /// Pending seals last touched before this (ms) are dead, whoever wrote them.
    pub before: i64,
    /// The node asking.
    pub writer: &'a str,
    /// Its pending seals last touched before this (ms) are dead.
    pub writer_before: i64,
    /// Garbage seals last touched before this (ms) are collected (younger ones
    /// may still be read: `pipeline.retired_grace`).
    pub retired_before: i64,
}

/// A column that must fit in a smaller integer type.
pub(crate) fn fit<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, MetaError> {
    T::try_from(v).map_err(|_| MetaError::Corrupt(format!("{what} {v} out of range")))
}

/// A size or offset as stored (BIGINT).
pub(crate) fn big(v: u64) -> i64 {
    // Sizes are bounded far below 2^63 (5 TiB objects): saturating only guards.
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_as_hex_and_refuse_anything_else() {
        let id = SealId([0xab; 16]);
        let hex = id.to_string();
        assert_eq!(hex, "ab".repeat(16));
        assert_eq!(hex.parse::<SealId>().expect("parse"), id);
        for bad in ["", "ab", &"zz".repeat(16), &"ab".repeat(17), "é".repeat(16).as_str()] {
            assert!(bad.parse::<VersionId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_enums_round_trip_and_unknown_names_are_corrupt() {
        for s in SealState::ALL {
            assert_eq!(s.as_str().parse::<SealState>().expect("parse"), *s);
        }
        assert!(matches!("sealed".parse::<SealState>(), Err(MetaError::Corrupt(_))));
        assert_eq!(Compression::from_column(None).expect("none"), Compression::None);
        assert_eq!(Compression::from_column(Some("zstd".into())).expect("zstd"), Compression::Zstd);
        assert!(Compression::from_column(Some("brotli".into())).is_err());
        assert_eq!(Compression::Lz4.column(), Some("lz4"));
        assert_eq!(Compression::None.column(), None);
        assert_eq!(ChecksumAlgorithm::from_name("crc64nvme"), Some(ChecksumAlgorithm::Crc64Nvme));
        assert_eq!(ChecksumAlgorithm::from_name("md5"), None);
    }
}

//! The Skyshard object format: how an object becomes `n` fragments that are safe to
//! hand to anyone, any `k` of which rebuild it.
//!
//! # Seal, then code
//!
//! An object is cut into segments (4 MiB by default, [`params`]). Each segment is
//! optionally compressed, then sealed with AES-256-GCM under a fresh random data key
//! per object version ([`seal`]); the nonce is the segment index and the associated
//! data binds the object version, the index and a last-segment flag — the STREAM
//! construction — so segments cannot be reordered, moved between objects or dropped
//! from the end. Only then is the *ciphertext* coded: cut into `k` equal source
//! symbols and combined with dense random GF(2^8) coefficients into `n` coded symbols
//! (non-systematic Random Linear Network Coding, [`rlnc`]).
//!
//! Sealing first means that coding, storage, repair and the locations themselves only
//! ever handle ciphertext: a location, or anyone holding fewer than `k` fragments,
//! learns nothing but sizes, and repair ([`object::Recoder`]) makes a new fragment
//! from `k` old ones without the key and without decoding.
//!
//! # Fragments describe themselves
//!
//! A fragment ([`fragment`]) is a header followed by one record per segment; each
//! record carries its coefficient vector next to its coded symbol and a CRC32C over
//! both. Any `k` fragments with independent coefficients decode without the metadata
//! database, a corrupt record is identified by its checksum (summed as it is
//! decoded, before any decoded byte is used), and a record that
//! decodes to something else (a forged checksum) fails GCM authentication: wrong
//! bytes are never returned.
//!
//! # No I/O, no clock, no threads
//!
//! Everything here is synchronous and works segment by segment on caller-provided
//! buffers, as quinn's protocol core does, so the gateway decides where it runs
//! (`spawn_blocking`, a thread-pool engine) and how much is in flight.

#![forbid(unsafe_code)]

pub mod decode;
pub mod error;
pub mod fragment;
pub mod object;
pub mod params;
pub mod rlnc;
pub mod seal;

pub use decode::{DecodedSegment, ObjectDecoder};
pub use error::{CodecError, RecordError};
pub use fragment::{FragmentHeader, FragmentLayout};
pub use object::{EncodedSegment, ObjectEncoder, RecodedSegment, Recoder, RecordBinding, SealJob};
pub use params::{CodingParams, SegmentLayout};
pub use rlnc::CodingMatrix;
pub use seal::{MasterKey, VersionId, WrappedKey};

//! Skyshard's offload layer: every cycle of crypto, coding arithmetic and integrity
//! checking that the gateway spends goes through an engine defined here.
//!
//! # Why a layer of its own
//!
//! The gateway must run on an ordinary two-core VM and also take advantage of a NIC,
//! DPU or PCIe accelerator where one is present. The data path therefore never calls
//! a crypto library directly: it asks for an engine by *job* (AEAD, GF(2^8) arithmetic,
//! CRC32C, AES-XTS, compression, randomness) and gets whichever implementation
//! [`select::Offload::select`] picked after [`probe::probe`] looked at the machine.
//!
//! Each job is a small trait with an algorithm/keyed-instance split (as rustls splits
//! `Tls13AeadAlgorithm` from `MessageEncrypter`):
//!
//! | job | trait | engines |
//! |---|---|---|
//! | AES-256-GCM | [`aead::AeadEngine`] → [`aead::AeadKey`] | `ring` (default), `rustcrypto` (portable), `pool` (dedicated threads, queue depth, batches), `aws-lc` (feature) |
//! | GF(2^8) multiply-accumulate | [`gf::GfKernel`] | `gfni-avx512`, `gfni-avx2` (`vgf2p8affineqb`, bit matrices), `avx2` (split tables + `vpshufb`), `portable`, `isal` (Intel ISA-L, when the shared library is installed) |
//! | CRC32C | [`crc::Crc32c`] | `sse42` (3-way `crc32` instruction), `crc-fast` (PCLMUL folding), `isal`, `portable` |
//! | AES-256-XTS | [`xts::XtsEngine`] | `rustcrypto` (AES-NI through `aes` 0.8) |
//! | compression | [`compress::Compressor`] | `zstd`, `lz4` |
//! | randomness | [`random::SecureRandom`] | `system` (the OS CSPRNG via ring) |
//!
//! # Accounting
//!
//! [`select::Offload::select`] wraps every engine it hands out in a meter
//! ([`meter`]), so the gateway can report, per engine, bytes processed and the time
//! its calling threads spent inside it — the cycles per byte that tell whether an
//! offload pays.
//!
//! # Unsafe code
//!
//! Only the SIMD kernels (`engine::gf_avx2`), the ISA-L foreign functions
//! ([`isal`]'s `ffi`) and the time-stamp counter read in [`meter`] use `unsafe`;
//! each block states why it is sound.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod aead;
pub mod buf;
pub mod compress;
pub mod conformance;
pub mod crc;
mod engine;
pub mod gf;
pub mod isal;
pub mod meter;
pub mod probe;
pub mod random;
pub mod select;
pub mod tls;
pub mod xts;

pub use buf::AlignedBuf;
pub use probe::{Capabilities, probe};
pub use select::{
    EngineChoice, Offload, OffloadConfig, SelectError, Selection, aead_engine, crc32c_engine, engine_names, gf_kernel,
    xts_engine,
};

//! Engine implementations. Each module implements one or more of the job traits in
//! the crate root; [`crate::select`] decides which run.

#[cfg(feature = "aws-lc")]
pub mod aws_lc;
pub mod compress;
pub mod crc;
pub mod gf_avx2;
pub mod gf_portable;
pub mod isal;
pub mod pool;
pub mod ring;
pub mod rustcrypto;
pub mod xts_batched;

//! Engine implementations. Each module implements one or more of the job traits in
//! the crate root; [`crate::select`] decides which run.

#[cfg(feature = "aws-lc")]
pub(crate) mod aws_lc;
pub(crate) mod compress;
pub(crate) mod crc;
pub(crate) mod gf_avx2;
pub(crate) mod gf_gfni;
pub(crate) mod gf_portable;
pub(crate) mod pool;
pub(crate) mod ring;
pub(crate) mod rustcrypto;
pub(crate) mod xts_batched;

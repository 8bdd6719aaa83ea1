//! Intel ISA-L (`libisal`, Debian's `libisal2`), loaded at run time.
//!
//! ISA-L is the reference for GF(2^8) erasure-coding speed. Where it is installed it
//! is selectable as the `isal` GF kernel and CRC32C engine; this module is public,
//! unlike the other engines, because `skyshard bench codec` reproduces ISA-L's own
//! encode and decode paths (tables prepared once, `gf_invert_matrix`) as baselines,
//! which the job traits do not expose.

mod ffi;

use std::sync::OnceLock;

use crate::crc::Crc32c;
use crate::gf::{GfKernel, check_shape};

use ffi::Isal;

fn library() -> Result<&'static Isal, &'static str> {
    static ISAL: OnceLock<Result<Isal, String>> = OnceLock::new();
    ISAL.get_or_init(Isal::load).as_ref().map_err(String::as_str)
}

/// Whether ISA-L can be loaded here, and from which file; or why not.
pub fn available() -> Result<&'static str, &'static str> {
    library().map(|l| l.path)
}

/// The ISA-L GF kernel: `ec_init_tables` + `ec_encode_data` per call.
#[derive(Debug, Clone, Copy)]
pub struct IsalKernel {
    _private: (),
}

impl IsalKernel {
    /// The kernel, or why ISA-L cannot be loaded.
    pub fn new() -> Result<Self, &'static str> {
        library().map(|_| Self { _private: () })
    }

    /// Inverts an `n × n` matrix with ISA-L's `gf_invert_matrix` (for benchmarks that
    /// reproduce ISA-L's own decode path).
    pub fn invert(&self, matrix: &[u8], n: usize) -> Option<Vec<u8>> {
        library().ok()?.invert(matrix, n)
    }

    /// Expanded tables for `coeffs` (a `rows × k` matrix), to reuse across calls of
    /// [`Self::encode_with_tables`].
    pub fn tables(&self, k: usize, rows: usize, coeffs: &[u8]) -> IsalTables {
        IsalTables(self.lib().init_tables(k, rows, coeffs))
    }

    /// `ec_encode_data` with tables prepared by [`Self::tables`].
    pub fn encode_with_tables(&self, tables: &IsalTables, inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        let len = inputs.first().map_or(0, |r| r.len());
        self.lib().encode(&tables.0, inputs, outputs, len);
    }

    fn lib(&self) -> &'static Isal {
        // `IsalKernel` is only constructed after the library loaded.
        library().unwrap_or_else(|_| unreachable!("IsalKernel exists only when ISA-L loaded"))
    }
}

/// ISA-L's expanded multiplication tables for one matrix.
#[derive(Debug, Clone)]
pub struct IsalTables(Vec<u8>);

impl GfKernel for IsalKernel {
    fn name(&self) -> &'static str {
        "isal"
    }

    fn dot_prod(&self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        let len = check_shape(coeffs, inputs, outputs);
        let lib = self.lib();
        let tables = lib.init_tables(inputs.len(), outputs.len(), coeffs);
        lib.encode(&tables, inputs, outputs, len);
    }
}

/// ISA-L's `crc32_iscsi`.
#[derive(Debug, Clone, Copy)]
pub struct IsalCrc {
    _private: (),
}

impl IsalCrc {
    /// The engine, or why ISA-L cannot be loaded.
    pub fn new() -> Result<Self, &'static str> {
        library().map(|_| Self { _private: () })
    }
}

impl Crc32c for IsalCrc {
    fn name(&self) -> &'static str {
        "isal"
    }

    fn append(&self, crc: u32, data: &[u8]) -> u32 {
        match library() {
            Ok(lib) => !lib.crc32c_raw(!crc, data),
            Err(_) => unreachable!("IsalCrc exists only when ISA-L loaded"),
        }
    }
}

//! CRC32C (Castagnoli), the integrity check on every fragment record and cache block.

use std::fmt;

use crate::meter::Meter;

/// CRC32C of `"123456789"`, the catalogue check value.
pub const CHECK_VALUE: u32 = 0xE306_9283;

/// A CRC32C implementation.
pub trait Crc32c: fmt::Debug + Send + Sync {
    /// Short stable name.
    fn name(&self) -> &'static str;

    /// Continues a checksum: `append(checksum(a), b) == checksum(a ‖ b)`, and
    /// `append(0, b) == checksum(b)`.
    fn append(&self, crc: u32, data: &[u8]) -> u32;

    /// The CRC32C of `data`.
    fn checksum(&self, data: &[u8]) -> u32 {
        self.append(0, data)
    }

    /// The engine doing the work and the meter it charges, if this is a metered twin
    /// ([`crate::meter::MeteredCrc`]): an operation that sums many small blocks
    /// ([`crate::gf::GfKernel::dot_prod_summed`]) then reads the clock once, not per
    /// block.
    fn metered(&self) -> Option<(&dyn Crc32c, &Meter)> {
        None
    }
}

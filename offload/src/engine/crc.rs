//! CRC32C engines.
//!
//! Measured on the target machines (AMD EPYC, SSE4.2 and PCLMULQDQ, no AVX-512), the
//! 3-way interleaved `crc32` instruction of the `crc32c` crate runs at 13 GB/s on
//! 4 KiB and 20 GB/s on 1 MiB, ahead of `crc-fast`'s PCLMULQDQ folding (9 and 13 GB/s),
//! whose AVX-512 paths these machines cannot use.

use crate::crc::Crc32c;

/// The `crc32` instruction (SSE4.2), three streams interleaved (`crc32c` crate); the
/// crate falls back to tables on CPUs without SSE4.2.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sse42Crc;

impl Crc32c for Sse42Crc {
    fn name(&self) -> &'static str {
        "sse42"
    }

    fn append(&self, crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

/// `crc-fast`: carry-less multiplication folding (PCLMULQDQ; VPCLMULQDQ with AVX-512).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CrcFast;

impl Crc32c for CrcFast {
    fn name(&self) -> &'static str {
        "crc-fast"
    }

    fn append(&self, crc: u32, data: &[u8]) -> u32 {
        use crc_fast::CrcAlgorithm::Crc32Iscsi;
        let tail = crc_fast::checksum(Crc32Iscsi, data);
        if crc == 0 {
            return tail as u32;
        }
        crc_fast::checksum_combine(Crc32Iscsi, u64::from(crc), tail, data.len() as u64) as u32
    }
}

const fn portable_tables() -> [[u32; 256]; 8] {
    const POLY: u32 = 0x82F6_3B78; // reflected Castagnoli polynomial
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = portable_tables();

/// Slicing-by-8 tables: the reference every other engine is checked against.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PortableCrc;

impl Crc32c for PortableCrc {
    fn name(&self) -> &'static str {
        "portable"
    }

    fn append(&self, crc: u32, data: &[u8]) -> u32 {
        let t = &TABLES;
        let mut c = !crc;
        let mut chunks = data.chunks_exact(8);
        for ch in &mut chunks {
            let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
            let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
            c = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xFF) as usize]
                ^ t[2][((hi >> 8) & 0xFF) as usize]
                ^ t[1][((hi >> 16) & 0xFF) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            c = (c >> 8) ^ t[0][((c ^ u32::from(b)) & 0xFF) as usize];
        }
        !c
    }
}

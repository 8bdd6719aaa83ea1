//! Fragment parsing on arbitrary bytes: headers and records must be accepted or
//! refused, never panic. Half of the runs fix up the checksums first, so that the
//! fuzzer explores the field checks behind them.
#![no_main]

use std::sync::{Arc, OnceLock};

use codec::fragment::{FragmentHeader, HEADER_LEN, parse_record, record_checksum, split_records};
use codec::VersionId;
use libfuzzer_sys::fuzz_target;
use offload::crc::Crc32c;

/// The reference CRC32C engine, built once (probing the machine is not free).
fn portable_crc() -> &'static dyn Crc32c {
    static CRC: OnceLock<Arc<dyn Crc32c>> = OnceLock::new();
    CRC.get_or_init(|| offload::crc32c_engine("portable", &offload::probe()).expect("portable CRC32C")).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let crc = portable_crc();
    let Some((&mode, data)) = data.split_first() else { return };
    let mut bytes = data.to_vec();
    if mode & 1 == 1 && bytes.len() >= HEADER_LEN {
        let sum = crc.checksum(&bytes[..60]);
        bytes[60..64].copy_from_slice(&sum.to_le_bytes());
    }
    let Ok(header) = FragmentHeader::parse(&bytes, crc) else {
        // Not a fragment: try the bytes as one record of a small code.
        let _ = parse_record(&bytes, 4, 1 << 20, &VersionId([0; 16]), 0, crc);
        return;
    };
    assert_eq!(FragmentHeader::parse(&header.to_bytes(crc), crc), Ok(header));
    let count = header.segment_count.min(64);
    let Ok(records) = split_records(header.k, &bytes[HEADER_LEN..], count) else { return };
    for (i, rec) in records.into_iter().enumerate() {
        let mut rec = rec.to_vec();
        if mode & 2 == 2 && rec.len() >= 4 {
            let body = rec.len() - 4;
            let sum = record_checksum(crc, &header.version, i as u64, &rec[..body]);
            rec[body..].copy_from_slice(&sum.to_le_bytes());
        }
        if let Ok(view) = parse_record(&rec, header.k, header.segment_size + 16, &header.version, i as u64, crc) {
            assert_eq!(view.coeffs.len(), usize::from(header.k));
            assert!(view.symbol.len() * usize::from(header.k) >= view.sealed_len as usize);
        }
    }
});

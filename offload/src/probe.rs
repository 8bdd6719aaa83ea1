//! What this machine offers the engines: CPU features, ISA-L, kernel TLS.
//!
//! Probing happens once at start-up; [`crate::select::Offload::select`] turns the
//! answer into engines.

/// The features engines depend on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// Target architecture (`x86_64`, `aarch64`, …).
    pub arch: &'static str,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// AES-NI.
    pub aes_ni: bool,
    /// Carry-less multiplication (GHASH, CRC folding).
    pub pclmulqdq: bool,
    /// Vector AES (256-bit AES rounds).
    pub vaes: bool,
    /// Vector carry-less multiplication.
    pub vpclmulqdq: bool,
    /// SSE4.2 (the `crc32` instruction).
    pub sse42: bool,
    /// AVX2 (`vpshufb` on 256-bit registers).
    pub avx2: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX-512 byte and word instructions.
    pub avx512bw: bool,
    /// Galois-field new instructions (`gf2p8affineqb`).
    pub gfni: bool,
    /// Where Intel ISA-L was loaded from, if it was.
    pub isal: Option<String>,
    /// Why ISA-L could not be loaded, if it could not.
    pub isal_error: Option<String>,
    /// Whether the kernel offers the `tls` upper-layer protocol (kernel TLS), tried
    /// on a loopback socket.
    pub ktls: bool,
    /// Why kernel TLS is not available, if it is not.
    pub ktls_error: Option<String>,
}

/// Looks at this machine.
pub fn probe() -> Capabilities {
    let (isal, isal_error) = match crate::isal::available() {
        Ok(path) => (Some(path.to_string()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    #[cfg(target_os = "linux")]
    let ktls_error = crate::tls::ktls::trial().err();
    #[cfg(not(target_os = "linux"))]
    let ktls_error = Some("kernel TLS needs Linux".to_string());
    let ktls = ktls_error.is_none();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        Capabilities {
            arch: std::env::consts::ARCH,
            cpus,
            aes_ni: has!("aes"),
            pclmulqdq: has!("pclmulqdq"),
            vaes: has!("vaes"),
            vpclmulqdq: has!("vpclmulqdq"),
            sse42: has!("sse4.2"),
            avx2: has!("avx2"),
            avx512f: has!("avx512f"),
            avx512bw: has!("avx512bw"),
            gfni: has!("gfni"),
            isal,
            isal_error,
            ktls,
            ktls_error,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Capabilities {
            arch: std::env::consts::ARCH,
            cpus,
            aes_ni: false,
            pclmulqdq: false,
            vaes: false,
            vpclmulqdq: false,
            sse42: false,
            avx2: false,
            avx512f: false,
            avx512bw: false,
            gfni: false,
            isal,
            isal_error,
            ktls,
            ktls_error,
        }
    }
}

//! The few ISA-L entry points Skyshard calls, resolved at run time from
//! `libisal.so.2` so that the library is optional: present, it is one more engine
//! (and the baseline of `skyshard bench codec`); absent, nothing changes.

use std::ffi::{c_int, c_uchar, c_uint};

use libloading::Library;

type EcInitTables = unsafe extern "C" fn(c_int, c_int, *mut c_uchar, *mut c_uchar);
type EcEncodeData = unsafe extern "C" fn(c_int, c_int, c_int, *mut c_uchar, *mut *mut c_uchar, *mut *mut c_uchar);
type GfInvertMatrix = unsafe extern "C" fn(*mut c_uchar, *mut c_uchar, c_int) -> c_int;
type Crc32Iscsi = unsafe extern "C" fn(*mut c_uchar, c_int, c_uint) -> c_uint;

/// Names tried, in order, when loading ISA-L.
const LIBRARY_NAMES: [&str; 2] = ["libisal.so.2", "libisal.so"];

/// ISA-L's functions, resolved from a library that stays loaded while this lives.
pub(crate) struct Isal {
    ec_init_tables: EcInitTables,
    ec_encode_data: EcEncodeData,
    gf_invert_matrix: GfInvertMatrix,
    crc32_iscsi: Crc32Iscsi,
    /// Which file was loaded.
    pub(crate) path: &'static str,
    _library: Library,
}

impl Isal {
    /// Loads the library and resolves every symbol, or says why it could not.
    pub(crate) fn load() -> Result<Self, String> {
        let mut errors = Vec::new();
        for name in LIBRARY_NAMES {
            // SAFETY: loading ISA-L runs no initialisers with preconditions of ours;
            // it is a plain C library with no global constructors that matter here.
            match unsafe { Library::new(name) } {
                Ok(library) => return Self::resolve(library, name),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        Err(errors.join("; "))
    }

    fn resolve(library: Library, path: &'static str) -> Result<Self, String> {
        // SAFETY: the types match the prototypes in ISA-L's `erasure_code.h` and
        // `crc.h`; the pointers are only used while `_library` keeps the code mapped.
        unsafe {
            let ec_init_tables = *library.get::<EcInitTables>(b"ec_init_tables\0").map_err(|e| e.to_string())?;
            let ec_encode_data = *library.get::<EcEncodeData>(b"ec_encode_data\0").map_err(|e| e.to_string())?;
            let gf_invert_matrix = *library.get::<GfInvertMatrix>(b"gf_invert_matrix\0").map_err(|e| e.to_string())?;
            let crc32_iscsi = *library.get::<Crc32Iscsi>(b"crc32_iscsi\0").map_err(|e| e.to_string())?;
            Ok(Self { ec_init_tables, ec_encode_data, gf_invert_matrix, crc32_iscsi, path, _library: library })
        }
    }

    /// Expands a `rows × k` coefficient matrix into ISA-L's lookup tables
    /// (`32 · k · rows` bytes).
    pub(crate) fn init_tables(&self, k: usize, rows: usize, coeffs: &[u8]) -> Vec<u8> {
        assert_eq!(coeffs.len(), k * rows, "coefficient matrix shape");
        assert!(k <= 255 && rows <= 255, "ISA-L matrices are at most 255 × 255");
        let mut tables = vec![0u8; 32 * k * rows];
        // SAFETY: `coeffs` holds `k · rows` bytes and `tables` `32 · k · rows`, the
        // sizes `ec_init_tables` reads and writes; ISA-L does not write `coeffs`.
        unsafe {
            (self.ec_init_tables)(k as c_int, rows as c_int, coeffs.as_ptr().cast_mut(), tables.as_mut_ptr());
        }
        tables
    }

    /// `ec_encode_data` over rows of `len` bytes with tables from [`Self::init_tables`].
    pub(crate) fn encode(&self, tables: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]], len: usize) {
        let (k, rows) = (inputs.len(), outputs.len());
        assert_eq!(tables.len(), 32 * k * rows, "table shape");
        assert!(inputs.iter().all(|r| r.len() >= len) && outputs.iter().all(|r| r.len() >= len));
        let mut src: Vec<*mut c_uchar> = inputs.iter().map(|r| r.as_ptr().cast_mut()).collect();
        let mut dst: Vec<*mut c_uchar> = outputs.iter_mut().map(|r| r.as_mut_ptr()).collect();
        // ISA-L takes an `int` length: feed it in chunks below 2^31.
        const CHUNK: usize = 1 << 30;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            // SAFETY: every source and destination pointer addresses at least
            // `done + n` bytes (asserted above), the tables match `k × rows`, and
            // ISA-L reads `src` rows and writes `dst` rows only within `n` bytes.
            unsafe {
                (self.ec_encode_data)(
                    n as c_int,
                    k as c_int,
                    rows as c_int,
                    tables.as_ptr().cast_mut(),
                    src.as_mut_ptr(),
                    dst.as_mut_ptr(),
                );
            }
            for p in src.iter_mut().chain(dst.iter_mut()) {
                // SAFETY: stays within the rows, which hold at least `len` bytes.
                *p = unsafe { p.add(n) };
            }
            done += n;
        }
    }

    /// Inverts an `n × n` matrix; `None` if it is singular.
    pub(crate) fn invert(&self, matrix: &[u8], n: usize) -> Option<Vec<u8>> {
        assert_eq!(matrix.len(), n * n, "matrix shape");
        let mut input = matrix.to_vec();
        let mut out = vec![0u8; n * n];
        // SAFETY: both buffers hold `n · n` bytes; ISA-L scribbles on `input` (a copy).
        let rc = unsafe { (self.gf_invert_matrix)(input.as_mut_ptr(), out.as_mut_ptr(), n as c_int) };
        (rc == 0).then_some(out)
    }

    /// ISA-L's raw CRC32C update (no pre- or post-inversion).
    pub(crate) fn crc32c_raw(&self, state: u32, data: &[u8]) -> u32 {
        let mut state = state;
        for chunk in data.chunks(1 << 30) {
            // SAFETY: `chunk` is valid for `chunk.len()` bytes, which fits an `int`;
            // ISA-L only reads it.
            state = unsafe { (self.crc32_iscsi)(chunk.as_ptr().cast_mut(), chunk.len() as c_int, state) };
        }
        state
    }
}

//! The portable GF(2^8) kernel: table lookups, any CPU. It is the reference every
//! SIMD kernel must match byte for byte.

use crate::gf::{GfKernel, check_shape, mul_table};

/// Columns processed per pass, so that the inputs of one pass stay in L1.
const BLOCK: usize = 4096;

/// Full 256-entry product rows, one lookup per byte.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PortableKernel;

impl GfKernel for PortableKernel {
    fn name(&self) -> &'static str {
        "portable"
    }

    fn dot_prod(&self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        let len = check_shape(coeffs, inputs, outputs);
        dot_prod_range(coeffs, inputs, outputs, 0, len);
    }
}

/// [`GfKernel::dot_prod`] on columns `start..end` only; the SIMD kernels use it for
/// the tail that does not fill a vector.
pub(crate) fn dot_prod_range(coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]], start: usize, end: usize) {
    let table = mul_table();
    let k = inputs.len();
    let mut lo = start;
    while lo < end {
        let hi = (lo + BLOCK).min(end);
        for (r, out) in outputs.iter_mut().enumerate() {
            let out = &mut out[lo..hi];
            out.fill(0);
            for (j, input) in inputs.iter().enumerate() {
                let c = coeffs[r * k + j];
                let input = &input[lo..hi];
                match c {
                    0 => {}
                    1 => out.iter_mut().zip(input).for_each(|(o, &x)| *o ^= x),
                    _ => {
                        let row = &table[c as usize];
                        out.iter_mut().zip(input).for_each(|(o, &x)| *o ^= row[x as usize]);
                    }
                }
            }
        }
        lo = hi;
    }
}

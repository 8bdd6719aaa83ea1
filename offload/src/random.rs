//! Randomness for keys, nonces and coding coefficients.

use std::fmt;
use std::sync::Mutex;

/// The random source failed (the OS refused to provide entropy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the random source failed")]
pub struct RandomError;

/// A source of random bytes.
pub trait SecureRandom: fmt::Debug + Send + Sync {
    /// Short stable name.
    fn name(&self) -> &'static str;

    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

/// The operating system's CSPRNG (`getrandom(2)`), through ring.
#[derive(Debug)]
pub struct SystemRandom(ring::rand::SystemRandom);

impl Default for SystemRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemRandom {
    /// The OS random source.
    pub fn new() -> Self {
        Self(ring::rand::SystemRandom::new())
    }
}

impl SecureRandom for SystemRandom {
    fn name(&self) -> &'static str {
        "system"
    }

    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        ring::rand::SecureRandom::fill(&self.0, dest).map_err(|_| RandomError)
    }
}

/// A deterministic generator (SplitMix64) for reproducible tests and benchmarks.
///
/// **Not secure**: never use it for keys. [`crate::select::Offload::select`] never
/// hands it out.
#[derive(Debug)]
pub struct SeededRandom(Mutex<u64>);

impl SeededRandom {
    /// A generator whose output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(seed))
    }
}

impl SecureRandom for SeededRandom {
    fn name(&self) -> &'static str {
        "seeded-insecure"
    }

    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        let mut state = self.0.lock().map_err(|_| RandomError)?;
        for chunk in dest.chunks_mut(8) {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_random_fills() {
        let rng = SystemRandom::new();
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        rng.fill(&mut a).expect("entropy");
        rng.fill(&mut b).expect("entropy");
        assert_ne!(a, b);
    }

    #[test]
    fn seeded_is_reproducible() {
        let mut a = [0u8; 19];
        let mut b = [0u8; 19];
        SeededRandom::new(7).fill(&mut a).expect("fill");
        SeededRandom::new(7).fill(&mut b).expect("fill");
        assert_eq!(a, b);
        SeededRandom::new(8).fill(&mut b).expect("fill");
        assert_ne!(a, b);
    }
}

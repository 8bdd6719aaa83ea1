//! Key escrow: the master key split into `n` shares of which any `m` rebuild it
//! (Shamir's secret sharing over GF(2^8), byte by byte), so that the gateway's disk
//! is not the only copy and no single custodian holds the key. Fewer than `m`
//! shares tell nothing about the key.
//!
//! A share is one line of text: `sks1-<m>-<x>-<64 hex digits>-<key id>-<check>`.
//! The key id (16 hex digits of a SHA-256 of the key) tells shares of different
//! keys apart and confirms the key rebuilt; the check (8 hex digits) catches a
//! mistyped share before it is used.

use offload::random::SecureRandom;
use ring::digest;
use zeroize::Zeroizing;

/// Share format version.
const PREFIX: &str = "sks1";

/// Splitting or combining failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EscrowError {
    /// Impossible numbers of shares.
    #[error("a threshold of {threshold} of {shares} shares: use 2 ≤ threshold ≤ shares ≤ 255")]
    Counts {
        /// Shares asked for.
        shares: usize,
        /// Threshold asked for.
        threshold: usize,
    },
    /// A share that cannot be read (mistyped, cut, or not a share).
    #[error("share {0} is not a valid share (mistyped or cut?)")]
    Malformed(usize),
    /// Shares of different keys, or of different splits.
    #[error("the shares are not all of the same key and split")]
    Mixed,
    /// The same share twice.
    #[error("share {0} was given twice")]
    Duplicate(u8),
    /// Not enough shares.
    #[error("{given} shares given, {needed} needed")]
    TooFew {
        /// Shares given.
        given: usize,
        /// Shares needed.
        needed: usize,
    },
    /// The key rebuilt is not the one the shares name.
    #[error("the shares do not rebuild their key")]
    Wrong,
    /// No randomness.
    #[error("no randomness")]
    Random,
}

/// Product in GF(2^8) with the AES polynomial, without branches on the values.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & (b & 1).wrapping_neg();
        let carry = (a >> 7).wrapping_neg();
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// Inverse in GF(2^8) (`a^254`; `a` ≠ 0).
fn inv(a: u8) -> u8 {
    let mut r = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// The id of `key`: 8 bytes of SHA-256 over a label and the key.
fn key_id(key: &[u8; 32]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"skyshard master key id\0");
    ctx.update(key);
    hex(&ctx.finish().as_ref()[..8])
}

fn check_of(body: &str) -> String {
    hex(&digest::digest(&digest::SHA256, body.as_bytes()).as_ref()[..4])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Splits `key` into `shares` shares, any `threshold` of which rebuild it.
pub fn split(
    key: &[u8; 32],
    shares: usize,
    threshold: usize,
    random: &dyn SecureRandom,
) -> Result<Vec<Zeroizing<String>>, EscrowError> {
    if threshold < 2 || threshold > shares || shares > 255 {
        return Err(EscrowError::Counts { shares, threshold });
    }
    // One polynomial per byte: the key byte, then threshold − 1 random coefficients.
    let mut coeffs = Zeroizing::new(vec![0u8; 32 * (threshold - 1)]);
    random.fill(&mut coeffs).map_err(|_| EscrowError::Random)?;
    let id = key_id(key);
    let mut out = Vec::with_capacity(shares);
    for x in 1..=shares as u8 {
        let mut y = Zeroizing::new([0u8; 32]);
        for (i, yi) in y.iter_mut().enumerate() {
            // Horner: ((c_{m-1} x + c_{m-2}) x + …) x + key[i].
            let mut acc = 0u8;
            for j in (0..threshold - 1).rev() {
                acc = mul(acc, x) ^ coeffs[j * 32 + i];
            }
            *yi = mul(acc, x) ^ key[i];
        }
        let body = Zeroizing::new(format!("{PREFIX}-{threshold}-{x}-{}-{id}", hex(&y[..])));
        out.push(Zeroizing::new(format!("{}-{}", body.as_str(), check_of(&body))));
    }
    Ok(out)
}

/// One share read back.
struct Share {
    threshold: usize,
    x: u8,
    y: Zeroizing<[u8; 32]>,
    id: String,
}

fn parse(n: usize, share: &str) -> Result<Share, EscrowError> {
    let bad = || EscrowError::Malformed(n);
    let share = share.trim();
    let (body, check) = share.rsplit_once('-').ok_or_else(bad)?;
    if check_of(body) != check {
        return Err(bad());
    }
    let parts: Vec<&str> = body.split('-').collect();
    let [PREFIX, m, x, y, id] = parts[..] else { return Err(bad()) };
    let threshold: usize = m.parse().map_err(|_| bad())?;
    let x: u8 = x.parse().map_err(|_| bad())?;
    if x == 0 || y.len() != 64 || id.len() != 16 {
        return Err(bad());
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(y.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(Share { threshold, x, y: bytes, id: id.to_string() })
}

/// Rebuilds the key from shares (at least the threshold of them).
pub fn combine(shares: &[&str]) -> Result<Zeroizing<[u8; 32]>, EscrowError> {
    let parsed: Vec<Share> = shares.iter().enumerate().map(|(i, s)| parse(i + 1, s)).collect::<Result<_, _>>()?;
    let Some(first) = parsed.first() else { return Err(EscrowError::TooFew { given: 0, needed: 2 }) };
    let (m, id) = (first.threshold, first.id.clone());
    if parsed.iter().any(|p| p.threshold != m || p.id != id) {
        return Err(EscrowError::Mixed);
    }
    let mut xs = Vec::new();
    for p in &parsed {
        if xs.contains(&p.x) {
            return Err(EscrowError::Duplicate(p.x));
        }
        xs.push(p.x);
    }
    if parsed.len() < m {
        return Err(EscrowError::TooFew { given: parsed.len(), needed: m });
    }
    let used = &parsed[..m];
    let mut key = Zeroizing::new([0u8; 32]);
    // Lagrange at 0: Σ y_j · Π_{k≠j} x_k / (x_k − x_j); minus is plus here.
    for (j, pj) in used.iter().enumerate() {
        let mut l = 1u8;
        for (k, pk) in used.iter().enumerate() {
            if k != j {
                l = mul(l, mul(pk.x, inv(pk.x ^ pj.x)));
            }
        }
        for (out, y) in key.iter_mut().zip(pj.y.iter()) {
            *out ^= mul(*y, l);
        }
    }
    if key_id(&key) != id {
        return Err(EscrowError::Wrong);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload::random::SystemRandom;

    #[test]
    fn field_arithmetic() {
        assert_eq!(mul(0x57, 0x83), 0xc1, "FIPS-197's example");
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
        }
    }

    #[test]
    fn any_threshold_of_the_shares_rebuild_the_key() {
        let rng = SystemRandom::new();
        let mut key = [0u8; 32];
        rng.fill(&mut key).expect("random");
        let shares = split(&key, 5, 3, &rng).expect("split");
        let s: Vec<&str> = shares.iter().map(|s| s.as_str()).collect();
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    assert_eq!(*combine(&[s[a], s[b], s[c]]).expect("three"), key, "{a}{b}{c}");
                }
            }
        }
        assert_eq!(*combine(&s).expect("all five"), key);
        assert_eq!(combine(&[s[0], s[3]]), Err(EscrowError::TooFew { given: 2, needed: 3 }));
        assert_eq!(combine(&[s[0], s[0], s[1]]), Err(EscrowError::Duplicate(1)));
        // A mistyped digit is caught by the check.
        let typo = s[1].replacen(&s[1][12..13], if &s[1][12..13] == "0" { "1" } else { "0" }, 1);
        assert_eq!(combine(&[s[0], &typo, s[2]]), Err(EscrowError::Malformed(2)));
        // Shares of another key's split do not mix.
        let other = split(&[1; 32], 5, 3, &rng).expect("split");
        assert_eq!(combine(&[s[0], s[1], other[2].as_str()]), Err(EscrowError::Mixed));
        assert!(split(&key, 3, 4, &rng).is_err() && split(&key, 3, 1, &rng).is_err());
    }

    #[test]
    fn fewer_shares_than_the_threshold_tell_nothing_of_a_byte() {
        // With threshold 2, one share's byte is the key byte plus a uniform random
        // multiple of x: over many splits of two different keys, its distribution is
        // the same (every value appears).
        let rng = SystemRandom::new();
        for key in [[0u8; 32], [0xffu8; 32]] {
            let mut seen = [false; 256];
            for _ in 0..4000 {
                let s = split(&key, 2, 2, &rng).expect("split");
                seen[usize::from(parse(1, &s[0]).expect("parse").y[0])] = true;
            }
            assert!(seen.iter().filter(|s| **s).count() > 250);
        }
    }
}

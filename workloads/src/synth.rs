//! Cheap synthetic digests and small sampling helpers shared by the workloads.

use ledger_core::types::Hash32;

/// SplitMix64 finaliser: a fast, well-mixed 64-bit bijection.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A synthetic 32-byte document digest derived from `(a, b)`: it stands for the blake3
/// hash of a document the generator never materialises. Distinct inputs give distinct
/// digests with overwhelming probability; costs four multiplications instead of hashing.
#[inline]
pub(crate) fn synth_digest(a: u64, b: u64) -> Hash32 {
    let mut out = [0u8; 32];
    let seed = mix64(a ^ mix64(b));
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&mix64(seed.wrapping_add(i as u64)).to_le_bytes());
    }
    out
}

/// Convert seconds to integer nanoseconds (saturating, non-negative).
#[inline]
pub(crate) fn secs_to_ns(s: f64) -> u64 {
    if s <= 0.0 {
        0
    } else if s >= u64::MAX as f64 / 1e9 {
        u64::MAX
    } else {
        (s * 1e9).round() as u64
    }
}

/// `mu` of a lognormal with the given mean and sigma: `ln(mean) - sigma² / 2`.
#[inline]
pub(crate) fn lognormal_mu_for_mean(mean: f64, sigma: f64) -> f64 {
    libm::log(mean) - 0.5 * sigma * sigma
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_differ_by_input() {
        assert_ne!(synth_digest(1, 2), synth_digest(2, 1));
        assert_ne!(synth_digest(1, 2), synth_digest(1, 3));
        assert_eq!(synth_digest(7, 9), synth_digest(7, 9));
    }
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn quantile_early_exit_gives_the_same_bits() {
        let n = super::LOGNORMAL_BINS;
        for i in (1..n)
            .step_by(5)
            .chain([1, 2, n / 2 - 1, n / 2, n / 2 + 1, n - 1])
        {
            let t = i as f64 / n as f64;
            assert_eq!(
                super::normal_quantile(t, true).to_bits(),
                super::normal_quantile(t, false).to_bits(),
                "bin {i}"
            );
        }
    }

    use super::*;

    #[test]
    fn packed_alias_matches_weights() {
        let t = PackedAlias::new(&[1.0, 0.0, 3.0, 6.0]).expect("valid weights");
        let mut s = simrand::Stream::new(8, "alias");
        let mut counts = [0u32; 4];
        for _ in 0..400_000 {
            counts[t.sample(&mut s)] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(
            (counts[0] as f64 / 400_000.0 - 0.1).abs() < 0.003,
            "{counts:?}"
        );
        assert!(
            (counts[2] as f64 / 400_000.0 - 0.3).abs() < 0.004,
            "{counts:?}"
        );
        assert!(PackedAlias::new(&[]).is_none());
        assert!(PackedAlias::new(&[0.0]).is_none());
        assert!(PackedAlias::new(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn lognormal_table_has_unit_mean_and_lognormal_spread() {
        let t = LognormalTable::new(0.5);
        let mean = t.factors.iter().sum::<f64>() / LOGNORMAL_BINS as f64;
        assert!((mean - 1.0).abs() < 1e-6, "mean {mean}");
        // Median of exp(0.5 Z - 0.125) is exp(-0.125).
        let median = 0.5 * (t.factors[LOGNORMAL_BINS / 2 - 1] + t.factors[LOGNORMAL_BINS / 2]);
        assert!((median - (-0.125f64).exp()).abs() < 1e-3, "median {median}");
        // Variance exp(σ²) - 1 = 0.284, minus the (small) within-bin part.
        let var =
            t.factors.iter().map(|f| (f - 1.0) * (f - 1.0)).sum::<f64>() / LOGNORMAL_BINS as f64;
        assert!((var - 0.284).abs() < 0.01, "variance {var}");
    }

    #[test]
    fn digests_differ_by_input() {
        assert_ne!(synth_digest(1, 2), synth_digest(2, 1));
        assert_ne!(synth_digest(1, 2), synth_digest(1, 3));
        assert_eq!(synth_digest(7, 9), synth_digest(7, 9));
    }
}

/// Walker/Vose alias table packed for cache locality: one `u64` per outcome (alias in
/// the high half, acceptance threshold in the low half), sampled with a single 64-bit
/// draw (the index from the high part of a 64×64 multiply, the coin from the low part).
/// One memory access per draw instead of two, which matters for a 100,000-patient
/// table that does not fit in L1/L2.
#[derive(Clone, Debug)]
pub(crate) struct PackedAlias {
    entries: Vec<u64>,
}

impl PackedAlias {
    /// Build from non-negative finite weights with a positive sum; `None` otherwise.
    pub(crate) fn new(weights: &[f64]) -> Option<PackedAlias> {
        let n = weights.len();
        let total = alias_weights_total(weights)?;
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut entries: Vec<u64> = (0..n as u64).map(|i| (i << 32) | u32::MAX as u64).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for (i, s) in scaled.iter().enumerate() {
            if *s < 1.0 {
                small.push(i as u32);
            } else {
                large.push(i as u32);
            }
        }
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            let threshold = (scaled[s as usize] * 4_294_967_296.0).min(u32::MAX as f64) as u64;
            entries[s as usize] = ((l as u64) << 32) | threshold;
            scaled[l as usize] = (scaled[l as usize] + scaled[s as usize]) - 1.0;
            if scaled[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers (rounding) keep probability 1 and alias themselves.
        Some(PackedAlias { entries })
    }

    /// Draw an outcome index.
    #[inline]
    pub(crate) fn sample(&self, rng: &mut simrand::Stream) -> usize {
        alias_pick(&self.entries, rng.next_u64())
    }
}

/// Number of equiprobable bins of [`LognormalTable`].
pub(crate) const LOGNORMAL_BINS: usize = 4_096;

/// Standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Steps of the bisection in [`normal_quantile`].
const QUANTILE_BISECTION_STEPS: usize = 80;

/// Φ⁻¹(`target`) by [`QUANTILE_BISECTION_STEPS`] bisection steps over [-40, 40]. With
/// `early_exit`, stops once the bracket's ends are adjacent floats: from then on every
/// step would evaluate the same midpoint (one of the ends, whose side of `target` is
/// already known) and keep the bracket as it is, so the result is the same bits
/// (about a quarter fewer `erfc` calls).
fn normal_quantile(target: f64, early_exit: bool) -> f64 {
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..QUANTILE_BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if early_exit && (mid == lo || mid == hi) {
            break;
        }
        if phi(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// A unit-mean lognormal of a given sigma, sampled by inversion over
/// [`LOGNORMAL_BINS`] equiprobable bins, each returning the bin's conditional mean
/// (so the mean is exact; only the within-bin spread is lost). One random draw and one
/// table read per sample instead of `log`, `cos`, `sqrt` and `exp`.
#[derive(Clone, Debug)]
pub(crate) struct LognormalTable {
    factors: Vec<f64>,
}

impl LognormalTable {
    pub(crate) fn new(sigma: f64) -> LognormalTable {
        let n = LOGNORMAL_BINS;
        // z[i] = Φ⁻¹(i / n) by bisection, z[0] = -∞, z[n] = +∞. The quantiles do not
        // depend on σ: computed once per process (330k erfc calls, tens of ms) and
        // shared by every table.
        static QUANTILES: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
        let z = QUANTILES.get_or_init(|| {
            let mut z = vec![f64::NEG_INFINITY; n + 1];
            z[n] = f64::INFINITY;
            for (i, zi) in z.iter_mut().enumerate().take(n).skip(1) {
                *zi = normal_quantile(i as f64 / n as f64, true);
            }
            z
        });
        // E[X | bin i] for X = exp(σZ - σ²/2) (mean 1): n (Φ(z[i+1] - σ) - Φ(z[i] - σ)).
        let factors = (0..n)
            .map(|i| n as f64 * (phi(z[i + 1] - sigma) - phi(z[i] - sigma)))
            .collect();
        LognormalTable { factors }
    }

    /// A draw with mean 1.
    #[inline]
    pub(crate) fn sample(&self, rng: &mut simrand::Stream) -> f64 {
        // LOGNORMAL_BINS = 2^12: the top 12 bits pick the bin.
        self.factors[(rng.next_u64() >> 52) as usize]
    }
}

/// The outcome a 64-bit draw `r` picks from packed alias `entries` (each `alias << 32 |
/// threshold`): the column from the high part of `r × len`, the coin from the low part.
#[inline]
pub(crate) fn alias_pick(entries: &[u64], r: u64) -> usize {
    let m = (r as u128) * (entries.len() as u128);
    let i = (m >> 64) as usize;
    let coin = ((m as u64) >> 32) as u32;
    let e = entries[i];
    if coin < e as u32 {
        i
    } else {
        (e >> 32) as usize
    }
}

/// The sum of `weights` if they can build an alias table (1 to `u32::MAX` of them, each
/// finite and non-negative, with a positive finite sum); `None` otherwise.
pub(crate) fn alias_weights_total(weights: &[f64]) -> Option<f64> {
    let n = weights.len();
    if n == 0 || n > u32::MAX as usize || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return None;
    }
    let total: f64 = weights.iter().sum();
    (total > 0.0 && total.is_finite()).then_some(total)
}

//! The patient table: the patient-activity sampler (an alias table over patients sorted
//! by decreasing activity) and the hospital workload's per-patient state, 8 bytes each
//! per patient.
//!
//! Every hospital request draws a patient and then reads and updates that patient's
//! state. With a large panel (1,000,000 patients in the reference large run) neither
//! table stays in cache while the simulator and the ledger run, so each request used to
//! stall on one cache miss for the alias entry and another for the state (and a third
//! for the home hospital, now computed: [`crate::consortium::Consortium::home_hospital`]).
//! [`PatientTable::draw_batch`] draws several patients a batch before they are used and
//! prefetches their alias entries, and [`PatientTable::resolve_batch`] prefetches their
//! states, so the misses overlap with the requests in between; the state is packed into
//! one `u64` (see [`PatientState`]) so the table is half the size.
//!
//! The sampler draws exactly what [`PackedAlias`](crate::synth::PackedAlias) over the
//! same weights draws (same entries, same single 64-bit draw), built without scratch
//! memory from the sorted weights, and the packed state holds exactly what the hospital
//! workload needs.

use ledger_core::prefetch::prefetch;
use rustc_hash::FxHashMap;

/// Bits of the state word holding the consent expiry, ms. Simulated time is `u64`
/// nanoseconds, so `now_ms < 2^45`: an expiry stored as `min(expiry, 2^46 - 1)` compares
/// with any `now_ms` exactly as the expiry itself does.
const CONSENT_BITS: u32 = 46;
const CONSENT_MASK: u64 = (1 << CONSENT_BITS) - 1;
const ON_LEDGER_BIT: u64 = 1 << CONSENT_BITS;
const REVOKE_NEXT_BIT: u64 = 1 << (CONSENT_BITS + 1);
const RECORDS_SHIFT: u32 = CONSENT_BITS + 2;
/// Run-written record counts up to this are stored inline; from it on, the word holds
/// this value and the count lives in [`PatientTable::records_overflow`].
const RECORDS_INLINE_MAX: u32 = (1 << (64 - RECORDS_SHIFT)) - 1;

/// What the hospital workload remembers per patient (decoded from its state word).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PatientState {
    /// The home hospital's consent is live while `now_ms < consent_until_ms`.
    pub(crate) consent_until_ms: u64,
    /// Records written so far (saturating).
    pub(crate) records: u32,
    /// The live consent was granted on the ledger during the run (not before it).
    pub(crate) consent_on_ledger: bool,
    /// A revocation was drawn while the consent was not on the ledger: it was recorded
    /// with a grant, and the patient's next activity revokes it.
    pub(crate) revoke_next: bool,
}

/// Patient-activity sampler and per-patient hospital state (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct PatientTable {
    /// Alias entry of outcome `i`: alias in the high half, acceptance threshold in the
    /// low half (as in `PackedAlias`).
    alias: Vec<u64>,
    /// Patient `i`'s hospital state, packed (see the `*_BIT`/`*_SHIFT` constants).
    state: Vec<u64>,
    /// Exact run-written record counts of patients whose inline count is saturated.
    /// Only looked up by patient, never iterated; at most one entry per patient.
    records_overflow: FxHashMap<u32, u32>,
}

impl PatientTable {
    /// [`PatientTable::from_buffers`] over a copy of `weights`.
    #[cfg(test)]
    pub(crate) fn new(
        weights: &[f64],
        consent_until_ms: impl FnMut(usize) -> u64,
    ) -> Option<PatientTable> {
        Self::from_buffers(weights.to_vec(), Vec::new(), consent_until_ms)
    }

    /// Build from activity weights sorted in non-increasing order (finite, non-negative,
    /// positive sum; `None` otherwise). Patient `p` starts with consent expiry
    /// `consent_until_ms(p)` (called for `p = 0, 1, ...` in order), no records and no
    /// flags. The alias entries are exactly those `PackedAlias::new(weights)` builds.
    ///
    /// Built in the memory of `weights` (which becomes the state table) and of `scratch`
    /// (which becomes the alias table; its contents do not matter): with a million
    /// patients, 16 MB less fresh memory to fault in and zero.
    pub(crate) fn from_buffers(
        weights: Vec<f64>,
        scratch: Vec<u64>,
        mut consent_until_ms: impl FnMut(usize) -> u64,
    ) -> Option<PatientTable> {
        let n = weights.len();
        let total = crate::synth::alias_weights_total(&weights)?;
        if weights.windows(2).any(|w| w[0] < w[1]) {
            return None;
        }
        let mut alias = scratch;
        alias.clear();
        alias.extend((0..n as u64).map(|i| (i << 32) | u32::MAX as u64));
        sorted_alias(&weights, total, |i, entry| alias[i] = entry);
        // Same size and alignment: this collect writes the states over the weights.
        let mut p = 0;
        let state = weights
            .into_iter()
            .map(|_| {
                let word = encode(PatientState {
                    consent_until_ms: consent_until_ms(p),
                    ..PatientState::default()
                });
                p += 1;
                word
            })
            .collect();
        Some(PatientTable {
            alias,
            state,
            records_overflow: FxHashMap::default(),
        })
    }

    /// Number of patients.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.alias.len()
    }

    /// Draw a patient (one 64-bit draw from `rng`).
    #[inline]
    pub(crate) fn sample(&self, rng: &mut simrand::Stream) -> usize {
        self.sample_with(rng.next_u64())
    }

    /// The patient drawn by the 64-bit draw `r`: the index from the high part of
    /// `r × len`, the coin from the low part.
    #[inline]
    pub(crate) fn sample_with(&self, r: u64) -> usize {
        crate::synth::alias_pick(&self.alias, r)
    }

    /// Fill `raw` with the next draws from `rng` and start loading the alias entries
    /// they will read ([`prefetch`]): [`PatientTable::resolve_batch`] turns them into
    /// patients a batch later, when the entries have arrived.
    #[inline]
    pub(crate) fn draw_batch(&self, rng: &mut simrand::Stream, raw: &mut [u64]) {
        let n = self.alias.len() as u128;
        for r in raw.iter_mut() {
            *r = rng.next_u64();
            let i = ((u128::from(*r) * n) >> 64) as usize;
            prefetch(&self.alias[i]);
        }
    }

    /// The patients of draws `raw` into `out` (exactly what [`PatientTable::sample`]
    /// returns for each draw, in order), and start loading their states.
    #[inline]
    pub(crate) fn resolve_batch(&self, raw: &[u64], out: &mut [u32]) {
        let n = self.alias.len() as u128;
        for (p, &r) in out.iter_mut().zip(raw) {
            // `sample_with`, branch-free: a mispredicted branch on one entry would
            // discard the loads issued after it.
            let m = u128::from(r) * n;
            let i = (m >> 64) as u64;
            let coin = ((m as u64) >> 32) as u32;
            let e = self.alias[i as usize];
            let take_alias = ((coin >= e as u32) as u64).wrapping_neg();
            *p = (i ^ ((i ^ (e >> 32)) & take_alias)) as u32;
            prefetch(&self.state[*p as usize]);
        }
    }

    /// Patient `p`'s hospital state.
    #[inline]
    pub(crate) fn state(&self, p: u32) -> PatientState {
        let w = self.state[p as usize];
        let inline = (w >> RECORDS_SHIFT) as u32;
        PatientState {
            consent_until_ms: w & CONSENT_MASK,
            records: if inline < RECORDS_INLINE_MAX {
                inline
            } else {
                self.records_overflow[&p]
            },
            consent_on_ledger: w & ON_LEDGER_BIT != 0,
            revoke_next: w & REVOKE_NEXT_BIT != 0,
        }
    }

    /// Replace patient `p`'s hospital state.
    #[inline]
    pub(crate) fn set_state(&mut self, p: u32, st: PatientState) {
        if st.records >= RECORDS_INLINE_MAX {
            self.records_overflow.insert(p, st.records);
        }
        self.state[p as usize] = encode(st);
    }
}

/// Pack a state into a state word (records saturate at [`RECORDS_INLINE_MAX`]).
#[inline]
fn encode(st: PatientState) -> u64 {
    st.consent_until_ms.min(CONSENT_MASK)
        | if st.consent_on_ledger {
            ON_LEDGER_BIT
        } else {
            0
        }
        | if st.revoke_next { REVOKE_NEXT_BIT } else { 0 }
        | (st.records.min(RECORDS_INLINE_MAX) as u64) << RECORDS_SHIFT
}

/// Vose's alias construction of `PackedAlias::new` specialised to non-increasing
/// weights: calls `put(i, entry)` for exactly the outcomes whose entry `PackedAlias`
/// sets, with the same entry (the others keep `i << 32 | u32::MAX`).
///
/// With sorted weights the outcomes of scaled weight below 1 ("small") are a suffix and
/// the others ("large") a prefix, so `PackedAlias`'s two stacks need not be stored: the
/// small stack is the suffix popped from its end plus at most one large outcome that
/// became small (pushed and popped again at once), and the large stack is the prefix
/// popped from its end. Same pairs, same arithmetic, no O(n) scratch memory.
fn sorted_alias(weights: &[f64], total: f64, mut put: impl FnMut(usize, u64)) {
    let n = weights.len();
    let scaled = |i: usize| weights[i] * n as f64 / total;
    // Large outcomes are 0..k, small ones k..n.
    // (Never NaN: weights and total are finite, total positive.)
    let k = weights.partition_point(|w| w * n as f64 / total >= 1.0);
    // Next small outcome from the suffix (popped from the end), and the count left.
    let mut small_left = n - k;
    // A large outcome that became small: (index, scaled weight); popped first.
    let mut demoted: Option<(usize, f64)> = None;
    // Large outcomes left (0..large_left), and the scaled weight of the top one.
    let mut large_left = k;
    let mut top_scaled = if k > 0 { scaled(k - 1) } else { 0.0 };
    loop {
        if large_left == 0 {
            break;
        }
        let (s, s_scaled) = match demoted.take() {
            Some(d) => d,
            None if small_left > 0 => {
                small_left -= 1;
                let s = k + small_left;
                (s, scaled(s))
            }
            None => break,
        };
        let l = large_left - 1;
        let threshold = (s_scaled * 4_294_967_296.0).min(u32::MAX as f64) as u64;
        put(s, ((l as u64) << 32) | threshold);
        top_scaled = (top_scaled + s_scaled) - 1.0;
        if top_scaled < 1.0 {
            demoted = Some((l, top_scaled));
            large_left -= 1;
            if large_left > 0 {
                top_scaled = scaled(large_left - 1);
            }
        }
    }
}

/// `v` sorted in decreasing [`f64::total_cmp`] order: the same vector as
/// `v.sort_unstable_by(|a, b| b.total_cmp(a))` (equal keys are identical bits, so the
/// order among them does not show), by an LSD radix sort over the bits, which is several
/// times faster for the million activity weights of a large panel. The radix sort's
/// buffer is left in `scratch` (reused if it has the capacity; for the caller to reuse).
pub(crate) fn sort_descending(v: Vec<f64>, scratch: &mut Vec<u64>) -> Vec<f64> {
    if v.len() < RADIX_MIN_LEN {
        let mut v = v;
        v.sort_unstable_by(|a, b| b.total_cmp(a));
        return v;
    }
    // Unsigned keys in increasing order = floats in decreasing total order.
    let desc_key = |x: f64| {
        let b = x.to_bits();
        let ascending = if b >> 63 == 1 { !b } else { b | 1 << 63 };
        !ascending
    };
    let from_desc_key = |k: u64| {
        let ascending = !k;
        f64::from_bits(if ascending >> 63 == 1 {
            ascending & !(1 << 63)
        } else {
            !ascending
        })
    };
    let digit = |k: u64, d: usize| ((k >> (RADIX_DIGIT_BITS as usize * d)) as usize) & RADIX_MASK;
    // Every pass's digit histogram, counted while the keys are made (one pass over the
    // data instead of two). Same size and alignment: this collect reuses the allocation.
    let mut counts = vec![[0usize; RADIX_BUCKETS]; RADIX_PASSES];
    let mut keys: Vec<u64> = v
        .into_iter()
        .map(|x| {
            let k = desc_key(x);
            for (d, c) in counts.iter_mut().enumerate() {
                c[digit(k, d)] += 1;
            }
            k
        })
        .collect();
    let n = keys.len();
    let mut tmp = std::mem::take(scratch);
    tmp.clear();
    tmp.resize(n, 0);
    for (d, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue; // every key has the same digit: the pass would not move anything
        }
        let mut next = [0usize; RADIX_BUCKETS];
        let mut acc = 0;
        for (o, &x) in next.iter_mut().zip(c) {
            *o = acc;
            acc += x;
        }
        for &k in &keys {
            let b = digit(k, d);
            tmp[next[b]] = k;
            next[b] += 1;
        }
        std::mem::swap(&mut keys, &mut tmp);
    }
    *scratch = tmp;
    keys.into_iter().map(from_desc_key).collect()
}

/// Below this length [`sort_descending`] uses the standard library's sort.
const RADIX_MIN_LEN: usize = 1 << 12;
/// Bits of the key [`sort_descending`] sorts by per pass: 256 buckets, whose write
/// positions stay within the TLB's reach while a pass scatters the keys (11 bits, 6
/// passes instead of 8, measured 1.6x slower over a million keys).
const RADIX_DIGIT_BITS: u32 = 8;
const RADIX_BUCKETS: usize = 1 << RADIX_DIGIT_BITS;
const RADIX_MASK: usize = RADIX_BUCKETS - 1;
const RADIX_PASSES: usize = 64_usize.div_ceil(RADIX_DIGIT_BITS as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::PackedAlias;

    /// Sorted lognormal weights like the generator's.
    fn weights(n: usize, sigma: f64, seed: u64) -> Vec<f64> {
        let mut rng = simrand::Stream::new(seed, "test/weights");
        let mut w: Vec<f64> = (0..n).map(|_| rng.lognormal(0.0, sigma)).collect();
        w.sort_unstable_by(|a, b| b.total_cmp(a));
        w
    }

    #[test]
    fn draws_exactly_what_packed_alias_draws() {
        for (n, sigma, seed) in [
            (1, 1.0, 1),
            (2, 0.5, 2),
            (7, 0.0, 3),
            (1_000, 1.6, 4),
            (50_000, 1.6, 5),
            (20_000, 3.0, 6),
        ] {
            let w = weights(n, sigma, seed);
            let table = PatientTable::new(&w, |_| 0).expect("valid weights");
            let packed = PackedAlias::new(&w).expect("valid weights");
            assert_eq!(table.len(), n);
            let mut a = simrand::Stream::new(seed, "draws");
            let mut b = simrand::Stream::new(seed, "draws");
            for _ in 0..200_000 {
                assert_eq!(table.sample(&mut a), packed.sample(&mut b), "n {n}");
            }
        }
        // Ties and zero weights.
        let w = [5.0, 5.0, 2.0, 1.0, 1.0, 0.5, 0.0, 0.0];
        let table = PatientTable::new(&w, |_| 0).expect("valid weights");
        let packed = PackedAlias::new(&w).expect("valid weights");
        let mut a = simrand::Stream::new(9, "draws");
        let mut b = simrand::Stream::new(9, "draws");
        for _ in 0..100_000 {
            assert_eq!(table.sample(&mut a), packed.sample(&mut b));
        }
    }

    #[test]
    fn radix_sort_matches_sort_unstable_by_total_cmp() {
        let mut rng = simrand::Stream::new(11, "test/sort");
        // One scratch buffer throughout, dirty from the previous sort.
        let mut scratch = vec![7u64; 3];
        for n in [0, 1, 5, 4_095, 4_096, 50_000] {
            let mut v: Vec<f64> = (0..n)
                .map(|i| match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => -rng.lognormal(0.0, 2.0),
                    3 => f64::INFINITY,
                    4 => f64::NEG_INFINITY,
                    5 => f64::NAN,
                    6 => 1.5, // duplicates
                    _ => rng.lognormal(0.0, 1.6),
                })
                .collect();
            v.push(f64::MIN_POSITIVE / 2.0); // subnormal
            let mut expected = v.clone();
            expected.sort_unstable_by(|a, b| b.total_cmp(a));
            let got = sort_descending(v, &mut scratch);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "n {n}");
        }
    }

    #[test]
    fn built_in_reused_buffers_it_is_the_same_table() {
        let w = weights(20_000, 1.6, 5);
        let fresh = PatientTable::new(&w, |p| p as u64).expect("valid weights");
        for scratch in [Vec::new(), vec![u64::MAX; 5], vec![3; 50_000]] {
            let reused =
                PatientTable::from_buffers(w.clone(), scratch, |p| p as u64).expect("valid");
            assert_eq!(reused.alias, fresh.alias);
            assert_eq!(reused.state, fresh.state);
        }
    }

    #[test]
    fn rejects_unsorted_and_invalid_weights() {
        assert!(PatientTable::new(&[1.0, 2.0], |_| 0).is_none());
        assert!(PatientTable::new(&[], |_| 0).is_none());
        assert!(PatientTable::new(&[0.0, 0.0], |_| 0).is_none());
        assert!(PatientTable::new(&[f64::NAN, 1.0], |_| 0).is_none());
    }

    #[test]
    fn state_round_trips_including_saturated_fields() {
        let mut t = PatientTable::new(&[3.0, 2.0, 1.0], |p| 1_000 * p as u64).expect("valid");
        assert_eq!(t.state(2).consent_until_ms, 2_000);
        for st in [
            PatientState {
                consent_until_ms: 123_456_789,
                records: 7,
                consent_on_ledger: true,
                revoke_next: false,
            },
            PatientState {
                consent_until_ms: 0,
                records: RECORDS_INLINE_MAX - 1,
                consent_on_ledger: false,
                revoke_next: true,
            },
            PatientState {
                consent_until_ms: CONSENT_MASK,
                records: RECORDS_INLINE_MAX,
                consent_on_ledger: true,
                revoke_next: true,
            },
            PatientState {
                consent_until_ms: 5,
                records: u32::MAX,
                consent_on_ledger: false,
                revoke_next: false,
            },
        ] {
            t.set_state(1, st);
            assert_eq!(t.state(1), st);
        }
        // An expiry beyond the field compares with every reachable `now_ms` as itself.
        t.set_state(
            0,
            PatientState {
                consent_until_ms: u64::MAX,
                ..PatientState::default()
            },
        );
        let max_now_ms = u64::MAX / 1_000_000;
        assert!(t.state(0).consent_until_ms > max_now_ms);
        assert_eq!(t.state(2).consent_until_ms, 2_000, "neighbours untouched");
    }
}

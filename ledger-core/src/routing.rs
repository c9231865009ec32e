//! Which shard owns which key.
//!
//! # Rule
//! Every key belongs to an *owner entity* — a patient, an organisation or a package — and
//! lives on the owner's home shard:
//! - patient-owned keys (records, consents granted by the patient, the audit trail,
//!   imaging studies, claims and their duplicate/fraud indexes) → `patient_shard(patient)`;
//! - an organisation's account and its grantee-side consent index → `org_shard(org)`;
//! - a drug package → `package_shard(package)`.
//!
//! The home shard is `jump(mix(kind, id), shard_count)` where `mix` is splitmix64 over the
//! id xor a per-kind constant (so patient 7 and org 7 land independently) and `jump` is
//! jump consistent hash (Lamping & Veach 2014, arXiv:1406.2294): uniform, no table, and
//! growing from `n` to `n+1` shards moves only `1/(n+1)` of the keys. `jump` uses IEEE
//! double arithmetic exactly as in the paper; every operation involved is exactly
//! rounded, so the result is identical on every platform. Valid for any `shard_count ≥ 1`.
//!
//! Organisation *registry* data (kind, claim limits, coverage, reference prices) is genesis
//! data replicated read-only on every shard, so reading it never makes a tx cross-shard.

use crate::types::{OrgId, PackageId, PatientId, ShardId, Tx};

const PATIENT_SALT: u64 = 0x5041_5449_454e_5401; // "PATIENT"
const ORG_SALT: u64 = 0x4f52_4741_4e49_5a02; // "ORGANIZ"
const PACKAGE_SALT: u64 = 0x5041_434b_4147_4503; // "PACKAGE"

/// splitmix64 finaliser (Steele, Lea & Flood 2014).
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Jump consistent hash: maps `key` to a bucket in `0..buckets` (`buckets ≥ 1`).
#[inline]
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    assert!(
        buckets >= 1,
        "jump_consistent_hash needs at least one bucket"
    );
    if buckets == 1 {
        return 0;
    }
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// Home shard of a patient.
#[inline]
pub fn patient_shard(p: PatientId, shard_count: u32) -> ShardId {
    ShardId(jump_consistent_hash(
        splitmix64(p.0 ^ PATIENT_SALT),
        shard_count,
    ))
}
/// Home shard of an organisation (its account and grantee-side consent index).
#[inline]
pub fn org_shard(o: OrgId, shard_count: u32) -> ShardId {
    ShardId(jump_consistent_hash(
        splitmix64(o.0 ^ ORG_SALT),
        shard_count,
    ))
}
/// Home shard of a drug package.
#[inline]
pub fn package_shard(p: PackageId, shard_count: u32) -> ShardId {
    ShardId(jump_consistent_hash(
        splitmix64(p.0 ^ PACKAGE_SALT),
        shard_count,
    ))
}

/// Most shards one transaction can touch (a `ClaimPay`: patient, payer, provider).
pub const MAX_SHARDS_PER_TX: usize = 3;

/// A sorted, deduplicated set of at most [`MAX_SHARDS_PER_TX`] shards, stored inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ShardSet {
    len: u8,
    ids: [ShardId; MAX_SHARDS_PER_TX],
}

impl ShardSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// The set `{a}`.
    #[inline]
    pub fn one(a: ShardId) -> Self {
        ShardSet {
            len: 1,
            ids: [a, ShardId(0), ShardId(0)],
        }
    }
    /// The set `{a, b}` (one element if they are equal).
    #[inline]
    pub fn two(a: ShardId, b: ShardId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        if lo == hi {
            Self::one(lo)
        } else {
            ShardSet {
                len: 2,
                ids: [lo, hi, ShardId(0)],
            }
        }
    }
    /// The set `{a, b, c}` (sorted, duplicates dropped).
    #[inline]
    pub fn three(a: ShardId, b: ShardId, c: ShardId) -> Self {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        let (b, c) = if b <= c { (b, c) } else { (c, b) };
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        match (a == b, b == c) {
            (true, true) => Self::one(a),
            (true, false) => Self::two(a, c),
            (false, true) => Self::two(a, b),
            (false, false) => ShardSet {
                len: 3,
                ids: [a, b, c],
            },
        }
    }
    /// Inserts `s`, keeping the set sorted and deduplicated.
    pub fn insert(&mut self, s: ShardId) {
        let n = self.len as usize;
        let pos = match self.ids[..n].binary_search(&s) {
            Ok(_) => return,
            Err(p) => p,
        };
        assert!(
            n < MAX_SHARDS_PER_TX,
            "ShardSet holds at most {MAX_SHARDS_PER_TX} shards"
        );
        self.ids.copy_within(pos..n, pos + 1);
        self.ids[pos] = s;
        self.len += 1;
    }
    /// The shards, ascending.
    pub fn as_slice(&self) -> &[ShardId] {
        &self.ids[..self.len as usize]
    }
    /// Number of shards.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether `s` is in the set.
    pub fn contains(&self, s: ShardId) -> bool {
        self.as_slice().contains(&s)
    }
    /// Whether more than one shard is involved (the tx needs the two-phase commit).
    pub fn is_cross_shard(&self) -> bool {
        self.len > 1
    }
    /// The shards, ascending.
    pub fn iter(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.as_slice().iter().copied()
    }
}

/// The shards a transaction touches, for `shard_count ≥ 1` shards (see the module rule).
///
/// - records, accesses, imaging anchors, claim submit/adjudicate: the patient's shard;
/// - `ConsentGrant`/`ConsentRevoke`: patient's shard + grantee's shard (grantee index);
/// - `ClaimPay`: patient's shard (claim) + payer's and provider's shards (accounts);
/// - `Payment`: both accounts' shards;
/// - `Supply`: the package's shard only.
pub fn shards_of(tx: &Tx, shard_count: u32) -> ShardSet {
    // Built whole from its ids (not by successive inserts): the set is then assembled in
    // registers, and the caller's first read of it does not stall on a store-to-load
    // forward of several narrow writes.
    match tx {
        Tx::RecordWrite { patient, .. }
        | Tx::RecordAccess { patient, .. }
        | Tx::ImagingAnchor { patient, .. }
        | Tx::ClaimSubmit { patient, .. }
        | Tx::ClaimAdjudicate { patient, .. } => {
            ShardSet::one(patient_shard(*patient, shard_count))
        }
        Tx::ConsentGrant {
            patient, grantee, ..
        }
        | Tx::ConsentRevoke { patient, grantee } => ShardSet::two(
            patient_shard(*patient, shard_count),
            org_shard(*grantee, shard_count),
        ),
        Tx::ClaimPay {
            patient,
            payer,
            provider,
            ..
        } => ShardSet::three(
            patient_shard(*patient, shard_count),
            org_shard(*payer, shard_count),
            org_shard(*provider, shard_count),
        ),
        Tx::Payment { from, to, .. } => {
            ShardSet::two(org_shard(*from, shard_count), org_shard(*to, shard_count))
        }
        Tx::Supply { package, .. } => ShardSet::one(package_shard(*package, shard_count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_inserts(ids: &[u32]) -> ShardSet {
        let mut s = ShardSet::new();
        for &i in ids {
            s.insert(ShardId(i));
        }
        s
    }

    #[test]
    fn whole_constructors_equal_successive_inserts() {
        for a in 0..5 {
            assert_eq!(ShardSet::one(ShardId(a)), by_inserts(&[a]));
            for b in 0..5 {
                assert_eq!(ShardSet::two(ShardId(a), ShardId(b)), by_inserts(&[a, b]));
                for c in 0..5 {
                    let s = ShardSet::three(ShardId(a), ShardId(b), ShardId(c));
                    assert_eq!(s, by_inserts(&[a, b, c]), "{a} {b} {c}");
                    assert!(s.as_slice().windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }
}

//! Per-shard key-value state with an incrementally maintained, order-independent root.
//!
//! # State root construction (AdHash)
//! Each entry contributes a leaf digest `d = blake3_keyed(tweak(key, value), body(key) ||
//! body(value))`. The *tweak* is [`STATE_LEAF_KEY`] with its zero padding carrying the
//! small fields: byte 29 the key kind, byte 30 the value variant, byte 31 a one-byte field
//! of the value (record resource kind, consent scope, study modality, claim status) and
//! bytes 24..28 a study's chunk count. The bodies are the remaining fields, fixed width
//! per (key kind, value variant), so the encoding of a pair is injective, and every body is
//! at most [`MAX_LEAF_BODY`] = 64 bytes: each leaf costs exactly one blake3 compression
//! (blake3 keyed hashing under distinct keys gives independent PRFs, so moving fields
//! into the key loses nothing).
//! The accumulator is the sum of all leaf digests in `Z/2^256` (a digest read as a 256-bit
//! little-endian integer; addition is wrapping, carried across four `u64` limbs). Inserting
//! adds a digest, removing subtracts it, replacing does both; the digest is cached next to
//! the value, so removal and replacement hash only the new value. A block therefore costs
//! one hash per write, whatever the state size. The root is
//! `blake3_keyed(STATE_ROOT_KEY, acc || key_count)`.
//!
//! Because addition commutes, the root depends only on the *set* of (key, value) pairs:
//! not on insertion order, not on which thread executed what.
//!
//! # Security limits (honestly)
//! AdHash (Bellare & Micciancio 1997) is collision resistant only against adversaries who
//! cannot choose many leaves freely: with enough chosen (key, value) pairs an attacker can
//! solve for a subset sum equal to a target (Wagner's generalised birthday attack), giving a
//! different state with the same root. Here it is used to detect divergence between
//! replicas and tampering of a log on replay, where leaves are produced by executing
//! transactions, not chosen bit by bit. For adversarial settings, LtHash (lattice-based,
//! 2 KiB accumulator) or MuHash (multiplicative in a prime field) are the stronger
//! drop-in replacements; a Merkle-Patricia trie would add per-key proofs at the cost of
//! `O(log n)` hashes per write.

use crate::codec::{modality_tag, resource_kind_tag, Sink, StackBuf};
use crate::hashing::{keyed, STATE_LEAF_KEY, STATE_ROOT_KEY};
use crate::table::{KeyHash, MixHash, Table};
use crate::types::{
    AmountCents, ClaimId, ConsentScope, Hash32, Modality, OrgId, PackageId, PatientId, RecordId,
    ResourceKind, StudyId,
};

/// A state key. Patient-owned keys live on the patient's shard, accounts and grantee
/// indexes on the org's shard, packages on the package's shard (see [`crate::routing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// An organisation's account balance.
    Account(OrgId),
    /// An EHR record.
    Record(RecordId),
    /// A consent granted by a patient to an org (patient side).
    Consent(PatientId, OrgId),
    /// Grantee-side consent index: the org can list the patients who granted it access.
    GranteeIndex(OrgId, PatientId),
    /// A patient's audit trail head.
    Audit(PatientId),
    /// An anchored imaging study.
    Study(StudyId),
    /// A claim.
    Claim(ClaimId),
    /// Duplicate-claim index: (patient, service code, service day) → claim.
    ClaimDedup(PatientId, u32, u32),
    /// Fraud index: claims by (patient, provider, service day).
    ClaimDaily(PatientId, OrgId, u32),
    /// A serialized drug package.
    Package(PackageId),
}

/// A record's current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordEntry {
    /// Whose record.
    pub patient: PatientId,
    /// The org that created it and answers for it.
    pub custodian: OrgId,
    /// Resource kind.
    pub resource: ResourceKind,
    /// Hash of the current document.
    pub doc_hash: Hash32,
    /// Size of the current document.
    pub size_bytes: u32,
    /// 1 on create, +1 on each replace.
    pub version: u32,
}

/// A consent (patient side) or its grantee-side index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsentEntry {
    /// Granted scope.
    pub scope: ConsentScope,
    /// Expiry (exclusive), ms since the ledger epoch.
    pub expires_at_ms: u64,
}

/// A patient's audit trail: number of entries and the hash-chain head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Entries appended so far.
    pub count: u64,
    /// `head_k = blake3_keyed(AUDIT_KEY ⊕ tweak_k, head_{k-1} || record || accessor || user
    /// || at_ms)` (64 bytes, one compression), `head_0 = 0`, where `tweak_k` puts the access
    /// purpose, outcome tag (0 accepted, 1 break-glass, 2 rejected) and reject code into
    /// the key's zero padding (bytes 29, 30, 31).
    pub head: Hash32,
}

/// An anchored imaging study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StudyEntry {
    /// Whose study.
    pub patient: PatientId,
    /// Acquiring org.
    pub centre: OrgId,
    /// Modality.
    pub modality: Modality,
    /// Merkle root of the chunks.
    pub content_root: Hash32,
    /// Total size.
    pub size_bytes: u64,
    /// Number of chunks.
    pub chunk_count: u32,
}

/// Claim life cycle: Submitted → Approved | Denied; Approved → Paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimStatus {
    /// Awaiting adjudication.
    Submitted,
    /// Approved for `approved_cents`.
    Approved,
    /// Denied (terminal).
    Denied,
    /// Paid (terminal).
    Paid,
}

/// A claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimEntry {
    /// Patient treated.
    pub patient: PatientId,
    /// Billing provider.
    pub provider: OrgId,
    /// Payer.
    pub payer: OrgId,
    /// Service code.
    pub service_code: u32,
    /// Day of service.
    pub service_day: u32,
    /// Billed amount.
    pub billed_cents: AmountCents,
    /// Approved amount (0 until adjudicated).
    pub approved_cents: AmountCents,
    /// Status.
    pub status: ClaimStatus,
}

/// Where a package is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageStatus {
    /// Held by `holder`.
    Held,
    /// Shipped by `holder` to the addressee.
    InTransit {
        /// Addressee.
        to: OrgId,
    },
    /// Dispensed to a patient (terminal).
    Dispensed {
        /// The patient.
        patient: PatientId,
    },
}

/// A serialized package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackageEntry {
    /// Product code.
    pub product: u64,
    /// Current (or last) holder.
    pub holder: OrgId,
    /// Status.
    pub status: PackageStatus,
    /// Temperature excursions recorded.
    pub excursions: u32,
    /// Most recent excursion temperature, 0.1 °C (0 if none).
    pub last_excursion_x10: i16,
}

/// A state value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Account balance.
    Balance(AmountCents),
    /// Record.
    Record(RecordEntry),
    /// Consent or grantee index entry.
    Consent(ConsentEntry),
    /// Audit trail head.
    Audit(AuditEntry),
    /// Imaging study.
    Study(StudyEntry),
    /// Claim.
    Claim(ClaimEntry),
    /// Reference to a claim (dedup index).
    ClaimRef(ClaimId),
    /// A counter (fraud index).
    Count(u32),
    /// Package.
    Package(PackageEntry),
}

/// Most bytes of a leaf body: one blake3 block, so every leaf costs one compression.
pub const MAX_LEAF_BODY: usize = 64;

/// Byte offsets of the leaf tweak inside the 32-byte blake3 key (the label
/// `ledgersim/v1/state-leaf` occupies bytes `0..23`, the rest is zero before tweaking).
const TWEAK_EXTRA: usize = 24;
const TWEAK_KEY_TAG: usize = 29;
const TWEAK_VALUE_TAG: usize = 30;
const TWEAK_AUX: usize = 31;

fn key_tag(k: &Key) -> u8 {
    match k {
        Key::Account(_) => 0,
        Key::Record(_) => 1,
        Key::Consent(..) => 2,
        Key::GranteeIndex(..) => 3,
        Key::Audit(_) => 4,
        Key::Study(_) => 5,
        Key::Claim(_) => 6,
        Key::ClaimDedup(..) => 7,
        Key::ClaimDaily(..) => 8,
        Key::Package(_) => 9,
    }
}

fn encode_key_body<S: Sink>(k: &Key, s: &mut S) {
    match k {
        Key::Account(o) => s.put(&o.0.to_le_bytes()),
        Key::Record(r) => s.put(&r.0.to_le_bytes()),
        Key::Consent(p, o) => {
            s.put(&p.0.to_le_bytes());
            s.put(&o.0.to_le_bytes());
        }
        Key::GranteeIndex(o, p) => {
            s.put(&o.0.to_le_bytes());
            s.put(&p.0.to_le_bytes());
        }
        Key::Audit(p) => s.put(&p.0.to_le_bytes()),
        Key::Study(st) => s.put(&st.0.to_le_bytes()),
        Key::Claim(c) => s.put(&c.0.to_le_bytes()),
        Key::ClaimDedup(p, code, day) => {
            s.put(&p.0.to_le_bytes());
            s.put(&code.to_le_bytes());
            s.put(&day.to_le_bytes());
        }
        Key::ClaimDaily(p, o, day) => {
            s.put(&p.0.to_le_bytes());
            s.put(&o.0.to_le_bytes());
            s.put(&day.to_le_bytes());
        }
        Key::Package(pk) => s.put(&pk.0.to_le_bytes()),
    }
}

/// Writes the value's body and fills the value's part of the tweak (tag, aux byte, extra).
fn encode_value_body<S: Sink>(v: &Value, s: &mut S, tweak: &mut [u8; 32]) {
    let tag = match v {
        Value::Balance(b) => {
            s.put(&b.to_le_bytes());
            0
        }
        Value::Record(r) => {
            s.put(&r.patient.0.to_le_bytes());
            s.put(&r.custodian.0.to_le_bytes());
            tweak[TWEAK_AUX] = resource_kind_tag(r.resource);
            s.put(&r.doc_hash);
            s.put(&r.size_bytes.to_le_bytes());
            s.put(&r.version.to_le_bytes());
            1
        }
        Value::Consent(c) => {
            tweak[TWEAK_AUX] = c.scope.0;
            s.put(&c.expires_at_ms.to_le_bytes());
            2
        }
        Value::Audit(a) => {
            s.put(&a.count.to_le_bytes());
            s.put(&a.head);
            3
        }
        Value::Study(st) => {
            s.put(&st.patient.0.to_le_bytes());
            s.put(&st.centre.0.to_le_bytes());
            tweak[TWEAK_AUX] = modality_tag(st.modality);
            s.put(&st.content_root);
            s.put(&st.size_bytes.to_le_bytes());
            tweak[TWEAK_EXTRA..TWEAK_EXTRA + 4].copy_from_slice(&st.chunk_count.to_le_bytes());
            4
        }
        Value::Claim(c) => {
            s.put(&c.patient.0.to_le_bytes());
            s.put(&c.provider.0.to_le_bytes());
            s.put(&c.payer.0.to_le_bytes());
            s.put(&c.service_code.to_le_bytes());
            s.put(&c.service_day.to_le_bytes());
            s.put(&c.billed_cents.to_le_bytes());
            s.put(&c.approved_cents.to_le_bytes());
            tweak[TWEAK_AUX] = match c.status {
                ClaimStatus::Submitted => 0,
                ClaimStatus::Approved => 1,
                ClaimStatus::Denied => 2,
                ClaimStatus::Paid => 3,
            };
            5
        }
        Value::ClaimRef(c) => {
            s.put(&c.0.to_le_bytes());
            6
        }
        Value::Count(n) => {
            s.put(&n.to_le_bytes());
            7
        }
        Value::Package(p) => {
            s.put(&p.product.to_le_bytes());
            s.put(&p.holder.0.to_le_bytes());
            match p.status {
                PackageStatus::Held => s.put(&[0; 9]),
                PackageStatus::InTransit { to } => {
                    s.put(&[1]);
                    s.put(&to.0.to_le_bytes());
                }
                PackageStatus::Dispensed { patient } => {
                    s.put(&[2]);
                    s.put(&patient.0.to_le_bytes());
                }
            }
            s.put(&p.excursions.to_le_bytes());
            s.put(&p.last_excursion_x10.to_le_bytes());
            8
        }
    };
    tweak[TWEAK_VALUE_TAG] = tag;
}

/// The leaf digest `H(key, value)` (see the module docs for the tweaked-key layout).
#[inline]
pub fn leaf_hash(k: &Key, v: &Value) -> Hash32 {
    let mut tweak = STATE_LEAF_KEY;
    tweak[TWEAK_KEY_TAG] = key_tag(k);
    let mut buf = StackBuf::<MAX_LEAF_BODY>::new();
    encode_key_body(k, &mut buf);
    encode_value_body(v, &mut buf, &mut tweak);
    keyed(&tweak, buf.as_slice())
}

/// A 256-bit AdHash accumulator (sum of leaf digests mod 2^256).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdHash([u64; 4]);

impl AdHash {
    #[inline]
    fn limbs(h: &Hash32) -> [u64; 4] {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(b);
        }
        l
    }
    /// Adds a digest.
    #[inline]
    pub fn add(&mut self, h: &Hash32) {
        let x = Self::limbs(h);
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(x) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *a = s2;
            carry = c1 | c2;
        }
    }
    /// Subtracts a digest.
    #[inline]
    pub fn sub(&mut self, h: &Hash32) {
        let x = Self::limbs(h);
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(x) {
            let (s1, b1) = a.overflowing_sub(b);
            let (s2, b2) = s1.overflowing_sub(borrow as u64);
            *a = s2;
            borrow = b1 | b2;
        }
    }
    /// Little-endian bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, l) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&l.to_le_bytes());
        }
        out
    }
}

/// Most keys one shard's state may hold.
pub const MAX_STATE_KEYS: usize = 1 << 30;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    value: Value,
    leaf: Hash32,
}

/// One shard's key-value state with its incremental root.
#[derive(Clone, Debug, Default)]
pub struct State {
    map: Table<Entry>,
    acc: AdHash,
    balances_sum: u128,
}

impl State {
    /// Empty state.
    pub fn new() -> Self {
        Self::default()
    }
    /// Value of `k`.
    #[inline]
    pub fn get(&self, k: &Key) -> Option<&Value> {
        self.map.get(k).map(|e| &e.value)
    }
    /// The hash of `k` that [`State::warm`] takes.
    #[inline]
    pub fn key_hash(k: &Key) -> u64 {
        MixHash::hash(k)
    }
    /// First pass of warming the cache for the keys with hashes `hashes`: prefetches
    /// their index slots. Give the lines time to arrive (other work) before
    /// [`State::warm_entries`]. No effect on the state.
    pub fn warm_index(&self, hashes: &[u64]) {
        for &h in hashes {
            self.map.prefetch_index(h);
        }
    }
    /// Second pass of warming the cache for `hashes`: reads their index slots and
    /// prefetches their entries (a block warms its keys this way before executing,
    /// instead of missing the cache at each lookup in turn). No effect on the state.
    pub fn warm_entries(&self, hashes: &[u64]) {
        for &h in hashes {
            self.map.prefetch_entry(h);
        }
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Sum of all `Balance` values (maintained incrementally).
    pub fn balances_sum(&self) -> u128 {
        self.balances_sum
    }
    /// Sets `k` to `v` (one leaf hash).
    #[inline]
    pub fn put(&mut self, k: Key, v: Value) {
        let leaf = leaf_hash(&k, &v);
        if let Value::Balance(b) = v {
            self.balances_sum += b as u128;
        }
        self.acc.add(&leaf);
        match self.map.insert(k, Entry { value: v, leaf }) {
            Some(old) => {
                self.acc.sub(&old.leaf);
                if let Value::Balance(b) = old.value {
                    self.balances_sum -= b as u128;
                }
            }
            None => assert!(
                self.map.len() <= MAX_STATE_KEYS,
                "shard state exceeds MAX_STATE_KEYS"
            ),
        }
    }
    /// Removes `k` (no hashing: the cached leaf digest is subtracted).
    #[inline]
    pub fn remove(&mut self, k: &Key) {
        if let Some(old) = self.map.remove(k) {
            self.acc.sub(&old.leaf);
            if let Value::Balance(b) = old.value {
                self.balances_sum -= b as u128;
            }
        }
    }
    /// The state root (cheap: one hash of the accumulator).
    pub fn root(&self) -> Hash32 {
        Self::root_of(&self.acc, self.map.len())
    }
    fn root_of(acc: &AdHash, n: usize) -> Hash32 {
        let mut buf = [0u8; 40];
        buf[..32].copy_from_slice(&acc.to_bytes());
        buf[32..].copy_from_slice(&(n as u64).to_le_bytes());
        keyed(&STATE_ROOT_KEY, &buf)
    }
    /// Recomputes the root by rehashing every entry (slow; for tests and debug checks).
    /// The sum commutes, so the map's iteration order does not matter.
    pub fn recompute_root_from_scratch(&self) -> Hash32 {
        let mut acc = AdHash::default();
        for (k, e) in self.map.iter() {
            acc.add(&leaf_hash(k, &e.value));
        }
        Self::root_of(&acc, self.map.len())
    }
    /// Recomputes the balance sum from scratch (for tests).
    pub fn recompute_balances_sum(&self) -> u128 {
        self.map
            .values()
            .map(|e| {
                if let Value::Balance(b) = e.value {
                    b as u128
                } else {
                    0
                }
            })
            .sum()
    }
    /// Asserts that the incremental root and balance sum match a full recomputation (and
    /// that the table is consistent).
    pub fn check_invariants(&self) {
        self.map.check_invariants();
        assert_eq!(
            self.root(),
            self.recompute_root_from_scratch(),
            "incremental state root diverged from a full recomputation"
        );
        assert_eq!(
            self.balances_sum,
            self.recompute_balances_sum(),
            "incremental balance sum diverged"
        );
    }
}

//! The hash table behind [`crate::state::State`]: dense entries plus a compact
//! open-addressing index, shaped so that a block can warm the cache for its keys first.
//!
//! # Layout
//! - `entries`: the `(key, value)` pairs, dense, in insertion order (a removal moves the
//!   last entry into the hole), stored in fixed chunks of [`CHUNK_ENTRIES`] so growing never
//!   moves an entry (a doubling `Vec` would copy them all: aligned allocations cannot be
//!   remapped in place). Each pair is padded and aligned to whole cache lines (a state
//!   pair is exactly two), so reading one costs two adjacent lines at most.
//! - `index`: `u64` slots, a power of two of them, linear probing, load at most
//!   [`MAX_LOAD_NUM`]/[`MAX_LOAD_DEN`] (eight slots share a cache line and the
//!   fingerprint spares entry reads, so the longer runs of a 3/4 load stay cheap).
//!   A slot is `0` when empty, else `fingerprint << 32 | (entry position + 1)`, where the
//!   fingerprint is the high 32 bits of the key's 64-bit hash and the home slot is the
//!   fingerprint's low bits (so growing the index and shifting slots back on removal never
//!   read an entry). A lookup compares full keys only on a fingerprint match; keys in one
//!   probe run mostly share the home bits, so the other `32 - log2(slots)` bits tell them
//!   apart (a false match, which costs one entry read, is about 1 in 65,536 per passed
//!   slot at 64 Ki slots).
//!   Removal shifts the probe run back (no tombstones).
//!
//! # Why not `HashMap`
//! The ledger's state is large (tens of thousands of keys per shard in the reference run,
//! spread over memory) and each transaction reads a few keys that are, in a big state,
//! cache misses. Here a key's index slot address is a pure function of the key, and its
//! entry's address is one cached index read away, so [`Table::prefetch_index`] and
//! [`Table::prefetch_entry`] can be issued for every key of a block in two quick passes of
//! independent loads, which the CPU overlaps, before execution needs them one at a time.
//! The index (8 bytes a slot) stays small enough to be cache-resident, and growing it
//! rehashes 8-byte slots, not the entries.
//!
//! Iteration order is insertion order with removals swapped in: deterministic, but no
//! decision may depend on it (the state root is a commutative sum).

use std::marker::PhantomData;

use crate::prefetch::prefetch;
use crate::state::Key;

/// Most entries a table may hold: entry positions are stored in 32 bits.
/// (Also keeps the index at most 2^32 slots, all addressable by a fingerprint.)
pub const MAX_TABLE_ENTRIES: usize = (1 << 31) - 1;
/// Entries per chunk of the entry store (a state chunk is 512 KiB).
pub const CHUNK_ENTRIES: usize = 4096;
const CHUNK_SHIFT: u32 = CHUNK_ENTRIES.trailing_zeros();
/// Most index load (numerator): the index grows past `len / slots > 3/4`.
pub const MAX_LOAD_NUM: usize = 3;
/// Most index load (denominator).
pub const MAX_LOAD_DEN: usize = 4;
/// Index slots of an empty table's first allocation.
const MIN_INDEX_SLOTS: usize = 16;

/// A 64-bit hash of a state key: the high 32 bits are the fingerprint, whose low bits
/// pick the home slot (the low 32 bits of the hash are unused).
pub trait KeyHash {
    /// The hash of `k`.
    fn hash(k: &Key) -> u64;
}

/// The production key hash: the key's words folded by two 64×64→128-bit multiplies
/// (the wyhash mixing step), so every input bit reaches the high (fingerprint) half.
#[derive(Clone, Copy, Debug, Default)]
pub struct MixHash;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The key as `(kind, word, word)`; different keys may share words (the table compares
/// full keys), the kind keeps kinds apart.
#[inline]
fn key_words(k: &Key) -> (u64, u64, u64) {
    match *k {
        Key::Account(o) => (0, o.0, 0),
        Key::Record(r) => (1, r.0, 0),
        Key::Consent(p, o) => (2, p.0, o.0),
        Key::GranteeIndex(o, p) => (3, o.0, p.0),
        Key::Audit(p) => (4, p.0, 0),
        Key::Study(s) => (5, s.0, 0),
        Key::Claim(c) => (6, c.0, 0),
        Key::ClaimDedup(p, code, day) => (7, p.0, (code as u64) << 32 | day as u64),
        Key::ClaimDaily(p, o, day) => (8, p.0, o.0 ^ (day as u64).rotate_left(40)),
        Key::Package(pk) => (9, pk.0, 0),
    }
}

impl KeyHash for MixHash {
    #[inline]
    fn hash(k: &Key) -> u64 {
        const S0: u64 = 0xa076_1d64_78bd_642f;
        const S1: u64 = 0xe703_7ed1_a0b4_28db;
        const S2: u64 = 0x8ebc_6af0_9c88_c6e3;
        let (kind, a, b) = key_words(k);
        let x = fold_mul(a ^ S0, b ^ S1 ^ kind.wrapping_mul(S2));
        fold_mul(x ^ S2, kind ^ S0 ^ 0x5896_0f25_a4ea_3d3f)
    }
}

/// Bytes one entry of a `Table<V>` takes (whole cache lines).
pub const fn slot_bytes<V>() -> usize {
    std::mem::size_of::<Slot<V>>()
}

/// One entry, aligned to a cache line so that a state entry (128 bytes) spans exactly two.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Slot<V> {
    key: Key,
    value: V,
}

/// A dense sequence in fixed-capacity chunks: push and swap-remove without ever moving
/// the other elements.
#[derive(Debug)]
struct Chunks<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

/// Clones keep every chunk's full capacity (a derived clone would allocate exactly the
/// length, and the next push would reallocate and copy the last chunk).
impl<T: Clone> Clone for Chunks<T> {
    fn clone(&self) -> Self {
        Chunks {
            chunks: self
                .chunks
                .iter()
                .map(|c| {
                    let mut v = Vec::with_capacity(CHUNK_ENTRIES);
                    v.extend_from_slice(c);
                    v
                })
                .collect(),
            len: self.len,
        }
    }
}

impl<T> std::ops::Index<usize> for Chunks<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_SHIFT][i & (CHUNK_ENTRIES - 1)]
    }
}

impl<T> std::ops::IndexMut<usize> for Chunks<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> CHUNK_SHIFT][i & (CHUNK_ENTRIES - 1)]
    }
}

impl<T> Chunks<T> {
    #[inline]
    fn len(&self) -> usize {
        self.len
    }
    #[inline]
    fn push(&mut self, x: T) {
        if self.len & (CHUNK_ENTRIES - 1) == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK_ENTRIES));
        }
        self.chunks.last_mut().expect("a chunk with room").push(x);
        self.len += 1;
    }
    /// Removes element `i`, moving the last element into its place.
    fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "swap_remove out of range");
        let last = self
            .chunks
            .last_mut()
            .expect("non-empty")
            .pop()
            .expect("non-empty");
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len -= 1;
        if i == self.len {
            last
        } else {
            std::mem::replace(&mut self[i], last)
        }
    }
    fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }
}

/// A map from [`Key`] to `V` (see the module docs).
#[derive(Clone, Debug)]
pub struct Table<V, H = MixHash> {
    index: Vec<u64>,
    entries: Chunks<Slot<V>>,
    hasher: PhantomData<H>,
}

impl<V, H> Default for Table<V, H> {
    fn default() -> Self {
        Table {
            index: Vec::new(),
            entries: Chunks::default(),
            hasher: PhantomData,
        }
    }
}

#[inline]
fn slot_pos(s: u64) -> usize {
    (s as u32 - 1) as usize
}

/// Home slot of fingerprint-carrying `x` (a hash or a slot) under `mask`.
#[inline]
fn home(x: u64, mask: usize) -> usize {
    (x >> 32) as usize & mask
}

#[inline]
fn slot_of(h: u64, pos: usize) -> u64 {
    (h & 0xffff_ffff_0000_0000) | (pos as u64 + 1)
}

impl<V: Copy, H: KeyHash> Table<V, H> {
    /// An empty table (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }
    /// An empty table with room for `n` keys before it grows.
    pub fn with_capacity(n: usize) -> Self {
        let mut t = Self::new();
        t.reserve(n);
        t
    }
    /// Number of keys.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether the table is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
    /// Keys the table holds room for before its index grows.
    pub fn capacity(&self) -> usize {
        self.index.len() / MAX_LOAD_DEN * MAX_LOAD_NUM
    }
    /// Makes room for `additional` more keys.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len().saturating_add(additional);
        assert!(need <= MAX_TABLE_ENTRIES, "table exceeds MAX_TABLE_ENTRIES");
        if need > self.capacity() {
            let slots = (need * MAX_LOAD_DEN).div_ceil(MAX_LOAD_NUM);
            self.rebuild_index(slots.next_power_of_two().max(MIN_INDEX_SLOTS));
        }
    }
    #[inline]
    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }
    /// `(index slot, entry position)` of `k` with hash `h`.
    #[inline]
    fn find(&self, k: &Key, h: u64) -> Option<(usize, usize)> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.mask();
        let fp = h >> 32;
        let mut i = home(h, mask);
        loop {
            let s = self.index[i];
            if s == 0 {
                return None;
            }
            if s >> 32 == fp {
                let pos = slot_pos(s);
                if self.entries[pos].key == *k {
                    return Some((i, pos));
                }
            }
            i = (i + 1) & mask;
        }
    }
    /// The value of `k`.
    #[inline]
    pub fn get(&self, k: &Key) -> Option<&V> {
        self.find(k, H::hash(k))
            .map(|(_, p)| &self.entries[p].value)
    }
    /// Sets `k` to `v`; returns the previous value.
    #[inline]
    pub fn insert(&mut self, k: Key, v: V) -> Option<V> {
        let h = H::hash(&k);
        if let Some((_, p)) = self.find(&k, h) {
            return Some(std::mem::replace(&mut self.entries[p].value, v));
        }
        if self.len() + 1 > self.capacity() {
            self.reserve(1);
        }
        let pos = self.len();
        assert!(pos < MAX_TABLE_ENTRIES, "table exceeds MAX_TABLE_ENTRIES");
        self.place(h, pos);
        self.entries.push(Slot { key: k, value: v });
        None
    }
    /// Writes the slot of entry `pos` (hash `h`) into the first free index slot of its run.
    #[inline]
    fn place(&mut self, h: u64, pos: usize) {
        let mask = self.mask();
        let mut i = home(h, mask);
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = slot_of(h, pos);
    }
    /// Removes `k`; returns its value.
    pub fn remove(&mut self, k: &Key) -> Option<V> {
        let (slot, pos) = self.find(k, H::hash(k))?;
        self.delete_slot(slot);
        let last = self.len() - 1;
        if pos != last {
            // The last entry moves into the hole: repoint its index slot.
            let moved = self.entries[last].key;
            let h = H::hash(&moved);
            let mask = self.mask();
            let mut i = home(h, mask);
            loop {
                let s = self.index[i];
                assert!(s != 0, "table index lost a moved entry");
                if slot_pos(s) == last {
                    break;
                }
                i = (i + 1) & mask;
            }
            self.index[i] = slot_of(h, pos);
        }
        Some(self.entries.swap_remove(pos).value)
    }
    /// Empties index slot `hole`, shifting back the slots after it in its probe run whose
    /// home lies at or before the hole (so every key stays reachable from its home).
    fn delete_slot(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        loop {
            let s = self.index[j];
            if s == 0 {
                break;
            }
            let h = home(s, mask);
            // Distance from home to j vs from hole to j (cyclic): the slot may move to
            // the hole iff its home is not strictly between the hole and j.
            if (j.wrapping_sub(h) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = s;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.index[hole] = 0;
    }
    /// Moves every slot into a fresh index of `slots` slots (slots carry their
    /// fingerprint, hence their home: no entry is read).
    fn rebuild_index(&mut self, slots: usize) {
        debug_assert!(slots.is_power_of_two());
        let old = std::mem::replace(&mut self.index, vec![0; slots]);
        let mask = self.mask();
        for s in old.into_iter().filter(|&s| s != 0) {
            let mut i = home(s, mask);
            while self.index[i] != 0 {
                i = (i + 1) & mask;
            }
            self.index[i] = s;
        }
    }
    /// Every `(key, value)`, in the table's (deterministic, meaningless) order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &V)> + '_ {
        self.entries.iter().map(|s| (&s.key, &s.value))
    }
    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.entries.iter().map(|s| &s.value)
    }
    /// Starts loading `k`'s home index slot (first pass of a cache warm-up;
    /// `h = H::hash(k)`): a [`prefetch`] hint, which does not wait for the line.
    #[inline]
    pub fn prefetch_index(&self, h: u64) {
        if let Some(s) = self.index.get(home(h, self.mask())) {
            prefetch(s);
        }
    }
    /// Starts loading the entry of `k` (hash `h`) (second pass of a cache warm-up, some
    /// time after [`Table::prefetch_index`]): reads the index (cached by then) to the
    /// entry whose fingerprint matches and prefetches both cache lines of it. Never
    /// compares keys, so it does not wait for the entry.
    #[inline]
    pub fn prefetch_entry(&self, h: u64) {
        if self.index.is_empty() {
            return;
        }
        let mask = self.mask();
        let fp = h >> 32;
        let mut i = home(h, mask);
        loop {
            let s = self.index[i];
            if s == 0 {
                return;
            }
            if s >> 32 == fp {
                let e = &self.entries[slot_pos(s)];
                prefetch(&e.key);
                prefetch(&e.value);
                return;
            }
            i = (i + 1) & mask;
        }
    }
    /// Asserts the index and entries agree: every entry is reachable from its home slot
    /// through a run without empty slots, and every used slot names a distinct entry.
    pub fn check_invariants(&self) {
        let used = self.index.iter().filter(|&&s| s != 0).count();
        assert_eq!(
            used,
            self.len(),
            "index slots disagree with the entry count"
        );
        assert!(self.len() <= self.capacity(), "index over its load limit");
        for (pos, e) in self.entries.iter().enumerate() {
            let h = H::hash(&e.key);
            let found = self.find(&e.key, h);
            assert_eq!(found.map(|f| f.1), Some(pos), "entry {pos} unreachable");
            assert_eq!(
                self.index[found.expect("found").0] >> 32,
                h >> 32,
                "fingerprint mismatch"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{OrgId, PatientId};
    use std::collections::BTreeMap;

    /// Every key hashes alike: every lookup walks one probe run and every fingerprint
    /// matches, so only the full-key comparison tells keys apart.
    struct SameHash;
    impl KeyHash for SameHash {
        fn hash(_: &Key) -> u64 {
            0xdead_beef_0000_0007
        }
    }
    /// Eight fingerprints, homes among the last few slots: runs interleave and wrap
    /// around the end of the index.
    struct FewHash;
    impl KeyHash for FewHash {
        fn hash(k: &Key) -> u64 {
            let (_, a, b) = key_words(k);
            let x = a ^ b;
            (0xffff_fff8 | (x.wrapping_mul(7) & 7)) << 32
        }
    }

    fn keys(n: u64) -> Vec<Key> {
        (0..n)
            .map(|i| match i % 4 {
                0 => Key::Account(OrgId(i)),
                1 => Key::Audit(PatientId(i)),
                2 => Key::Consent(PatientId(i), OrgId(i / 3)),
                _ => Key::ClaimDaily(PatientId(i / 2), OrgId(i), i as u32),
            })
            .collect()
    }

    /// Random inserts, overwrites and removals against a `BTreeMap` model.
    fn against_model<H: KeyHash>(n: u64, rounds: u64) {
        let ks = keys(n);
        let mut t: Table<u64, H> = Table::new();
        let mut m: BTreeMap<Key, u64> = BTreeMap::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for r in 0..rounds {
            x = crate::routing::splitmix64(x);
            let k = ks[(x % n) as usize];
            if x >> 62 == 0 {
                assert_eq!(t.remove(&k), m.remove(&k), "remove {k:?} at round {r}");
            } else {
                assert_eq!(t.insert(k, r), m.insert(k, r), "insert {k:?} at round {r}");
            }
            assert_eq!(t.len(), m.len());
            if r % 97 == 0 {
                t.check_invariants();
            }
        }
        t.check_invariants();
        for k in &ks {
            assert_eq!(t.get(k), m.get(k), "get {k:?}");
        }
        let mut seen: Vec<_> = t.iter().map(|(k, v)| (*k, *v)).collect();
        seen.sort();
        assert_eq!(seen, m.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn matches_a_btreemap_with_the_production_hash() {
        against_model::<MixHash>(3000, 20_000);
    }

    #[test]
    fn entries_span_several_chunks() {
        // About 7,000 live keys: three chunks, whose boundaries removals keep crossing.
        against_model::<MixHash>(9_000, 60_000);
    }

    #[test]
    fn fingerprint_collisions_compare_full_keys() {
        // Every key collides on both home slot and fingerprint.
        against_model::<SameHash>(120, 3000);
    }

    #[test]
    fn interleaved_runs_survive_backward_shift_deletion() {
        against_model::<FewHash>(200, 6000);
    }

    #[test]
    fn colliding_keys_keep_their_own_values() {
        let mut t: Table<u32, SameHash> = Table::new();
        let a = Key::Audit(PatientId(1));
        let b = Key::Audit(PatientId(2));
        assert_eq!(t.insert(a, 1), None);
        assert_eq!(t.insert(b, 2), None);
        assert_eq!(t.get(&a), Some(&1));
        assert_eq!(t.get(&b), Some(&2));
        assert_eq!(t.get(&Key::Audit(PatientId(3))), None);
        assert_eq!(t.remove(&a), Some(1));
        assert_eq!(t.get(&a), None);
        assert_eq!(t.get(&b), Some(&2));
        t.check_invariants();
    }

    #[test]
    fn reserve_keeps_contents_and_prefetch_changes_nothing() {
        let ks = keys(500);
        let mut t: Table<usize> = Table::with_capacity(10);
        for (i, k) in ks.iter().enumerate() {
            t.insert(*k, i);
        }
        t.reserve(10_000);
        assert!(t.capacity() >= 10_500);
        let copy = t.clone();
        for (i, k) in ks.iter().enumerate() {
            assert_eq!(copy.get(k), Some(&i));
        }
        for k in &ks {
            let h = MixHash::hash(k);
            t.prefetch_index(h);
            t.prefetch_entry(h);
        }
        for (i, k) in ks.iter().enumerate() {
            assert_eq!(t.get(k), Some(&i));
        }
        t.check_invariants();
    }

    #[test]
    fn slots_are_whole_cache_lines() {
        assert_eq!(slot_bytes::<u32>(), 64);
        // A state entry (key, value, cached leaf digest): exactly two lines.
        assert_eq!(slot_bytes::<crate::state::Entry>(), 128);
    }
}

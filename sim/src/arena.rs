//! [`RetiringArena`]: the in-flight client transactions and operations, addressed by
//! run-wide `u32` ids, with finished entries retired from the front.
//!
//! Ids are handed out in order and never reused, so a stale id (a duplicate in a later
//! block, a resend deadline, a forked block's inclusion) can always be told apart: it is
//! either *live* (stored), *retired* (below the base: it finished and was dropped) or
//! *unknown* (never handed out). An entry retires once it and every entry before it are
//! marked finished, in whole words of [`RETIRE_GRANULE`] entries; the arena therefore
//! holds what is in flight plus what finished behind the oldest unfinished entry, instead
//! of the whole run (the `large` scenario pushes 1.1 M transactions and 1.2 M operations).
//!
//! The finished marks are a bitmap beside the entries, so retiring reads one word per
//! 64 entries and never touches the (cold) entries themselves. The limit: one entry that
//! never finishes (an operation lost with its crashed gateway, with client resends off)
//! holds everything after it, and the arena then grows as an unretired one would.

use std::collections::VecDeque;

use ledger_core::prefetch::prefetch_ahead;

/// Entries retire in groups of this many (one word of finished marks).
pub const RETIRE_GRANULE: u32 = 64;
/// How many pushes ahead [`RetiringArena::push`] prefetches the slot it will write.
const PREFETCH_AHEAD_ITEMS: usize = 4;

/// Most ids one arena hands out over a run (`u32` handles; `u32::MAX` is never an id).
pub const MAX_ARENA_IDS: u64 = u32::MAX as u64 - 1;

/// Where an id stands (see the module docs).
#[derive(Debug, PartialEq, Eq)]
pub enum Slot<'a, T> {
    /// Stored.
    Live(&'a T),
    /// Finished and dropped.
    Retired,
    /// Never handed out.
    Unknown,
}

/// An arena of entries with ids `0, 1, 2, …` that drops finished entries from the front
/// (see the module docs).
#[derive(Debug)]
pub struct RetiringArena<T> {
    /// Id of `items[0]`; a multiple of [`RETIRE_GRANULE`].
    base: u32,
    items: VecDeque<T>,
    /// Finished marks: bit `i % 64` of word `i / 64` for the id `base + i`.
    finished: VecDeque<u64>,
    /// Keep every entry (for runs that export one record per transaction).
    retain_all: bool,
    /// Most entries stored at once so far.
    peak_len: usize,
}

impl<T> RetiringArena<T> {
    /// An empty arena with room for `capacity` entries before it grows. With
    /// `retain_all`, nothing ever retires and [`RetiringArena::into_vec`] returns every
    /// entry.
    pub fn new(capacity: usize, retain_all: bool) -> Self {
        RetiringArena {
            base: 0,
            items: VecDeque::with_capacity(capacity),
            finished: VecDeque::with_capacity(capacity / RETIRE_GRANULE as usize + 1),
            retain_all,
            peak_len: 0,
        }
    }

    /// Most entries stored at once so far (what the arena's memory followed).
    pub fn peak_len(&self) -> usize {
        self.peak_len
    }

    /// The id the next [`RetiringArena::push`] returns.
    #[inline]
    pub fn next_id(&self) -> u64 {
        u64::from(self.base) + self.items.len() as u64
    }

    /// Entries stored now (live and not yet retired).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Ids below this one have retired.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// Stores `item` and returns its id, or `None` once [`MAX_ARENA_IDS`] ids are used.
    #[inline]
    pub fn push(&mut self, item: T) -> Option<u32> {
        let id = self.next_id();
        if id >= MAX_ARENA_IDS {
            return None;
        }
        if id % u64::from(RETIRE_GRANULE) == 0 {
            self.finished.push_back(0);
        }
        self.items.push_back(item);
        if let Some(last) = self.items.back() {
            // The slots the next pushes write were last used a whole ring ago, so they
            // are cold: start loading one a few pushes ahead (a wrong guess at the ring's
            // wrap-around costs nothing but the hint).
            prefetch_ahead(last, PREFETCH_AHEAD_ITEMS);
        }
        self.peak_len = self.peak_len.max(self.items.len());
        debug_assert_eq!(
            self.finished.len(),
            self.items.len().div_ceil(RETIRE_GRANULE as usize)
        );
        Some(id as u32)
    }

    #[inline]
    fn index(&self, id: u32) -> Option<usize> {
        let i = id.checked_sub(self.base)? as usize;
        (i < self.items.len()).then_some(i)
    }

    /// The entry `id`, if live.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&T> {
        self.index(id).map(|i| &self.items[i])
    }

    /// The entry `id`, if live.
    #[inline]
    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.index(id).map(|i| &mut self.items[i])
    }

    /// Whether `id` is live, retired or unknown.
    #[inline]
    pub fn slot(&self, id: u32) -> Slot<'_, T> {
        match self.get(id) {
            Some(t) => Slot::Live(t),
            None if id < self.base => Slot::Retired,
            None => Slot::Unknown,
        }
    }

    /// Marks live entry `id` finished: it may retire once everything before it has.
    /// Marking a retired or unknown id is a bug in the caller and panics.
    #[inline]
    pub fn finish(&mut self, id: u32) {
        let i = self
            .index(id)
            .unwrap_or_else(|| panic!("finish of id {id}, which is not live"));
        self.finished[i / RETIRE_GRANULE as usize] |= 1 << (i % RETIRE_GRANULE as usize);
    }

    /// Drops every whole group of finished entries at the front; returns how many
    /// entries retired. Does nothing when the arena retains all.
    pub fn retire(&mut self) -> usize {
        if self.retain_all {
            return 0;
        }
        let granule = RETIRE_GRANULE as usize;
        let mut words = 0;
        while self.finished.get(words) == Some(&u64::MAX) {
            words += 1;
        }
        if words == 0 {
            return 0;
        }
        let n = words * granule;
        debug_assert!(
            self.items.len() >= n,
            "a full word marks stored entries only"
        );
        self.items.drain(..n);
        self.finished.drain(..words);
        self.base += n as u32;
        n
    }

    /// Every entry, in id order (all of them only if the arena retains all).
    pub fn into_vec(self) -> Vec<T> {
        self.items.into()
    }
}

impl<T> std::ops::Index<u32> for RetiringArena<T> {
    type Output = T;
    /// The live entry `id`; panics (an invariant broken by the caller) otherwise.
    #[inline]
    fn index(&self, id: u32) -> &T {
        match self.get(id) {
            Some(t) => t,
            None => panic!("arena id {id} is not live (base {})", self.base),
        }
    }
}

impl<T> std::ops::IndexMut<u32> for RetiringArena<T> {
    #[inline]
    fn index_mut(&mut self, id: u32) -> &mut T {
        let base = self.base;
        match self.get_mut(id) {
            Some(t) => t,
            None => panic!("arena id {id} is not live (base {base})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retires_whole_finished_groups_from_the_front_only() {
        let mut a = RetiringArena::new(4, false);
        for i in 0..200u32 {
            assert_eq!(a.push(i), Some(i));
        }
        // Finish everything except id 70: the first group retires, the rest is held.
        for id in (0..200).filter(|&id| id != 70) {
            a.finish(id);
        }
        assert_eq!(a.retire(), 64);
        assert_eq!(a.base(), 64);
        assert_eq!(a.slot(3), Slot::Retired);
        assert_eq!(a.slot(64), Slot::Live(&64));
        assert_eq!(a.slot(199), Slot::Live(&199));
        assert_eq!(a.slot(200), Slot::Unknown);
        assert_eq!(a[150], 150);
        // Id 70 finishes: the two full groups after it go too, the partial last stays.
        a.finish(70);
        assert_eq!(a.retire(), 128);
        assert_eq!(a.base(), 192);
        assert_eq!(a.len(), 8);
        assert_eq!(a.peak_len(), 200);
        assert_eq!(a.push(200), Some(200));
        assert_eq!(a[200], 200);
    }

    #[test]
    fn retaining_arena_keeps_everything() {
        let mut a = RetiringArena::new(0, true);
        for i in 0..130u32 {
            a.push(i);
            a.finish(i);
        }
        assert_eq!(a.retire(), 0);
        assert_eq!(a.into_vec(), (0..130).collect::<Vec<_>>());
    }

    #[test]
    #[should_panic(expected = "not live")]
    fn finishing_a_retired_id_panics() {
        let mut a = RetiringArena::new(0, false);
        for i in 0..64u32 {
            a.push(i);
            a.finish(i);
        }
        a.retire();
        a.finish(0);
    }

    proptest! {
        /// Against a model that keeps everything: live entries read back their values,
        /// every retired id finished, and nothing unfinished (or after it) ever retires.
        #[test]
        fn matches_a_model_that_keeps_everything(
            steps in proptest::collection::vec((0u8..3, any::<u16>()), 1..2000)
        ) {
            let mut a = RetiringArena::new(8, false);
            let mut finished: Vec<bool> = Vec::new();
            for (op, x) in steps {
                match op {
                    0 => {
                        let id = a.push(finished.len() as u64).unwrap();
                        prop_assert_eq!(id as usize, finished.len());
                        finished.push(false);
                    }
                    1 if !finished.is_empty() => {
                        let id = (x as usize % finished.len()) as u32;
                        if id >= a.base() && !finished[id as usize] {
                            a.finish(id);
                            finished[id as usize] = true;
                        }
                    }
                    _ => {
                        a.retire();
                    }
                }
                let base = a.base() as usize;
                prop_assert!(finished[..base].iter().all(|&f| f));
                let first_open = finished.iter().position(|&f| !f).unwrap_or(finished.len());
                prop_assert!(base <= first_open);
                for (id, _) in finished.iter().enumerate().skip(base) {
                    prop_assert_eq!(a.get(id as u32), Some(&(id as u64)));
                }
            }
        }
    }
}

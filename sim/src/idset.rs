//! [`IdSet`]: a set of `u32` operation ids stored as a paged bitmap.
//!
//! Replicas remember which operation ids they have already executed so that a
//! re-forwarded request is not proposed twice. Operation ids are handed out
//! densely and in submission order by the simulator, so the ids a replica holds
//! cluster in a few ranges: a bitmap is 1 bit per id instead of the ~9 bytes of a
//! hash set slot, and neighbouring ids of one block share a cache line. With 112
//! replicas each remembering 65,536 ids, the hash sets (and their cache misses)
//! were the largest single cost of the `large` scenario.
//!
//! Membership answers are identical to a hash set's; nothing iterates over the
//! set, so no decision depends on an order.

/// Ids per page (bits of one page).
const PAGE_BITS: u32 = 1 << 15;
/// 64-bit words per page.
const PAGE_WORDS: usize = (PAGE_BITS / 64) as usize;
/// Most empty pages kept for reuse (a named limit on the spare pool).
const MAX_SPARE_PAGES: usize = 8;

/// One page: its bits and how many of them are set.
#[derive(Debug, Clone)]
struct Page {
    words: [u64; PAGE_WORDS],
    count: u32,
}

impl Page {
    fn empty() -> Box<Page> {
        Box::new(Page {
            words: [0; PAGE_WORDS],
            count: 0,
        })
    }
}

/// A set of `u32` ids as a paged bitmap: pages of 32,768 ids are allocated when
/// their first id is inserted and released when their last id is removed, so memory
/// follows the span of live ids, not the largest id ever seen.
#[derive(Default, Debug, Clone)]
pub struct IdSet {
    pages: Vec<Option<Box<Page>>>,
    spare: Vec<Box<Page>>,
    len: usize,
    /// Upper bound on the ids present (the largest ever inserted since the
    /// last clear): ids arrive roughly in increasing order, so a lookup of a
    /// fresh id is answered without touching a (cold) page.
    hi: u32,
}

impl IdSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn split(id: u32) -> (usize, usize, u64) {
        let page = (id / PAGE_BITS) as usize;
        let bit = id % PAGE_BITS;
        (page, (bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        if id > self.hi {
            return false;
        }
        let (p, w, m) = Self::split(id);
        match self.pages.get(p) {
            Some(Some(page)) => page.words[w] & m != 0,
            _ => false,
        }
    }

    /// Insert `id`; `true` if it was not already present.
    #[inline]
    pub fn insert(&mut self, id: u32) -> bool {
        self.hi = self.hi.max(id);
        let (p, w, m) = Self::split(id);
        if let Some(Some(page)) = self.pages.get_mut(p) {
            // Fast path: the page exists.
            if page.words[w] & m != 0 {
                return false;
            }
            page.words[w] |= m;
            page.count += 1;
            self.len += 1;
            return true;
        }
        self.insert_new_page(p, w, m);
        true
    }

    /// Insert into page `p`, which is not allocated yet.
    #[cold]
    #[inline(never)]
    fn insert_new_page(&mut self, p: usize, w: usize, m: u64) {
        if p >= self.pages.len() {
            self.pages.resize_with(p + 1, || None);
        }
        let mut page = self.spare.pop().unwrap_or_else(Page::empty);
        debug_assert_eq!(page.count, 0, "spare pages are empty");
        page.words[w] = m;
        page.count = 1;
        self.pages[p] = Some(page);
        self.len += 1;
    }

    /// Remove `id`; `true` if it was present.
    #[inline]
    pub fn remove(&mut self, id: u32) -> bool {
        if id > self.hi {
            return false;
        }
        let (p, w, m) = Self::split(id);
        let Some(slot) = self.pages.get_mut(p) else {
            return false;
        };
        let Some(page) = slot else {
            return false;
        };
        if page.words[w] & m == 0 {
            return false;
        }
        page.words[w] &= !m;
        page.count -= 1;
        self.len -= 1;
        if page.count == 0 {
            if let Some(page) = slot.take() {
                // Every bit of an emptied page is already clear.
                if self.spare.len() < MAX_SPARE_PAGES {
                    self.spare.push(page);
                }
            }
        }
        true
    }

    /// Insert each id of `ids` in order, calling `on_new` with each one that was not
    /// already present: what [`Self::insert`] on each would do, with one page lookup
    /// per run of ids on the same page (a block's ids are close together).
    #[inline]
    pub fn insert_each(&mut self, ids: impl IntoIterator<Item = u32>, mut on_new: impl FnMut(u32)) {
        let mut ids = ids.into_iter().peekable();
        while let Some(first) = ids.next() {
            let p = (first / PAGE_BITS) as usize;
            let Some(Some(page)) = self.pages.get_mut(p) else {
                self.insert(first);
                on_new(first);
                continue;
            };
            let mut added = 0u32;
            for id in std::iter::once(first).chain(std::iter::from_fn(|| next_on_page(&mut ids, p)))
            {
                self.hi = self.hi.max(id);
                let (_, w, m) = Self::split(id);
                if page.words[w] & m == 0 {
                    page.words[w] |= m;
                    added += 1;
                    on_new(id);
                }
            }
            page.count += added;
            self.len += added as usize;
        }
    }

    /// Remove each id of `ids` (absent ones are skipped); returns how many were
    /// present. What [`Self::remove`] on each would do, with one page lookup per run
    /// of ids on the same page.
    #[inline]
    pub fn remove_each(&mut self, ids: impl IntoIterator<Item = u32>) -> usize {
        let mut removed_total = 0;
        let mut ids = ids.into_iter().peekable();
        while let Some(first) = ids.next() {
            if first > self.hi {
                continue;
            }
            let p = (first / PAGE_BITS) as usize;
            let Some(Some(page)) = self.pages.get_mut(p) else {
                continue;
            };
            let mut removed = 0u32;
            // Ids above `hi` are absent: their bits are clear, so testing them is the same
            // as skipping them.
            for id in std::iter::once(first).chain(std::iter::from_fn(|| next_on_page(&mut ids, p)))
            {
                let (_, w, m) = Self::split(id);
                if page.words[w] & m != 0 {
                    page.words[w] &= !m;
                    removed += 1;
                }
            }
            page.count -= removed;
            self.len -= removed as usize;
            removed_total += removed as usize;
            if page.count == 0 {
                // Released at the end of the run rather than at its last id: the ids
                // after that one found their bits clear either way.
                if let Some(page) = self.pages[p].take() {
                    if self.spare.len() < MAX_SPARE_PAGES {
                        self.spare.push(page);
                    }
                }
            }
        }
        removed_total
    }

    /// An upper bound on the ids in the set (no id above it is present).
    #[inline]
    pub fn max_bound(&self) -> u32 {
        self.hi
    }

    /// Number of ids in the set.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Remove every id.
    pub fn clear(&mut self) {
        for slot in self.pages.iter_mut() {
            if let Some(mut page) = slot.take() {
                if self.spare.len() < MAX_SPARE_PAGES {
                    page.words.fill(0);
                    page.count = 0;
                    self.spare.push(page);
                }
            }
        }
        self.len = 0;
        self.hi = 0;
    }
}

/// The next id of `ids` if it lies on page `p` (the run of ids on one page that
/// [`IdSet::insert_each`] and [`IdSet::remove_each`] handle with one page lookup).
#[inline]
fn next_on_page<I: Iterator<Item = u32>>(
    ids: &mut std::iter::Peekable<I>,
    p: usize,
) -> Option<u32> {
    ids.next_if(|&id| (id / PAGE_BITS) as usize == p)
}

#[cfg(test)]
mod tests {
    use super::{IdSet, PAGE_BITS};
    use rustc_hash::FxHashSet;

    /// `insert_each` and `remove_each` leave the set as single inserts and removes
    /// would, report the same ids, and release emptied pages the same way.
    #[test]
    fn batch_operations_match_single_ones() {
        let mut a = IdSet::new();
        let mut b = IdSet::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for round in 0..400u32 {
            let base = round * 700;
            let n = (x % 90) as usize;
            let ids: Vec<u32> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly close together, sometimes on another page or far back.
                    match x % 16 {
                        0 => (x >> 8) as u32 % (base + 1),
                        1 => base + PAGE_BITS + (x >> 8) as u32 % 64,
                        _ => base + (x >> 8) as u32 % 2_000,
                    }
                })
                .collect();
            if round % 3 == 2 {
                let want = ids.iter().filter(|&&id| b.remove(id)).count();
                assert_eq!(a.remove_each(ids.iter().copied()), want, "round {round}");
            } else {
                let mut got = Vec::new();
                a.insert_each(ids.iter().copied(), |id| got.push(id));
                let want: Vec<u32> = ids.iter().copied().filter(|&id| b.insert(id)).collect();
                assert_eq!(got, want, "round {round}");
            }
            assert_eq!(a.len(), b.len());
            assert_eq!(a.max_bound(), b.max_bound());
            assert_eq!(a.pages.len(), b.pages.len());
            for (pa, pb) in a.pages.iter().zip(&b.pages) {
                assert_eq!(pa.is_some(), pb.is_some(), "round {round}");
                if let (Some(pa), Some(pb)) = (pa, pb) {
                    assert_eq!(pa.count, pb.count);
                    assert_eq!(pa.words[..], pb.words[..]);
                }
            }
            assert_eq!(a.spare.len(), b.spare.len());
        }
    }

    /// Same answers as a hash set over a pseudo-random sequence of inserts and
    /// removes spanning several pages (and page release/reuse).
    #[test]
    fn matches_a_hash_set() {
        let mut a = IdSet::new();
        let mut b: FxHashSet<u32> = FxHashSet::default();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 200_000) as u32 + (i / 1000) * 4096;
            if x % 3 == 0 {
                assert_eq!(a.remove(id), b.remove(&id));
            } else {
                assert_eq!(a.insert(id), b.insert(id));
            }
            assert_eq!(a.contains(id ^ 1), b.contains(&(id ^ 1)));
            assert_eq!(a.len(), b.len());
        }
        a.clear();
        assert!(a.is_empty());
        assert!(!a.contains(5));
        assert!(a.insert(u32::MAX));
        assert!(a.contains(u32::MAX));
        assert!(a.remove(u32::MAX));
        assert!(!a.remove(u32::MAX));
    }
}

//! The discrete-event kernel: a time-ordered event queue with FIFO tie-breaking.
//!
//! Events are ordered by `(time, insertion sequence)`: two events at the same
//! virtual nanosecond fire in the order they were scheduled. The binary heap holds
//! only small `Copy` keys `(time, seq, slot)`; payloads live in a slab whose slots
//! are recycled through a free list, so a steady-state run allocates nothing per
//! event once the slab and heap have grown to the peak number of pending events.
//!
//! The keys live in a ring of 262 µs buckets covering the next 268 ms, with an
//! overflow heap beyond it: scheduling appends to a bucket, and a bucket's keys become
//! a small heap when the ring reaches it (no sift through every pending event).
//!
//! Events can be cancelled by their [`EventId`]; a cancelled event's slot is freed
//! at once and its heap key is skipped when it surfaces (the slot records the
//! sequence number of its current occupant, so a recycled slot is never confused
//! with the cancelled event).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ledger_core::prefetch::prefetch;

/// Virtual time in nanoseconds since the start of the run.
pub type TimeNs = u64;

/// Nanoseconds per millisecond.
pub const NS_PER_MS: u64 = 1_000_000;
/// Nanoseconds per second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Handle of a scheduled event, usable to cancel it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    slot: u32,
    seq: u64,
}

/// Bits of the packed heap key that hold the slab slot.
const SLOT_BITS: u32 = 26;
/// Most slab slots (pending events) the packed key can address: 67,108,864.
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;
/// Most events one queue can ever schedule (sequence numbers are 38 bits:
/// 2.7e11 events, about 15 hours of kernel time at 5 million events/s).
pub const MAX_EVENTS: u64 = 1 << (64 - SLOT_BITS);

/// The heap key, packed into one `u128` so that ordering is a single integer
/// comparison: `time << 64 | seq << SLOT_BITS | slot`. Smaller is earlier; the
/// sequence number breaks ties FIFO.
#[inline]
fn pack(time: TimeNs, seq: u64, slot: u32) -> u128 {
    (u128::from(time) << 64) | u128::from((seq << SLOT_BITS) | u64::from(slot))
}

#[inline]
fn unpack(key: u128) -> (TimeNs, u64, u32) {
    let low = key as u64;
    (
        (key >> 64) as u64,
        low >> SLOT_BITS,
        (low & ((1 << SLOT_BITS) - 1)) as u32,
    )
}

/// A min-heap of packed keys (std's binary heap over `Reverse<u128>`: one
/// integer comparison per step).
#[derive(Default)]
struct MinHeap(BinaryHeap<Reverse<u128>>);

impl MinHeap {
    #[inline]
    fn push(&mut self, key: u128) {
        self.0.push(Reverse(key));
    }

    #[inline]
    fn pop(&mut self) -> Option<u128> {
        self.0.pop().map(|Reverse(k)| k)
    }

    #[inline]
    fn peek(&self) -> Option<u128> {
        self.0.peek().map(|&Reverse(k)| k)
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// log2 of a time bucket's width: 2^18 ns = 262 µs.
const BUCKET_SHIFT: u32 = 18;
/// Buckets in the ring (a power of two): the ring covers 1,024 × 262 µs = 268 ms
/// from the current bucket on; later keys wait in the overflow heap.
const RING_BUCKETS: usize = 1 << 10;
/// Words of the ring's occupancy bitmap.
const RING_WORDS: usize = RING_BUCKETS / 64;

#[inline]
fn bucket_of(key: u128) -> u64 {
    ((key >> 64) as u64) >> BUCKET_SHIFT
}

/// The priority queue of packed keys: a ring of buckets for the next 268 ms and a
/// heap for keys beyond it.
///
/// A bucket holds the keys of one 262 µs slice, unsorted: scheduling appends. When
/// the ring reaches a bucket, its keys become a small heap (built in one pass), so a
/// pop sifts through the keys of one slice, not through every pending event, and a
/// dense bucket costs O(log n) per operation. Order is exactly the packed key order:
/// buckets partition time, the ring is visited in time order from `cur`, keys
/// scheduled into the current bucket join its heap, and every overflow key lies
/// beyond the ring (`bucket >= cur + RING_BUCKETS`, restored each time `cur` advances).
struct TimeQueue {
    /// Unsorted keys of the buckets after `cur`, indexed by bucket mod RING_BUCKETS.
    ring: Vec<Vec<Reverse<u128>>>,
    /// Bit `i`: `ring[i]` holds keys.
    occupied: [u64; RING_WORDS],
    /// Absolute bucket number (`time >> BUCKET_SHIFT`) of the current bucket.
    cur: u64,
    /// Keys of bucket `cur`, a min-heap (built in one pass when the bucket becomes
    /// current; keys scheduled into the current bucket are pushed into it).
    current: BinaryHeap<Reverse<u128>>,
    overflow: MinHeap,
}

impl Default for TimeQueue {
    fn default() -> Self {
        TimeQueue {
            ring: (0..RING_BUCKETS).map(|_| Vec::new()).collect(),
            occupied: [0; RING_WORDS],
            cur: 0,
            current: BinaryHeap::new(),
            overflow: MinHeap::default(),
        }
    }
}

impl TimeQueue {
    /// Insert `key`; its bucket must not be before the current one (the kernel never
    /// schedules before `now`, and `cur` is at most `now`'s bucket: see [`Self::pop`]
    /// and [`Self::drained_at`]).
    #[inline(always)]
    fn push(&mut self, key: u128) {
        let b = bucket_of(key);
        assert!(b >= self.cur, "key before the current bucket");
        let ahead = b - self.cur;
        if ahead == 0 {
            self.current.push(Reverse(key));
        } else if ahead < RING_BUCKETS as u64 {
            let i = (b as usize) & (RING_BUCKETS - 1);
            self.ring[i].push(Reverse(key));
            self.occupied[i / 64] |= 1 << (i % 64);
        } else {
            self.overflow.push(key);
        }
    }

    /// Remove the smallest key.
    #[inline(always)]
    fn pop(&mut self) -> Option<u128> {
        loop {
            if let Some(Reverse(k)) = self.current.pop() {
                return Some(k);
            }
            let i = (self.cur as usize) & (RING_BUCKETS - 1);
            let next = match self.next_occupied(i) {
                Some(d) => self.cur + d,
                None => bucket_of(self.overflow.peek()?),
            };
            self.make_current(next);
        }
    }

    /// The smallest key if its bucket is at most `limit` (else `None`), without
    /// removing it. Never moves `cur` past `limit`, so a key may still be pushed
    /// anywhere from `limit`'s bucket on afterwards.
    #[inline]
    fn peek_within(&mut self, limit: u64) -> Option<u128> {
        loop {
            if let Some(&Reverse(k)) = self.current.peek() {
                return Some(k);
            }
            let i = (self.cur as usize) & (RING_BUCKETS - 1);
            let next = match self.next_occupied(i) {
                Some(d) => self.cur + d,
                None => bucket_of(self.overflow.peek()?),
            };
            if next > limit {
                return None;
            }
            self.make_current(next);
        }
    }

    /// Make bucket `b` (the next one holding keys) current: its keys become the heap,
    /// the emptied heap's buffer goes back to the ring, then overflow keys the ring
    /// now reaches move in.
    #[inline]
    fn make_current(&mut self, b: u64) {
        self.cur = b;
        let j = (b as usize) & (RING_BUCKETS - 1);
        let keys = std::mem::take(&mut self.ring[j]);
        let emptied = std::mem::replace(&mut self.current, BinaryHeap::from(keys));
        self.ring[j] = emptied.into_vec();
        self.occupied[j / 64] &= !(1 << (j % 64));
        self.refill();
    }

    /// Distance (1..RING_BUCKETS) from ring slot `i` to the next occupied slot, if any.
    #[inline]
    fn next_occupied(&self, i: usize) -> Option<u64> {
        let w0 = i / 64;
        // Rest of slot i's word above i, then the following words, wrapping round to
        // the bits of word w0 below i.
        let above = if i % 64 == 63 {
            0
        } else {
            self.occupied[w0] & (!0u64 << (i % 64 + 1))
        };
        if above != 0 {
            return Some((above.trailing_zeros() as usize - i % 64) as u64);
        }
        for step in 1..=RING_WORDS {
            let w = (w0 + step) % RING_WORDS;
            let bits = self.occupied[w];
            if bits != 0 {
                let j = w * 64 + bits.trailing_zeros() as usize;
                return Some(((j + RING_BUCKETS - i) % RING_BUCKETS) as u64);
            }
        }
        None
    }

    /// Move overflow keys that now fall within the ring into their buckets.
    #[inline]
    fn refill(&mut self) {
        let end = self.cur + RING_BUCKETS as u64;
        while let Some(k) = self.overflow.peek() {
            if bucket_of(k) >= end {
                break;
            }
            self.overflow.pop();
            self.push(k);
        }
    }

    /// The queue ran dry (its last keys were cancelled events, which may have moved
    /// `cur` past `now`): restart the ring at `now`'s bucket.
    fn drained_at(&mut self, now: TimeNs) {
        assert!(
            self.current.is_empty()
                && self.overflow.is_empty()
                && self.occupied.iter().all(|&w| w == 0),
            "drained_at on a non-empty queue"
        );
        self.cur = now >> BUCKET_SHIFT;
    }
}

/// A place in the event order `(time, seq)` taken by an event the caller keeps
/// outside the queue ([`EventQueue::reserve`]): the next workload request, which would
/// otherwise cost a push and a pop per request. [`EventQueue::pop_before`] returns the
/// queued events that come before it, exactly as if it had been scheduled.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    key: u128,
}

impl Reserved {
    /// The reserved time.
    #[inline]
    pub fn time(self) -> TimeNs {
        (self.key >> 64) as u64
    }
}

/// One slab slot: the sequence number of its occupant and the payload.
struct Slot<E> {
    seq: u64,
    payload: Option<E>,
}

/// A deterministic event queue over payloads of type `E`.
pub struct EventQueue<E> {
    heap: TimeQueue,
    slots: Vec<Slot<E>>,
    free: Vec<u32>,
    next_seq: u64,
    now: TimeNs,
    live: usize,
    max_pending: usize,
}

/// Errors of the event queue (limits, not bugs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// More events pending than the configured limit.
    #[error("more than {limit} events pending at once (event queue limit); the scenario offers more load than the simulator can hold")]
    TooManyPending {
        /// The configured limit.
        limit: usize,
    },
    /// The queue's sequence numbers are exhausted.
    #[error("more than {limit} events scheduled in one run (event sequence limit)")]
    TooManyEvents {
        /// The limit.
        limit: u64,
    },
    /// An event was scheduled before the current time.
    #[error("event scheduled in the past: at {at_ns} ns, now {now_ns} ns")]
    InThePast {
        /// Requested time.
        at_ns: TimeNs,
        /// Current time.
        now_ns: TimeNs,
    },
}

/// Default bound on simultaneously pending events (a named limit on growth).
pub const DEFAULT_MAX_PENDING_EVENTS: usize = MAX_SLOTS;

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0 with the default pending-event limit.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_PENDING_EVENTS)
    }

    /// An empty queue at time 0 holding at most `max_pending` events at once.
    pub fn with_limit(max_pending: usize) -> Self {
        EventQueue {
            heap: TimeQueue::default(),
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
            now: 0,
            live: 0,
            max_pending,
        }
    }

    /// The current virtual time: the time of the last event popped.
    #[inline]
    pub fn now(&self) -> TimeNs {
        self.now
    }

    /// Number of pending (not cancelled) events.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no event is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Schedule `payload` at absolute time `at` (must not be before [`Self::now`]).
    #[inline]
    pub fn schedule(&mut self, at: TimeNs, payload: E) -> Result<EventId, KernelError> {
        self.check_new(at)?;
        if self.live >= self.max_pending {
            return Err(KernelError::TooManyPending {
                limit: self.max_pending,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                // The slot the next schedule takes: slots freed long ago are cold.
                if let Some(&next) = self.free.last() {
                    if let Some(e) = self.slots.get(next as usize) {
                        prefetch(e);
                    }
                }
                let entry = &mut self.slots[s as usize];
                entry.seq = seq;
                // A free slot holds no payload: overwrite without reading the old one.
                let old = entry.payload.replace(payload);
                debug_assert!(old.is_none(), "free slab slot {s} held a payload");
                std::mem::forget(old);
                s
            }
            None => {
                if self.slots.len() >= MAX_SLOTS {
                    return Err(KernelError::TooManyPending { limit: MAX_SLOTS });
                }
                let s = self.slots.len() as u32;
                self.slots.push(Slot {
                    seq,
                    payload: Some(payload),
                });
                s
            }
        };
        self.heap.push(pack(at, seq, slot));
        self.live += 1;
        Ok(EventId { slot, seq })
    }

    /// Schedule `payload` `after` nanoseconds from now.
    #[inline]
    pub fn schedule_after(&mut self, after: TimeNs, payload: E) -> Result<EventId, KernelError> {
        self.schedule(self.now.saturating_add(after), payload)
    }

    /// Cancel a pending event; returns its payload, or `None` if it already fired
    /// or was cancelled.
    pub fn cancel(&mut self, id: EventId) -> Option<E> {
        let entry = self.slots.get_mut(id.slot as usize)?;
        if entry.seq != id.seq {
            return None;
        }
        let payload = entry.payload.take()?;
        self.free.push(id.slot);
        self.live -= 1;
        Some(payload)
    }

    /// The event of key `k`, just removed from the heap, advancing [`Self::now`] to
    /// its time; `None` if it was cancelled (its slot free, or reused since).
    #[inline]
    fn take(&mut self, k: u128) -> Option<E> {
        let (time, seq, slot) = unpack(k);
        let entry = &mut self.slots[slot as usize];
        if entry.seq != seq {
            return None;
        }
        let payload = entry.payload.take()?;
        self.free.push(slot);
        self.live -= 1;
        debug_assert!(time >= self.now, "event queue went back in time");
        self.now = time;
        // The event after the next one of this bucket (the smaller child of the heap's
        // root) is likely popped two pops from now: start loading its slot, so that
        // [`Self::peek_next`] finds it in cache after the next pop.
        let keys = self.heap.current.as_slice();
        let after_next = match (keys.get(1), keys.get(2)) {
            (Some(&Reverse(a)), Some(&Reverse(b))) => Some(a.min(b)),
            (Some(&Reverse(a)), None) => Some(a),
            _ => None,
        };
        if let Some(k) = after_next {
            if let Some(s) = self.slots.get(unpack(k).2 as usize) {
                prefetch(s);
            }
        }
        Some(payload)
    }

    /// The checks every new place in the event order passes: not before now, and a
    /// sequence number left.
    #[inline]
    fn check_new(&self, at: TimeNs) -> Result<(), KernelError> {
        if at < self.now {
            return Err(KernelError::InThePast {
                at_ns: at,
                now_ns: self.now,
            });
        }
        if self.next_seq >= MAX_EVENTS {
            return Err(KernelError::TooManyEvents { limit: MAX_EVENTS });
        }
        Ok(())
    }

    /// Remove and return the earliest event, advancing [`Self::now`] to its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(TimeNs, E)> {
        self.pop_payload().map(|e| (self.now, e))
    }

    /// The payload of the event at the head of the current bucket, the likely next to
    /// be popped (`None` if there is none, or it was cancelled), without removing it:
    /// a caller may prefetch what handling it will touch.
    #[inline]
    pub fn peek_next(&self) -> Option<&E> {
        let &Reverse(k) = self.heap.current.peek()?;
        let (_, seq, slot) = unpack(k);
        let entry = self.slots.get(slot as usize)?;
        if entry.seq != seq {
            return None;
        }
        entry.payload.as_ref()
    }

    /// [`Self::pop`] without the time, which is [`Self::now`] afterwards (the caller
    /// reads it there rather than from a tuple built around a large payload).
    #[inline]
    pub fn pop_payload(&mut self) -> Option<E> {
        while let Some(k) = self.heap.pop() {
            if let Some(event) = self.take(k) {
                return Some(event);
            }
        }
        self.heap.drained_at(self.now);
        None
    }

    /// Take the place in the event order that [`Self::schedule`] would give an event
    /// at `at` now (same checks, one sequence number), without queueing anything.
    #[inline]
    pub fn reserve(&mut self, at: TimeNs) -> Result<Reserved, KernelError> {
        self.check_new(at)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(Reserved {
            key: pack(at, seq, 0),
        })
    }

    /// Like [`Self::pop`], but only an event ordered before `r`; `None` means `r` is
    /// next, and [`Self::now`] has advanced to its time (the caller handles it now).
    #[inline]
    pub fn pop_before(&mut self, r: Reserved) -> Option<(TimeNs, E)> {
        self.pop_payload_before(r).map(|e| (self.now, e))
    }

    /// [`Self::pop_before`] without the time, which is [`Self::now`] afterwards.
    #[inline]
    pub fn pop_payload_before(&mut self, r: Reserved) -> Option<E> {
        let limit = bucket_of(r.key);
        while let Some(k) = self.heap.peek_within(limit) {
            if k > r.key {
                break;
            }
            let popped = self.heap.pop();
            debug_assert_eq!(popped, Some(k));
            if let Some(event) = self.take(k) {
                return Some(event);
            }
        }
        let time = r.time();
        assert!(time >= self.now, "reserved event before now");
        self.now = time;
        None
    }

    /// Total number of events ever scheduled (the next sequence number).
    pub fn scheduled_total(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `peek_next` names what the next pop returns while the current bucket holds it,
    /// and never a cancelled event.
    #[test]
    fn peek_next_is_the_next_pop_within_a_bucket() {
        let mut q = EventQueue::new();
        for i in 0..50u32 {
            q.schedule(u64::from(i % 7) * 1_000, i).expect("schedule");
        }
        let cancelled = q.schedule(500, 99).expect("schedule");
        assert_eq!(q.pop(), Some((0, 0)));
        q.cancel(cancelled);
        let mut peeked_some = 0;
        while let Some(&next) = q.peek_next() {
            assert_ne!(next, 99, "a cancelled event was peeked");
            let (_, got) = q.pop().expect("a peeked event pops");
            assert_eq!(got, next);
            peeked_some += 1;
        }
        assert!(peeked_some > 0);
    }

    #[test]
    fn ties_are_fifo_and_time_ordered() {
        let mut q = EventQueue::new();
        for i in 0..100u32 {
            q.schedule(u64::from(i % 3) * 10, i).expect("schedule");
        }
        let mut last = (0u64, None::<u32>);
        let mut n = 0;
        while let Some((t, v)) = q.pop() {
            assert!(t >= last.0);
            if t == last.0 {
                if let Some(prev) = last.1 {
                    assert!(v > prev, "tie at {t} not FIFO: {prev} then {v}");
                }
            }
            last = (t, Some(v));
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn cancel_skips_and_slot_reuse_is_safe() {
        let mut q = EventQueue::new();
        let a = q.schedule(5, "a").expect("a");
        let _b = q.schedule(6, "b").expect("b");
        assert_eq!(q.cancel(a), Some("a"));
        assert_eq!(q.cancel(a), None);
        // Reuses a's slot; the stale key for `a` must not deliver `c` at t=5.
        let _c = q.schedule(7, "c").expect("c");
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some((6, "b")));
        assert_eq!(q.pop(), Some((7, "c")));
        assert_eq!(q.pop(), None);
        assert!(q.schedule(1, "late").is_err());
    }

    proptest::proptest! {
        /// Random schedules, pops and cancels agree with a sorted reference model.
        #[test]
        /// Delays mix one bucket (< 2 µs), many buckets (< 4 ms), and far beyond the
        /// ring (< 17 s), so keys wrap round the ring and pass through the overflow heap.
        fn matches_reference_model(ops in proptest::collection::vec(
            (0u8..4, proptest::prop_oneof![0u64..2_000, 0u64..(1 << 22), 0u64..(1 << 34)], 0usize..64),
            1..400,
        )) {
            let mut q = EventQueue::new();
            let mut reference: std::collections::BTreeMap<(u64, u64), u32> = Default::default();
            let mut ids = Vec::new();
            let mut seq = 0u64;
            for (op, dt, pick) in ops {
                match op {
                    0 | 1 => {
                        let at = q.now() + dt;
                        let id = q.schedule(at, seq as u32).expect("schedule");
                        reference.insert((at, seq), seq as u32);
                        ids.push((id, at, seq));
                        seq += 1;
                    }
                    2 => {
                        let got = q.pop();
                        let want = reference.pop_first().map(|((t, _), v)| (t, v));
                        proptest::prop_assert_eq!(got, want);
                    }
                    _ => {
                        if !ids.is_empty() {
                            let (id, at, s) = ids[pick % ids.len()];
                            let got = q.cancel(id);
                            let want = reference.remove(&(at, s));
                            proptest::prop_assert_eq!(got, want);
                        }
                    }
                }
                proptest::prop_assert_eq!(q.len(), reference.len());
            }
            while let Some(got) = q.pop() {
                let want = reference.pop_first().map(|((t, _), v)| (t, v));
                proptest::prop_assert_eq!(Some(got), want);
            }
            proptest::prop_assert!(reference.is_empty());
        }

        /// An event kept outside the queue under a reserved place comes out in the
        /// order it would have if scheduled (ties included), through ring wrap-round,
        /// overflow and cancelled keys; events scheduled after an early reserved one
        /// (at or after its time) still land in order.
        #[test]
        fn reserved_matches_scheduled(ops in proptest::collection::vec(
            (0u8..5, proptest::prop_oneof![0u64..2_000, 0u64..(1 << 22), 0u64..(1 << 34)], 0usize..64),
            1..400,
        )) {
            let mut q = EventQueue::new();
            let mut reference: std::collections::BTreeMap<(u64, u64), u32> = Default::default();
            let mut ids = Vec::new();
            let mut reserved: Option<(Reserved, u32)> = None;
            let mut seq = 0u64;
            let pop = |q: &mut EventQueue<u32>,
                           reference: &mut std::collections::BTreeMap<(u64, u64), u32>,
                           reserved: &mut Option<(Reserved, u32)>| {
                let got = match *reserved {
                    Some((r, v)) => match q.pop_before(r) {
                        Some(e) => Some(e),
                        None => {
                            *reserved = None;
                            assert_eq!(q.now(), r.time());
                            Some((r.time(), v))
                        }
                    },
                    None => q.pop(),
                };
                let want = reference.pop_first().map(|((t, _), v)| (t, v));
                (got, want)
            };
            for (op, dt, pick) in ops {
                match op {
                    0 | 1 => {
                        let at = q.now() + dt;
                        let id = q.schedule(at, seq as u32).expect("schedule");
                        reference.insert((at, seq), seq as u32);
                        ids.push((id, at, seq));
                        seq += 1;
                    }
                    2 => {
                        let (got, want) = pop(&mut q, &mut reference, &mut reserved);
                        proptest::prop_assert_eq!(got, want);
                    }
                    3 => {
                        if reserved.is_none() {
                            let at = q.now() + dt;
                            let r = q.reserve(at).expect("reserve");
                            reference.insert((at, seq), seq as u32);
                            reserved = Some((r, seq as u32));
                            seq += 1;
                        }
                    }
                    _ => {
                        if !ids.is_empty() {
                            let (id, at, s) = ids[pick % ids.len()];
                            let got = q.cancel(id);
                            let want = reference.remove(&(at, s));
                            proptest::prop_assert_eq!(got, want);
                        }
                    }
                }
            }
            while !reference.is_empty() {
                let (got, want) = pop(&mut q, &mut reference, &mut reserved);
                proptest::prop_assert_eq!(got, want);
            }
            proptest::prop_assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn drained_by_cancels_then_scheduled_again() {
        let mut q = EventQueue::new();
        q.schedule(1, "a").expect("a");
        let far = q.schedule(5 * NS_PER_S, "far").expect("far");
        assert_eq!(q.pop(), Some((1, "a")));
        assert_eq!(q.cancel(far), Some("far"));
        // The pop walks to the cancelled key's bucket, 5 s ahead of now, and finds nothing.
        assert_eq!(q.pop(), None);
        q.schedule(2, "b").expect("b");
        q.schedule(3 * NS_PER_S, "c").expect("c");
        q.schedule(3, "d").expect("d");
        assert_eq!(q.pop(), Some((2, "b")));
        assert_eq!(q.pop(), Some((3, "d")));
        assert_eq!(q.pop(), Some((3 * NS_PER_S, "c")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn limit_is_enforced() {
        let mut q = EventQueue::with_limit(2);
        q.schedule(1, ()).expect("1");
        q.schedule(1, ()).expect("2");
        assert!(matches!(
            q.schedule(1, ()),
            Err(KernelError::TooManyPending { limit: 2 })
        ));
    }
}

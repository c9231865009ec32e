//! A cache prefetch hint, the workspace's one use of `unsafe`.
//!
//! The simulator's hot paths know, some time before they need it, which cold memory they
//! will read: the state entries of a block's keys, the client transactions a block
//! finishes, the patients a workload draws next. A plain load of that memory (the earlier
//! way of warming it) blocks retirement until the data arrives, so it only overlaps misses
//! with each other; a prefetch retires at once, so the miss also overlaps the useful work
//! done until the data is used. It never changes what the program computes: a prefetch
//! reads nothing into a register, cannot fault, and is dropped by the CPU when it is busy.

// `_mm_prefetch` is an `unsafe fn` only because it is declared with
// `#[target_feature(enable = "sse")]`; the workspace denies `unsafe_code` everywhere
// else.
#![allow(unsafe_code)]

/// Start loading the cache line that holds `*r` into every cache level, without waiting
/// for it (a no-op on targets other than x86-64). A pure performance hint.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    prefetch_byte((r as *const T).cast::<u8>());
}

/// [`prefetch`] every cache line that `*r` overlaps (a value may straddle two lines).
#[inline(always)]
pub fn prefetch_lines<T: ?Sized>(r: &T) {
    prefetch_span((r as *const T).cast::<u8>(), std::mem::size_of_val(r));
}

/// [`prefetch_lines`] of the place `elems_ahead` elements after `*r` in memory, as if
/// `r` pointed into an array of `T` (the next slots of a ring buffer about to be written,
/// say). The place need not hold a `T`, nor lie inside any allocation: the address is
/// only computed (never dereferenced), and the CPU drops a prefetch it cannot serve.
#[inline(always)]
pub fn prefetch_ahead<T>(r: &T, elems_ahead: usize) {
    let size = std::mem::size_of::<T>();
    let start = (r as *const T)
        .cast::<u8>()
        .wrapping_add(elems_ahead.wrapping_mul(size));
    prefetch_span(start, size);
}

/// [`prefetch`] every line of the `size` bytes from `start` (any address).
#[inline(always)]
fn prefetch_span(start: *const u8, size: usize) {
    const LINE_BYTES: usize = 64;
    let mut off = 0;
    while off < size {
        prefetch_byte(start.wrapping_add(off));
        off += LINE_BYTES;
    }
    // The last byte, whose line the steps above miss when the span is not line-aligned.
    if size > 1 {
        prefetch_byte(start.wrapping_add(size - 1));
    }
}

/// Start loading the line holding byte `p` (any address: a prefetch does not fault).
#[inline(always)]
fn prefetch_byte(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` requires the `sse` target feature, which is part of the
    // x86-64 baseline (every x86-64 CPU has it, and rustc enables it for every x86-64
    // target). A prefetch neither dereferences its address architecturally nor faults,
    // whatever the address, so no memory-safety condition applies.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::{prefetch, prefetch_ahead, prefetch_lines};

    /// A prefetch is a hint: prefetching any element, the first and last of a large
    /// buffer included, leaves every value as it was.
    #[test]
    fn prefetch_changes_nothing() {
        let v: Vec<u64> = (0..100_000).map(|i| i * 3).collect();
        for i in (0..v.len()).step_by(97).chain([v.len() - 1]) {
            prefetch(&v[i]);
        }
        prefetch_lines(&v[..]);
        prefetch_lines(&[0u8; 0]);
        prefetch_lines(&(1u8, [2u64; 40]));
        // Past the end of the buffer, and far outside it: still only a hint.
        prefetch_ahead(&v[v.len() - 1], 8);
        prefetch_ahead(&v[0], usize::MAX / 2);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    }
}

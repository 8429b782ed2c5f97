//! Live heap bytes, for sizing measurements (`benches/held_calls.py`): the binary built with
//! the `heap-stats` feature counts every allocation it makes and exports the total as
//! `trunkgate_heap_bytes`. RSS shows what the process holds from the system; this shows what
//! the code still uses, so the two together tell live data from allocator slack. Off by
//! default: each allocation then costs two atomic adds.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Bytes allocated and not yet freed, when the process counts them.
pub fn live_bytes() -> Option<usize> {
    COUNTING
        .load(Ordering::Relaxed)
        .then(|| LIVE.load(Ordering::Relaxed))
}

/// A global allocator that counts the bytes `A` hands out.
pub struct Counting<A>(pub A);

// SAFETY: every call is passed to `A` unchanged; only a counter is updated beside it.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            COUNTING.store(true, Ordering::Relaxed);
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            COUNTING.store(true, Ordering::Relaxed);
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { self.0.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

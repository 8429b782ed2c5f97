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

/// The process's allocator with the `mimalloc` feature: mimalloc, with each
/// [`crate::zone::Zone`] served from a mimalloc heap of its own (calls and short-lived work
/// each have one; the process's own objects use the default heap), so the pages a burst of
/// transactions or of calls used empty together and go back to the system instead of
/// staying resident under the few objects that outlive them.
#[cfg(feature = "mimalloc")]
pub struct Zoned;

#[cfg(feature = "mimalloc")]
mod zoned {
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;
    use std::ptr::null_mut;
    use std::sync::atomic::{AtomicPtr, Ordering};

    use libmimalloc_sys as mi;

    use crate::zone::Zone;

    static CALLS_HEAP: AtomicPtr<mi::mi_heap_t> = AtomicPtr::new(null_mut());
    static SHORT_HEAP: AtomicPtr<mi::mi_heap_t> = AtomicPtr::new(null_mut());

    /// The heap in `slot`, made on first use (mimalloc 3's heaps serve any thread). None if
    /// mimalloc could not make one: the default heap serves then.
    fn heap(slot: &AtomicPtr<mi::mi_heap_t>) -> Option<*mut mi::mi_heap_t> {
        let h = slot.load(Ordering::Acquire);
        if !h.is_null() {
            return Some(h);
        }
        // SAFETY: mimalloc's own constructor; it allocates through mimalloc, not through
        // this allocator, so it cannot recurse.
        let new = unsafe { mi::mi_heap_new() };
        if new.is_null() {
            return None;
        }
        match slot.compare_exchange(null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(new),
            Err(first) => {
                // Another thread made one first: ours is empty, give it back.
                // SAFETY: `new` came from mi_heap_new and holds no blocks.
                unsafe { mi::mi_heap_delete(new) };
                Some(first)
            }
        }
    }

    fn zone() -> Option<*mut mi::mi_heap_t> {
        match crate::zone::current() {
            Zone::Process => None,
            Zone::Calls => heap(&CALLS_HEAP),
            Zone::ShortLived => heap(&SHORT_HEAP),
        }
    }

    // SAFETY: every block comes from mimalloc (one of its heaps) with the layout's size and
    // alignment, and mi_free/mi_realloc accept a block of any heap.
    unsafe impl GlobalAlloc for super::Zoned {
        #[inline]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: sizes and alignments as mimalloc documents them.
            unsafe {
                match zone() {
                    Some(h) => mi::mi_heap_malloc_aligned(h, layout.size(), layout.align()),
                    None => mi::mi_malloc_aligned(layout.size(), layout.align()),
                }
            }
            .cast()
        }

        #[inline]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as in alloc.
            unsafe {
                match zone() {
                    Some(h) => mi::mi_heap_zalloc_aligned(h, layout.size(), layout.align()),
                    None => mi::mi_zalloc_aligned(layout.size(), layout.align()),
                }
            }
            .cast()
        }

        #[inline]
        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: `ptr` came from one of the heaps.
            unsafe { mi::mi_free(ptr.cast::<c_void>()) }
        }

        #[inline]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = ptr.cast::<c_void>();
            // SAFETY: `ptr` came from one of the heaps; a grown block lands in the zone
            // the code growing it runs in.
            unsafe {
                match zone() {
                    Some(h) => mi::mi_heap_realloc_aligned(h, p, new_size, layout.align()),
                    None => mi::mi_realloc_aligned(p, new_size, layout.align()),
                }
            }
            .cast()
        }
    }

    /// Return to the system what mimalloc holds free for this thread in every heap (see
    /// `Collector`). A heap not made yet is skipped, not made: collecting one makes this
    /// thread's part of it first.
    pub fn collect(thorough: bool) {
        // SAFETY: plain calls into mimalloc, from any thread.
        unsafe {
            mi::mi_collect(thorough);
            for slot in [&CALLS_HEAP, &SHORT_HEAP] {
                let h = slot.load(Ordering::Acquire);
                if !h.is_null() {
                    mi::mi_heap_collect(h, thorough);
                }
            }
        }
    }

    /// Make both zones' heaps, and this thread's part of each (made by its first
    /// allocation there), if not made yet.
    pub fn prepare() {
        for slot in [&CALLS_HEAP, &SHORT_HEAP] {
            if let Some(h) = heap(slot) {
                // SAFETY: a block of the heap, freed at once.
                unsafe { mi::mi_free(mi::mi_heap_malloc_aligned(h, 1, 1)) }
            }
        }
    }

    /// Only this thread's part of the default heap (the process zone's), thoroughly.
    pub fn collect_default() {
        // SAFETY: a plain call into mimalloc, from any thread.
        unsafe { mi::mi_collect(true) }
    }
}

/// Make the zones' heaps now, on the thread that allocates in them (the signalling
/// thread), before any call. They are the process's for as long as it runs: mimalloc's
/// descriptor of a heap takes 192 KiB of the default heap, zeroed, and each thread using a
/// heap has its part of it besides. Made by the first call instead, that fixed cost was
/// counted as the first burst's memory, and the first call waited for it. Nothing without
/// the `mimalloc` feature.
pub fn prepare_zones() {
    #[cfg(feature = "mimalloc")]
    zoned::prepare();
}

/// Give back what this thread's part of the allocator holds free: mimalloc keeps a few
/// empty pages per size class for each thread, and only the thread itself can free them.
/// A worker thread (the CDR or WAV writer) calls it when a burst of work has ended; it
/// allocates only in the process zone, so only the default heap is collected (collecting
/// the zones' heaps from it would make its part of each, for nothing). The signalling
/// thread has its [`Collector`]. Nothing without the `mimalloc` feature.
pub fn release_thread_pages() {
    #[cfg(feature = "mimalloc")]
    zoned::collect_default();
}

/// For a worker thread: tells when a burst of its work has ended, so it gives its free
/// pages back ([`release_thread_pages`]) once per burst, not on every idle round.
#[derive(Debug, Default)]
pub struct BurstEnd {
    busy: bool,
}

impl BurstEnd {
    /// After each round of the thread's loop: `working` is whether it had work this round.
    /// True on the first idle round after work; the thread releases its pages then.
    pub fn ended(&mut self, working: bool) -> bool {
        let ended = self.busy && !working;
        self.busy = working;
        ended
    }
}

/// When to give the allocator's free pages back to the system, once a second: freed pages
/// are purged after mimalloc's delay (1 s) only when it is asked, and a gateway whose calls
/// just ended may not allocate for a long time. Once the load (calls and transactions) has
/// fallen to half of its peak since the last thorough collect, the collect is forced: that
/// one also visits pages the thread filled, and frees what other threads (the CDR writer)
/// freed in them. One more comes each time the load falls to nothing, whatever it was:
/// the halving stops below [`Collector::BURST`], and the pages of a burst's last calls and
/// transactions, or of a few calls at a quiet hour, were otherwise kept until the next
/// burst (`benches/held_calls.py --warm 200`: 200 calls left 1.3 MiB resident).
#[derive(Debug, Default)]
pub struct Collector {
    peak: usize,
    /// There was load since the load was last nothing.
    busy: bool,
}

impl Collector {
    /// Below this peak a burst is not worth a thorough collect.
    const BURST: usize = 1000;

    /// Whether this second's collect should be thorough, for the current `load`.
    pub fn thorough(&mut self, load: usize) -> bool {
        self.peak = self.peak.max(load);
        if load > 0 {
            self.busy = true;
        } else if self.busy {
            self.busy = false;
            self.peak = 0;
            return true;
        }
        if self.peak >= Self::BURST && load * 2 <= self.peak {
            self.peak = load;
            return true;
        }
        false
    }

    /// This second's collect. With glibc's malloc (no `mimalloc` feature), the thorough
    /// one is `malloc_trim(0)`: it hands back every whole free page of every arena, the
    /// middle of the heap included, not only the top.
    pub fn tick(&mut self, load: usize) {
        let thorough = self.thorough(load);
        #[cfg(feature = "mimalloc")]
        zoned::collect(thorough);
        #[cfg(all(not(feature = "mimalloc"), target_env = "gnu"))]
        if thorough {
            // SAFETY: a plain call into glibc, safe from any thread at any time.
            unsafe { libc::malloc_trim(0) };
        }
        #[cfg(all(not(feature = "mimalloc"), not(target_env = "gnu")))]
        let _ = thorough;
    }
}

#[cfg(test)]
mod tests {
    use super::{BurstEnd, Collector};

    #[test]
    fn a_burst_end_is_told_once_per_burst() {
        let mut b = BurstEnd::default();
        let rounds = [false, true, true, false, false, true, false];
        let told: Vec<bool> = rounds.iter().map(|&w| b.ended(w)).collect();
        assert_eq!(told, [false, false, false, true, false, false, true]);
    }

    #[test]
    fn a_thorough_collect_follows_each_burst_once() {
        let mut c = Collector::default();
        // A small load is collected once, when it has ended, and not again while idle.
        let small: Vec<bool> = [0, 3, 40, 2, 0, 0, 0].map(|l| c.thorough(l)).into();
        assert_eq!(small, [false, false, false, false, true, false, false]);
        // A burst of 20,000 calls that ends: one thorough collect when half is gone, one
        // more when half of the rest is gone, and none while idle after that.
        let mut seen = Vec::new();
        for load in (0..=20_000).rev().step_by(1000).chain([0; 5]) {
            if c.thorough(load) {
                seen.push(load);
            }
        }
        assert_eq!(seen, [10_000, 5_000, 2_000, 1_000, 0]);
        assert!(!(0..10).any(|_| c.thorough(0)));
        // A burst that ends in small steps: the halving stops once the peak is under
        // BURST (here at 700), and the load falling to nothing still gets its collect.
        let mut seen = Vec::new();
        for load in (0..=3_000).rev().step_by(100).chain([0; 5]) {
            if c.thorough(load) {
                seen.push(load);
            }
        }
        assert_eq!(seen, [1_500, 700, 0]);
    }
}

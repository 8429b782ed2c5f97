//! Allocation lifetimes, told to the process's allocator.
//!
//! A held call keeps ~2 KB for hours; each of its transactions keeps a few KB (the wire
//! form of what it may retransmit, its keys) for up to 32 s. Allocated side by side, a
//! ramp of calls leaves every allocator page holding a few call bytes among the holes its
//! ended transactions left, and the pages cannot go back to the system (benches/
//! held_calls.py: RSS per held call twice its live heap). Code that allocates what only a
//! transaction keeps runs inside [`short_lived`]; the allocator of the binary
//! (`src/ops/heap.rs`) serves those allocations from a heap of their own, whose pages empty
//! together. Without such an allocator the hint costs one thread-local write.

use std::cell::Cell;

thread_local! {
    static SHORT_LIVED: Cell<bool> = const { Cell::new(false) };
}

/// While alive, what this thread allocates is marked as living no longer than a
/// transaction. Dropping it (also when unwinding) restores the thread's previous zone.
#[must_use = "the zone ends when this guard is dropped"]
pub struct ShortLived {
    previous: bool,
    /// Thread state: the guard must end on the thread that entered it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ShortLived {
    pub fn enter() -> ShortLived {
        ShortLived {
            previous: SHORT_LIVED.try_with(|z| z.replace(true)).unwrap_or(false),
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for ShortLived {
    fn drop(&mut self) {
        let _ = SHORT_LIVED.try_with(|z| z.set(self.previous));
    }
}

/// Run `f` with what it allocates marked as living no longer than a transaction.
pub fn short_lived<R>(f: impl FnOnce() -> R) -> R {
    let _zone = ShortLived::enter();
    f()
}

/// Whether this thread is allocating for a transaction now. Safe to call from an allocator:
/// it never allocates, and answers `false` while the thread is being torn down.
#[inline]
pub fn is_short_lived() -> bool {
    SHORT_LIVED.try_with(Cell::get).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_is_scoped_and_nests() {
        assert!(!is_short_lived());
        let inner = short_lived(|| {
            let nested = short_lived(is_short_lived);
            (nested, is_short_lived())
        });
        assert_eq!(inner, (true, true));
        assert!(!is_short_lived());
        // An unwinding closure does not leave the thread marked.
        let r = std::panic::catch_unwind(|| short_lived(|| panic!("inside")));
        assert!(r.is_err());
        assert!(!is_short_lived());
    }
}

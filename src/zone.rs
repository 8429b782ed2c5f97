//! Allocation lifetimes, told to the process's allocator.
//!
//! A held call keeps ~2 KB for hours; each of its transactions keeps a few KB (the wire
//! form of what it may retransmit, its keys) for up to 32 s; the shell's own objects (queue
//! blocks, metric handles, buffers sized by the busiest moment) live as long as the
//! process. Allocated side by side, a ramp of calls leaves every allocator page holding a
//! few long-lived bytes among the holes the others left, and the pages cannot go back to
//! the system (benches/held_calls.py: RSS per held call twice its live heap; RSS after the
//! calls ended well over idle). So code says which of the three it is allocating for: the
//! transaction layer and each datagram's parse run in [`Zone::ShortLived`], the call layer
//! in [`Zone::Calls`], everything else in [`Zone::Process`]. The allocator of the binary
//! (`src/ops/heap.rs`) serves each zone from a heap of its own, whose pages empty together.
//! Without such an allocator the hint costs one thread-local write.

use std::cell::Cell;

/// What the allocations made now are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The process's own objects (the default).
    Process,
    /// Calls: what a call keeps while it lasts, and what the call layer makes on the way.
    Calls,
    /// Transactions and parsed datagrams: seconds, at most 32 s.
    ShortLived,
}

thread_local! {
    static ZONE: Cell<Zone> = const { Cell::new(Zone::Process) };
}

/// While alive, what this thread allocates is in its zone. Dropping it (also when
/// unwinding) restores the thread's previous zone.
#[must_use = "the zone ends when this guard is dropped"]
pub struct Entered {
    previous: Zone,
    /// Thread state: the guard must end on the thread that entered it.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Enter `zone` until the guard is dropped.
pub fn enter(zone: Zone) -> Entered {
    Entered {
        previous: ZONE.try_with(|z| z.replace(zone)).unwrap_or(Zone::Process),
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = ZONE.try_with(|z| z.set(self.previous));
    }
}

/// Run `f` with what it allocates marked as living no longer than a transaction.
pub fn short_lived<R>(f: impl FnOnce() -> R) -> R {
    let _zone = enter(Zone::ShortLived);
    f()
}

/// The zone this thread allocates in now. Safe to call from an allocator: it never
/// allocates, and answers [`Zone::Process`] while the thread is being torn down.
#[inline]
pub fn current() -> Zone {
    ZONE.try_with(Cell::get).unwrap_or(Zone::Process)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_scoped_and_nest() {
        assert_eq!(current(), Zone::Process);
        let inner = {
            let _calls = enter(Zone::Calls);
            let nested = short_lived(current);
            (nested, current())
        };
        assert_eq!(inner, (Zone::ShortLived, Zone::Calls));
        assert_eq!(current(), Zone::Process);
        // An unwinding closure does not leave the thread marked.
        let r = std::panic::catch_unwind(|| short_lived(|| panic!("inside")));
        assert!(r.is_err());
        assert_eq!(current(), Zone::Process);
    }
}

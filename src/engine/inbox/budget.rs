//! The room of the core's queues in bytes. The urgent one holds at most `URGENT` events;
//! counted in events alone, 64 KiB datagrams carrying a check of ours (a peer's, replayed
//! by whoever holds one) could make that a gigabyte, all of it read before any new call.
//! The new-work one likewise.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::super::Event;

/// Bytes of messages the urgent queue holds before a datagram is dropped (counted
/// `queue_full`): some 40,000 ordinary answers and in-dialog requests.
pub(super) const URGENT_BYTES: usize = 64 << 20;

/// Bytes of messages the new-work queue holds before one more is dropped (counted
/// `queue_full`): its 4,096 INVITEs of 4 KB each. Counted in events alone, 64 KiB datagrams
/// would make it a quarter of a gigabyte.
pub(super) const FRESH_BYTES: usize = 16 << 20;

/// The bytes an event holds while it is queued.
pub(super) fn size(ev: &Event) -> usize {
    match ev {
        Event::Message { held, .. } => *held,
        Event::Unparseable { raw, .. } => raw.len(),
        Event::TcpUp { .. } | Event::TcpDown { .. } => 0,
    }
}

/// Bytes queued, shared by the transports (who add) and the core task (who gives back).
pub(crate) struct Budget {
    held: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Budget {
        Budget {
            held: AtomicUsize::new(0),
            limit,
        }
    }

    /// Take room for `n` bytes if there is some (always for nothing).
    pub(super) fn take(&self, n: usize) -> bool {
        let before = self.held.fetch_add(n, Ordering::AcqRel);
        if n > 0 && before.saturating_add(n) > self.limit {
            self.give_back(n);
            return false;
        }
        true
    }

    /// Take room for `n` bytes whatever is held: a connection's message waits for room in
    /// events instead (its peer is slowed down), and is counted so that datagrams give way.
    pub(super) fn charge(&self, n: usize) {
        self.held.fetch_add(n, Ordering::AcqRel);
    }

    /// `n` bytes left the queue.
    pub(super) fn give_back(&self, n: usize) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                Some(h.saturating_sub(n))
            });
    }

    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

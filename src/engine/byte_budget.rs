//! A count of bytes held against a limit, shared by the tasks that add to it and the one
//! that takes them off: the core's queues (`inbox`), the TCP writers' queues (`tcp`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held, against `max`; clones share the count.
#[derive(Debug, Clone)]
pub(in crate::engine) struct SharedBudget {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl SharedBudget {
    pub(in crate::engine) fn new(max: usize) -> Self {
        SharedBudget {
            used: Arc::default(),
            max,
        }
    }

    /// Take `len` bytes: false (and nothing taken) when that goes over. Nothing always
    /// fits, also past the limit ([`SharedBudget::take_up_to`]).
    pub(in crate::engine) fn take(&self, len: usize) -> bool {
        let before = self.used.fetch_add(len, Ordering::AcqRel);
        if len > 0 && before.saturating_add(len) > self.max {
            self.give(len);
            return false;
        }
        true
    }

    /// [`SharedBudget::take`] against `limit` instead of the budget's own (a higher one, for
    /// a sender that waits where others give way); anything fits when nothing is held.
    pub(in crate::engine) fn take_up_to(&self, len: usize, limit: usize) -> bool {
        let before = self.used.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before.saturating_add(len) > limit {
            self.give(len);
            return false;
        }
        true
    }

    /// `len` bytes taken or charged are given back.
    pub(in crate::engine) fn give(&self, len: usize) {
        let _ = (self.used).fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
            Some(h.saturating_sub(len))
        });
    }

    /// Bytes held now.
    pub(in crate::engine) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

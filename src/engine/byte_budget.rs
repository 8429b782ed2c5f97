//! A count of bytes held against a limit, shared by the tasks that add to it and the one
//! that takes them off: the core's queues (`inbox`), the TCP writers' queues (`tcp`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held, against `max`; clones share the count. A budget may be part of a larger one
/// ([`SharedBudget::within`]): what it takes is taken from both, or from neither.
#[derive(Debug, Clone)]
pub(in crate::engine) struct SharedBudget {
    used: Arc<AtomicUsize>,
    max: usize,
    within: Option<Box<SharedBudget>>,
}

impl SharedBudget {
    pub(in crate::engine) fn new(max: usize) -> Self {
        SharedBudget {
            used: Arc::default(),
            max,
            within: None,
        }
    }

    /// A budget of `max` of its own, drawn from `larger` too (one source's bytes, within
    /// what its peer's sources may hold together).
    pub(in crate::engine) fn within(max: usize, larger: &SharedBudget) -> Self {
        SharedBudget {
            within: Some(Box::new(larger.clone())),
            ..SharedBudget::new(max)
        }
    }

    /// Take `len` bytes: false (and nothing taken) when that goes over. Nothing always
    /// fits, also past the limit ([`SharedBudget::take_up_to`]).
    pub(in crate::engine) fn take(&self, len: usize) -> bool {
        self.take_if(len, |before| {
            len == 0 || before.saturating_add(len) <= self.max
        })
    }

    /// [`SharedBudget::take`] against `limit` instead of the budget's own (a higher one, for
    /// a sender that waits where others give way); anything fits when nothing is held.
    pub(in crate::engine) fn take_up_to(&self, len: usize, limit: usize) -> bool {
        self.take_if(len, |before| {
            before == 0 || before.saturating_add(len) <= limit
        })
    }

    /// Take `len` when `fits` what was held before, and the larger budget takes it too.
    fn take_if(&self, len: usize, fits: impl Fn(usize) -> bool) -> bool {
        let before = self.used.fetch_add(len, Ordering::AcqRel);
        if !fits(before) {
            self.release(len);
            return false;
        }
        if let Some(larger) = &self.within
            && !larger.take(len)
        {
            self.release(len);
            return false;
        }
        true
    }

    /// `len` bytes taken or charged are given back.
    pub(in crate::engine) fn give(&self, len: usize) {
        self.release(len);
        if let Some(larger) = &self.within {
            larger.give(len);
        }
    }

    /// `len` bytes given back here alone.
    fn release(&self, len: usize) {
        let _ = (self.used).fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
            Some(h.saturating_sub(len))
        });
    }

    /// Whether another handle than this one still shares the count (a budget a smaller one
    /// is drawn from is kept while that one is).
    pub(in crate::engine) fn is_shared(&self) -> bool {
        Arc::strong_count(&self.used) > 1
    }

    /// Bytes held now.
    pub(in crate::engine) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

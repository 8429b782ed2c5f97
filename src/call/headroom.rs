//! The room in the server-transaction table kept for the calls up, shared out per call:
//! while the table is past its bound ([`super::incoming::MAX_SERVER_TRANSACTIONS`]), each
//! call may open [`PER_CALL_HEADROOM`] transactions per [`HEADROOM_WINDOW`] in that room.
//! Counted per window, not per live transaction: a transaction let in is gone one to two
//! windows later (its answer may take Timer F, then Timer J keeps it), so a call holds about
//! three times the share at most, and no count has to follow each transaction to its end.

use std::collections::HashMap;
use std::time::Instant;

use super::CallRef;

/// While the table is past its bound, one call may open this many transactions in the room
/// kept for the calls up, per [`HEADROOM_WINDOW`]: one call's peer (or a flood in its
/// dialog's name) cannot take that room from the others. A call's own requests in that
/// time are far fewer, DTMF sent by INFO included.
pub(super) const PER_CALL_HEADROOM: u16 = 32;
/// How long a transaction lets in lasts at most, about: a non-INVITE's Timer J, an INVITE's
/// Timer L (32 s each).
pub(super) const HEADROOM_WINDOW: std::time::Duration = std::time::Duration::from_secs(32);
/// Whatever room the table has, one call's requests may open this many transactions per
/// [`HEADROOM_WINDOW`] (8 a second on average: DTMF by INFO, a fast IVR's included, is
/// far fewer). A peer flooding its own dialog (OPTIONS answered here, MESSAGE refused, INFO
/// past the relay's pace), each request kept for Timer J with an answer as long as its
/// headers, would otherwise fill the table alone, and every peer's new calls got 503.
pub(super) const PER_CALL_ALWAYS: u16 = 256;

/// Each call's window: when it began, and what the call took in it (the room past the
/// bound's: empty while the table is below its bound).
#[derive(Debug)]
pub(super) struct Headroom {
    taken: HashMap<CallRef, (Instant, u16)>,
    /// What one call may take per window.
    per_window: u16,
}

impl Default for Headroom {
    fn default() -> Self {
        Headroom::with(PER_CALL_HEADROOM)
    }
}

impl Headroom {
    /// Shares of `per_window` transactions per call and window.
    pub fn with(per_window: u16) -> Self {
        Headroom {
            taken: HashMap::new(),
            per_window,
        }
    }

    /// Whether call `r` may open one more transaction in the room at `now`; counted if so.
    pub fn take(&mut self, r: CallRef, now: Instant) -> bool {
        let (since, used) = self.taken.entry(r).or_insert((now, 0));
        if now.saturating_duration_since(*since) >= HEADROOM_WINDOW {
            (*since, *used) = (now, 0);
        }
        if *used >= self.per_window {
            return false;
        }
        *used += 1;
        true
    }

    /// Call `r` has ended.
    pub fn forget(&mut self, r: CallRef) {
        if self.taken.remove(&r).is_some() {
            crate::maps::shrink_if_sparse(&mut self.taken);
        }
    }

    /// The table is below its bound again: every call starts afresh next time.
    pub fn forget_all(&mut self) {
        if !self.taken.is_empty() {
            self.taken = HashMap::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_call_has_its_share_per_window() {
        let t0 = Instant::now();
        let mut h = Headroom::default();
        let taken = (0..100).filter(|_| h.take(1, t0)).count();
        assert_eq!(taken, usize::from(PER_CALL_HEADROOM));
        // Another call has its own share.
        assert!(h.take(2, t0));
        // The next window gives the first call its share again.
        assert!(!h.take(1, t0 + HEADROOM_WINDOW - Duration::from_millis(1)));
        assert!(h.take(1, t0 + HEADROOM_WINDOW));
        h.forget(1);
        assert!(h.take(1, t0));
        h.forget_all();
        assert!(h.taken.is_empty());
    }
}

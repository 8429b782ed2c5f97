//! A removal (`Expires: 0`) that a reload asked for and that failed is tried again: a
//! registrar that did not answer, or answered 408 or 5xx, would otherwise keep the binding
//! of a peer the operator dropped until it expires (up to a day), drawing the trunk's calls
//! to a gateway that refuses them. A stop's removal goes once: the process ends.

use std::time::{Duration, Instant};

use super::outcome::backoff;
use super::{MAX_RETRY_AFTER, RegEvent, Registration, State, later};

/// Removals sent for one binding at most, the first included.
pub const REMOVAL_TRIES: u8 = 3;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Removal {
    /// A reload's removal: it may be tried again.
    pub(super) retries: bool,
    /// Removals sent so far.
    pub(super) tries: u8,
    /// Waiting to send the next one.
    pub(super) again: bool,
    /// A try failed since the last [`Registration::take_removal_tried`]: it may have
    /// reached the registrar all the same.
    pub(super) tried: bool,
}

impl Registration {
    /// Whether it waits to send its removal again (neither registered nor kept).
    pub fn removes_later(&self) -> bool {
        self.removal.again
    }

    /// Whether a try of its removal ended (failed, another to come) since last asked: it
    /// may have removed a binding of the same contact that another registration keeps.
    pub fn take_removal_tried(&mut self) -> bool {
        std::mem::take(&mut self.removal.tried)
    }

    /// Whether it is removing its binding, now or after a failed try.
    pub fn is_removing(&self) -> bool {
        self.is_leaving() || self.removal.again
    }

    /// The removal out failed: `retryable` when unanswered, or answered 408 or 5xx (a
    /// registrar that refused it outright, or a challenge we could not answer, would refuse
    /// it again). Tried again after the back-off (or the registrar's `Retry-After`) while the
    /// registrar may still hold the binding, up to [`REMOVAL_TRIES`] in all; else it ends.
    pub(super) fn removal_failed(
        &mut self,
        now: Instant,
        reason: String,
        retry_after: Option<Duration>,
        retryable: bool,
    ) {
        let wait = backoff(u32::from(self.removal.tries));
        let wait = retry_after.map_or(wait, |r| r.min(MAX_RETRY_AFTER).max(wait));
        let at = later(now, wait);
        let held = self.bound_until.is_some_and(|until| at < until);
        if retryable && self.removal.retries && self.removal.tries < REMOVAL_TRIES && held {
            self.failing = true;
            self.removal.again = true;
            self.removal.tried = true;
            self.state = State::Waiting { at };
            self.event(RegEvent::Failed {
                reason: format!("removing the binding: {reason}"),
                retry_in: wait,
            });
            return;
        }
        self.bound_until = None;
        self.removal.again = false;
        self.state = State::Done;
        self.event(RegEvent::Unregistered { ok: false });
    }
}

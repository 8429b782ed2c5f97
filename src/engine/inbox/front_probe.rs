//! The SIP front's own OPTIONS (its dispatcher's probe of this instance, which carries no
//! `X-Trunkgate-Source`: it is nobody's request but the front's) is accepted work, served
//! ahead of new calls. Queued with them, it waited behind a burst of INVITEs, was dropped
//! with them once it had waited `overload_drop_ms`, and the front, which takes an instance
//! out at its first unanswered probe, took every instance out at once under a load they
//! all shared (a hash of the Call-ID spreads calls evenly), answering every call and every
//! carrier's keepalive 503 itself until the next probes. Anyone can send from the front's
//! address over UDP, so only a few a second go ahead; the rest wait with new work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::Inbox;
use crate::sip::{Hdr, Message, Method, Target};

/// How many of the front's probes go ahead of new work in a second: its dispatcher probes
/// each instance once a second (`ds_ping_interval`), a few fronts with room to spare.
const AHEAD_PER_SECOND: u64 = 16;

/// The probes let ahead this second, as `second << 16 | count`.
pub(super) struct FrontProbes {
    start: Instant,
    slot: AtomicU64,
}

impl FrontProbes {
    pub(super) fn new(start: Instant) -> Self {
        FrontProbes {
            start,
            slot: AtomicU64::new(0),
        }
    }

    /// Whether one more may go ahead at `now` (counted when so). A race lost to another
    /// reader says no: that one waits with new work, as before.
    fn take(&self, now: Instant) -> bool {
        let second = now.saturating_duration_since(self.start).as_secs() + 1;
        let cur = self.slot.load(Ordering::Relaxed);
        let (at, n) = (cur >> 16, cur & 0xffff);
        let next = match at == second {
            true if n >= AHEAD_PER_SECOND => return false,
            true => cur + 1,
            false => second << 16 | 1,
        };
        (self.slot)
            .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

impl Inbox {
    /// Whether `msg` from `source` is the front's own probe, to go ahead of new work now.
    pub(super) fn fronts_probe(&self, msg: &Message, source: Target) -> bool {
        let Message::Request(r) = msg else {
            return false;
        };
        r.method() == Method::Options
            && r.to_tag().is_none()
            && !r.has_header(&Hdr::named(crate::call::SOURCE_HEADER))
            && self.config.load().is_front(source)
            && self.front_probes.take(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_few_probes_a_second_go_ahead() {
        let start = Instant::now();
        let p = FrontProbes::new(start);
        let ahead = (0..40).filter(|_| p.take(start)).count();
        assert_eq!(ahead as u64, AHEAD_PER_SECOND);
        assert!(p.take(start + Duration::from_secs(1)), "a new second");
    }
}

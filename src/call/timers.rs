//! A call's own timers: a fixed table, one slot per kind (quinn's per-connection timer
//! table). The router files each call under its earliest deadline; nothing else arms or
//! clears anything.

use std::time::Instant;

use super::Side;

/// The timers a call arms itself (transaction timers live in `txn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallTimer {
    /// The callee has not answered within the ring timeout.
    Ring,
    /// Retransmit our 2xx on this side until its ACK arrives (RFC 3261 §13.3.1.4).
    Retransmit2xx(Side),
    /// No ACK for our 2xx within 64·T1.
    AckTimeout(Side),
    /// Retransmit our reliable provisional to the caller until its PRACK (RFC 3262 §3).
    Rel1xx,
    /// Safety net: a call still cleaning up after this long is dropped.
    Linger,
    /// The call has lasted its peers' `[limits] max_call_duration_s`.
    MaxDuration,
    /// Time for the gateway, refresher of this leg's session timer, to refresh it.
    SessionRefresh(Side),
    /// This leg's session was not refreshed in time (RFC 4028 §10): release the call.
    SessionExpiry(Side),
    /// 64·T1 after the answer nothing of the setup can come again (a crossing PRACK, a
    /// CANCEL, the caller's INVITE): what only the setup needed is dropped.
    Settle,
}

const COUNT: usize = 13;
const ALL: [CallTimer; COUNT] = [
    CallTimer::Ring,
    CallTimer::Retransmit2xx(Side::A),
    CallTimer::Retransmit2xx(Side::B),
    CallTimer::AckTimeout(Side::A),
    CallTimer::AckTimeout(Side::B),
    CallTimer::Rel1xx,
    CallTimer::Linger,
    CallTimer::MaxDuration,
    CallTimer::SessionRefresh(Side::A),
    CallTimer::SessionRefresh(Side::B),
    CallTimer::SessionExpiry(Side::A),
    CallTimer::SessionExpiry(Side::B),
    CallTimer::Settle,
];

impl CallTimer {
    fn slot(self) -> usize {
        match self {
            CallTimer::Ring => 0,
            CallTimer::Retransmit2xx(Side::A) => 1,
            CallTimer::Retransmit2xx(Side::B) => 2,
            CallTimer::AckTimeout(Side::A) => 3,
            CallTimer::AckTimeout(Side::B) => 4,
            CallTimer::Rel1xx => 5,
            CallTimer::Linger => 6,
            CallTimer::MaxDuration => 7,
            CallTimer::SessionRefresh(Side::A) => 8,
            CallTimer::SessionRefresh(Side::B) => 9,
            CallTimer::SessionExpiry(Side::A) => 10,
            CallTimer::SessionExpiry(Side::B) => 11,
            CallTimer::Settle => 12,
        }
    }
}

/// When each of a call's timers fires, if armed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTable([Option<Instant>; COUNT]);

impl TimerTable {
    /// Arm (or re-arm) `t`.
    pub fn set(&mut self, t: CallTimer, at: Instant) {
        self.0[t.slot()] = Some(at);
    }

    pub fn clear(&mut self, t: CallTimer) {
        self.0[t.slot()] = None;
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Disarm and return the earliest timer due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<CallTimer> {
        let t = ALL
            .iter()
            .filter_map(|t| self.0[t.slot()].filter(|at| *at <= now).map(|at| (at, *t)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, t)| t)?;
        self.clear(t);
        Some(t)
    }

    pub fn clear_all(&mut self) {
        self.0 = [None; COUNT];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_timers_come_out_earliest_first_and_once() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        t.set(CallTimer::Ring, t0 + Duration::from_secs(5));
        t.set(CallTimer::AckTimeout(Side::B), t0 + Duration::from_secs(3));
        t.set(CallTimer::Ring, t0 + Duration::from_secs(1));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(t.pop_due(later), Some(CallTimer::Ring));
        assert_eq!(t.pop_due(later), Some(CallTimer::AckTimeout(Side::B)));
        assert_eq!(t.pop_due(later), None);
        assert_eq!(t.next(), None);
    }
}

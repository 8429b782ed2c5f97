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
    /// A relayed INVITE's far leg said only 1xx for too long (Timer C), or did not answer
    /// our CANCEL of it in 64·T1: give it up (RFC 3261 §16.6 step 11, §9.1).
    RelayedInvite,
    /// The wait of one of our offers (after glare, a 491, or while an INVITE was under way)
    /// is over: it is made (RFC 3261 §14.1; `reoffer.rs`).
    Reoffer,
    /// The caller's PRACK whose offer is with the callee (in an UPDATE) has waited long
    /// enough: it is answered without one, well before the caller's PRACK transaction gives
    /// up (64·T1; see `prack_offer::PRACK_OFFER_WAIT_T1`).
    PrackOffer,
    /// The callee's INVITE has had no response at all for its profile's
    /// `[sip] invite_timeout_s`: the route's next peer is tried.
    InviteTimeout,
    /// Time to ask this leg's peer whether it still has the call (`probe.rs`).
    Probe(Side),
}

const COUNT: usize = 19;
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
    CallTimer::RelayedInvite,
    CallTimer::PrackOffer,
    CallTimer::InviteTimeout,
    CallTimer::Reoffer,
    CallTimer::Probe(Side::A),
    CallTimer::Probe(Side::B),
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
            CallTimer::RelayedInvite => 13,
            CallTimer::PrackOffer => 14,
            CallTimer::InviteTimeout => 15,
            CallTimer::Reoffer => 16,
            CallTimer::Probe(Side::A) => 17,
            CallTimer::Probe(Side::B) => 18,
        }
    }
}

/// When each of a call's timers fires, if armed: whole milliseconds after the call's start
/// (0: disarmed), rounded up so a timer never fires early. Four bytes a slot instead of an
/// `Option<Instant>`'s sixteen: every established call carries this table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTable {
    base: Instant,
    slots: [u32; COUNT],
}

impl TimerTable {
    /// A table for a call that started at `base` (no deadline of the call is before it).
    pub fn new(base: Instant) -> TimerTable {
        TimerTable {
            base,
            slots: [0; COUNT],
        }
    }

    /// Arm (or re-arm) `t`. A call older than the slots reach (49 days) moves the base up
    /// to its earliest deadline first: clamping instead would put every new deadline in
    /// the past, and a timer that re-arms itself (the 2xx retransmission) would fire for
    /// ever. A deadline before a base so moved (which may be ahead of now) moves it back
    /// down: clamped to the base, it would fire late (a 2xx retransmission 500 ms ahead
    /// set off until a probe 20 s ahead). Only a deadline more than 49 days after the
    /// call's earliest one fires early, at that limit.
    pub fn set(&mut self, t: CallTimer, at: Instant) {
        if at < self.base || Self::offset(self.base, at) > u128::from(u32::MAX) {
            self.rebase(at);
        }
        self.slots[t.slot()] = u32::try_from(Self::offset(self.base, at)).unwrap_or(u32::MAX);
    }

    /// A slot's value for `at`: whole milliseconds after `base`, rounded up, plus one.
    fn offset(base: Instant, at: Instant) -> u128 {
        let after = at.saturating_duration_since(base);
        after.as_millis() + u128::from(!after.subsec_nanos().is_multiple_of(1_000_000)) + 1
    }

    /// Move the base to the earliest of `at` and the armed deadlines, keeping them all.
    fn rebase(&mut self, at: Instant) {
        let armed = self.slots.map(|s| self.at(s));
        let base = armed.iter().flatten().copied().fold(at, Instant::min);
        self.base = base;
        for (slot, d) in self.slots.iter_mut().zip(armed) {
            if let Some(d) = d {
                *slot = u32::try_from(Self::offset(base, d)).unwrap_or(u32::MAX);
            }
        }
    }

    pub fn clear(&mut self, t: CallTimer) {
        self.slots[t.slot()] = 0;
    }

    fn at(&self, slot: u32) -> Option<Instant> {
        let ms = slot.checked_sub(1)?;
        self.base
            .checked_add(std::time::Duration::from_millis(u64::from(ms)))
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        let min = self.slots.iter().copied().filter(|s| *s != 0).min()?;
        self.at(min)
    }

    /// Disarm and return the earliest timer due at `now`.
    #[cfg(test)]
    pub fn pop_due(&mut self, now: Instant) -> Option<CallTimer> {
        self.pop_due_at(now).map(|(t, _)| t)
    }

    /// The earliest timer due at `now`, and when it was due.
    pub fn pop_due_at(&mut self, now: Instant) -> Option<(CallTimer, Instant)> {
        let (at, t) = ALL
            .iter()
            .filter_map(|t| {
                self.at(self.slots[t.slot()])
                    .filter(|at| *at <= now)
                    .map(|at| (at, *t))
            })
            .min_by_key(|(at, _)| *at)?;
        self.clear(t);
        Some((t, at))
    }

    pub fn clear_all(&mut self) {
        self.slots = [0; COUNT];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_call_older_than_the_slots_reach_keeps_its_timers_in_the_future() {
        let t0 = Instant::now();
        let day = Duration::from_secs(86_400);
        // Fifty days into a call: a 2xx retransmission 500 ms ahead is not due now (it was,
        // for ever, when the deadline was clamped to the 49-day limit).
        let mut t = TimerTable::new(t0);
        let now = t0 + 50 * day;
        t.set(
            CallTimer::Retransmit2xx(Side::A),
            now + Duration::from_millis(500),
        );
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.next(), Some(now + Duration::from_millis(500)));
        assert_eq!(
            t.pop_due(now + Duration::from_millis(500)),
            Some(CallTimer::Retransmit2xx(Side::A))
        );
        // A rebase keeps the timers already armed where they were.
        let mut t = TimerTable::new(t0);
        let expiry = t0 + 49 * day + Duration::from_secs(14 * 3600);
        t.set(CallTimer::SessionExpiry(Side::A), expiry);
        let late = t0 + 49 * day + Duration::from_secs(20 * 3600);
        t.set(CallTimer::Retransmit2xx(Side::B), late);
        assert_eq!(t.next(), Some(expiry));
        assert_eq!(t.pop_due(expiry), Some(CallTimer::SessionExpiry(Side::A)));
        assert_eq!(t.pop_due(late - Duration::from_millis(1)), None);
        assert_eq!(t.pop_due(late), Some(CallTimer::Retransmit2xx(Side::B)));
        // Rebased to a deadline 20 s ahead, a retransmission set for 500 ms ahead fires
        // then, not at the base.
        let mut t = TimerTable::new(t0);
        t.set(CallTimer::Probe(Side::B), now + Duration::from_secs(20));
        t.set(
            CallTimer::Retransmit2xx(Side::A),
            now + Duration::from_millis(500),
        );
        assert_eq!(t.next(), Some(now + Duration::from_millis(500)));
        assert_eq!(
            t.pop_due(now + Duration::from_millis(500)),
            Some(CallTimer::Retransmit2xx(Side::A))
        );
        assert_eq!(
            t.pop_due(now + Duration::from_secs(20)),
            Some(CallTimer::Probe(Side::B))
        );
    }

    #[test]
    fn due_timers_come_out_earliest_first_and_once() {
        let t0 = Instant::now();
        let mut t = TimerTable::new(t0);
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

    #[test]
    fn deadlines_round_up_to_the_millisecond_and_never_fire_early() {
        let t0 = Instant::now();
        let mut t = TimerTable::new(t0);
        let at = t0 + Duration::from_micros(1_500);
        t.set(CallTimer::Settle, at);
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(2)));
        assert_eq!(t.pop_due(at), None, "not before its millisecond");
        assert_eq!(
            t.pop_due(t0 + Duration::from_millis(2)),
            Some(CallTimer::Settle)
        );
        // Exactly on a millisecond: unchanged. At the base: armed, due at once.
        t.set(CallTimer::Ring, t0 + Duration::from_millis(7));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(7)));
        t.set(CallTimer::Linger, t0);
        assert_eq!(t.pop_due(t0), Some(CallTimer::Linger));
        // Before the base: due at once; far beyond u32 milliseconds: capped, still armed.
        t.set(
            CallTimer::Linger,
            t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0),
        );
        assert_eq!(t.pop_due(t0), Some(CallTimer::Linger));
        t.clear(CallTimer::Ring);
        t.set(
            CallTimer::MaxDuration,
            t0 + Duration::from_secs(100 * 86_400),
        );
        assert!(
            t.next()
                .is_some_and(|n| n > t0 + Duration::from_secs(49 * 86_400))
        );
    }
}

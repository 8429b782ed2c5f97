//! Copies of one signed datagram, as the socket's reader lets them through. A signed
//! datagram captured on the way is valid for its whole `ts` window (a minute, either side
//! of our clock), and anyone can send it again from any source: before, every copy passed
//! the reader's check and took a place in the bounded queue to the core, so one capture
//! sent in a loop crowded out the application servers' new REQUESTs. Copies of one
//! signature now pass on a retransmission schedule (at once, then 0.5, 1, 2, 4, 8 and 16 s
//! after the copy before: what an AS resending on RFC 3261's T1 doubling would send) and
//! are dropped between; so a capture costs the queue what its AS's own resends would.
//! Pure: the reader gives the time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::signature::MAX_SKEW_S;

/// The first gap between passed copies; it doubles after each.
const FIRST_GAP: Duration = Duration::from_millis(500);
/// Copies passed at most (the first and six resends), until the signature is forgotten.
const MAX_PASSES: u8 = 7;
/// How long a signature is kept: its `ts` window's whole width, past which no clock
/// reading takes it.
const HOLD: Duration = Duration::from_secs(2 * MAX_SKEW_S);

/// The signatures passed within [`HOLD`], at most [`Repeats::MAX`].
#[derive(Debug, Default)]
pub struct Repeats {
    /// (first passed, key) in the order first passed.
    order: VecDeque<(Instant, u64)>,
    /// key → (last passed, copies passed).
    seen: HashMap<u64, (Instant, u8)>,
}

impl Repeats {
    /// A minute of the highest REQUEST rate a gateway places (1,000 a second), and then
    /// some; past it the oldest is forgotten (its copies then pass anew, on the schedule).
    pub const MAX: usize = 65_536;

    /// Whether a copy of the datagram signed with `mac` passes at `now`.
    pub fn pass(&mut self, now: Instant, mac: &[u8; 32]) -> bool {
        while let Some(&(at, key)) = self.order.front()
            && (now.saturating_duration_since(at) >= HOLD || self.order.len() >= Self::MAX)
        {
            self.order.pop_front();
            self.seen.remove(&key);
        }
        crate::maps::shrink_if_sparse(&mut self.seen);
        // A MAC under a key nobody else has: its first bytes are as good a name as all of
        // them, and a quarter of the memory.
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        let key = u64::from_le_bytes(first);
        match self.seen.get_mut(&key) {
            None => {
                self.seen.insert(key, (now, 1));
                self.order.push_back((now, key));
                true
            }
            Some((last, passes)) => {
                let gap = FIRST_GAP * (1u32 << (*passes - 1).min(15));
                if *passes >= MAX_PASSES || now.saturating_duration_since(*last) < gap {
                    return false;
                }
                *last = now;
                *passes += 1;
                true
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> [u8; 32] {
        let mut m = [0u8; 32];
        m[..4].copy_from_slice(&n.to_le_bytes());
        m
    }

    /// A copy sent in a loop passes on the resend schedule only: seven copies in all over
    /// its window, whatever the loop's pace.
    #[test]
    fn a_replayed_signature_passes_on_the_resend_schedule() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let mut passed = Vec::new();
        // One copy every 10 ms for 40 s.
        for i in 0..4_000u64 {
            let now = t0 + Duration::from_millis(10 * i);
            if r.pass(now, &mac(1)) {
                passed.push(10 * i);
            }
        }
        assert_eq!(passed, [0, 500, 1_500, 3_500, 7_500, 15_500, 31_500]);
        // Another signature is its own.
        assert!(r.pass(t0 + Duration::from_secs(40), &mac(2)));
    }

    /// Past its window the signature is forgotten (no clock takes it then).
    #[test]
    fn a_signature_is_forgotten_after_its_window() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        assert!(r.pass(t0, &mac(1)));
        assert!(!r.pass(t0 + Duration::from_millis(100), &mac(1)));
        assert!(r.pass(t0 + HOLD, &mac(1)));
        assert_eq!(r.len(), 1);
    }

    /// However many signatures pass, the table holds at most `MAX` (the oldest go).
    #[test]
    fn the_table_is_bounded() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        for n in 0..(Repeats::MAX as u32 + 100) {
            assert!(r.pass(t0, &mac(n)));
        }
        assert_eq!(r.len(), Repeats::MAX);
        // The oldest was forgotten: a copy of it passes anew; a recent one does not.
        assert!(r.pass(t0, &mac(0)));
        assert!(!r.pass(t0, &mac(Repeats::MAX as u32 + 99)));
    }
}

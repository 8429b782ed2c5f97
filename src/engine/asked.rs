//! The addresses the gateway sent a request to lately. A response from a source no profile
//! knows is worth a parse only if we asked that source something: the transaction layer
//! takes a response only from the address its request went to, and a 2xx for no call
//! earns an ACK and a BYE. Without this a stranger's responses, one per spoofed address,
//! each cost a copy, a parse and a place on the queue, and an orphan 2xx in a victim's
//! name made us send two requests to the victim.
//!
//! Like the source guard it is a fixed table indexed by a keyed hash of the address, not a
//! map: sending to a million addresses allocates nothing. Two addresses that share a cell
//! share its deadline, so a stranger may get past it (to be dropped by the transaction
//! layer, as before); the key is random per process, so a sender cannot choose its cell.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Cells in the table: 4096 × 8 bytes.
const CELLS: usize = 4096;

/// How long after our last request an answer may still come on top of the longest ring: a
/// final response may follow a request by up to Timer B (32 s), and a 2xx is resent for
/// 64×T1 (32 s) after it was first sent.
const AFTER_RING: Duration = Duration::from_secs(64);

/// Timer C (RFC 3261 §16.6: more than 3 minutes): how long a relayed INVITE may wait for its
/// final answer after a provisional.
const TIMER_C: Duration = Duration::from_secs(181);

/// How long a request lets its destination answer under `cfg`: the longest ring time or
/// Timer C, whichever is longer, and the time an answer may still come after either.
pub(crate) fn window_for(cfg: &crate::config::Config) -> Duration {
    cfg.longest_ring().max(TIMER_C) + AFTER_RING
}

pub(crate) struct Asked {
    /// Per cell: nanoseconds since `base` until which its addresses may answer.
    until: Box<[AtomicU64]>,
    hasher: foldhash::fast::RandomState,
    base: Instant,
    /// How long a request lets its destination answer, in nanoseconds.
    window: AtomicU64,
}

impl Asked {
    /// A table in which a request lets its destination answer for `window`.
    pub(crate) fn new(window: Duration, base: Instant) -> Asked {
        Asked {
            until: (0..CELLS).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
            base,
            window: AtomicU64::new(nanos(window)),
        }
    }

    /// A reload changed how long the longest call may ring. Requests already sent keep the
    /// deadline they were given.
    pub(crate) fn set_window(&self, window: Duration) {
        self.window.store(nanos(window), Ordering::Relaxed);
    }

    /// We sent a request to `ip` at `now`.
    pub(crate) fn asked(&self, ip: IpAddr, now: Instant) {
        let until = self
            .since_base(now)
            .saturating_add(self.window.load(Ordering::Relaxed));
        self.until[self.index(ip)].fetch_max(until, Ordering::Relaxed);
    }

    /// Whether a response from `ip` at `now` may be one to a request we sent.
    pub(crate) fn may_answer(&self, ip: IpAddr, now: Instant) -> bool {
        self.until[self.index(ip)].load(Ordering::Relaxed) > self.since_base(now)
    }

    fn index(&self, ip: IpAddr) -> usize {
        // One spelling for an IPv4 peer, whether it was sent to or heard on a dual-stack
        // socket.
        (self.hasher.hash_one(ip.to_canonical()) as usize) % CELLS
    }

    fn since_base(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.base))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(184);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_an_address_we_asked_may_answer_and_only_for_a_while() {
        let t0 = Instant::now();
        let a = Asked::new(WINDOW, t0);
        let asked = ip("192.0.2.10");
        assert!(!a.may_answer(asked, t0), "nothing was asked yet");
        a.asked(asked, t0);
        assert!(a.may_answer(asked, t0 + Duration::from_secs(1)));
        assert!(a.may_answer(asked, t0 + WINDOW - Duration::from_millis(1)));
        assert!(!a.may_answer(asked, t0 + WINDOW));
        // Each request moves the deadline on; none moves it back.
        a.asked(asked, t0 + Duration::from_secs(100));
        assert!(a.may_answer(asked, t0 + WINDOW + Duration::from_secs(99)));
        a.asked(asked, t0);
        assert!(a.may_answer(asked, t0 + WINDOW + Duration::from_secs(99)));
        // Strangers: almost all of a thousand addresses land in other cells (each of the
        // 4,096 cells is shared by chance, at most a few here).
        let passed = (0..1000u32)
            .map(|n| IpAddr::from([198, 51, (n >> 8) as u8, n as u8]))
            .filter(|&s| a.may_answer(s, t0 + Duration::from_secs(1)))
            .count();
        assert!(passed <= 5, "{passed} strangers passed");
    }

    /// Timer C, not the ring times, bounds a relayed re-INVITE's wait: the window is at least
    /// that (and the time an answer may come after it), however short the calls ring; a
    /// longer ring lengthens it.
    #[test]
    fn the_window_covers_timer_c_and_the_longest_ring() {
        let mut cfg = crate::call::tests::config();
        assert_eq!(window_for(&cfg), TIMER_C + AFTER_RING);
        cfg.routes[0].ring_timeout = Some(Duration::from_secs(600));
        assert_eq!(window_for(&cfg), Duration::from_secs(600) + AFTER_RING);
    }

    #[test]
    fn an_ipv4_peer_is_one_address_however_it_is_spelt() {
        let t0 = Instant::now();
        let a = Asked::new(WINDOW, t0);
        a.asked(ip("192.0.2.10"), t0);
        assert!(a.may_answer(ip("::ffff:192.0.2.10"), t0));
        a.asked(ip("::ffff:192.0.2.11"), t0);
        assert!(a.may_answer(ip("192.0.2.11"), t0));
    }

    #[test]
    fn a_shorter_window_after_a_reload_applies_to_the_next_request() {
        let t0 = Instant::now();
        let a = Asked::new(WINDOW, t0);
        let first = ip("192.0.2.10");
        // Another address in another cell (the hash key is random per process).
        let second = (20..=255u8)
            .map(|n| IpAddr::from([192, 0, 2, n]))
            .find(|&s| a.index(s) != a.index(first))
            .unwrap();
        a.asked(first, t0);
        a.set_window(Duration::from_secs(10));
        a.asked(second, t0);
        assert!(a.may_answer(first, t0 + Duration::from_secs(60)));
        assert!(!a.may_answer(second, t0 + Duration::from_secs(60)));
    }
}

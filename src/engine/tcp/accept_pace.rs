//! New TCP connections per source, paced to `[protect] source_rate` (a connection counts
//! as a message: a second's worth at once, then the rate). The caps bound how many
//! connections a source holds at once, not how fast it opens them: a host in a peer's
//! wide `match` (or a stranger in `reject` mode) that opened and closed connections in a
//! loop cost the signalling thread a connection's news (up, down) each time, unbounded.
//! Over the pace a connection is closed at once, counted. The source guard's fixed table
//! (4,096 governor cells by a keyed hash of the source, an IPv6 /64 being one): nothing is
//! allocated per source, and two sources sharing a cell share its pace now and then. Kept
//! by the accepting task alone.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::engine::source_guard::{Gate, SourceGuard, source_key};

/// The pace: the source guard's table of GCRA cells (its own instance, apart from the
/// datagrams'), made anew when `source_rate` changes.
pub(super) struct AcceptPace {
    guard: Option<SourceGuard>,
    base: Instant,
}

impl AcceptPace {
    pub(super) fn new(now: Instant) -> AcceptPace {
        AcceptPace {
            guard: None,
            base: now,
        }
    }

    /// Whether a connection from `ip` may be taken at `now`, paced to `rate` a second.
    pub(super) fn admit(&mut self, ip: IpAddr, rate: u32, now: Instant) -> bool {
        if self.guard.as_ref().is_none_or(|g| g.rate != rate.max(1)) {
            self.guard = Some(SourceGuard::new(rate, Duration::ZERO, self.base));
        }
        // (No cool-down: over the pace only this connection is refused.)
        self.guard
            .as_ref()
            .is_none_or(|g| g.check(source_key(ip), now, false) == Gate::Pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A second's worth at once, then the rate; each source its own pace.
    #[test]
    fn connections_are_paced_per_source() {
        let t0 = Instant::now();
        let mut p = AcceptPace::new(t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let taken = (0..15).filter(|_| p.admit(a, 10, t0)).count();
        assert_eq!(taken, 10);
        // Another address of the same /64 is the same source.
        let mut q = AcceptPace::new(t0);
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!((0..10).filter(|_| q.admit(v6a, 5, t0)).count(), 5);
        assert!(!q.admit(v6b, 5, t0));
        // A tenth of a second later, one more for the rate of 10.
        let later = t0 + Duration::from_millis(100);
        assert!(p.admit(a, 10, later));
        assert!(!p.admit(a, 10, later));
        // Fifty days on, it still refills.
        let day = Duration::from_secs(86_400);
        let late = t0 + 50 * day;
        assert_eq!((0..15).filter(|_| p.admit(a, 10, late)).count(), 10);
        let later = late + Duration::from_millis(200);
        assert_eq!((0..5).filter(|_| p.admit(a, 10, later)).count(), 2);
    }
}

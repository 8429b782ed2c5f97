//! RTP/RTCP port pairs from `[media] ports`: even RTP ports, RTCP on the next odd one.
//!
//! Ports are handed out at random, so an attacker cannot predict which port the next call
//! gets (audit M13), and a freed port rests before it is handed out again, so stray packets
//! of its last call do not reach the next one. The rest is counted in releases, not time
//! (the pool reads no clock): a freed port becomes available again once half the pool has
//! been freed after it, or sooner when nothing else is left.

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Debug)]
pub struct PortPool {
    /// First RTP port: ports are `start + 2 * i`.
    start: u16,
    /// Ports ready to be handed out, in no particular order (picked at random).
    free: Vec<u16>,
    /// Freed ports, oldest first, resting before they join `free`.
    resting: VecDeque<u16>,
    /// How many freed ports rest before the oldest becomes available.
    rest: usize,
    /// Which pairs are handed out, by index: a double or foreign `free` is ignored.
    in_use: Vec<bool>,
    /// Pairs another socket on this host holds (found when a relay could not bind one),
    /// by index: handed out no more until found free again ([`PortPool::release_withheld`]).
    withheld: Vec<bool>,
    /// Withheld pairs no call holds any more (freed while withheld, or withheld free).
    idle_withheld: Vec<bool>,
    rng: SmallRng,
}

impl PortPool {
    /// Every even port `p` in `first..=last` with `p + 1` also in range, handed out in an
    /// order seeded from the operating system.
    pub fn new(first: u16, last: u16) -> Self {
        Self::with_rng(first, last, SmallRng::from_os_rng())
    }

    /// The same with a given seed: the order is reproducible (tests, or a shell that seeds
    /// all its generators from one source).
    pub fn with_seed(first: u16, last: u16, seed: u64) -> Self {
        Self::with_rng(first, last, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(first: u16, last: u16, rng: SmallRng) -> Self {
        // u32: `first` may be 65535, and `last` the top port.
        let start = u32::from(first) + u32::from(first) % 2;
        let free: Vec<u16> = (start..u32::from(last))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        PortPool {
            start: u16::try_from(start).unwrap_or(u16::MAX),
            rest: free.len() / 2,
            in_use: vec![false; free.len()],
            withheld: vec![false; free.len()],
            idle_withheld: vec![false; free.len()],
            free,
            resting: VecDeque::new(),
            rng,
        }
    }

    /// Leave out the pairs that hold one of `taken` (UDP ports the gateway listens on
    /// itself, which may fall in `[media] ports`): their bind would fail, and a call that
    /// drew them would fail with it.
    pub fn exclude(&mut self, taken: &[u16]) {
        self.free
            .retain(|&p| !taken.contains(&p) && !taken.contains(&p.saturating_add(1)));
        self.rest = self.free.len() / 2;
    }

    fn index(&self, port: u16) -> Option<usize> {
        let off = port.checked_sub(self.start)?;
        (off % 2 == 0)
            .then_some(usize::from(off / 2))
            .filter(|&i| i < self.in_use.len())
    }

    /// One RTP port (its RTCP port is the next one), or `None` when every pair is taken.
    pub fn alloc(&mut self) -> Option<u16> {
        let port = if self.free.is_empty() {
            // Nothing rested enough: the port that has rested longest.
            self.resting.pop_front()?
        } else {
            let i = self.rng.random_range(0..self.free.len());
            self.free.swap_remove(i)
        };
        if let Some(i) = self.index(port)
            && let Some(u) = self.in_use.get_mut(i)
        {
            *u = true;
        }
        Some(port)
    }

    /// Two pairs (one per leg of a stream), or none at all: never one taken and lost when
    /// only one is left (audit L6).
    pub fn alloc_pair(&mut self) -> Option<(u16, u16)> {
        if self.available() < 2 {
            return None;
        }
        let a = self.alloc()?;
        match self.alloc() {
            Some(b) => Some((a, b)),
            None => {
                self.free(a);
                None
            }
        }
    }

    /// `n` pairs for `n` streams (both legs each), or none at all.
    pub fn alloc_pairs(&mut self, n: usize) -> Option<Vec<(u16, u16)>> {
        if self.available() < n.checked_mul(2)? {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            match self.alloc_pair() {
                Some(p) => out.push(p),
                None => {
                    for (a, b) in out {
                        self.free(a);
                        self.free(b);
                    }
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Give a port back. Ports not handed out by this pool (or freed twice) are ignored, so a
    /// double release cannot give one port to two calls.
    pub fn free(&mut self, port: u16) {
        let Some(i) = self.index(port) else {
            return;
        };
        if !self.in_use[i] {
            return;
        }
        if self.withheld[i] {
            // (Left in use: handed out no more while withheld.)
            self.idle_withheld[i] = true;
            return;
        }
        self.in_use[i] = false;
        self.resting.push_back(port);
        while self.resting.len() > self.rest {
            match self.resting.pop_front() {
                Some(p) => self.free.push(p),
                None => break,
            }
        }
    }

    /// Withhold the pair of RTP port `port`: another socket on this host holds one of its
    /// ports (a relay could not bind it), and every call that drew it would fail. False when
    /// it was withheld already (or is no pair of this pool).
    pub fn withhold(&mut self, port: u16) -> bool {
        let Some(i) = self.index(port & !1) else {
            return false;
        };
        if std::mem::replace(&mut self.withheld[i], true) {
            return false;
        }
        if !self.in_use[i] {
            // Freed already (its call forgotten): out of the lists it waits in.
            let rtp = port & !1;
            self.free.retain(|&p| p != rtp);
            self.resting.retain(|&p| p != rtp);
            self.in_use[i] = true;
            self.idle_withheld[i] = true;
        }
        true
    }

    /// The withheld pair of RTP port `port` binds again (the socket that held it is gone, a
    /// DNS lookup's, say): handed out again once no call holds it. False when it was not
    /// withheld.
    pub fn release_withheld(&mut self, port: u16) -> bool {
        let Some(i) = self.index(port & !1) else {
            return false;
        };
        if !std::mem::take(&mut self.withheld[i]) {
            return false;
        }
        if std::mem::take(&mut self.idle_withheld[i]) {
            self.free(port & !1);
        }
        true
    }

    /// Pairs withheld ([`PortPool::withhold`]).
    pub fn withheld(&self) -> usize {
        self.withheld.iter().filter(|&&w| w).count()
    }

    /// Pairs not in use (ready or resting).
    pub fn available(&self) -> usize {
        self.free.len() + self.resting.len()
    }

    /// Pairs in the pool.
    pub fn size(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port the gateway listens on itself (a SIP listener inside `[media] ports`) is never
    /// handed out with its pair: before, a call that drew it failed its media at bind.
    #[test]
    fn ports_the_gateway_listens_on_are_left_out() {
        let mut p = PortPool::with_seed(20000, 20009, 1);
        p.exclude(&[20003, 20004, 5060]);
        let mut got: Vec<u16> = std::iter::from_fn(|| p.alloc()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![20000, 20006, 20008]);
    }

    /// A pair another socket holds is withheld: in use when its call ends, or
    /// taken out of the free list when its call has ended already. Before, it went back
    /// and failed the next call that drew it, and the next.
    #[test]
    fn a_withheld_pair_is_handed_out_no_more_until_it_binds_again() {
        let mut p = PortPool::with_seed(20000, 20007, 1);
        let mut got: Vec<u16> = std::iter::from_fn(|| p.alloc()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![20000, 20002, 20004, 20006]);
        assert!(p.withhold(20003), "its RTCP port names the pair");
        assert!(!p.withhold(20002), "once");
        p.free(20002);
        p.free(20004);
        assert!(p.withhold(20004), "freed already");
        for port in [20000, 20006] {
            p.free(port);
        }
        let mut again: Vec<u16> = std::iter::from_fn(|| p.alloc()).collect();
        again.sort_unstable();
        assert_eq!(again, vec![20000, 20006]);
        assert_eq!((p.withheld(), p.available()), (2, 0));
        assert!(!p.withhold(30000), "no pair of the pool");
        // Found free again: back once no call holds it (both were freed already).
        assert!(p.release_withheld(20002) && p.release_withheld(20004));
        assert!(!p.release_withheld(20004));
        assert_eq!((p.withheld(), p.available()), (0, 2));
        // Withheld while its call holds it, released before that call ends: back at its end.
        let q = p.alloc().unwrap();
        p.withhold(q);
        p.release_withheld(q);
        assert_eq!(p.available(), 1);
        p.free(q);
        assert_eq!(p.available(), 2);
    }

    #[test]
    fn even_rtp_ports_with_room_for_rtcp() {
        let mut p = PortPool::with_seed(20001, 20007, 1);
        assert_eq!(p.size(), 3);
        let mut got: Vec<u16> = (0..3).filter_map(|_| p.alloc()).collect();
        assert_eq!(p.alloc(), None);
        got.sort_unstable();
        assert_eq!(got, vec![20002, 20004, 20006]);
        p.free(20004);
        assert_eq!(p.available(), 1);
        assert_eq!(p.alloc(), Some(20004));
        // The top of the port space.
        let mut p = PortPool::with_seed(65533, 65535, 1);
        assert_eq!(p.size(), 1);
        assert_eq!(p.alloc(), Some(65534));
    }

    #[test]
    fn ports_come_in_a_seeded_random_order() {
        let order = |seed| {
            let mut p = PortPool::with_seed(20000, 20999, seed);
            (0..500).filter_map(|_| p.alloc()).collect::<Vec<u16>>()
        };
        let a = order(7);
        assert_eq!(a, order(7), "same seed, same order");
        assert_ne!(a, order(8));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (20000..20999).step_by(2).collect::<Vec<u16>>());
        // Not the range in order, and not predictable from the previous port: fewer than a
        // tenth of the steps are the +2 a sequential pool would take.
        let sequential = a.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(sequential < 50, "{sequential} sequential steps");
    }

    #[test]
    fn a_freed_port_rests_until_half_the_pool_was_freed_after_it() {
        let mut p = PortPool::with_seed(20000, 20039, 3); // 20 pairs, rest 10
        let taken: Vec<u16> = (0..20).filter_map(|_| p.alloc()).collect();
        let first = taken[0];
        p.free(first);
        // Free 9 more: `first` still rests, and while others are free it is not handed out.
        for &port in &taken[1..10] {
            p.free(port);
        }
        assert_eq!(p.available(), 10);
        // Nothing has rested enough: the oldest goes first.
        assert_eq!(p.alloc(), Some(first));
        p.free(first);
        // Five more frees release the five oldest resting ports (not `first`, which rests
        // behind four others now).
        for &port in &taken[10..15] {
            p.free(port);
        }
        let next: Vec<u16> = (0..10).filter_map(|_| p.alloc()).collect();
        assert_eq!(next.len(), 10);
        assert!(!next[..9].contains(&first), "{next:?}");
        assert_eq!(next[9], first, "the pool ran dry before it was reused");
    }

    #[test]
    fn pairs_are_all_or_nothing() {
        let mut p = PortPool::with_seed(20000, 20005, 5); // 3 pairs
        let (a, b) = p.alloc_pair().unwrap();
        assert_ne!(a, b);
        // One pair left: alloc_pair takes none of it (two allocs used to lose it).
        assert_eq!(p.alloc_pair(), None);
        assert_eq!(p.available(), 1);
        assert_eq!(p.alloc_pairs(1), None);
        p.free(a);
        assert_eq!(p.alloc_pairs(2), None);
        assert_eq!(p.available(), 2);
        let got = p.alloc_pairs(1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(p.available(), 0);
        assert_eq!(p.alloc_pairs(0), Some(vec![]));
    }

    #[test]
    fn double_and_foreign_frees_are_ignored() {
        let mut p = PortPool::with_seed(20000, 20005, 9);
        let a = p.alloc().unwrap();
        p.free(a);
        p.free(a);
        p.free(20001); // odd: an RTCP port
        p.free(30000); // not ours
        p.free(19998);
        assert_eq!(p.available(), 3);
        let all: Vec<u16> = (0..4).filter_map(|_| p.alloc()).collect();
        assert_eq!(all.len(), 3, "one port never goes to two calls: {all:?}");
    }
}

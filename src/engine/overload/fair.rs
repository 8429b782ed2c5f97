//! Fair shedding: the share of new work overload control refuses is taken from the peers
//! that send the most, not from every peer alike. Before, one peer's storm (a trunk's
//! retry loop, a misrouted flood within its `source_rate`) raised the share refused of
//! every peer's new calls: a peer sending a tenth of the load lost as large a part of it
//! as the peer causing the overload.
//!
//! Each window the share to refuse next is spread max-min fairly over the last window's
//! requests per peer (water-filling): every peer is let in up to a common level, and only
//! what a peer sent over that level is refused. A peer under the level loses nothing to
//! the share; with one peer alone it is the share as before. (Requests that waited past
//! the thresholds are refused or dropped whoever sent them: that is the queue, not a
//! share.) Peers are told apart by their profile (a slot each, for the first
//! [`PEER_SLOTS`] in name order); behind a front every request comes from its address, so
//! they share one slot there.

/// Slots of the fair share: one per peer, then some for sources no profile matches.
pub(crate) const SLOTS: usize = PEER_SLOTS + 32;
/// Slots for peers, one each for up to this many profiles in name order (past that, a
/// profile shares the slot of the one this many places before it: two peers in one slot
/// are counted as one). It was 224: an operator with 2,000 profiles had every peer share
/// its count with eight others, a storm from one cutting their new calls too. A window's
/// close walks them all: some 4,000 numbers, a few microseconds.
pub(crate) const PEER_SLOTS: usize = 4096;

#[derive(Debug, Clone)]
pub(super) struct Fair {
    /// New requests decided on this window, per slot.
    counts: [u32; SLOTS],
    /// Each slot's requests a window, smoothed over the last few (each window halves what
    /// the ones before said): a peer whose storm comes in bursts with a quiet window
    /// between is still the one sending the most.
    rate: [f64; SLOTS],
    /// The part of each slot's new requests refused this window.
    cut: [f64; SLOTS],
    /// Error diffusion per slot: refuses exactly `cut` of a slot's requests, no RNG.
    owed: [f64; SLOTS],
}

impl Default for Fair {
    fn default() -> Self {
        Fair {
            counts: [0; SLOTS],
            rate: [0.0; SLOTS],
            cut: [0.0; SLOTS],
            owed: [0.0; SLOTS],
        }
    }
}

impl Fair {
    /// A new request from `slot`, under no standing queue: whether the share refuses it.
    pub(super) fn refuses(&mut self, slot: usize) -> bool {
        let s = slot % SLOTS;
        self.counts[s] = self.counts[s].saturating_add(1);
        self.owed[s] += self.cut[s];
        if self.owed[s] >= 1.0 {
            self.owed[s] -= 1.0;
            true
        } else {
            false
        }
    }

    /// A new request from `slot` decided otherwise (refused or dropped for its wait, or
    /// let in by a reader): counted, for the next window's levels.
    pub(super) fn count(&mut self, slot: usize) {
        let s = slot % SLOTS;
        self.counts[s] = self.counts[s].saturating_add(1);
    }

    /// A window closed; `share` of the new requests is to be refused in the next one:
    /// each slot's cut, from this window's counts, so that `share` of them all would be
    /// refused, all of it over a common level.
    pub(super) fn close(&mut self, share: f64) {
        let counts = std::mem::replace(&mut self.counts, [0; SLOTS]);
        for (r, &n) in self.rate.iter_mut().zip(&counts) {
            *r = (*r + f64::from(n)) / 2.0;
        }
        if share <= 0.0 {
            self.cut = [0.0; SLOTS];
            self.owed = [0.0; SLOTS];
            return;
        }
        // Nobody heard lately (quiet windows after a storm, peers honouring Retry-After):
        // no one to take the share from more than another, so each gives its part.
        if self.rate.iter().all(|&r| r < 0.5) {
            self.cut = [share.min(1.0); SLOTS];
            return;
        }
        let level = level(&self.rate, share);
        for (cut, &r) in self.cut.iter_mut().zip(&self.rate) {
            // A peer not heard lately is taken to send a little (one request a window):
            // cut only when the level is under that, as when everything is refused.
            *cut = (1.0 - level / r.max(1.0)).clamp(0.0, 1.0);
        }
    }
}

/// The level `c` at which the rates over it add up to `share` of them all:
/// `Σ max(0, r - c) = share × Σ r` (0 when everything is to be refused).
fn level(rates: &[f64; SLOTS], share: f64) -> f64 {
    let mut sorted: Vec<f64> = rates.iter().copied().filter(|&r| r > 0.0).collect();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let total: f64 = sorted.iter().sum();
    let excess = share.min(1.0) * total;
    let mut above = 0.0;
    for (k, &r) in sorted.iter().enumerate() {
        above += r;
        // The level if the k + 1 largest are the ones cut down to it.
        let c = (above - excess) / (k + 1) as f64;
        let next = sorted.get(k + 1).copied().unwrap_or(0.0);
        if c >= next {
            return c.max(0.0);
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(rates: &[(usize, u32)]) -> [f64; SLOTS] {
        let mut c = [0.0; SLOTS];
        for &(s, n) in rates {
            c[s] = f64::from(n);
        }
        c
    }

    #[test]
    fn the_level_cuts_the_largest_first() {
        // One peer alone: the share of it.
        assert_eq!(level(&with(&[(3, 100)]), 0.3), 70.0);
        // 900 and 100, 30 % to refuse (300): the large one is cut to 600.
        assert_eq!(level(&with(&[(0, 900), (1, 100)]), 0.3), 600.0);
        // 50 % of 1000 (500) from 900 and 100: cut to 400, the small one untouched.
        assert_eq!(level(&with(&[(0, 900), (1, 100)]), 0.5), 400.0);
        // 95 %: both are cut, to 25 each.
        assert_eq!(level(&with(&[(0, 900), (1, 100)]), 0.95), 25.0);
        assert_eq!(level(&with(&[(0, 900), (1, 100)]), 1.0), 0.0);
        assert_eq!(level(&with(&[]), 0.5), 0.0);
    }

    /// A storm from one peer and a tenth of it from another: with half of everything to
    /// refuse, the refusals fall on the storm; the other peer loses none. One peer alone
    /// loses the share, as before.
    #[test]
    fn the_share_falls_on_the_peer_sending_the_most() {
        let mut f = Fair::default();
        for _ in 0..900 {
            f.count(1);
        }
        for _ in 0..100 {
            f.count(2);
        }
        f.close(0.5);
        let refused =
            |f: &mut Fair, slot: usize, n: u32| (0..n).filter(|_| f.refuses(slot)).count();
        assert_eq!(refused(&mut f, 2, 100), 0, "the small peer loses nothing");
        assert_eq!(refused(&mut f, 9, 100), 0, "nor one unheard before");
        let big = refused(&mut f, 1, 900);
        assert!((499..=501).contains(&big), "{big} of 900 refused");
        let mut alone = Fair::default();
        for _ in 0..1000 {
            alone.count(7);
        }
        alone.close(0.25);
        assert_eq!(refused(&mut alone, 7, 1000), 250);
        // Everything to refuse: a peer unheard before too.
        alone.close(1.0);
        assert_eq!(refused(&mut alone, 8, 10), 10);
        // No share: nothing refused, and nothing owed.
        alone.close(0.0);
        assert_eq!(refused(&mut alone, 7, 1000), 0);
    }

    /// After quiet windows (nobody heard lately) the share is everyone's part alike, not
    /// everything: before, every request was refused for a window.
    #[test]
    fn after_quiet_windows_each_peer_gives_the_share() {
        let mut f = Fair::default();
        for _ in 0..6 {
            f.close(0.3);
        }
        let refused = (0..100).filter(|_| f.refuses(5)).count();
        assert!((29..=30).contains(&refused), "{refused} of 100");
    }

    /// A storm in bursts, a quiet window between: the bursty peer is still the one cut,
    /// not the steady one sending a tenth as much.
    #[test]
    fn a_storm_in_bursts_is_still_the_one_cut() {
        let mut f = Fair::default();
        let window = |f: &mut Fair, big: u32| {
            (0..big).for_each(|_| f.count(1));
            (0..100).for_each(|_| f.count(2));
            f.close(0.5);
        };
        window(&mut f, 900);
        window(&mut f, 0);
        let steady = (0..100).filter(|_| f.refuses(2)).count();
        let bursty = (0..900).filter(|_| f.refuses(1)).count();
        assert_eq!(steady, 0, "the steady peer loses nothing");
        assert!(bursty > 400, "{bursty} of the burst's 900 refused");
    }
}

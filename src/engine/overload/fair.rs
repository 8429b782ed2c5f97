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
//! share.) Peers are told apart by a slot their name hashes to; behind a front every
//! request comes from its address, so they share one slot there.

/// Slots peers hash to (two peers in one slot are counted as one).
pub(crate) const SLOTS: usize = 64;

#[derive(Debug, Clone)]
pub(super) struct Fair {
    /// New requests decided on this window, per slot.
    counts: [u32; SLOTS],
    /// The part of each slot's new requests refused this window.
    cut: [f64; SLOTS],
    /// Error diffusion per slot: refuses exactly `cut` of a slot's requests, no RNG.
    owed: [f64; SLOTS],
}

impl Default for Fair {
    fn default() -> Self {
        Fair {
            counts: [0; SLOTS],
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
        if share <= 0.0 {
            self.cut = [0.0; SLOTS];
            self.owed = [0.0; SLOTS];
            return;
        }
        let level = level(&counts, share);
        for (cut, &n) in self.cut.iter_mut().zip(&counts) {
            // A peer not heard last window is taken to send a little (one request): cut
            // only when the level is under that, as when everything is refused.
            let n = f64::from(n.max(1));
            *cut = (1.0 - level / n).clamp(0.0, 1.0);
        }
    }
}

/// The level `c` at which the counts over it add up to `share` of them all:
/// `Σ max(0, n - c) = share × Σ n` (0 when everything is to be refused).
fn level(counts: &[u32; SLOTS], share: f64) -> f64 {
    let mut sorted: Vec<u32> = counts.iter().copied().filter(|&n| n > 0).collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let total: f64 = sorted.iter().map(|&n| f64::from(n)).sum();
    let excess = share.min(1.0) * total;
    let mut above = 0.0;
    for (k, &n) in sorted.iter().enumerate() {
        above += f64::from(n);
        // The level if the k + 1 largest are the ones cut down to it.
        let c = (above - excess) / (k + 1) as f64;
        let next = sorted.get(k + 1).map_or(0.0, |&m| f64::from(m));
        if c >= next {
            return c.max(0.0);
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(counts: &[(usize, u32)]) -> [u32; SLOTS] {
        let mut c = [0; SLOTS];
        for &(s, n) in counts {
            c[s] = n;
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
}

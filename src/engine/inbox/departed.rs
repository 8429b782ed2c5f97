//! Where peers a reload removed or re-addressed were heard from, kept per reload while the
//! calls up at it last: their ends may still send requests in those calls (the edge lets
//! them through, and the core judges them by the call's own peers).

use std::collections::VecDeque;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::call::MAX_MOVED_RELOADS;
use crate::config::prefix_table::PrefixTable;

/// How many departed networks are kept over all the reloads whose calls are still up: far
/// more than an operator's profiles name; past it the oldest are forgotten rather than the
/// set growing.
pub(crate) const MAX_DEPARTED: usize = 4096;

/// Each reload's departed networks (oldest first, as the core counts their calls), and all
/// of them indexed: the edge asks about every stranger's datagram, and a lookup is a hash
/// per prefix length, not a scan.
#[derive(Debug, Default, Clone)]
pub(crate) struct Departed {
    reloads: VecDeque<Vec<IpNet>>,
    index: PrefixTable<()>,
}

impl Departed {
    pub(crate) fn holds(&self, ip: IpAddr) -> bool {
        self.index.longest(ip).is_some()
    }

    /// Distinct networks held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// A reload's departed networks. Past [`MAX_MOVED_RELOADS`] they join the latest's (as
    /// the core widens its count), and past [`MAX_DEPARTED`] the oldest go.
    pub(crate) fn with(&self, nets: Vec<IpNet>) -> Departed {
        let mut reloads = self.reloads.clone();
        let full = reloads.len() >= MAX_MOVED_RELOADS;
        match reloads.back_mut() {
            Some(last) if full => last.extend(nets),
            _ => reloads.push_back(nets),
        }
        let mut over = reloads
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            .saturating_sub(MAX_DEPARTED);
        // (A reload emptied so still counts: the core's count of reloads stays the same.)
        for nets in reloads.iter_mut() {
            let n = over.min(nets.len());
            nets.drain(..n);
            over -= n;
        }
        Departed::of(reloads)
    }

    /// Only the latest `n` reloads' (the others' calls have ended); `None` when none is left.
    pub(crate) fn keeping(&self, n: usize) -> Option<Departed> {
        let mut reloads = self.reloads.clone();
        let drop = reloads.len().saturating_sub(n);
        reloads.drain(..drop);
        (!reloads.is_empty()).then(|| Departed::of(reloads))
    }

    pub(crate) fn reloads(&self) -> usize {
        self.reloads.len()
    }

    fn of(reloads: VecDeque<Vec<IpNet>>) -> Departed {
        let mut index = PrefixTable::default();
        for n in reloads.iter().flatten() {
            index.entry(*n).or_insert(());
        }
        Departed { reloads, index }
    }
}

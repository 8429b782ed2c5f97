//! Where peers a reload removed or re-addressed were heard from, kept per reload while the
//! calls up at it last: their ends may still send requests in those calls (the edge lets
//! them through, and the core judges them by the call's own peers).

use std::collections::VecDeque;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::call::{CallRef, MAX_MOVED_RELOADS};
use crate::config::prefix_table::PrefixTable;

/// How many departed networks are kept over all the reloads whose calls are still up: more
/// than an operator's profiles name (2,000 profiles of a few networks each, removed or
/// re-addressed over a few reloads: 4,096 was about one reload's worth, and the oldest
/// peers' BYEs were then dropped at the edge as strangers'); past it the oldest are
/// forgotten rather than the set growing. Some 64 bytes a network, indexed: 4 MiB at most.
pub(crate) const MAX_DEPARTED: usize = 65_536;

/// Each reload's departed networks, oldest first, by the number below which the calls up at
/// it began (the core counts those calls by the same number), and all of them indexed: the
/// edge asks about every stranger's datagram, and a lookup is a hash per prefix length, not
/// a scan.
#[derive(Debug, Default, Clone)]
pub(crate) struct Departed {
    reloads: VecDeque<(CallRef, Vec<IpNet>)>,
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

    /// The departed networks of a reload with the calls numbered below `before` up. Past
    /// [`MAX_MOVED_RELOADS`] they join the latest's, which then lasts as long as this one's
    /// calls (the core folds its oldest reload into the next, reporting the oldest's number
    /// while either's calls last: `Env::note_moved`), and past [`MAX_DEPARTED`] the oldest
    /// go.
    pub(crate) fn with(&self, before: CallRef, nets: Vec<IpNet>) -> Departed {
        let mut reloads = self.reloads.clone();
        let full = reloads.len() >= MAX_MOVED_RELOADS;
        match reloads.back_mut() {
            Some(last) if full => {
                last.0 = before;
                last.1.extend(nets);
            }
            _ => reloads.push_back((before, nets)),
        }
        let held = reloads.iter().map(|(_, n)| n.len()).sum::<usize>();
        let mut over = held.saturating_sub(MAX_DEPARTED);
        for (_, nets) in reloads.iter_mut() {
            let n = over.min(nets.len());
            nets.drain(..n);
            over -= n;
        }
        Departed::of(reloads)
    }

    /// Without the reloads older than `since`, the oldest with calls up by the core's count
    /// (`None`: none is): their calls have ended. `None` when none goes, `Some(None)` when
    /// none is left. (A reload the core never counted, its handling cut short, goes once
    /// the core's oldest is younger.)
    pub(crate) fn keeping(&self, since: Option<CallRef>) -> Option<Option<Departed>> {
        let ended = |before: CallRef| since.is_none_or(|s| before < s);
        let gone = self.reloads.iter().take_while(|(b, _)| ended(*b)).count();
        if gone == 0 {
            return None;
        }
        let reloads: VecDeque<_> = self.reloads.iter().skip(gone).cloned().collect();
        Some((!reloads.is_empty()).then(|| Departed::of(reloads)))
    }

    fn of(reloads: VecDeque<(CallRef, Vec<IpNet>)>) -> Departed {
        let mut index = PrefixTable::default();
        for n in reloads.iter().flat_map(|(_, n)| n) {
            index.entry(*n).or_insert(());
        }
        Departed { reloads, index }
    }
}

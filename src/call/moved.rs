//! The reloads that removed or moved peers while calls were up: until those calls end,
//! their peers are still heard where the configuration they began with had them.

use std::collections::VecDeque;
use std::sync::Arc;

use super::cx::Env;
use crate::config::Config;

/// How many reloads that moved peers are told apart while calls up at them last (see
/// [`Env::moved`]); past it the oldest is forgotten.
pub const MAX_MOVED_RELOADS: usize = 64;

/// The running configuration `cfg`, then those reloads that moved peers replaced while
/// calls are still up (`moved`): where the peers of those calls are still heard.
pub fn heard_by<'a>(
    cfg: &'a Config,
    moved: &'a VecDeque<Moved>,
) -> impl Iterator<Item = &'a Config> {
    std::iter::once(cfg).chain(moved.iter().map(|m| &*m.old))
}

/// Whether `to` and `from` are one peer's by any configuration [`heard_by`] gives (a
/// response to a call from the peer's other server, its old `match`).
pub fn same_peer(
    cfg: &Config,
    moved: &VecDeque<Moved>,
    to: std::net::IpAddr,
    from: std::net::IpAddr,
) -> bool {
    heard_by(cfg, moved).any(|c| c.is_same_peer(to, from))
}

/// A reload that moved peers while calls were up: calls numbered below `before` began
/// before it, `calls` of them are still up, and `old` is the configuration it replaced.
/// `first`: `before`, or that of the oldest reload folded into this one (see
/// [`Env::note_moved`]), reported as the reload's number to the shell.
#[derive(Debug, Clone)]
pub struct Moved {
    pub before: super::CallRef,
    pub first: super::CallRef,
    pub calls: usize,
    pub old: Arc<Config>,
}

impl Env {
    /// A reload removed or moved a peer while calls were up: until those calls are all
    /// gone, a request from an unknown address may still be from one of their ends.
    /// Otherwise a stranger's request is refused without even its headers being read.
    pub fn peers_moved(&self) -> bool {
        !self.moved.is_empty()
    }

    /// A reload moved peers with `calls` calls up, numbered below `before`, replacing
    /// `old`. Past [`MAX_MOVED_RELOADS`] the oldest configuration is forgotten: its calls
    /// are the fewest still up (the oldest), while the configuration this reload replaced
    /// is the one every call begun since the last reload began with. (Before, this one's
    /// was dropped and the latest widened: its peers' answers to those calls went
    /// unheard.) Its place is not: the next reload, whose calls include its calls, lasts at
    /// least as long and reports its number (`first`), so the shell keeps hearing where
    /// its peers were (before, the shell forgot those networks and closed their TCP
    /// connections while their calls were up).
    pub fn note_moved(&mut self, before: super::CallRef, calls: usize, old: Arc<Config>) {
        if self.moved.len() >= MAX_MOVED_RELOADS
            && let Some(oldest) = self.moved.pop_front()
            && let Some(next) = self.moved.front_mut()
        {
            next.first = next.first.min(oldest.first);
        }
        let first = before;
        self.moved.push_back(Moved {
            before,
            first,
            calls,
            old,
        });
    }

    /// Call `r` is gone: one fewer up for each reload it was up at.
    pub fn moved_call_gone(&mut self, r: super::CallRef) {
        for m in &mut self.moved {
            if r < m.before {
                m.calls = m.calls.saturating_sub(1);
            }
        }
        while self.moved.front().is_some_and(|m| m.calls == 0) {
            self.moved.pop_front();
        }
    }
}

//! The route a call follows: the peers it may still try, in order.

use crate::config::PeerName;

/// The peers a call may still try.
#[derive(Debug, Default)]
pub struct RoutePlan {
    pub targets: Vec<PeerName>,
    /// (u32: with the flag below it keeps the plan at 32 bytes in every call; a route has a
    /// handful of peers.)
    pub next: u32,
    /// The route sets no `ring_timeout_s`: each peer rings for its own profile's, from its
    /// INVITE (a route's own bounds the whole call).
    pub ring_per_peer: bool,
    /// An earlier attempt of this route alerted (180–183) before it failed: the called
    /// party was rung, whatever the attempt out now has said (a ring timeout is 480).
    pub rang: bool,
    /// Attempts made on an earlier route of the call (a call-back's user1's): they keep
    /// their numbers, so that a late answer to one says nothing of this route's attempts.
    pub before: u16,
}

impl RoutePlan {
    pub fn exhausted(&self) -> bool {
        self.next as usize >= self.targets.len()
    }

    /// The peer the next attempt goes to, if one is left; it is then taken.
    pub fn take_next(&mut self) -> Option<&PeerName> {
        let peer = self.targets.get(self.next as usize)?;
        self.next = self.next.saturating_add(1);
        Some(peer)
    }

    /// Which attempt the call is on (the next peer's place in the route, after those of an
    /// earlier route), as our PRACK's transaction and a reliable provisional to the caller
    /// remember it.
    pub fn attempt(&self) -> u32 {
        u32::from(self.before).saturating_add(self.next)
    }

    /// Try no further peer.
    pub fn stop(&mut self) {
        self.next = u32::try_from(self.targets.len()).unwrap_or(u32::MAX);
    }
}

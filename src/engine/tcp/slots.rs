//! The TCP connection caps (`[protect] max_tcp_total`, `max_tcp_per_source`,
//! `max_tcp_per_peer`): a slot per connection, taken before it is served and given back when
//! it closes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::own_tcp_reserve as reserve;
use crate::engine::source_guard::source_key;

/// How many connections are up, in all and per source address (`[protect] max_tcp_total`,
/// `max_tcp_per_source`); a slot is held for the life of its connection.
#[derive(Debug, Clone)]
pub(in crate::engine) struct Slots {
    inner: Arc<std::sync::Mutex<SlotCounts>>,
    max_total: usize,
    max_per_source: usize,
    max_per_peer: usize,
    /// What the writers of the connections peers opened (or that we opened back toward
    /// them) may queue, all together.
    writes: super::writer::SharedBudget,
    /// What the writers of the gateway's own connections (toward its trunks) may queue.
    own_writes: super::writer::SharedBudget,
}

#[derive(Debug, Default)]
struct SlotCounts {
    total: usize,
    /// Connections from sources no profile knows (`unknown_sources = "reject"`).
    strangers: usize,
    /// By source (its /64 on IPv6; strangers apart from peers): its connections, and the
    /// pace its messages are read at.
    per_source: HashMap<(std::net::IpAddr, bool), Source>,
    /// Sources whose last connection closed within a second of their last paced message,
    /// with when their pace is full again: kept until then, so that connecting again does
    /// not refill it. Oldest first; at most [`Slots::max_total`] of them.
    resting: std::collections::VecDeque<(std::time::Instant, SourceKey)>,
    /// By peer (profile name): its connections, and what its sources' writers may queue
    /// together; kept while a source or a connection of it is known (at most one per
    /// profile).
    peers: HashMap<crate::config::PeerName, Peer>,
}

#[derive(Debug)]
struct Peer {
    /// Connections from its addresses (and ours back toward them), all together: a host
    /// with many addresses inside one peer's wide `match` (a customer's IPv6 /48) holds at
    /// most this peer's share of the table, not every peer's.
    conns: usize,
    writes: super::writer::SharedBudget,
}

impl Peer {
    fn new() -> Self {
        Peer {
            conns: 0,
            writes: super::writer::SharedBudget::new(super::writer::PEER_SHARE_WRITES_BUDGET),
        }
    }
}

type SourceKey = (std::net::IpAddr, bool);

/// A pace refills in a second (a second's worth, at the rate).
const REFILL: std::time::Duration = std::time::Duration::from_secs(1);

impl SlotCounts {
    /// Forget the resting sources whose pace is full again (unless connected again).
    fn expire(&mut self, now: std::time::Instant) {
        while let Some(&(until, key)) = self.resting.front() {
            if until > now {
                break;
            }
            self.resting.pop_front();
            let idle = self
                .per_source
                .get(&key)
                .is_some_and(|s| s.conns == 0 && s.pace.refilled_at().is_none_or(|r| now >= r));
            if idle {
                self.per_source.remove(&key);
            }
        }
        // A peer's share goes with its last source's last writer and its last connection (a
        // few profiles: cheap).
        self.peers
            .retain(|_, p| p.writes.is_shared() || p.conns > 0);
    }
}

#[derive(Debug)]
struct Source {
    conns: usize,
    pace: Bucket,
    /// What its connections' writers may queue, together.
    writes: super::writer::SharedBudget,
}

impl Source {
    /// A source of `peer` (whose sources' budget it draws on too), or of none.
    fn of(peer: Option<&super::writer::SharedBudget>) -> Self {
        use super::writer::{SOURCE_WRITES_BUDGET, SharedBudget};
        Source {
            conns: 0,
            pace: Bucket::default(),
            writes: match peer {
                Some(p) => SharedBudget::within(SOURCE_WRITES_BUDGET, p),
                None => SharedBudget::new(SOURCE_WRITES_BUDGET),
            },
        }
    }
}

/// `[protect] source_rate` for messages on connections: a second's worth at once, then the
/// rate. Kept apart from the source guard of datagrams, whose cells anyone may drain by
/// spoofing a peer's address over UDP; a connection's source is its own.
#[derive(Debug, Default)]
struct Bucket {
    tokens: f64,
    /// When it was last filled; None: not yet used (full).
    at: Option<std::time::Instant>,
}

impl Bucket {
    /// When it is full again if nothing more is taken (`None`: never used, full).
    fn refilled_at(&self) -> Option<std::time::Instant> {
        self.at.map(|at| at + REFILL)
    }

    /// Take one message at `now`: `None` when it may be read, else how long until it may.
    fn take(&mut self, rate: u32, now: std::time::Instant) -> Option<std::time::Duration> {
        let rate = f64::from(rate.max(1));
        self.tokens = match self.at {
            None => rate,
            Some(at) => {
                (self.tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(rate)
            }
        };
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        Some(std::time::Duration::from_secs_f64(
            (1.0 - self.tokens) / rate,
        ))
    }
}

/// A connection's hold on its slot, given back when dropped.
pub(in crate::engine) struct Slot {
    slots: Slots,
    /// The pace of a connection the gateway opened (counted against no source).
    own: Bucket,
    /// The source it counts against (None for connections we opened ourselves).
    ip: Option<(std::net::IpAddr, bool)>,
    /// A stranger's, counted apart too.
    stranger: bool,
    /// Its source's write budget (None for connections we opened ourselves).
    source_writes: Option<super::writer::SharedBudget>,
    /// The peer it counts against (none for a stranger's, or ours toward a trunk).
    peer: Option<crate::config::PeerName>,
}

impl Slots {
    pub(in crate::engine) fn new(p: &crate::config::Protect) -> Self {
        Slots {
            inner: Arc::default(),
            max_total: p.max_tcp_total,
            max_per_source: p.max_tcp_per_source,
            max_per_peer: p.max_tcp_per_peer,
            writes: super::writer::SharedBudget::new(super::writer::PEER_WRITES_BUDGET),
            own_writes: super::writer::SharedBudget::new(super::writer::OWN_WRITES_BUDGET),
        }
    }

    /// A slot for a connection from `ip` (None: one we open), or why there is none.
    /// Accepted connections leave the last sixteenth of the total to the gateway's own, so
    /// peers that fill the table (or strangers) cannot cut it off from TCP trunks.
    /// A stranger's connection (one only `unknown_sources = "reject"` lets in, for its 403)
    /// takes one of at most a sixteenth of the total: strangers reconnecting from many
    /// addresses cannot keep a peer whose connection dropped from connecting again.
    pub(super) fn take(
        &self,
        ip: Option<std::net::IpAddr>,
        stranger: bool,
    ) -> Result<Slot, &'static str> {
        self.take_of(ip, stranger, None)
    }

    /// [`Slots::take`] for a connection from a source of `peer`: its writes count against
    /// what all of that peer's sources may queue too
    /// ([`super::writer::PEER_SHARE_WRITES_BUDGET`]), so sources inside one peer's wide
    /// `match` that read slowly hold that peer's share, not every peer's.
    pub(super) fn take_of(
        &self,
        ip: Option<std::net::IpAddr>,
        stranger: bool,
        peer: Option<&crate::config::PeerName>,
    ) -> Result<Slot, &'static str> {
        let cap = match ip {
            Some(_) => self.max_total - reserve(self.max_total),
            None => self.max_total,
        };
        self.take_within(cap, ip, stranger, peer)
    }

    /// A slot for a connection the gateway opens back toward `ip` because the one the peer
    /// had opened has closed (RFC 3261 §18.2.2). The peer's messages decide when that
    /// happens, so such connections count against its share as its own do (else a peer
    /// that closes each connection after a request could fill the table with ours), and
    /// within what peers may take: the reserve is for the gateway's own (its trunks).
    pub(super) fn take_back_toward(
        &self,
        ip: std::net::IpAddr,
        peer: Option<&crate::config::PeerName>,
    ) -> Result<Slot, &'static str> {
        self.take_within(
            self.max_total - reserve(self.max_total),
            Some(ip),
            false,
            peer,
        )
    }

    fn take_within(
        &self,
        cap: usize,
        ip: Option<std::net::IpAddr>,
        stranger: bool,
        peer: Option<&crate::config::PeerName>,
    ) -> Result<Slot, &'static str> {
        let mut c = crate::threads::lock(&self.inner);
        c.expire(std::time::Instant::now());
        if c.total >= cap {
            return Err("tcp_total");
        }
        if stranger && c.strangers >= (self.max_total / 16).max(1) {
            return Err("tcp_strangers");
        }
        // An IPv6 host has a /64 to pick addresses from: that is one source. Strangers
        // count apart from peers: a stranger in a peer's /64 (shared hosting) must not hold
        // the peer's share.
        let ip = ip.map(|ip| (source_key(ip), stranger));
        let peer = peer.filter(|_| !stranger && ip.is_some());
        let mut source_writes = None;
        if let Some(ip) = ip {
            let SlotCounts {
                per_source, peers, ..
            } = &mut *c;
            if let Some(p) = peer
                && peers.get(p).is_some_and(|p| p.conns >= self.max_per_peer)
            {
                return Err("tcp_per_peer");
            }
            // A source's budget is drawn from its peer's as it was when the source was first
            // seen (one /64 shared by two profiles' hosts counts with the first).
            let mine = per_source.entry(ip).or_insert_with(|| {
                let of = peer.map(|p| &peers.entry(p.clone()).or_insert_with(Peer::new).writes);
                Source::of(of)
            });
            if mine.conns >= self.max_per_source {
                return Err("tcp_per_source");
            }
            mine.conns += 1;
            source_writes = Some(mine.writes.clone());
            if let Some(p) = peer {
                peers.entry(p.clone()).or_insert_with(Peer::new).conns += 1;
            }
        }
        c.total += 1;
        c.strangers += usize::from(stranger);
        Ok(Slot {
            slots: self.clone(),
            own: Bucket::default(),
            ip,
            stranger,
            source_writes,
            peer: peer.cloned(),
        })
    }
}

impl Slot {
    /// The budgets this connection's writer shares: with the other connections peers opened
    /// and with those of its source, or (one the gateway opened toward a trunk) with the
    /// gateway's own, which no peer's take from.
    pub(in crate::engine) fn write_budget(
        &self,
    ) -> (
        super::writer::SharedBudget,
        Option<super::writer::SharedBudget>,
    ) {
        match self.ip {
            Some(_) => (self.slots.writes.clone(), self.source_writes.clone()),
            None => (self.slots.own_writes.clone(), None),
        }
    }

    /// Take one message read on this connection at `now`, paced to `rate` a second for its
    /// source (all its connections together): `None` when it may be read, else how long
    /// until it may.
    pub(in crate::engine) fn pace(
        &mut self,
        rate: u32,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let Some(key) = self.ip else {
            return self.own.take(rate, now);
        };
        let mut c = crate::threads::lock(&self.slots.inner);
        c.per_source
            .get_mut(&key)
            .and_then(|s| s.pace.take(rate, now))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = crate::threads::lock(&self.slots.inner);
        c.total = c.total.saturating_sub(1);
        if self.stranger {
            c.strangers = c.strangers.saturating_sub(1);
        }
        if let Some(p) = self.peer.as_ref().and_then(|p| c.peers.get_mut(p)) {
            p.conns = p.conns.saturating_sub(1);
        }
        let Some(ip) = self.ip else {
            return;
        };
        let Some(s) = c.per_source.get_mut(&ip) else {
            return;
        };
        s.conns = s.conns.saturating_sub(1);
        if s.conns > 0 {
            return;
        }
        // Paced within the last second: its pace rests until refilled, or a new connection
        // would find it full (a second's worth a handshake, not a second).
        let now = std::time::Instant::now();
        let refilled = s.pace.refilled_at().filter(|&r| r > now);
        match refilled {
            Some(until) if c.resting.len() < self.slots.max_total => {
                c.resting.push_back((until, ip));
            }
            _ => {
                c.per_source.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;

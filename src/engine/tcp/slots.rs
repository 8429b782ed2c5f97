//! The TCP connection caps (`[protect] max_tcp_total`, `max_tcp_per_source`): a slot per
//! connection, taken before it is served and given back when it closes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::source_guard::source_key;

/// How many connections are up, in all and per source address (`[protect] max_tcp_total`,
/// `max_tcp_per_source`); a slot is held for the life of its connection.
#[derive(Debug, Clone)]
pub(in crate::engine) struct Slots {
    inner: Arc<std::sync::Mutex<SlotCounts>>,
    max_total: usize,
    max_per_source: usize,
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
    }
}

#[derive(Debug)]
struct Source {
    conns: usize,
    pace: Bucket,
    /// What its connections' writers may queue, together.
    writes: super::writer::SharedBudget,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            conns: 0,
            pace: Bucket::default(),
            writes: super::writer::SharedBudget::new(super::writer::SOURCE_WRITES_BUDGET),
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
}

impl Slots {
    pub(in crate::engine) fn new(p: &crate::config::Protect) -> Self {
        Slots {
            inner: Arc::default(),
            max_total: p.max_tcp_total,
            max_per_source: p.max_tcp_per_source,
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
        let cap = match ip {
            Some(_) => self.max_total - reserve(self.max_total),
            None => self.max_total,
        };
        self.take_within(cap, ip, stranger)
    }

    /// A slot for a connection the gateway opens back toward `ip` because the one the peer
    /// had opened has closed (RFC 3261 §18.2.2). The peer's messages decide when that
    /// happens, so such connections count against its share as its own do (else a peer
    /// that closes each connection after a request could fill the table with ours), and
    /// within what peers may take: the reserve is for the gateway's own (its trunks).
    pub(super) fn take_back_toward(&self, ip: std::net::IpAddr) -> Result<Slot, &'static str> {
        self.take_within(self.max_total - reserve(self.max_total), Some(ip), false)
    }

    fn take_within(
        &self,
        cap: usize,
        ip: Option<std::net::IpAddr>,
        stranger: bool,
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
        let mut source_writes = None;
        if let Some(ip) = ip {
            let mine = c.per_source.entry(ip).or_default();
            if mine.conns >= self.max_per_source {
                return Err("tcp_per_source");
            }
            mine.conns += 1;
            source_writes = Some(mine.writes.clone());
        }
        c.total += 1;
        c.strangers += usize::from(stranger);
        Ok(Slot {
            slots: self.clone(),
            own: Bucket::default(),
            ip,
            stranger,
            source_writes,
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

/// Connections of `total` kept for the gateway's own: a sixteenth, rounded up, so a small
/// `max_tcp_total` (under 16) keeps one too (a total of 1 has nothing to spare).
fn reserve(total: usize) -> usize {
    if total < 2 { 0 } else { total.div_ceil(16) }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = crate::threads::lock(&self.slots.inner);
        c.total = c.total.saturating_sub(1);
        if self.stranger {
            c.strangers = c.strangers.saturating_sub(1);
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
mod tests {
    use super::*;

    /// Strangers take at most a sixteenth of the connections: a peer can still connect
    /// while they hold all theirs.
    #[test]
    fn strangers_hold_at_most_a_sixteenth_of_the_connections() {
        let p = crate::config::Protect {
            max_tcp_total: 32,
            max_tcp_per_source: 2,
            ..crate::config::Protect::default()
        };
        let slots = Slots::new(&p);
        let mut held = Vec::new();
        for i in 1..=15u8 {
            let ip = std::net::IpAddr::from([127, 0, 1, i]);
            while let Ok(s) = slots.take(Some(ip), true) {
                held.push(s);
            }
        }
        assert_eq!(held.len(), 2, "a sixteenth of 32");
        assert_eq!(
            slots.take(Some([127, 0, 1, 99].into()), true).err(),
            Some("tcp_strangers")
        );
        let peer = slots.take(Some([127, 0, 0, 2].into()), false);
        assert!(peer.is_ok());
        drop(held);
        assert!(slots.take(Some([127, 0, 1, 1].into()), true).is_ok());
    }

    /// A small table keeps room for the gateway's own connections too: one peer filling
    /// what peers may take leaves the gateway a slot for its trunks, which no connection
    /// opened back toward a peer takes either (those are the peers'). Before, a
    /// `max_tcp_total` under 16 reserved nothing, and connections opened back toward peers
    /// could take the reserve.
    #[test]
    fn a_small_table_keeps_a_slot_for_the_gateways_own_connections() {
        let p = crate::config::Protect {
            max_tcp_total: 8,
            max_tcp_per_source: 16,
            ..crate::config::Protect::default()
        };
        let slots = Slots::new(&p);
        let peer = std::net::IpAddr::from([127, 0, 0, 2]);
        let held: Vec<Slot> = std::iter::from_fn(|| slots.take(Some(peer), false).ok())
            .take(100)
            .collect();
        assert_eq!(held.len(), 7);
        assert_eq!(slots.take_back_toward(peer).err(), Some("tcp_total"));
        assert!(slots.take(None, false).is_ok(), "the gateway's own slot");
        assert_eq!(reserve(1024), 64);
        assert_eq!(reserve(1), 0);
    }

    /// Connections opened back toward a peer count against its share with its own; the
    /// gateway's other connections count against no share.
    #[test]
    fn connections_opened_back_toward_a_peer_count_against_its_share() {
        let p = crate::config::Protect {
            max_tcp_total: 32,
            max_tcp_per_source: 2,
            ..crate::config::Protect::default()
        };
        let slots = Slots::new(&p);
        let peer = std::net::IpAddr::from([127, 0, 0, 2]);
        let own = slots.take(Some(peer), false).unwrap();
        let back = slots.take_back_toward(peer).unwrap();
        assert_eq!(slots.take_back_toward(peer).err(), Some("tcp_per_source"));
        assert_eq!(slots.take(Some(peer), false).err(), Some("tcp_per_source"));
        let ours: Vec<Slot> = (0..4).map(|_| slots.take(None, false).unwrap()).collect();
        drop(back);
        assert!(slots.take_back_toward(peer).is_ok());
        drop((own, ours));
    }

    /// Strangers in a peer's IPv6 /64 count as one source among themselves, and not against
    /// the peer's share. Before, a peer's connections were counted by its /64 too: a stranger
    /// beside it (shared hosting) could hold its share and have its connections refused.
    #[test]
    fn strangers_beside_a_peer_on_ipv6_do_not_take_its_share() {
        let p = crate::config::Protect {
            max_tcp_total: 1024,
            max_tcp_per_source: 2,
            ..crate::config::Protect::default()
        };
        let slots = Slots::new(&p);
        let in_64 = |last: u16| std::net::IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, last]);
        let strangers: Vec<Slot> = (10..20)
            .filter_map(|i| slots.take(Some(in_64(i)), true).ok())
            .collect();
        assert_eq!(strangers.len(), 2, "the /64's strangers are one source");
        let peer: Vec<Slot> = std::iter::from_fn(|| slots.take(Some(in_64(1)), false).ok())
            .take(10)
            .collect();
        assert_eq!(peer.len(), 2, "the peer keeps its own share");
        // The peer's /64 is one peer source too: its other addresses share the cap.
        assert_eq!(
            slots.take(Some(in_64(2)), false).err(),
            Some("tcp_per_source")
        );
    }

    /// A source's connections are paced together, a second's worth at once, then at the
    /// rate; a connection of the gateway's own has a pace of its own.
    #[test]
    fn a_sources_connections_share_one_pace() {
        let slots = Slots::new(&crate::config::Protect::default());
        let ip = std::net::IpAddr::from([127, 0, 0, 2]);
        let mut a = slots.take(Some(ip), false).unwrap();
        let mut b = slots.take(Some(ip), false).unwrap();
        let t = std::time::Instant::now();
        let read = (0..10)
            .filter(|i| match i % 2 {
                0 => a.pace(5, t).is_none(),
                _ => b.pace(5, t).is_none(),
            })
            .count();
        assert_eq!(read, 5, "a second's worth, over both connections");
        let wait = a.pace(5, t).expect("over the rate");
        assert!(wait <= std::time::Duration::from_millis(200), "{wait:?}");
        // 200 ms later, one more.
        let later = t + std::time::Duration::from_millis(200);
        assert!(b.pace(5, later).is_none());
        assert!(a.pace(5, later).is_some());
        let mut own = slots.take(None, false).unwrap();
        assert!(own.pace(5, t).is_none(), "not the source's pace");
    }

    /// A source's pace outlives its connections for the second it takes to refill: a peer
    /// that spends a second's worth, closes and connects again is paced on, not given a
    /// full second's worth again. Before, each new connection of a source found its pace
    /// full: 2,000 messages a handshake instead of a second.
    #[test]
    fn reconnecting_does_not_refill_a_sources_pace() {
        let slots = Slots::new(&crate::config::Protect::default());
        let ip = std::net::IpAddr::from([127, 0, 0, 2]);
        let t = std::time::Instant::now();
        let mut a = slots.take(Some(ip), false).unwrap();
        assert_eq!((0..10).filter(|_| a.pace(5, t).is_none()).count(), 5);
        drop(a);
        let mut b = slots.take(Some(ip), false).unwrap();
        assert!(b.pace(5, t).is_some(), "still spent");
        let refilled = t + std::time::Duration::from_secs(1);
        assert_eq!((0..10).filter(|_| b.pace(5, refilled).is_none()).count(), 5);
        drop(b);
        // A source at rest (its pace full again, or never used) is forgotten at once.
        let c = slots.take(Some([127, 0, 0, 3].into()), false).unwrap();
        drop(c);
        let counts = slots.inner.lock().unwrap();
        assert!(counts.per_source.contains_key(&(ip, false)), "resting");
        let other = std::net::IpAddr::from([127, 0, 0, 3]);
        assert!(!counts.per_source.contains_key(&(other, false)));
    }

    /// A panic caught while the table was locked leaves it usable: before, a poisoned lock
    /// refused every new connection for good, and slots dropped after it were never given
    /// back.
    #[test]
    fn a_poisoned_table_still_takes_and_gives_back() {
        let slots = std::sync::Arc::new(Slots::new(&crate::config::Protect::default()));
        let ip = std::net::IpAddr::from([127, 0, 0, 2]);
        let held = slots.take(Some(ip), false).unwrap();
        let poisoner = std::sync::Arc::clone(&slots);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.inner.lock().unwrap();
            panic!("a test fault while the table is locked");
        })
        .join();
        assert!(slots.inner.is_poisoned());
        let more = slots.take(Some(ip), false).unwrap();
        drop(held);
        drop(more);
        assert_eq!(crate::threads::lock(&slots.inner).total, 0);
    }

    /// The connections of one source share a write budget, an eighth of all connections':
    /// a few sources that read slowly cannot hold what every other connection's answers
    /// need. Before, sixteen connections from four addresses took all of it.
    #[test]
    fn one_sources_connections_hold_at_most_its_write_budget() {
        use super::super::writer::{SOURCE_WRITES_BUDGET, WRITE_BUDGET, Writer};
        let slots = Slots::new(&crate::config::Protect::default());
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let msg = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let mut held = Vec::new();
        let mut queued = 0;
        for _ in 0..SOURCE_WRITES_BUDGET / WRITE_BUDGET + 2 {
            let slot = slots.take(Some(ip), false).unwrap();
            let (w, drain) = Writer::new(slot.write_budget());
            while w.send(msg.clone()) {
                queued += msg.len();
            }
            held.push((slot, w, drain));
        }
        assert!(queued <= SOURCE_WRITES_BUDGET, "{queued}");
        assert!(queued + msg.len() > SOURCE_WRITES_BUDGET, "{queued}");
        // Another source still has room.
        let other = slots
            .take(Some("192.0.2.8".parse().unwrap()), false)
            .unwrap();
        let (w, _drain) = Writer::new(other.write_budget());
        assert!(w.send(msg));
    }

    /// Peers' connections that read slowly cannot hold what the gateway's own connections
    /// toward its trunks queue: with every peer's share full, a trunk's connection still
    /// takes a message. Before, all drew on one budget, and past it every message toward a
    /// TCP trunk was dropped.
    #[test]
    fn peers_that_read_slowly_leave_the_trunks_connections_their_budget() {
        use super::super::writer::{PEER_WRITES_BUDGET, Writer};
        let slots = Slots::new(&crate::config::Protect::default());
        let msg = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let mut held = Vec::new();
        let mut queued = 0;
        for i in 0..64u8 {
            let slot = slots.take(Some([192, 0, 2, i].into()), false).unwrap();
            let (w, drain) = Writer::new(slot.write_budget());
            while w.send(msg.clone()) {
                queued += msg.len();
            }
            held.push((slot, w, drain));
        }
        assert!(queued <= PEER_WRITES_BUDGET, "{queued}");
        assert!(queued + msg.len() > PEER_WRITES_BUDGET, "{queued}");
        let trunk = slots.take(None, false).unwrap();
        let (w, _drain) = Writer::new(trunk.write_budget());
        assert!(w.send(msg), "the trunk's connection has room");
    }
}

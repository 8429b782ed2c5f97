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
}

#[derive(Debug, Default)]
struct SlotCounts {
    total: usize,
    /// Connections from sources no profile knows (`unknown_sources = "reject"`).
    strangers: usize,
    /// By source: a peer's address, or a stranger's (its /64 on IPv6), counted apart.
    per_source: HashMap<(std::net::IpAddr, bool), usize>,
}

/// A connection's hold on its slot, given back when dropped.
pub(in crate::engine) struct Slot {
    slots: Slots,
    /// The source it counts against (None for connections we opened ourselves).
    ip: Option<(std::net::IpAddr, bool)>,
    /// A stranger's, counted apart too.
    stranger: bool,
}

impl Slots {
    pub(in crate::engine) fn new(p: &crate::config::Protect) -> Self {
        Slots {
            inner: Arc::default(),
            max_total: p.max_tcp_total,
            max_per_source: p.max_tcp_per_source,
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
    /// that closes each connection after a request could fill the table with ours);
    /// they may use the gateway's reserve.
    pub(super) fn take_back_toward(&self, ip: std::net::IpAddr) -> Result<Slot, &'static str> {
        self.take_within(self.max_total, Some(ip), false)
    }

    fn take_within(
        &self,
        cap: usize,
        ip: Option<std::net::IpAddr>,
        stranger: bool,
    ) -> Result<Slot, &'static str> {
        let Ok(mut c) = self.inner.lock() else {
            return Err("tcp_state");
        };
        if c.total >= cap {
            return Err("tcp_total");
        }
        if stranger && c.strangers >= (self.max_total / 16).max(1) {
            return Err("tcp_strangers");
        }
        // A stranger on IPv6 has a /64 to pick addresses from: that is one source. A peer
        // counts by its own address, apart from strangers: a stranger in a peer's /64
        // (shared hosting) must not hold the peer's share.
        let ip = ip.map(|ip| match stranger {
            true => (source_key(ip), true),
            false => (ip, false),
        });
        if let Some(ip) = ip {
            let mine = c.per_source.entry(ip).or_default();
            if *mine >= self.max_per_source {
                return Err("tcp_per_source");
            }
            *mine += 1;
        }
        c.total += 1;
        c.strangers += usize::from(stranger);
        Ok(Slot {
            slots: self.clone(),
            ip,
            stranger,
        })
    }
}

/// Connections of `total` kept for the gateway's own: a sixteenth, rounded up, so a small
/// `max_tcp_total` (under 16) keeps one too (a total of 1 has nothing to spare).
fn reserve(total: usize) -> usize {
    if total < 2 { 0 } else { total.div_ceil(16) }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.slots.inner.lock() {
            c.total = c.total.saturating_sub(1);
            if self.stranger {
                c.strangers = c.strangers.saturating_sub(1);
            }
            if let Some(ip) = self.ip
                && let Some(n) = c.per_source.get_mut(&ip)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_source.remove(&ip);
                }
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
    /// what peers may take leaves the gateway a slot for its trunks. Before, a
    /// `max_tcp_total` under 16 reserved nothing.
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
        assert!(slots.take(None, false).is_ok(), "the gateway's own slot");
        assert_eq!(reserve(1024), 64);
        assert_eq!(reserve(1), 0);
    }

    /// Connections opened back toward a peer count against its share with its own, and may
    /// use the gateway's reserve; the gateway's other connections count against no share.
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
    }
}

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
    assert_eq!(slots.take_back_toward(peer, None).err(), Some("tcp_total"));
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
    let back = slots.take_back_toward(peer, None).unwrap();
    assert_eq!(
        slots.take_back_toward(peer, None).err(),
        Some("tcp_per_source")
    );
    assert_eq!(slots.take(Some(peer), false).err(), Some("tcp_per_source"));
    let ours: Vec<Slot> = (0..4).map(|_| slots.take(None, false).unwrap()).collect();
    drop(back);
    assert!(slots.take_back_toward(peer, None).is_ok());
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

/// Sources of one peer that read slowly hold that peer's share of what peers' connections
/// may queue, not every peer's: twelve sources inside a wide `match` spend a quarter, and a
/// source of another peer, or a third peer's, still has room. Before, six such sources
/// spent all of it, and every other peer's answers over TCP were dropped (a call's 180 was
/// then taken for a transport failure).
#[test]
fn one_peers_sources_hold_at_most_its_share_of_the_write_budget() {
    use super::super::writer::{PEER_SHARE_WRITES_BUDGET, SOURCE_WRITES_BUDGET, Writer};
    use crate::config::PeerName;
    let slots = Slots::new(&crate::config::Protect::default());
    let wide = PeerName("customers".into());
    let msg = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let mut held = Vec::new();
    let mut queued = 0;
    let sources = PEER_SHARE_WRITES_BUDGET / SOURCE_WRITES_BUDGET + 6;
    for i in 0..sources {
        for _ in 0..SOURCE_WRITES_BUDGET / super::super::writer::WRITE_BUDGET {
            let ip = std::net::IpAddr::from([10, 0, 0, i as u8]);
            let slot = slots.take_of(Some(ip), false, Some(&wide)).unwrap();
            let (w, drain) = Writer::new(slot.write_budget());
            while w.send(msg.clone()) {
                queued += msg.len();
            }
            held.push((slot, w, drain));
        }
    }
    assert!(queued <= PEER_SHARE_WRITES_BUDGET, "{queued}");
    assert!(queued + msg.len() > PEER_SHARE_WRITES_BUDGET, "{queued}");
    for (ip, peer) in [("192.0.2.8", "carrier-a"), ("192.0.2.9", "carrier-b")] {
        let other = PeerName(peer.into());
        let slot = (slots.take_of(Some(ip.parse().unwrap()), false, Some(&other))).unwrap();
        let (w, _drain) = Writer::new(slot.write_budget());
        assert!(w.send(msg.clone()), "{peer} has room");
    }
    // Its sources gone, the peer's share is forgotten with them.
    drop(held);
    let later = std::time::Instant::now() + std::time::Duration::from_secs(2);
    crate::threads::lock(&slots.inner).expire(later);
    assert!(crate::threads::lock(&slots.inner).peers.len() <= 2);
}

/// A peer's sources hold at most `max_tcp_per_peer` connections together (its own and ours
/// back toward it): a host with many /64s inside one peer's wide `match` cannot take every
/// peer's part of the table. Before, only the total and each source were capped: 60 /64s
/// of 16 connections each held all 960 peers' slots, every other peer's connection refused.
#[test]
fn one_peers_many_sources_hold_at_most_its_share_of_the_table() {
    let p = crate::config::Protect {
        max_tcp_total: 64,
        max_tcp_per_source: 4,
        max_tcp_per_peer: 10,
        ..crate::config::Protect::default()
    };
    let slots = Slots::new(&p);
    let wide = crate::config::PeerName("customer".into());
    let other = crate::config::PeerName("carrier".into());
    let in_48 = |net: u16| std::net::IpAddr::from([0x2001, 0xdb8, 7, net, 0, 0, 0, 1]);
    let mut held: Vec<Slot> = (0..20)
        .flat_map(|net| (0..4).map(move |_| net))
        .filter_map(|net| slots.take_of(Some(in_48(net)), false, Some(&wide)).ok())
        .collect();
    assert_eq!(held.len(), 10);
    assert_eq!(
        slots.take_of(Some(in_48(30)), false, Some(&wide)).err(),
        Some("tcp_per_peer")
    );
    assert_eq!(
        slots.take_back_toward(in_48(31), Some(&wide)).err(),
        Some("tcp_per_peer")
    );
    // Another peer, a stranger, and the gateway's own connections are not held back.
    let carrier = std::net::IpAddr::from([192, 0, 2, 1]);
    let theirs = slots.take_of(Some(carrier), false, Some(&other)).unwrap();
    let stranger = slots.take(Some(in_48(40)), true).unwrap();
    let ours = slots.take(None, false).unwrap();
    // One closes: room for one more.
    held.pop();
    let again = slots.take_of(Some(in_48(50)), false, Some(&wide));
    assert!(again.is_ok());
    assert_eq!(
        slots.take_of(Some(in_48(51)), false, Some(&wide)).err(),
        Some("tcp_per_peer")
    );
    drop((held, again, theirs, stranger, ours));
}

use super::reader::{kernel_wait, recv_stamped};
use super::*;
use crate::engine::Event;
use crate::engine::bind::Stack;
use crate::engine::inbox::Inbox;
use crate::sip::ListenerId;
use crate::sip::fast;
use std::time::{Duration, SystemTime};

#[test]
fn sends_waiting_for_room_are_bounded_and_give_their_slot_back() {
    let slots = Slots::new(3, 1000);
    let held: Vec<Slot> = (0..3).filter_map(|_| slots.take(10)).collect();
    assert_eq!(held.len(), 3);
    assert!(
        slots.take(10).is_none(),
        "the fourth waits for no one: dropped"
    );
    drop(held);
    assert_eq!(slots.used.load(Ordering::Relaxed), 0);
    assert!(slots.take(10).is_some());
}

/// In bytes too: a few long datagrams fill what waits, and what a refused one would have
/// taken is not kept. Before, only their number was bounded (4,096 of 64 KiB: 256 MiB).
#[test]
fn sends_waiting_for_room_are_bounded_in_bytes() {
    let slots = Slots::new(3, 1000);
    let first = slots.take(600).unwrap();
    assert!(slots.take(600).is_none(), "over the bytes");
    assert_eq!(slots.used.load(Ordering::Relaxed), 1, "its slot given back");
    let second = slots.take(400).unwrap();
    drop(first);
    assert!(slots.take(600).is_some(), "its bytes given back");
    drop(second);
}
use crate::config::Protect;
use std::sync::Arc;

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch={branch}\r\n\
         From: <sip:1000@127.0.0.2>;tag=a\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: {branch}\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// An inbox whose overload control refuses every new request (a standing queue for a
/// whole second raised the share to 1).
fn overloaded_inbox() -> Inbox {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect::default();
    let (inbox, queues) = Inbox::new(Arc::new(cfg), Instant::now());
    std::mem::forget(queues);
    inbox.overload.stand_for(Instant::now(), 2000);
    assert!(inbox.overload.share() > 0.99);
    inbox
}

#[tokio::test]
async fn under_overload_a_new_invite_gets_a_503_before_parsing_and_its_ack_is_dropped() {
    let inbox = overloaded_inbox();
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The reader's sends are non-blocking attempts; a serving socket is known writable.
    gw.writable().await.unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let src = peer.local_addr().unwrap();
    // Past the drop threshold it would be dropped: stamp it as just received.
    let at = Instant::now();
    let inv = invite("z9hG4bKfast1");
    assert_eq!(
        shed_early(&gw, (0, None), &inbox, inv.as_bytes(), src, at),
        Early::Done
    );
    let mut buf = [0u8; 2048];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        reply.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains(&format!(";tag={}\r\n", inbox.overload.tag)),
        "{reply}"
    );
    assert!(reply.contains("\r\nRetry-After: 5\r\n"), "{reply}");
    // Its ACK is recognised by the tag and goes no further.
    let ack = inv
        .replace("INVITE sip:", "ACK sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:+8610123@127.0.0.1>",
            &format!("To: <sip:+8610123@127.0.0.1>;tag={}", inbox.overload.tag),
        );
    assert_eq!(
        shed_early(&gw, (0, None), &inbox, ack.as_bytes(), src, at),
        Early::Done
    );
    // Anything else goes on to the parser, unscreened.
    let bye = inv.replace("INVITE sip:", "BYE sip:");
    assert_eq!(
        shed_early(&gw, (0, None), &inbox, bye.as_bytes(), src, at),
        Early::Other
    );
}

/// A reader on 127.0.0.1 for the test configuration, `[protect]` at its defaults: its
/// inbox, the inbox's queues, and the address it listens on.
fn reading() -> (Inbox, crate::engine::inbox::Queues, SocketAddr) {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect::default();
    let (inbox, queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let s = Arc::new(bind("127.0.0.1:0".parse().unwrap(), Stack::Dual).unwrap());
    let gw = s.local_addr().unwrap();
    tokio::spawn(reader(s, ListenerId(0), 65_536, inbox.clone()));
    (inbox, queues, gw)
}

/// Audit L7: with two listeners, what is sent back to a peer leaves by the listener its
/// request came in on, not by the first one.
#[tokio::test]
async fn a_reply_leaves_by_the_listener_its_request_came_in_on() {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect::default();
    let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let mut socks = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.3"] {
        let s = Arc::new(bind(format!("{ip}:0").parse().unwrap(), Stack::Dual).unwrap());
        let local = s.local_addr().unwrap();
        let id = ListenerId(u16::try_from(socks.len()).unwrap());
        tokio::spawn(reader(s.clone(), id, 65_536, inbox.clone()));
        socks.push((s, local));
    }
    let second = socks[1].1;
    let out = Out::new(socks);
    // The peer of call::tests::config, whose requests the reader lets in.
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    peer.send_to(invite("z9hG4bKtwo").as_bytes(), second)
        .unwrap();
    let source = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Event::Message { source, .. }) = queues.try_next() {
                return source;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the INVITE reached the core");
    assert_eq!(source.listener, Some(ListenerId(1)));
    assert_eq!(source.addr, peer.local_addr().unwrap());
    let mut buf = [0u8; 64];
    out.send(source, Bytes::from_static(b"reply"));
    let (_, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(
        from, second,
        "the reply leaves by the listener the request came in on"
    );
    // A target that names no listener (a peer's configured address) leaves by the first.
    out.send(Target::udp(source.addr), Bytes::from_static(b"request"));
    let (_, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(from.ip().to_string(), "127.0.0.1");
}

/// An INVITE refused here for overload gets the same 503 for its retransmissions, also
/// once the queue has drained: let in then, it would become a call the caller was told
/// had failed (one transaction, one answer: RFC 3261 §8.2.7).
#[tokio::test]
async fn a_retransmission_of_an_invite_refused_here_is_refused_again() {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect::default();
    let (inbox, _queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // (A reader's socket has been polled: its sends find it writable.)
    gw.writable().await.unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let src = peer.local_addr().unwrap();
    let inv = invite("z9hG4bKfast4");
    let shed =
        |text: &str| shed_early(&gw, (0, None), &inbox, text.as_bytes(), src, Instant::now());
    let mut buf = [0u8; 2048];
    let mut answer = || {
        let (n, _) = peer.recv_from(&mut buf).expect("an answer");
        match crate::sip::parse_datagram(Bytes::copy_from_slice(&buf[..n]), 65535) {
            Ok(crate::sip::Message::Response(r)) => (r.status(), r.to_tag()),
            other => panic!("{other:?}"),
        }
    };
    inbox.overload.stand_for(Instant::now(), 2000);
    assert_eq!(shed(&inv), Early::Done);
    let first = answer();
    assert_eq!(first.0, 503);
    inbox.overload.drained();
    assert!(
        matches!(
            shed(&invite("z9hG4bKfast5")),
            Early::Screened { remember: Some(_) }
        ),
        "new work is let in again"
    );
    assert_eq!(
        shed(&inv),
        Early::Done,
        "the retransmission never reaches the core"
    );
    assert_eq!(answer(), first, "the same 503");
}

#[tokio::test]
async fn a_retransmission_of_an_invite_already_let_in_is_never_refused() {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect::default();
    let (inbox, _queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let src: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let inv = invite("z9hG4bKfast2");
    // Not overloaded: let in (screened), and remembered once delivered.
    let Early::Screened {
        remember: Some(key),
    } = shed_early(&gw, (0, None), &inbox, inv.as_bytes(), src, Instant::now())
    else {
        panic!("not let in")
    };
    inbox.overload.remember(key, Instant::now());
    // Overload begins; the retransmission still goes to the core.
    inbox.overload.stand_for(Instant::now(), 2000);
    assert_eq!(
        shed_early(&gw, (0, None), &inbox, inv.as_bytes(), src, Instant::now()),
        Early::Screened { remember: None }
    );
    // A new INVITE reusing its branch (another Call-ID, or CSeq) is no retransmission: it
    // is shed like any new one, not let past as one the core has.
    for reuse in [
        inv.replace("Call-ID: z9hG4bKfast2", "Call-ID: another"),
        inv.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE"),
    ] {
        assert_eq!(
            shed_early(
                &gw,
                (0, None),
                &inbox,
                reuse.as_bytes(),
                src,
                Instant::now()
            ),
            Early::Done,
            "{reuse}"
        );
    }
    // A stranger's new INVITE under overload: dropped without a word.
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let s_inv = invite("z9hG4bKfast3");
    assert_eq!(
        shed_early(
            &gw,
            (0, None),
            &inbox,
            s_inv.as_bytes(),
            stranger.local_addr().unwrap(),
            Instant::now()
        ),
        Early::Done
    );
    let mut buf = [0u8; 100];
    assert!(
        stranger.recv_from(&mut buf).is_err(),
        "a stranger hears nothing"
    );
}

/// A stranger's datagrams cost a look at their first bytes: its requests and its junk are
/// dropped unparsed (`unknown_sources = "drop"`), and so is a response from an address we
/// sent no request to; a response from one we did (a Contact outside every profile) waits
/// behind accepted work, never in the queue that goes first. Before, all of it was parsed,
/// copied, and an in-dialog BYE, a response or junk took the queue that goes first; and
/// before that, a response from anyone was parsed and queued.
#[tokio::test]
async fn a_strangers_datagrams_are_dropped_unparsed_or_wait_behind_accepted_work() {
    let (inbox, mut queues, gw) = reading();
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    // We sent 127.0.0.9 a request; another stranger, in another cell of the table of those
    // we asked, was sent none.
    let now = Instant::now();
    inbox.asked("127.0.0.9".parse().unwrap(), now);
    let unasked = (10..=250u8)
        .map(|n| std::net::IpAddr::from([127, 0, 0, n]))
        .find(|&ip| !inbox.may_answer(ip, now))
        .unwrap();
    let unasked = std::net::UdpSocket::bind((unasked, 0)).unwrap();
    let bye = invite("z9hG4bKs1")
        .replace("INVITE sip:", "BYE sip:")
        .replace(
            "To: <sip:+8610123@127.0.0.1>",
            "To: <sip:+8610123@127.0.0.1>;tag=x",
        );
    stranger.send_to(bye.as_bytes(), gw).unwrap();
    stranger.send_to(&[b'x'; 2048], gw).unwrap();
    stranger
        .send_to(invite("z9hG4bKs2").as_bytes(), gw)
        .unwrap();
    let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs3\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: s3\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    unasked.send_to(ok.as_bytes(), gw).unwrap();
    stranger.send_to(ok.as_bytes(), gw).unwrap();
    // Then a peer's request, to know the reader has seen everything before it.
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.send_to(invite("z9hG4bKmark").as_bytes(), gw).unwrap();
    let mut fresh = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), async {
        while fresh.len() < 2 {
            match queues.fresh.try_recv() {
                Ok(ev) => fresh.push(ev),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("the stranger's response and the peer's INVITE");
    assert!(
        queues.urgent.try_recv().is_err(),
        "nothing of the stranger's goes first"
    );
    let sources: Vec<(bool, std::net::IpAddr)> = fresh
        .iter()
        .map(|ev| match ev {
            Event::Message { msg, source, .. } => (
                matches!(msg, crate::sip::Message::Response(_)),
                source.addr.ip(),
            ),
            _ => panic!("a message"),
        })
        .collect();
    assert_eq!(
        sources,
        [
            (true, "127.0.0.9".parse().unwrap()),
            (false, "127.0.0.2".parse().unwrap())
        ]
    );
    assert!(queues.fresh.try_recv().is_err());
}

/// A response from a profile's `address` that no `match` covers (a carrier calling from one
/// SBC while we call another) is a peer's: it goes with accepted work. In `reject` mode a
/// stranger's junk is still dropped from its first bytes; only what reads as a request
/// line is kept for its 403.
#[tokio::test]
async fn a_response_from_a_peers_address_is_a_peers_and_junk_is_never_kept() {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect {
        unknown_sources: crate::config::UnknownSources::Reject,
        ..Protect::default()
    };
    for (name, p) in cfg.profiles.iter_mut() {
        if name.as_str() == "carrier-a" {
            Arc::make_mut(p).matches = vec!["127.0.0.33/32".parse().unwrap()];
        }
    }
    let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let s = Arc::new(bind("127.0.0.1:0".parse().unwrap(), Stack::Dual).unwrap());
    let gw = s.local_addr().unwrap();
    tokio::spawn(reader(s, ListenerId(0), 65_536, inbox.clone()));
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    stranger.send_to(&[b'x'; 512], gw).unwrap();
    let carrier = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: a1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    carrier.send_to(ok.as_bytes(), gw).unwrap();
    let ev = next_on(&mut queues.urgent, "the carrier's 200 with accepted work").await;
    assert!(
        matches!(ev, Event::Message { source, .. } if source.addr.ip().to_string() == "127.0.0.3")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(queues.fresh.try_recv().is_err(), "the junk was not kept");
    assert!(queues.urgent.try_recv().is_err());
}

/// A request from a peer's `address` outside its `match` (the SBC we send calls to,
/// hanging one up) is a peer's at the reader too, in `drop` mode as well: the core tells a
/// request in its calls from the rest. Before, it was a stranger's and dropped unread.
#[tokio::test]
async fn a_request_from_a_peers_address_reaches_the_core_whatever_the_mode() {
    let mut cfg = crate::call::tests::config();
    for (name, p) in cfg.profiles.iter_mut() {
        if name.as_str() == "carrier-a" {
            Arc::make_mut(p).matches = vec!["127.0.0.33/32".parse().unwrap()];
        }
    }
    assert_eq!(
        cfg.protect.unknown_sources,
        crate::config::UnknownSources::Drop
    );
    let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let s = Arc::new(bind("127.0.0.1:0".parse().unwrap(), Stack::Dual).unwrap());
    let gw = s.local_addr().unwrap();
    tokio::spawn(reader(s, ListenerId(0), 65_536, inbox.clone()));
    let bye = "BYE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKb1\r\nFrom: <sip:b@h>;tag=2\r\nTo: <sip:a@h>;tag=1\r\nCall-ID: a1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    stranger.send_to(bye.as_bytes(), gw).unwrap();
    let carrier = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    carrier.send_to(bye.as_bytes(), gw).unwrap();
    let ev = next_on(&mut queues.urgent, "the carrier's BYE with accepted work").await;
    assert!(
        matches!(ev, Event::Message { source, .. } if source.addr.ip().to_string() == "127.0.0.3")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        queues.urgent.try_recv().is_err(),
        "the stranger's was dropped"
    );
    assert!(queues.fresh.try_recv().is_err());
}

/// A listener on `[::]` hears an IPv4 peer as `::ffff:a.b.c.d`: the reader hands it on as
/// its IPv4 address, so the core matches it to its profile, its transactions and its
/// dialogs as it would on an IPv4 listener. Before, only the profile match knew the mapped
/// form, and a response to our INVITE from the peer found no transaction.
#[tokio::test]
async fn a_dual_stack_listener_hands_on_ipv4_peers_as_ipv4() {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect::default();
    let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let Ok(s) = bind("[::]:0".parse().unwrap(), Stack::Dual) else {
        return crate::engine::bind::no_ipv6_here("a dual-stack listener");
    };
    let port = s.local_addr().unwrap().port();
    tokio::spawn(reader(Arc::new(s), ListenerId(0), 65_536, inbox.clone()));
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.send_to(invite("z9hG4bKv6").as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(ev) = queues.fresh.try_recv() {
                return ev;
            }
            if let Ok(ev) = queues.urgent.try_recv() {
                return ev;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the peer's INVITE");
    let Event::Message { source, .. } = ev else {
        panic!("{ev:?}");
    };
    assert_eq!(source.addr, peer.local_addr().unwrap());
}

/// A reply to an IPv4 peer whose request came in on a dual-stack `[::]` listener leaves by
/// that listener (its port), not by another IPv4 one: before, only a listener of the
/// peer's address family was taken, and the reply came from another port.
#[tokio::test]
async fn a_reply_to_an_ipv4_peer_leaves_by_the_dual_stack_listener_it_came_in_on() {
    let v4 = Arc::new(bind("127.0.0.1:0".parse().unwrap(), Stack::Dual).unwrap());
    let Ok(v6) = bind("[::]:0".parse().unwrap(), Stack::Dual) else {
        return crate::engine::bind::no_ipv6_here("a dual-stack listener");
    };
    let v6 = Arc::new(v6);
    let (l4, l6) = (v4.local_addr().unwrap(), v6.local_addr().unwrap());
    let out = Out::new(vec![(v4, l4), (v6, l6)]);
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let to = Target {
        listener: Some(ListenerId(1)),
        ..Target::udp(peer.local_addr().unwrap())
    };
    out.send(to, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"));
    // A send that must wait for the socket goes from a task: let it run.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut buf = [0u8; 64];
    let (_, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(from.port(), l6.port());
    // A new request (no listener named) leaves by the IPv4 listener.
    out.send(
        Target::udp(peer.local_addr().unwrap()),
        Bytes::from_static(b"x"),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(from.port(), l4.port());
}

/// A stranger's INVITE, let in by `unknown_sources = "reject"` for its one 403, is not kept
/// in overload control's table of INVITEs let in; a peer's is. Before, a flood of spoofed
/// strangers' INVITEs pushed peers' entries out of that table, and a peer's retransmission
/// then got a fast 503 while the core went on with its call.
#[tokio::test]
async fn a_strangers_invite_is_not_remembered_as_let_in() {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect {
        unknown_sources: crate::config::UnknownSources::Reject,
        ..Protect::default()
    };
    let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let s = Arc::new(bind("127.0.0.1:0".parse().unwrap(), Stack::Dual).unwrap());
    let gw = s.local_addr().unwrap();
    tokio::spawn(reader(s, ListenerId(0), 65_536, inbox.clone()));
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    stranger
        .send_to(invite("z9hG4bKstr").as_bytes(), gw)
        .unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.send_to(invite("z9hG4bKpeer").as_bytes(), gw).unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), async {
        while got.len() < 2 {
            match queues.try_next() {
                Some(crate::engine::Event::Message {
                    source, screened, ..
                }) => got.push((source.addr.ip().to_string(), screened)),
                Some(_) => {}
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("both INVITEs reached the core");
    let ov = &inbox.overload;
    assert!(!ov.seen(key_of(ov, "127.0.0.9", &invite("z9hG4bKstr"))));
    assert!(ov.seen(key_of(ov, "127.0.0.2", &invite("z9hG4bKpeer"))));
    // Nor is it put to overload control here (no measure of load, and its 403 whatever the
    // load, as in the core): only the peer's comes screened. Before, both did.
    got.sort();
    assert_eq!(
        got,
        [
            ("127.0.0.2".to_string(), true),
            ("127.0.0.9".to_string(), false)
        ]
    );
}

/// The overload table's key of the INVITE `msg` from `ip`.
fn key_of(ov: &crate::engine::overload::Overload, ip: &str, msg: &str) -> u64 {
    let fast::Peek::NewInvite { head, branch } = fast::peek(msg.as_bytes()) else {
        panic!("not a new INVITE")
    };
    ov.invite_key(ip.parse().unwrap(), branch, &head)
}

/// On a dual-stack socket the reader learns each datagram's destination: an IPv4 packet
/// came to a mapped address, an IPv6 one to its own. That is what tells a real IPv4 peer
/// from an IPv6 packet whose source poses as it (`bind::mapped_impostor`).
#[tokio::test]
async fn a_dual_stack_socket_tells_which_family_a_datagram_came_over() {
    let Ok(s) = bind("[::]:0".parse().unwrap(), Stack::Dual) else {
        return crate::engine::bind::no_ipv6_here("a dual-stack listener");
    };
    let port = s.local_addr().unwrap().port();
    let mut buf = vec![0u8; 2048];
    let v4 = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    v4.send_to(b"over IPv4", ("127.0.0.1", port)).unwrap();
    let (_, src, _, dst) = recv_stamped(&s, &mut buf, &mut Instant::now())
        .await
        .unwrap();
    assert_eq!(src.ip().to_canonical(), v4.local_addr().unwrap().ip());
    assert_eq!(dst, Some("::ffff:127.0.0.1".parse().unwrap()));
    let Ok(v6) = std::net::UdpSocket::bind("[::1]:0") else {
        return crate::engine::bind::no_ipv6_here("the IPv6 loopback");
    };
    v6.send_to(b"over IPv6", ("::1", port)).unwrap();
    let (_, src, _, dst) = recv_stamped(&s, &mut buf, &mut Instant::now())
        .await
        .unwrap();
    assert_eq!(src, v6.local_addr().unwrap());
    assert_eq!(dst, Some("::1".parse().unwrap()));
}

/// The INVITE a peer at 127.0.0.2 sends to `to`, as the core gets it from the reader.
async fn heard(
    to: SocketAddr,
    queues: &mut crate::engine::inbox::Queues,
    peer: &std::net::UdpSocket,
    branch: &str,
) -> Target {
    peer.send_to(invite(branch).as_bytes(), to).unwrap();
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Event::Message { source, .. }) = queues.try_next() {
                return source;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the INVITE reached the core")
}

/// On a wildcard listener (`0.0.0.0`, `[::]`), an answer leaves from the address its request
/// came to (RFC 3581 §4), and a request we start from `[sip] advertise`. Before, both left
/// from what the kernel picked (127.0.0.1 here; on a host, its primary address rather than
/// a floating one the peer knows), which a peer or its firewall drops.
#[tokio::test]
async fn a_wildcard_listener_answers_from_the_address_it_was_sent_to() {
    for wildcard in ["0.0.0.0:0", "[::]:0"] {
        let mut cfg = crate::call::tests::config();
        cfg.protect = Protect::default();
        let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
        let Ok(s) = bind(wildcard.parse().unwrap(), Stack::Dual) else {
            crate::engine::bind::no_ipv6_here("a dual-stack listener");
            continue;
        };
        let s = Arc::new(s);
        let port = s.local_addr().unwrap().port();
        tokio::spawn(reader(s.clone(), ListenerId(0), 65_536, inbox.clone()));
        let out = Out::new(vec![(s.clone(), s.local_addr().unwrap())])
            .advertising(Some("127.0.0.4".parse().unwrap()));
        let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        for (i, gw) in ["127.0.0.3", "127.0.0.5"].into_iter().enumerate() {
            let to = SocketAddr::new(gw.parse().unwrap(), port);
            let source = heard(to, &mut queues, &peer, &format!("z9hG4bKw{i}")).await;
            out.send(source, Bytes::from_static(b"SIP/2.0 100 Trying\r\n\r\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (_, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(
                from, to,
                "{wildcard}: the answer leaves from where the request came"
            );
        }
        // A request we start names no listener: from the advertised address.
        out.send(
            Target::udp(peer.local_addr().unwrap()),
            Bytes::from_static(b"x"),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(
            from,
            SocketAddr::new("127.0.0.4".parse().unwrap(), port),
            "{wildcard}"
        );
        // An address the host does not have: sent as before, from the kernel's pick.
        let out = Out::new(vec![(s.clone(), s.local_addr().unwrap())])
            .advertising(Some("192.0.2.77".parse().unwrap()));
        out.send(
            Target::udp(peer.local_addr().unwrap()),
            Bytes::from_static(b"y"),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(from.port(), port, "{wildcard}: still sent");
    }
}

/// A datagram cannot have waited longer than since the socket was last found empty: a wall
/// clock stepped forward by 5 s (NTP, a VM resumed) makes a kernel stamp look 5 s old, and
/// before, what sat in the buffer across the step was taken as waiting that long and shed.
#[test]
fn a_forward_clock_step_does_not_age_what_waits_in_the_socket() {
    let now = Instant::now();
    let wall = SystemTime::now();
    let empty_at = now.checked_sub(Duration::from_millis(20)).unwrap_or(now);
    let stepped = wall - Duration::from_secs(5);
    let waited = kernel_wait(Some(stepped), wall, now, empty_at);
    assert!(waited <= Duration::from_millis(20), "{waited:?}");
    // A real wait, shorter than since the socket was empty, is believed.
    let long_ago = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
    let stamp = wall - Duration::from_millis(30);
    assert_eq!(
        kernel_wait(Some(stamp), wall, now, long_ago),
        Duration::from_millis(30)
    );
    assert_eq!(kernel_wait(None, wall, now, long_ago), Duration::ZERO);
    // A stamp from the future (a clock stepped back) is no wait.
    let ahead = wall + Duration::from_secs(3);
    assert_eq!(
        kernel_wait(Some(ahead), wall, now, long_ago),
        Duration::ZERO
    );
}

/// A panic in what one datagram sets off (here a test fault) costs that datagram: the
/// listener reads on and the next request reaches the core. Before, the reader task ended
/// with it, and the socket, still sending, heard nothing more.
#[tokio::test]
async fn a_panic_on_one_datagram_leaves_the_listener_reading() {
    let (_inbox, mut queues, gw) = reading();
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.send_to(b"PANIC-TEST sip:x SIP/2.0\r\n\r\n", gw)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.send_to(invite("z9hG4bKafter").as_bytes(), gw).unwrap();
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Event::Message { .. }) = queues.try_next() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the INVITE after the panic reached the core");
}

/// A socket kept full (a flood) does not hold the gateway's one thread: its reader yields
/// after a share of datagrams, and another task runs while datagrams still wait. Before,
/// the reader read until the socket was empty, and under a flood that was never: the core
/// and its timers stopped.
#[tokio::test(flavor = "current_thread")]
async fn a_reader_on_a_full_socket_lets_the_other_tasks_run() {
    let s = bind("127.0.0.1:0".parse().unwrap(), Stack::Dual).unwrap();
    let to = s.local_addr().unwrap();
    let flood = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut sent = 0usize;
    for _ in 0..400 {
        if flood.send_to(b"x", to).is_ok() {
            sent += 1;
        }
    }
    // What the socket's buffer holds of them (small datagrams: a few hundred).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = read.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut empty_at = Instant::now();
        while recv_stamped(&s, &mut buf, &mut empty_at).await.is_ok() {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let seen = tokio::spawn(async move { read.load(std::sync::atomic::Ordering::Relaxed) })
        .await
        .unwrap();
    reader.abort();
    assert!(sent > 200, "{sent}");
    assert!(
        (1..=128).contains(&seen),
        "the other task ran after {seen} datagrams were read"
    );
}

/// While overload control sheds, a peer's datagram that does not parse is dropped by the
/// reader, before it takes room in the new-work queue (the core would drop it anyway);
/// once nothing is shed, it goes to the core for its 400.
#[tokio::test]
async fn junk_is_dropped_at_the_reader_while_overload_control_sheds() {
    let (inbox, mut queues, gw) = reading();
    // 127.0.0.2: the test configuration's phone, a known peer.
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let junk = b"INVITE this is not SIP\r\n\r\n";
    inbox.overload.stand_for(Instant::now(), 2000);
    assert!(inbox.overload.share() > 0.0);
    peer.send_to(junk, gw).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(queues.fresh.try_recv().is_err(), "dropped while shedding");
    inbox.overload.drained();
    peer.send_to(junk, gw).unwrap();
    let ev = next_on(&mut queues.fresh, "queued once nothing is shed").await;
    assert!(matches!(ev, Event::Unparseable { raw, .. } if &raw[..] == junk));
}

/// A message the reader queues counts as the whole datagram it came in, padding after its
/// body included: the parsed message keeps that buffer alive. Counted by its parsed size,
/// `Content-Length: 0` and 60 KB of padding made each OPTIONS cost the new-work queue's
/// byte budget 300 bytes while it held 64 KiB. (Its parsed headers count on top:
/// `a_message_is_charged_its_parsed_headers_too`.)
#[tokio::test]
async fn a_queued_datagram_counts_as_all_its_bytes() {
    let (_inbox, mut queues, gw) = reading();
    let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let options = format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKpad1\r\n\
         From: <sip:a@h>;tag=f\r\nTo: <sip:x@h>\r\nCall-ID: pad1\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n{}",
        "x".repeat(60_000)
    );
    peer.send_to(options.as_bytes(), gw).unwrap();
    let ev = next_on(&mut queues.fresh, "queued with new work").await;
    let Event::Message { msg, held, .. } = ev else {
        panic!("not a message")
    };
    assert!(msg.wire_size() < 1_000);
    assert_eq!(held, msg.held_size(options.len()));
    assert!(held > options.len());
}

/// The next event on `queue`, waiting for it up to 2 s (`what` says what was awaited).
async fn next_on(queue: &mut tokio::sync::mpsc::Receiver<Event>, what: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(2), queue.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{what}"))
}

/// With branches checked (as the gateway runs), a response from a stranger we asked (a
/// carrier's second SBC answering our BYE from outside every `match`) carries our branch:
/// it goes with accepted work, as a peer's does. Before, it waited with new work and was
/// dropped with it in an overload. One with a branch not ours is dropped.
#[tokio::test]
async fn a_strangers_response_with_our_branch_goes_with_accepted_work() {
    let mut cfg = crate::call::tests::config();
    cfg.protect = Protect::default();
    let key = crate::sip::TagKey::from_seed(9);
    let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
    let inbox = inbox.checking_tags(key.clone());
    let s = Arc::new(bind("127.0.0.1:0".parse().unwrap(), Stack::Dual).unwrap());
    let gw = s.local_addr().unwrap();
    tokio::spawn(reader(s, ListenerId(0), 65_536, inbox.clone()));
    inbox.asked("127.0.0.9".parse().unwrap(), Instant::now());
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    let ok = |branch: &str| {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: s9\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    stranger
        .send_to(ok("z9hG4bKnotours").as_bytes(), gw)
        .unwrap();
    stranger
        .send_to(ok(&key.branch("0123456789abcdef")).as_bytes(), gw)
        .unwrap();
    let ev = next_on(
        &mut queues.urgent,
        "the stranger's answer with accepted work",
    )
    .await;
    assert!(matches!(
        ev,
        Event::Message {
            msg: crate::sip::Message::Response(_),
            ..
        }
    ));
    assert!(queues.fresh.try_recv().is_err());
    assert!(
        queues.urgent.try_recv().is_err(),
        "the other one was dropped"
    );
}

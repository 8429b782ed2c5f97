use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::config::Protect;
use crate::engine::inbox::FRESH;
use crate::txn::TxnId;
use registry::Down;
use writer::{ALL_WRITES_BUDGET, SharedBudget, WRITE_QUEUE};

fn request(method: &str, to_tag: &str, branch: &str) -> String {
    format!(
        "{method} sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5060;branch={branch}\r\n\
         From: <sip:1000@127.0.0.2>;tag=a\r\nTo: <sip:+8610123@127.0.0.1>{to_tag}\r\nCall-ID: {branch}\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The test configuration with `protect`, its inbox and queues.
fn inbox_with(
    protect: Protect,
) -> (
    crate::engine::inbox::Inbox,
    crate::engine::inbox::Queues,
    Protect,
) {
    let mut cfg = crate::call::tests::config();
    cfg.protect = protect.clone();
    let (inbox, queues) = crate::engine::inbox::Inbox::new(Arc::new(cfg), Instant::now());
    (inbox, queues, protect)
}

/// A registry of connections on the test configuration, and its inbox's queues (kept, not
/// read: what the registry's connections tell the core is not what these tests look at).
fn registry() -> (Registry, crate::engine::inbox::Queues) {
    let protect = Protect::default();
    let (inbox, queues, _) = inbox_with(protect.clone());
    let limits = Limits {
        max: 65_536,
        message_timeout: Duration::from_secs(5),
    };
    let reg = Registry::new(inbox, limits, Slots::new(&protect), ConnIds::default());
    (reg, queues)
}

/// The gateway's TCP accept loop on 127.0.0.1 for `inbox`; its address.
/// A TCP connection to `gw` from `ip` (an ephemeral port).
async fn connect_from(ip: &str, gw: SocketAddr) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
    sock.connect(gw).await.unwrap()
}

async fn listening(inbox: &crate::engine::inbox::Inbox, protect: &Protect) -> SocketAddr {
    listening_with(inbox, protect, Duration::from_secs(5)).await
}

/// [`listening`] with `message_timeout` as `[protect] tcp_message_timeout_s`.
async fn listening_with(
    inbox: &crate::engine::inbox::Inbox,
    protect: &Protect,
    message_timeout: Duration,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    let limits = Limits {
        max: 65_536,
        message_timeout,
    };
    tokio::spawn(accept(
        listener,
        limits,
        Slots::new(protect),
        ConnIds::default(),
        inbox.clone(),
    ));
    gw
}

/// With the queue of new work full, a peer's new INVITE over TCP is refused there and
/// then (503 over its connection), and the BYE behind it on the same connection still
/// reaches the core. Before, the reader waited for room for the INVITE, and read nothing
/// more from the connection: the BYE waited behind it. A CANCEL between them does not wait
/// for room among new work either: it goes with accepted work (before, it held up the
/// BYE as the INVITE once did); nor does a request in no dialog of ours, which is dropped.
#[tokio::test]
async fn a_full_queue_of_new_work_does_not_hold_up_what_follows_on_the_connection() {
    let (inbox, mut queues, protect) = inbox_with(Protect::default());
    // Tags checked: a request in no dialog of ours goes with new work.
    let inbox = inbox.checking_tags(crate::sip::TagKey::from_seed(9));
    let ours = crate::sip::IdGen::new(9).tag("z9hG4bKbye");
    let src = Target::udp("127.0.0.2:5060".parse().unwrap());
    let filler =
        crate::sip::parse_datagram(request("OPTIONS", "", "z9hG4bKfill").into(), 65535).unwrap();
    for _ in 0..FRESH {
        assert!(inbox.try_deliver(Event::Message {
            msg: filler.clone(),
            source: src,
            at: Instant::now(),
            screened: false,
            held: 0,
        }));
    }
    let gw = listening(&inbox, &protect).await;
    let mut conn = connect_from("127.0.0.2", gw).await;
    let mut both = request("INVITE", "", "z9hG4bKnew");
    both.push_str(&request("CANCEL", "", "z9hG4bKnew"));
    // The ACK of a 503 (its tag no dialog's) is dropped rather than waited for room.
    both.push_str(&request("ACK", ";tag=ov-503", "z9hG4bKnew"));
    both.push_str(&request("BYE", &format!(";tag={ours}"), "z9hG4bKbye"));
    conn.write_all(both.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), async {
        while got.len() < 2 {
            match queues.urgent.try_recv() {
                Ok(Event::Message {
                    msg: crate::sip::Message::Request(r),
                    ..
                }) => got.push(r.method()),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("the CANCEL and the BYE reached the core");
    assert_eq!(got, [crate::sip::Method::Cancel, crate::sip::Method::Bye]);
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf))
        .await
        .expect("an answer on the connection")
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(
        reply.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
        "{reply}"
    );
    assert!(reply.contains("\r\nRetry-After: 5\r\n"), "{reply}");
}

/// A response for a connection the peer closed before it was sent (a request and a FIN in
/// one segment): the gateway connects back only to a source a profile knows, and then to
/// the port of the response's Via sent-by (RFC 3261 §18.2.2), not to the closed
/// connection's own port; a stranger gets no connection at all. Before, the gateway
/// connected to the closed connection's address, whoever it was, outside every
/// per-source cap: a peer looping request+FIN filled the connection table.
#[tokio::test]
async fn a_response_for_a_closed_connection_goes_to_the_via_port_of_a_known_peer_only() {
    let (inbox, mut queues, protect) = inbox_with(Protect::default());
    // A small [protect] max_message_bytes: the gateway's own response may be larger (a
    // relayed SDP), and its Via is read from its line, not by parsing it again.
    let limits = Limits {
        max: 1024,
        message_timeout: Duration::from_secs(5),
    };
    let mut reg = Registry::new(inbox, limits, Slots::new(&protect), ConnIds::default());
    // The phone (127.0.0.2, known) listens where its Via says.
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let sent_by = listener.local_addr().unwrap();
    let response = |host: &str, port: u16| {
        Bytes::from(format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP {host}:{port};branch=z9hG4bKcb;received=127.0.0.2\r\n\
             From: <sip:1000@127.0.0.2>;tag=a\r\nTo: <sip:+8610123@127.0.0.1>;tag=b\r\nCall-ID: cb\r\n\
             CSeq: 1 OPTIONS\r\nX-Pad: {}\r\nContent-Length: 0\r\n\r\n",
            "p".repeat(1500)
        ))
    };
    let closed = |reg: &mut Registry, from: &str, id: u64| {
        let (tx, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
        let from: SocketAddr = from.parse().unwrap();
        reg.up(ConnId(id), from, tx);
        reg.down(ConnId(id));
        Target {
            transport: Transport::Tcp,
            addr: from,
            conn: Some(ConnId(id)),
            listener: None,
        }
    };
    let to_phone = closed(&mut reg, "127.0.0.2:40000", 7);
    assert_eq!(
        reg.send(to_phone, response("127.0.0.2", sent_by.port()), None),
        None
    );
    assert!(
        reg.connecting.contains_key(&sent_by),
        "connecting to the Via's port"
    );
    assert!(!reg.connecting.contains_key(&to_phone.addr));
    let (mut back, _) = tokio::time::timeout(Duration::from_secs(2), listener.accept())
        .await
        .expect("the gateway connected back")
        .unwrap();
    // The shell's part: the connection is up, what waited for it goes.
    let up = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match queues.urgent.try_recv() {
                Ok(Event::TcpUp { conn, peer, tx }) => return (conn, peer, tx),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("the connection came up");
    assert_eq!(up.1, sent_by);
    assert!(reg.up(up.0, up.1, up.2).is_empty());
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), back.read(&mut buf))
        .await
        .expect("the response came")
        .unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
    // A stranger whose connection closed: no connection, the message is dropped.
    let to_stranger = closed(&mut reg, "127.0.0.9:40000", 8);
    assert_eq!(
        reg.send(to_stranger, response("127.0.0.9", 5060), None),
        None
    );
    assert!(
        reg.connecting.is_empty(),
        "no connection toward the stranger"
    );
    // A connection whose writer has ended, its TcpDown not yet taken (the phone closed it
    // right after a BYE, the news queued behind it): the answer goes back as for one known
    // closed, here on the connection to its Via's port. Before, it went into the ended
    // writer's queue, was lost, and failed its transaction.
    let (tx, drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    let from: SocketAddr = "127.0.0.2:40002".parse().unwrap();
    reg.up(ConnId(9), from, tx);
    drop(drain);
    let ended = Target {
        transport: Transport::Tcp,
        addr: from,
        conn: Some(ConnId(9)),
        listener: None,
    };
    let txn = Some(TxnId::for_tests(5));
    let resp = response("127.0.0.2", sent_by.port());
    assert_eq!(reg.send(ended, resp, txn), None);
    let n = tokio::time::timeout(Duration::from_secs(2), back.read(&mut buf))
        .await
        .expect("the second response came")
        .unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
    // And the connection at the Via's port has ended too, its news not yet taken (the phone
    // closed the one we opened back as well): the next answer opens a new one there. Before,
    // it went into that ended writer, was lost, and failed its transaction.
    let (tx, drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(10), sent_by, tx);
    drop(drain);
    let gone = closed(&mut reg, "127.0.0.2:40003", 11);
    let txn = Some(TxnId::for_tests(6));
    assert_eq!(
        reg.send(gone, response("127.0.0.2", sent_by.port()), txn),
        None
    );
    assert!(reg.connecting.contains_key(&sent_by), "connecting anew");
    // A phone behind NAT (its Via names its private address, not the connection's): its
    // answer never goes onto a connection up at the NAT's address and the Via's port
    // (another host's there): dropped, its transaction failed, nothing written there.
    reg.connecting.clear();
    let (other_host, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(13), sent_by, other_host.clone());
    let natted = closed(&mut reg, "127.0.0.2:40004", 12);
    let txn = Some(TxnId::for_tests(7));
    assert_eq!(
        reg.send(natted, response("192.168.1.10", sent_by.port()), txn),
        txn
    );
    assert!(
        other_host.is_written(),
        "nothing onto another host's connection"
    );
    assert!(reg.connecting.is_empty());
    // With no connection there, one is opened (a port forwarded to it, a 1:1 NAT).
    reg.down(ConnId(13));
    let natted = closed(&mut reg, "127.0.0.2:40005", 14);
    let txn = Some(TxnId::for_tests(8));
    assert_eq!(
        reg.send(natted, response("192.168.1.10", sent_by.port()), txn),
        None
    );
    assert!(
        reg.connecting.contains_key(&sent_by),
        "a new connection there"
    );
}

/// A stranger's TCP message (let in by `unknown_sources = "reject"`) goes where its
/// datagram would: the queue of new work, whatever it is, never ahead of accepted work; and
/// what it may not be answered (an ACK, junk) is not even parsed: the connection closes.
/// Before, a stranger's response or in-dialog request went to the urgent queue, ahead of
/// every peer's new calls.
#[tokio::test]
async fn a_strangers_tcp_message_queues_as_its_datagram_would() {
    let (inbox, mut queues, protect) = inbox_with(Protect {
        unknown_sources: crate::config::UnknownSources::Reject,
        ..Protect::default()
    });
    let gw = listening(&inbox, &protect).await;
    let from_stranger = |text: String| async move {
        let mut conn = connect_from("127.0.0.9", gw).await;
        conn.write_all(text.as_bytes()).await.unwrap();
        conn
    };
    // A BYE with a To tag: in-dialog, which a peer's would take the urgent queue for.
    let _c = from_stranger(request("BYE", ";tag=x", "z9hG4bKsb")).await;
    let got = tokio::time::timeout(Duration::from_secs(2), queues.strangers.recv())
        .await
        .expect("the stranger's request was queued")
        .unwrap();
    assert!(matches!(got, Event::Message { .. }));
    // An ACK: nothing to answer, the connection is closed unread.
    let mut ack = from_stranger(request("ACK", ";tag=x", "z9hG4bKsa")).await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), ack.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (mut ups, mut downs) = (0, 0);
    while let Ok(ev) = queues.urgent.try_recv() {
        assert!(
            !matches!(ev, Event::Message { .. }),
            "a stranger's message went ahead of accepted work"
        );
        ups += usize::from(matches!(ev, Event::TcpUp { .. }));
        downs += usize::from(matches!(ev, Event::TcpDown { .. }));
    }
    assert!(queues.fresh.try_recv().is_err(), "the ACK was not queued");
    // Only the connection with something to answer was made known to the core: the ACK's
    // cost it nothing (before, each stranger's connection cost a TcpUp and a TcpDown).
    assert_eq!((ups, downs), (1, 0));
}

/// A peer behind NAT (its Via a private address) that sends a BYE and closes its side at
/// once (`shutdown(SHUT_WR)`) still gets the answer on that connection: its end of stream
/// waits for it (a half-closed socket takes writes). Before, the end aborted the writer at
/// once, and the answer went to a new connection toward the Via's port, where a NATed
/// phone listens on nothing. One not behind NAT gets it there, as before (see
/// `a_response_for_a_closed_connection_goes_to_the_via_port_of_a_known_peer_only`).
#[tokio::test]
async fn a_peer_behind_nat_that_half_closes_after_a_request_gets_its_answer() {
    for natted in [true, false] {
        let (tx, conn, _queues) = half_closed_after_a_bye(natted).await;
        // The core answers a moment after the end of stream was read.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = tx.send(Bytes::from_static(
            b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        ));
        assert_eq!(sent, natted, "natted: {natted}");
        if natted {
            let mut got = Vec::new();
            let mut conn = conn;
            let read = tokio::time::timeout(Duration::from_secs(3), conn.read_to_end(&mut got));
            assert!(
                read.await.is_ok(),
                "the connection was closed after the answer"
            );
            assert!(got.starts_with(b"SIP/2.0 200 OK\r\n"), "{got:?}");
        }
    }
}

/// A peer's connection that sent a BYE (its Via at a private address when `natted`) and
/// closed its side: the writer the core got, and the peer's end.
async fn half_closed_after_a_bye(
    natted: bool,
) -> (Writer, tokio::net::TcpStream, crate::engine::inbox::Queues) {
    let (inbox, mut queues, protect) = inbox_with(Protect::default());
    let gw = listening(&inbox, &protect).await;
    let mut conn = connect_from("127.0.0.2", gw).await;
    let mut bye = request("BYE", ";tag=x", "z9hG4bKhc");
    if natted {
        bye = bye.replace(
            "Via: SIP/2.0/TCP 127.0.0.2:5060",
            "Via: SIP/2.0/TCP 10.0.0.5:5060",
        );
    }
    conn.write_all(bye.as_bytes()).await.unwrap();
    conn.shutdown().await.unwrap();
    let (mut tx, mut message) = (None, false);
    tokio::time::timeout(Duration::from_secs(2), async {
        while tx.is_none() || !message {
            match queues.urgent.recv().await {
                Some(Event::TcpUp { tx: t, .. }) => tx = Some(t),
                Some(Event::Message { .. }) => message = true,
                Some(_) => {}
                None => panic!("the queue closed"),
            }
        }
    })
    .await
    .expect("the connection and its BYE");
    (tx.unwrap(), conn, queues)
}

/// A stranger (`unknown_sources = "reject"`) whose request comes in short segments, after
/// a keep-alive, is heard once its method is in. Before, its first read was judged alone
/// (`\r\n`, or `INVI`: neither a request nor a response) and the connection closed
/// without its 403.
#[tokio::test]
async fn a_strangers_request_in_short_segments_is_heard() {
    let (inbox, mut queues, protect) = inbox_with(Protect {
        unknown_sources: crate::config::UnknownSources::Reject,
        ..Protect::default()
    });
    let gw = listening(&inbox, &protect).await;
    let mut conn = connect_from("127.0.0.9", gw).await;
    conn.set_nodelay(true).unwrap();
    let text = request("OPTIONS", "", "z9hG4bKseg");
    for piece in ["\r\n", "OPTI", &text[4..]] {
        conn.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = tokio::time::timeout(Duration::from_secs(2), queues.strangers.recv())
        .await
        .expect("the stranger's request was queued")
        .unwrap();
    assert!(matches!(got, Event::Message { .. }));
}

/// With the strangers' queue full, a stranger's request over TCP is dropped before its
/// connection is made known to the core: no `TcpUp`, no `TcpDown` with accepted work.
/// Before, each such connection cost both, beside the peers' BYEs and answers.
#[tokio::test]
async fn a_strangers_request_that_finds_no_room_costs_accepted_work_nothing() {
    let (inbox, mut queues, protect) = inbox_with(Protect {
        unknown_sources: crate::config::UnknownSources::Reject,
        ..Protect::default()
    });
    let junk = || Event::Unparseable {
        raw: Bytes::from_static(b"x"),
        why: String::new(),
        status: crate::sip::Unreadable::Malformed,
        source: Target {
            transport: Transport::Udp,
            addr: "127.0.0.9:5060".parse().unwrap(),
            conn: None,
            listener: None,
        },
    };
    while inbox.try_deliver_stranger(junk()) {}
    let gw = listening(&inbox, &protect).await;
    let mut conn = connect_from("127.0.0.9", gw).await;
    conn.write_all(request("OPTIONS", "", "z9hG4bKfull").as_bytes())
        .await
        .unwrap();
    assert!(closed_within(&mut conn, Duration::from_secs(2)).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        queues.urgent.try_recv().is_err(),
        "nothing with accepted work"
    );
}

/// A source that opens connections faster than `[protect] source_rate` has those over the
/// pace closed at once (a second's worth taken); before, every one was served, each
/// costing the signalling thread its news.
#[tokio::test]
async fn connections_past_a_sources_pace_are_closed_at_once() {
    let (inbox, _queues, protect) = inbox_with(Protect {
        source_rate: Some(3),
        ..Protect::default()
    });
    let gw = listening(&inbox, &protect).await;
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(connect_from("127.0.0.2", gw).await);
    }
    let mut closed = 0;
    for c in &mut conns {
        closed += usize::from(closed_within(c, Duration::from_millis(300)).await);
    }
    assert_eq!(closed, 2, "the three of the pace stay open");
}

/// A peer's message that frames but does not parse (a header over the parser's limit) is
/// handed to the core as unparseable (a 400 goes back, as over UDP), and the BYE behind it
/// on the connection still arrives. Before, the connection was closed and the BYE lost. (The
/// unparseable one waits with new work, the BYE with accepted work.)
#[tokio::test]
async fn a_peers_unparseable_message_over_tcp_does_not_lose_what_follows() {
    let (inbox, mut queues, protect) = inbox_with(Protect::default());
    let gw = listening(&inbox, &protect).await;
    let mut conn = connect_from("127.0.0.2", gw).await;
    let pad = "p".repeat(9000);
    let mut both = request("OPTIONS", "", "z9hG4bKbig").replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Pad: {pad}\r\n"),
    );
    both.push_str(&request("BYE", ";tag=x", "z9hG4bKbye2"));
    conn.write_all(both.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), async {
        while got.len() < 2 {
            match queues
                .urgent
                .try_recv()
                .or_else(|_| queues.fresh.try_recv())
            {
                Ok(Event::Unparseable { .. }) => got.push("unparseable"),
                Ok(Event::Message {
                    msg: crate::sip::Message::Request(r),
                    ..
                }) if r.method() == crate::sip::Method::Bye => got.push("bye"),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("both reached the core");
    got.sort_unstable();
    assert_eq!(got, ["bye", "unparseable"]);
}

/// Messages for a connection still opening are held up to what its writer will take once
/// it is up ([`WRITE_QUEUE`]); past that they are dropped at once (counted). Before, the
/// list grew with every message sent toward a trunk slow to accept, and what was over the
/// writer's room failed only when the connection came up.
#[tokio::test]
async fn messages_for_a_connection_still_opening_are_bounded() {
    let (mut reg, _queues) = registry();
    let listener = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let to = Target {
        transport: Transport::Tcp,
        addr: listener.local_addr().unwrap(),
        conn: None,
        listener: None,
    };
    assert_eq!(reg.least_room(), usize::MAX, "no connection bounds a turn");
    // (The connect task has not run: this test does not yield.)
    for _ in 0..WRITE_QUEUE + 500 {
        reg.send(
            to,
            Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
            None,
        );
    }
    assert_eq!(reg.connecting[&to.addr].1.len(), WRITE_QUEUE);
    assert_eq!(
        reg.least_room(),
        0,
        "a connection opening counts as one open"
    );
    // In bytes too: what waits is no more than the writer takes once the connection is up.
    let far = Target {
        addr: "127.0.0.3:9".parse().unwrap(),
        ..to
    };
    let long = Bytes::from(vec![b'x'; 60 * 1024]);
    for _ in 0..100 {
        reg.send(far, long.clone(), None);
    }
    assert_eq!(
        reg.connecting[&far.addr].1.len(),
        writer::WRITE_BUDGET / long.len()
    );
}

/// What waits for connections still opening counts against the budget the writers of the
/// gateway's own connections share: 70 trunks slow to accept hold 16 MiB together, not
/// 70 MiB, and one that fails gives its share back. Before, nothing of it was counted.
#[tokio::test]
async fn messages_for_connections_still_opening_count_against_the_shared_budget() {
    let (mut reg, _queues) = registry();
    let at = |i: u16| Target {
        transport: Transport::Tcp,
        addr: SocketAddr::from(([127, 0, 0, 3], 20_000 + i)),
        conn: None,
        listener: None,
    };
    let long = Bytes::from(vec![b'x'; 60 * 1024]);
    let fill = |reg: &mut Registry, i: u16| {
        for _ in 0..20 {
            reg.send(at(i), long.clone(), None);
        }
    };
    // (The connect tasks have not run: this test does not yield.)
    for i in 0..70 {
        fill(&mut reg, i);
    }
    let waiting = |reg: &Registry| reg.connecting.values().map(|(_, q)| q.len()).sum::<usize>();
    assert_eq!(waiting(&reg), writer::OWN_WRITES_BUDGET / long.len());
    let (conn, _) = &reg.connecting[&at(0).addr];
    let before = waiting(&reg);
    reg.down(*conn);
    fill(&mut reg, 70);
    assert_eq!(
        waiting(&reg),
        before,
        "the failed one's share taken by another"
    );
}

/// The peer 127.0.0.2 connects to `gw` and sends `n` 180s at once (accepted work, which
/// is queued as it is read); its connection.
async fn ringing_burst(gw: SocketAddr, n: usize) -> tokio::net::TcpStream {
    let mut conn = connect_from("127.0.0.2", gw).await;
    let burst: String = (0..n)
        .map(|i| {
            format!(
                "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKp{i}\r\n\
                 From: <sip:1000@127.0.0.1>;tag=a\r\nTo: <sip:2000@127.0.0.2>;tag=b\r\n\
                 Call-ID: burst{i}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
        })
        .collect();
    conn.write_all(burst.as_bytes()).await.unwrap();
    conn
}

/// A peer over `[protect] source_rate` on its own connection is read no faster than the
/// rate, and loses neither a message nor the connection. Before, its connection was not held
/// to the rate at all: one peer could stream responses at line rate into the queue served
/// before every peer's new calls.
#[tokio::test]
async fn a_peer_over_its_rate_on_tcp_is_paced_and_loses_nothing() {
    let (inbox, mut queues, protect) = inbox_with(Protect {
        source_rate: Some(20),
        ..Protect::default()
    });
    let gw = listening(&inbox, &protect).await;
    let t0 = std::time::Instant::now();
    let mut conn = ringing_burst(gw, 60).await;
    let mut got = 0;
    let mut times = Vec::new();
    let mut count = |got: &mut usize, queues: &mut crate::engine::inbox::Queues| {
        while let Ok(ev) = queues.urgent.try_recv() {
            if let Event::Message { at, .. } = ev {
                *got += 1;
                times.push(at);
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    count(&mut got, &mut queues);
    // A second's worth (20) at once, then 20 a second, however late this thread woke.
    let allowed = 20 + (20.0 * t0.elapsed().as_secs_f64()).ceil() as usize + 1;
    assert!(
        got <= allowed,
        "{got} of 60 read at once ({allowed} allowed)"
    );
    tokio::time::timeout(Duration::from_secs(20), async {
        while got < 60 {
            count(&mut got, &mut queues);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every message was read in the end");
    // Each is stamped when it was let through, not when its bytes came: overload control
    // must not count the peer's wait (TCP's) as queueing of ours.
    let spread = times[times.len() - 1].duration_since(times[0]);
    assert!(spread >= Duration::from_millis(1500), "{spread:?}");
    // The connection is still up: a ping gets its pong.
    conn.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut pong))
        .await
        .expect("a pong")
        .unwrap();
    assert_eq!(&pong, b"\r\n");
}

/// A request in a dialog whose peer's connection has closed (a NAT's or balancer's idle
/// timeout mid-call) goes to the port the peer's Contact (its Request-URI) names when that
/// names the peer's address. Before, the gateway connected to the closed connection's own
/// port, the peer's ephemeral one where nothing listens: the BYE was lost and the far end
/// kept the call up.
#[tokio::test]
async fn a_request_for_a_closed_connection_goes_to_the_peers_contact_port() {
    let (mut reg, _queues) = registry();
    let from: SocketAddr = "127.0.0.2:40001".parse().unwrap();
    let (tx, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(3), from, tx);
    reg.down(ConnId(3));
    let target = Target {
        transport: Transport::Tcp,
        addr: from,
        conn: Some(ConnId(3)),
        listener: None,
    };
    let bye = |uri: &str| {
        Bytes::from(format!(
            "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKrq\r\n\
             From: <sip:2000@127.0.0.1>;tag=b\r\nTo: <sip:1000@127.0.0.2>;tag=a\r\nCall-ID: rq\r\n\
             CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ))
    };
    assert_eq!(
        reg.send(target, bye("sip:1000@127.0.0.2:5077;transport=tcp"), None),
        None
    );
    assert!(
        reg.connecting
            .contains_key(&"127.0.0.2:5077".parse().unwrap()),
        "connecting to the Contact's port"
    );
    assert!(!reg.connecting.contains_key(&from));
}

/// A request in a dialog whose peer behind NAT (its Contact a private address, its
/// connection from a public one) has lost its connection is not put on another connection
/// up at that address and port, nor on a new one there: either reaches the NAT's port,
/// perhaps another host's now, which would get this dialog's Call-ID, tags and numbers.
/// Dropped (its transaction fails). Before, the BYE went onto it. A review found it.
#[tokio::test]
async fn a_request_for_a_natted_peers_closed_connection_goes_onto_no_other_at_its_port() {
    let (mut reg, _queues) = registry();
    let nat: SocketAddr = "127.0.0.2:40009".parse().unwrap();
    let (old, _d1) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(3), nat, old);
    reg.down(ConnId(3));
    let (other, _d2) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(5), nat, other.clone());
    let target = Target {
        transport: Transport::Tcp,
        addr: nat,
        conn: Some(ConnId(3)),
        listener: None,
    };
    let bye = |uri: &str| {
        Bytes::from(format!(
            "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKnat\r\n\
             From: <sip:2000@127.0.0.1>;tag=b\r\nTo: <sip:1000@127.0.0.2>;tag=a\r\nCall-ID: nat\r\n\
             CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ))
    };
    let txn = Some(TxnId::for_tests(9));
    assert_eq!(
        reg.send(target, bye("sip:1000@192.168.1.20:5060;transport=tcp"), txn),
        txn,
        "dropped: its transaction fails"
    );
    assert!(other.is_written(), "nothing on the other connection");
    // Nor a new connection there, once none is up: the NAT's port may be another host's.
    reg.down(ConnId(5));
    assert_eq!(
        reg.send(target, bye("sip:1000@192.168.1.20:5060;transport=tcp"), txn),
        txn
    );
    assert!(reg.connecting.is_empty(), "no connection to the NAT's port");
    // A Contact naming a host name, or another public address (an SBC's other interface),
    // says nothing of NAT: the connection there is used.
    let (again, _d3) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(6), nat, again.clone());
    assert_eq!(
        reg.send(target, bye("sip:1000@phone.example.com;transport=tcp"), txn),
        None
    );
    assert!(!again.is_written(), "written there");
    let (third, _d4) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.down(ConnId(6));
    reg.up(ConnId(7), nat, third.clone());
    assert_eq!(
        reg.send(target, bye("sip:1000@198.51.100.7:5060;transport=tcp"), txn),
        None
    );
    assert!(!third.is_written(), "written there too");
}

/// The same with a proxy on the path: a dialog the proxy record-routed goes to the proxy's
/// port its top Route names (RFC 3261 §12.2.1.1), not to the closed connection's, nor to the
/// Contact behind it (another host). Before, the BYE went to the closed connection's port.
#[tokio::test]
async fn a_request_for_a_closed_connection_goes_to_the_proxy_its_route_names() {
    let (mut reg, _queues) = registry();
    let from: SocketAddr = "127.0.0.2:40002".parse().unwrap();
    let (tx, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(4), from, tx);
    reg.down(ConnId(4));
    let target = Target {
        transport: Transport::Tcp,
        addr: from,
        conn: Some(ConnId(4)),
        listener: None,
    };
    let bye = Bytes::from_static(
        b"BYE sip:1000@10.1.1.5;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKrr\r\n\
          Route: <sip:127.0.0.2:5066;transport=tcp;lr>\r\n\
          From: <sip:2000@127.0.0.1>;tag=b\r\nTo: <sip:1000@127.0.0.2>;tag=a\r\nCall-ID: rr\r\n\
          CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(reg.send(target, bye, None), None);
    assert!(
        reg.connecting
            .contains_key(&"127.0.0.2:5066".parse().unwrap()),
        "connecting to the proxy's port"
    );
    assert!(!reg.connecting.contains_key(&from));
}

/// A UDP flood spoofed in a peer's name does not slow the peer's own TCP connection: the
/// connection's pace is its own, apart from the guard of datagrams. Before (this session's
/// first pacing), both drew on one guard cell, and a spoofer draining it held the trunk's
/// connection to a few messages a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_udp_flood_does_not_slow_a_peers_connection() {
    let (inbox, mut queues, protect) = inbox_with(Protect {
        source_rate: Some(20),
        ..Protect::default()
    });
    let gw = listening(&inbox, &protect).await;
    let peer: std::net::IpAddr = [127, 0, 0, 2].into();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spoofer = {
        let (inbox, stop) = (inbox.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = inbox.admit(peer, Instant::now(), false);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _conn = ringing_burst(gw, 10).await;
    let mut got = 0;
    let read = tokio::time::timeout(Duration::from_secs(3), async {
        while got < 10 {
            match queues.urgent.try_recv() {
                Ok(Event::Message { .. }) => got += 1,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spoofer.join().unwrap();
    assert!(read.is_ok(), "{got} of 10 read within its own rate");
}

/// A connection the gateway opens leaves from `[sip] advertise` when this host has it (a
/// floating address the peer knows us by), else from the kernel's pick. Before, always from
/// the kernel's pick (127.0.0.1 here; on a host, its primary address).
#[tokio::test]
async fn our_connections_leave_from_the_advertised_address() {
    let (inbox, _queues, protect) = inbox_with(Protect::default());
    let peer = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let to = Target {
        transport: Transport::Tcp,
        addr: peer.local_addr().unwrap(),
        conn: None,
        listener: None,
    };
    for (advertise, seen) in [("127.0.0.4", "127.0.0.4"), ("192.0.2.77", "127.0.0.1")] {
        let limits = Limits {
            max: 4096,
            message_timeout: Duration::from_secs(5),
        };
        let mut reg = Registry::new(
            inbox.clone(),
            limits,
            Slots::new(&protect),
            ConnIds::default(),
        )
        .advertising(advertise.parse().ok());
        assert_eq!(reg.send(to, Bytes::from_static(b"OPTIONS"), None), None);
        let (_, from) = tokio::time::timeout(Duration::from_secs(2), peer.accept())
            .await
            .expect("our connection")
            .unwrap();
        assert_eq!(from.ip().to_string(), seen, "advertise {advertise}");
    }
}

/// A connection whose reader panics (here a test fault) is closed and the core told it is
/// down. Before, the writer kept the socket open, unread, and the core never heard: a
/// trunk's connection stayed the one requests went to, and none was opened anew.
#[tokio::test]
async fn a_connection_whose_reader_panics_is_closed_and_reported_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (inbox, mut queues, protect) = inbox_with(Protect::default());
    let gw = listening(&inbox, &protect).await;
    let mut s = connect_from("127.0.0.2", gw).await;
    s.write_all(b"PANIC-TEST\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("the connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut downs = 0;
    while let Ok(ev) = queues.urgent.try_recv() {
        downs += usize::from(matches!(ev, Event::TcpDown { .. }));
    }
    while let Ok(ev) = queues.fresh.try_recv() {
        downs += usize::from(matches!(ev, Event::TcpDown { .. }));
    }
    assert_eq!(downs, 1);
}

/// What `down` reports of a connection: the requests of ours sent on it (the latest, and
/// not our responses), for the core to fail those still unanswered; nothing of a
/// connection we closed ourselves.
#[tokio::test]
async fn a_connection_that_dies_reports_the_requests_sent_on_it() {
    let (mut reg, _queues) = registry();
    let peer: SocketAddr = "127.0.0.3:5060".parse().unwrap();
    let target = Target {
        transport: Transport::Tcp,
        addr: peer,
        conn: None,
        listener: None,
    };
    let request = Bytes::from(request("OPTIONS", "", "z9hG4bKdn1"));
    let response = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    let (tx, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(1), peer, tx);
    let ids: Vec<TxnId> = (0..600).map(TxnId::for_tests).collect();
    for id in &ids {
        assert_eq!(reg.send(target, request.clone(), Some(*id)), None);
    }
    assert_eq!(
        reg.send(target, response, Some(TxnId::for_tests(999))),
        None
    );
    // The transactions that have ended are forgotten; every one still going is failed
    // when the connection dies, however many (before, only the last 128: a trunk gone
    // without a reset left the older ones to their Timer B).
    let ended: std::collections::HashSet<TxnId> = ids[..100].iter().copied().collect();
    reg.forget_ended(|t| !ended.contains(&t));
    let down = reg.down(ConnId(1));
    assert!(down.failed.is_empty());
    assert_eq!(
        down.lost,
        ids[100..].to_vec(),
        "those still going, no response"
    );
    // Closed by us: nothing to report.
    let (tx, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(2), peer, tx);
    reg.send(target, request, Some(TxnId::for_tests(1)));
    reg.close(ConnId(2));
    assert_eq!(reg.down(ConnId(2)), Down::default());
}

/// A provisional response that finds its connection backed up (here the budget all peers
/// share, spent by others) is dropped, its INVITE's transaction left to go on: before, it
/// was reported as a transport failure and the call failed `caller_unreachable`. A final
/// response (or a request) so lost still fails its transaction.
#[tokio::test]
async fn a_provisional_lost_to_a_backed_up_queue_fails_nothing() {
    let (mut reg, _queues) = registry();
    let peer: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    let spent = SharedBudget::new(64);
    let (tx, _drain) = Writer::new((spent, None));
    reg.up(ConnId(1), peer, tx);
    let target = Target {
        transport: Transport::Tcp,
        addr: peer,
        conn: Some(ConnId(1)),
        listener: None,
    };
    let txn = Some(TxnId::for_tests(7));
    let long = |status: &str| Bytes::from(format!("SIP/2.0 {status}\r\n{}", "x".repeat(200)));
    assert_eq!(reg.send(target, long("180 Ringing"), txn), None);
    assert_eq!(reg.send(target, long("100 Trying"), txn), None);
    assert_eq!(reg.send(target, long("200 OK"), txn), txn);
    assert_eq!(reg.send(target, long("486 Busy Here"), txn), txn);
    // The same on a connection opened back toward the peer (its own closed, RFC 3261
    // §18.2.2) and flushed into a spent budget when it comes up: the final fails, the
    // provisional does not.
    let (tx, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.up(ConnId(2), "127.0.0.2:40002".parse().unwrap(), tx);
    reg.down(ConnId(2));
    let gone = Target {
        conn: Some(ConnId(2)),
        addr: "127.0.0.2:40002".parse().unwrap(),
        ..target
    };
    let via = |status: &str| {
        Bytes::from(format!(
            "SIP/2.0 {status}\r\nVia: SIP/2.0/TCP 127.0.0.2:5999;branch=z9hG4bKpv\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    };
    let (ringing, answer) = (Some(TxnId::for_tests(8)), Some(TxnId::for_tests(9)));
    assert_eq!(reg.send(gone, via("180 Ringing"), ringing), None);
    assert_eq!(reg.send(gone, via("200 OK"), answer), None);
    let back: SocketAddr = "127.0.0.2:5999".parse().unwrap();
    let conn = reg.connecting.get(&back).map(|(c, _)| *c).expect("opening");
    let (tx, _drain) = Writer::new((SharedBudget::new(16), None));
    assert_eq!(reg.up(conn, back, tx), vec![TxnId::for_tests(9)]);
}

/// A connection from a peer's `address` outside its `match` (a carrier calling from one SBC
/// while we call another, which connects back with its answer, RFC 3261 §18.2.2) is a
/// peer's, as its datagrams are: it is made known to the core, not closed at once. Before,
/// it was a stranger's over TCP alone, and the answer was lost.
#[tokio::test]
async fn a_peers_address_outside_its_match_is_no_stranger_over_tcp() {
    let mut cfg = crate::call::tests::config();
    let name = crate::config::PeerName("carrier-a".into());
    let mut p = (**cfg.profiles.get(&name).unwrap()).clone();
    p.address = Target {
        transport: Transport::Tcp,
        addr: "127.0.0.13:5060".parse().unwrap(),
        conn: None,
        listener: None,
    };
    cfg.profiles.insert(name, Arc::new(p));
    let protect = cfg.protect.clone();
    let (inbox, mut queues) = crate::engine::inbox::Inbox::new(Arc::new(cfg), Instant::now());
    let gw = listening(&inbox, &protect).await;
    let _s = connect_from("127.0.0.13", gw).await;
    let up = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match queues.urgent.try_recv() {
                Ok(Event::TcpUp { peer, .. }) => return peer,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("the connection is the peer's");
    assert_eq!(up.ip().to_string(), "127.0.0.13");
}

/// A connection a call's dialog sends on counts as active however quiet the call (its own,
/// or the one to its address when the dialog names none); another connection does not.
/// Before, a call without re-INVITEs lost its phone's connection after five minutes, and
/// with it the way to send the phone its BYE.
#[tokio::test]
async fn the_connections_calls_send_on_are_kept_however_quiet() {
    let (mut reg, _queues) = registry();
    let writer = || Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    let phone: SocketAddr = "127.0.0.3:40001".parse().unwrap();
    let pbx: SocketAddr = "127.0.0.4:5060".parse().unwrap();
    let idle: SocketAddr = "127.0.0.5:5060".parse().unwrap();
    let (w_phone, _d1) = writer();
    let (w_pbx, _d2) = writer();
    let (w_idle, _d3) = writer();
    reg.up(ConnId(1), phone, w_phone.clone());
    reg.up(ConnId(2), pbx, w_pbx.clone());
    reg.up(ConnId(3), idle, w_idle.clone());
    let tcp = |addr, conn| Target {
        transport: Transport::Tcp,
        addr,
        conn,
        listener: None,
    };
    reg.keep_in_use([tcp(phone, Some(ConnId(1))), tcp(pbx, None)].into_iter());
    assert!(w_phone.wrote_lately(), "the phone's own connection");
    assert!(
        w_pbx.wrote_lately(),
        "the connection to the dialog's address"
    );
    assert!(!w_idle.wrote_lately(), "no call on it");
    // A dialog's connection that closed since: the one to its address now.
    reg.down(ConnId(1));
    let (w_again, _d4) = writer();
    reg.up(ConnId(4), phone, w_again.clone());
    reg.keep_in_use([tcp(phone, Some(ConnId(1)))].into_iter());
    assert!(w_again.wrote_lately());
    // One whose connection closed and was opened back by us to the port its Contact names
    // (not the one it came from); one of ours to another host is not kept.
    reg.down(ConnId(4));
    let back: SocketAddr = "127.0.0.3:5060".parse().unwrap();
    let other: SocketAddr = "127.0.0.6:5060".parse().unwrap();
    let (w_back, _d5) = writer();
    let (w_other, _d6) = writer();
    reg.ours.insert(ConnId(5));
    reg.ours.insert(ConnId(6));
    reg.up(ConnId(5), back, w_back.clone());
    reg.up(ConnId(6), other, w_other.clone());
    reg.keep_in_use([tcp(phone, Some(ConnId(4)))].into_iter());
    assert!(
        w_back.wrote_lately(),
        "the connection opened back to the host"
    );
    assert!(!w_other.wrote_lately(), "no call toward that host");
    // Its end names the address of a connection we opened (a registration over it renews
    // its binding), not of one a peer opened.
    assert_eq!(reg.down(ConnId(6)).closed, Some(other));
    assert_eq!(reg.down(ConnId(2)).closed, None);
}

/// A connection of ours that closed, its `TcpDown` still queued when something is sent to
/// its address (which forgets it for sending, and opens another): its end still names the
/// address, so a registration over it renews its binding. Before, that send made the end
/// report nothing, and the registrar's binding stayed on the dead connection until the
/// next refresh.
#[tokio::test]
async fn an_end_of_ours_forgotten_by_a_send_still_names_its_address() {
    let (mut reg, _queues) = registry();
    let registrar: SocketAddr = "127.0.0.6:5060".parse().unwrap();
    let (w, drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    reg.ours.insert(ConnId(7));
    reg.up(ConnId(7), registrar, w);
    drop(drain);
    let target = Target {
        transport: Transport::Tcp,
        addr: registrar,
        conn: None,
        listener: None,
    };
    let _ = reg.send(
        target,
        Bytes::from_static(b"OPTIONS sip:r SIP/2.0\r\n\r\n"),
        None,
    );
    assert!(!reg.conns.contains_key(&ConnId(7)), "forgotten for sending");
    assert_eq!(reg.down(ConnId(7)).closed, Some(registrar));
    assert!(reg.ended.is_empty());
}

/// A connection's reader that panics (a defect) while accepted work is full still tells the
/// core the connection is down, once there is room. Before, that word was dropped with the
/// full queue, and the registry kept the dead connection as the one to send on for good.
#[tokio::test]
async fn a_panicked_reader_is_reported_down_through_a_full_queue() {
    let (inbox, mut queues, _) = inbox_with(Protect::default());
    let (other, conn) = (ConnId(1), ConnId(2));
    while inbox.try_deliver(Event::TcpDown { conn: other }) {}
    let writer = tokio::spawn(std::future::pending::<()>()).abort_handle();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let unwound = metrics::with_local_recorder(&recorder, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _unwound = Unwound {
                writer,
                conn,
                inbox: inbox.clone(),
            };
            panic!("a test fault");
        }))
    });
    assert!(unwound.is_err());
    // Counted, as a UDP datagram whose handling panicked is (before, only logged).
    let text = recorder.handle().render();
    assert!(
        text.contains("trunkgate_refused_messages_total{reason=\"tcp_panicked\"} 1"),
        "{text}"
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match queues.urgent.recv().await {
                Some(Event::TcpDown { conn: c }) if c == conn => break,
                Some(_) => {}
                None => panic!("the queue closed"),
            }
        }
    })
    .await
    .expect("the panicked reader's connection reported down");
}

/// Whether the far end closed `conn` within `wait` (a read that ends; a timeout is "no").
async fn closed_within(conn: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 64];
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, conn.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A peer's connection that never carries a message nor a keep-alive is closed after the
/// message timeout, as a stranger's is: before, it held its slot for the idle timeout's
/// 300 s, and a host in a wide `match` could fill `max_tcp_total` with silent connections.
/// One that pings is a connection in use (the idle rule), and ours toward a peer that never
/// sends stays open.
#[tokio::test]
async fn a_peers_connection_that_never_sends_a_byte_is_closed_after_the_message_timeout() {
    let (inbox, _queues, protect) = inbox_with(Protect::default());
    let timeout = Duration::from_millis(300);
    let gw = listening_with(&inbox, &protect, timeout).await;
    let mut silent = connect_from("127.0.0.2", gw).await;
    let mut pinging = connect_from("127.0.0.2", gw).await;
    pinging.write_all(b"\r\n\r\n").await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "the silent connection is closed"
    );
    assert!(
        !closed_within(&mut pinging, Duration::from_millis(600)).await,
        "the connection that pinged stays"
    );
    // Ours toward a peer: the peer may never send on it.
    let peer = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let limits = Limits {
        max: 4096,
        message_timeout: timeout,
    };
    let mut reg = Registry::new(inbox, limits, Slots::new(&protect), ConnIds::default());
    let to = Target {
        transport: Transport::Tcp,
        addr: peer.local_addr().unwrap(),
        conn: None,
        listener: None,
    };
    assert_eq!(reg.send(to, Bytes::from_static(b"OPTIONS"), None), None);
    let (mut ours, _) = tokio::time::timeout(Duration::from_secs(2), peer.accept())
        .await
        .expect("our connection")
        .unwrap();
    assert!(
        !closed_within(&mut ours, Duration::from_millis(900)).await,
        "our own connection stays open"
    );
}

/// Every connection, ours and the peers', finds out a dead peer within seconds: what we
/// sent may go 30 s unacknowledged (`TCP_USER_TIMEOUT`), and an idle connection is probed
/// after 15 s, then every 5 s: three probes before the user timeout ends it. Before, only the probes' start was set: a trunk gone
/// without a reset kept its connection about 15 minutes (the kernel's retransmissions), and
/// every call to it waited out its INVITE's timer on it.
#[tokio::test]
async fn connections_give_up_on_a_peer_that_stopped_answering_within_seconds() {
    use nix::sys::socket::{getsockopt, sockopt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    keepalive(&stream);
    let user = getsockopt(&stream, sockopt::TcpUserTimeout).unwrap();
    assert_eq!(user, 30_000);
    assert!(getsockopt(&stream, sockopt::KeepAlive).unwrap());
    let idle = getsockopt(&stream, sockopt::TcpKeepIdle).unwrap();
    let interval = getsockopt(&stream, sockopt::TcpKeepInterval).unwrap();
    assert_eq!((idle, interval), (15, 5));
    // Linux ends an idle connection at the user timeout once a probe is unanswered, whatever
    // the probe count: three probes must fit before it, so one lost probe (or its answer)
    // does not end a live connection (RFC 1122 §4.2.3.6).
    let probes_before = (user / 1000 - idle).div_ceil(interval);
    assert!(
        probes_before >= 3,
        "{probes_before} probes before the user timeout"
    );
}

/// The idle rule, on the runtime's paused clock: a peer's connection that has carried a
/// keep-alive stays open while it reads or writes within `IDLE_TIMEOUT`, and is closed once
/// a whole window passes with neither (its pong counts once: it was written in the window
/// the ping began). A ping read late in a window starts the next window from that read.
#[tokio::test(start_paused = true)]
async fn a_peers_connection_is_closed_after_an_idle_window_without_traffic() {
    let (inbox, _queues, protect) = inbox_with(Protect::default());
    let gw = listening_with(&inbox, &protect, Duration::from_secs(5)).await;
    let mut conn = connect_from("127.0.0.2", gw).await;
    let mut pong = [0u8; 2];
    conn.write_all(b"\r\n\r\n").await.unwrap();
    conn.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"\r\n");
    // A ping 250 s in: read within the first window, it starts another from there.
    tokio::time::sleep(Duration::from_secs(250)).await;
    conn.write_all(b"\r\n\r\n").await.unwrap();
    conn.read_exact(&mut pong).await.unwrap();
    // Its pong was written in that window: the window after it is a whole one more
    // (250 + 300 + 300 = 850 s); up to just before, the connection stays.
    assert!(
        !closed_within(&mut conn, Duration::from_secs(590)).await,
        "a connection that pinged within the window stays open"
    );
    assert!(
        closed_within(&mut conn, Duration::from_secs(20)).await,
        "closed once a whole window passed without a byte either way"
    );
}

/// In `drop` mode a stranger's connection is closed unread, unless the gateway sent that
/// address a request lately: its answers, connected back (RFC 3261 §18.2.2), are read as its
/// datagrams would be (responses only; a 100 then a 486, each). Before, it was dropped and
/// the transaction waited out its 32 s.
#[tokio::test]
async fn a_stranger_the_gateway_asked_may_connect_back_with_its_answer_in_drop_mode() {
    use tokio::io::AsyncWriteExt;
    let (inbox, mut queues, protect) = inbox_with(Protect::default());
    let gw = listening(&inbox, &protect).await;
    let status = |line: &str| {
        format!(
            "SIP/2.0 {line}\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
            From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:b@127.0.0.9>;tag=b\r\nCall-ID: cb1\r\n\
            CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let answer = status("200 OK");
    // (Its connection is made known to the core with the answer: a `TcpUp`.)
    let mut ups = async || {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut n = 0;
        while let Ok(ev) = queues.urgent.try_recv() {
            n += usize::from(matches!(ev, Event::TcpUp { .. }));
        }
        n
    };
    let mut unasked = connect_from("127.0.0.9", gw).await;
    let _ = unasked.write_all(answer.as_bytes()).await;
    assert_eq!(ups().await, 0, "not asked: dropped unread");
    inbox.asked("127.0.0.9".parse().unwrap(), Instant::now());
    let mut asked = connect_from("127.0.0.9", gw).await;
    asked.write_all(answer.as_bytes()).await.unwrap();
    assert_eq!(ups().await, 1, "asked: its answer read");
    assert!(queues.fresh.try_recv().is_ok());
    // Two answers in one write, and a third later on the same connection: each read.
    let mut again = connect_from("127.0.0.9", gw).await;
    let two = status("100 Trying") + &status("486 Busy Here");
    again.write_all(two.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    again
        .write_all(status("486 Busy Here").as_bytes())
        .await
        .unwrap();
    assert_eq!(ups().await, 1);
    let mut read = 0;
    while queues.fresh.try_recv().is_ok() {
        read += 1;
    }
    assert_eq!(read, 3, "every answer on it");
    // A request from it is still nothing in `drop` mode.
    let mut req = connect_from("127.0.0.9", gw).await;
    let _ = req
        .write_all(request("INVITE", "", "z9hG4bKsq").as_bytes())
        .await;
    assert_eq!(ups().await, 0, "a request is not read");
    assert!(queues.strangers.try_recv().is_err());
}

/// A stranger's messages on its connection are each held to `[protect] source_rate`, not
/// each read: forty answers in one write get the rate's worth through and the connection
/// closed. Before, the rate was asked once per read, and every message of it went on.
#[tokio::test]
async fn a_strangers_tcp_messages_each_count_against_its_rate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (inbox, mut queues, protect) = inbox_with(Protect {
        source_rate: Some(10),
        ..Protect::default()
    });
    let gw = listening(&inbox, &protect).await;
    inbox.asked("127.0.0.9".parse().unwrap(), Instant::now());
    let answer = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
        From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:b@127.0.0.9>;tag=b\r\nCall-ID: sr1\r\n\
        CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let mut conn = connect_from("127.0.0.9", gw).await;
    conn.write_all(answer.repeat(40).as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), conn.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is closed");
    let mut read = 0;
    while queues.fresh.try_recv().is_ok() {
        read += 1;
    }
    assert_eq!(read, 10, "a second's worth of the rate");
}

/// A peak of connections gives the registry's tables back as they close: a flood of a
/// thousand connections once does not keep its tables for the life of the process.
#[tokio::test]
async fn the_registrys_tables_shrink_as_a_peak_of_connections_closes() {
    let (inbox, _queues, protect) = inbox_with(Protect::default());
    let limits = Limits {
        max: 1024,
        message_timeout: Duration::from_secs(5),
    };
    let mut reg = Registry::new(inbox, limits, Slots::new(&protect), ConnIds::default());
    for id in 0..2000u64 {
        let (tx, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
        let from = SocketAddr::from(([127, 0, 0, 2], 20_000 + id as u16));
        reg.up(ConnId(id), from, tx);
    }
    assert!(reg.conns.capacity() >= 2000);
    for id in 0..2000u64 {
        reg.down(ConnId(id));
    }
    assert!(reg.conns.capacity() < 100, "{}", reg.conns.capacity());
    assert!(reg.by_addr.capacity() < 100, "{}", reg.by_addr.capacity());
}

/// A defect in the accept loop's decision (here a test fault for connections from
/// 127.0.0.99) costs that connection only: the next one is served. Before, the panic ended
/// the loop, and with it every TCP connection to come until a restart.
#[tokio::test]
async fn a_panic_deciding_on_one_connection_leaves_the_accept_loop_serving() {
    let (inbox, mut queues, protect) = inbox_with(Protect {
        unknown_sources: crate::config::UnknownSources::Reject,
        ..Protect::default()
    });
    let gw = listening(&inbox, &protect).await;
    let mut faulty = connect_from("127.0.0.99", gw).await;
    assert!(closed_within(&mut faulty, Duration::from_secs(2)).await);
    let mut next = connect_from("127.0.0.9", gw).await;
    next.write_all(request("BYE", ";tag=x", "z9hG4bKap").as_bytes())
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), queues.strangers.recv())
        .await
        .expect("the next connection was served")
        .unwrap();
    assert!(matches!(got, Event::Message { .. }));
}

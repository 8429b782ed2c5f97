use super::*;
use crate::engine::overload::Stage;
use crate::sip::{Target, parse_datagram};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn cfg(p: Protect) -> Arc<Config> {
    let mut c = crate::call::tests::config();
    c.protect = p;
    Arc::new(c)
}

fn msg(text: &str) -> Message {
    parse_datagram(Bytes::from(text.replace('\n', "\r\n")), 65535).unwrap()
}

fn req(method: &str, to_tag: &str) -> Message {
    msg(&format!(
        "{method} sip:x@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\n\
         From: <sip:a@127.0.0.2>;tag=f\nTo: <sip:x@127.0.0.1>{to_tag}\nCall-ID: c1\n\
         CSeq: 1 {method}\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ))
}

#[test]
fn new_work_is_requests_outside_dialogs_but_ack_and_cancel() {
    assert!(is_new_work(&req("INVITE", "")));
    assert!(is_new_work(&req("OPTIONS", "")));
    assert!(!is_new_work(&req("INVITE", ";tag=t")), "a re-INVITE");
    assert!(!is_new_work(&req("BYE", ";tag=t")));
    assert!(!is_new_work(&req("ACK", "")));
    assert!(!is_new_work(&req("CANCEL", "")));
    let resp = msg(
        "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=f\n\
         To: <sip:b@h>;tag=t\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
    );
    assert!(!is_new_work(&resp));
}

#[tokio::test]
async fn a_peer_a_reload_moved_is_known_until_its_calls_end_then_a_stranger() {
    let old = cfg(Protect::default());
    let (pbx, carrier): (IpAddr, IpAddr) =
        ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    let mut moved = (*old).clone();
    moved.profiles.retain(|name, _| name.as_str() != "pbx");
    assert!(moved.peers_moved_from(&old) && !old.peers_moved_from(&old));
    let nets = moved.moved_sources_from(&old);
    assert!(nets.iter().any(|n| n.contains(&pbx)), "{nets:?}");
    assert!(
        !nets.iter().any(|n| n.contains(&carrier)),
        "only the moved peer's: {nets:?}"
    );
    let (inbox, _q) = Inbox::new(old.clone(), Instant::now());
    assert!(inbox.knows_source(pbx));
    inbox.remember_departed(1, nets.clone());
    inbox.configure(Arc::new(moved), Instant::now());
    assert!(inbox.knows_source(pbx), "its calls are up");
    assert!(!inbox.knows_source("192.0.2.66".parse().unwrap()));
    // Later reloads moving other peers keep the first one's networks heard (each network
    // once) while its calls last; only past MAX_DEPARTED networks are the oldest forgotten.
    for i in 0..20u8 {
        let other: IpNet = format!("198.51.100.{i}/32").parse().unwrap();
        inbox.remember_departed(2 + u64::from(i), vec![other]);
        inbox.remember_departed(2 + u64::from(i), nets.clone());
    }
    assert!(inbox.knows_source(pbx), "removed twenty reloads ago");
    assert!(inbox.knows_source("198.51.100.19".parse().unwrap()));
    let held = inbox.departed.load().as_ref().map_or(0, |d| d.len());
    let mut distinct = nets.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(held, distinct.len() + 20, "each network once");
    let many: Vec<IpNet> = (0..MAX_DEPARTED as u32)
        .map(|i| IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))))
        .collect();
    inbox.remember_departed(30, many);
    assert_eq!(
        inbox.departed.load().as_ref().map(|d| d.len()),
        Some(MAX_DEPARTED)
    );
    assert!(
        !inbox.knows_source(pbx),
        "the oldest forgotten past the bound"
    );
    assert!(inbox.knows_source("10.0.0.7".parse().unwrap()));
    assert!(inbox.keep_departed(None));
    assert!(!inbox.keep_departed(None), "nothing left to forget");
    assert!(
        !inbox.knows_source("10.0.0.7".parse().unwrap()),
        "its calls have ended"
    );
    assert!(inbox.knows_source(carrier));
}

/// Each reload's departed networks go when the calls up at that reload have ended (the
/// core's count of reloads with calls up), not when every reload's have: a gateway that
/// reloads more often than its longest call would otherwise never forget a peer removed
/// after fraud. Before, one list for all reloads, cleared only when the calls up at the
/// latest had all ended.
#[tokio::test]
async fn a_reloads_departed_networks_go_with_the_calls_up_at_it() {
    let old = cfg(Protect::default());
    let (inbox, _q) = Inbox::new(old, Instant::now());
    let first: IpNet = "198.51.100.0/24".parse().unwrap();
    let second: IpNet = "203.0.113.0/24".parse().unwrap();
    // The calls up at the first reload are those numbered below 5; at the second, below 9.
    inbox.remember_departed(5, vec![first]);
    inbox.remember_departed(9, vec![second]);
    let (a, b) = (
        "198.51.100.7".parse().unwrap(),
        "203.0.113.7".parse().unwrap(),
    );
    assert!(inbox.knows_source(a) && inbox.knows_source(b));
    assert!(!inbox.keep_departed(Some(5)), "both reloads have calls up");
    assert!(inbox.keep_departed(Some(9)), "the first one's have ended");
    assert!(!inbox.knows_source(a) && inbox.knows_source(b));
    assert!(inbox.keep_departed(None));
    assert!(!inbox.knows_source(b));
}

#[tokio::test]
async fn accepted_work_is_taken_before_new_work() {
    let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
    let src = Target::udp("127.0.0.2:5060".parse().unwrap());
    let at = Instant::now();
    for m in [
        req("INVITE", ""),
        req("BYE", ";tag=t"),
        req("OPTIONS", ""),
        req("ACK", ""),
        req("CANCEL", ""),
    ] {
        inbox.try_deliver(Event::Message {
            msg: m,
            source: src,
            at,
            screened: false,
            held: 0,
        });
    }
    let order: Vec<String> = std::iter::from_fn(|| q.try_next())
        .map(|ev| match ev {
            Event::Message {
                msg: Message::Request(r),
                ..
            } => r.method().to_string(),
            _ => "?".into(),
        })
        .collect();
    assert_eq!(order, ["BYE", "ACK", "INVITE", "OPTIONS", "CANCEL"]);
}

#[tokio::test]
async fn a_full_fresh_queue_drops_new_work_but_still_takes_accepted_work() {
    let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
    let src = Target::udp("127.0.0.2:5060".parse().unwrap());
    let at = Instant::now();
    for _ in 0..FRESH + 10 {
        inbox.try_deliver(Event::Message {
            msg: req("INVITE", ""),
            source: src,
            at,
            screened: false,
            held: 0,
        });
    }
    inbox.try_deliver(Event::Message {
        msg: req("BYE", ";tag=t"),
        source: src,
        at,
        screened: false,
        held: 0,
    });
    // A CANCEL waits behind its INVITE, never ahead of it: with new work full it is
    // dropped too (its sender sends it again), not put with accepted work.
    assert!(!inbox.try_deliver(Event::Message {
        msg: req("CANCEL", ""),
        source: src,
        at,
        screened: false,
        held: 0,
    }));
    assert_eq!(inbox.tally.queue_full.load(Ordering::Relaxed), 11);
    assert!(matches!(
        q.try_next(),
        Some(Event::Message { msg: Message::Request(r), .. }) if r.method().to_string() == "BYE"
    ));
}

#[tokio::test]
async fn a_burst_in_a_peers_name_costs_it_the_excess_not_a_cool_down() {
    let t0 = Instant::now();
    let p = Protect {
        source_rate: Some(10),
        ..Protect::default()
    };
    let (inbox, _q) = Inbox::new(cfg(p), t0);
    // carrier-a's address, spoofed over UDP: the excess is dropped...
    let carrier: IpAddr = "127.0.0.3".parse().unwrap();
    assert_eq!(
        (0..11).filter(|_| inbox.admit(carrier, t0, false)).count(),
        10
    );
    // ...and the carrier is heard again as soon as its rate allows, not after the
    // cool-down; its TCP connection is never cut by the guard.
    let soon = t0 + std::time::Duration::from_millis(200);
    assert!(inbox.admit(carrier, soon, false));
    assert!((0..50).all(|_| inbox.admit(carrier, soon, true)));
    // A stranger over the rate still cools down. (One whose cell is not the carrier's:
    // the table's hash key is random, and one run in 4,096 the two shared a rate.)
    let guard = inbox.guard.load();
    let g = guard.as_ref().expect("a guard");
    let stranger: IpAddr = (1..=9u8)
        .map(|n| IpAddr::from([192, 0, 2, n]))
        .find(|s| !g.share_a_cell(carrier, *s))
        .expect("a stranger in a cell of its own");
    assert_eq!(
        (0..11).filter(|_| inbox.admit(stranger, t0, false)).count(),
        10
    );
    assert!(!inbox.admit(stranger, soon, false));
}

/// A carrier that answers from an address outside its `match` (the `address` we send to):
/// a burst spoofed in that address's name costs it the excess, not a cool-down that would
/// drop every answer to our calls. Before, it was cooled down as a stranger.
#[tokio::test]
async fn a_burst_in_a_peers_sending_address_costs_it_no_cool_down() {
    let t0 = Instant::now();
    let mut c = crate::call::tests::config();
    c.protect = Protect {
        source_rate: Some(10),
        ..Protect::default()
    };
    let carrier = crate::config::PeerName("carrier-a".into());
    let mut p = (*c.profiles[&carrier]).clone();
    p.address = Target::udp("192.0.2.50:5060".parse().unwrap());
    c.profiles.insert(carrier, Arc::new(p));
    let (inbox, _q) = Inbox::new(Arc::new(c), t0);
    let sbc: IpAddr = "192.0.2.50".parse().unwrap();
    assert_eq!((0..11).filter(|_| inbox.admit(sbc, t0, false)).count(), 10);
    let soon = t0 + std::time::Duration::from_millis(200);
    assert!(inbox.admit(sbc, soon, false), "heard again at its rate");
    // Our own TCP connection to it is never cut by the guard.
    assert!((0..50).all(|_| inbox.admit(sbc, soon, true)));
}

#[tokio::test]
async fn the_guard_follows_a_reload() {
    let t0 = Instant::now();
    let p = Protect {
        source_rate: Some(10),
        ..Protect::default()
    };
    let (inbox, _q) = Inbox::new(cfg(p.clone()), t0);
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    assert_eq!((0..20).filter(|_| inbox.admit(ip, t0, false)).count(), 10);
    inbox.configure(
        cfg(Protect {
            source_rate: None,
            ..p
        }),
        t0,
    );
    assert!(inbox.admit(ip, t0, false), "the guard is off");
    let tally = inbox.tally.take();
    assert_eq!(tally.len(), 2, "tripped once, 10 dropped: {tally:?}");
}

/// A stranger we sent a request to may answer for the window after our request, and each
/// of its responses keeps the window open: a provisional to a relayed re-INVITE restarts
/// Timer C (181 s), and the final answer may come that long after it. Before, the 200 that
/// came 190 s after the request (and 90 s after its 183) was dropped, and the call lost.
/// The window is at least Timer C whatever the ring times.
#[test]
fn an_answer_under_way_keeps_a_strangers_window_open() {
    let t0 = Instant::now();
    let key = crate::sip::TagKey::from_seed(9);
    let (inbox, _q) = Inbox::new(cfg(Protect::default()), t0);
    let inbox = inbox.checking_tags(key.clone());
    let node: IpAddr = "192.0.2.77".parse().unwrap();
    let window = window_for(&inbox.config.load());
    let branch = key.branch("0123456789abcdef");
    let text = format!(
        "SIP/2.0 183 Session Progress\r\nVia: SIP/2.0/UDP 127.0.0.1;branch={branch}\r\n\r\n"
    );
    let resp = text.as_bytes();
    // A provisional with a made-up branch (a stranger's own) keeps nothing open, and is
    // not heard at all (no branch of ours: dropped before a parse).
    let foreign = text.replace(&branch, "z9hG4bKforeign");
    assert!(!inbox.hears_stranger(node, resp, t0), "never asked");
    inbox.asked(node, t0);
    assert!(!inbox.hears_stranger(node, foreign.as_bytes(), t0 + Duration::from_secs(50)));
    assert!(!inbox.hears_stranger(node, resp, t0 + window + Duration::from_secs(1)));
    inbox.asked(node, t0);
    assert!(inbox.hears_stranger(node, resp, t0 + Duration::from_secs(100)));
    let late = t0 + window + Duration::from_secs(6);
    let ok = text.replace("183 Session Progress", "200 OK");
    assert!(inbox.hears_stranger(node, ok.as_bytes(), late));
    // Only a provisional keeps it open: a window after the 183, it is closed whatever
    // final answers came since.
    let closed = t0 + Duration::from_secs(100) + window + Duration::from_secs(1);
    assert!(!inbox.hears_stranger(node, resp, closed));
}

/// What a stranger sends is judged on its first bytes before any copy or parse: a request
/// (`reject` mode, for its 403) only while the strangers' queue has room and when no
/// larger than 16 KiB; a response (from an address we asked) only when it names our
/// branch as we write it, no larger than 16 KiB, and within one rate for all strangers'
/// responses together. Before, each was copied and parsed first (a spoofed spray, each
/// source its own rate, cost a parse apiece on the signalling thread), and responses
/// naming a branch of ours went ahead of peers' answers at each address's own rate.
#[tokio::test]
async fn a_strangers_message_is_judged_before_its_parse() {
    let t0 = Instant::now();
    let p = Protect {
        source_rate: Some(10),
        unknown_sources: crate::config::UnknownSources::Reject,
        ..Protect::default()
    };
    let key = crate::sip::TagKey::from_seed(5);
    let (inbox, _q) = Inbox::new(cfg(p), t0);
    let inbox = inbox.checking_tags(key.clone());
    let invite = b"INVITE sip:+1@gw SIP/2.0\r\n".to_vec();
    let stranger: IpAddr = "192.0.2.9".parse().unwrap();
    assert!(inbox.hears_stranger(stranger, &invite, t0));
    let mut big = invite.clone();
    big.resize(STRANGER_MAX_BYTES + 1, b'x');
    assert!(!inbox.hears_stranger(stranger, &big, t0), "too large");
    // The strangers' queue full: not heard (before, parsed and then dropped).
    let at = t0;
    let source = Target::udp("192.0.2.9:5060".parse().unwrap());
    for _ in 0..STRANGERS {
        inbox.try_deliver_stranger(Event::Message {
            msg: req("OPTIONS", ""),
            source,
            at,
            screened: false,
            held: 0,
        });
    }
    assert!(!inbox.hears_stranger(stranger, &invite, t0), "no room");
    // Responses: from many addresses we asked, one rate for all of them together.
    let ours = key.branch("0123456789abcdef");
    let resp = format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch={ours}\r\n\r\n");
    let foreign = resp.replace(&ours, "z9hG4bKnotours");
    let heard = (0..100u8)
        .filter(|i| {
            let ip = IpAddr::from([198, 51, 100, *i]);
            inbox.asked(ip, t0);
            assert!(
                !inbox.hears_stranger(ip, foreign.as_bytes(), t0),
                "not our branch"
            );
            inbox.hears_stranger(ip, resp.as_bytes(), t0)
        })
        .count();
    assert_eq!(heard, 10, "the strangers' responses' one rate");
    let later = t0 + Duration::from_secs(1);
    let ip = IpAddr::from([198, 51, 100, 1]);
    assert!(inbox.hears_stranger(ip, resp.as_bytes(), later));
    let mut big = resp.clone().into_bytes();
    big.resize(STRANGER_MAX_BYTES + 1, b'x');
    assert!(!inbox.hears_stranger(ip, &big, later), "too large");
}

/// A request in a dialog goes ahead of new work only if its To tag is one of ours for its
/// Call-ID: a BYE or INFO with a made-up tag (a flood spoofed in a peer's name) waits with
/// new work, and accepted work still goes first. Before, any To tag took a request into
/// the queue that is always served first, and such a flood starved every peer's new calls
/// and pushed real answers out.
#[test]
fn only_a_request_naming_a_tag_of_ours_goes_ahead_of_new_work() {
    let key = crate::sip::TagKey::from_seed(3);
    let (inbox, _q) = Inbox::new(cfg(Protect::default()), Instant::now());
    let inbox = inbox.checking_tags(key.clone());
    let mut ids = crate::sip::IdGen::new(3);
    let ours = ids.tag("c1");
    assert!(key.ours(&ours, "c1"));
    let ev = |m: Message| Event::Message {
        msg: m,
        source: Target::udp("127.0.0.2:5060".parse().unwrap()),
        at: Instant::now(),
        screened: false,
        held: 0,
    };
    let urgent = |e: &Event| std::ptr::eq(inbox.queue_for(e), &inbox.urgent);
    assert!(urgent(&ev(req("BYE", &format!(";tag={ours}")))));
    assert!(urgent(&ev(req("ACK", &format!(";tag={ours}")))));
    assert!(!urgent(&ev(req("BYE", ";tag=made-up"))));
    assert!(!urgent(&ev(req("INFO", ";tag=0123456789abcdef01234567"))));
    // Our tag for another Call-ID is not this dialog's.
    let other = ids.tag("c2");
    assert!(!urgent(&ev(req("BYE", &format!(";tag={other}")))));
    // A refusal's tag: its ACK goes ahead (else the refusal is resent for 32 s when new
    // work is full), a request in a dialog naming it does not.
    let refusal = ids.refusal_tag("c1");
    assert!(urgent(&ev(req("ACK", &format!(";tag={refusal}")))));
    assert!(!urgent(&ev(req("BYE", &format!(";tag={refusal}")))));
    // Without overload, what names no dialog of ours is served (and answered 481).
    let junk = req("BYE", ";tag=made-up");
    assert!(!inbox.drops_as_junk(&junk, Duration::ZERO, false));
    // One that waited past overload_delay_ms is dropped unanswered.
    assert!(inbox.drops_as_junk(&junk, Duration::from_millis(200), false));
    // While the share is above 0, every one is, however short its wait; what names a
    // dialog of ours, a refusal's ACK and new work are not (new work has its own rule).
    inbox.overload.stand_for(Instant::now(), 2000);
    assert!(inbox.overload.share() > 0.0);
    assert!(inbox.drops_as_junk(&junk, Duration::ZERO, false));
    // Over a connection it is answered: not spoofed, and its sender does not retransmit
    // (before, it waited 32 s for nothing).
    assert!(!inbox.drops_as_junk(&junk, Duration::from_millis(200), true));
    for served in [
        req("BYE", &format!(";tag={ours}")),
        req("ACK", &format!(";tag={refusal}")),
        req("INVITE", ""),
    ] {
        assert!(!inbox.drops_as_junk(&served, Duration::ZERO, false));
    }
    // Responses are accepted work as before.
    let resp = msg(
        "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=f\n\
         To: <sip:b@h>;tag=t\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
    );
    assert!(urgent(&ev(resp)));
}

/// A datagram that does not parse waits with new work (anyone can spoof a peer's address,
/// and each costs the core a 400), and while overload control sheds it is dropped
/// unanswered (over TCP it is answered: not spoofed). Before, it went ahead of new work, on
/// the queue of accepted work.
#[test]
fn junk_that_does_not_parse_waits_with_new_work_and_is_shed_first() {
    let (inbox, _q) = Inbox::new(cfg(Protect::default()), Instant::now());
    let junk = Event::Unparseable {
        raw: bytes::Bytes::from_static(b"\x00\x01junk"),
        why: "not SIP".into(),
        status: crate::sip::Unreadable::Malformed,
        source: Target::udp("127.0.0.2:5060".parse().unwrap()),
    };
    assert!(std::ptr::eq(inbox.queue_for(&junk), &inbox.fresh));
    assert!(
        !inbox.drops_unparseable(false),
        "answered while nothing is shed"
    );
    inbox.overload.stand_for(Instant::now(), 2000);
    assert!(inbox.drops_unparseable(false));
    assert!(!inbox.drops_unparseable(true), "a connection's is answered");
}

/// Dropping a request that names no dialog of ours takes no turn of overload control's
/// share: the INVITEs around it are refused exactly as they would be without it. (Through
/// the share's decision, junk arriving between INVITEs took the turns that refuse, or
/// left every refusal to the INVITEs.)
#[test]
fn junk_dropped_under_overload_takes_no_turn_of_the_share() {
    let key = crate::sip::TagKey::from_seed(5);
    let overloaded = || {
        let (inbox, q) = Inbox::new(cfg(Protect::default()), Instant::now());
        std::mem::forget(q);
        let inbox = inbox.checking_tags(key.clone());
        // A queue that stood for a few of overload control's windows: a share between 0
        // and 1.
        let after = inbox.overload.stand_for(Instant::now(), 350);
        (inbox, after)
    };
    let (plain, at) = overloaded();
    let (with_junk, _) = overloaded();
    assert!(plain.overload.share() > 0.0 && plain.overload.share() < 1.0);
    let junk = req("BYE", ";tag=made-up");
    let peer = (
        false,
        // The source `stand_for` made the queue stand with (the share is that source's).
        super::Overload::slot(None, std::net::IpAddr::from([127, 0, 0, 2])),
    );
    let mut alone = Vec::new();
    let mut beside_junk = Vec::new();
    for i in 0..40 {
        let now = at + Duration::from_micros(i);
        alone.push(
            plain
                .overload
                .decide(now, (Duration::ZERO, Stage::CoreUdp), peer),
        );
        assert!(with_junk.drops_as_junk(&junk, Duration::ZERO, false));
        beside_junk.push(
            with_junk
                .overload
                .decide(now, (Duration::ZERO, Stage::CoreUdp), peer),
        );
    }
    assert_eq!(alone, beside_junk);
    assert!(
        alone.contains(&crate::engine::overload::Shed::Refuse),
        "{alone:?}"
    );
}

/// What strangers send is counted for the periodic summary with one of their addresses, so
/// a carrier that moved to an address its profile does not `match` shows in the log, not
/// only as a metric. Before, the log said nothing at all.
#[test]
fn strangers_show_in_the_summary_with_an_address() {
    let t0 = Instant::now();
    let (inbox, _q) = Inbox::new(cfg(Protect::default()), t0);
    let moved: IpAddr = "198.51.100.7".parse().unwrap();
    assert_eq!(inbox.tally.take_strangers(), None);
    for _ in 0..3 {
        assert!(!inbox.hears_stranger(moved, b"INVITE sip:+1@gw SIP/2.0\r\n", t0));
    }
    assert_eq!(inbox.tally.take_strangers(), Some((3, Some(moved))));
    assert_eq!(inbox.tally.take_strangers(), None, "counted once");
}

/// Strangers' requests (`unknown_sources = "reject"`, each for its 403) wait in a small
/// queue of their own, read last: a spray of spoofed sources fills that, not the room
/// peers' INVITEs and CANCELs need. Before, they shared the queue of new work, and 4,096 of
/// them made every peer's INVITE a `queue_full` drop.
#[tokio::test]
async fn strangers_requests_cannot_fill_the_room_of_peers_new_work() {
    let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
    let at = Instant::now();
    let stranger = Target::udp("192.0.2.9:5060".parse().unwrap());
    let taken = (0..FRESH)
        .filter(|_| {
            inbox.try_deliver_stranger(Event::Message {
                msg: req("OPTIONS", ""),
                source: stranger,
                at,
                screened: false,
                held: 0,
            })
        })
        .count();
    assert_eq!(taken, STRANGERS);
    let peer = Target::udp("127.0.0.2:5060".parse().unwrap());
    for m in [req("INVITE", ""), req("CANCEL", "")] {
        assert!(inbox.try_deliver(Event::Message {
            msg: m,
            source: peer,
            at,
            screened: false,
            held: 0,
        }));
    }
    // The peer's first, then the strangers'.
    let first: Vec<String> = std::iter::from_fn(|| q.try_next())
        .take(3)
        .map(|ev| match ev {
            Event::Message {
                msg: Message::Request(r),
                source,
                ..
            } => format!("{} {}", r.method(), source.addr.ip()),
            _ => "?".into(),
        })
        .collect();
    assert_eq!(
        first,
        ["INVITE 127.0.0.2", "CANCEL 127.0.0.2", "OPTIONS 192.0.2.9"]
    );
}

/// A response whose top Via branch is not one this process gave answers nothing of ours:
/// dropped at the edge, counted, whatever address it claims. Before, every response from
/// a peer's address went ahead of all new work, so made-up 200s in a carrier's name (UDP
/// sources can be forged) kept the queue of accepted work busy and new calls waiting.
#[tokio::test]
async fn a_response_to_no_branch_of_ours_is_dropped_at_the_edge() {
    let key = crate::sip::TagKey::from_seed(3);
    let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
    let inbox = inbox.checking_tags(key.clone());
    let response = |branch: &str| {
        msg(&format!(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\n\
             From: <sip:a@h>;tag=f\nTo: <sip:b@h>;tag=t\nCall-ID: c\nCSeq: 1 INVITE\n\
             Content-Length: 0\n\n"
        ))
    };
    let carrier = Target::udp("127.0.0.3:5060".parse().unwrap());
    let at = Instant::now();
    let ours = key.branch("0123456789abcdef");
    assert!(key.our_branch(ours.as_bytes()));
    let forged = format!("{}0123456789abcdefffffffff", crate::sip::BRANCH_COOKIE);
    for branch in [forged.as_str(), "z9hG4bKmadeup", ours.as_str()] {
        assert!(inbox.try_deliver(Event::Message {
            msg: response(branch),
            source: carrier,
            at,
            screened: false,
            held: 0,
        }));
    }
    let got: Vec<Option<String>> = std::iter::from_fn(|| q.try_next())
        .map(|ev| match ev {
            Event::Message {
                msg: Message::Response(r),
                ..
            } => r.top_via().and_then(|v| v.branch),
            _ => None,
        })
        .collect();
    assert_eq!(got, [Some(ours)], "only the answer to our branch");
}

/// Sends the kernel refused are summed up with the edge's other drops (one log line per
/// interval), not said one by one: anyone can cause them.
#[test]
fn failed_sends_are_summed_up() {
    let t = Tally::default();
    t.count_send_failed();
    t.count_send_failed();
    let taken = t.take();
    assert!(
        taken
            .iter()
            .any(|(what, n)| what.starts_with("SIP datagrams the kernel refused") && *n == 2),
        "{taken:?}"
    );
    assert!(t.take().is_empty());
}

/// A flood spoofed in a peer's name takes its source rate, but what carries a check of ours
/// (an answer to our request, by its branch; a request in our dialog, by its To tag) still
/// passes: nobody off the path can make one. Before, such a flood cost the carrier nine in
/// ten of its real answers, ACKs and BYEs, and calls ended. Made-up identifiers, and a
/// stranger's datagrams whatever they carry, are still held to the rate.
#[tokio::test]
async fn a_peers_accepted_work_passes_a_flood_in_its_name() {
    let t0 = Instant::now();
    let (inbox, _q, key) = rated_at_ten(7, t0);
    let carrier: IpAddr = "127.0.0.3".parse().unwrap();
    let junk =
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKj\r\n\r\n";
    assert_eq!(
        (0..11)
            .filter(|_| inbox.admit_datagram(carrier, t0, junk))
            .count(),
        10
    );
    let branch = key.branch("0123456789abcdef");
    let answer = format!(
        "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n\
         From: <sip:a@h>;tag=f\r\nTo: <sip:b@h>;tag=t\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n"
    );
    assert!(inbox.admit_datagram(carrier, t0, answer.as_bytes()));
    let tag = crate::sip::IdGen::from_os(key.clone()).tag("c9@h");
    let bye = format!(
        "BYE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKb\r\n\
         From: <sip:b@h>;tag=x\r\nTo: <sip:a@h>;tag={tag}\r\ni: c9@h\r\nCSeq: 2 BYE\r\n\r\n"
    );
    assert!(inbox.admit_datagram(carrier, t0, bye.as_bytes()));
    let made_up = answer.replace(&branch, "z9hG4bKmadeup");
    assert!(!inbox.admit_datagram(carrier, t0, made_up.as_bytes()));
    // Another Call-ID: the tag's check fails.
    let moved = bye.replace("i: c9@h", "i: c10@h");
    assert!(!inbox.admit_datagram(carrier, t0, moved.as_bytes()));
    // The ACK of one of our refusals names our refusal's tag: it passes too (before, it
    // took its chance against the flood, and the refusal was resent for 32 s); a BYE
    // naming that tag does not.
    let refusal = crate::sip::IdGen::from_os(key.clone()).refusal_tag("c11@h");
    let ack = format!(
        "ACK sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKa\r\n\
         From: <sip:b@h>;tag=x\r\nTo: <sip:a@h>;tag={refusal}\r\ni: c11@h\r\nCSeq: 1 ACK\r\n\r\n"
    );
    assert!(inbox.admit_datagram(carrier, t0, ack.as_bytes()));
    let bye_to_refusal = ack.replace("ACK ", "BYE ").replace("1 ACK", "2 BYE");
    assert!(!inbox.admit_datagram(carrier, t0, bye_to_refusal.as_bytes()));
    // The CANCEL of an INVITE let in lately (its top Via, Call-ID and CSeq number) passes
    // too: before, it took its chance against the flood. One naming an INVITE never let
    // in (another Call-ID, another branch, another CSeq number) does not.
    let invite = "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKcn1\r\n\
        From: <sip:b@h>;tag=x\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: c12@h\r\n\
        CSeq: 7 INVITE\r\n\r\n";
    let crate::sip::fast::Peek::NewInvite { head, branch } =
        crate::sip::fast::peek(invite.as_bytes())
    else {
        panic!("a new INVITE")
    };
    inbox
        .overload
        .remember(inbox.overload.invite_key(carrier, branch, &head), t0);
    let cancel = invite
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("7 INVITE", "7 CANCEL");
    assert!(inbox.admit_datagram(carrier, t0, cancel.as_bytes()));
    for other in [
        cancel.replace("c12@h", "c13@h"),
        cancel.replace("z9hG4bKcn1", "z9hG4bKcn2"),
        cancel.replace("7 CANCEL", "8 CANCEL"),
    ] {
        assert!(
            !inbox.admit_datagram(carrier, t0, other.as_bytes()),
            "{other}"
        );
    }
    let stranger: IpAddr = "192.0.2.9".parse().unwrap();
    for _ in 0..11 {
        inbox.admit_datagram(stranger, t0, junk);
    }
    assert!(!inbox.admit_datagram(stranger, t0, answer.as_bytes()));
}

/// An address the gateway sent a request to lately (a callee's Contact outside every
/// `match`), flooded in its name past its rate and into a stranger's cool-down: its
/// answers to our requests still pass. Before, they were muted for the cool-down, and the
/// call's BYE or refresh timed out.
#[tokio::test]
async fn answers_from_an_address_we_asked_pass_a_flood_in_its_name() {
    let t0 = Instant::now();
    let (inbox, _q, key) = rated_at_ten(8, t0);
    let contact: IpAddr = "192.0.2.44".parse().unwrap();
    let branch = key.branch("0123456789abcdef");
    let answer = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
         From: <sip:a@h>;tag=f\r\nTo: <sip:b@h>;tag=t\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n"
    );
    let junk = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKjunk\r\n\r\n";
    // Not asked: held to the rate, then cooled down, our branch or not.
    for _ in 0..11 {
        inbox.admit_datagram(contact, t0, junk);
    }
    assert!(!inbox.admit_datagram(contact, t0, answer.as_bytes()));
    // Asked: the answer passes the cool-down; junk does not.
    inbox.asked(contact, t0);
    assert!(inbox.admit_datagram(contact, t0, answer.as_bytes()));
    assert!(!inbox.admit_datagram(contact, t0, junk));
}

/// What passes a peer's rate for carrying a check of ours is held to a second rate, and
/// only small messages pass so: whoever holds one of our branches (the peer, a host on the
/// path) cannot replay it without end. Before, every copy passed, to the urgent queue.
#[tokio::test]
async fn a_check_of_ours_passes_a_rate_once_more_and_no_further() {
    let t0 = Instant::now();
    let (inbox, _q, key) = rated_at_ten(9, t0);
    let carrier: IpAddr = "127.0.0.3".parse().unwrap();
    let branch = key.branch("0123456789abcdef");
    let answer = |pad: usize| {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
             From: <sip:a@h>;tag=f\r\nTo: <sip:b@h>;tag=t\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\
             X-Pad: {}\r\n\r\n",
            "p".repeat(pad)
        )
    };
    let small = answer(1);
    let large = answer(admission::SPARED_MAX_BYTES);
    let passed = |raw: &str, n: usize| {
        (0..n)
            .filter(|_| inbox.admit_datagram(carrier, t0, raw.as_bytes()))
            .count()
    };
    assert_eq!(passed(&small, 30), 20, "its rate, then the second one");
    assert_eq!(passed(&large, 1), 0, "no room left");
    // A second later both rates have room again; a large one passes its own rate only.
    let t1 = t0 + Duration::from_secs(1);
    let passed_at = |raw: &str, n: usize, at: Instant| {
        (0..n)
            .filter(|_| inbox.admit_datagram(carrier, at, raw.as_bytes()))
            .count()
    };
    assert_eq!(passed_at(&large, 30, t1), 10, "a large one is never spared");
    assert_eq!(
        passed_at(&small, 30, t1),
        10,
        "the second rate is still there"
    );
}

/// The core's queues hold at most so many bytes of datagrams, whatever their count: 64 KiB
/// answers carrying a check of ours could otherwise make the urgent queue's 16,384 events
/// a gigabyte, all read before any new call, and 64 KiB OPTIONS the new-work queue's 4,096
/// a quarter of one. What counts is the datagram a message keeps alive, not its parsed
/// size: bytes after the body (`Content-Length: 0` and 60 KB of padding) are kept with it.
/// Taking one off gives its room back.
#[test]
fn the_cores_queues_are_bounded_in_bytes() {
    let key = crate::sip::TagKey::from_seed(10);
    let padding = "x".repeat(60_000);
    let answer = format!(
        "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\n\
         From: <sip:a@h>;tag=f\nTo: <sip:b@h>;tag=t\nCall-ID: c\nCSeq: 1 INVITE\n\
         Content-Length: 0\n\n{padding}",
        key.branch("0123456789abcdef"),
    );
    let options = format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bK1\n\
         From: <sip:a@h>;tag=f\nTo: <sip:x@h>\nCall-ID: c\nCSeq: 1 OPTIONS\n\
         Content-Length: 0\n\n{padding}"
    );
    for (text, urgent) in [(answer, true), (options, false)] {
        let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
        let inbox = inbox.checking_tags(key.clone());
        let m = msg(&text);
        assert!(
            m.wire_size() < 1_000,
            "the padding is no part of the message"
        );
        let size = text.replace('\n', "\r\n").len();
        let ev = || Event::Message {
            msg: m.clone(),
            source: Target::udp("127.0.0.3:5060".parse().unwrap()),
            at: Instant::now(),
            screened: false,
            held: size,
        };
        let (budget, limit) = if urgent {
            (&inbox.urgent_bytes, budget::URGENT_BYTES)
        } else {
            (&inbox.fresh_bytes, budget::FRESH_BYTES)
        };
        let room = limit / size;
        let queued = (0..room + 100).filter(|_| inbox.try_deliver(ev())).count();
        assert_eq!(queued, room);
        assert!(budget.used() <= limit);
        assert!(q.try_next().is_some());
        assert!(inbox.try_deliver(ev()), "room given back");
        assert!(!inbox.try_deliver(ev()));
        while q.try_next().is_some() {}
        assert_eq!(budget.used(), 0);
    }
}

/// An inbox at `t0` whose sources may send 10 messages a second, checking tags with the
/// key of `seed`: the inbox, its queues, the key.
fn rated_at_ten(seed: u64, t0: Instant) -> (Inbox, Queues, crate::sip::TagKey) {
    let p = Protect {
        source_rate: Some(10),
        ..Protect::default()
    };
    let key = crate::sip::TagKey::from_seed(seed);
    let (inbox, q) = Inbox::new(cfg(p), t0);
    (inbox.checking_tags(key.clone()), q, key)
}

/// A connection's accepted work waits for room in bytes as well as in events: with the
/// urgent queue holding its bytes' worth, a message from a peer's connection is not queued
/// until the core reads. Before, it was charged whatever the queue held: 16,384 messages
/// of 64 KiB each from a peer's connections, a gigabyte.
#[tokio::test]
async fn a_connections_accepted_work_waits_for_room_in_bytes() {
    let key = crate::sip::TagKey::from_seed(11);
    let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
    let inbox = inbox.checking_tags(key.clone());
    let answer = msg(&format!(
        "SIP/2.0 200 OK\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch={}\n\
         From: <sip:a@h>;tag=f\nTo: <sip:b@h>;tag=t\nCall-ID: c\nCSeq: 1 INVITE\n\
         Content-Length: 0\n\n",
        key.branch("0123456789abcdef"),
    ));
    let ev = |held: usize| Event::Message {
        msg: answer.clone(),
        source: Target::udp("127.0.0.3:5060".parse().unwrap()),
        at: Instant::now(),
        screened: false,
        held,
    };
    // Two messages of half the connections' room each: the third waits.
    let half = budget::URGENT_CONNECTION_BYTES / 2;
    assert!(inbox.deliver(ev(half)).await);
    assert!(inbox.deliver(ev(half)).await);
    let third = {
        let inbox = inbox.clone();
        let ev = ev(1_000);
        tokio::spawn(async move { inbox.deliver(ev).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!third.is_finished(), "queued over the room in bytes");
    assert!(q.try_next().is_some());
    let queued = tokio::time::timeout(std::time::Duration::from_secs(2), third)
        .await
        .expect("queued once the core read");
    assert!(queued.unwrap());
    assert!(inbox.urgent_bytes.used() <= budget::URGENT_CONNECTION_BYTES);
}

/// Overload control decides on (and counts the wait of) new work from peers, the front and
/// a peer's `address` only: a stranger's request, from the queue served last, would have
/// its wait raise the share refused of everyone's new calls (a spoofed spray keeps that
/// queue full) while refusing it saves nothing (it gets its 403 or nothing anyway).
#[test]
fn a_strangers_new_work_is_no_measure_of_the_load() {
    let (inbox, _q) = Inbox::new(cfg(Protect::default()), Instant::now());
    for (ip, measured) in [
        ("127.0.0.2", true),
        ("127.0.0.3", true),
        ("192.0.2.9", false),
        ("127.0.0.99", false),
    ] {
        assert_eq!(inbox.measures_load(ip.parse().unwrap()), measured, "{ip}");
    }
}

/// New work waiting in its queue is known (housekeeping then lets no quiet time bring the
/// refused share down: a stall of the core with work queued is no quiet); once the core
/// has taken it, it is not.
#[tokio::test]
async fn new_work_waiting_is_known_until_the_core_takes_it() {
    let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
    assert!(!inbox.holds_new_work());
    inbox.try_deliver(Event::Message {
        msg: req("INVITE", ""),
        source: Target::udp("127.0.0.2:5060".parse().unwrap()),
        at: Instant::now(),
        screened: false,
        held: 900,
    });
    assert!(inbox.holds_new_work());
    assert!(q.try_next().is_some());
    assert!(!inbox.holds_new_work());
}

/// The front's own OPTIONS probe (no `X-Trunkgate-Source`) goes ahead of new work, from
/// the front's socket only: a peer's OPTIONS through the front (stamped) and one from
/// another port of the front's host wait with new work. Before, the probe waited behind a
/// burst of INVITEs and was dropped with them, and the front took the instance out.
#[test]
fn the_fronts_own_probe_goes_ahead_of_new_work() {
    let mut c = crate::call::tests::config();
    let front: std::net::SocketAddr = "127.0.0.10:5060".parse().unwrap();
    c.front = Some(Target::udp(front));
    let (inbox, _q) = Inbox::new(Arc::new(c), Instant::now());
    let ev = |m: Message, from: std::net::SocketAddr| Event::Message {
        msg: m,
        source: Target::udp(from),
        at: Instant::now(),
        screened: false,
        held: 0,
    };
    let urgent = |e: &Event| std::ptr::eq(inbox.queue_for(e), &inbox.urgent);
    let probe = req("OPTIONS", "");
    assert!(urgent(&ev(probe.clone(), front)));
    let stamped = msg(&format!(
        "{}X-Trunkgate-Source: 127.0.0.3:5060\n\n",
        String::from_utf8_lossy(&probe.to_bytes())
            .trim_end()
            .replace("\r\n", "\n")
            + "\n"
    ));
    let text = String::from_utf8_lossy(&stamped.to_bytes()).into_owned();
    assert!(
        text.contains("X-Trunkgate-Source: 127.0.0.3:5060"),
        "{text}"
    );
    assert!(!urgent(&ev(stamped, front)), "a peer's, through the front");
    let beside: std::net::SocketAddr = "127.0.0.10:5099".parse().unwrap();
    assert!(
        !urgent(&ev(probe.clone(), beside)),
        "not the front's socket"
    );
    assert!(!urgent(&ev(req("INVITE", ""), front)), "new work");
}

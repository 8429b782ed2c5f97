//! `[sip] ping_s`: peers pinged with OPTIONS outside any call; one that answers none is
//! passed over by the routes until it answers again.

use super::*;
use crate::config::Ping;

/// The standard configuration with carrier-a (and carrier-b when `both`) pinged every
/// `every_s`, down after `failures`.
fn pinging(every_s: u64, failures: u8, both: bool) -> Config {
    config_with(|n, p| {
        if n == "carrier-a" || (both && n == "carrier-b") {
            p.ping = Some(Ping {
                every: Duration::from_secs(every_s),
                failures,
            });
        }
    })
}

/// A core on [`pinging`]'s configuration.
fn pinged(every_s: u64, failures: u8, both: bool) -> H {
    H::with(pinging(every_s, failures, both))
}

fn call(h: &mut H, id: &str) {
    h.recv(
        PHONE,
        &invite_text(id, &format!("z9hG4bK{id}"), "+8610123", ""),
    );
}

/// The pings sent to `to`, each once (a ping's retransmissions left out).
fn pings(h: &mut H, to: &str) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::new();
    for r in h.take_requests(to, Method::Options) {
        if !out.iter().any(|o| o.call_id() == r.call_id()) {
            out.push(r);
        }
    }
    out
}

fn is_up(h: &H, peer: &str) -> Option<bool> {
    (h.core.peer_health().into_iter())
        .find(|(p, _)| p.as_str() == peer)
        .map(|(_, up)| up)
}

/// The pinged peer is sent an OPTIONS at once, outside any dialog, to its address and for
/// its domain (as its INVITEs are); unanswered, it is down, and the call goes to the route's next peer without waiting
/// on it; its answer to a later ping brings it back.
#[test]
fn a_peer_that_answers_no_ping_is_passed_over_until_it_answers_again() {
    let mut h = pinged(30, 1, false);
    h.advance(Duration::ZERO);
    let first = pings(&mut h, CARRIER_A);
    assert_eq!(first.len(), 1, "one ping at start");
    let ping = &first[0];
    assert_eq!(ping.uri(), "sip:ims.example.com");
    assert_eq!(ping.cseq(), Some((1, Method::Options)));
    assert!(ping.header(&Hdr::TO).is_some_and(|t| !t.contains("tag=")));
    assert!(
        pings(&mut h, CARRIER_B).is_empty(),
        "carrier-b is not pinged"
    );
    assert_eq!(is_up(&h, "carrier-a"), Some(true), "up until a ping fails");
    assert_eq!(is_up(&h, "carrier-b"), None);

    // Retransmitted meanwhile (its transaction's), then given up at 30 s; the next goes.
    h.advance(Duration::from_secs(30));
    let later = pings(&mut h, CARRIER_A);
    assert_eq!(later.len(), 2, "the first resent, and a new ping");
    assert_ne!(later[1].call_id(), ping.call_id());
    assert_eq!(is_up(&h, "carrier-a"), Some(false));

    call(&mut h, "hd1");
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    let inv = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, reply(&inv, 486, "b1", &[], None));
    let cdr = h.cdrs.last().expect("a CDR");
    assert!(
        cdr.events.iter().any(|e| e == "peer_down_carrier-a"),
        "{:?}",
        cdr.events
    );

    // The ping out now is answered, even refused: carrier-a is there.
    let last = later.last().expect("a ping").clone();
    h.recv_msg(CARRIER_A, reply(&last, 405, "p1", &[], None));
    assert_eq!(is_up(&h, "carrier-a"), Some(true));
    call(&mut h, "hd2");
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
}

/// Every peer of the route down: the caller gets 503 at once (peer unreachable, Q.850 38,
/// network out of order), no INVITE goes anywhere. (The two first pings are 2.5 s apart:
/// spread over the first 5 s.)
#[test]
fn a_call_whose_every_peer_is_down_gets_503_at_once() {
    let mut h = pinged(10, 1, true);
    h.advance(Duration::ZERO);
    let at_once = pings(&mut h, CARRIER_A).len() + pings(&mut h, CARRIER_B).len();
    assert_eq!(at_once, 1, "one first ping at once, the other later");
    h.advance(Duration::from_millis(2500));
    // The first one's resends (its own Call-ID), and the other's first ping.
    let (a, b) = (
        pings(&mut h, CARRIER_A).len(),
        pings(&mut h, CARRIER_B).len(),
    );
    assert_eq!((a, b), (1, 1));
    h.advance(Duration::from_millis(10_000));
    assert_eq!(is_up(&h, "carrier-a"), Some(false));
    assert_eq!(is_up(&h, "carrier-b"), Some(false));
    h.sent.clear();
    call(&mut h, "hd3");
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    assert_eq!(h.failures(PHONE), vec![503]);
    let cdr = h.cdrs.last().expect("a CDR");
    assert_eq!(cdr.call_tag, CallTag::PeerUnreachable);
    assert_eq!(cdr.cause, 38);
    assert!(
        cdr.events
            .iter()
            .filter(|e| e.starts_with("peer_down_"))
            .count()
            == 2,
        "{:?}",
        cdr.events
    );
}

/// 408 and 503 say the peer (or the proxy before it) takes no calls; any other answer,
/// a refusal of the OPTIONS itself among them, that it is there. A provisional says
/// nothing yet.
#[test]
fn a_ping_answered_408_or_503_fails_any_other_answer_succeeds() {
    for (status, up) in [
        (200, true),
        (404, true),
        (401, true),
        (408, false),
        (503, false),
        (500, true),
    ] {
        let mut h = pinged(60, 1, false);
        h.advance(Duration::ZERO);
        let ping = pings(&mut h, CARRIER_A).remove(0);
        h.recv_msg(CARRIER_A, reply(&ping, 100, "", &[], None));
        assert_eq!(is_up(&h, "carrier-a"), Some(true));
        h.recv_msg(CARRIER_A, reply(&ping, status, "p", &[], None));
        assert_eq!(is_up(&h, "carrier-a"), Some(up), "{status}");
        // The next ping comes when it is due, not before.
        h.advance(Duration::from_secs(59));
        assert!(pings(&mut h, CARRIER_A).is_empty(), "{status}");
        h.advance(Duration::from_secs(1));
        assert_eq!(pings(&mut h, CARRIER_A).len(), 1, "{status}");
    }
}

/// `ping_failures = 3`: two failed pings leave the peer up, an answer starts the count
/// again, the third failure in a row takes it down.
#[test]
fn the_peer_is_down_after_ping_failures_in_a_row() {
    let mut h = pinged(5, 3, false);
    h.advance(Duration::ZERO);
    h.advance(Duration::from_secs(10));
    assert_eq!(is_up(&h, "carrier-a"), Some(true), "two failures of three");
    let ping = pings(&mut h, CARRIER_A).pop().expect("the third ping");
    h.recv_msg(CARRIER_A, reply(&ping, 200, "p", &[], None));
    h.advance(Duration::from_secs(15));
    assert_eq!(
        is_up(&h, "carrier-a"),
        Some(true),
        "two more, after an answer"
    );
    h.advance(Duration::from_secs(5));
    assert_eq!(is_up(&h, "carrier-a"), Some(false), "the third in a row");
}

/// A call's INVITE to a pinged peer that got no answer at all has the peer pinged at once,
/// without taking it down itself (a carrier that drops an INVITE to a barred number in
/// silence is there): the next call still goes to it; the ping's outcome decides, at once,
/// not at the next ping an interval later.
#[test]
fn an_unanswered_invite_has_the_peer_pinged_at_once_and_the_ping_decides() {
    for answered in [true, false] {
        let mut h = pinged(300, 1, false);
        h.advance(Duration::ZERO);
        let ping = pings(&mut h, CARRIER_A).remove(0);
        h.recv_msg(CARRIER_A, reply(&ping, 200, "p", &[], None));
        call(&mut h, "hd4");
        assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
        // Timer B: failover to carrier-b, and carrier-a pinged again at once.
        h.advance(Duration::from_secs(32));
        assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
        assert_eq!(
            is_up(&h, "carrier-a"),
            Some(true),
            "one INVITE is no verdict"
        );
        let again = pings(&mut h, CARRIER_A);
        assert_eq!(again.len(), 1, "pinged at once");
        call(&mut h, "hd5");
        assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
        if answered {
            h.recv_msg(CARRIER_A, reply(&again[0], 200, "p", &[], None));
            assert_eq!(is_up(&h, "carrier-a"), Some(true));
        } else {
            h.advance(Duration::from_secs(32));
            assert_eq!(is_up(&h, "carrier-a"), Some(false), "the ping's failure");
        }
    }
}

/// A reload that keeps a peer's pings at its address keeps what they found (no new ping
/// before its time); one that stops them forgets the peer's state (it takes calls again)
/// and gives up the ping out, whose late answer changes nothing; pinged again, it is
/// pinged at once.
#[test]
fn a_reload_keeps_or_forgets_a_peers_state() {
    let mut h = pinged(20, 1, false);
    h.advance(Duration::from_secs(20));
    assert_eq!(is_up(&h, "carrier-a"), Some(false));
    let out = pings(&mut h, CARRIER_A).pop().expect("the ping out");
    let same = h.core.config().as_ref().clone();
    assert!(h.reload(Arc::new(same.clone())));
    h.advance(Duration::from_secs(1));
    assert!(
        (pings(&mut h, CARRIER_A).iter()).all(|p| p.call_id() == out.call_id()),
        "only the ping out (resent): no new one before its time"
    );
    assert_eq!(is_up(&h, "carrier-a"), Some(false));

    let mut off = same.clone();
    edit_profiles(&mut off, |_, p| p.ping = None);
    assert!(h.reload(Arc::new(off)));
    assert_eq!(is_up(&h, "carrier-a"), None);
    h.recv_msg(CARRIER_A, reply(&out, 503, "p", &[], None));
    call(&mut h, "hd7");
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
    h.advance(Duration::from_secs(60));
    assert!(pings(&mut h, CARRIER_A).is_empty());

    assert!(h.reload(Arc::new(same)));
    h.advance(Duration::ZERO);
    assert_eq!(pings(&mut h, CARRIER_A).len(), 1, "pinged at once");
    assert_eq!(is_up(&h, "carrier-a"), Some(true));
}

/// Calls whose INVITEs to a pinged peer time out together count as one failure between two
/// pings' outcomes (`ping_failures = 2`: still up), and one ping goes at once; that ping
/// unanswered is the second failure.
#[test]
fn a_burst_of_unanswered_invites_counts_once() {
    let mut h = pinged(300, 2, false);
    h.advance(Duration::ZERO);
    let ping = pings(&mut h, CARRIER_A).remove(0);
    h.recv_msg(CARRIER_A, reply(&ping, 200, "p", &[], None));
    call(&mut h, "hb1");
    call(&mut h, "hb2");
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 2);
    h.advance(Duration::from_secs(32));
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 2);
    assert_eq!(is_up(&h, "carrier-a"), Some(true), "one failure of two");
    assert_eq!(pings(&mut h, CARRIER_A).len(), 1, "one ping at once");
    h.advance(Duration::from_secs(32));
    assert_eq!(
        is_up(&h, "carrier-a"),
        Some(false),
        "the ping's failure too"
    );
}

/// A reload that pings a down peer more often takes effect when the ping out ends, not at
/// the old interval's next ping (up to an hour away, the peer down all along).
#[test]
fn a_reload_to_ping_more_often_applies_with_a_ping_out() {
    let mut h = pinged(300, 1, false);
    h.advance(Duration::from_secs(300));
    assert_eq!(is_up(&h, "carrier-a"), Some(false));
    let out = pings(&mut h, CARRIER_A).pop().expect("the ping out");
    h.advance(Duration::from_secs(1));
    assert!(h.reload(Arc::new(pinging(10, 1, false))));
    h.advance(Duration::from_secs(31));
    let sent = pings(&mut h, CARRIER_A);
    assert!(
        sent.iter().any(|p| p.call_id() != out.call_id()),
        "a new ping once the one out was given up"
    );
}

/// A reload that stops pinging a down peer and then fails (a defect) leaves the peer down:
/// what the pings found goes back with the configuration.
#[test]
fn a_reload_that_panics_leaves_a_down_peer_down() {
    let mut h = pinged(20, 1, false);
    h.advance(Duration::from_secs(20));
    assert_eq!(is_up(&h, "carrier-a"), Some(false));
    let off = config_with(|_, p| p.ping = None);
    crate::call::router::fault::test_fault::arm_reload(2);
    assert!(!h.reload(Arc::new(off)));
    assert_eq!(is_up(&h, "carrier-a"), Some(false));
    call(&mut h, "hf1");
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
}

/// Behind a front, a ping goes through it naming the peer; the front's own answer (not
/// stamped with the peer as its source: a TCP connection to the peer refused, say) says the
/// peer could not be reached, whatever its status; the peer's, stamped, that it is there.
#[test]
fn behind_a_front_its_own_answer_to_a_ping_is_no_answer_of_the_peer() {
    const FRONT: &str = "127.0.0.10:5060";
    for (stamped, up) in [(false, false), (true, true)] {
        let mut cfg = pinging(60, 1, false);
        cfg.front = Some(Target::udp(addr(FRONT)));
        let mut h = H::with(cfg);
        h.advance(Duration::ZERO);
        let ping = pings(&mut h, FRONT).remove(0);
        assert!(
            (ping.header(&Hdr::named(crate::call::cx::PEER_HEADER)))
                .is_some_and(|p| p.starts_with("127.0.0.3:5060"))
        );
        let source = [(Hdr::named(crate::call::cx::SOURCE_HEADER), CARRIER_A)];
        let extra: &[(Hdr, &str)] = if stamped { &source } else { &[] };
        h.recv_msg(FRONT, reply(&ping, 477, "f", extra, None));
        assert_eq!(is_up(&h, "carrier-a"), Some(up), "stamped: {stamped}");
    }
}

/// Two peers pinged at different intervals, each ping answered at once: each is pinged in
/// its own time, over and over (each answer, send and deadline moves its peer in the
/// schedule the core wakes by).
#[test]
fn peers_answering_are_pinged_each_at_its_own_interval() {
    let mut h = H::with(config_with(|n, p| {
        let every = match n {
            "carrier-a" => 10,
            "carrier-b" => 25,
            _ => return,
        };
        p.ping = Some(Ping {
            every: Duration::from_secs(every),
            failures: 1,
        });
    }));
    let mut sent = [(CARRIER_A, Vec::new()), (CARRIER_B, Vec::new())];
    for second in 0..=60 {
        if second > 0 {
            h.advance(Duration::from_secs(1));
        } else {
            h.advance(Duration::ZERO);
        }
        for (peer, at) in &mut sent {
            for p in pings(&mut h, peer) {
                at.push(second);
                h.recv_msg(peer, reply(&p, 200, "ok", &[], None));
            }
        }
    }
    // The first pings of a start are spread: one peer's at once, the other's 2.5 s later
    // (which comes first is the profiles' order).
    let (a, b) = (&sent[0].1, &sent[1].1);
    let firsts = [a[0], b[0]];
    assert!(firsts == [0, 3] || firsts == [3, 0], "{firsts:?}");
    assert!(a.windows(2).all(|w| w[1] - w[0] == 10), "carrier-a: {a:?}");
    assert!(b.windows(2).all(|w| w[1] - w[0] == 25), "carrier-b: {b:?}");
    assert_eq!(a.len(), 7 - usize::from(a[0] > 0), "carrier-a: {a:?}");
    assert_eq!(b.len(), 3, "carrier-b: {b:?}");
    assert_eq!(is_up(&h, "carrier-a"), Some(true));
    assert_eq!(is_up(&h, "carrier-b"), Some(true));
}

/// A reload that makes pings more frequent brings the kept peers' next pings forward
/// spread over the new interval, not all to its end: they would go in one burst and stay
/// in step for good (each next ping is set from its send), the burst the spread of first
/// pings is there to avoid (2,000 trunks pinged in one core turn). A review found it.
#[test]
fn a_reload_to_ping_more_often_spreads_the_kept_peers_pings() {
    let mut h = pinged(300, 1, true);
    h.advance(Duration::from_secs(10));
    for peer in [CARRIER_A, CARRIER_B] {
        for p in pings(&mut h, peer) {
            h.recv_msg(peer, reply(&p, 200, "ok", &[], None));
        }
    }
    assert!(h.reload(Arc::new(pinging(10, 1, true))));
    let mut first: [Option<u32>; 2] = [None, None];
    for second in 0..=12 {
        if second > 0 {
            h.advance(Duration::from_secs(1));
        } else {
            h.advance(Duration::ZERO);
        }
        for (i, peer) in [CARRIER_A, CARRIER_B].into_iter().enumerate() {
            for p in pings(&mut h, peer) {
                first[i].get_or_insert(second);
                h.recv_msg(peer, reply(&p, 200, "ok", &[], None));
            }
        }
    }
    let [Some(a), Some(b)] = first else {
        panic!("each pinged within the new interval: {first:?}");
    };
    assert_eq!(a.abs_diff(b), 5, "spread over the 10 s: {first:?}");
}

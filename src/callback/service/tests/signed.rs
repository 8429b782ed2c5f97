//! `[callback] secret_file`: signed datagrams both ways, and what is dropped without them.

use super::*;
use crate::callback::signature::{Keys, MAX_SKEW_S, Seen, Signer, sign, verify};

const KEY: &str = "a-shared-key-of-some-length";

fn keys() -> Keys {
    Keys::parse(KEY).unwrap()
}

fn signed() -> H {
    let mut h = H::new(|c| c.keys = Some(keys()));
    // Past the second the service started in (what is signed before it is refused).
    h.advance(Duration::from_secs(1));
    h
}

impl H {
    fn wall_s(&self) -> u64 {
        WALL0 + (self.now - self.start).as_secs()
    }

    /// The AS's share of the replay table filled with made-up entries up to `upto`.
    fn fill_share(&mut self, upto: usize) {
        let own: std::net::SocketAddr = AS.parse().unwrap();
        for i in self.svc.replays.held_by(own.ip())..upto {
            let mut mac = [0u8; 32];
            mac[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let at = (self.wall_s(), own.ip());
            self.svc.replays.remember(self.now, at, mac, Seen::Placed);
        }
    }

    /// `text` signed by the AS at the fake wall clock's second (+ `skew_s`).
    fn signed(&self, text: &str, skew_s: i64) -> Vec<u8> {
        let at = self.wall_s().saturating_add_signed(skew_s);
        sign(text.as_bytes(), Signer::As, &keys(), at)
    }

    /// The messages `bytes` got back, each checked as signed by the gateway and unwrapped.
    fn answers(&mut self, bytes: &[u8]) -> Vec<String> {
        let now_s = self.wall_s();
        self.recv_bytes(AS, bytes)
            .iter()
            .filter(|o| matches!(o, Output::Transmit { .. }))
            .map(|o| {
                let t = sent_text(o, AS);
                let v = verify(t.as_bytes(), Signer::Gateway, &keys(), now_s)
                    .expect("our datagrams are signed");
                String::from_utf8_lossy(v.message).into_owned()
            })
            .collect()
    }

    /// The next process, started now, told what this one kept (`refuse_up_to`).
    fn next_process(&self, kept: u64) -> H {
        let mut next = H::new(|c| c.keys = Some(keys()));
        next.now = self.now;
        next.start = self.start;
        next.svc = Service::new(config(|c| c.keys = Some(keys())), self.now, self.wall());
        next.svc.refuse_up_to(kept);
        next
    }

    /// What `text`, signed now, got back.
    fn ask_signed(&mut self, text: &str) -> Vec<String> {
        let bytes = self.signed(text, 0);
        self.answers(&bytes)
    }
}

#[test]
fn a_signed_request_is_taken_and_every_answer_is_signed() {
    let mut h = signed();
    assert_eq!(
        h.ask_signed("REQUEST: id=a;user1=1001;user2=1002\n"),
        vec!["ACK: id=a;result=ok"]
    );
    assert_eq!(
        h.ask_signed("STATUS: id=a"),
        vec!["ACK: id=a;result=ok;state=calling1"]
    );
    // The RESPONSE, and its resends later, carry a fresh ts each.
    let out = h.end("a", Outcome::Connected);
    let first = sent_text(&out[0], AS);
    let v = verify(first.as_bytes(), Signer::Gateway, &keys(), h.wall_s()).unwrap();
    assert_eq!(
        format!("{}\n", String::from_utf8_lossy(v.message)),
        RESPONSE_CONNECTED
    );
    h.advance(Duration::from_secs(40));
    h.svc.handle_timeout(h.now);
    let again = h.drain();
    let resent = sent_text(&again[0], AS);
    let gw = |now| verify(resent.as_bytes(), Signer::Gateway, &keys(), now);
    assert!(gw(WALL0).is_err(), "an old ts");
    assert!(gw(h.wall_s()).is_ok());
    // The AS's signed ACK stops the resends.
    assert!(h.ask_signed("ACK: id=a").is_empty());
    assert_eq!(h.svc.stats().responses("acked"), 1);
}

#[test]
fn unsigned_forged_reflected_and_stale_datagrams_get_no_answer() {
    let mut h = signed();
    let forged = String::from_utf8(h.signed("REQUEST: id=a;user1=1001;user2=1002", 0))
        .unwrap()
        .replace("user2=1002", "user2=+8610999");
    let other_key = sign(
        b"REQUEST: id=b;user1=1001;user2=1002",
        Signer::As,
        &Keys::parse("not-the-shared-key!").unwrap(),
        h.wall_s(),
    );
    // One of ours, sent back to us: signed as the gateway, not as the AS.
    let reflected = sign(
        b"REQUEST: id=g;user1=1001;user2=1002",
        Signer::Gateway,
        &keys(),
        h.wall_s(),
    );
    let late = h.signed(
        "REQUEST: id=c;user1=1001;user2=1002",
        -(MAX_SKEW_S as i64) - 1,
    );
    let early = h.signed("REQUEST: id=d;user1=1001;user2=1002", MAX_SKEW_S as i64 + 1);
    assert!(h.recv("REQUEST: id=e;user1=1001;user2=1002").is_empty());
    assert!(h.recv("garbage").is_empty());
    for bytes in [forged.as_bytes(), &other_key, &reflected, &late, &early] {
        assert!(h.recv_bytes(AS, bytes).is_empty());
    }
    let s = h.svc.stats();
    assert_eq!(s.dropped("unsigned"), 2);
    assert_eq!(s.dropped("bad_signature"), 3);
    assert_eq!(s.dropped("stale"), 2);
    assert_eq!(h.svc.active(), 0);
    // A clock a little off is fine, and so is a CRLF line end.
    let mut near = h.signed("REQUEST: id=f;user1=1001;user2=1002", MAX_SKEW_S as i64);
    near.extend_from_slice(b"\r\n");
    assert_eq!(h.answers(&near), vec!["ACK: id=f;result=ok"]);
    // Signed before the service started (within the skew): what became of it may have
    // been in a replay table that went with the last process.
    let before = sign(
        b"REQUEST: id=h;user1=1001;user2=1002",
        Signer::As,
        &keys(),
        WALL0 - 1,
    );
    assert!(h.recv_bytes(AS, &before).is_empty());
    assert_eq!(h.svc.stats().dropped("stale"), 3);
}

#[test]
fn the_allow_list_still_applies_to_signed_datagrams() {
    let mut h = signed();
    let bytes = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    assert!(h.recv_bytes("192.0.2.7:40000", &bytes).is_empty());
    assert_eq!(h.svc.stats().dropped("not_allowed"), 1);
}

#[test]
fn a_refused_signed_request_sent_again_gets_the_same_answer_and_places_nothing() {
    let mut h = H::new(|c| {
        c.keys = Some(keys());
        c.max_active = 1;
    });
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.ask_signed("REQUEST: id=a;user1=1001;user2=1002"),
        vec!["ACK: id=a;result=ok"]
    );
    let refused = h.signed("REQUEST: id=b;user1=1001;user2=1002", 0);
    let busy = vec!["ACK: id=b;result=error;reason=too_many_active".to_string()];
    assert_eq!(h.answers(&refused), busy);
    // A slot is free again; the refused datagram, sent again (by the AS whose answer was
    // lost, or by anyone who copied it), is refused the same way and places no call.
    h.end("a", Outcome::Connected);
    assert_eq!(h.answers(&refused), busy);
    assert_eq!(h.svc.active(), 0);
    // Signed afresh, it is a new request, and it goes through.
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.ask_signed("REQUEST: id=b;user1=1001;user2=1002"),
        vec!["ACK: id=b;result=ok"]
    );
}

#[test]
fn a_captured_request_replayed_after_its_id_is_forgotten_places_no_call() {
    let mut h = H::new(|c| {
        c.keys = Some(keys());
        c.rate = NonZeroU32::new(1000).unwrap();
    });
    h.advance(Duration::from_secs(1));
    let captured = h.signed("REQUEST: id=victim;user1=1001;user2=1002", 0);
    assert_eq!(h.recv_bytes(AS, &captured).len(), 2);
    // The same datagram while it runs is the AS's resend: answered, no second call.
    assert_eq!(h.answers(&captured), vec!["ACK: id=victim;result=ok"]);
    h.end("victim", Outcome::Connected);
    // Ended, but the same signed bytes get the answer they got then (the AS's resend after
    // a call-back that ended within the second), and place nothing. Before: duplicate_id.
    assert_eq!(h.answers(&captured), vec!["ACK: id=victim;result=ok"]);
    assert_eq!(h.svc.active(), 0);
    // Pushed out of the table of ended ids by MAX_ENDED more...
    for i in 0..MAX_ENDED {
        h.advance(Duration::from_millis(1));
        let r = h.signed(&format!("REQUEST: id=n{i};user1=1001;user2=1002"), 0);
        h.recv_bytes(AS, &r);
        h.end(&format!("n{i}"), Outcome::Connected);
    }
    assert_eq!(h.svc.state(&id("victim")), None, "forgotten");
    // ...the captured datagram, still inside its ts window, is dropped as a replay.
    assert!(h.recv_bytes(AS, &captured).is_empty());
    assert_eq!(h.svc.stats().dropped("replayed"), 1);
    assert_eq!(h.svc.active(), 0);
    // Once its ts is too old it is stale anyway, and the replay table has let it go.
    h.advance(Duration::from_secs(2 * MAX_SKEW_S + 2));
    assert!(h.recv_bytes(AS, &captured).is_empty());
    assert_eq!(h.svc.stats().dropped("stale"), 1);
}

/// A signed service started while the wall clock read an hour ahead of the fake one (which
/// the test's datagrams are signed by: the clock set right).
fn started_an_hour_ahead() -> H {
    let now = Instant::now();
    let ahead = SystemTime::UNIX_EPOCH + Duration::from_secs(WALL0 + 3600);
    H {
        svc: Service::new(config(|c| c.keys = Some(keys())), now, ahead),
        now,
        start: now,
    }
}

/// A gateway whose clock was an hour ahead when it started, set right since: what the AS
/// signs now is taken. Before, everything was dropped as signed "before the start" until
/// the clock caught up with the wrong start, an hour later.
#[test]
fn a_clock_that_was_ahead_at_start_refuses_nothing_once_set_right() {
    let mut h = started_an_hour_ahead();
    h.advance(Duration::from_secs(10));
    assert_eq!(
        h.ask_signed("REQUEST: id=a;user1=1001;user2=1002"),
        vec!["ACK: id=a;result=ok"]
    );
    assert_eq!(h.svc.stats().dropped("stale"), 0);
    // What was signed before the start (as the clock now puts it) is still refused.
    let before = h.signed("REQUEST: id=b;user1=1001;user2=1002", -11);
    assert!(h.recv_bytes(AS, &before).is_empty());
    assert_eq!(h.svc.stats().dropped("stale"), 1);
}

/// A key rotation as the README has it (the new key first, the old one second, the ASes
/// moved one by one): an AS still on the old key gets its ACK and its RESPONSE (resends
/// too) signed with the old key, which it knows. Before, everything went with the first
/// key, and such an AS dropped every answer until it moved: its RESPONSEs given up.
#[test]
fn answers_go_with_the_key_their_request_came_with() {
    let both = || Keys::parse("the-new-key-of-some-length\na-shared-key-of-some-length").unwrap();
    let mut h = H::new(|c| c.keys = Some(both()));
    h.advance(Duration::from_secs(1));
    let req = h.signed("REQUEST: id=k;user1=1001;user2=1002", 0);
    let now_s = h.wall_s();
    let out = h.recv_bytes(AS, &req);
    let old = keys();
    let ack = sent_text(&out[0], AS);
    assert!(
        verify(ack.as_bytes(), Signer::Gateway, &old, now_s).is_ok(),
        "{ack}"
    );
    let out = h.end("k", Outcome::Connected);
    let response = sent_text(&out[0], AS);
    assert!(verify(response.as_bytes(), Signer::Gateway, &old, h.wall_s()).is_ok());
    let again = h.fire().unwrap_or_default();
    let resent = sent_text(&again[0], AS);
    assert!(verify(resent.as_bytes(), Signer::Gateway, &old, h.wall_s()).is_ok());
    // An AS on the new key gets the new one.
    let new_only = Keys::parse("the-new-key-of-some-length").unwrap();
    let req = sign(b"STATUS: id=k", Signer::As, &new_only, h.wall_s());
    let now_s = h.wall_s();
    let out = h.recv_bytes(AS, &req);
    let status = sent_text(&out[0], AS);
    assert!(verify(status.as_bytes(), Signer::Gateway, &new_only, now_s).is_ok());
}

/// The operator rotates as the README says: the new key put first, the old one kept, a
/// reload. A call-back placed before it still gets its RESPONSE (and its resends) signed
/// with its REQUEST's key, which its AS still reads. Before, the key was kept by its place
/// in the file: the first, now the new key, which that AS did not have yet.
#[test]
fn a_key_rotation_leaves_a_running_call_backs_response_with_its_requests_key() {
    let mut h = signed();
    let req = h.signed("REQUEST: id=r;user1=1001;user2=1002", 0);
    h.recv_bytes(AS, &req);
    let rotated = Keys::parse("the-new-key-of-some-length\na-shared-key-of-some-length");
    h.svc.set_config(config(|c| c.keys = rotated.ok()));
    let out = h.end("r", Outcome::Connected);
    let response = sent_text(&out[0], AS);
    assert!(
        verify(response.as_bytes(), Signer::Gateway, &keys(), h.wall_s()).is_ok(),
        "{response}"
    );
    let again = h.fire().unwrap_or_default();
    let resent = sent_text(&again[0], AS);
    assert!(verify(resent.as_bytes(), Signer::Gateway, &keys(), h.wall_s()).is_ok());
}

/// Once the clock has had time to settle, setting it back does not move the start: a
/// REQUEST signed before the start stays refused (the last process may have taken it).
#[test]
fn a_clock_set_back_late_does_not_move_the_start() {
    let mut h = signed();
    h.advance(CLOCK_SETTLES);
    // The clock is set back 20 minutes; a REQUEST signed then (before the start, but
    // within the skew of the clock as it now reads) is refused as stale.
    let now = h.now;
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(WALL0 - 600);
    let old = sign(
        b"REQUEST: id=z;user1=1001;user2=1002",
        Signer::As,
        &keys(),
        WALL0 - 600,
    );
    h.svc.handle_datagram(now, wall, addr(AS), &old);
    assert!(h.drain().is_empty());
    assert_eq!(h.svc.stats().dropped("stale"), 1);
}

/// A replay table near full refuses a new signed REQUEST with `over_rate` (and remembers
/// that: the same bytes later get the same answer, never a call), so the AS hears it should
/// slow down; a full one drops it unanswered (what it cannot remember it cannot take).
#[test]
fn a_replay_table_near_full_refuses_with_over_rate() {
    let mut h = signed();
    // Filled by sixteen other ASes, none past its share (a sixteenth of the table, with so
    // many holding entries).
    let fill = |h: &mut H, upto: usize| {
        for i in h.svc.replays.len()..upto {
            let mut mac = [0u8; 32];
            mac[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let src = std::net::IpAddr::from([127, 0, 1, (i % 16) as u8]);
            h.svc
                .replays
                .remember(h.now, (h.wall_s(), src), mac, Seen::Refused("over_rate"));
        }
    };
    fill(&mut h, Replays::MAX / 8 * 7);
    h.advance(Duration::from_secs(50));
    let first = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    let refused = vec!["ACK: id=a;result=error;reason=over_rate".to_string()];
    assert_eq!(h.answers(&first), refused);
    assert_eq!(h.svc.active(), 0);
    fill(&mut h, Replays::MAX);
    assert!(
        h.ask_signed("REQUEST: id=b;user1=1001;user2=1002")
            .is_empty()
    );
    assert_eq!(h.svc.stats().dropped("replay_table_full"), 1);
    // The oldest entries go a minute after they came: room again. The refused bytes,
    // still within their window, get their answer again and place nothing; a fresh
    // REQUEST goes.
    h.advance(Duration::from_secs(15));
    assert_eq!(h.answers(&first), refused);
    assert_eq!(h.svc.active(), 0);
    assert_eq!(
        h.ask_signed("REQUEST: id=c;user1=1001;user2=1002"),
        vec!["ACK: id=c;result=ok"]
    );
}

/// A clock set right while no datagram comes is seen all the same (the shell tells the
/// service the time every second): a REQUEST signed after the 10 minutes is taken. Before,
/// only a datagram within the 10 minutes moved the start, and with none every datagram was
/// refused for as long as the clock had been ahead.
#[test]
fn a_clock_set_right_while_the_service_is_quiet_is_seen() {
    let mut h = started_an_hour_ahead();
    for _ in 0..120 {
        h.advance(Duration::from_secs(1));
        let wall = h.wall();
        h.svc.observe_clock(h.now, wall);
    }
    h.advance(Duration::from_secs(11 * 60));
    assert_eq!(
        h.ask_signed("REQUEST: id=a;user1=1001;user2=1002"),
        vec!["ACK: id=a;result=ok"]
    );
}

/// A REQUEST signed by an AS whose clock runs 20 s ahead, replayed after a restart: the
/// new process has no replay table, and the `ts` is after its start and within the skew.
/// The `ts` ahead of the clock is handed to the shell to keep, and a service told it
/// refuses anything dated up to it; later datagrams from that AS pass. Before, the replay
/// placed the call again.
#[test]
fn a_request_dated_ahead_is_not_taken_again_by_the_next_process() {
    let mut h = signed();
    let req = h.signed("REQUEST: id=a;user1=1001;user2=1002", 20);
    assert_eq!(h.answers(&req), vec!["ACK: id=a;result=ok"]);
    let ahead = h.svc.take_ahead().expect("dated ahead: kept");
    assert_eq!(ahead, h.wall_s() + 20);
    assert_eq!(h.svc.take_ahead(), None, "once");
    // A datagram dated now is not ahead.
    h.ask_signed("STATUS: id=a");
    assert_eq!(h.svc.take_ahead(), None);
    // The next process, started 5 s later, told what this one kept.
    h.advance(Duration::from_secs(5));
    let mut next = h.next_process(ahead);
    next.advance(Duration::from_secs(1));
    assert!(next.answers(&req).is_empty(), "the replay is refused");
    assert_eq!(next.svc.stats().dropped("stale"), 1);
    assert_eq!(next.svc.active(), 0);
    // The same AS, still 20 s ahead, a second later: taken.
    let fresh = next.signed("REQUEST: id=b;user1=1001;user2=1002", 20);
    assert_eq!(next.answers(&fresh), vec!["ACK: id=b;result=ok"]);
}

/// A captured signed REQUEST resent from another port of the AS's address (a spoofer's
/// copy) gets its ACK there, but moves nothing: the RESPONSEs still go where the AS
/// listens. Before, the copy sent them to the spoofer's port, and the AS never heard the
/// outcome.
#[test]
fn a_captured_request_resent_from_another_port_does_not_move_the_responses() {
    let mut h = signed();
    let captured = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    assert_eq!(h.recv_bytes(AS, &captured).len(), 2);
    let out = h.recv_bytes("127.0.0.1:9", &captured);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(&out[0], Output::Transmit { to, .. } if *to == addr("127.0.0.1:9")));
    let out = h.end("a", Outcome::Connected);
    assert!(
        matches!(&out[0], Output::Transmit { to, .. } if *to == addr(AS)),
        "{out:?}"
    );
}

/// The AS's own resend from a new port, signed afresh, moves the RESPONSEs there; that
/// resend captured and sent again from yet another port (spoofing the AS's IP) is a replay
/// and moves nothing. Before, the fresh resend was not remembered, and its copy took the
/// RESPONSEs to the spoofer's port. And a resend of a running call-back is answered `ok`
/// even with the AS's share of the replay table nearly full (before: `over_rate`, and an AS
/// would place the call again under a new id).
#[test]
fn a_fresh_resend_moves_the_responses_and_its_replay_does_not() {
    let mut h = signed();
    let first = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    assert_eq!(h.recv_bytes(AS, &first).len(), 2);
    h.advance(Duration::from_secs(2));
    let resend = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    assert_ne!(resend, first);
    let new_port = "127.0.0.1:7001";
    assert_eq!(h.recv_bytes(new_port, &resend).len(), 1);
    let out = h.recv_bytes("127.0.0.1:9999", &resend);
    assert_eq!(out.len(), 1, "answered where it came from: {out:?}");
    assert_eq!(
        h.svc.entries[&id("a")].src,
        addr(new_port),
        "the replay moved nothing"
    );
    h.fill_share(Replays::SHARE / 8 * 7);
    h.advance(Duration::from_secs(1));
    let late = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    let out = h.recv_bytes(new_port, &late);
    let now_s = h.wall_s();
    let text = sent_text(&out[0], new_port);
    let v = verify(text.as_bytes(), Signer::Gateway, &keys(), now_s).unwrap();
    assert_eq!(String::from_utf8_lossy(v.message), "ACK: id=a;result=ok");
    assert_eq!(h.svc.active(), 1);
    let out = h.end("a", Outcome::Connected);
    assert!(
        matches!(&out[0], Output::Transmit { to, .. } if *to == addr(new_port)),
        "{out:?}"
    );
}

/// One AS's share of the replay table: near it, its new signed REQUESTs are refused
/// `over_rate`; at it they are dropped unanswered, while the table has room for the others
/// (one AS flooding signed REQUESTs, refused or not, filled it for all before).
#[test]
fn an_as_near_its_share_of_the_replay_table_is_refused_alone() {
    let mut h = signed();
    h.fill_share(Replays::SHARE / 8 * 7);
    assert_eq!(
        h.ask_signed("REQUEST: id=a;user1=1001;user2=1002"),
        vec!["ACK: id=a;result=error;reason=over_rate"]
    );
    h.fill_share(Replays::SHARE);
    assert!(!h.svc.replays.is_full());
    assert!(
        h.ask_signed("REQUEST: id=b;user1=1001;user2=1002")
            .is_empty()
    );
    assert_eq!(h.svc.stats().dropped("replay_share_full"), 1);
    assert_eq!(h.svc.active(), 0);
}

/// The same signed REQUEST from another allowed address (the AS's NAT pool, its standby)
/// is the AS's own resend: `result=ok` there, and the RESPONSEs still go where the first
/// came from. Before, it was refused `duplicate_id`, telling the AS its running call-back
/// had failed.
#[test]
fn a_signed_request_resent_from_another_allowed_address_is_acknowledged() {
    let mut h = H::new(|c| {
        c.keys = Some(keys());
        c.allow = vec!["127.0.0.0/24".parse().unwrap()];
    });
    h.advance(Duration::from_secs(1));
    let req = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    assert_eq!(h.recv_bytes(AS, &req).len(), 2);
    let other = "127.0.0.9:7000";
    let out = h.recv_bytes(other, &req);
    assert_eq!(out.len(), 1, "{out:?}");
    let now_s = h.wall_s();
    let text = sent_text(&out[0], other);
    let v = verify(text.as_bytes(), Signer::Gateway, &keys(), now_s).unwrap();
    assert_eq!(String::from_utf8_lossy(v.message), "ACK: id=a;result=ok");
    assert_eq!(h.svc.active(), 1, "nothing placed again");
    let out = h.end("a", Outcome::Connected);
    assert!(
        matches!(&out[0], Output::Transmit { to, .. } if *to == addr(AS)),
        "{out:?}"
    );
}

/// A REQUEST dated the second it came is kept for the next process too: one started
/// within that second (a crash, restarted at once) would otherwise take its replay, the
/// `ts` being no earlier than its start. Before, only a `ts` ahead of the clock was kept.
#[test]
fn a_request_dated_the_second_it_came_is_not_taken_by_a_process_started_within_it() {
    let mut h = signed();
    let req = h.signed("REQUEST: id=a;user1=1001;user2=1002", 0);
    assert_eq!(h.answers(&req), vec!["ACK: id=a;result=ok"]);
    let kept = h.svc.take_ahead().expect("kept for the next process");
    assert_eq!(kept, h.wall_s());
    let mut next = h.next_process(kept);
    assert!(next.answers(&req).is_empty(), "the replay is refused");
    assert_eq!(next.svc.active(), 0);
}

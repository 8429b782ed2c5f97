//! 100rel on each leg (RFC 3262): offered, required or hidden per profile; PRACK refused, timed out, retransmitted.

use super::*;

use crate::interop::prack::{On405, PrackMode, PrackPolicy};

fn prack(mode: PrackMode, on_405: On405) -> PrackPolicy {
    PrackPolicy { mode, on_405 }
}

fn reliable_183(inv: &Request, tag: &str, rseq: u32) -> Message {
    reliable_183_from(inv, tag, rseq, "<sip:c@127.0.0.3>", SDP)
}

/// A reliable 183 with `sdp`, from the peer at `contact`.
pub(super) fn reliable_183_from(
    inv: &Request,
    tag: &str,
    rseq: u32,
    contact: &str,
    sdp: &str,
) -> Message {
    reply(
        inv,
        183,
        tag,
        &[
            (Hdr::REQUIRE, "100rel"),
            (Hdr::RSEQ, &rseq.to_string()),
            (Hdr::CONTACT, contact),
        ],
        Some(sdp),
    )
}

/// The test gateway with `peer`'s `[prack]` set to `mode` and `on_405`.
pub(super) fn with_prack(peer: &str, mode: PrackMode, on_405: On405) -> H {
    H::with(config_with(|n, p| {
        if n == peer {
            p.prack = prack(mode, on_405);
        }
    }))
}

#[test]
fn outbound_invite_offers_requires_or_hides_100rel_per_profile() {
    for (mode, supported, required) in [
        (PrackMode::Supported, true, false),
        (PrackMode::Required, true, true),
        (PrackMode::Disabled, false, false),
    ] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.prack = prack(mode, On405::Continue);
                p.session_timer = crate::interop::session_timer::SessionTimerPolicy::off();
            }
        }));
        h.recv(
            PHONE,
            &invite_text(
                "p1",
                "z9hG4bKp1",
                "+8610123",
                "Supported: 100rel, timer\r\n",
            ),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        assert_eq!(
            inv.header_has_token(&Hdr::SUPPORTED, "100rel"),
            supported,
            "{mode:?}"
        );
        // Supported is what the gateway implements toward this peer, not the caller's list
        // (RFC 3261 §20.37): no session timers toward a peer whose profile turns them off.
        assert!(
            !inv.header_has_token(&Hdr::SUPPORTED, "timer"),
            "the caller's other tags are not ours to advertise: {mode:?}"
        );
        assert_eq!(
            inv.header_has_token(&Hdr::REQUIRE, "100rel"),
            required,
            "{mode:?}"
        );
    }
}

/// A 100rel caller whose 180 (no SDP) is still unacknowledged when the callee's reliable 183
/// with the answer comes: that 183 waits behind it, and the callee's bare 200 overtakes both.
/// The caller's 200 carries the answer it was never given. Before, the queued 183 was dropped
/// and the 200 went bare: the caller's offer was never answered.
#[test]
fn an_answer_queued_behind_an_unacknowledged_180_reaches_the_caller_in_the_200() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("p5", "z9hG4bKp5", "+8610123", "Supported: 100rel\r\n"),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "c5",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            None,
        ),
    );
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c5", 1));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reply(&pr, 200, "c5", &[], None));
    let sent: Vec<u16> = h.take_responses(PHONE).iter().map(|r| r.status()).collect();
    assert!(
        !sent.contains(&183),
        "the 183 waits behind the 180: {sent:?}"
    );
    let ok = h.carrier_answers_bare(&inv, "c5");
    assert_eq!(ok.body().as_ref(), SDP.as_bytes());
}

/// The callee answers in a reliable 183 and its 200 comes without SDP. A caller that had the
/// 183 unreliably (it did not offer 100rel) gets the answer in the 200, its only reliable
/// answer (RFC 3261 §13.2.1); before, its 200 had none. A caller that had it reliably gets a
/// 200 without SDP, as the callee sent it.
#[test]
fn an_answer_given_in_a_reliable_183_reaches_the_caller_in_the_200_when_it_had_it_unreliably() {
    for caller_rel in [false, true] {
        let mut h = H::new();
        let extra = if caller_rel {
            "Supported: 100rel\r\n"
        } else {
            ""
        };
        h.recv(PHONE, &invite_text("p3", "z9hG4bKp3", "+8610123", extra));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(CARRIER_A, reliable_183(&inv, "c3", 1));
        let pr = h.one_request(CARRIER_A, Method::Prack);
        h.recv_msg(CARRIER_A, reply(&pr, 200, "c3", &[], None));
        if caller_rel {
            let r183 = h.response_with(PHONE, 183, "183");
            let rseq = r183.header(&Hdr::RSEQ).unwrap();
            let tag = r183.to_tag().unwrap();
            let prack = phone_prack("p3", &tag, 2, rseq.parse().unwrap(), "");
            h.recv(PHONE, &prack);
        }
        h.take(PHONE);
        let ok = h.carrier_answers_bare(&inv, "c3");
        if caller_rel {
            assert!(ok.body().is_empty(), "answered reliably already");
        } else {
            assert_eq!(ok.body().as_ref(), SDP.as_bytes());
        }
    }
}

#[test]
fn reliable_183_is_pracked_and_405_is_survived_with_continue() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p2", "z9hG4bKp2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c2", 7));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(pr.header(&Hdr::RACK).as_deref(), Some("7 1 INVITE"));
    assert_eq!(pr.uri(), "sip:c@127.0.0.3");
    assert_eq!(pr.to_tag().as_deref(), Some("c2"));
    // The caller did not offer 100rel: it gets a plain 183 with the early SDP.
    let r183 = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 183)
        .unwrap();
    assert!(!r183.has_header(&Hdr::RSEQ));
    assert_eq!(r183.body().as_ref(), SDP.as_bytes());
    // A retransmitted 183 (same RSeq) is neither PRACKed again nor relayed again.
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c2", 7));
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    assert!(h.take_responses(PHONE).is_empty());
    // The carrier refuses its own PRACK, then answers the call.
    h.recv_msg(CARRIER_A, reply(&pr, 405, "c2", &[], None));
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c2", 8));
    assert!(
        h.take_requests(CARRIER_A, Method::Prack).is_empty(),
        "no more PRACKs to this peer"
    );
    // Nor for a reliable 199 (RFC 6228) of its branch: before, that one was PRACKed, and
    // refused again.
    let rel = [(Hdr::REQUIRE, "100rel"), (Hdr::RSEQ, "9")];
    h.recv_msg(CARRIER_A, reply(&inv, 199, "c2", &rel, None));
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty(), "199");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c2",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(h.statuses(PHONE).contains(&200));
    h.advance(Duration::from_secs(40));
    let c = &h.cdrs[0];
    assert!(
        c.events.contains(&"prack_405_ignored".to_string()),
        "{:?}",
        c.events
    );
}

#[test]
fn prack_timeout_with_fail_ends_the_call() {
    let mut h = with_prack("carrier-a", PrackMode::Supported, On405::Fail);
    h.recv(PHONE, &invite_text("p3", "z9hG4bKp3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c3", 1));
    h.take(PHONE);
    // Nobody answers the PRACK: Timer F after 32 s.
    h.advance(Duration::from_secs(33));
    assert!(h.statuses(PHONE).contains(&502));
    assert!(!h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    let c = &h.cdrs[0];
    assert_eq!(c.call_tag, CallTag::PrackRejected);
    assert!(
        c.events.contains(&"prack_timeout".to_string()),
        "{:?}",
        c.events
    );
}

pub(super) fn invite_100rel(call_id: &str, branch: &str) -> String {
    invite_text(call_id, branch, "+8610123", "Supported: 100rel\r\n")
}

/// Provisionals queue behind one the caller has not PRACKed; when the queue is full, one
/// without SDP makes room, never the 183 with the callee's SDP. Before, the newest queued
/// one was replaced: a 180 after the 183 dropped it, the caller never saw the offer or the
/// early media, and our PRACK to the callee waited for an answer that could not come.
#[test]
fn a_full_queue_of_provisionals_keeps_the_one_with_sdp() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("q1", "z9hG4bKq1"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c4", &[], None));
    let first = h.take_responses(PHONE);
    assert_eq!(first.len(), 1);
    for _ in 0..crate::call::state::MAX_QUEUED_1XX - 1 {
        h.recv_msg(CARRIER_A, reply(&inv, 180, "c4", &[], None));
    }
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c4", &[], Some(SDP)));
    for _ in 0..3 {
        h.recv_msg(CARRIER_A, reply(&inv, 180, "c4", &[], None));
    }
    // PRACK each provisional as it comes: the 183 with SDP is among them.
    let tag = first[0].to_tag().unwrap();
    let mut rseq: u32 = first[0].header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let mut seen = Vec::new();
    for cseq in 2..12 {
        h.recv(PHONE, &phone_prack("q1", &tag, cseq, rseq, ""));
        let Some(next) = h
            .take_responses(PHONE)
            .into_iter()
            .find(|r| r.status() > 100 && r.status() < 200)
        else {
            break;
        };
        seen.push((next.status(), !next.body().is_empty()));
        rseq = next.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    }
    assert!(seen.contains(&(183, true)), "{seen:?}");
    assert!(seen.len() <= crate::call::state::MAX_QUEUED_1XX, "{seen:?}");
}

#[test]
fn caller_gets_reliable_provisionals_retransmitted_until_its_prack() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("p4", "z9hG4bKp4"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c4", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c4", &[], Some(SDP)));
    let first = h.take_responses(PHONE);
    assert_eq!(first.len(), 1, "one reliable provisional at a time");
    assert_eq!(first[0].status(), 180);
    assert!(first[0].header_has_token(&Hdr::REQUIRE, "100rel"));
    let rseq: u32 = first[0].header(&Hdr::RSEQ).unwrap().parse().unwrap();
    // Retransmitted at T1 and 2*T1 until PRACKed.
    h.advance(Duration::from_millis(1600));
    assert_eq!(h.statuses(PHONE), vec![180, 180]);
    let tag = first[0].to_tag().unwrap();
    let prack = phone_prack("p4", &tag, 2, rseq, "");
    h.recv(PHONE, &prack);
    let rs = h.take_responses(PHONE);
    let st: Vec<(u16, Method)> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(st.contains(&(200, Method::Prack)), "{st:?}");
    // The queued 183 goes out next, reliably, with the next RSeq.
    let r183 = rs
        .iter()
        .find(|r| r.status() == 183)
        .expect("queued 183 sent after PRACK");
    assert_eq!(r183.header(&Hdr::RSEQ).unwrap(), (rseq + 1).to_string());
    assert_eq!(r183.body().as_ref(), SDP.as_bytes());
    // No PRACK ever reaches the carrier: reliability is terminated per leg.
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    // The carrier answers while the 183 (with SDP) is unacknowledged: the 2xx waits.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c4",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(
        !h.statuses(PHONE).contains(&200),
        "2xx held until the SDP-carrying 183 is PRACKed"
    );
    let prack2 = in_dialog(
        "PRACK",
        "sip:127.0.0.1:5060",
        phone_from(),
        &phone_to(&tag),
        "p4",
        3,
        "z9hG4bKpr5",
        "127.0.0.2:5060",
        "",
    )
    .replace(
        "Content-Length: 0",
        &format!("RAck: {} 1 INVITE\r\nContent-Length: 0", rseq + 1),
    );
    h.recv(PHONE, &prack2);
    let st = h.statuses(PHONE);
    assert!(
        st.contains(&200) && st.iter().filter(|s| **s == 200).count() == 2,
        "200 PRACK + 200 INVITE: {st:?}"
    );
}

#[test]
fn caller_that_never_pracks_gets_5xx() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("p5", "z9hG4bKp5"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c5", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_secs(33));
    assert!(h.statuses(PHONE).contains(&500));
    assert_eq!(h.cdrs[0].call_tag, CallTag::PrackRejected);
    assert!(
        h.cdrs[0]
            .events
            .contains(&"caller_prack_timeout".to_string())
    );
}

#[test]
fn ingress_100rel_policy_refusals() {
    let mut h = with_prack("pbx", PrackMode::Required, On405::Continue);
    h.recv(PHONE, &invite_text("p6", "z9hG4bKp6", "+8610123", ""));
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 421);
    assert_eq!(r.header(&Hdr::REQUIRE).as_deref(), Some("100rel"));

    let mut h = with_prack("pbx", PrackMode::Disabled, On405::Continue);
    h.recv(
        PHONE,
        &invite_text("p7", "z9hG4bKp7", "+8610123", "Require: 100rel\r\n"),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 420);
    assert_eq!(r.header(&Hdr::UNSUPPORTED).as_deref(), Some("100rel"));
    // With the default (supported) a caller requiring 100rel is served.
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("p8", "z9hG4bKp8", "+8610123", "Require: 100rel\r\n"),
    );
    assert_eq!(h.statuses(PHONE), vec![100]);
}

#[test]
fn prack_481_with_continue_keeps_waiting_for_the_answer() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p12", "z9hG4bKp12", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c12", 1));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reply(&pr, 481, "c12", &[], None));
    assert!(h.cdrs.is_empty(), "the call goes on");
    h.recv_msg(CARRIER_A, reply(&inv, 486, "c12", &[], None));
    assert!(h.statuses(PHONE).contains(&486));
    assert!(
        h.cdrs[0].events.contains(&"prack_481_ignored".to_string()),
        "{:?}",
        h.cdrs[0].events
    );
}

#[test]
fn prack_is_retransmitted_over_udp_until_answered() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p13", "z9hG4bKp13", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c13", 1));
    assert_eq!(h.take_requests(CARRIER_A, Method::Prack).len(), 1);
    h.advance(Duration::from_millis(1600));
    assert_eq!(
        h.take_requests(CARRIER_A, Method::Prack).len(),
        2,
        "Timer E at 0.5 s and 1.5 s"
    );
}

/// A callee that sends reliable provisionals without waiting for our PRACKs' answers (RFC
/// 3262 §3 forbids it) gets at most `MAX_OPEN_PRACKS` PRACKs waiting at once; the ones past
/// that are taken as lost, and their retransmission is PRACKed once a PRACK is answered.
/// Before, every one opened a transaction of its own for as long as the peer kept on.
#[test]
fn a_callee_gets_only_so_many_pracks_waiting_at_once() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p14", "z9hG4bKp14", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    for rseq in 1..=20 {
        h.recv_msg(CARRIER_A, reliable_183(&inv, "c14", rseq));
    }
    let max = usize::from(crate::call::state::UacRel::MAX_OPEN_PRACKS);
    let pracks = h.take_requests(CARRIER_A, Method::Prack);
    assert_eq!(pracks.len(), max);
    h.recv_msg(CARRIER_A, reply(&pracks[0], 200, "c14", &[], None));
    // The callee retransmits the first one past the bound, unPRACKed so far.
    let next = u32::try_from(max).unwrap() + 1;
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c14", next));
    let again = h.take_requests(CARRIER_A, Method::Prack);
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].header(&Hdr::RACK).as_deref(),
        Some(format!("{next} 1 INVITE").as_str())
    );
    // That callee fails with its PRACKs unanswered: the next one's are PRACKed at once.
    h.recv_msg(CARRIER_A, reply(&inv, 503, "c14", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, reliable_183(&inv_b, "b14", 1));
    assert_eq!(h.take_requests(CARRIER_B, Method::Prack).len(), 1);
}

/// Found by Sofia-SIP in tests/clients.rs: the carrier's 200 came right after its 180, so our
/// 200 overtook the phone's PRACK of the reliable 180 (allowed: the 180 had no SDP). That
/// PRACK must get 200, not 481, which ends the phone's dialog (RFC 5057) right after answer.
#[test]
fn a_prack_that_crosses_our_2xx_is_answered_200() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("p9", "z9hG4bKp9"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c9", &[], None));
    let r180 = h.take_responses(PHONE).remove(0);
    let rseq: u32 = r180.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = r180.to_tag().unwrap();
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c9",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert_eq!(
        h.statuses(PHONE),
        vec![200],
        "the 2xx does not wait for this PRACK"
    );
    let prack = phone_prack("p9", &tag, 2, rseq, "");
    h.recv(PHONE, &prack);
    let r = h.take_responses(PHONE);
    assert_eq!(
        r.iter()
            .map(|r| (r.status(), r.cseq().unwrap().1))
            .collect::<Vec<_>>(),
        vec![(200, Method::Prack)]
    );
    // Once: a second PRACK for it is a stranger's.
    h.recv(PHONE, &phone_prack("p9", &tag, 3, rseq, ""));
    assert_eq!(h.statuses(PHONE), vec![481]);
}

/// A call whose callee answered while the caller's reliable 183 (with SDP) is not PRACKed:
/// the 2xx is held (RFC 3262 §3). Returns the carrier's INVITE, the gateway's tag toward
/// the phone and the 183's RSeq.
fn answered_with_2xx_held(h: &mut H, call_id: &str) -> (Request, String, u32) {
    h.recv(PHONE, &invite_100rel(call_id, &format!("z9hG4bK{call_id}")));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c6", &[], Some(SDP)));
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c6",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let rs = h.take_responses(PHONE);
    let st: Vec<u16> = rs.iter().map(|r| r.status()).collect();
    assert!(st.contains(&183) && !st.contains(&200), "{st:?}");
    let tag = rs
        .iter()
        .find_map(|r| r.to_tag())
        .expect("the 183 is tagged");
    let rseq = rs
        .iter()
        .find_map(|r| r.header(&Hdr::RSEQ)?.parse().ok())
        .expect("the 183 is reliable");
    (inv, tag, rseq)
}

/// An ACK from the caller while its 2xx is held (a stray, or a broken phone's) answers no
/// 2xx: the call stays unconfirmed, so the callee's re-INVITE gets 491 rather than going on
/// an early dialog, and the PRACK then delivers the 2xx as usual. Before, any ACK confirmed
/// the call.
#[test]
fn an_ack_while_the_2xx_is_held_confirms_nothing() {
    let mut h = H::new();
    let (inv, tag, rseq) = answered_with_2xx_held(&mut h, "p10");
    h.recv(
        PHONE,
        &from_phone_in("p10", "ACK", &tag, 1, "z9hG4bKp10a", ""),
    );
    assert!(h.take(CARRIER_A).is_empty());
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "c6", 2, "z9hG4bKp10re", SDP),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![491]);
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
    h.recv(PHONE, &phone_prack("p10", &tag, 2, rseq, ""));
    let mut st = h.statuses(PHONE);
    st.sort_unstable();
    assert_eq!(st, vec![200, 200], "the PRACK's 200 and the held 2xx");
}

/// The caller's reliable 183 with the callee's answer: its RSeq, our tag, and the SDP.
fn reliable_183_to_the_phone(h: &mut H, call_id: &str) -> (u32, String, Bytes) {
    h.recv(PHONE, &invite_100rel(call_id, &format!("z9hG4bK{call_id}")));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c7", &[], Some(SDP)));
    let r183 = h.response_with(PHONE, 183, "the answer reaches the phone");
    let rseq = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    (rseq, r183.to_tag().unwrap(), r183.body().clone())
}

/// The carrier answers the phone's offer in a 183 (relayed reliably), then offers in an
/// early UPDATE before the phone has PRACKed that 183: RFC 3311 §5.1 forbids that UPDATE
/// toward the phone, where the gateway is the UAS, so the carrier gets 500 with a
/// Retry-After and the phone nothing; once the phone has PRACKed, the next UPDATE goes on.
/// Before, it went to the phone at once (which would answer 491).
#[test]
fn an_early_update_waits_for_the_callers_own_exchange() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("eu1", "z9hG4bKeu1"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            183,
            "c7",
            &[(Hdr::CONTACT, "<sip:c7@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let r183 = h.response_with(PHONE, 183, "the answer reaches the phone reliably");
    let rseq: u32 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = r183.to_tag().unwrap();
    let offer = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "c7", 1, "z9hG4bKeu1u", &offer),
    );
    let refused = h.take_responses(CARRIER_A);
    assert_eq!(
        refused.iter().map(|r| r.status()).collect::<Vec<_>>(),
        [500]
    );
    assert_eq!(refused[0].header(&Hdr::RETRY_AFTER).as_deref(), Some("2"));
    assert!(h.take_requests(PHONE, Method::Update).is_empty());
    h.recv(PHONE, &phone_prack("eu1", &tag, 2, rseq, ""));
    h.take(PHONE);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "c7", 2, "z9hG4bKeu1v", &offer),
    );
    h.one_request(PHONE, Method::Update);
}

/// SDP in the PRACK of a caller that offered in its INVITE is a new offer (RFC 3262 §5),
/// and the PRACK's 200 must answer it (a 2xx it must be, §3: a caller refused its PRACK does
/// not PRACK the retransmissions, §4, and its call would fail). One restating the INVITE's
/// session (a new `o=` version at most) gets the answer the 183 gave; a changed one, which
/// the gateway does not put to the callee, gets a 200 without SDP, and the 183 is
/// acknowledged either way. Before, the restated one got a bare 200 too.
#[test]
fn an_offer_in_the_callers_prack_is_answered() {
    let mut h = H::new();
    let (rseq, tag, answer) = reliable_183_to_the_phone(&mut h, "p11");
    let again = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(PHONE, &phone_prack("p11", &tag, 2, rseq, &again));
    let ok = h.response_with(PHONE, 200, "the PRACK's 200");
    assert_eq!(
        ok.body(),
        &answer,
        "the restated offer gets the answer given"
    );
    assert_eq!(
        ok.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
    h.advance(Duration::from_secs(2));
    assert!(h.statuses(PHONE).is_empty(), "the 183 is acknowledged");

    // Another port: a changed session, not answered from what the 183 said.
    let mut h = H::new();
    let (rseq, tag, _) = reliable_183_to_the_phone(&mut h, "p12");
    let moved = again.replace("4000", "4002");
    h.recv(PHONE, &phone_prack("p12", &tag, 2, rseq, &moved));
    let ok = h.response_with(PHONE, 200, "still a 200");
    assert!(ok.body().is_empty());
    assert!(
        h.take(CARRIER_A).is_empty(),
        "nothing of it goes to the callee"
    );
    h.advance(Duration::from_secs(2));
    assert!(h.statuses(PHONE).is_empty(), "the 183 is acknowledged");
    h.recv(PHONE, &cancel_text("p12", "z9hG4bKp12"));
    h.advance(Duration::from_secs(1));
    let events = &h.cdrs[0].events;
    assert!(
        events.contains(&"prack_offer_ignored".to_string()),
        "{events:?}"
    );
}

/// The fuzzer's core_dialog target found this: the callee hung up while its 2xx was held,
/// and the caller, with only an early dialog, was sent a BYE (which RFC 3261 §15 forbids
/// the callee's side) while its INVITE was never answered: the server transaction stayed
/// for ever. Now the INVITE gets 480 and the callee's 2xx is ACKed.
#[test]
fn callee_bye_while_its_2xx_waits_for_the_callers_prack_answers_the_caller_480() {
    let mut h = H::new();
    let (inv, _, _) = answered_with_2xx_held(&mut h, "p6");
    let bye = from_carrier_in(&inv, "BYE", "c6", 2, "z9hG4bKp6bye", "");
    h.recv(CARRIER_A, &bye);
    let to_phone = h.take(PHONE);
    assert!(
        to_phone
            .iter()
            .all(|m| matches!(m, Message::Response(r) if r.status() == 480)),
        "no BYE on an early dialog, the INVITE answered: {to_phone:?}"
    );
    assert_eq!(to_phone.len(), 1);
    assert_eq!(
        h.take_requests(CARRIER_A, Method::Ack).len(),
        1,
        "the held 2xx is ACKed"
    );
    // For the caller, and the bill, the call was never answered.
    let c = &h.cdrs[0];
    assert_eq!((c.call_tag, c.status), (CallTag::CalleeBye, 480));
    assert_eq!((c.answer.as_deref(), c.duration_ms), (None, 0));
    h.advance(Duration::from_secs(64));
    h.take(PHONE);
    assert_idle(&mut h);
}

/// The caller never PRACKs while the 2xx is held: the provisional is still retransmitted
/// after the answer, and 64*T1 later the caller gets 500 and the callee ACK and BYE. Before,
/// the retransmissions stopped at the answer and the call waited for ever.
#[test]
fn a_caller_that_never_pracks_while_the_2xx_is_held_gets_500_and_the_callee_a_bye() {
    let mut h = H::new();
    answered_with_2xx_held(&mut h, "p7");
    h.advance(Duration::from_secs(2));
    assert!(h.statuses(PHONE).contains(&183), "still retransmitted");
    h.advance(Duration::from_secs(31));
    assert!(h.statuses(PHONE).contains(&500));
    let to_carrier = h.requests_to(CARRIER_A);
    let mut methods: Vec<Method> = to_carrier.iter().map(|r| r.method()).collect();
    methods.dedup(); // the BYE may have been retransmitted already
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    let bye = &to_carrier[1];
    h.recv_msg(CARRIER_A, reply(bye, 200, "c6", &[], None));
    let c = &h.cdrs[0];
    assert_eq!(
        (c.call_tag, c.status, c.answer.as_deref()),
        (CallTag::PrackRejected, 500, None)
    );
    // Never answered for the caller's peer (`calls_answered_total{direction="inbound"}`):
    // before, the held 2xx counted as the phone's answer. (The carrier did answer us.)
    let answered = |d: Direction| {
        h.events.iter().any(|e| {
            matches!(e, CoreEvent::Progress { direction, stage: Stage::Answered, .. } if *direction == d)
        })
    };
    assert!(!answered(Direction::Inbound));
    assert!(answered(Direction::Outbound));
    h.advance(Duration::from_secs(64));
    h.take(PHONE);
    assert_idle(&mut h);
}

/// The caller gives up while its 2xx is held: its INVITE gets 487 (RFC 3261 §15.1.2), the
/// callee ACK and BYE, and nothing stays behind. Before, a BYE left the INVITE unanswered
/// for ever, and a CANCEL was answered 200 and nothing else.
#[test]
fn a_caller_that_gives_up_while_its_2xx_is_held_gets_487_and_the_callee_ack_and_bye() {
    for (i, how) in ["BYE", "CANCEL"].into_iter().enumerate() {
        let mut h = H::new();
        let call = format!("p8{i}");
        let (_, tag, _) = answered_with_2xx_held(&mut h, &call);
        let req = if how == "CANCEL" {
            invite_100rel(&call, &format!("z9hG4bK{call}"))
                .replacen("INVITE sip:", "CANCEL sip:", 1)
                .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        } else {
            from_phone_in(&call, "BYE", &tag, 2, "z9hG4bKp8bye", "")
        };
        h.recv(PHONE, &req);
        let mut st = h.statuses(PHONE);
        st.sort_unstable();
        assert_eq!(st, vec![200, 487], "{how}: 200 to it, 487 to the INVITE");
        let to_carrier: Vec<Method> = h
            .requests_to(CARRIER_A)
            .iter()
            .map(|r| r.method())
            .collect();
        assert_eq!(to_carrier, vec![Method::Ack, Method::Bye], "{how}");
        let c = &h.cdrs[0];
        assert_eq!((c.status, c.answer.as_deref()), (487, None), "{how}");
        // It gave up on a call it never had answered: a cancel, whichever way it said so.
        assert_eq!(c.call_tag, CallTag::CallerCancel, "{how}");
        h.advance(Duration::from_secs(64));
        h.take(PHONE);
        h.take(CARRIER_A);
        assert_idle(&mut h);
    }
}

#[test]
fn an_offer_in_the_callees_reliable_183_is_answered_in_our_prack_with_the_callers_answer_and_none_crosses_it()
 {
    let mut h = H::new();
    // A late offer: the phone's INVITE has no SDP; it does 100rel.
    h.recv(PHONE, &offerless("lo1", "Supported: 100rel\r\n"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.body().is_empty());
    // The carrier's offer comes in a reliable 183: no PRACK until the phone has answered.
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 1));
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    let r183 = h.response_with(PHONE, 183, "the offer reaches the phone");
    assert!(r183.header_has_token(&Hdr::REQUIRE, "100rel"));
    let rseq: u32 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    // The carrier retransmits its 183 meanwhile: still no PRACK, nothing more to the phone.
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 1));
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    // Until the phone answers, the carrier may not offer again (RFC 3311 §5.2).
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "c1", 2, "z9hG4bKlo2", SDP),
    );
    let refused = h.take_responses(CARRIER_A);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status(), 500);
    assert!(refused[0].header(&Hdr::RETRY_AFTER).is_some());
    assert!(h.take_requests(PHONE, Method::Update).is_empty());
    // The phone answers in its PRACK; ours carries that answer, for RSeq 1 of the INVITE.
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    let tag = r183.to_tag().unwrap();
    h.recv(PHONE, &phone_prack("lo1", &tag, 2, rseq, &answer));
    assert!(h.statuses(PHONE).contains(&200));
    let prack = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(prack.header(&Hdr::RACK).as_deref(), Some("1 1 INVITE"));
    assert_eq!(prack.body().as_ref(), answer.as_bytes());
    assert_eq!(
        prack.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
}

/// The phone's INVITE without SDP (a late offer), with the header lines `extra`.
fn offerless(call_id: &str, extra: &str) -> String {
    offerless_text(call_id, &format!("z9hG4bK{call_id}"), extra)
}

/// The phone's late offer with 100rel; the first carrier's offer reaches it in a reliable
/// 183: the carrier's INVITE, and the 183's RSeq and To tag toward the phone.
fn late_offer_answered_reliably(h: &mut H, call_id: &str) -> (Request, u32, String) {
    offer_shown_reliably(h, &offerless(call_id, "Supported: 100rel\r\n"))
}

/// The phone's INVITE `invite` (a late offer, with 100rel); the first carrier's offer
/// reaches the phone in a reliable 183: as [`late_offer_answered_reliably`].
fn offer_shown_reliably(h: &mut H, invite: &str) -> (Request, u32, String) {
    h.recv(PHONE, invite);
    h.take(PHONE);
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv_a, "c1", 1));
    let first = h.response_with(PHONE, 183, "the first carrier's offer reaches the phone");
    let rseq = first.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    (inv_a, rseq, first.to_tag().unwrap())
}

#[test]
fn a_failover_before_the_callers_answer_waits_for_it_and_offers_it_to_the_next_callee() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo6");
    // The first carrier rings (queued behind its 183), then fails before the phone answers
    // its offer: the next carrier is not asked for an offer the phone would never answer.
    h.recv_msg(CARRIER_A, reply(&inv_a, 180, "c1", &[], None));
    assert!(h.take_responses(PHONE).is_empty());
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    // The phone answers the offer it was shown: the next carrier is offered that answer,
    // the carrier that failed gets no PRACK, and the phone hears nothing of its 180.
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("lo6", &tag, 2, rseq, &answer));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert_eq!(inv_b.body().as_ref(), answer.as_bytes());
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    assert_eq!(h.statuses(PHONE), vec![200]);
    // Its SDP is the answer, in a reliable 183 the phone PRACKs without SDP.
    h.recv_msg(
        CARRIER_B,
        reliable_183_from(&inv_b, "cb", 1, "<sip:cb@127.0.0.4>", SDP),
    );
    let pr = h.one_request(CARRIER_B, Method::Prack);
    assert!(pr.body().is_empty(), "an answer needs no answer");
    let r183 = h.response_with(PHONE, 183, "the next carrier's 183");
    let rseq2: u32 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(PHONE, &phone_prack("lo6", &tag, 3, rseq2, ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    assert!(h.take(CARRIER_B).is_empty());
}

#[test]
fn a_failover_waiting_for_the_callers_answer_ends_with_its_cancel_or_its_silence() {
    // Cancelled while the failover waits: 487, one CDR, no INVITE to the next carrier.
    let mut h = H::new();
    let (inv_a, _rseq, _tag) = late_offer_answered_reliably(&mut h, "lo12");
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    h.recv(PHONE, &cancel_text("lo12", "z9hG4bKlo12"));
    assert!(h.statuses(PHONE).contains(&487));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerCancel);
    h.advance(Duration::from_secs(40));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    assert_idle(&mut h);
    // A phone that never PRACKs: its INVITE fails as without a failover (RFC 3262 §3).
    let mut h = H::new();
    let (inv_a, _rseq, _tag) = late_offer_answered_reliably(&mut h, "lo13");
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    h.advance(Duration::from_secs(40));
    let finals = h.failures(PHONE);
    assert!(finals.first().is_some_and(|s| *s >= 500), "{finals:?}");
    assert_eq!(h.cdrs.len(), 1);
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    h.advance(Duration::from_secs(40));
    assert_idle(&mut h);
}

#[test]
fn a_failover_that_waited_for_the_callers_answer_ends_as_one_that_did_not_wait() {
    // carrier-a challenges with no credentials to answer; carrier-b takes no call (its
    // limit). Without the wait the phone gets 403 (the challenge cannot be answered), so it
    // does after the wait too, not 503.
    let cfg = config_with(|name, p| {
        if name == "carrier-b" {
            p.limits.calls = crate::config::CallLimits {
                max_calls: Some(0),
                cps: None,
            };
        }
    });
    let mut h = H::with(cfg);
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo30");
    let challenge = reply(
        &inv_a,
        401,
        "c1",
        &[(
            Hdr::named("WWW-Authenticate"),
            "Digest realm=\"carrier.example\", nonce=\"n1\", qop=\"auth\"",
        )],
        None,
    );
    h.recv_msg(CARRIER_A, challenge);
    assert!(h.statuses(PHONE).is_empty(), "the failover waits");
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("lo30", &tag, 2, rseq, &answer));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    let finals = h.failures(PHONE);
    assert_eq!(finals, vec![403]);
    assert_eq!((h.cdrs[0].status, h.cdrs[0].cause), (403, 21));
    assert_eq!(h.cdrs[0].reason_sip.as_deref(), Some("SIP;cause=401"));
}

/// The next callee cannot be offered the caller's answer because the gateway has no RTP
/// ports for it (the caller's answer holds a second stream; the pool has one pair): the
/// caller learns that (503, cause 47), not the failed carrier's 503 with its cause, and the
/// next carrier is sent nothing.
#[test]
fn a_failover_the_gateway_cannot_make_ends_with_its_own_reason() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    });
    cfg.media_ports = (30000, 30003);
    let mut h = H::with(cfg);
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo40");
    let busy = [(Hdr::REASON, "Q.850;cause=34")];
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &busy, None));
    let answer = format!("{SDP}m=audio 4002 RTP/AVP 0\r\n");
    h.recv(PHONE, &phone_prack("lo40", &tag, 2, rseq, &answer));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    assert_eq!(h.failures(PHONE), vec![503]);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!((h.cdrs[0].status, h.cdrs[0].cause), (503, 47));
    assert_eq!(h.cdrs[0].call_tag, CallTag::MediaUnavailable);
}

/// The last peer of the route fails after its offer reached the caller: no failover is
/// waited for (there is no next peer to offer the caller's answer to); the caller gets the
/// failure at once.
#[test]
fn the_last_peers_failure_does_not_wait_for_the_callers_answer() {
    let mut cfg = config();
    cfg.routes[0].to.truncate(1);
    let mut h = H::with(cfg);
    let (_inv_a, _rseq, _tag) = late_offer_answered_reliably(&mut h, "lo41");
    h.input(Input::SendFailed(h.txn_to(CARRIER_A)));
    assert_eq!(h.failures(PHONE), vec![503]);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
}

#[test]
fn on_an_anchored_call_the_next_callee_is_offered_the_callers_answer_through_the_gateway() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo14");
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("lo14", &tag, 2, rseq, &answer));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    let offer = String::from_utf8_lossy(inv_b.body()).into_owned();
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(
        !offer.contains("192.0.2.77"),
        "the phone's address leaked: {offer}"
    );
    // The relay sends the phone's media where its answer said.
    let pairs = h.relay_pairs();
    assert!(!pairs.is_empty(), "the relay is planned");
    assert_eq!(pairs[0].a_remote, Some("192.0.2.77:4000".parse().unwrap()));
    assert_eq!(pairs[0].b_remote, None, "nothing yet from the next carrier");
}

/// A SIP-I late offer (ISUP, no SDP) from a phone that does 100rel; the first carrier's offer
/// reaches it reliably, the carrier fails before the phone answers, and the failover waits for
/// that answer. The next carrier's INVITE and the SDP part it must carry, the phone's answer.
fn sip_i_failed_over(h: &mut H, call_id: &str) -> (Request, String) {
    let isup = offerless(call_id, "Supported: 100rel\r\n").replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/isup\r\nContent-Disposition: signal;handling=optional\r\nContent-Length: 2\r\n\r\n\x01\x02",
    );
    let (inv_a, rseq, tag) = offer_shown_reliably(h, &isup);
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack(call_id, &tag, 2, rseq, &answer));
    (h.one_request(CARRIER_B, Method::Invite), answer)
}

/// The SDP part of a SIP-I INVITE, after checking its ISUP part came through as the phone
/// sent it, its disposition now the part's.
fn sdp_beside_isup(inv: &Request) -> String {
    let ct = inv.header(&Hdr::CONTENT_TYPE).unwrap();
    assert!(ct.starts_with("multipart/mixed;boundary="), "{ct}");
    assert!(inv.header(&Hdr::named("Content-Disposition")).is_none());
    let isup_part =
        b"Content-Type: application/isup\r\nContent-Disposition: signal;handling=optional\r\n\r\n\x01\x02\r\n";
    assert!(
        inv.body().windows(isup_part.len()).any(|w| w == isup_part),
        "{:?}",
        inv.body()
    );
    let part = crate::sdp::locate(Some(&ct), inv.body()).unwrap().unwrap();
    String::from_utf8_lossy(part.of(inv.body())).into_owned()
}

#[test]
fn a_sip_i_late_offer_offers_the_next_callee_the_callers_answer_beside_its_isup() {
    let mut h = H::new();
    // The next carrier gets SIP-I's early offer: the phone's answer beside the ISUP.
    let (inv_b, answer) = sip_i_failed_over(&mut h, "lo18");
    assert_eq!(sdp_beside_isup(&inv_b), answer);
    // Its SDP is the answer: our PRACK to it carries none, and no PRACK goes to the first.
    h.recv_msg(
        CARRIER_B,
        reliable_183_from(&inv_b, "cb", 1, "<sip:cb@127.0.0.4>", SDP),
    );
    let pr = h.one_request(CARRIER_B, Method::Prack);
    assert!(pr.body().is_empty(), "an answer needs no answer");
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
}

#[test]
fn on_an_anchored_call_a_sip_i_late_offers_next_callee_is_offered_the_gateway() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    let (inv_b, _) = sip_i_failed_over(&mut h, "lo31");
    let offer = sdp_beside_isup(&inv_b);
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(
        !offer.contains("192.0.2.77"),
        "the phone's address leaked: {offer}"
    );
}

#[test]
fn the_answer_beside_the_isup_is_shaped_for_the_next_callee_and_counted_once() {
    // carrier-b's profile sets a ptime: the phone's answer gets it, one ptime rewrite.
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-b" {
            p.ptime = Some(30);
        }
    }));
    let (inv_b, _) = sip_i_failed_over(&mut h, "lo32");
    assert!(sdp_beside_isup(&inv_b).contains("a=ptime:30"));
    let ptime = h.core.rewrites().into_iter().find(|(k, _)| *k == "ptime");
    assert_eq!(ptime, Some(("ptime", 1)));
}

#[test]
fn a_late_offer_whose_body_cannot_take_an_sdp_part_fails_over_at_once() {
    // A multipart body without SDP, and an encoded ISUP: the next carrier gets the INVITE
    // as it came, at once (waiting for the phone's answer would be for nothing).
    for (call_id, extra) in [
        (
            "lo33",
            "Content-Type: multipart/mixed;boundary=b\r\nContent-Length: 2\r\n\r\n\x01\x02",
        ),
        (
            "lo34",
            "Content-Type: application/isup\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n\x01\x02",
        ),
    ] {
        let mut h = H::new();
        let invite =
            offerless(call_id, "Supported: 100rel\r\n").replace("Content-Length: 0\r\n\r\n", extra);
        let (inv_a, _, _) = offer_shown_reliably(&mut h, &invite);
        h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
        let inv_b = h.one_request(CARRIER_B, Method::Invite);
        assert_eq!(inv_b.body().as_ref(), b"\x01\x02", "{call_id}");
    }
}

#[test]
fn a_failed_callees_answer_to_our_prack_says_nothing_of_the_next_callee() {
    // The next carrier's profile fails a call whose PRACK it refuses.
    let mut h = with_prack("carrier-b", PrackMode::Supported, On405::Fail);
    h.recv(PHONE, &invite_text("pf1", "z9hG4bKpf1", "+8610123", ""));
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv_a, "c1", 1));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    // Its 503 crosses our PRACK, which it then refuses: the next carrier rings on.
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    h.one_request(CARRIER_B, Method::Invite);
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reply(&pr, 481, "c1", &[], None));
    assert!(h.take_responses(PHONE).is_empty(), "the call goes on");
    assert!(h.take_requests(CARRIER_B, Method::Cancel).is_empty());
    assert!(h.cdrs.is_empty());
}

#[test]
fn a_prack_body_that_is_no_sdp_is_not_offered_to_the_next_callee() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo10");
    let garbage = phone_prack("lo10", &tag, 2, rseq, "not sdp at all\r\n")
        .replace("Content-Type: application/sdp\r\n", "");
    h.recv(PHONE, &garbage);
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert!(inv_b.body().is_empty(), "a late offer again");
    // The same with the Content-Type of SDP.
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo15");
    h.recv(
        PHONE,
        &phone_prack("lo15", &tag, 2, rseq, "not sdp at all\r\n"),
    );
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert!(inv_b.body().is_empty(), "a late offer again");
}

#[test]
fn a_failover_waiting_for_the_callers_answer_lets_the_failed_callee_go() {
    // The next carrier is over its limit: the phone's answer ends the call, and the carrier
    // that failed gets no PRACK.
    let mut cfg = config_with(|n, p| {
        if n == "carrier-b" {
            p.limits.calls.max_calls = Some(0);
        }
    });
    cfg.limits = Default::default();
    let mut h = H::with(cfg);
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo16");
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    // Meanwhile the failed carrier's dialog is gone: its INFO reaches no one.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv_a, "INFO", "c1", 2, "z9hG4bKlo16i", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.take_requests(PHONE, Method::Info).is_empty());
    // Nor does the phone's reach it.
    h.recv(
        PHONE,
        &from_phone_in("lo16", "INFO", &tag, 2, "z9hG4bKlo16p", ""),
    );
    assert_eq!(h.statuses(PHONE), vec![491]);
    assert!(h.take_requests(CARRIER_A, Method::Info).is_empty());
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("lo16", &tag, 3, rseq, &answer));
    let finals = h.failures(PHONE);
    assert_eq!(finals, vec![503], "the failed carrier's answer");
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(
        h.cdrs[0].egress_call_id,
        inv_a.call_id(),
        "the CDR names the callee tried"
    );
}

/// The phone answers the first carrier's offer in its PRACK (CSeq 2) and our PRACK to the
/// carrier carries that answer, which is returned.
fn phone_answers(h: &mut H, call_id: &str, tag: &str, rseq: u32) -> String {
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack(call_id, tag, 2, rseq, &answer));
    let prack = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(prack.body().as_ref(), answer.as_bytes());
    h.take(PHONE);
    answer
}

/// The phone's session moved to another address, one version on.
fn moved_session() -> String {
    SDP.replace("192.0.2.10", "192.0.2.99")
        .replace("o=- 1 1", "o=- 1 2")
}

/// The first carrier (its INVITE `inv_a`) fails: the next one's INVITE offers `sdp`.
fn fails_over_offering(h: &mut H, inv_a: &Request, sdp: &str) {
    h.recv_msg(CARRIER_A, reply(inv_a, 503, "c1", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert_eq!(inv_b.body().as_ref(), sdp.as_bytes());
}

#[test]
fn a_callees_early_update_answered_by_the_caller_is_what_the_next_callee_is_offered() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo17");
    h.recv(PHONE, &phone_prack("lo17", &tag, 2, rseq, SDP));
    h.one_request(CARRIER_A, Method::Prack);
    h.take(PHONE);
    // The carrier offers again by UPDATE; the phone answers with a new session.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv_a, "UPDATE", "c1", 2, "z9hG4bKlo17u", SDP),
    );
    let up = h.one_request(PHONE, Method::Update);
    let moved = moved_session();
    h.recv_msg(PHONE, reply(&up, 200, &tag, &[], Some(&moved)));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    fails_over_offering(&mut h, &inv_a, &moved);
}

#[test]
fn an_early_update_of_the_callers_session_is_what_the_next_callee_is_offered() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo11");
    phone_answers(&mut h, "lo11", &tag, rseq);
    // The carrier takes UPDATE; the phone moves its media in the early dialog.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv_a,
            180,
            "c1",
            &[
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
                (Hdr::ALLOW, "INVITE, ACK, BYE, CANCEL, UPDATE, PRACK"),
            ],
            None,
        ),
    );
    h.take(PHONE);
    let moved = moved_session();
    h.recv(
        PHONE,
        &from_phone_in("lo11", "UPDATE", &tag, 3, "z9hG4bKlo11u", &moved),
    );
    let up = h.one_request(CARRIER_A, Method::Update);
    h.recv_msg(CARRIER_A, reply(&up, 200, "c1", &[], Some(SDP)));
    assert!(h.statuses(PHONE).contains(&200));
    fails_over_offering(&mut h, &inv_a, &moved);
}

/// The first callee agreed a session timer in an early UPDATE, then failed: the next callee
/// starts with none. Before, its terms stayed on the call's side B, and the phone's early
/// UPDATE toward the next callee restated the first one's interval.
#[test]
fn a_session_timer_agreed_with_a_callee_given_up_is_not_the_next_ones() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo12");
    phone_answers(&mut h, "lo12", &tag, rseq);
    let taking_update = |inv: &Request, totag: &str| {
        reply(
            inv,
            180,
            totag,
            &[
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
                (Hdr::ALLOW, "INVITE, ACK, BYE, CANCEL, UPDATE, PRACK"),
            ],
            None,
        )
    };
    h.recv_msg(CARRIER_A, taking_update(&inv_a, "c1"));
    h.take(PHONE);
    let moved = moved_session();
    h.recv(
        PHONE,
        &from_phone_in("lo12", "UPDATE", &tag, 3, "z9hG4bKlo12u", &moved),
    );
    let up = h.one_request(CARRIER_A, Method::Update);
    let terms = [
        (Hdr::SESSION_EXPIRES, "1234;refresher=uac"),
        (Hdr::REQUIRE, "timer"),
    ];
    h.recv_msg(CARRIER_A, reply(&up, 200, "c1", &terms, Some(SDP)));
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, taking_update(&inv_b, "cb"));
    h.take(PHONE);
    let again = moved.replace("o=- 1 2", "o=- 1 3");
    h.recv(
        PHONE,
        &from_phone_in("lo12", "UPDATE", &tag, 4, "z9hG4bKlo12v", &again),
    );
    let up = h.one_request(CARRIER_B, Method::Update);
    let se = up.header(&Hdr::SESSION_EXPIRES).unwrap_or_default();
    assert!(!se.contains("1234"), "the first callee's terms: {se}");
}

#[test]
fn after_a_callers_early_answer_the_next_callee_is_offered_its_session() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo7");
    let answer = phone_answers(&mut h, "lo7", &tag, rseq);
    // The first carrier fails: the next one gets the phone's session as an offer.
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert_eq!(inv_b.body().as_ref(), answer.as_bytes());
    assert_eq!(
        inv_b.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
    // Its SDP answers it: the phone's ACK needs none, and ours carries none.
    let ok = h.carrier_answers_on(CARRIER_B, &inv_b, "cb", SDP);
    h.recv(
        PHONE,
        &from_phone_in("lo7", "ACK", &tag, 1, "z9hG4bKlo7a", ""),
    );
    let ack = h.one_request(CARRIER_B, Method::Ack);
    assert!(ack.body().is_empty());
    assert_eq!(ok.status(), 200);
}

#[test]
fn an_offer_the_callees_2xx_overtook_is_answered_in_the_ack_and_frees_later_offers() {
    let mut h = H::new();
    h.recv(PHONE, &offerless("lo8", "Supported: 100rel\r\n"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    // A reliable 180 waits for the phone's PRACK; the carrier's offer in a reliable 183 is
    // queued behind it; then the carrier answers before any PRACK.
    let ringing = reply(
        &inv,
        180,
        "c1",
        &[
            (Hdr::REQUIRE, "100rel"),
            (Hdr::RSEQ, "1"),
            (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        ],
        None,
    );
    h.recv_msg(CARRIER_A, ringing);
    let r180 = h.response_with(PHONE, 180, "180");
    let tag = r180.to_tag().unwrap();
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 2));
    let ok = h.carrier_answers_on(CARRIER_A, &inv, "c1", SDP);
    assert_eq!(ok.status(), 200);
    // The 2xx carries the carrier's offer to the phone: its ACK's answer goes on.
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(
        PHONE,
        &from_phone_in("lo8", "ACK", &tag, 1, "z9hG4bKlo8a", &answer),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.body().as_ref(), answer.as_bytes());
    // Nothing is left waiting for an answer: the phone's next offer goes through.
    h.recv(
        PHONE,
        &from_phone_in("lo8", "UPDATE", &tag, 2, "z9hG4bKlo8u", SDP),
    );
    assert!(h.take_responses(PHONE).is_empty(), "not refused");
    h.one_request(CARRIER_A, Method::Update);
}

#[test]
fn a_late_offer_from_a_caller_without_100rel_is_sent_without_offering_100rel() {
    // Nobody could answer an offer in a reliable 18x before the final answer: the callee is
    // not offered 100rel.
    let mut h = H::new();
    h.recv(PHONE, &offerless("lo2", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(!inv.header_has_token(&Hdr::SUPPORTED, "100rel"));
    // The caller's INVITE had none either: no 100rel rewrite to count.
    let rel_rewrites = |h: &H| h.core.env.rewrites[super::cx::Rewrite::Prack100rel as usize];
    assert_eq!(rel_rewrites(&h), 0);
    // A callee that sends one anyway is PRACKed at once, without an answer.
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 1));
    let ours = h.one_request(CARRIER_A, Method::Prack);
    assert!(ours.body().is_empty());
    // A caller with 100rel can answer in its PRACK: offered as the profile says.
    let mut h = H::new();
    h.recv(PHONE, &offerless("lo3", "Supported: 100rel\r\n"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.header_has_token(&Hdr::SUPPORTED, "100rel"));
    assert_eq!(rel_rewrites(&h), 0);
    // A caller whose INVITE offers 100rel but whose profile disables it does not do it:
    // the 100rel the gateway removes is a rewrite.
    let mut h = with_prack("pbx", PrackMode::Disabled, On405::Continue);
    h.recv(PHONE, &offerless("lo5", "Supported: 100rel\r\n"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(!inv.header_has_token(&Hdr::SUPPORTED, "100rel"));
    assert_eq!(rel_rewrites(&h), 1);
    // Nor is a callee whose profile requires 100rel: its offer in a reliable 18x would
    // have to be answered in our PRACK, and nobody has that answer (before, its Require
    // stayed and the gateway PRACKed such an offer with no answer, against RFC 3262 §5).
    let mut h = with_prack("carrier-a", PrackMode::Required, On405::Continue);
    h.recv(PHONE, &offerless("lo4", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(!inv.header_has_token(&Hdr::REQUIRE, "100rel"));
    assert!(!inv.header_has_token(&Hdr::SUPPORTED, "100rel"));
    // With a caller that does 100rel, Require stays.
    let mut h = with_prack("carrier-a", PrackMode::Required, On405::Continue);
    h.recv(PHONE, &offerless("lo6", "Supported: 100rel\r\n"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.header_has_token(&Hdr::REQUIRE, "100rel"));
}

/// A late offer from a phone that does 100rel; the carrier's 183 carries its session but is
/// not reliable, so for the carrier its offer is the one in its 2xx (RFC 3261 §13.2.1), to
/// be answered in our ACK. The phone gets the 183 reliably and answers it in its PRACK; its
/// ACK then carries nothing. The body of our ACK to the carrier.
fn unreliable_183_answered_in_the_prack(h: &mut H, call_id: &str) -> String {
    h.recv(PHONE, &offerless(call_id, "Supported: 100rel\r\n"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &contact, Some(SDP)));
    let r183 = h.response_with(PHONE, 183, "the session reaches the phone");
    let tag = r183.to_tag().unwrap();
    let rseq: u32 = r183.header(&Hdr::RSEQ).expect("reliable").parse().unwrap();
    // The phone answers in its PRACK, which goes no further: the carrier's 183 was not
    // reliable.
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack(call_id, &tag, 2, rseq, &answer));
    assert!(h.statuses(PHONE).contains(&200));
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    let ok = h.carrier_answers_on(CARRIER_A, &inv, "c1", SDP);
    assert_eq!(ok.status(), 200);
    let ack_branch = format!("z9hG4bK{call_id}a");
    h.recv(
        PHONE,
        &from_phone_in(call_id, "ACK", &tag, 1, &ack_branch, ""),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    String::from_utf8_lossy(ack.body()).into_owned()
}

#[test]
fn an_unreliable_183s_session_answered_in_the_callers_prack_is_answered_in_our_ack() {
    let mut h = H::new();
    let ack = unreliable_183_answered_in_the_prack(&mut h, "lo9");
    assert_eq!(ack, SDP.replace("192.0.2.10", "192.0.2.77"));
}

#[test]
fn on_an_anchored_call_that_answer_goes_through_the_gateway() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    let ack = unreliable_183_answered_in_the_prack(&mut h, "lo10");
    assert!(ack.contains("c=IN IP4 127.0.0.1"), "{ack}");
    assert!(
        !ack.contains("192.0.2.77"),
        "the phone's address leaked: {ack}"
    );
    let pairs = h.relay_pairs();
    assert!(!pairs.is_empty(), "the relay is planned");
    assert_eq!(pairs[0].a_remote, Some("192.0.2.77:4000".parse().unwrap()));
}

/// The reliable provisionals of a forking carrier: each branch counts its RSeq from its own
/// start (RFC 3262 §3), and each is PRACKed in its own early dialog. Before, one RSeq per
/// attempt took the second branch's lower RSeq for a retransmission: never PRACKed, never
/// relayed, and that branch failed.
#[test]
fn each_forked_branch_is_pracked_in_its_own_early_dialog() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk1", "z9hG4bKfk1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let prack_of = |h: &mut H| {
        let pr = h.one_request(CARRIER_A, Method::Prack);
        (pr.to_tag().unwrap(), pr.header(&Hdr::RACK).unwrap())
    };
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c1", 500, "<sip:c1@127.0.0.3>", SDP),
    );
    assert_eq!(prack_of(&mut h), ("c1".into(), "500 1 INVITE".into()));
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c2", 7, "<sip:c2@127.0.0.3>", SDP),
    );
    assert_eq!(prack_of(&mut h), ("c2".into(), "7 1 INVITE".into()));
    let r183s = h.take_responses(PHONE);
    assert_eq!(
        r183s.iter().filter(|r| r.status() == 183).count(),
        2,
        "both relayed"
    );
    // The first branch again: the next of its own sequence, in its own dialog.
    let ringing = reply(
        &inv,
        180,
        "c1",
        &[
            (Hdr::REQUIRE, "100rel"),
            (Hdr::RSEQ, "501"),
            (Hdr::CONTACT, "<sip:c1@127.0.0.3>"),
        ],
        None,
    );
    h.recv_msg(CARRIER_A, ringing);
    assert_eq!(prack_of(&mut h), ("c1".into(), "501 1 INVITE".into()));
    // A retransmission of the second branch's 183 is still one.
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c2", 7, "<sip:c2@127.0.0.3>", SDP),
    );
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
}

/// A reliable provisional past a missing one is neither PRACKed nor relayed (RFC 3262 §4);
/// the missing one, when it comes, is.
#[test]
fn a_reliable_provisional_past_a_missing_one_waits_for_it() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("gap1", "z9hG4bKgap1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 1));
    h.one_request(CARRIER_A, Method::Prack);
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 3));
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    assert!(h.take_responses(PHONE).is_empty(), "not relayed");
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 2));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(pr.header(&Hdr::RACK).as_deref(), Some("2 1 INVITE"));
    assert_eq!(h.statuses(PHONE), vec![183]);
}

/// A forking carrier fails one branch while the phone still owes its PRACK (the failover
/// waits for it), then another branch answers: that 2xx is ACKed and hung up, and the
/// phone is not answered with a dialog that is gone. The failover goes on.
#[test]
fn another_forks_2xx_while_a_failover_waits_is_acked_and_hung_up() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "lo20");
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    h.take(CARRIER_A);
    let ok = reply(
        &inv_a,
        200,
        "c2",
        &[(Hdr::CONTACT, "<sip:c2@127.0.0.3>")],
        Some(SDP),
    );
    h.recv_msg(CARRIER_A, ok);
    let sent = h.requests_to(CARRIER_A);
    let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
    assert_eq!(methods, [Method::Ack, Method::Bye], "{sent:?}");
    assert!(
        !h.statuses(PHONE).contains(&200),
        "the phone is not answered"
    );
    // The phone's answer then goes to the next carrier, as before.
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("lo20", &tag, 2, rseq, &answer));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert_eq!(inv_b.body().as_ref(), answer.as_bytes());
}

/// The callee's offer in a reliable 183 waits for the caller's answer; meanwhile another
/// branch of a forking proxy speaks (a 180 with its own tag and Contact). Our PRACK with the
/// answer still goes in the offering branch's early dialog (RFC 3262 §4): before, it went
/// in the last branch's, which answered 481, and the offering branch was never PRACKed.
#[test]
fn the_prack_held_for_the_callers_answer_goes_in_its_own_branchs_dialog() {
    let mut h = H::new();
    let (inv_a, rseq, tag) = late_offer_answered_reliably(&mut h, "fk9");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv_a,
            180,
            "c2",
            &[(Hdr::CONTACT, "<sip:c2@127.0.0.5>")],
            None,
        ),
    );
    h.take_responses(PHONE);
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("fk9", &tag, 2, rseq, &answer));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(pr.to_tag().as_deref(), Some("c1"));
    assert_eq!(pr.header(&Hdr::RACK).as_deref(), Some("1 1 INVITE"));
    assert!(pr.uri().to_string().contains("c@127.0.0.3"), "{}", pr.uri());
    assert_eq!(pr.body().as_ref(), answer.as_bytes());
    // The other branch's dialog is where it was: its CSeq numbered on past the PRACK's.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv_a,
            183,
            "c2",
            &[
                (Hdr::REQUIRE, "100rel"),
                (Hdr::RSEQ, "5"),
                (Hdr::CONTACT, "<sip:c2@127.0.0.5>"),
            ],
            None,
        ),
    );
    let pr2 = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(pr2.to_tag().as_deref(), Some("c2"));
    assert!(pr2.seq() > pr.seq(), "{} after {}", pr2.seq(), pr.seq());
}

/// A late offer on an anchored call: two branches of a forking proxy each offer in a
/// reliable 183 (audio and video, then audio alone). The caller answers the first, with
/// both streams: our PRACK to that branch carries both (RFC 3264 §6: as many m= lines as
/// its offer). The answer is judged against every offer made to it, not only the last; the
/// second branch's PRACK carries it cut to its own offer's one line (before, it got both).
#[test]
fn an_answer_to_one_of_several_branches_offers_keeps_its_streams() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    h.recv(PHONE, &offerless("av1", "Supported: 100rel\r\n"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let av = format!("{SDP}m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c1", 1, "<sip:c1@127.0.0.3>", &av),
    );
    let first = h.response_with(PHONE, 183, "the first branch's offer");
    let rseq: u32 = first.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = first.to_tag().unwrap();
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c2", 1, "<sip:c2@127.0.0.5>", SDP),
    );
    let answer = format!(
        "{}m=video 4012 RTP/AVP 96\r\n",
        SDP.replace("192.0.2.10", "192.0.2.77")
    );
    h.recv(PHONE, &phone_prack("av1", &tag, 2, rseq, &answer));
    let pracks = h.take_requests(CARRIER_A, Method::Prack);
    let pr = pracks
        .iter()
        .find(|p| p.to_tag().as_deref() == Some("c1"))
        .expect("the first branch's PRACK");
    let body = String::from_utf8_lossy(pr.body()).into_owned();
    assert_eq!(body.matches("m=").count(), 2, "{body}");
    assert!(!body.contains("m=video 0 "), "{body}");
    let pr2 = pracks
        .iter()
        .find(|p| p.to_tag().as_deref() == Some("c2"))
        .expect("the second branch's PRACK");
    let body = String::from_utf8_lossy(pr2.body()).into_owned();
    assert_eq!(body.matches("m=").count(), 1, "{body}");
    assert!(
        body.contains("m=audio ") && !body.contains("m=audio 0 "),
        "{body}"
    );
}

/// The same unanchored, the branches' offers the other way round (audio alone, then audio
/// and video): the second branch's PRACK carries the caller's one-line answer with the video
/// refused after it, as many m= lines as its offer (before, one line to a two-line offer).
#[test]
fn an_answer_to_a_shorter_branch_offer_is_padded_for_a_longer_one() {
    let mut h = H::new();
    h.recv(PHONE, &offerless("av2", "Supported: 100rel\r\n"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c1", 1, "<sip:c1@127.0.0.3>", SDP),
    );
    let first = h.response_with(PHONE, 183, "the first branch's offer");
    let rseq: u32 = first.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = first.to_tag().unwrap();
    let av = format!("{SDP}m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c2", 1, "<sip:c2@127.0.0.5>", &av),
    );
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("av2", &tag, 2, rseq, &answer));
    let pracks = h.take_requests(CARRIER_A, Method::Prack);
    let body_to = |t: &str| {
        let pr = (pracks.iter())
            .find(|p| p.to_tag().as_deref() == Some(t))
            .expect("a PRACK to each branch");
        String::from_utf8_lossy(pr.body()).into_owned()
    };
    assert_eq!(body_to("c1"), answer);
    let two = body_to("c2");
    assert!(two.starts_with(&answer), "{two}");
    assert!(two.contains("m=video 0 RTP/AVP 96"), "{two}");
    assert_eq!(two.matches("m=").count(), 2, "{two}");
}

/// The caller's answer in its PRACK, encoded (`Content-Encoding: gzip`), on an unanchored
/// call whose callee's profile sets a ptime: our PRACK carries it as it came, with its
/// encoding, not shaped (which would corrupt it) and not without it.
#[test]
fn an_encoded_answer_in_the_callers_prack_goes_on_with_its_encoding() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.ptime = Some(20);
        }
    }));
    let (_inv, rseq, tag) = late_offer_answered_reliably(&mut h, "enc2");
    let prack = phone_prack("enc2", &tag, 2, rseq, SDP).replace(
        "Content-Type: application/sdp\r\n",
        "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n",
    );
    assert!(prack.contains("Content-Encoding"));
    h.recv(PHONE, &prack);
    let pr = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(pr.body().as_ref(), SDP.as_bytes());
    assert_eq!(
        pr.header(&Hdr::named("Content-Encoding")).as_deref(),
        Some("gzip")
    );
}

/// A late offer forked by the callee's proxy: each branch offers in its own reliable 183,
/// and the caller, with one early dialog toward the gateway, answers once. That answer goes
/// in our PRACK to every branch (RFC 3262 §5: a PRACK to an offer carries its answer), at
/// once to a branch that offers after it came. Before, the second branch was PRACKed at
/// once without an answer, and a call it then answered had no media negotiated with it.
#[test]
fn the_callers_one_answer_goes_in_the_prack_to_every_branchs_offer() {
    let mut h = H::new();
    let (inv, rseq, tag) = late_offer_answered_reliably(&mut h, "fo1");
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c2", 1, "<sip:c2@127.0.0.3>", SDP),
    );
    assert!(
        h.take_requests(CARRIER_A, Method::Prack).is_empty(),
        "both wait for the caller's answer"
    );
    h.recv(PHONE, &phone_prack("fo1", &tag, 2, rseq, SDP));
    let pracks = h.take_requests(CARRIER_A, Method::Prack);
    let mut to: Vec<String> = pracks.iter().map(|p| p.to_tag().unwrap()).collect();
    to.sort();
    assert_eq!(to, ["c1", "c2"]);
    assert!(
        pracks.iter().all(|p| p.body() == SDP.as_bytes()),
        "{pracks:?}"
    );
    // A third branch offering after the answer is PRACKed with it at once.
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c3", 1, "<sip:c3@127.0.0.3>", SDP),
    );
    let third = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(third.to_tag().as_deref(), Some("c3"));
    assert_eq!(third.body(), SDP.as_bytes());
    // The first branch's next reliable 183 repeats its offer: PRACKed without an answer.
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c1", 2, "<sip:c1@127.0.0.3>", SDP),
    );
    let again = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(again.to_tag().as_deref(), Some("c1"));
    assert!(again.body().is_empty());
    // The first branch answers; the second's 2xx is hung up, and its ACK answers nothing:
    // the 2xx's SDP is the offer our PRACK answered, not a new one.
    let contact = |c: &'static str| [(Hdr::CONTACT, c)];
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 200, "c1", &contact("<sip:c1@127.0.0.3>"), Some(SDP)),
    );
    h.take_requests(CARRIER_A, Method::Ack);
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 200, "c2", &contact("<sip:c2@127.0.0.3>"), Some(SDP)),
    );
    let acks = h.take_requests(CARRIER_A, Method::Ack);
    let ack = acks
        .iter()
        .find(|a| a.to_tag().as_deref() == Some("c2"))
        .unwrap();
    assert!(ack.body().is_empty(), "{ack:?}");
}

/// The same on an anchored call: every branch's PRACK carries the caller's answer as the
/// gateway shows it (the relay's address, never the phone's).
#[test]
fn every_branchs_prack_carries_the_anchored_answer() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    let (inv, rseq, tag) = late_offer_answered_reliably(&mut h, "fo2");
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c2", 1, "<sip:c2@127.0.0.3>", SDP),
    );
    h.recv(PHONE, &phone_prack("fo2", &tag, 2, rseq, SDP));
    let pracks = h.take_requests(CARRIER_A, Method::Prack);
    assert_eq!(pracks.len(), 2);
    for p in &pracks {
        let body = String::from_utf8_lossy(p.body()).into_owned();
        assert!(body.contains("c=IN IP4 127.0.0.1"), "{body}");
        assert!(!body.contains("192.0.2.10"), "{body}");
    }
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c3", 1, "<sip:c3@127.0.0.3>", SDP),
    );
    let third = h.one_request(CARRIER_A, Method::Prack);
    let body = String::from_utf8_lossy(third.body()).into_owned();
    assert!(body.contains("c=IN IP4 127.0.0.1"), "{body}");
}

/// The first branch offered in an unreliable 183 (relayed to the phone reliably, which
/// answered in its PRACK); a second branch offers in a reliable 183 and gets that answer in
/// our PRACK. When it answers, its 2xx's SDP is that offer again: no answer goes in our
/// ACK. Before, "answered" was one flag for the call, set only for a held PRACK: the 2xx
/// counted as a new offer and the branch got a second answer in the ACK.
#[test]
fn a_branch_answered_in_our_prack_gets_no_second_answer_in_the_ack() {
    let mut h = H::new();
    h.recv(PHONE, &offerless("fo3", "Supported: 100rel\r\n"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let contact = |c: &'static str| [(Hdr::CONTACT, c)];
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 183, "c1", &contact("<sip:c1@127.0.0.3>"), Some(SDP)),
    );
    let r183 = h.response_with(PHONE, 183, "the offer reaches the phone reliably");
    let (rseq, tag) = (r183.header(&Hdr::RSEQ).unwrap(), r183.to_tag().unwrap());
    h.recv(
        PHONE,
        &phone_prack("fo3", &tag, 2, rseq.parse().unwrap(), SDP),
    );
    h.take(PHONE);
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "c2", 1, "<sip:c2@127.0.0.3>", SDP),
    );
    let prack = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(prack.to_tag().as_deref(), Some("c2"));
    assert_eq!(prack.body(), SDP.as_bytes(), "the phone's answer");
    // The phone acknowledges the second branch's 183 (its SDP the offer answered already).
    let second = h.response_with(PHONE, 183, "relayed");
    let rseq: u32 = second.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(PHONE, &phone_prack("fo3", &tag, 3, rseq, ""));
    h.take(PHONE);
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 200, "c2", &contact("<sip:c2@127.0.0.3>"), Some(SDP)),
    );
    h.response_with(PHONE, 200, "the answer reaches the phone");
    h.recv(
        PHONE,
        &from_phone_in("fo3", "ACK", &tag, 1, "z9hG4bKfo3a", ""),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert!(ack.body().is_empty(), "{ack:?}");
}

/// A late offer whose body takes no SDP part fails over at once, before the phone answers
/// the first carrier's offer. The next carrier offers too (its PRACK held); the phone's
/// answer to the first carrier's offer is no answer to it, even when another provisional of
/// the next carrier comes after: its PRACK waits for the phone's answer to its own offer.
/// Before, that provisional sent it with the answer to the first carrier's.
#[test]
fn an_answer_to_a_failed_callees_offer_is_not_the_next_callees() {
    let mut h = H::new();
    let invite = offerless("fo4", "Supported: 100rel\r\n").replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/isup\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n\x01\x02",
    );
    let (inv_a, rseq, tag) = offer_shown_reliably(&mut h, &invite);
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "c1", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(
        CARRIER_B,
        reliable_183_from(&inv_b, "b1", 1, "<sip:b1@127.0.0.4>", SDP),
    );
    let early = h.take_requests(CARRIER_B, Method::Prack);
    assert!(early.is_empty(), "{early:?}");
    let answer_a = SDP.replace("4000", "4100");
    h.recv(PHONE, &phone_prack("fo4", &tag, 2, rseq, &answer_a));
    h.recv_msg(CARRIER_B, reply(&inv_b, 180, "b1", &[], None));
    assert!(
        h.take_requests(CARRIER_B, Method::Prack).is_empty(),
        "not with the answer to carrier-a's offer"
    );
    // The phone is shown carrier-b's offer and answers it.
    let shown = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 183 && r.header(&Hdr::RSEQ).is_some())
        .expect("carrier-b's offer reaches the phone");
    let rseq_b: u32 = shown.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let answer_b = SDP.replace("4000", "4200");
    h.recv(PHONE, &phone_prack("fo4", &tag, 3, rseq_b, &answer_b));
    let prack = h.one_request(CARRIER_B, Method::Prack);
    assert_eq!(prack.body(), answer_b.as_bytes());
}

/// The callee's 2xx waits for the phone's PRACK of a second reliable 183 with SDP, and the
/// phone gives up: the 2xx is ACKed before the BYE, and since our PRACK answered that
/// branch's offer already, the ACK answers nothing. Before, it carried a second answer,
/// every stream refused.
#[test]
fn a_held_2xx_given_up_is_acked_without_a_second_answer() {
    let mut h = H::new();
    let (inv, rseq, tag) = late_offer_answered_reliably(&mut h, "fo5");
    h.recv(PHONE, &phone_prack("fo5", &tag, 2, rseq, SDP));
    let first = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(first.body(), SDP.as_bytes());
    h.recv_msg(CARRIER_A, reply(&first, 200, "c1", &[], None));
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 2));
    h.one_request(CARRIER_A, Method::Prack);
    h.response_with(PHONE, 183, "the second 183, with SDP, waits for its PRACK");
    let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &contact, Some(SDP)));
    assert!(h.take_responses(PHONE).is_empty(), "the 2xx is held");
    h.recv(PHONE, &cancel_text("fo5", "z9hG4bKfo5"));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert!(ack.body().is_empty(), "{ack:?}");
}

/// The phone restates its offer in the PRACK of a 180 without SDP, its answer having come in
/// an earlier 183: the 200 carries no answer (that one is not kept), and the CDR says
/// nothing was ignored, for nothing changed.
#[test]
fn a_restated_offer_after_the_answer_is_no_ignored_one() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("p15", "z9hG4bKp15"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c7", &[], Some(SDP)));
    let r183 = h.response_with(PHONE, 183, "the answer reaches the phone");
    let tag = r183.to_tag().unwrap();
    let rseq: u32 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(PHONE, &phone_prack("p15", &tag, 2, rseq, ""));
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c7", &[], None));
    let r180 = h.response_with(PHONE, 180, "ringing, reliably");
    let rseq: u32 = r180.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let again = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(PHONE, &phone_prack("p15", &tag, 3, rseq, &again));
    let ok = h.response_with(PHONE, 200, "the PRACK's 200");
    assert!(ok.body().is_empty());
    h.recv(PHONE, &cancel_text("p15", "z9hG4bKp15"));
    let events = &h.cdrs[0].events;
    assert!(
        !events.contains(&"prack_offer_ignored".to_string()),
        "{events:?}"
    );
}

/// A PRACK with `Max-Forwards: 0` is the gateway's to answer, not to forward: it gets its
/// 200 and stops the reliable provisional's retransmissions. Before, it got 483 (the
/// forwarding rule), the 180 was never acknowledged and the call failed.
#[test]
fn a_prack_out_of_hops_is_answered_here() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("p9", "z9hG4bKp9"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c9", &[], None));
    let first = h.take_responses(PHONE);
    let rseq: u32 = first[0].header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = first[0].to_tag().unwrap();
    let prack = phone_prack("p9", &tag, 2, rseq, "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert!(prack.contains("Max-Forwards: 0"));
    h.recv(PHONE, &prack);
    let st: Vec<(u16, Method)> = (h.take_responses(PHONE).iter())
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert_eq!(st, [(200, Method::Prack)]);
    h.advance(Duration::from_millis(1600));
    assert!(h.statuses(PHONE).is_empty(), "no 180 again");
}

/// A reliable provisional of `status` from the carrier whose body is ISUP only (SIP-I's ACM
/// or CPG), RSeq `rseq`.
fn reliable_isup(inv: &Request, status: u16, tag: &str, rseq: u32) -> Message {
    let rseq = rseq.to_string();
    let extra = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, rseq.as_str()),
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
    ];
    let Message::Response(mut r) = reply(inv, status, tag, &extra, None) else {
        unreachable!("a reply is a response")
    };
    r.set_body(Bytes::from_static(b"\x01\x02"), Some("application/isup"))
        .unwrap();
    Message::Response(r)
}

/// A SIP-I carrier's reliable 180 carries its ISUP only; its answer follows in a reliable
/// 183, and its 200 has no SDP (the answer went reliably). The phone, which does 100rel, has
/// not PRACKed the 180 yet: the 180 holds nothing back (it is no offer or answer, RFC 3262
/// §5), so the 200 reaches the phone at once, with the answer. Before, the ISUP 180 counted
/// as SDP: the 200 was held for its PRACK and then sent without the answer, and the 183
/// behind it was dropped: the phone was connected with no answer to its offer.
#[test]
fn a_reliable_provisional_with_isup_only_holds_nothing_back_for_its_prack() {
    let mut h = H::new();
    let invite = invite_text("si1", "z9hG4bKsi1", "+8610123", "Supported: 100rel\r\n");
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_isup(&inv, 180, "c1", 1));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reply(&pr, 200, "c1", &[], None));
    let r180 = h.response_with(PHONE, 180, "the 180 reaches the phone");
    assert!(r180.has_header(&Hdr::RSEQ), "reliably");
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c1", 2));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reply(&pr, 200, "c1", &[], None));
    h.take(PHONE);
    let ok = h.carrier_answers_bare(&inv, "c1");
    assert_eq!(ok.body().as_ref(), SDP.as_bytes(), "the answer in the 200");
}

/// The carrier answers in a reliable 183 and its SIP-I 200 carries its ANM only. The phone
/// had the 183 unreliably (it does not do 100rel), so its 200 must carry the answer: beside
/// the ISUP, which goes on as it came. Before, the ISUP body counted as the answer and the
/// phone's 200 had none. (A PBX in the trust domain: one outside it gets no ISUP, and its
/// 200 the answer alone.)
#[test]
fn a_sip_i_2xx_with_isup_only_carries_the_early_answer_beside_it() {
    // The 183 with SDP only, and as SIP-I sends it: SDP beside its ACM, which is no part of
    // the 2xx (before, the 2xx's ANM was replaced with the 183's SDP and ACM).
    for sip_i_183 in [false, true] {
        for trusted in [true, false] {
            sip_i_2xx_after(sip_i_183, trusted);
        }
    }
}

fn sip_i_2xx_after(sip_i_183: bool, trusted: bool) {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.headers.trust_identity = trusted;
        }
    }));
    h.recv(PHONE, &invite_text("si2", "z9hG4bKsi2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let Message::Response(mut r183) = reliable_183(&inv, "c2", 1) else {
        unreachable!("a reply is a response")
    };
    if sip_i_183 {
        let body = format!(
            "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b1\r\n\
             Content-Type: application/isup\r\n\r\n\x06\x07\r\n--b1--\r\n"
        );
        r183.set_body(Bytes::from(body), Some("multipart/mixed;boundary=b1"))
            .unwrap();
    }
    h.recv_msg(CARRIER_A, Message::Response(r183));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reply(&pr, 200, "c2", &[], None));
    h.take(PHONE);
    let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
    let Message::Response(mut ok) = reply(&inv, 200, "c2", &contact, None) else {
        unreachable!("a reply is a response")
    };
    ok.set_body(Bytes::from_static(b"\x09\x00"), Some("application/isup"))
        .unwrap();
    h.recv_msg(CARRIER_A, Message::Response(ok));
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    let ct = ok.header(&Hdr::CONTENT_TYPE).unwrap();
    if !trusted {
        assert_eq!(ct, "application/sdp");
        assert_eq!(ok.body().as_ref(), SDP.as_bytes(), "the answer, no ISUP");
        return;
    }
    assert!(ct.starts_with("multipart/mixed;boundary="), "{ct}");
    let isup_part = b"Content-Type: application/isup\r\n\r\n\x09\x00\r\n";
    assert!(
        ok.body().windows(isup_part.len()).any(|w| w == isup_part),
        "{:?}",
        ok.body()
    );
    let part = crate::sdp::locate(Some(&ct), ok.body()).unwrap().unwrap();
    assert_eq!(part.of(ok.body()), SDP.as_bytes());
    assert!(!ok.body().windows(2).any(|w| w == b"\x06\x07"), "no ACM");
}

/// The phone's late offer; the carrier offers in a reliable 183, the phone answers in its
/// PRACK, and ours carrying that answer is refused 405 (`on_405 = "continue"`, the README's
/// case). The carrier never took our answer, so its 200 offers again, and the phone, whose
/// offer/answer is done, ACKs without SDP: the carrier's ACK must carry the phone's answer.
/// Before, the answer counted as given in the PRACK and the ACK went without it.
#[test]
fn an_answer_in_a_prack_the_callee_refused_goes_in_the_ack() {
    let mut h = H::new();
    let (inv, rseq, tag) = late_offer_answered_reliably(&mut h, "lo405");
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("lo405", &tag, 2, rseq, &answer));
    h.take(PHONE);
    let prack = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(prack.body().as_ref(), answer.as_bytes());
    h.recv_msg(CARRIER_A, reply(&prack, 405, "c1", &[], None));
    h.carrier_answers(&inv, "c1", SDP);
    h.recv(
        PHONE,
        &from_phone_in("lo405", "ACK", &tag, 1, "z9hG4bKlo405a", ""),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.body().as_ref(), answer.as_bytes(), "the phone's answer");
    assert!(h.cdrs.is_empty(), "the call is up");
}

/// As above, but the carrier's 200 comes before its 405 to our PRACK (a carrier that
/// refuses PRACK seldom waits for it): the answer still goes in the ACK. When the carrier
/// accepts the PRACK after its 200, or has not answered it by the phone's ACK (a carrier
/// that takes PRACK received it before its 200, RFC 3262 §3), the ACK goes without SDP.
/// Before, a refusal that came after the 200 was not heard, and the ACK went without the
/// answer the carrier never took.
#[test]
fn an_answer_in_a_prack_refused_after_the_callees_200_goes_in_the_ack() {
    for (name, prack_answer) in [("lo2a", Some(405)), ("lo2b", Some(200)), ("lo2c", None)] {
        let mut h = H::new();
        let (inv, rseq, tag) = late_offer_answered_reliably(&mut h, name);
        let answer = SDP.replace("192.0.2.10", "192.0.2.77");
        h.recv(PHONE, &phone_prack(name, &tag, 2, rseq, &answer));
        h.take(PHONE);
        let prack = h.one_request(CARRIER_A, Method::Prack);
        assert_eq!(prack.body().as_ref(), answer.as_bytes());
        h.carrier_answers(&inv, "c1", SDP);
        if let Some(status) = prack_answer {
            h.recv_msg(CARRIER_A, reply(&prack, status, "c1", &[], None));
        }
        h.recv(
            PHONE,
            &from_phone_in(name, "ACK", &tag, 1, &format!("z9hG4bK{name}a"), ""),
        );
        let ack = h.one_request(CARRIER_A, Method::Ack);
        let want: &[u8] = match prack_answer {
            Some(405) => answer.as_bytes(),
            _ => b"",
        };
        assert_eq!(
            ack.body().as_ref(),
            want,
            "{name}: {:?}",
            String::from_utf8_lossy(ack.body())
        );
        assert!(h.cdrs.is_empty(), "{name}: the call is up");
    }
}

/// As above, our PRACK carrying the phone's answer challenged by a carrier the gateway has
/// no credentials for: a refusal like the 405, and the answer goes in the ACK. Before, the
/// PRACK was set aside to answer the challenge and lost when it could not be: its answer
/// counted as given, and the ACK went without it.
#[test]
fn an_answer_in_a_prack_whose_challenge_cannot_be_answered_goes_in_the_ack() {
    let mut h = H::new();
    let (inv, rseq, tag) = late_offer_answered_reliably(&mut h, "lo407");
    let answer = SDP.replace("192.0.2.10", "192.0.2.77");
    h.recv(PHONE, &phone_prack("lo407", &tag, 2, rseq, &answer));
    h.take(PHONE);
    let prack = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(prack.body().as_ref(), answer.as_bytes());
    let auth = [(
        Hdr::named("Proxy-Authenticate"),
        "Digest realm=\"carrier\", nonce=\"n1\"",
    )];
    h.recv_msg(CARRIER_A, reply(&prack, 407, "c1", &auth, None));
    assert!(
        h.take_requests(CARRIER_A, Method::Prack).is_empty(),
        "no credentials: not sent again"
    );
    h.carrier_answers(&inv, "c1", SDP);
    h.recv(
        PHONE,
        &from_phone_in("lo407", "ACK", &tag, 1, "z9hG4bKlo407a", ""),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.body().as_ref(), answer.as_bytes(), "the phone's answer");
    assert!(h.cdrs.is_empty(), "the call is up");
}

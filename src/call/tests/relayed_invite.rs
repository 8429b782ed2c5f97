//! Relayed re-INVITEs that do not end by themselves: cancelled by their origin, left ringing
//! by the far leg (Timer C), given up, and the late 2xx that may follow.

use super::*;

#[test]
fn a_reinvite_the_far_leg_leaves_ringing_ends_with_the_call() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    // The carrier says 180 to the re-INVITE and nothing more, ever.
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    h.take_responses(PHONE);
    // The phone hangs up: the pending re-INVITE gets 487 (RFC 3261 §15.1.2), the BYE goes on.
    h.recv(PHONE, &phone_bye(&tag, 3, "z9hG4bKbye"));
    let rs = h.take_responses(PHONE);
    let statuses: Vec<(u16, Method)> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(
        statuses.contains(&(487, Method::Invite)),
        "the re-INVITE is answered: {statuses:?}"
    );
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    // The carrier's re-INVITE transaction, left at 180, does not outlive the call.
    h.advance(Duration::from_secs(120));
    assert_idle(&mut h);
}

/// A call up, and the phone's re-INVITE without SDP (asking for a fresh offer) ringing at
/// the carrier: our tag toward the phone, and the re-INVITE the carrier got.
fn sdpless_reinvite_ringing(h: &mut H) -> (String, Request) {
    let (_inv, ok) = answered_call(h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre", ""));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(re.body().is_empty());
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    (tag, re)
}

/// A re-INVITE without SDP pending at the far leg when the call ends: its late 2xx (an
/// offer) is ACKed with every stream refused (RFC 3261 §13.2.2.4). Before, the ACK went
/// bodiless, an offer left unanswered.
#[test]
fn a_late_2xx_offer_to_a_reinvite_pending_when_the_call_ended_is_answered_in_the_ack() {
    let mut h = H::new();
    let (tag, re) = sdpless_reinvite_ringing(&mut h);
    h.recv(PHONE, &phone_bye(&tag, 3, "z9hG4bKbye"));
    h.take_responses(PHONE);
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (2, Method::Ack));
    let answer = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(answer.contains("m=audio 0 "), "{answer}");
    assert!(!answer.contains("192.0.2.10"), "{answer}");
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    assert_eq!(h.cdrs.len(), 1);
}

/// A re-INVITE that requires 100rel (some phones require it of every INVITE) must have its
/// provisionals sent reliably (RFC 3262 §3), which the gateway does not do for a relayed
/// re-INVITE: the far leg's 180 is not passed on unreliably; the 200 is.
#[test]
fn a_reinvite_requiring_100rel_gets_no_unreliable_provisional() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let re_text = from_phone("INVITE", &tag, 2, "z9hG4bKre", SDP).replacen(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRequire: 100rel\r\nSupported: 100rel\r\n",
        1,
    );
    h.recv(PHONE, &re_text);
    let re = h.one_request(CARRIER_A, Method::Invite);
    // The Require is the phone's leg's own.
    assert!(re.header(&Hdr::REQUIRE).is_none());
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    assert!(
        !h.statuses(PHONE).contains(&180),
        "an unreliable 180 to a re-INVITE that required 100rel"
    );
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(phone_finals(&mut h, &tag, 2, "z9hG4bKre"), vec![200]);
}

/// A phone's re-INVITE that the carrier answers with 180 only: the call and the re-INVITE.
fn reinvite_left_ringing(h: &mut H) -> (String, Request) {
    let (_inv, ok) = answered_call(h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    h.take_responses(PHONE);
    (tag, re)
}

/// The CANCEL the gateway sent the carrier for `re` (with its retransmissions, if time
/// passed): same branch, CSeq number and tags.
fn cancel_of(h: &mut H, re: &Request) {
    let cs = h.take_requests(CARRIER_A, Method::Cancel);
    assert!(!cs.is_empty(), "a CANCEL for the re-INVITE");
    for c in cs {
        assert_eq!(c.header(&Hdr::VIA), re.header(&Hdr::VIA));
        assert_eq!(c.cseq().unwrap(), (re.cseq().unwrap().0, Method::Cancel));
        assert_eq!((c.to_tag(), c.from_tag()), (re.to_tag(), re.from_tag()));
    }
}

/// The phone's final answers (retransmissions folded), and its ACK for a failure.
fn phone_finals(h: &mut H, tag: &str, cseq: u32, branch: &str) -> Vec<u16> {
    let mut finals: Vec<u16> = h.statuses(PHONE).into_iter().filter(|s| *s > 199).collect();
    finals.dedup();
    if finals.iter().any(|s| *s > 299) {
        h.recv(PHONE, &from_phone("ACK", tag, cseq, branch, ""));
    }
    finals
}

/// A re-INVITE after the one cancelled is relayed, not refused with 491.
fn next_reinvite_goes_through(h: &mut H, tag: &str, cseq: u32) {
    let branch = format!("z9hG4bKnext{cseq}");
    h.recv(PHONE, &from_phone("INVITE", tag, cseq, &branch, SDP));
    let finals: Vec<u16> = h.statuses(PHONE).into_iter().filter(|s| *s > 100).collect();
    assert!(finals.is_empty(), "{finals:?}");
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(h.statuses(PHONE), vec![200]);
}

#[test]
fn a_reinvite_left_ringing_is_cancelled_by_timer_c_and_ends_as_the_far_leg_says() {
    let mut h = H::new();
    let (tag, re) = reinvite_left_ringing(&mut h);
    // A further 180 restarts Timer C (RFC 3261 §16.7 step 2).
    h.advance(Duration::from_secs(100));
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    assert_eq!(h.statuses(PHONE), vec![180]);
    h.advance(Duration::from_secs(100));
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    assert!(h.statuses(PHONE).is_empty());
    h.advance(Duration::from_secs(82));
    cancel_of(&mut h, &re);
    // The phone waits for the carrier's answer (a 408 would make it end the call).
    assert!(h.statuses(PHONE).is_empty());
    h.recv_msg(CARRIER_A, reply(&re, 487, "carrier1", &[], None));
    assert_eq!(phone_finals(&mut h, &tag, 2, "z9hG4bKre"), vec![487]);
    next_reinvite_goes_through(&mut h, &tag, 3);
}

#[test]
fn the_origin_may_cancel_its_relayed_reinvite() {
    let mut h = H::new();
    let (tag, re) = reinvite_left_ringing(&mut h);
    h.recv(PHONE, &from_phone("CANCEL", &tag, 2, "z9hG4bKre", ""));
    let rs: Vec<(u16, Method)> = h
        .take_responses(PHONE)
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert_eq!(rs, vec![(200, Method::Cancel)]);
    cancel_of(&mut h, &re);
    // While the carrier has not answered, the phone's INVITE is not answered either: a
    // second one gets 500 (RFC 3261 §14.2).
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKre2", SDP));
    assert!(h.statuses(PHONE).contains(&500));
    h.recv_msg(CARRIER_A, reply(&re, 487, "carrier1", &[], None));
    assert_eq!(phone_finals(&mut h, &tag, 2, "z9hG4bKre"), vec![487]);
    // The CANCEL again (a retransmission) changes nothing.
    h.recv(PHONE, &from_phone("CANCEL", &tag, 2, "z9hG4bKre", ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    next_reinvite_goes_through(&mut h, &tag, 4);
}

#[test]
fn a_cancel_after_the_answer_changes_nothing() {
    let mut h = H::new();
    let (tag, re) = reinvite_left_ringing(&mut h);
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(h.statuses(PHONE), vec![200]);
    // The phone's CANCEL crossed the 200.
    h.recv(PHONE, &from_phone("CANCEL", &tag, 2, "z9hG4bKre", ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
}

/// The phone cancels its re-INVITE, which the carrier never answered at all: when Timer B
/// fires the carrier's leg is gone (RFC 3261 §12.2.1.2), as without the CANCEL. Before, the
/// phone got 487 and the call stayed up with a dead far leg until a media or session timer.
#[test]
fn a_cancelled_reinvite_never_answered_at_all_ends_the_call() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre", SDP));
    h.one_request(CARRIER_A, Method::Invite);
    h.take_responses(PHONE);
    h.recv(PHONE, &from_phone("CANCEL", &tag, 2, "z9hG4bKre", ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.advance(Duration::from_secs(33));
    let sent = h.take(PHONE);
    let got = |want: &dyn Fn(&Message) -> bool| sent.iter().any(want);
    assert!(got(
        &|m| matches!(m, Message::Response(r) if r.status() == 487)
    ));
    assert!(got(
        &|m| matches!(m, Message::Request(r) if r.method() == Method::Bye)
    ));
    assert!(!h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
}

#[test]
fn a_cancel_before_any_answer_waits_for_the_first_provisional() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.take_responses(PHONE);
    h.recv(PHONE, &from_phone("CANCEL", &tag, 2, "z9hG4bKre", ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    // RFC 3261 §9.1: no CANCEL before the far leg has said something.
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    h.recv_msg(CARRIER_A, reply(&re, 183, "carrier1", &[], None));
    cancel_of(&mut h, &re);
    assert_eq!(h.statuses(PHONE), vec![183]);
    h.recv_msg(CARRIER_A, reply(&re, 487, "carrier1", &[], None));
    assert_eq!(phone_finals(&mut h, &tag, 2, "z9hG4bKre"), vec![487]);
}

#[test]
fn a_2xx_that_crosses_the_cancel_reaches_the_origin_so_both_legs_agree() {
    let mut h = H::new();
    let (tag, re) = reinvite_left_ringing(&mut h);
    h.recv(PHONE, &from_phone("CANCEL", &tag, 2, "z9hG4bKre", ""));
    h.take_responses(PHONE);
    cancel_of(&mut h, &re);
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(h.statuses(PHONE), vec![200]);
    // The phone's ACK goes on to the carrier, as for any re-INVITE.
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKreack", ""));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (2, Method::Ack));
    next_reinvite_goes_through(&mut h, &tag, 3);
}

#[test]
fn a_cancel_the_far_leg_never_answers_ends_the_reinvite_after_64_t1() {
    let mut h = H::new();
    let (tag, re) = reinvite_left_ringing(&mut h);
    h.advance(Duration::from_millis(181_100));
    cancel_of(&mut h, &re);
    assert!(h.statuses(PHONE).is_empty());
    // Nothing from the carrier, ever: 64·T1 later the phone gets 487 and the dialog takes
    // a re-INVITE again.
    h.advance(Duration::from_secs(33));
    assert_eq!(phone_finals(&mut h, &tag, 2, "z9hG4bKre"), vec![487]);
    h.take_requests(CARRIER_A, Method::Cancel);
    next_reinvite_goes_through(&mut h, &tag, 3);
    // The carrier's 2xx to the given-up re-INVITE after all: ACKed, never left to
    // retransmit until the carrier hangs up.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (2, Method::Ack));
    assert!(h.statuses(PHONE).is_empty());
    h.recv(PHONE, &phone_bye(&tag, 4, "z9hG4bKbye"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    assert_idle(&mut h);
}

#[test]
fn an_offer_in_the_2xx_to_a_given_up_reinvite_without_one_is_refused_in_the_ack_and_the_call_ends()
{
    let mut h = H::new();
    // The phone asks for a fresh offer (a re-INVITE without SDP); the carrier rings, the
    // phone cancels, and the carrier answers neither the CANCEL nor, for 64·T1, the INVITE.
    let (tag, re) = sdpless_reinvite_ringing(&mut h);
    h.recv(PHONE, &from_phone("CANCEL", &tag, 2, "z9hG4bKre", ""));
    h.take_responses(PHONE);
    cancel_of(&mut h, &re);
    h.advance(Duration::from_secs(33));
    assert_eq!(phone_finals(&mut h, &tag, 2, "z9hG4bKre"), vec![487]);
    h.take_requests(CARRIER_A, Method::Cancel);
    assert!(h.cdrs.is_empty(), "the call is still up");

    // The same 2xx from another address ends nothing and gets nothing.
    h.recv_msg(
        "127.0.0.9:5060",
        reply(&re, 200, "carrier1", &[], Some(SDP)),
    );
    assert!(h.sent.is_empty() && h.cdrs.is_empty());

    // Its 2xx after all, with the offer the phone can no longer answer: the ACK answers it,
    // every stream refused and no peer address leaked, then both legs get a BYE.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    let sent = h.requests_to(CARRIER_A);
    let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye], "the ACK first");
    let (ack, bye_a) = (sent[0].clone(), sent[1].clone());
    assert_eq!(ack.cseq().unwrap(), (2, Method::Ack));
    let answer = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(answer.contains("m=audio 0 "), "{answer}");
    assert!(!answer.contains("192.0.2.10"), "{answer}");
    // The answer's origin is the gateway's, not the carrier's (`- 1 1`, RFC 3264 §5).
    let origin = answer.lines().find(|l| l.starts_with("o=")).unwrap();
    assert!(
        origin.starts_with("o=- ") && !origin.starts_with("o=- 1 1 "),
        "{origin}"
    );
    assert_eq!(
        ack.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::GatewayError);
    assert_eq!(h.cdrs[0].cause, 127);
    let bye_p = h.one_request(PHONE, Method::Bye);

    // The carrier retransmits its 2xx: the same ACK again, and nothing more.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    let again = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(again.body(), ack.body());
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert_eq!(h.cdrs.len(), 1);
    h.recv_msg(CARRIER_A, reply(&bye_a, 200, "carrier1", &[], None));
    h.recv_msg(PHONE, reply(&bye_p, 200, "phone1", &[], None));
    assert_idle(&mut h);
}

#[test]
fn on_an_anchored_call_the_refusing_ack_goes_on_with_the_session_the_carrier_was_shown() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    let (inv, ok) = answered_call(&mut h);
    let origin = |body: &[u8]| {
        String::from_utf8_lossy(body)
            .lines()
            .find_map(|l| l.strip_prefix("o=").map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(origin(inv.body()), "- 1 1 IN IP4 127.0.0.1");
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre", ""));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    give_up_reinvite(&mut h, &tag, &re, 2, "z9hG4bKre");
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    // RFC 3264 §8: the carrier's dialog has one session of ours, one version on.
    assert_eq!(origin(ack.body()), "- 1 2 IN IP4 127.0.0.1");
    assert!(String::from_utf8_lossy(ack.body()).contains("m=audio 0 "));
    // The retransmitted 2xx gets the same ACK.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(h.one_request(CARRIER_A, Method::Ack).body(), ack.body());
}

/// The phone cancels re-INVITE `re` (CSeq `cseq`, its branch `branch`), the carrier answers
/// neither the CANCEL nor the INVITE, and 32 s later the gateway gives it up: the phone
/// gets 487.
fn give_up_reinvite(h: &mut H, tag: &str, re: &Request, cseq: u32, branch: &str) {
    h.recv(PHONE, &from_phone("CANCEL", tag, cseq, branch, ""));
    h.take_responses(PHONE);
    cancel_of(h, re);
    h.advance(Duration::from_secs(33));
    assert_eq!(phone_finals(h, tag, cseq, branch), vec![487]);
    h.take_requests(CARRIER_A, Method::Cancel);
}

#[test]
fn late_2xx_to_two_reinvites_given_up_on_one_leg_are_both_acked() {
    let mut h = H::new();
    let (tag, re2) = reinvite_left_ringing(&mut h);
    give_up_reinvite(&mut h, &tag, &re2, 2, "z9hG4bKre");
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKre3", SDP));
    let re3 = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re3, 180, "carrier1", &[], None));
    h.take_responses(PHONE);
    give_up_reinvite(&mut h, &tag, &re3, 3, "z9hG4bKre3");
    // Both 2xx come after all, the older one last: each gets its own ACK.
    for re in [&re3, &re2] {
        h.recv_msg(CARRIER_A, reply(re, 200, "carrier1", &[], Some(SDP)));
        let ack = h.one_request(CARRIER_A, Method::Ack);
        assert_eq!(ack.cseq().unwrap(), (re.cseq().unwrap().0, Method::Ack));
    }
    assert!(h.cdrs.is_empty(), "the call goes on");
}

#[test]
fn a_reinvite_with_only_an_isup_body_carried_no_offer_so_its_late_2xx_offer_is_refused() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    // A SIP-I re-INVITE whose body is ISUP alone: a body, but no offer.
    let isup = from_phone("INVITE", &tag, 2, "z9hG4bKre", "\x01\x02ISUP").replace(
        "Content-Type: application/sdp",
        "Content-Type: application/isup",
    );
    h.recv(PHONE, &isup);
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(!re.body().is_empty());
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    h.take_responses(PHONE);
    give_up_reinvite(&mut h, &tag, &re, 2, "z9hG4bKre");
    // Its 2xx after all, with an offer: answered in the ACK, every stream refused.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    let answer = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(answer.contains("m=audio 0 "), "{answer}");
    assert_eq!(h.cdrs.len(), 1, "the call ends");
    assert_eq!(h.cdrs[0].cause, 127);
}

#[test]
fn a_late_2xx_to_a_given_up_reinvite_is_acked_even_after_a_newer_reinvite_was() {
    let mut h = H::new();
    let (tag, re) = reinvite_left_ringing(&mut h);
    give_up_reinvite(&mut h, &tag, &re, 2, "z9hG4bKre");
    // A newer re-INVITE goes through, its ACK included.
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKre3", SDP));
    let re3 = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re3, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(h.statuses(PHONE).last(), Some(&200));
    h.recv(PHONE, &from_phone("ACK", &tag, 3, "z9hG4bKre3ack", ""));
    assert_eq!(
        h.one_request(CARRIER_A, Method::Ack).cseq().unwrap(),
        (3, Method::Ack)
    );
    // The given-up one's 2xx after all: ACKed (the far leg would otherwise retransmit it
    // and end the call), and the newer one's ACK is still the one resent for its 2xx.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(
        h.one_request(CARRIER_A, Method::Ack).cseq().unwrap(),
        (2, Method::Ack)
    );
    h.recv_msg(CARRIER_A, reply(&re3, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(
        h.one_request(CARRIER_A, Method::Ack).cseq().unwrap(),
        (3, Method::Ack)
    );
    assert!(h.cdrs.is_empty(), "the call goes on");
    assert!(h.statuses(PHONE).is_empty());
}

/// On an anchored call, the phone's hold offer left ringing by the carrier and given up (the
/// phone got 487, so for it nothing changed), then answered by the carrier after all: the
/// carrier now holds a session the phone never agreed to (on hold, its media at another
/// port). After the ACK the gateway offers the carrier the session the phone still has, at
/// the next version, and the relay follows the carrier's answer; a retransmitted 2xx does
/// not offer again. Before, the carrier stayed on hold for the rest of the call. With
/// session timers on the carrier's profile and off (then the gateway kept no SDP of that
/// leg).
#[test]
fn a_late_answer_to_a_given_up_offer_is_followed_by_the_session_the_phone_still_has() {
    for timers in [true, false] {
        late_answer_to_a_given_up_offer(timers);
    }
}

fn late_answer_to_a_given_up_offer(timers: bool) {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            if !timers {
                p.session_timer = crate::interop::session_timer::SessionTimerPolicy::off();
            }
        }
    }));
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let hold = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(re.body()).contains("a=sendonly"));
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    h.take_responses(PHONE);
    give_up_reinvite(&mut h, &tag, &re, 2, "z9hG4bKre");
    let held = SDP.replace("m=audio 4000", "m=audio 4100") + "a=recvonly\r\n";
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(&held)));
    let sent = h.requests_to(CARRIER_A);
    let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
    assert_eq!(
        methods,
        vec![Method::Ack, Method::Invite],
        "the ACK, then the offer"
    );
    assert_eq!(sent[0].cseq().unwrap(), (2, Method::Ack));
    let again = sent[1].clone();
    let body = String::from_utf8_lossy(again.body()).into_owned();
    assert!(!body.contains("a=sendonly"), "{body}");
    assert_eq!(
        origin_version(again.body()),
        origin_version(re.body()) + 1,
        "{body}"
    );
    assert!(h.statuses(PHONE).is_empty(), "the phone never hears of it");
    // The 2xx again: its ACK again, no second offer.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(&held)));
    assert_eq!(h.one_request(CARRIER_A, Method::Ack).cseq().unwrap().0, 2);
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    let back = SDP
        .replace("m=audio 4000", "m=audio 4200")
        .replace("o=- 1 1", "o=- 1 3");
    h.recv_msg(CARRIER_A, reply(&again, 200, "carrier1", &[], Some(&back)));
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4200".parse().unwrap())
    );
    assert!(h.cdrs.is_empty(), "the call goes on");
}

//! Answers that belong to no call step: a retransmitted 2xx gets our ACK again; a 2xx for an
//! INVITE we never sent gets ACK and BYE, but only toward a peer we know.

use super::*;

/// A 200 to an INVITE of ours (our Via) that the gateway never sent.
fn orphan_200(call_id: &str) -> String {
    orphan_200_with(call_id, "")
}

/// The same, carrying `sdp` (an offer, when our INVITE had none).
fn orphan_200_with(call_id: &str, sdp: &str) -> String {
    let body = if sdp.is_empty() {
        "Content-Length: 0\r\n\r\n".to_string()
    } else {
        format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    };
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnever;rport\r\n\
         Record-Route: <sip:proxy1.example.com;lr>\r\n\
         Record-Route: <sip:proxy2.example.com;lr>\r\n\
         From: <sip:1000@127.0.0.1>;tag=ours\r\n\
         To: <sip:+8610123@ims.example.com>;tag=theirs\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 7 INVITE\r\n\
         Contact: <sip:+8610123@127.0.0.3:5070>\r\n\
         {body}"
    )
}

#[test]
fn a_2xx_for_no_call_from_a_known_peer_is_acked_and_hung_up() {
    let mut h = H::new();
    h.recv(CARRIER_A, &orphan_200("nobody@127.0.0.1"));
    let sent = h.requests_to(CARRIER_A);
    let [ack, bye] = &sent[..] else {
        panic!("expected ACK and BYE, got {sent:?}");
    };
    assert_eq!((ack.method(), bye.method()), (Method::Ack, Method::Bye));
    for (r, cseq) in [(ack, (7, Method::Ack)), (bye, (8, Method::Bye))] {
        assert_eq!(r.cseq().unwrap(), cseq);
        assert_eq!(r.uri(), "sip:+8610123@127.0.0.3:5070");
        assert_eq!(r.call_id().as_deref(), Some("nobody@127.0.0.1"));
        assert_eq!(r.to_tag().as_deref(), Some("theirs"));
        // The route set is the Record-Route reversed (RFC 3261 §12.1.2).
        assert_eq!(
            r.header_lines(&Hdr::ROUTE),
            vec![
                "<sip:proxy2.example.com;lr>".to_string(),
                "<sip:proxy1.example.com;lr>".to_string()
            ]
        );
    }
    assert!(ack.body().is_empty() && bye.body().is_empty());
    assert!(h.cdrs.is_empty(), "no call, no CDR");
    assert_idle(&mut h);
}

#[test]
fn a_2xx_with_sdp_for_no_call_gets_an_ack_without_a_body() {
    // With the call gone it is not known whether the SDP answers the INVITE's offer (the
    // usual case) or is an offer: an answer to an answer would be an error, so no body.
    let mut h = H::new();
    h.recv(CARRIER_A, &orphan_200_with("nobody@127.0.0.1", SDP));
    let sent = h.requests_to(CARRIER_A);
    let [ack, bye] = &sent[..] else {
        panic!("expected ACK and BYE, got {sent:?}");
    };
    assert_eq!((ack.method(), bye.method()), (Method::Ack, Method::Bye));
    assert!(ack.body().is_empty() && ack.header(&Hdr::CONTENT_TYPE).is_none());
    assert_idle(&mut h);
}

#[test]
fn a_2xx_from_an_address_no_profile_matches_gets_nothing() {
    let mut h = H::new();
    h.recv("127.0.0.9:5060", &orphan_200("forged@127.0.0.1"));
    assert!(
        h.sent.is_empty(),
        "a forged 2xx must not make us send: {:?}",
        h.sent
    );
    assert_idle(&mut h);
}

#[test]
fn a_retransmitted_2xx_gets_the_same_ack_again_during_and_after_its_transaction() {
    let mut h = H::new();
    let (inv, _ok) = answered_call(&mut h);
    let again = || {
        reply(
            &inv,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            Some(SDP),
        )
    };
    // While the INVITE transaction still absorbs 2xx (RFC 6026 Accepted state).
    h.recv_msg(CARRIER_A, again());
    let first = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(first.cseq().unwrap(), (1, Method::Ack));
    assert_eq!(first.to_tag().as_deref(), Some("carrier1"));
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    // After the transaction is gone (Timer M): the call still knows its ACK.
    h.advance(Duration::from_secs(40));
    h.take(CARRIER_A);
    h.recv_msg(CARRIER_A, again());
    let second = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(
        second.to_bytes(),
        first.to_bytes(),
        "the same ACK, byte for byte"
    );
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert!(h.cdrs.is_empty(), "the call is still up");
}

/// A forking carrier declines from one branch, then answers from another: that answer is
/// ACKed and hung up. Before, the INVITE's transaction (Completed after the decline) took
/// the 2xx for a retransmitted decline: it resent the decline's ACK, and the answered
/// branch waited in silence for its ACK until it gave up.
#[test]
fn a_2xx_from_another_fork_after_a_failure_is_acked_and_hung_up() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fork1", "z9hG4bKfork1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 603, "y", &[], None));
    let acks = h.take_requests(CARRIER_A, Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].to_tag().as_deref(), Some("y"));
    let ok = reply(
        &inv,
        200,
        "z",
        &[(Hdr::CONTACT, "<sip:z@127.0.0.3>")],
        Some(SDP),
    );
    h.recv_msg(CARRIER_A, ok);
    let sent = h.requests_to(CARRIER_A);
    let [ack, bye] = &sent[..] else {
        panic!("expected ACK and BYE, got {sent:?}");
    };
    assert_eq!((ack.method(), bye.method()), (Method::Ack, Method::Bye));
    for r in [ack, bye] {
        assert_eq!(r.to_tag().as_deref(), Some("z"));
        assert_eq!(r.call_id(), inv.call_id());
    }
}

/// 2xx for no call (a peer's address can be spoofed over UDP) get their ACK and BYE only up
/// to a budget a second: each costs two requests as large as itself.
#[test]
fn orphan_2xx_are_answered_up_to_a_budget_a_second() {
    let mut h = H::new();
    for i in 0..(crate::call::orphan::ORPHANS_PER_SECOND + 20) {
        h.recv(CARRIER_A, &orphan_200(&format!("forged{i}@127.0.0.1")));
    }
    let sent = h.requests_to(CARRIER_A);
    assert_eq!(
        sent.len(),
        2 * crate::call::orphan::ORPHANS_PER_SECOND as usize
    );
    // The peer knows none of those dialogs: its 481s end the BYEs' transactions.
    for bye in sent.iter().filter(|r| r.method() == Method::Bye) {
        h.recv_msg(CARRIER_A, reply(bye, 481, "theirs", &[], None));
    }
    // The next second, answered again.
    h.advance(Duration::from_secs(1));
    h.recv(CARRIER_A, &orphan_200("later@127.0.0.1"));
    assert_eq!(h.requests_to(CARRIER_A).len(), 2);
}

/// The BYE for a 2xx no call wants runs in a transaction: over UDP it is sent again until
/// answered (RFC 3261 §17.1.2), as one datagram lost would leave the peer's leg up. Before,
/// it went once.
#[test]
fn an_orphans_bye_is_sent_again_until_answered() {
    let mut h = H::new();
    h.recv(CARRIER_A, &orphan_200("nobody@127.0.0.1"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.advance(Duration::from_millis(600));
    let again = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(again.to_bytes(), bye.to_bytes());
    h.recv_msg(CARRIER_A, reply(&bye, 200, "theirs", &[], None));
    h.advance(Duration::from_secs(2));
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert_idle(&mut h);
}

/// Another fork's 2xx after the call is gone, to our INVITE without SDP (no body, or a
/// SIP-I one with ISUP alone): its SDP is an offer, which the ACK answers refusing every
/// stream (RFC 3261 §13.2.2.4), and a BYE ends the dialog. Before, the ACK went without a
/// body (the call that knew was gone).
#[test]
fn a_late_forks_offer_after_the_call_is_gone_is_refused_in_its_ack() {
    let isup = offerless_text("call-1@127.0.0.2", "z9hG4bKlo", "").replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/isup\r\nContent-Disposition: signal;handling=optional\r\nContent-Length: 2\r\n\r\n\x01\x02",
    );
    for invite in [offerless_text("call-1@127.0.0.2", "z9hG4bKlo", ""), isup] {
        a_late_forks_offer_after_the_call_is_gone_is_refused_after(&invite);
    }
}

fn a_late_forks_offer_after_the_call_is_gone_is_refused_after(invite: &str) {
    let mut h = H::new();
    h.recv(PHONE, invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let isup = invite.contains("application/isup");
    assert_eq!(!inv.body().is_empty(), isup, "the ISUP goes on");
    let tag = h.carrier_answers(&inv, "carrier1", SDP).to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKloa", SDP));
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKlob"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    h.take(CARRIER_A);
    h.take(PHONE);
    assert_eq!(h.core.active_calls(), 0, "the call is gone");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "carrier2",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let sent = h.requests_to(CARRIER_A);
    let [ack, bye] = &sent[..] else {
        panic!("expected ACK and BYE, got {sent:?}");
    };
    assert_eq!((ack.method(), bye.method()), (Method::Ack, Method::Bye));
    assert_eq!(ack.to_tag().as_deref(), Some("carrier2"));
    let body = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(body.contains("m=audio 0 "), "{body}");
    assert!(h.take(PHONE).is_empty(), "nothing reaches the caller");
}

/// A peer's `address` outside its `match` (a carrier's SBC that answers for hosts it
/// placed elsewhere) is the peer's for a 2xx no call wants, as it is within a call. Before,
/// only `match` counted, and its 2xx got no ACK or BYE.
#[test]
fn a_2xx_for_no_call_from_a_peers_address_outside_its_match_is_acked_and_hung_up() {
    let mut h = H::with(config_with(|name, p| {
        if name == "carrier-a" {
            p.matches = vec!["127.0.0.30/32".parse().unwrap()];
        }
    }));
    h.recv(CARRIER_A, &orphan_200("nobody@127.0.0.1"));
    let sent = h.requests_to(CARRIER_A);
    let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
}

/// Copies of a 2xx the call handled (hung up a fork, or the dialog its CANCEL crossed) that
/// come after the call is forgotten, within the INVITE's transaction (our ACK lost), get
/// the ACK again and no BYE; a dialog first seen after the call is gone gets one BYE, its
/// copies the ACK alone. Before, every copy got a BYE of its own, each against the orphan
/// budget, for a dialog hung up already.
#[test]
fn copies_of_a_handled_2xx_after_the_call_is_gone_get_no_second_bye() {
    let methods = |v: Vec<Request>| v.iter().map(|r| r.method()).collect::<Vec<_>>();
    let contact = [(Hdr::CONTACT, "<sip:x@127.0.0.3>")];
    // The caller's CANCEL crosses the callee's 200: ACK and BYE, the BYE answered.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("cx1", "z9hG4bKcx1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t1", &[], None));
    h.recv(PHONE, &cancel_text("cx1", "z9hG4bKcx1"));
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    let ok = reply(&inv, 200, "t1", &contact, Some(SDP));
    h.recv_msg(CARRIER_A, ok.clone());
    h.recv_msg(CARRIER_A, reply(&cancel, 200, "t1", &[], None));
    let sent = h.requests_to(CARRIER_A);
    let bye = sent.iter().find(|r| r.method() == Method::Bye).unwrap();
    h.recv_msg(CARRIER_A, reply(bye, 200, "t1", &[], None));
    h.advance(Duration::from_secs(1));
    h.recv_msg(CARRIER_A, ok);
    assert_eq!(methods(h.requests_to(CARRIER_A)), [Method::Ack]);
    assert_eq!(h.cdrs.len(), 1);
    // CANCEL, the 487, then another branch's 200: that dialog is hung up once.
    let mut h = H::new();
    let inv = cancelled(&mut h, "cx2");
    let late = reply(&inv, 200, "t2b", &contact, Some(SDP));
    h.recv_msg(CARRIER_A, late.clone());
    assert_eq!(
        methods(h.requests_to(CARRIER_A)),
        [Method::Ack, Method::Bye]
    );
    h.recv_msg(CARRIER_A, late);
    assert_eq!(methods(h.requests_to(CARRIER_A)), [Method::Ack]);
    // A second fork hung up while the call was up, its 2xx again after the call ended.
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let fork = reply(
        &inv,
        200,
        "fork2",
        &[(Hdr::CONTACT, "<sip:f2@127.0.0.3>")],
        Some(SDP),
    );
    h.recv_msg(CARRIER_A, fork.clone());
    for r in h.requests_to(CARRIER_A) {
        if r.method() == Method::Bye {
            h.recv_msg(CARRIER_A, reply(&r, 200, "fork2", &[], None));
        }
    }
    h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKcx3"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    h.recv_msg(CARRIER_A, fork);
    assert_eq!(methods(h.requests_to(CARRIER_A)), [Method::Ack]);
}

/// A fork's first 2xx after the call is gone that the orphans' budget leaves unanswered
/// (a flood of spoofed 2xx used it up) is answered, ACK and BYE, when it comes again: a 2xx
/// counts as handled only once it was. Before the fix to this, its first sight was noted at
/// once, and every copy got the ACK alone: the callee's fork stayed up, silent.
#[test]
fn a_2xx_the_budget_left_unanswered_is_hung_up_when_it_comes_again() {
    let contact = [(Hdr::CONTACT, "<sip:x@127.0.0.3>")];
    let mut h = H::new();
    let inv = cancelled(&mut h, "bg1");
    for i in 0..crate::call::orphan::ORPHANS_PER_SECOND {
        h.recv(CARRIER_A, &orphan_200(&format!("forged{i}@127.0.0.1")));
    }
    h.take(CARRIER_A);
    let late = reply(&inv, 200, "t1b", &contact, Some(SDP));
    h.recv_msg(CARRIER_A, late.clone());
    assert!(h.requests_to(CARRIER_A).is_empty(), "over the budget");
    h.advance(Duration::from_secs(1));
    h.take(CARRIER_A);
    h.recv_msg(CARRIER_A, late);
    let methods: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(|r| r.method())
        .collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
}

/// A call `call_id` from the phone, cancelled while the carrier rang (its CANCEL and the
/// INVITE's 487 answered, tag `t1`): the INVITE the carrier got.
fn cancelled(h: &mut H, call_id: &str) -> Request {
    let branch = format!("z9hG4bK{call_id}");
    h.recv(PHONE, &invite_text(call_id, &branch, "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t1", &[], None));
    h.recv(PHONE, &cancel_text(call_id, &branch));
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    h.recv_msg(CARRIER_A, reply(&cancel, 200, "t1", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 487, "t1", &[], None));
    h.take(CARRIER_A);
    inv
}

/// A 2xx for no call with the highest CSeq there is (2^31 - 1) leaves no number for a BYE:
/// it gets its ACK alone. Before, the BYE went with CSeq 2^31, which no parser takes (ours
/// dropped the peer's answer), and was resent until Timer F.
#[test]
fn a_2xx_for_no_call_at_the_highest_cseq_gets_its_ack_alone() {
    let mut h = H::new();
    let top = orphan_200("top@127.0.0.1").replace("CSeq: 7 INVITE", "CSeq: 2147483647 INVITE");
    h.recv(CARRIER_A, &top);
    let sent = h.requests_to(CARRIER_A);
    let [ack] = &sent[..] else {
        panic!("expected the ACK alone, got {sent:?}");
    };
    assert_eq!(ack.cseq().unwrap(), (2_147_483_647, Method::Ack));
}

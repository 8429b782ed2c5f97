//! Basic calls: BYE from either side, CANCEL, failover, busy and causes, refusals, ring timeout.

use super::*;

#[test]
fn basic_call_bye_from_caller_and_topology_hiding() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);

    // The B leg is the gateway's own dialog: nothing of the phone's side in its headers.
    let head = String::from_utf8_lossy(&inv.to_bytes())
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_string();
    assert!(
        !head.contains("127.0.0.2"),
        "internal address leaked:\n{head}"
    );
    assert!(!head.contains("call-1"), "caller Call-ID leaked:\n{head}");
    assert!(!head.contains("alice1"), "caller tag leaked:\n{head}");
    assert_eq!(inv.uri(), "sip:+8610123@ims.example.com");
    // Headers nobody listed stay on the phone's leg (`[headers]` is an allow-list).
    assert_eq!(inv.header(&Hdr::named("X-Custom")), None);
    assert_eq!(
        inv.header(&Hdr::P_ASSERTED_IDENTITY).as_deref(),
        Some("\"Alice\" <sip:1000@ims.example.com>")
    );
    assert_eq!(inv.header(&Hdr::MAX_FORWARDS).as_deref(), Some("69"));
    assert_eq!(inv.body().as_ref(), SDP.as_bytes());
    // And the caller sees only the gateway.
    assert_eq!(ok.contact_uri().as_deref(), Some("sip:127.0.0.1:5060"));
    assert_eq!(ok.body().as_ref(), SDP.as_bytes());

    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKbye1"));
    assert_eq!(h.statuses(PHONE), vec![200]);
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.call_id(), inv.call_id());
    assert_eq!(bye.cseq().unwrap().0, 2);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));

    assert_eq!(h.cdrs.len(), 1);
    let c = &h.cdrs[0];
    assert_eq!(c.call_tag, CallTag::CallerBye);
    assert_eq!(
        (c.status, c.cause, c.cause_source),
        (200, 16, CauseSource::Rfc3398)
    );
    assert_eq!(c.call_id, "call-1@127.0.0.2");
    assert_eq!(c.from, "1000");
    assert_eq!(c.to, "+8610123");
    assert_eq!(c.ingress_peer, "pbx");
    assert_eq!(c.egress_peer.as_deref(), Some("carrier-a"));
    assert!(c.answer.is_some());
    assert_idle(&mut h);
}

#[test]
fn bye_from_callee_with_reason() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    h.advance(Duration::from_secs(5));
    let from_carrier = "<sip:+8610123@ims.example.com>;tag=carrier1";
    let to_gw = inv.header(&Hdr::FROM).unwrap();
    let mut bye = in_dialog(
        "BYE",
        "sip:127.0.0.1:5060",
        from_carrier,
        &to_gw,
        &inv.call_id().unwrap(),
        1,
        "z9hG4bKcb",
        "127.0.0.3:5060",
        "",
    );
    // Its text's closing quote missing: it goes on closed (as written, a strict phone
    // would refuse our BYE with 400 and stay up).
    bye = bye.replace(
        "Content-Length: 0",
        "Reason: Q.850;cause=16;text=\"Normal\r\nContent-Length: 0",
    );
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    let b = h.one_request(PHONE, Method::Bye);
    assert_eq!(b.uri(), "sip:1000@127.0.0.2:5060");
    assert_eq!(b.to_tag().as_deref(), Some("alice1"));
    assert_eq!(b.from_tag(), ok.to_tag());
    assert_eq!(
        b.header(&Hdr::REASON).as_deref(),
        Some("Q.850;cause=16;text=\"Normal\"")
    );
    h.recv_msg(PHONE, reply(&b, 200, "alice1", &[], None));
    let c = &h.cdrs[0];
    assert_eq!(c.call_tag, CallTag::CalleeBye);
    assert_eq!((c.cause, c.cause_source), (16, CauseSource::ReasonHeader));
    assert_eq!(c.duration_ms, 5000);
    assert_idle(&mut h);
}

#[test]
fn cancel_before_answer() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c2", "z9hG4bKc2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t2", &[], None));
    h.take(PHONE);
    let cancel = cancel_text("c2", "z9hG4bKc2");
    h.recv(PHONE, &cancel);
    let rs = h.take_responses(PHONE);
    let st: Vec<(u16, Method)> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(
        st.contains(&(200, Method::Cancel)) && st.contains(&(487, Method::Invite)),
        "{st:?}"
    );
    let c = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(c.top_via().unwrap().branch, inv.top_via().unwrap().branch);
    h.recv_msg(CARRIER_A, reply(&c, 200, "t2", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 487, "t2", &[], None));
    // The gateway's INVITE transaction ACKs the 487 itself.
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerCancel);
    assert_eq!(h.cdrs[0].status, 487);
    assert!(h.cdrs[0].answer.is_none());
    // A CANCEL without Reason is the caller's normal clearing, as a BYE without one is.
    assert_eq!(
        (h.cdrs[0].cause, h.cdrs[0].cause_source),
        (16, CauseSource::Rfc3398)
    );
    // The caller ACKs our 487.
    let our_tag = rs
        .iter()
        .find(|r| r.status() == 487)
        .unwrap()
        .to_tag()
        .unwrap();
    h.recv(PHONE, &format!("ACK sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKc2;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\nTo: <sip:+8610123@127.0.0.1>;tag={our_tag}\r\nCall-ID: c2\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    assert_idle(&mut h);
}

#[test]
fn a_callers_cancel_reason_goes_on_to_the_callee() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c2r", "z9hG4bKc2r", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t2", &[], None));
    // A forking PBX: another of its phones took the call.
    let cancel = cancel_text("c2r", "z9hG4bKc2r").replace(
        "Content-Length: 0",
        "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\nContent-Length: 0",
    );
    h.recv(PHONE, &cancel);
    let c = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(
        c.header_lines(&Hdr::REASON),
        [
            "Q.850;cause=16",
            "SIP;cause=200;text=\"Call completed elsewhere\""
        ]
    );
}

/// A caller's SIP Reason goes on as we write it, not as written: an unclosed quote would
/// have a strict callee refuse the CANCEL (400) and ring on.
#[test]
fn a_callers_broken_cancel_reason_goes_on_rewritten() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c2b", "z9hG4bKc2b", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t2", &[], None));
    let cancel = cancel_text("c2b", "z9hG4bKc2b").replace(
        "Content-Length: 0",
        "Reason: SIP;cause=200;text=\"Call completed\r\nContent-Length: 0",
    );
    h.recv(PHONE, &cancel);
    let c = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(
        c.header_lines(&Hdr::REASON),
        ["Q.850;cause=16", "SIP;cause=200;text=\"Call completed\""]
    );
}

#[test]
fn a_cancel_waiting_for_the_first_provisional_still_says_why() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c2w", "z9hG4bKc2w", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let cancel = cancel_text("c2w", "z9hG4bKc2w").replace(
        "Content-Length: 0",
        "Reason: Q.850;cause=31\r\nContent-Length: 0",
    );
    h.recv(PHONE, &cancel);
    // Nothing heard from the callee yet: the CANCEL waits for its first provisional.
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    h.recv_msg(CARRIER_A, reply(&inv, 100, "", &[], None));
    let c = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(c.header_lines(&Hdr::REASON), ["Q.850;cause=31"]);
}

/// A CANCEL matching an INVITE transaction whose INVITE has had its final answer changes
/// nothing and gets 200 with the To tag that answer carried (RFC 3261 §9.2): an INVITE
/// refused before it became a call (404, ACKed), and one answered whose call is over. Before,
/// the first got 481, and the second a 200 without a To tag (the transaction had let its
/// answer go). A CANCEL of the refused INVITE from another peer's address still gets 481.
#[test]
fn a_cancel_after_the_final_answer_gets_200_with_its_tag() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("cf1", "z9hG4bKcf1", "999", ""));
    let refusal = h.response_with(PHONE, 404, "no route");
    let tag = refusal.to_tag().expect("a refusal carries a To tag");
    h.recv(
        PHONE,
        &format!(
            "ACK sip:999@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKcf1;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\nTo: <sip:999@127.0.0.1>;tag={tag}\r\nCall-ID: cf1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    let cancel = cancel_text("cf1", "z9hG4bKcf1").replace("+8610123", "999");
    h.recv(CARRIER_B, &cancel);
    assert_eq!(h.statuses(CARRIER_B), vec![481], "not the INVITE's peer");
    h.recv(PHONE, &cancel);
    let ok = h.take_responses(PHONE).remove(0);
    assert_eq!((ok.status(), ok.cseq().unwrap().1), (200, Method::Cancel));
    assert_eq!(ok.to_tag().as_deref(), Some(tag.as_str()));

    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKcfbye"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_secs(1));
    h.recv(PHONE, &cancel_text("call-1@127.0.0.2", "z9hG4bKa1"));
    let resp = h.take_responses(PHONE).remove(0);
    assert_eq!(
        (resp.status(), resp.cseq().unwrap().1),
        (200, Method::Cancel)
    );
    assert_eq!(resp.to_tag(), ok.to_tag());
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    let _ = inv;
}

/// A CANCEL with the branch of a phone's ringing INVITE from another peer's address gets a
/// stateless 481 and keeps nothing, so the phone's own CANCEL (the same transaction key)
/// still cancels. Before, the stranger's CANCEL took that key for Timer J's 32 s and the
/// phone's was dropped as a copy from elsewhere: the caller could not cancel.
#[test]
fn a_strangers_cancel_does_not_take_the_callers() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("cs1", "z9hG4bKcs1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t", &[], None));
    h.take(PHONE);
    let txns = h.core.stats().server_txns;
    h.recv(CARRIER_B, &cancel_text("cs1", "z9hG4bKcs1"));
    assert_eq!(h.statuses(CARRIER_B), vec![481]);
    assert_eq!(h.core.stats().server_txns, txns, "nothing kept");
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    h.recv(PHONE, &cancel_text("cs1", "z9hG4bKcs1"));
    let mut st = h.statuses(PHONE);
    st.sort_unstable();
    assert_eq!(st, vec![200, 487]);
    assert_eq!(h.take_requests(CARRIER_A, Method::Cancel).len(), 1);
}

#[test]
fn cancel_racing_200_gets_ack_and_bye() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c3", "z9hG4bKc3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t3", &[], Some(SDP)));
    h.take(PHONE);
    h.recv(PHONE, &cancel_text("c3", "z9hG4bKc3"));
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    // The carrier answered before it saw our CANCEL.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t3",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    h.recv_msg(CARRIER_A, reply(&cancel, 200, "t3", &[], None));
    let sent = h.take(CARRIER_A);
    let acks = sent
        .iter()
        .filter(|m| matches!(m, Message::Request(r) if r.method() == Method::Ack))
        .count();
    let byes: Vec<Request> = sent
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) if r.method() == Method::Bye => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(acks, 1);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].uri(), "sip:x@127.0.0.3");
    assert_eq!(byes[0].to_tag().as_deref(), Some("t3"));
    // The caller only ever sees the 487: never a 200 for the INVITE it cancelled.
    let to_phone: Vec<(u16, Method)> = h
        .take_responses(PHONE)
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(to_phone.contains(&(487, Method::Invite)), "{to_phone:?}");
    assert!(!to_phone.contains(&(200, Method::Invite)), "{to_phone:?}");
    // The callee sends its 200 again (our ACK crossed it): ACKed again, not hung up
    // again (before, each retransmission started another BYE).
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t3",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let again: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(Request::method)
        .collect();
    assert_eq!(again, [Method::Ack]);
    h.recv_msg(CARRIER_A, reply(&byes[0], 200, "t3", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    // One CDR, written when the caller cancelled; the late answer changes nothing in it.
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerCancel);
    assert!(h.cdrs[0].answer.is_none());
    assert_idle(&mut h);
}

#[test]
fn failover_on_503_then_answer_at_second_peer() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c4", "z9hG4bKc4", "+8610123", ""));
    assert_eq!(h.statuses(PHONE), vec![100]);
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ta", &[], None));
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert_ne!(inv_a.call_id(), inv_b.call_id());
    assert_eq!(
        h.statuses(PHONE),
        Vec::<u16>::new(),
        "503 must not reach the caller"
    );
    h.recv_msg(
        CARRIER_B,
        reply(
            &inv_b,
            200,
            "tb",
            &[(Hdr::CONTACT, "<sip:b@127.0.0.4>")],
            Some(SDP),
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.advance(Duration::from_secs(40));
    // No ACK from the phone: the gateway gives up after 64*T1 and hangs up both sides.
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].egress_peer.as_deref(), Some("carrier-b"));
    assert!(h.cdrs[0].events.contains(&"failover_503".to_string()));
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
}

/// A peer whose path loops (482, our own INVITE come back to us through it and refused,
/// or its own loop detection) is failed over from: the route's next peer may route
/// otherwise. Before, the 482 went to the caller and the rest of the route was never tried.
/// A 483 (too many hops) is not: a loop through B2BUAs would go round once more per peer.
#[test]
fn failover_on_a_loop_not_on_too_many_hops() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("lp482", "z9hG4bKlp482", "+8610123", ""));
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv_a, 482, "ta", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert!(!h.statuses(PHONE).contains(&482));
    h.recv_msg(CARRIER_B, reply(&inv_b, 486, "tb", &[], None));
    assert!(h.statuses(PHONE).contains(&486));
    let events = &h.cdrs[0].events;
    assert!(events.contains(&"failover_482".to_string()), "{events:?}");
    let mut h = H::new();
    h.recv(PHONE, &invite_text("lp483", "z9hG4bKlp483", "+8610123", ""));
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv_a, 483, "ta", &[], None));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    assert!(h.statuses(PHONE).contains(&483));
}

/// After a failover, a 2xx the first peer sends late for its INVITE (a forking proxy's
/// branch that crossed its own 408) is ACKed and hung up on that peer's dialog, toward that
/// peer; its retransmission is ACKed again, not hung up again; the next peer hears nothing
/// of it. Before, the ACK and BYE carried the next attempt's Call-ID and went to the next
/// peer, and each retransmission brought another BYE.
#[test]
fn a_late_2xx_from_the_peer_failed_over_from_is_released_on_its_own_dialog() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c4l", "z9hG4bKc4l", "+8610123", ""));
    assert_eq!(h.statuses(PHONE), vec![100]);
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ta", &[], None));
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    let late = reply(
        &inv_a,
        200,
        "late",
        &[(Hdr::CONTACT, "<sip:a@127.0.0.3>")],
        Some(SDP),
    );
    h.recv_msg(CARRIER_A, late.clone());
    let to_a = h.requests_to(CARRIER_A);
    let methods: Vec<Method> = to_a.iter().map(Request::method).collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    for r in &to_a {
        assert_eq!(r.call_id(), inv_a.call_id());
        assert_eq!(r.from_tag(), inv_a.from_tag());
        assert_eq!(r.to_tag().as_deref(), Some("late"));
        assert_eq!(r.uri(), "sip:a@127.0.0.3");
    }
    assert!(
        h.requests_to(CARRIER_B).is_empty(),
        "the next peer hears nothing of it"
    );
    // Its retransmission: ACKed again, not hung up again.
    h.recv_msg(CARRIER_A, late);
    let methods: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(Request::method)
        .collect();
    assert_eq!(methods, [Method::Ack]);
    // The next peer's call goes on.
    h.recv_msg(
        CARRIER_B,
        reply(
            &inv_b,
            200,
            "tb",
            &[(Hdr::CONTACT, "<sip:b@127.0.0.4>")],
            Some(SDP),
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![200]);
}

/// A forking proxy's other branches answer late: each 2xx is ACKed and hung up, and counted
/// for the metrics (`LateAnswer`, from the peer it came from); one before the call ends is
/// in its CDR too. Before, one after the CDR was written was in no record at all.
#[test]
fn late_answers_are_counted_before_and_after_the_cdr() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let fork = |tag: &str| {
        reply(
            &inv,
            200,
            tag,
            &[(Hdr::CONTACT, "<sip:f@127.0.0.3>")],
            Some(SDP),
        )
    };
    let late = |h: &H| {
        h.late_answers()
            .iter()
            .filter(|p| **p == "carrier-a")
            .count()
    };
    h.recv_msg(CARRIER_A, fork("fork2"));
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(late(&h), 1);
    h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKlate"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    assert!(
        h.cdrs[0].events.contains(&"late_2xx_released".to_string()),
        "{:?}",
        h.cdrs[0].events
    );
    h.recv_msg(CARRIER_A, fork("fork3"));
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(late(&h), 2, "counted after the CDR too");
    assert_eq!(h.cdrs.len(), 1);
}

#[test]
fn failover_on_timer_b() {
    let mut cfg = config();
    cfg.routes[0].ring_timeout = None;
    let mut h = H::with(cfg);
    h.recv(PHONE, &invite_text("c5", "z9hG4bKc5", "+8610123", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
    h.advance(Duration::from_secs(31));
    // Timer A: retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; six by 31 s.
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 5);
    h.advance(Duration::from_secs(2));
    // Timer B fired at 32 s: INVITE to carrier B at 32 s and its first retransmission at 32.5 s.
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 2);
    // Carrier B is silent too: the caller gets 408 after its Timer B.
    h.advance(Duration::from_secs(33));
    assert!(h.statuses(PHONE).contains(&408));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
    assert_eq!(
        (h.cdrs[0].cause, h.cdrs[0].cause_source),
        (102, CauseSource::Internal)
    );
}

/// A peer that says nothing at all for its profile's `[sip] invite_timeout_s` is given up
/// for the route's next peer then, not after Timer B (32 s; the route's 30 s ring timeout
/// used to end the call first); if it speaks later, its provisional gets a CANCEL.
#[test]
fn a_silent_peer_is_given_up_after_its_invite_timeout() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.invite_timeout = Some(Duration::from_secs(3));
        }
    }));
    h.recv(PHONE, &invite_text("c5s", "z9hG4bKc5s", "+8610123", ""));
    let first = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_millis(2900));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    h.advance(Duration::from_millis(200));
    let inv = h.one_request(CARRIER_B, Method::Invite);
    // Carrier A wakes up: its 180 gets a CANCEL (RFC 3261 §9.1: not before it).
    h.take(CARRIER_A);
    h.recv_msg(CARRIER_A, reply(&first, 180, "late", &[], None));
    let cancels = h.take_requests(CARRIER_A, Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].cseq().unwrap().0, first.cseq().unwrap().0);
    assert!(
        h.statuses(PHONE).iter().all(|s| *s != 180),
        "not the caller's"
    );
    // Carrier B answers: the call is B's.
    h.carrier_answers_on(CARRIER_B, &inv, "b1", SDP);
    h.recv_msg(CARRIER_A, reply(&first, 180, "late", &[], None));
    assert!(
        h.take_requests(CARRIER_A, Method::Cancel).is_empty(),
        "once"
    );
    // A peer heard in time is not given up, however long it rings.
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.invite_timeout = Some(Duration::from_secs(3));
        }
    }));
    h.recv(PHONE, &invite_text("c5t", "z9hG4bKc5t", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 100, "", &[], None));
    h.advance(Duration::from_secs(10));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    // Both peers silent: the caller hears 408 after both; each that speaks later is
    // CANCELled (before, only the last one given up was remembered).
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" || n == "carrier-b" {
            p.invite_timeout = Some(Duration::from_secs(2));
        }
    }));
    h.recv(PHONE, &invite_text("c5u", "z9hG4bKc5u", "+8610123", ""));
    let to_a = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_millis(2100));
    let to_b = h.one_request(CARRIER_B, Method::Invite);
    h.advance(Duration::from_millis(2100));
    assert!(h.statuses(PHONE).contains(&408));
    h.take(CARRIER_A);
    h.take(CARRIER_B);
    h.recv_msg(CARRIER_A, reply(&to_a, 180, "la", &[], None));
    h.recv_msg(CARRIER_B, reply(&to_b, 180, "lb", &[], None));
    assert_eq!(h.take_requests(CARRIER_A, Method::Cancel).len(), 1);
    assert_eq!(h.take_requests(CARRIER_B, Method::Cancel).len(), 1);
}

/// A 408 from a callee that rang is the called party not answering: no other peer rings
/// the same party again, and the caller gets 480 with cause 19, as from the gateway's own
/// ring timeout (a 408 passed on reads upstream as a hop that timed out, and is tried again
/// elsewhere; it was passed on before). Before it rang, a 408 is the peer's and the route's
/// next peer is tried.
#[test]
fn a_408_after_ringing_is_no_answer_not_a_failover() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c408", "z9hG4bKc408", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "r1", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 408, "r1", &[], None));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    let statuses = h.statuses(PHONE);
    assert!(
        statuses.contains(&480) && !statuses.contains(&408),
        "{statuses:?}"
    );
    assert_eq!(h.cdrs.len(), 1);
    let c = &h.cdrs[0];
    assert_eq!((c.status, c.cause), (480, 19), "{c:?}");
    assert_eq!(
        c.cause_source,
        crate::interop::causes::CauseSource::Internal
    );
    assert_eq!(c.reason_sip.as_deref(), Some("SIP;cause=408"));
    // Unheard, the same 408 moves the call on.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c408b", "z9hG4bKc408b", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 408, "r2", &[], None));
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
    assert!(h.cdrs.is_empty());
}

/// A callee's 503 with Retry-After keeps the next calls away from that peer for as long
/// (RFC 3261 §21.5.4): they go straight to the route's next peer. Before, every call tried
/// the overloaded peer first.
#[test]
fn a_503_with_retry_after_rests_the_peer() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("r1", "z9hG4bKr1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            503,
            "o1",
            &[(Hdr::RETRY_AFTER, "60 (overloaded)")],
            None,
        ),
    );
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
    h.advance(Duration::from_secs(30));
    h.take(CARRIER_B);
    h.recv(PHONE, &invite_text("r2", "z9hG4bKr2", "+8610123", ""));
    assert!(
        h.take_requests(CARRIER_A, Method::Invite).is_empty(),
        "resting"
    );
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
    h.advance(Duration::from_secs(31));
    h.recv(PHONE, &invite_text("r3", "z9hG4bKr3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    // Without Retry-After, a 503 is this request's alone.
    h.recv_msg(CARRIER_A, reply(&inv, 503, "o3", &[], None));
    h.recv(PHONE, &invite_text("r4", "z9hG4bKr4", "+8610123", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
}

/// The rest a 503 asked for is the server's that sent it: a reload pointing the trunk at
/// another address (its backup SBC) ends it, one that leaves the address keeps it. Before,
/// every call skipped the re-addressed trunk until the old server's rest ran out.
#[test]
fn a_trunk_moved_by_a_reload_is_not_kept_resting_for_its_old_server() {
    let mut h = H::new();
    carrier_a_resting(&mut h, "m1");
    let moved = |limits: bool| {
        Arc::new(config_with(|n, p| {
            if n == "carrier-a" {
                if limits {
                    p.limits.calls.max_calls = Some(50);
                } else {
                    p.address.addr = "127.0.0.9:5060".parse().expect("address");
                }
            }
        }))
    };
    // Its limits changed, its address not: still resting.
    assert!(h.reload(moved(true)));
    h.recv(PHONE, &invite_text("m2", "z9hG4bKm2", "+8610123", ""));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
    // Moved: tried at once, at its new address.
    assert!(h.reload(moved(false)));
    h.recv(PHONE, &invite_text("m3", "z9hG4bKm3", "+8610123", ""));
    assert_eq!(h.take_requests("127.0.0.9:5060", Method::Invite).len(), 1);
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
}

/// A callee's redirect reaches the caller with its number targets at the gateway (a caller
/// that follows it calls through the gateway's routes and limits), when the callee's
/// `[transfer]` relays (a redirect makes the caller place a call, as a transfer does); else,
/// or naming no number, as 480. Before, the 3xx went on with no Contact at all.
#[test]
fn a_redirect_reaches_the_caller_as_numbers_at_the_gateway_or_as_480() {
    let relaying = || {
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.transfer = crate::interop::transfer::TransferMode::Relay;
            }
        }))
    };
    let mut h = relaying();
    h.recv(PHONE, &invite_text("rd1", "z9hG4bKrd1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            302,
            "m1",
            &[(
                Hdr::CONTACT,
                "<sip:+8610999@10.9.9.9>;q=0.7, <sip:bob@evil.example>",
            )],
            None,
        ),
    );
    let r = h.response_with(PHONE, 302, "the redirect goes on");
    // (Its preference goes with it.)
    assert_eq!(
        r.header_lines(&Hdr::CONTACT),
        vec!["<sip:+8610999@127.0.0.1:5060>;q=0.7".to_string()]
    );
    assert_eq!(h.cdrs[0].status, 302);
    // From a callee whose profile does not relay transfers: 480, whatever it names.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("rd3", "z9hG4bKrd3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            302,
            "m3",
            &[(Hdr::CONTACT, "<sip:+8610999@10.9.9.9>")],
            None,
        ),
    );
    h.response_with(PHONE, 480, "a redirect the callee may not make");
    // A PBX that relays transfers, but not to trunks, redirecting a carrier's call: 480 (the
    // carrier might dial the target itself, on the trunk's account).
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.transfer = crate::interop::transfer::TransferMode::Relay;
        }
    }));
    h.recv(CARRIER_A, &invite_text("rd4", "z9hG4bKrd4", "1000", ""));
    let inv = h.one_request(PHONE, Method::Invite);
    h.recv_msg(
        PHONE,
        reply(
            &inv,
            302,
            "m4",
            &[(Hdr::CONTACT, "<sip:+88213000000@10.0.0.9>")],
            None,
        ),
    );
    h.response_with(CARRIER_A, 480, "no redirect toward a trunk");
    let mut h = relaying();
    h.recv(PHONE, &invite_text("rd2", "z9hG4bKrd2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            302,
            "m2",
            &[(Hdr::CONTACT, "<sip:bob@evil.example>")],
            None,
        ),
    );
    let r = h.response_with(PHONE, 480, "a redirect to no number");
    assert!(r.header(&Hdr::CONTACT).is_none());
    assert_eq!(h.cdrs[0].status, 480);
    assert_eq!(h.cdrs[0].reason_sip.as_deref(), Some("SIP;cause=302"));
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let mut h = H::new();
    let text = invite_text("c6", "z9hG4bKc6", "+8610123", "");
    h.recv(PHONE, &text);
    h.advance(Duration::from_millis(500));
    h.recv(PHONE, &text);
    h.recv(PHONE, &text);
    assert_eq!(
        h.take_requests(CARRIER_A, Method::Invite).len(),
        2,
        "original + our own Timer A retransmission"
    );
    // The retransmissions are answered with the last provisional (100).
    assert_eq!(h.statuses(PHONE), vec![100, 100, 100]);
    assert_eq!(h.core.stats().calls, 1);
}

/// A callee's Q.850 Reason we read but cannot write again (`cause=+17`: a number, not
/// digits) goes to the caller as the cause it names, in our form. Before, the caller got no
/// Reason at all.
#[test]
fn a_callees_reason_we_cannot_write_goes_on_as_its_cause() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c7b", "z9hG4bKc7b", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let reason = [(Hdr::REASON, "Q.850;cause=+17")];
    h.recv_msg(CARRIER_A, reply(&inv, 486, "t7", &reason, None));
    let r = h.response_with(PHONE, 486, "486");
    assert_eq!(r.header(&Hdr::REASON).as_deref(), Some("Q.850;cause=17"));
}

#[test]
fn busy_with_q850_reason_is_relayed_and_recorded() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c7", "z9hG4bKc7", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            486,
            "t7",
            &[(Hdr::REASON, "Q.850;cause=17;text=\"User busy\"")],
            None,
        ),
    );
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 486)
        .unwrap();
    assert_eq!(
        r.header(&Hdr::REASON).as_deref(),
        Some("Q.850;cause=17;text=\"User busy\"")
    );
    let c = &h.cdrs[0];
    assert_eq!(
        (c.call_tag, c.status, c.cause, c.cause_source),
        (CallTag::CalleeReject, 486, 17, CauseSource::ReasonHeader)
    );
}

#[test]
fn failure_without_reason_uses_rfc3398() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c8", "z9hG4bKc8", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 404, "t8", &[], None));
    let c = &h.cdrs[0];
    assert_eq!(
        (c.status, c.cause, c.cause_source),
        (404, 1, CauseSource::Rfc3398)
    );
    assert_idle(&mut h);
}

#[test]
fn unknown_source_unknown_number_and_hops() {
    let mut h = H::new();
    h.recv(
        "127.0.0.9:5060",
        &invite_text("c9", "z9hG4bKc9", "+8610123", "")
            .replace("127.0.0.2:5060;branch", "127.0.0.9:5060;branch"),
    );
    // Silence by default, and no state: no transaction, nothing to retransmit.
    assert!(h.sent.is_empty(), "{:?}", h.sent);
    assert!(h.cdrs.is_empty(), "an unknown source is not a call");
    assert_eq!(h.core.stats().server_txns, 0);
    assert!(h.events.contains(&CoreEvent::Refused {
        why: "unknown_source"
    }));

    h.recv(PHONE, &invite_text("c10", "z9hG4bKc10", "999", ""));
    assert_eq!(h.statuses(PHONE), vec![404]);
    assert_eq!(h.cdrs[0].call_tag, CallTag::NoRoute);

    h.recv(
        PHONE,
        &invite_text("c11", "z9hG4bKc11", "+8610123", "")
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(h.statuses(PHONE), vec![483]);

    h.recv(
        PHONE,
        &invite_text("c12", "z9hG4bKc12", "+8610123", "Require: foo, timer\r\n"),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 420);
    // `timer` is ours to honour (the phone's `[session_timer]` is the default, `accept`).
    assert_eq!(r.header(&Hdr::UNSUPPORTED).as_deref(), Some("foo"));
    assert!(h.take(CARRIER_A).is_empty());
    assert_idle(&mut h);
}

/// After the callee rang, the ring timeout is 480 with cause 19 (RFC 3398 §8.2.1), not the
/// 408 a front (the shipped Kamailio one) or a PBX takes for a hop that timed out, and tries
/// again elsewhere, ringing the called party once more. Before any ringing it stays 408.
#[test]
fn ring_timeout_sends_480_after_ringing_and_cancels() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c13", "z9hG4bKc13", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t13", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.failures(PHONE), [480]);
    let c = h.one_request(CARRIER_A, Method::Cancel);
    // The callee's network learns why (RFC 3326), as the caller does.
    assert_eq!(c.header_lines(&Hdr::REASON), ["Q.850;cause=19"]);
    h.recv_msg(CARRIER_A, reply(&c, 200, "t13", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 487, "t13", &[], None));
    assert_eq!(h.cdrs[0].call_tag, CallTag::NoAnswerTimeout);
    assert_eq!(h.cdrs[0].cause, 19, "alerted callee: no answer from user");
    assert_eq!(h.cdrs[0].status, 480);

    let mut h = H::new();
    h.recv(PHONE, &invite_text("c14", "z9hG4bKc14", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 100, "", &[], None));
    h.advance(Duration::from_secs(60));
    assert_eq!(h.failures(PHONE), [408], "nobody rang");
    assert_eq!(h.cdrs[0].cause, 18);
}

/// The called party rang through the route's first peer, which then failed (503 after its
/// 180) and the call went on to the next, which has not rung when the ring timeout comes:
/// still 480, cause 19. Before, the 408 a front takes for a hop that timed out had it try
/// the call again elsewhere, ringing the party once more.
#[test]
fn a_ring_timeout_after_an_earlier_peer_rang_is_480() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c15", "z9hG4bKc15", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t15", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 503, "t15", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, reply(&inv_b, 100, "", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.failures(PHONE), [480]);
    assert_eq!(h.cdrs[0].cause, 19, "alerted earlier: no answer from user");

    // So is the next peer's own 408 (its proxy's no-answer timer): 480, cause 19.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c16", "z9hG4bKc16", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t16", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 503, "t16", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.take(PHONE);
    h.recv_msg(CARRIER_B, reply(&inv_b, 408, "u16", &[], None));
    assert_eq!(h.failures(PHONE), [480]);
    assert_eq!(h.cdrs[0].cause, 19);
}

#[test]
fn cdr_times_are_the_system_clock_at_each_event_and_durations_monotonic() {
    let mut h = H::new();
    let epoch = SystemTime::UNIX_EPOCH;
    h.core.set_clock(h.now, epoch);
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_secs(1));
    // NTP steps the clock an hour forward while the call rings.
    h.core.set_clock(h.now, epoch + Duration::from_secs(3600));
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    h.advance(Duration::from_secs(2));
    h.core.set_clock(h.now, epoch + Duration::from_secs(3602));
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKbye1"));
    let c = &h.cdrs[0];
    assert_eq!(c.start, "1970-01-01T00:00:00.000Z");
    assert_eq!(c.answer.as_deref(), Some("1970-01-01T01:00:00.000Z"));
    assert_eq!(c.end, "1970-01-01T01:00:02.000Z");
    assert_eq!(c.duration_ms, 2000, "from the monotonic clock");
}

#[test]
fn retransmissions_are_counted_sent_and_absorbed() {
    let mut h = H::new();
    let invite = invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", "");
    h.recv(PHONE, &invite);
    assert_eq!(h.core.retransmissions(), Default::default());
    // The phone repeats its INVITE: absorbed, and answered with our 100 again.
    h.recv(PHONE, &invite);
    let r = h.core.retransmissions();
    assert_eq!((r.sent, r.absorbed), (1, 1));
    // The carrier is silent: Timer A resends our INVITE at 0.5 s and 1.5 s.
    h.advance(Duration::from_millis(1600));
    assert_eq!(h.core.retransmissions().sent, 3);
    let inv = h.take_requests(CARRIER_A, Method::Invite).remove(0);
    // Answered; the caller never ACKs: our 2xx is resent at T1.
    h.carrier_answers(&inv, "carrier1", SDP);
    h.advance(Duration::from_millis(600));
    assert_eq!(h.core.retransmissions().sent, 4);
    assert_eq!(h.core.retransmissions().absorbed, 1);
}

#[test]
fn rewrites_are_counted_by_kind() {
    let count = |h: &H, kind: &str| {
        h.core
            .rewrites()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| n)
    };
    // The defaults: only 100rel, which carrier-a's profile supports and the phone did not
    // offer, is offered differently.
    let mut h = H::new();
    answered_call(&mut h);
    assert_eq!(
        h.core.rewrites(),
        vec![
            ("sdp_anchor", 0),
            ("ptime", 0),
            ("request_uri", 0),
            ("100rel", 1)
        ]
    );

    let mut h = H::with(config_with(|name, p| {
        if name == "carrier-a" {
            p.ptime = Some(30);
            p.uri.user_phone = true;
            p.anchor = true;
        }
    }));
    answered_call(&mut h);
    assert_eq!(count(&h, "ptime"), 1, "the INVITE's SDP");
    assert_eq!(count(&h, "request_uri"), 1);
    assert_eq!(count(&h, "sdp_anchor"), 2, "the offer and the answer");
    // carrier-a is offered 100rel (its profile supports it) though the phone did not offer it.
    assert_eq!(count(&h, "100rel"), 1);
}

#[test]
fn statuses_about_the_hop_reach_the_caller_as_500_with_the_original_in_the_cdr() {
    for status in [420u16, 421, 422, 423, 491] {
        let mut h = H::new();
        h.recv(PHONE, &invite_text("hop-1", "z9hG4bKhop1", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        h.take(PHONE);
        h.recv_msg(
            CARRIER_A,
            reply(&inv, status, "c1", &[(Hdr::UNSUPPORTED, "100rel")], None),
        );
        let r = h.take_responses(PHONE);
        assert_eq!(r.len(), 1, "{status}");
        assert_eq!(r[0].status(), 500, "{status}");
        assert!(r[0].header(&Hdr::UNSUPPORTED).is_none(), "{status}");
        let c = &h.cdrs[0];
        assert_eq!(c.status, 500);
        assert_eq!(
            c.reason_sip.as_deref(),
            Some(format!("SIP;cause={status}").as_str())
        );
    }
}

#[test]
fn headers_naming_the_other_side_do_not_cross() {
    let mut h = H::new();
    let leaky = "User-Agent: Linphonec/5.1.65\r\nP-Access-Network-Info: 3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=1234\r\nCall-Info: <http://10.0.0.5/photo.jpg>;purpose=icon\r\nAlert-Info: <http://10.0.0.5/ring.wav>\r\nReplaces: other-call@10.0.0.5;to-tag=a;from-tag=b\r\nReferred-By: <sip:boss@10.0.0.5>\r\nP-Served-User: <sip:1000@10.0.0.5>\r\n";
    h.recv(
        PHONE,
        &invite_text("leak-1", "z9hG4bKleak1", "+8610123", leaky),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let wire = String::from_utf8_lossy(&inv.to_bytes()).to_string();
    for gone in [
        "User-Agent",
        "P-Access-Network-Info",
        "Call-Info",
        "Alert-Info",
        "Replaces",
        "Referred-By",
        "P-Served-User",
        "10.0.0.5",
    ] {
        assert!(!wire.contains(gone), "{gone} crossed:\n{wire}");
    }
    assert!(!wire.contains("X-Custom"), "unlisted headers stay behind");
}

#[test]
fn the_receiving_peers_header_policy_passes_strips_and_names_us() {
    use crate::interop::headers::HeaderPolicy;
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.headers = HeaderPolicy {
                pass: vec![Hdr::named("X-Custom")],
                strip: vec![Hdr::named("Subject"), Hdr::P_ASSERTED_IDENTITY],
                user_agent: Some("trunkgate".into()),
                trust_identity: true,
                trust_asserted: true,
            };
        }
    }));
    h.recv(
        PHONE,
        &invite_text(
            "hp-1",
            "z9hG4bKhp1",
            "+8610123",
            "Subject: hello\r\nPriority: urgent\r\nUser-Agent: Yealink T46\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        inv.header(&Hdr::named("X-Custom")).as_deref(),
        Some("keep me")
    );
    assert_eq!(inv.header(&Hdr::named("Subject")), None);
    assert_eq!(inv.header(&Hdr::P_ASSERTED_IDENTITY), None);
    assert_eq!(
        inv.header(&Hdr::named("Priority")).as_deref(),
        Some("urgent")
    );
    assert_eq!(
        inv.header_lines(&Hdr::USER_AGENT),
        vec!["trunkgate".to_string()]
    );
    // Toward the phone (default policy) the carrier's Server stays behind and nothing of
    // ours is added.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "c1",
            &[
                (Hdr::SERVER, "Carrier SBC 9.1"),
                (Hdr::named("X-Carrier"), "x"),
            ],
            None,
        ),
    );
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 180)
        .unwrap();
    assert_eq!(r.header(&Hdr::SERVER), None);
    assert_eq!(r.header(&Hdr::named("X-Carrier")), None);
}

/// A peer's long texts are cut in the CDR (a header may be 8 KiB, and the CDRs waiting for
/// a full disk are bounded by count): the Call-ID at 256 bytes, the Reason at 512, each
/// ending in "…" at a character boundary, and the CDR says so (`field_truncated`).
#[test]
fn a_peers_long_texts_are_cut_in_the_cdr() {
    let mut h = H::new();
    let call_id = format!("{}@127.0.0.2", "é".repeat(600));
    h.recv(
        PHONE,
        &invite_text(&call_id, "z9hG4bKlong1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    // (A text is cut at 128 characters when the value is read; a token parameter is not.)
    let reason = format!("SIP;cause=486;note={}", "busy-".repeat(300));
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 486, "c1", &[(Hdr::REASON, reason.as_str())], None),
    );
    let c = &h.cdrs[0];
    assert!(
        c.call_id.len() <= 256 && c.call_id.ends_with('…'),
        "{}",
        c.call_id
    );
    assert!(call_id.starts_with(c.call_id.trim_end_matches('…')));
    let r = c.reason_sip.as_deref().unwrap();
    assert!(
        r.len() <= 512 && r.ends_with('…') && r.starts_with("SIP;cause=486"),
        "{r}"
    );
    assert!(c.events.iter().any(|e| e == "field_truncated"));
    // A CDR of ordinary texts is as it was.
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("short-1", "z9hG4bKshort1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 486, "c1", &[], None));
    let c = &h.cdrs[0];
    assert_eq!(c.call_id, "short-1");
    assert!(!c.events.iter().any(|e| e == "field_truncated"));
}

/// A CDR's times from a clock set before 1970 (or past 9999) are written as the nearest the
/// format can hold: the formatter panics on either, and a CDR is never lost to a clock.
#[test]
fn a_clock_out_of_range_still_gives_a_cdr_time() {
    use std::time::{Duration, SystemTime};
    let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
    assert_eq!(crate::call::cdr::stamp(before), "1970-01-01T00:00:00.000Z");
    let after = SystemTime::UNIX_EPOCH + Duration::from_secs(300_000_000_000);
    assert_eq!(crate::call::cdr::stamp(after), "9999-12-31T23:59:59.000Z");
}

/// The phone's INVITE without SDP, answered by the carrier's offer: the phone's ACK must carry
/// the answer (RFC 3261 §13.2.2.4). One without: the carrier's offer is refused in its ACK
/// (every stream at port 0) and the call released. Before, the carrier got an ACK without
/// SDP and took its own offer as agreed while the phone had agreed to nothing.
#[test]
fn an_ack_without_the_answer_to_the_offer_releases_the_call() {
    let mut h = H::new();
    h.recv(PHONE, &offerless_text("call-1@127.0.0.2", "z9hG4bKlo2", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKlo2a", ""));
    let sent = h.take(CARRIER_A);
    let ack = sent.iter().find_map(|m| match m {
        Message::Request(r) if r.method() == Method::Ack => Some(r.clone()),
        _ => None,
    });
    let ack = ack.expect("the carrier's 200 is ACKed");
    let body = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(body.contains("m=audio 0 "), "{body}");
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Request(r) if r.method() == Method::Bye))
    );
    h.one_request(PHONE, Method::Bye);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::GatewayError);
}

/// A CANCEL that crosses the callee's refusal, once the call is gone: its 200 carries the
/// tag of the refusal the caller got (RFC 3261 §9.2), as one while the call is there does.
/// Before, a fresh tag of its own.
#[test]
fn a_cancel_after_the_call_is_gone_is_answered_with_the_invites_tag() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c9", "z9hG4bKc9", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 486, "t9", &[], None));
    h.take(CARRIER_A);
    let busy = h.response_with(PHONE, 486, "the caller gets the refusal");
    let tag = busy.to_tag().unwrap();
    for _ in 0..20 {
        if h.core.active_calls() == 0 {
            break;
        }
        h.advance(Duration::from_millis(100));
    }
    assert_eq!(h.core.active_calls(), 0, "the call is gone");
    h.recv(PHONE, &cancel_text("c9", "z9hG4bKc9"));
    let ok = h.response_with(PHONE, 200, "the CANCEL is answered");
    assert_eq!(ok.to_tag().as_deref(), Some(tag.as_str()));
}

/// A reload that removes a peer (a trunk taken out after fraud) while a call to the peer
/// before it rings: that call's failover does not try the removed peer, though its route
/// (the configuration it began under) names it; the caller gets the failure. Before, the
/// removed trunk got a new INVITE, counted against its old limits.
#[test]
fn a_failover_skips_a_peer_a_reload_removed() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c9", "z9hG4bKc9", "+8610123", ""));
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    let mut without_b = config();
    without_b
        .profiles
        .retain(|name, _| name.as_str() != "carrier-b");
    for r in &mut without_b.routes {
        r.to.retain(|p| p.as_str() != "carrier-b");
    }
    h.reload(Arc::new(without_b));
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ta", &[], None));
    assert!(
        h.take_requests(CARRIER_B, Method::Invite).is_empty(),
        "no INVITE to the removed peer"
    );
    let finals: Vec<u16> = h
        .statuses(PHONE)
        .into_iter()
        .filter(|s| *s >= 300)
        .collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
}

/// A reload that moves a peer (another `address`: its old SBC dead, or not to be trusted)
/// while a call to the peer before it rings: the failover does not send that call's INVITE
/// to the old address. Before, the call's own copy of the old profile built it, and the old
/// address got it, with the old settings and credentials.
#[test]
fn a_failover_skips_a_peer_a_reload_moved() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c10", "z9hG4bKc10", "+8610123", ""));
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    let moved = config_with(|n, p| {
        if n == "carrier-b" {
            p.address = Target::udp("127.0.0.9:5060".parse().unwrap());
        }
    });
    h.reload(Arc::new(moved));
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ta", &[], None));
    assert!(
        h.take_requests(CARRIER_B, Method::Invite).is_empty(),
        "no INVITE to the old address"
    );
    assert!(h.take_requests("127.0.0.9:5060", Method::Invite).is_empty());
    assert!(h.statuses(PHONE).iter().any(|s| *s >= 300));
}

/// Past 64 reloads that moved peers with calls up, the oldest is forgotten, and the
/// configuration the last one replaced is kept: the calls begun since the reload before
/// began with it. Before, that one was dropped and the oldest kept.
#[test]
fn past_the_moved_reloads_bound_the_newest_replaced_configuration_is_kept() {
    let mut h = H::new();
    let configs: Vec<Arc<Config>> = (0..=crate::call::MAX_MOVED_RELOADS)
        .map(|_| Arc::new(config()))
        .collect();
    for (n, old) in configs.iter().enumerate() {
        h.core.env.note_moved(n as u64 + 1, 1, old.clone());
    }
    let moved = &h.core.env.moved;
    assert_eq!(moved.len(), crate::call::MAX_MOVED_RELOADS);
    assert!(Arc::ptr_eq(
        &moved.back().unwrap().old,
        configs.last().unwrap()
    ));
    assert!(Arc::ptr_eq(&moved.front().unwrap().old, &configs[1]));
}

/// A call up since before the first of 65 reloads that moved peers: the core forgets the
/// first reload's configuration, but still reports the first reload's number to the shell
/// while that call lasts (the shell keeps hearing where that reload's peers were, their TCP
/// connections too), folded into the second's (while the calls of either are up), and the
/// third's once they end. Before, the 65th reported the second reload's number, and the
/// shell forgot the first's networks with their call up.
#[test]
fn past_the_moved_reloads_bound_the_oldest_calls_reload_is_still_reported() {
    let mut h = H::with(config_with(|_, p| p.probe = None));
    let (_inv, ok) = answered_call(&mut h);
    let first_tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &first_tag, 1, "z9hG4bKfa1", ""));
    let mut befores = Vec::new();
    let mut between = Vec::new();
    for i in 0..=crate::call::MAX_MOVED_RELOADS {
        befores.push(h.core.next_call_ref());
        let net = format!("10.2.{}.{}/32", i / 256, i % 256);
        let cfg = config_with(move |n, p| {
            p.probe = None;
            if n == "carrier-b" {
                p.matches = vec![net.parse().unwrap()];
            }
        });
        assert!(h.reload(Arc::new(cfg)));
        // A call between reloads, up until the end: the next reload counts it.
        let id = format!("between{i}");
        h.recv(
            PHONE,
            &invite_text(&id, &format!("z9hG4bK{id}"), "+8610123", ""),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let answered = h.carrier_answers(&inv, &format!("c{i}"), SDP);
        let tag = answered.to_tag().unwrap();
        h.recv(
            PHONE,
            &from_phone_in(&id, "ACK", &tag, 1, &format!("z9hG4bKa{id}"), ""),
        );
        between.push((id, tag, format!("c{i}")));
        h.sent.clear();
        // (Within the phone's rate.)
        h.advance(Duration::from_millis(200));
    }
    assert_eq!(h.core.moved_since(), Some(befores[0]));
    let hang_up = |h: &mut H, id: &str, tag: &str, far: &str| {
        let branch = format!("z9hG4bKb{}", id.replace(['@', '.'], ""));
        h.recv(PHONE, &from_phone_in(id, "BYE", tag, 2, &branch, ""));
        let bye = h.one_request(CARRIER_A, Method::Bye);
        h.recv_msg(CARRIER_A, reply(&bye, 200, far, &[], None));
        h.advance(Duration::from_secs(40));
    };
    hang_up(&mut h, "call-1@127.0.0.2", &first_tag, "carrier1");
    assert_eq!(
        h.core.moved_since(),
        Some(befores[0]),
        "the second's call is up"
    );
    let (id, tag, far) = between[0].clone();
    hang_up(&mut h, &id, &tag, &far);
    assert_eq!(h.core.moved_since(), Some(befores[2]));
}

/// A call refused before it exists (no route: 404) is told its cause as one refused later
/// is (`[causes] send_reason`): before, only refusals made once the call existed said it.
#[test]
fn a_refusal_before_the_call_exists_carries_its_cause() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("rr1", "z9hG4bKrr1", "999", ""));
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 404);
    assert_eq!(r.header(&Hdr::REASON).as_deref(), Some("Q.850;cause=1"));
    assert_eq!(h.cdrs[0].cause, 1);
}

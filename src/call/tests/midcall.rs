//! Within the dialogs: re-INVITE and UPDATE relayed, 2xx retransmission and ACK, strays,
//! forks, shutdown.

use super::*;

#[test]
fn reinvite_hold_is_relayed_with_its_ack() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let hold = SDP.replace(
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",
    );
    h.recv(
        PHONE,
        &in_dialog(
            "INVITE",
            "sip:127.0.0.1:5060",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            2,
            "z9hG4bKre1",
            "127.0.0.2:5060",
            &hold,
        ),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(re.cseq().unwrap(), (2, Method::Invite));
    assert_eq!(re.call_id(), inv.call_id());
    assert_eq!(re.uri(), "sip:+8610123@127.0.0.3");
    assert!(String::from_utf8_lossy(re.body()).contains("a=sendonly"));
    h.recv_msg(
        CARRIER_A,
        reply(
            &re,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            Some(&SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n")),
        ),
    );
    let mut rs = h.take_responses(PHONE);
    // The re-INVITE waited for the carrier: the phone got 100 Trying for it first.
    let trying = rs.remove(0);
    assert_eq!(
        (trying.status(), trying.cseq().unwrap()),
        (100, (2, Method::Invite))
    );
    let r = rs.remove(0);
    assert_eq!(r.status(), 200);
    assert_eq!(r.cseq().unwrap(), (2, Method::Invite));
    assert!(String::from_utf8_lossy(r.body()).contains("a=recvonly"));
    h.recv(
        PHONE,
        &in_dialog(
            "ACK",
            "sip:127.0.0.1:5060",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            2,
            "z9hG4bKre1ack",
            "127.0.0.2:5060",
            "",
        ),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (2, Method::Ack));
    // And from the carrier side: an INFO is relayed and answered (UPDATE: see below).
    let to_gw = inv.header(&Hdr::FROM).unwrap();
    h.recv(
        CARRIER_A,
        &in_dialog(
            "INFO",
            "sip:127.0.0.1:5060",
            "<sip:+8610123@ims.example.com>;tag=carrier1",
            &to_gw,
            &inv.call_id().unwrap(),
            1,
            "z9hG4bKinfo",
            "127.0.0.3:5060",
            "",
        ),
    );
    let info = h.one_request(PHONE, Method::Info);
    assert_eq!(info.call_id().as_deref(), Some("call-1@127.0.0.2"));
    h.recv_msg(PHONE, reply(&info, 200, "alice1", &[], None));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
}

#[test]
fn our_2xx_is_retransmitted_until_ack() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c14", "z9hG4bKc14", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t14",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![100, 200]);
    h.advance(Duration::from_millis(1600));
    assert_eq!(
        h.statuses(PHONE),
        vec![200, 200],
        "retransmitted at 0.5 s and 1.5 s"
    );
    // No ACK to the carrier until the caller ACKs.
    assert!(h.take_requests(CARRIER_A, Method::Ack).is_empty());
    // The carrier retransmits its 2xx meanwhile; nothing breaks.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t14",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(h.take_requests(CARRIER_A, Method::Ack).is_empty());
}

#[test]
fn no_ack_hangs_up_both_legs() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c15", "z9hG4bKc15", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t15",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    h.take(PHONE);
    h.advance(Duration::from_secs(33));
    let methods: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(|r| r.method())
        .collect();
    assert!(
        methods.contains(&Method::Ack) && methods.contains(&Method::Bye),
        "{methods:?}"
    );
    assert!(!h.take_requests(PHONE, Method::Bye).is_empty());
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
}

#[test]
fn requests_for_unknown_dialogs_get_481_and_options_200() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &in_dialog(
            "BYE",
            "sip:127.0.0.1",
            phone_from(),
            "<sip:x@127.0.0.1>;tag=nope",
            "nocall",
            2,
            "z9hG4bKu1",
            "127.0.0.2:5060",
            "",
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![481]);
    h.recv(
        CARRIER_A,
        &in_dialog(
            "OPTIONS",
            "sip:127.0.0.1",
            "<sip:ping@127.0.0.3>;tag=p",
            "<sip:127.0.0.1>",
            "ping1",
            1,
            "z9hG4bKo1",
            "127.0.0.3:5060",
            "",
        ),
    );
    let r = h.take_responses(CARRIER_A).remove(0);
    assert_eq!(r.status(), 200);
    assert!(r.header(&Hdr::ALLOW).unwrap().contains("INVITE"));
    assert!(r.to_tag().is_some());
}

/// An OPTIONS outside a dialog is told what a call from its peer may use: the bodies the
/// gateway takes (SIP-I's multipart too) and the extensions that peer's profile leaves on;
/// and while CDRs cannot be written, so every new call is refused, 503 (as /health says).
/// Before, `Accept` named SDP alone, no `Supported` was given, and the 200 kept a front
/// sending calls to an instance that refused each.
#[test]
fn options_says_what_a_call_from_its_peer_may_use() {
    let options_requiring = |h: &mut H, n: u32, require: &str| {
        let branch = format!("z9hG4bKsay{n}");
        let text = in_dialog(
            "OPTIONS",
            "sip:127.0.0.1",
            "<sip:ping@127.0.0.3>;tag=p",
            "<sip:127.0.0.1>",
            &format!("say{n}"),
            1,
            &branch,
            "127.0.0.3:5060",
            "",
        )
        .replacen("Max-Forwards:", &format!("{require}Max-Forwards:"), 1);
        h.recv(CARRIER_A, &text);
        h.take_responses(CARRIER_A).remove(0)
    };
    let options = |h: &mut H, n: u32| options_requiring(h, n, "");
    let plain = |on: bool| {
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.prack.mode = if on {
                    crate::interop::prack::PrackMode::Supported
                } else {
                    crate::interop::prack::PrackMode::Disabled
                };
                if !on {
                    p.session_timer.mode = crate::interop::session_timer::TimerMode::Off;
                }
            }
        }))
    };
    let mut h = plain(true);
    let r = options(&mut h, 1);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header(&Hdr::ACCEPT).as_deref(),
        Some("application/sdp, multipart/mixed")
    );
    let supported = r.header_tokens(&Hdr::SUPPORTED);
    assert!(supported.iter().any(|t| t == "100rel"), "{supported:?}");
    let mut h = plain(false);
    let r = options(&mut h, 2);
    assert_eq!(r.status(), 200);
    assert!(r.header(&Hdr::SUPPORTED).is_none(), "neither is on for it");
    // Requiring either of them is refused for it (RFC 3261 §8.2.2.3), as its INVITE would
    // be; before, any OPTIONS requiring them got 200.
    for (n, tag) in [(5, "timer"), (6, "100rel")] {
        let r = options_requiring(&mut h, n, &format!("Require: {tag}\r\n"));
        assert_eq!(r.status(), 420, "{tag}");
        assert_eq!(r.header(&Hdr::UNSUPPORTED).as_deref(), Some(tag));
    }
    h.input(Input::CdrWritable(false));
    let r = options(&mut h, 3);
    assert_eq!(
        (r.status(), r.header(&Hdr::RETRY_AFTER).as_deref()),
        (503, Some("5"))
    );
    h.input(Input::CdrWritable(true));
    assert_eq!(options(&mut h, 4).status(), 200);
}

/// Outside a dialog: an extension a request requires that we lack gets 420 with it in
/// `Unsupported` (RFC 3261 §8.2.2.3, an OPTIONS too; RFC 4475 §3.3.5), a `Require` that is
/// no token list 400; a method no RFC defines 501 (§21.5.2), one we know but do not serve
/// 405 (§8.2.1), and a BYE 481 whatever it requires. Before, the OPTIONS got 200 and the
/// unknown method 405.
#[test]
fn requests_outside_a_dialog_are_answered_in_the_order_rfc_3261_checks_them() {
    let mut h = H::new();
    let cases: [(&str, &str, u16, Option<&str>); 7] = [
        (
            "OPTIONS",
            "Require: nothing, 100rel\r\n",
            420,
            Some("nothing"),
        ),
        ("OPTIONS", "Require: 100rel, timer\r\n", 200, None),
        ("OPTIONS", "Require: a b\r\n", 400, None),
        ("NEWMETHOD", "", 501, None),
        ("NEWMETHOD", "Require: nothing\r\n", 501, None),
        ("MESSAGE", "Require: nothing\r\n", 405, None),
        ("BYE", "Require: nothing\r\n", 481, None),
    ];
    for (i, (method, extra, status, unsupported)) in cases.into_iter().enumerate() {
        let to = if method == "BYE" {
            "<sip:127.0.0.1>;tag=x"
        } else {
            "<sip:127.0.0.1>"
        };
        let req = in_dialog(
            method,
            "sip:127.0.0.1",
            "<sip:ping@127.0.0.3>;tag=p",
            to,
            &format!("ood{i}"),
            1,
            &format!("z9hG4bKood{i}"),
            "127.0.0.3:5060",
            "",
        )
        .replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{extra}"),
            1,
        );
        h.recv(CARRIER_A, &req);
        let r = h.take_responses(CARRIER_A).remove(0);
        assert_eq!(r.status(), status, "{method} {extra}");
        assert_eq!(
            r.header(&Hdr::UNSUPPORTED).as_deref(),
            unsupported,
            "{method}"
        );
        assert_eq!(
            r.header(&Hdr::ALLOW).is_some(),
            matches!(status, 200 | 405 | 501),
            "{method}"
        );
    }
}

#[test]
fn malformed_requests_get_400() {
    let mut h = H::new();
    let bad =
        invite_text("c16", "z9hG4bKc16", "+8610123", "").replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    h.recv(PHONE, &bad);
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 400);
    assert!(r.reason().contains("CSeq"));
    assert_eq!(h.core.stats().calls, 0);
}

/// More Vias or Record-Route entries than a request makes hops (70) are refused: a route
/// set is kept for the call's life, and thousands of tiny entries made a call hold several
/// times its message's size. 70 of each pass.
#[test]
fn more_vias_or_record_routes_than_hops_are_refused() {
    let mut h = H::new();
    let rr = |n: usize| {
        format!(
            "Record-Route: {}\r\n",
            vec!["<sip:p.example;lr>"; n].join(",")
        )
    };
    let vias = |n: usize| -> String {
        (1..n)
            .map(|i| format!("Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKh{i}\r\n"))
            .collect()
    };
    for (n, (extra, status)) in [
        (rr(71), Some(400)),
        (vias(71), Some(400)),
        (format!("{}{}", rr(70), vias(70)), None),
    ]
    .into_iter()
    .enumerate()
    {
        let inv = invite_text(
            &format!("hops{n}"),
            &format!("z9hG4bKhops{n}"),
            "+8610123",
            "",
        )
        .replace(
            "Max-Forwards: 70\r\n",
            &format!("{extra}Max-Forwards: 70\r\n"),
        );
        h.recv(PHONE, &inv);
        let statuses = h.statuses(PHONE);
        match status {
            Some(s) => assert_eq!(statuses, vec![s], "{n}"),
            None => assert!(!statuses.contains(&400), "{n}: {statuses:?}"),
        }
    }
    // A 2xx with 71 Record-Route entries is dropped (its route set would be the call's).
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let rrs = vec![(Hdr::RECORD_ROUTE, "<sip:p.example;lr>"); 71];
    let ok = reply(&inv, 200, "t-hops", &rrs, Some(SDP));
    h.recv_msg(CARRIER_A, ok);
    assert!(!h.statuses(PHONE).contains(&200), "the 2xx went on");
}

#[test]
fn early_media_reaches_the_caller() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c17", "z9hG4bKc17", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t17", &[], Some(SDP)));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 183)
        .unwrap();
    assert_eq!(r.body().as_ref(), SDP.as_bytes());
    assert_eq!(
        r.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
}

#[test]
fn second_fork_answer_is_released() {
    let mut h = H::new();
    let (inv, _ok) = answered_call(&mut h);
    second_fork_answers(&mut h, &inv);
    let sent = h.take(CARRIER_A);
    let byes: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) if r.method() == Method::Bye => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to_tag().as_deref(), Some("fork2"));
    // The INVITE carried the offer, so the fork's SDP answers it: its ACK has no body.
    assert!(fork_ack(&sent).body().is_empty());
    // The established call is untouched.
    assert!(h.cdrs.is_empty());
    assert_eq!(h.core.stats().calls, 1);
}

/// The ACK among `sent` (to the fork that answered second).
fn fork_ack(sent: &[Message]) -> Request {
    let ack = sent
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method() == Method::Ack => Some(r.clone()),
            _ => None,
        })
        .expect("the fork's 2xx is ACKed");
    assert_eq!(ack.to_tag().as_deref(), Some("fork2"));
    ack
}

#[test]
fn a_second_forks_offer_to_an_invite_without_one_is_refused_in_its_ack() {
    let mut h = H::new();
    let text = invite_text("late-1@127.0.0.2", "z9hG4bKlo", "+8610123", "");
    let offerless = format!(
        "{}Content-Length: 0\r\n\r\n",
        &text[..text.find("Content-Type").unwrap()]
    );
    h.recv(PHONE, &offerless);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.body().is_empty());
    for fork in ["fork1", "fork2"] {
        let contact = format!("<sip:{fork}@127.0.0.3>");
        h.recv_msg(
            CARRIER_A,
            reply(&inv, 200, fork, &[(Hdr::CONTACT, &contact)], Some(SDP)),
        );
    }
    // The first fork's offer went to the phone; the second's is answered in its ACK, every
    // stream refused (RFC 3261 §13.2.2.4), and that dialog is hung up.
    let sent = h.take(CARRIER_A);
    let answer = String::from_utf8_lossy(fork_ack(&sent).body()).into_owned();
    assert!(
        answer.contains("m=audio 0 ") && !answer.contains("192.0.2.10"),
        "{answer}"
    );
    assert!(sent.iter().any(
        |m| matches!(m, Message::Request(r) if r.method() == Method::Bye && r.to_tag().as_deref() == Some("fork2"))
    ));
    assert!(h.cdrs.is_empty());
}

#[test]
fn update_is_relayed_both_ways_and_refreshes_the_target() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let hold = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(PHONE, &from_phone("UPDATE", &tag, 2, "z9hG4bKup1", &hold));
    let up = h.one_request(CARRIER_A, Method::Update);
    assert_eq!(up.call_id(), inv.call_id());
    assert_eq!(up.cseq().unwrap(), (2, Method::Update));
    assert!(String::from_utf8_lossy(up.body()).contains("a=sendonly"));
    // The carrier answers from a new Contact: later requests of the dialog go there.
    h.recv_msg(
        CARRIER_A,
        reply(
            &up,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:moved@127.0.0.3:5070>")],
            Some(&SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n")),
        ),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!((r.status(), r.cseq().unwrap()), (200, (2, Method::Update)));
    assert!(String::from_utf8_lossy(r.body()).contains("a=recvonly"));
    assert_eq!(r.contact_uri().as_deref(), Some("sip:127.0.0.1:5060"));

    // From the carrier side: an UPDATE reaches the phone in the phone's dialog.
    let to_gw = inv.header(&Hdr::FROM).unwrap();
    h.recv(
        CARRIER_A,
        &in_dialog(
            "UPDATE",
            "sip:127.0.0.1:5060",
            "<sip:+8610123@ims.example.com>;tag=carrier1",
            &to_gw,
            &inv.call_id().unwrap(),
            1,
            "z9hG4bKup2",
            "127.0.0.3:5060",
            SDP,
        ),
    );
    let up2 = h.one_request(PHONE, Method::Update);
    assert_eq!(up2.call_id().as_deref(), Some("call-1@127.0.0.2"));
    h.recv_msg(PHONE, reply(&up2, 200, "alice1", &[], Some(SDP)));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);

    h.recv(PHONE, &phone_bye(&tag, 3, "z9hG4bKup3"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    // The carrier's own UPDATE came later, from its Contact <sip:127.0.0.3:5060>: the
    // last target refresh is where the dialog goes (RFC 3261 §12.2.2).
    assert_eq!(
        bye.uri(),
        "sip:127.0.0.3:5060",
        "target refreshed by the carrier's UPDATE, after its 2xx's"
    );
}

/// A re-INVITE from the phone with a new Contact moves the phone's target once our 2xx
/// goes: the carrier's BYE then reaches the phone there. Before, the phone's dialog kept
/// the Contact of its INVITE (a PBX node that routes by Request-URI answers 404 to it).
#[test]
fn a_reinvite_from_the_phone_refreshes_its_target() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let moved = SDP.replace("192.0.2.10", "192.0.2.11");
    let re = from_phone("INVITE", &tag, 2, "z9hG4bKrt1", &moved).replace(
        "Contact: <sip:127.0.0.2:5060>",
        "Contact: <sip:1000@127.0.0.2:5064>",
    );
    assert!(re.contains("sip:1000@127.0.0.2:5064"), "{re}");
    h.recv(PHONE, &re);
    let fwd = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &fwd,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(h.statuses(PHONE).contains(&200));
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKrt1a", ""));
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "carrier1", 2, "z9hG4bKrtbye", ""),
    );
    let bye = h.one_request(PHONE, Method::Bye);
    assert_eq!(bye.uri(), "sip:1000@127.0.0.2:5064");
}

#[test]
fn refer_and_other_methods_are_answered_not_relayed() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    // REFER would make the carrier side call whatever Refer-To names.
    let refer = phone_refer(&tag, 2, "z9hG4bKref1", "<sip:+19005550100@evil.example>");
    h.recv(PHONE, &refer);
    assert_eq!(h.statuses(PHONE), vec![403]);
    for (cseq, method) in [(3, "MESSAGE"), (4, "SUBSCRIBE"), (5, "NOTIFY")] {
        h.recv(
            PHONE,
            &from_phone(method, &tag, cseq, &format!("z9hG4bKm{cseq}"), ""),
        );
        let r = h.take_responses(PHONE);
        assert_eq!(r.len(), 1, "{method}");
        assert_eq!(r[0].status(), 405, "{method}");
        assert!(r[0].header(&Hdr::ALLOW).unwrap().contains("INVITE"));
    }
    assert!(h.take(CARRIER_A).is_empty(), "nothing reached the carrier");
    // INFO is still relayed.
    h.recv(PHONE, &from_phone("INFO", &tag, 6, "z9hG4bKinfo1", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Info).len(), 1);
}

#[test]
fn update_and_info_toward_a_peer_that_does_not_allow_them_are_answered_here() {
    let mut h = H::new();
    // The phone's Allow has no UPDATE and no INFO.
    h.recv(
        PHONE,
        &invite_text(
            "upd-1",
            "z9hG4bKupd1",
            "+8610123",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            183,
            "c1",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    h.take(PHONE);
    let from_carrier = |method: &str, cseq: u32, body: &str| {
        msgs::in_dialog(
            method,
            "sip:127.0.0.1:5060",
            &format!("{};tag=c1", inv.header(&Hdr::TO).unwrap()),
            &inv.header(&Hdr::FROM).unwrap(),
            &inv.call_id().unwrap(),
            cseq,
            &format!("z9hG4bKc{cseq}"),
            "127.0.0.3:5060",
            body,
        )
    };
    // An identity refresh in the early dialog (IMS): 200 here, nothing to the phone.
    h.recv(CARRIER_A, &from_carrier("UPDATE", 10, ""));
    let r = h.take_responses(CARRIER_A);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status(), 200);
    assert!(
        r[0].header(&Hdr::CONTACT).is_some(),
        "a target refresh answer"
    );
    // An offer the phone could not take by UPDATE: refused, the session stays as it was.
    h.recv(CARRIER_A, &from_carrier("UPDATE", 11, SDP));
    let r = h.take_responses(CARRIER_A);
    assert_eq!(r[0].status(), 500);
    assert!(r[0].header(&Hdr::RETRY_AFTER).is_some());
    // A SIP-I UPDATE with an ISUP body alone carries no offer: 200 like any refresh.
    let isup = from_carrier("UPDATE", 12, "\x01\x02ISUP").replace(
        "Content-Type: application/sdp",
        "Content-Type: application/isup",
    );
    h.recv(CARRIER_A, &isup);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    h.recv(CARRIER_A, &from_carrier("INFO", 13, ""));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    assert!(h.take(PHONE).is_empty(), "the phone saw none of it");
}

#[test]
fn an_offer_in_update_toward_a_peer_without_update_goes_as_a_reinvite_after_answer() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text(
            "call-1@127.0.0.2",
            "z9hG4bKupd2",
            "+8610123",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKack1", ""));
    h.take(CARRIER_A);
    let offer = SDP.replace("o=- 1 1 ", "o=- 1 2 ");
    h.recv(
        CARRIER_A,
        &msgs::in_dialog(
            "UPDATE",
            "sip:127.0.0.1:5060",
            &format!("{};tag=c1", inv.header(&Hdr::TO).unwrap()),
            &inv.header(&Hdr::FROM).unwrap(),
            &inv.call_id().unwrap(),
            5,
            "z9hG4bKcu5",
            "127.0.0.3:5060",
            &offer,
        ),
    );
    // The phone gets the offer in a re-INVITE of its dialog.
    let re = h.one_request(PHONE, Method::Invite);
    assert!(!re.body().is_empty());
    // The carrier's own offer waits however it was carried: its re-INVITE meanwhile gets
    // 500 with Retry-After, as would another UPDATE (RFC 3311 §5.2).
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "c1", 6, "z9hG4bKcu6", &offer),
    );
    let refused = h.take_responses(CARRIER_A);
    assert_eq!(
        refused.iter().map(|r| r.status()).collect::<Vec<_>>(),
        vec![500]
    );
    assert!(refused[0].header(&Hdr::RETRY_AFTER).is_some());
    h.recv_msg(
        PHONE,
        reply(
            &re,
            200,
            &tag,
            &[(Hdr::CONTACT, "<sip:1000@127.0.0.2:5062>")],
            Some(SDP),
        ),
    );
    // The gateway ACKs it, at the Contact its 2xx gave, and the carrier's UPDATE gets the
    // phone's answer.
    let ack = h.one_request(PHONE, Method::Ack);
    assert_eq!(ack.cseq().unwrap().0, re.cseq().unwrap().0);
    assert_eq!(ack.uri(), "sip:1000@127.0.0.2:5062");
    let r: Vec<Response> = h
        .take_responses(CARRIER_A)
        .into_iter()
        .filter(|r| r.status() != 100)
        .collect();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].status(), r[0].cseq().unwrap()),
        (200, (5, Method::Update))
    );
    assert!(!r[0].body().is_empty(), "the answer");
    // The phone retransmits its 2xx: the same ACK again.
    h.recv_msg(
        PHONE,
        reply(
            &re,
            200,
            &tag,
            &[(Hdr::CONTACT, "<sip:1000@127.0.0.2:5062>")],
            Some(SDP),
        ),
    );
    assert_eq!(h.take_requests(PHONE, Method::Ack).len(), 1);
}

/// The test gateway with carrier-a's profile saying it takes INVITE, ACK, BYE and CANCEL
/// only (`[sip] allow`).
fn carrier_taking_no_info() -> H {
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.allow = Some(
                ["INVITE", "ACK", "BYE", "CANCEL"]
                    .map(String::from)
                    .to_vec(),
            );
        }
    }))
}

#[test]
fn a_profiles_allow_overrides_what_the_peer_says() {
    let mut h = carrier_taking_no_info();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    // The carrier's 200 listed nothing; its profile says it takes no INFO: answered here.
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKi2", ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    assert!(h.take(CARRIER_A).is_empty());
}

/// An INFO that carries a DTMF digit (or an Info Package's payload) toward a peer that takes
/// no INFO is refused, not swallowed: 501 for a legacy one, 469 with the packages taken
/// (none) for a package. Before, the gateway answered 200 and dropped it, and the phone
/// believed the digit had gone through (a voicemail PIN, an IVR choice lost).
#[test]
fn an_info_with_a_digit_toward_a_peer_that_takes_no_info_is_refused() {
    let mut h = carrier_taking_no_info();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let digit = "Signal=5\r\nDuration=160\r\n";
    let info = from_phone("INFO", &tag, 2, "z9hG4bKi5", digit)
        .replace("application/sdp", "application/dtmf-relay");
    h.recv(PHONE, &info);
    assert_eq!(h.statuses(PHONE), vec![501]);
    let package = from_phone("INFO", &tag, 3, "z9hG4bKi6", digit)
        .replace("application/sdp", "application/dtmf-relay")
        .replacen(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nInfo-Package: dtmf\r\n",
            1,
        );
    h.recv(PHONE, &package);
    let r = h.take_responses(PHONE);
    assert_eq!(r[0].status(), 469);
    assert!(r[0].has_header(&Hdr::named("Recv-Info")));
    assert!(h.take(CARRIER_A).is_empty());
}

/// A relayed INFO the far peer refuses as a method (405): the sender gets the 405, and the
/// next INFO toward that peer is answered here (501 for a digit), not relayed to be refused
/// again. Before, every DTMF INFO went to the carrier and came back 405; with a profile
/// `allow` that lists INFO, until this session. (The gateway's Allow still lists INFO: it
/// takes one, a keep-alive, itself.)
#[test]
fn a_peer_that_refuses_a_relayed_info_is_sent_none_after() {
    for listed in [false, true] {
        let mut h = H::with(config_with(|n, p| {
            if listed && n == "carrier-a" {
                let allow = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"];
                p.allow = Some(allow.iter().map(|m| m.to_string()).collect());
            }
        }));
        refused_info_is_sent_none_after(&mut h);
    }
}

fn refused_info_is_sent_none_after(h: &mut H) {
    let (_inv, ok) = answered_call(h);
    let tag = ok.to_tag().unwrap();
    let digit = |cseq: u32, branch: &str| {
        from_phone("INFO", &tag, cseq, branch, "Signal=5\r\nDuration=160\r\n")
            .replace("application/sdp", "application/dtmf-relay")
    };
    h.recv(PHONE, &digit(2, "z9hG4bKin1"));
    let info = h.one_request(CARRIER_A, Method::Info);
    h.recv_msg(CARRIER_A, reply(&info, 405, "carrier1", &[], None));
    h.response_with(PHONE, 405, "relayed");
    h.recv(PHONE, &digit(3, "z9hG4bKin2"));
    assert_eq!(h.statuses(PHONE), [501]);
    assert!(h.take_requests(CARRIER_A, Method::Info).is_empty());
}

/// A relayed request that could not be sent to the far leg (a transport error) is a 503
/// to its sender (RFC 3261 §8.1.3.1), which ends no dialog (RFC 5057 §5.1): the call goes
/// on. Before, the sender got 408 (which ends its dialog) and the call was released
/// `peer_unreachable`. One the far leg never answered (Timer F) still ends it.
#[test]
fn a_relayed_request_that_could_not_be_sent_gets_503_and_the_call_goes_on() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKsf1", ""));
    h.one_request(CARRIER_A, Method::Info);
    h.input(Input::SendFailed(h.last_txn_to(CARRIER_A)));
    assert_eq!(h.statuses(PHONE), vec![503]);
    assert!(h.cdrs.is_empty() && h.take(CARRIER_A).is_empty());
    assert_eq!(h.core.active_calls(), 1);
    h.recv(PHONE, &from_phone("INFO", &tag, 3, "z9hG4bKsf2", ""));
    h.one_request(CARRIER_A, Method::Info);
    h.advance(Duration::from_secs(33));
    assert_eq!(h.statuses(PHONE), vec![408]);
    assert_eq!(h.cdrs.len(), 1);
}

/// The gateway with the PBX's `[transfer] mode = "relay"`, and `to_trunks` as given.
/// The phone's REFER (CSeq `cseq`, Via `branch`) in its call `tag`, to `target`.
fn phone_refer(tag: &str, cseq: u32, branch: &str, target: &str) -> String {
    from_phone("REFER", tag, cseq, branch, "").replace(
        "Content-Length: 0",
        &format!("Refer-To: {target}\r\nContent-Length: 0"),
    )
}

fn pbx_transferring(to_trunks: bool) -> H {
    H::with(config_with(|n, p| {
        if n == "pbx" {
            p.transfer = crate::interop::transfer::TransferMode::Relay;
            p.transfer_to_trunks = to_trunks;
        }
    }))
}

/// A call relays so many REFERs ([`MAX_REFERS_PER_CALL`]), then refuses the next with 403:
/// each has the transferee place a call. Before, a PBX (or whoever sat behind it) sending
/// REFERs in a stream had the carrier place calls without end, through the gateway's
/// limits only, or billed to the trunk where the carrier dials transfers itself.
#[test]
fn a_call_relays_so_many_refers_then_refuses_them() {
    use crate::call::state::MAX_REFERS_PER_CALL;
    let mut h = pbx_transferring(true);
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let refer = |cseq: u32| {
        phone_refer(
            &tag,
            cseq,
            &format!("z9hG4bKmr{cseq}"),
            "<sip:+8610456@10.0.0.9>",
        )
    };
    for n in 0..u32::from(MAX_REFERS_PER_CALL) {
        h.recv(PHONE, &refer(2 + n));
        let out = h.one_request(CARRIER_A, Method::Refer);
        h.recv_msg(CARRIER_A, reply(&out, 202, "carrier1", &[], None));
        assert_eq!(h.statuses(PHONE), [202], "REFER {n}");
    }
    h.recv(PHONE, &refer(100));
    assert_eq!(h.statuses(PHONE), [403]);
    assert!(h.take_requests(CARRIER_A, Method::Refer).is_empty());
}

/// The transferee's final report refused by the referrer for now (491) may be sent again:
/// it is relayed again, named for the referrer's REFER, and only a final answer that takes
/// it ends the subscription. Before, the subscription ended as the report went, and the
/// retry got 481: the referrer never heard the outcome.
#[test]
fn a_final_report_the_referrer_refused_for_now_is_relayed_again() {
    let mut h = pbx_transferring(true);
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let refer = phone_refer(&tag, 5, "z9hG4bKfr5", "<sip:+8610456@10.0.0.9>");
    h.recv(PHONE, &refer);
    let out = h.one_request(CARRIER_A, Method::Refer);
    h.recv_msg(CARRIER_A, reply(&out, 202, "carrier1", &[], None));
    h.take(PHONE);
    let event = format!("refer;id={}", out.seq());
    let done = "terminated;reason=noresource";
    h.recv(
        CARRIER_A,
        &carrier_notify(&inv, 1, "z9hG4bKfrn1", &event, done),
    );
    let n = h.one_request(PHONE, Method::Notify);
    h.recv_msg(PHONE, reply(&n, 491, &tag, &[], None));
    assert_eq!(h.statuses(CARRIER_A), [491]);
    h.recv(
        CARRIER_A,
        &carrier_notify(&inv, 2, "z9hG4bKfrn2", &event, done),
    );
    let n = h.one_request(PHONE, Method::Notify);
    assert_eq!(n.header(&Hdr::EVENT).as_deref(), Some("refer;id=5"));
    h.recv_msg(PHONE, reply(&n, 200, &tag, &[], None));
    assert_eq!(h.statuses(CARRIER_A), [200]);
    // Taken: the subscription is over.
    h.recv(
        CARRIER_A,
        &carrier_notify(&inv, 3, "z9hG4bKfrn3", &event, done),
    );
    assert_eq!(h.statuses(CARRIER_A), [481]);
}

/// A transfer is in the CDR: the REFER accepted (`transfer_by_caller`) and the transferee's
/// final report's status (`transfer_result_200`); a refused REFER says nothing. Before, a
/// CDR showed a transferred call as one the caller hung up.
#[test]
fn a_transfer_and_its_outcome_are_in_the_cdr() {
    let mut h = pbx_transferring(true);
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &phone_refer(&tag, 2, "z9hG4bKtc2", "<sip:+8610456@10.0.0.9>"),
    );
    let out = h.one_request(CARRIER_A, Method::Refer);
    h.recv_msg(CARRIER_A, reply(&out, 403, "carrier1", &[], None));
    h.recv(
        PHONE,
        &phone_refer(&tag, 3, "z9hG4bKtc3", "<sip:+8610456@10.0.0.9>"),
    );
    let out = h.one_request(CARRIER_A, Method::Refer);
    h.recv_msg(CARRIER_A, reply(&out, 202, "carrier1", &[], None));
    let event = format!("refer;id={}", out.seq());
    // The transferee's fragment with its new call's headers: only the status line goes on.
    let frag = "SIP/2.0 200 OK\r\nContact: <sip:secret@10.1.1.1>\r\n\r\n";
    let report = carrier_notify(&inv, 1, "z9hG4bKtcn", &event, "terminated").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{frag}",
            frag.len()
        ),
    );
    h.recv(CARRIER_A, &report);
    let n = h.one_request(PHONE, Method::Notify);
    assert_eq!(n.body().as_ref(), b"SIP/2.0 200 OK\r\n");
    h.recv_msg(PHONE, reply(&n, 200, &tag, &[], None));
    h.recv(PHONE, &from_phone("BYE", &tag, 4, "z9hG4bKtc4", ""));
    let events = &h.cdrs[0].events;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("transfer_"))
            .collect::<Vec<_>>(),
        ["transfer_by_caller", "transfer_result_200"],
        "{events:?}"
    );
}

/// A REFER the transferee refused made no subscription: a NOTIFY on it afterwards gets 481
/// and does not reach the referrer. Before, it was relayed as the transfer's outcome.
#[test]
fn a_notify_on_a_refused_refer_gets_481() {
    let mut h = pbx_transferring(true);
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let refer = phone_refer(&tag, 2, "z9hG4bKrr2", "<sip:+8610456@10.0.0.9>");
    h.recv(PHONE, &refer);
    let out = h.one_request(CARRIER_A, Method::Refer);
    h.recv_msg(CARRIER_A, reply(&out, 403, "carrier1", &[], None));
    assert_eq!(h.statuses(PHONE), [403]);
    let notify = carrier_notify(
        &inv,
        1,
        "z9hG4bKrrn",
        &format!("refer;id={}", out.seq()),
        "active;expires=60",
    );
    h.recv(CARRIER_A, &notify);
    assert_eq!(h.statuses(CARRIER_A), [481]);
    assert!(h.take_requests(PHONE, Method::Notify).is_empty());
}

/// A PBX that relays transfers may not send a REFER to a trunk unless its `[transfer]
/// to_trunks` says so: a carrier that transfers in its own network would dial the target
/// itself, around every route, limit and CDR of the gateway (a dial-through from an
/// auto-attendant to a premium-rate number, billed to the trunk). Before, any relaying
/// peer's REFER went to the carrier, signed with the trunk's credentials.
#[test]
fn a_transfer_reaches_a_trunk_only_when_the_referrer_may_transfer_to_trunks() {
    let mut h = pbx_transferring(false);
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    assert!(
        !ok.header(&Hdr::ALLOW).unwrap().contains("REFER"),
        "the PBX is not told it may transfer this call"
    );
    let refer = phone_refer(&tag, 2, "z9hG4bKtt2", "<sip:+88213000000@10.0.0.9>");
    h.recv(PHONE, &refer);
    assert_eq!(h.statuses(PHONE), vec![403]);
    assert!(h.take(CARRIER_A).is_empty(), "nothing reached the carrier");
    assert!(h.cdrs.is_empty(), "the call goes on");
}

/// A REFER names exactly one target (RFC 3515 §2.4.1): two `Refer-To` lines get 400 as one
/// line listing two does. Before, the first line was relayed and the second dropped.
#[test]
fn a_refer_with_two_refer_to_lines_is_refused() {
    let mut h = pbx_transferring(true);
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    for (cseq, targets) in [
        (
            2,
            "Refer-To: <sip:+8610456@10.0.0.9>\r\nRefer-To: <sip:+8610457@10.0.0.9>\r\n",
        ),
        (
            3,
            "Refer-To: <sip:+8610456@10.0.0.9>, <sip:+8610457@10.0.0.9>\r\n",
        ),
        (
            4,
            "Refer-To: <sip:+8610456@10.0.0.9>\r\nr: <sip:+8610457@10.0.0.9>\r\n",
        ),
    ] {
        let refer = from_phone("REFER", &tag, cseq, &format!("z9hG4bKrr{cseq}"), "")
            .replace("Content-Length: 0", &format!("{targets}Content-Length: 0"));
        h.recv(PHONE, &refer);
        assert_eq!(h.statuses(PHONE), vec![400], "{targets}");
        assert!(h.take(CARRIER_A).is_empty(), "nothing relayed: {targets}");
    }
}

/// The phone's REFER (CSeq `cseq`) in call `tag`, relayed to the carrier and accepted
/// there (202): the REFER the carrier got.
fn phone_transfers(h: &mut H, tag: &str, cseq: u32, branch: &str) -> Request {
    let refer = from_phone("REFER", tag, cseq, branch, "").replace(
        "Content-Length: 0",
        "Refer-To: <sip:+8610456@10.0.0.9>\r\nContent-Length: 0",
    );
    h.recv(PHONE, &refer);
    let out = h.one_request(CARRIER_A, Method::Refer);
    h.recv_msg(CARRIER_A, reply(&out, 202, "carrier1", &[], None));
    h.take(PHONE);
    out
}

/// A transfer report (NOTIFY, `Event: refer`) reaches the referrer only for a REFER the
/// gateway relayed to its sender; any other gets 481. Before, a carrier could push reports
/// of its own (`SIP/2.0 200 OK` in the sipfrag, which a PBX may act on) into the PBX's
/// dialog whenever the PBX's profile relayed transfers, with or without a transfer.
#[test]
fn a_transfer_report_is_relayed_only_for_a_refer_that_went_to_its_sender() {
    let mut h = pbx_transferring(true);
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(
        CARRIER_A,
        &carrier_notify(&inv, 1, "z9hG4bKu1", "refer", "active;expires=60"),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.take(PHONE).is_empty(), "no report without a transfer");
    // With a transfer relayed, a report naming another REFER is refused too.
    let out = phone_transfers(&mut h, &tag, 2, "z9hG4bKu2");
    let other = format!("refer;id={}", out.seq() + 7);
    h.recv(
        CARRIER_A,
        &carrier_notify(&inv, 2, "z9hG4bKu3", &other, "active;expires=60"),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.take(PHONE).is_empty());
    let this = format!("refer;id={}", out.seq());
    h.recv(
        CARRIER_A,
        &carrier_notify(&inv, 3, "z9hG4bKu4", &this, "active;expires=60"),
    );
    let n = h.one_request(PHONE, Method::Notify);
    assert_eq!(n.header(&Hdr::EVENT).as_deref(), Some("refer;id=2"));
}

/// Past the four REFERs a call remembers, the first sent to the carrier is forgotten: a
/// NOTIFY without an id (which reports on that first one, RFC 3515 §2.4.6) gets 481.
/// Before, it was named to the PBX as a report on the oldest REFER still remembered.
#[test]
fn a_report_without_an_id_is_refused_once_the_first_refer_is_forgotten() {
    let mut h = pbx_transferring(true);
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    for n in 0..5u32 {
        phone_transfers(&mut h, &tag, 2 + n, &format!("z9hG4bKrf{n}"));
    }
    h.recv(
        CARRIER_A,
        &carrier_notify(&inv, 1, "z9hG4bKrfn", "refer", "active;expires=60"),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.take(PHONE).is_empty());
}

/// The carrier's profile strips `Referred-By` (`[headers] strip`): the relayed REFER goes
/// without it. Before, the setting was taken and ignored for it.
#[test]
fn a_referred_by_the_carrier_strips_is_not_relayed() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.transfer = crate::interop::transfer::TransferMode::Relay;
            p.transfer_to_trunks = true;
        }
        if n == "carrier-a" {
            p.headers.strip.push(Hdr::named("Referred-By"));
        }
    }));
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let refer = from_phone("REFER", &tag, 2, "z9hG4bKrb2", "").replace(
        "Content-Length: 0",
        "Refer-To: <sip:+8610456@10.0.0.9>\r\nReferred-By: <sip:1000@10.0.0.9>\r\nContent-Length: 0",
    );
    h.recv(PHONE, &refer);
    let out = h.one_request(CARRIER_A, Method::Refer);
    assert!(out.header(&Hdr::named("Refer-To")).is_some());
    assert_eq!(out.header(&Hdr::named("Referred-By")), None);
}

/// `Referred-By` is an identity: from a referrer not believed (`trust_asserted = false`), or
/// one that asked to be private toward a peer outside the trust domain, it is not relayed.
/// Before, it went on rewritten whatever the referrer was.
#[test]
fn referred_by_goes_on_only_as_an_identity_would() {
    for (believed, privacy, relayed) in [
        (true, "", true),
        (false, "", false),
        (true, "Privacy: id\r\n", true),
    ] {
        let mut h = H::with(config_with(|n, p| {
            if n == "pbx" {
                p.transfer = crate::interop::transfer::TransferMode::Relay;
                p.transfer_to_trunks = true;
                p.headers.trust_asserted = believed;
            }
        }));
        let (_inv, ok) = answered_call(&mut h);
        let tag = ok.to_tag().unwrap();
        let refer = from_phone("REFER", &tag, 2, "z9hG4bKrb2", "").replace(
            "Content-Length: 0",
            &format!(
                "Refer-To: <sip:+8610456@10.0.0.9>\r\nReferred-By: <sip:1000@10.0.0.9>\r\n{privacy}Content-Length: 0"
            ),
        );
        h.recv(PHONE, &refer);
        let out = h.one_request(CARRIER_A, Method::Refer);
        let by = out.header(&Hdr::named("Referred-By"));
        assert_eq!(by.is_some(), relayed, "{believed} {privacy}: {by:?}");
    }
    // The carrier's private REFER toward the PBX (outside the trust domain): withheld.
    for (privacy, relayed) in [("", true), ("Privacy: id\r\n", false)] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.transfer = crate::interop::transfer::TransferMode::Relay;
            }
        }));
        let (inv, _ok) = answered_call(&mut h);
        let refer = from_carrier_in(&inv, "REFER", "carrier1", 2, "z9hG4bKrb3", "").replace(
            "Content-Length: 0",
            &format!(
                "Refer-To: <sip:+8610456@10.0.0.9>\r\nReferred-By: <sip:+8610999@10.9.9.9>\r\n{privacy}Content-Length: 0"
            ),
        );
        h.recv(CARRIER_A, &refer);
        let out = h.one_request(PHONE, Method::Refer);
        let by = out.header(&Hdr::named("Referred-By"));
        assert_eq!(by.is_some(), relayed, "{privacy}: {by:?}");
    }
}

#[test]
fn a_relayed_transfer_targets_the_gateway_and_its_progress_comes_back() {
    let mut h = pbx_transferring(true);
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    assert!(
        ok.header(&Hdr::ALLOW).unwrap().contains("REFER"),
        "the PBX is told it may transfer"
    );
    assert!(!inv.header(&Hdr::ALLOW).unwrap().contains("REFER"));
    // An attended transfer from the PBX: the carrier is told to call the number via the
    // gateway, with no Replaces naming the PBX's dialogs.
    // (Its CSeq, 5, is not the one the gateway's REFER to the carrier gets.)
    let refer = from_phone("REFER", &tag, 5, "z9hG4bKref2", "").replace(
        "Content-Length: 0",
        "Refer-To: <sip:+8610456@10.0.0.9?Replaces=x%40pbx%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n\
         Referred-By: <sip:1000@10.0.0.9>\r\nContent-Length: 0",
    );
    h.recv(PHONE, &refer);
    let out = h.one_request(CARRIER_A, Method::Refer);
    assert_eq!(
        out.header(&Hdr::named("Refer-To")).as_deref(),
        Some("<sip:+8610456@127.0.0.1:5060>")
    );
    let by = out.header(&Hdr::named("Referred-By")).unwrap();
    assert!(!by.contains("10.0.0.9"), "{by}");
    // One Contact, the gateway's (RFC 3515 §2.4.1: a REFER without one gets 400).
    assert_eq!(out.header_lines(&Hdr::CONTACT), ["<sip:127.0.0.1:5060>"]);
    h.recv_msg(CARRIER_A, reply(&out, 202, "carrier1", &[], None));
    assert!(h.statuses(PHONE).contains(&202));
    // The carrier's NOTIFY (Event: refer) reaches the PBX; its 200 goes back.
    let notify = carrier_notify(&inv, 1, "z9hG4bKn1", "refer", "active;expires=60");
    h.recv(CARRIER_A, &notify);
    let n = h.one_request(PHONE, Method::Notify);
    assert_eq!(n.header_lines(&Hdr::CONTACT).len(), 1, "RFC 6665 §8.2.1");
    // It names the PBX's REFER by the PBX's CSeq (RFC 3515 §2.4.6), not ours.
    assert_ne!(out.seq(), 5);
    assert_eq!(n.header(&Hdr::EVENT).as_deref(), Some("refer;id=5"));
    h.recv_msg(PHONE, reply(&n, 200, &tag, &[], None));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    // The next names our REFER's CSeq; the PBX has ended the subscription and answers 481:
    // that ends the transfer's subscription, not the call.
    let notify = carrier_notify(
        &inv,
        2,
        "z9hG4bKn2",
        &format!("refer;id={}", out.seq()),
        "terminated;reason=noresource",
    );
    assert!(notify.contains("id="), "{notify}");
    h.recv(CARRIER_A, &notify);
    let n = h.one_request(PHONE, Method::Notify);
    // The final report too: before, it went out under our CSeq toward the carrier.
    assert_eq!(n.header(&Hdr::EVENT).as_deref(), Some("refer;id=5"));
    h.recv_msg(PHONE, reply(&n, 481, &tag, &[], None));
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    assert!(h.cdrs.is_empty(), "the call goes on");
    // That NOTIFY said the subscription was over (terminated): another on it gets 481 and
    // does not reach the PBX (before, every later one was relayed for the rest of the call).
    let late = carrier_notify(
        &inv,
        3,
        "z9hG4bKn3",
        &format!("refer;id={}", out.seq()),
        "active;expires=60",
    );
    h.recv(CARRIER_A, &late);
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.take_requests(PHONE, Method::Notify).is_empty());
    // The carrier's profile does not relay: its REFER is refused, and a target that is no
    // number is refused too.
    let carrier_refer = in_dialog(
        "REFER",
        "sip:127.0.0.1:5060",
        "<sip:+8610123@ims.example.com>;tag=carrier1",
        &inv.header(&Hdr::FROM).unwrap(),
        &inv.call_id().unwrap(),
        4,
        "z9hG4bKr2",
        "127.0.0.3:5060",
        "",
    )
    .replace(
        "Content-Length: 0",
        "Refer-To: <sip:+19005550100@127.0.0.3>\r\nContent-Length: 0",
    );
    h.recv(CARRIER_A, &carrier_refer);
    assert_eq!(h.statuses(CARRIER_A), vec![403]);
    let bad = phone_refer(&tag, 6, "z9hG4bKref3", "<sip:alice@evil.example>");
    h.recv(PHONE, &bad);
    assert_eq!(h.statuses(PHONE), vec![403]);
    assert!(h.take(CARRIER_A).is_empty());
}

/// The fork that answers numbers its requests afresh: a BYE with a low CSeq from it is
/// taken, whatever another fork sent in its early dialog. Before, the early UPDATE's CSeq
/// of the fork that rang stayed the dialog's last, and the answering fork's BYE got 500:
/// the carrier ended the call and the caller heard silence until a timer.
#[test]
fn the_answering_forks_requests_are_numbered_apart_from_the_fork_that_rang() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text(
            "call-1@127.0.0.2",
            "z9hG4bKfk1",
            "+8610123",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "x1",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            None,
        ),
    );
    h.take(PHONE);
    let to = inv.header(&Hdr::TO).unwrap();
    let from = inv.header(&Hdr::FROM).unwrap();
    let call_id = inv.call_id().unwrap();
    let update = msgs::in_dialog(
        "UPDATE",
        "sip:127.0.0.1:5060",
        &format!("{to};tag=x1"),
        &from,
        &call_id,
        102,
        "z9hG4bKfkx",
        "127.0.0.3:5060",
        "",
    );
    h.recv(CARRIER_A, &update);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    h.take(PHONE);
    let ok = h.carrier_answers(&inv, "y1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKfka", ""));
    let bye = msgs::in_dialog(
        "BYE",
        "sip:127.0.0.1:5060",
        &format!("{to};tag=y1"),
        &from,
        &call_id,
        1,
        "z9hG4bKfky",
        "127.0.0.3:5060",
        "",
    );
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    h.one_request(PHONE, Method::Bye);
}

/// Call id-1 ringing at the carrier, whose UPDATE (answered here) gave its connected
/// identity `+8610999`: the gateway and our INVITE.
fn identity_updated() -> (H, Request) {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text(
            "id-1",
            "z9hG4bKid1",
            "+8610123",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "c1",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            None,
        ),
    );
    h.take(PHONE);
    // IMS: the connected party's identity, by UPDATE in the early dialog.
    let pai = "P-Asserted-Identity: <sip:+8610999@10.9.9.9;user=phone>\r\n";
    h.recv(CARRIER_A, &identity_update(&inv, 10, "z9hG4bKcid", pai));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    assert!(h.take(PHONE).is_empty());
    (h, inv)
}

/// The carrier's UPDATE in call id-1's early dialog with the header lines `extra`.
fn identity_update(inv: &Request, cseq: u32, branch: &str, extra: &str) -> String {
    msgs::in_dialog(
        "UPDATE",
        "sip:127.0.0.1:5060",
        &format!("{};tag=c1", inv.header(&Hdr::TO).unwrap()),
        &inv.header(&Hdr::FROM).unwrap(),
        &inv.call_id().unwrap(),
        cseq,
        branch,
        "127.0.0.3:5060",
        "",
    )
    .replace("Content-Length: 0", &format!("{extra}Content-Length: 0"))
}

#[test]
fn an_identity_update_answered_here_reaches_the_caller_with_the_answer() {
    let (mut h, inv) = identity_updated();
    // The answer carries no identity of its own: the phone learns the connected party from
    // the UPDATE, in its own form and without the carrier's host.
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let pai = ok.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(pai.contains("+8610999"), "{pai}");
    assert!(!pai.contains("10.9.9.9"), "{pai}");
}

/// The carrier's answer asks its identity withheld (`Privacy: id`, COLR) after an UPDATE
/// answered here gave another: the phone (outside the trust domain) gets neither. Before,
/// the one kept from the UPDATE went in place of the one withheld.
#[test]
fn an_answer_withholding_its_identity_drops_the_one_kept_before() {
    let (mut h, inv) = identity_updated();
    let pai = "<sip:+8610888@10.9.9.9;user=phone>";
    let heads = [
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::P_ASSERTED_IDENTITY, pai),
        (Hdr::named("Privacy"), "id"),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &heads, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered");
    assert_eq!(ok.header(&Hdr::P_ASSERTED_IDENTITY), None, "{ok:?}");
}

/// Privacy stands for the dialog (RFC 3323 §4.2): the carrier's 180 asks its identity
/// withheld, and its 200 and later re-INVITE carrying it without `Privacy` (as SBCs send
/// them) do not show it to the phone either, until the carrier says `Privacy: none`.
/// Before, each message was judged alone and the later ones showed it.
#[test]
fn privacy_asked_once_stands_for_the_rest_of_the_dialog() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("pv1", "z9hG4bKpv1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let pai = "<sip:+8610888@10.9.9.9;user=phone>";
    let contact = (Hdr::CONTACT, "<sip:c@127.0.0.3>");
    let private = [
        contact.clone(),
        (Hdr::P_ASSERTED_IDENTITY, pai),
        (Hdr::named("Privacy"), "id"),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &private, None));
    let r180 = h.response_with(PHONE, 180, "ringing");
    assert_eq!(r180.header(&Hdr::P_ASSERTED_IDENTITY), None);
    let bare = [contact.clone(), (Hdr::P_ASSERTED_IDENTITY, pai)];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &bare, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered");
    assert_eq!(ok.header(&Hdr::P_ASSERTED_IDENTITY), None, "{ok:?}");
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("pv1", "ACK", &tag, 1, "z9hG4bKpv1a", ""),
    );
    let reinvite = |cseq: u32, extra: &str| {
        from_carrier_in(
            &inv,
            "INVITE",
            "c1",
            cseq,
            &format!("z9hG4bKpvr{cseq}"),
            SDP,
        )
        .replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{extra}"),
            1,
        )
    };
    let pai_line = format!("P-Asserted-Identity: {pai}\r\n");
    h.recv(CARRIER_A, &reinvite(2, &pai_line));
    let re = h.one_request(PHONE, Method::Invite);
    assert_eq!(re.header(&Hdr::P_ASSERTED_IDENTITY), None, "{re:?}");
    h.recv_msg(PHONE, reply(&re, 200, &tag, &[], Some(SDP)));
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "ACK", "c1", 2, "z9hG4bKpvr2a", ""),
    );
    h.recv(
        CARRIER_A,
        &reinvite(3, &format!("{pai_line}Privacy: none\r\n")),
    );
    let re = h.one_request(PHONE, Method::Invite);
    let shown = re
        .header(&Hdr::P_ASSERTED_IDENTITY)
        .expect("privacy lifted");
    assert!(shown.contains("+8610888"), "{shown}");
}

/// A forking callee's branches speak for themselves: one branch's private 183 does not
/// hide the identity of the other branch that answers, and a losing branch's late 200
/// saying `Privacy: none` does not lift what the answering branch asked.
#[test]
fn each_branch_of_a_forking_callee_has_its_own_privacy() {
    let pai = "<sip:+8610888@10.9.9.9;user=phone>";
    let contact = (Hdr::CONTACT, "<sip:c@127.0.0.3>");
    let heads = |privacy: Option<&'static str>| {
        let mut h = vec![contact.clone(), (Hdr::P_ASSERTED_IDENTITY, pai)];
        if let Some(p) = privacy {
            h.push((Hdr::named("Privacy"), p));
        }
        h
    };
    // Branch y's 183 is private; branch x answers without Privacy: x's identity is shown.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk1", "z9hG4bKfk1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "y1", &heads(Some("id")), None));
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reply(&inv, 200, "x1", &heads(None), Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered by x");
    assert!(ok.header(&Hdr::P_ASSERTED_IDENTITY).is_some(), "{ok:?}");
    // Branch x answers privately; y's late 200 says none; x's re-INVITE shows nothing.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk2", "z9hG4bKfk2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 200, "x1", &heads(Some("id")), Some(SDP)),
    );
    let ok = h.response_with(PHONE, 200, "answered by x");
    assert_eq!(ok.header(&Hdr::P_ASSERTED_IDENTITY), None);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("fk2", "ACK", &tag, 1, "z9hG4bKfk2a", ""),
    );
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 200, "y1", &heads(Some("none")), Some(SDP)),
    );
    h.take(CARRIER_A);
    let pai_line = format!("P-Asserted-Identity: {pai}\r\n");
    let re = from_carrier_in(&inv, "INVITE", "x1", 2, "z9hG4bKfk2r", SDP).replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{pai_line}"),
        1,
    );
    h.recv(CARRIER_A, &re);
    let re = h.one_request(PHONE, Method::Invite);
    assert_eq!(re.header(&Hdr::P_ASSERTED_IDENTITY), None, "{re:?}");
}

/// A branch's `Privacy: id` holds for its later messages however many other branches spoke
/// in between (one said nothing, one's provisional was a retransmission): its 200 without
/// Privacy shows no identity to the untrusted phone. Before, one flag followed the branch
/// heard last, and x's identity went to the phone.
#[test]
fn a_branchs_privacy_outlasts_another_branch_speaking() {
    let pai = "<sip:+8610888@10.9.9.9;user=phone>";
    let contact = (Hdr::CONTACT, "<sip:c@127.0.0.3>");
    let heads = vec![contact.clone(), (Hdr::P_ASSERTED_IDENTITY, pai)];
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk3", "z9hG4bKfk3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let private = [heads.clone(), vec![(Hdr::named("Privacy"), "id")]].concat();
    h.recv_msg(CARRIER_A, reply(&inv, 183, "x1", &private, None));
    h.take(PHONE);
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 180, "y1", std::slice::from_ref(&contact), None),
    );
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 180, "y1", std::slice::from_ref(&contact), None),
    );
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reply(&inv, 200, "x1", &heads, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered by x");
    assert_eq!(ok.header(&Hdr::P_ASSERTED_IDENTITY), None, "{ok:?}");
    // And y, which said nothing, shows its identity when it speaks after x (a new call).
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk4", "z9hG4bKfk4", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "x1", &private, None));
    h.take(PHONE);
    let y = [vec![contact], vec![(Hdr::P_ASSERTED_IDENTITY, pai)]].concat();
    h.recv_msg(CARRIER_A, reply(&inv, 200, "y1", &y, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered by y");
    assert!(ok.header(&Hdr::P_ASSERTED_IDENTITY).is_some(), "{ok:?}");
}

/// The same toward a trusted PBX: the 200's identity reaches it, with the standing request
/// to withhold it (`Privacy: id`, RFC 3325 §7) that the 200 itself did not repeat.
#[test]
fn a_trusted_peer_gets_the_standing_privacy_request_with_the_identity() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.headers.trust_identity = true;
        }
    }));
    h.recv(PHONE, &invite_text("pv2", "z9hG4bKpv2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let pai = "<sip:+8610888@10.9.9.9;user=phone>";
    let contact = (Hdr::CONTACT, "<sip:c@127.0.0.3>");
    let private = [contact.clone(), (Hdr::named("Privacy"), "id")];
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &private, None));
    h.take(PHONE);
    let bare = [contact, (Hdr::P_ASSERTED_IDENTITY, pai)];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &bare, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered");
    assert!(ok.header(&Hdr::P_ASSERTED_IDENTITY).is_some());
    assert_eq!(ok.header(&Hdr::named("Privacy")).as_deref(), Some("id"));
}

/// The 200's own `Privacy: id` carries a control character, so it is not copied: the
/// identity still goes with `Privacy: id`. Before, it went to the trusted PBX without any,
/// failing open (RFC 3325 §7).
#[test]
fn an_uncopied_privacy_still_goes_as_privacy_id_with_the_identity() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.headers.trust_identity = true;
        }
    }));
    h.recv(PHONE, &invite_text("pv3", "z9hG4bKpv3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let pai = "<sip:+8610888@10.9.9.9;user=phone>";
    let heads = [
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::P_ASSERTED_IDENTITY, pai),
        (Hdr::named("Privacy"), "id;\u{1b}"),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &heads, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered");
    assert!(ok.header(&Hdr::P_ASSERTED_IDENTITY).is_some());
    assert_eq!(ok.header(&Hdr::named("Privacy")).as_deref(), Some("id"));
}

/// A second UPDATE whose identity asks for privacy (`Privacy: id`), which the PBX (outside
/// the trust domain) may not learn: the identity kept from the first is dropped too, not
/// sent with the answer as if it were still the connected party's.
#[test]
fn an_identity_update_withheld_drops_the_one_kept_before() {
    let (mut h, inv) = identity_updated();
    let private = "P-Asserted-Identity: <sip:+8610888@10.9.9.9;user=phone>\r\nPrivacy: id\r\n";
    h.recv(
        CARRIER_A,
        &identity_update(&inv, 11, "z9hG4bKcid2", private),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    let ok = h.carrier_answers(&inv, "c1", SDP);
    assert_eq!(ok.header(&Hdr::P_ASSERTED_IDENTITY), None);
}

/// The PBX is trusted (`trust_identity`): an identity UPDATE asking for privacy is kept for
/// it, and the answer carries it with the request (`Privacy: id`, RFC 3325 §7), which a
/// trusted peer needs not to show it on. Before, the identity went without it.
#[test]
fn an_identity_kept_for_a_trusted_peer_goes_with_its_privacy_request() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.headers.trust_identity = true;
        }
    }));
    h.recv(
        PHONE,
        &invite_text(
            "id-2",
            "z9hG4bKid2",
            "+8610123",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &contact, None));
    h.take(PHONE);
    let private = "P-Asserted-Identity: <sip:+8610888@10.9.9.9;user=phone>\r\nPrivacy: id\r\n";
    h.recv(
        CARRIER_A,
        &identity_update(&inv, 10, "z9hG4bKcid4", private),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let pai = ok
        .header(&Hdr::P_ASSERTED_IDENTITY)
        .expect("kept for a trusted peer");
    assert!(pai.contains("+8610888"), "{pai}");
    assert_eq!(ok.header(&Hdr::named("Privacy")).as_deref(), Some("id"));
}

/// An identity UPDATE listing hundreds of identities: the call keeps the two that go on
/// (RFC 3325 §9.1), not the whole list until the answer.
#[test]
fn an_identity_update_keeps_only_the_identities_that_go_on() {
    let (mut h, inv) = identity_updated();
    let many: Vec<String> = (0..300)
        .map(|i| format!("<sip:+86109{i:05}@10.9.9.9;user=phone>"))
        .collect();
    let pai: String = (many.chunks(100))
        .map(|c| format!("P-Asserted-Identity: {}\r\n", c.join(", ")))
        .collect();
    h.recv(CARRIER_A, &identity_update(&inv, 11, "z9hG4bKcid3", &pai));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    let kept = |h: &H| {
        let call = h.core.calls.values().next().expect("the call");
        call.identity.as_ref().map(|i| i.1.clone())
    };
    let kept = kept(&h).expect("an identity kept");
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].contains("+8610900000"), "{kept:?}");
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let pai = ok.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(
        pai.contains("+8610900000") && !pai.contains("+8610900002"),
        "{pai}"
    );
}

#[test]
fn a_settled_call_drops_the_callers_invite_and_still_works() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let template_uri = |h: &H| h.core.calls.values().next().map(|c| c.template().uri());
    assert_eq!(template_uri(&h).as_deref(), Some("sip:+8610123@127.0.0.1"));
    // 64·T1 after the answer the setup is over: its INVITE is no longer kept.
    let route_left = |h: &H| h.core.calls.values().next().map(|c| c.route.targets.len());
    assert_eq!(route_left(&h), Some(2), "carrier-a, then carrier-b");
    h.advance(Duration::from_secs(33));
    assert_eq!(template_uri(&h).as_deref(), Some("sip:settled.invalid"));
    assert_eq!(route_left(&h), Some(0), "no peer of the route is kept");
    // Re-INVITE and BYE work as before.
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKs2", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &re,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(h.statuses(PHONE).contains(&200));
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKs2a", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    h.recv(PHONE, &phone_bye(&tag, 3, "z9hG4bKs3"));
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerBye);
    assert_eq!(h.cdrs[0].to, "+8610123");
}

#[test]
fn a_settled_call_keeps_no_ack_bytes_and_acks_a_late_2xx_from_the_dialog() {
    let mut h = H::new();
    let (inv, _ok) = answered_call(&mut h);
    // The ACK the carrier got for its 200, as the call keeps it.
    let first = h
        .core
        .calls
        .values()
        .next()
        .and_then(|c| c.acks[Side::B].as_ref()?.wire.clone())
        .map(|w| parse_datagram(w, 65535).unwrap());
    let Some(Message::Request(first)) = first else {
        panic!("no ACK kept for the carrier's 200");
    };
    assert_eq!(first.method(), Method::Ack);
    let kept = |h: &H| {
        h.core
            .calls
            .values()
            .next()
            .map(|c| c.acks[Side::B].as_ref().map(|a| (a.cseq, a.wire.is_some())))
    };
    let cseq = first.cseq().map(|c| c.0);
    assert_eq!(
        kept(&h).flatten().map(|k| (Some(k.0), k.1)),
        Some((cseq, true))
    );
    h.advance(Duration::from_secs(33));
    // Settled: which INVITE was ACKed is kept, the datagram is not.
    assert_eq!(
        kept(&h).flatten().map(|k| (Some(k.0), k.1)),
        Some((cseq, false))
    );
    // A carrier with a long T1 still retransmits its 2xx: it gets the same ACK again.
    let late = reply(
        &inv,
        200,
        "carrier1",
        &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
        Some(SDP),
    );
    h.recv_msg(CARRIER_A, late);
    let again = h.take_requests(CARRIER_A, Method::Ack);
    assert_eq!(again.len(), 1);
    for hdr in [Hdr::CALL_ID, Hdr::FROM, Hdr::TO, Hdr::CSEQ] {
        assert_eq!(again[0].header(&hdr), first.header(&hdr), "{hdr:?}");
    }
    assert_eq!(again[0].uri(), first.uri());
    assert!(h.take(PHONE).is_empty(), "the phone hears nothing of it");
}

#[test]
fn a_callees_retry_after_reaches_the_caller() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("ra-1", "z9hG4bKra1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 486, "c1", &[(Hdr::RETRY_AFTER, "120")], None),
    );
    let r = h.response_with(PHONE, 486, "486 to the phone");
    assert_eq!(r.header(&Hdr::RETRY_AFTER).as_deref(), Some("120"));
}

#[test]
fn once_the_load_is_gone_the_call_layers_tables_are_given_back() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKbye"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    assert_idle(&mut h);
    // Small tables are kept while calls come and go; with none left they go too (made in
    // the calls' heap, they would hold its last pages).
    assert!(h.core.calls.capacity() > 0);
    h.core.release_idle();
    assert_eq!(h.core.calls.capacity(), 0);
    assert_eq!(h.core.env.owners.capacity(), 0);
}

/// A request from the fork the gateway hung up (same Call-ID and our tag, its own tag) is
/// not the callee's: 481, and the call goes on.
#[test]
fn a_request_from_a_released_fork_is_not_the_callees() {
    let mut h = H::new();
    let (inv, _ok) = answered_call(&mut h);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "fork2",
            &[(Hdr::CONTACT, "<sip:fork2@127.0.0.3>")],
            Some(SDP),
        ),
    );
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "fork2", 1, "z9hG4bKf2bye", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.cdrs.is_empty());
    assert_eq!(h.core.stats().calls, 1);
}

/// The carrier's 2xx to a relayed re-INVITE, sent again after the call is gone (our ACK
/// was lost), still gets its ACK. Before, only an initial INVITE's 2xx did; the carrier
/// retransmitted for 32 s.
#[test]
fn a_relayed_reinvites_2xx_after_the_call_is_gone_is_acked() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let moved = SDP.replace("192.0.2.10", "192.0.2.11");
    h.recv(
        PHONE,
        &from_phone("INVITE", &tag, 2, "z9hG4bKgone1", &moved),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv(PHONE, &phone_bye(&tag, 3, "z9hG4bKgone2"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    let answer = reply(
        &re,
        200,
        "carrier1",
        &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
        Some(SDP),
    );
    h.recv_msg(CARRIER_A, answer.clone());
    h.advance(Duration::from_secs(5));
    assert_eq!(h.core.stats().calls, 0, "the call is gone");
    h.take(CARRIER_A);
    h.recv_msg(CARRIER_A, answer);
    let acks = h.take_requests(CARRIER_A, Method::Ack);
    assert_eq!(acks.len(), 1, "the 2xx sent again is ACKed");
    assert_eq!(acks[0].cseq().map(|c| c.0), re.cseq().map(|c| c.0));
}

/// The carrier answers a relayed re-INVITE with 481, or never answers it: its dialog is gone
/// (RFC 3261 §12.2.1.2), and the call is released, not left up with one leg dead.
#[test]
fn a_481_or_no_answer_to_a_relayed_reinvite_releases_the_call() {
    // (A 408 from the far end as well: before, it was passed on and the call stayed up,
    // the carrier's leg held until a timer ended it.)
    for answer in [Some(481), Some(408), None] {
        let mut h = H::new();
        let (_inv, ok) = answered_call(&mut h);
        let tag = ok.to_tag().unwrap();
        let moved = SDP.replace("192.0.2.10", "192.0.2.11");
        h.recv(
            PHONE,
            &from_phone("INVITE", &tag, 2, "z9hG4bKlost1", &moved),
        );
        let re = h.one_request(CARRIER_A, Method::Invite);
        match answer {
            Some(status) => h.recv_msg(CARRIER_A, reply(&re, status, "carrier1", &[], None)),
            None => h.advance(Duration::from_secs(40)),
        }
        let to_phone = h.take(PHONE);
        assert!(
            to_phone
                .iter()
                .any(|m| matches!(m, Message::Request(r) if r.method() == Method::Bye)),
            "{answer:?}: {to_phone:?}"
        );
        assert_eq!(h.cdrs.len(), 1, "{answer:?}");
        assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
        // Which leg lost its dialog: the callee, where the caller's re-INVITE went.
        assert!(
            h.cdrs[0].events.contains(&"dialog_gone_callee".to_string()),
            "{answer:?}: {:?}",
            h.cdrs[0].events
        );
    }
}

/// An UPDATE carried as a re-INVITE toward a phone that rings it: the carrier, which sent
/// an UPDATE, gets no 180 (a non-INVITE request's only provisional is a 100, RFC 4320).
#[test]
fn an_update_carried_as_a_reinvite_gets_no_provisional_and_an_answer_in_time() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text(
            "call-1@127.0.0.2",
            "z9hG4bKupd9",
            "+8610123",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKack9", ""));
    h.take(CARRIER_A);
    let offer = SDP.replace("o=- 1 1 ", "o=- 1 2 ");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "c1", 5, "z9hG4bKcu9", &offer),
    );
    let re = h.one_request(PHONE, Method::Invite);
    h.recv_msg(PHONE, reply(&re, 180, "alice1", &[], None));
    assert!(
        h.take_responses(CARRIER_A)
            .iter()
            .all(|r| r.status() == 100)
    );
    // Ringing on, the INVITE is cancelled after 16·T1 (its 180s do not restart that), so
    // the carrier's UPDATE is answered before its Timer F (64·T1) gives it up. Before, Timer
    // C (181 s) let the UPDATE die unanswered and the phone be put in a new session later.
    h.advance(Duration::from_millis(7_000));
    h.recv_msg(PHONE, reply(&re, 180, "alice1", &[], None));
    h.advance(Duration::from_millis(1_100));
    let cancel = h.one_request(PHONE, Method::Cancel);
    assert_eq!(cancel.cseq().unwrap().0, re.cseq().unwrap().0);
    h.recv_msg(PHONE, reply(&re, 487, "alice1", &[], None));
    let finals: Vec<u16> = h
        .statuses(CARRIER_A)
        .into_iter()
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals.len(), 1, "the UPDATE answered: {finals:?}");
    assert!(finals[0] >= 400, "{finals:?}");
    assert!(h.cdrs.is_empty(), "the call goes on in its session");
}

/// The callee's 2xx again after the caller hung up (it was in flight): its ACK again, no
/// second BYE, no late answer. Before, it was taken for another fork's answer: ACK and a
/// second BYE, counted as a late answer.
#[test]
fn the_answered_2xx_again_after_the_call_ended_gets_its_ack_only() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.take(CARRIER_A);
    h.recv(PHONE, &from_phone("BYE", &tag, 2, "z9hG4bKbe2", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    h.take(CARRIER_A);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let sent = h.requests_to(CARRIER_A);
    assert_eq!(
        sent.iter().map(|r| r.method()).collect::<Vec<_>>(),
        vec![Method::Ack]
    );
    assert!(h.late_answers().is_empty());
}

/// The caller hangs up while the gateway's 2xx to the carrier's re-INVITE waits for the
/// carrier's ACK: the caller's 2xx to that re-INVITE is ACKed at once and the carrier is
/// sent its 2xx no more. Before, the BYE settled only a 2xx toward its own sender: the 2xx
/// went on to the carrier after its BYE, and the caller's waited for an ACK.
#[test]
fn a_bye_settles_a_2xx_waiting_on_the_other_leg() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKak1", ""));
    h.take(CARRIER_A);
    let offer = SDP.replace("o=- 1 1 ", "o=- 1 2 ");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 2, "z9hG4bKri2", &offer),
    );
    let re = h.one_request(PHONE, Method::Invite);
    h.recv_msg(
        PHONE,
        reply(
            &re,
            200,
            &tag,
            &[(Hdr::CONTACT, "<sip:1000@127.0.0.2>")],
            Some(SDP),
        ),
    );
    assert!(
        h.take_responses(CARRIER_A)
            .iter()
            .any(|r| r.status() == 200)
    );
    assert!(
        h.take_requests(PHONE, Method::Ack).is_empty(),
        "waits for the carrier's"
    );
    h.recv(PHONE, &from_phone("BYE", &tag, 3, "z9hG4bKbe3", ""));
    let acks = h.take_requests(PHONE, Method::Ack);
    assert_eq!(acks.len(), 1, "the caller's 2xx is ACKed");
    assert_eq!(acks[0].cseq().unwrap().0, re.cseq().unwrap().0);
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    h.take(CARRIER_A);
    h.advance(Duration::from_secs(5));
    assert!(
        h.take_responses(CARRIER_A)
            .iter()
            .all(|r| r.status() != 200),
        "no 2xx after the BYE"
    );
}

/// The callee hangs up before the caller has ACKed the call's 2xx (ours may have been
/// lost): the callee's 2xx is ACKed at once, ours to the caller is still sent until its ACK
/// comes (RFC 3261 §13.3.1.4), and the caller's BYE waits for that ACK (§15). Before, the
/// callee's 2xx went unACKed (it came again and was hung up as a stray), and the caller got
/// its BYE before its ACK.
#[test]
fn a_bye_before_the_callers_ack_leaves_our_2xx_going() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKba1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    h.take(PHONE);
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "carrier1", 2, "z9hG4bKcb2", ""),
    );
    assert_eq!(
        h.take_requests(CARRIER_A, Method::Ack).len(),
        1,
        "the callee's 2xx"
    );
    assert!(
        h.take_requests(PHONE, Method::Bye).is_empty(),
        "not before its ACK"
    );
    h.take(PHONE);
    h.advance(Duration::from_secs(2));
    assert!(
        h.take_responses(PHONE).iter().any(|r| r.status() == 200),
        "our 2xx to the caller goes on"
    );
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKbaa", ""));
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
    assert!(h.take_requests(CARRIER_A, Method::Ack).is_empty());
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CalleeBye);

    // The caller hangs up too, its BYE crossing ours: no 2xx to it again, no BYE.
    let (mut h, tag) = callee_hangs_up_before_the_ack();
    h.recv(PHONE, &from_phone("BYE", &tag, 2, "z9hG4bKbab", ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.advance(Duration::from_secs(40));
    assert!(
        h.take(PHONE)
            .iter()
            .all(|m| !matches!(m, Message::Response(r) if r.status() == 200))
    );
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    // The gateway stopping meanwhile: the held BYE goes at once.
    let (mut h, _) = callee_hangs_up_before_the_ack();
    h.input(Input::HangUpAll);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
}

/// A call whose callee hung up before the caller's ACK of the 2xx (the caller's BYE held);
/// the caller's dialog tag.
fn callee_hangs_up_before_the_ack() -> (H, String) {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKbc1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "carrier1", 2, "z9hG4bKcb3", ""),
    );
    h.take(PHONE);
    h.take(CARRIER_A);
    (h, ok.to_tag().unwrap())
}

/// A BYE with `Max-Forwards: 0` ends the call: the gateway is that BYE's UAS, not a proxy
/// forwarding it (RFC 3261 §16.3). Before, it got 483 and the other leg stayed up while
/// the phone took the call as ended.
#[test]
fn a_bye_out_of_hops_still_ends_the_call() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &phone_bye(&tag, 2, "z9hG4bKmf0").replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(h.statuses(PHONE), [200]);
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.header(&Hdr::MAX_FORWARDS).as_deref(), Some("70"));
    assert_eq!(h.cdrs.len(), 1);
    // Other requests out of hops are still refused.
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone("INFO", &tag, 2, "z9hG4bKmf0i", "")
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(h.statuses(PHONE), [483]);
}

/// The carrier's dialog goes through a strict router (its Record-Route without `lr`, RFC
/// 2543): our BYE names that router as its Request-URI and carries the carrier's Contact as
/// the last Route (RFC 3261 §12.2.1.1). Before, the Request-URI was the Contact and the
/// strict router, taking the Request-URI for itself, misrouted or refused it.
#[test]
fn requests_through_a_strict_router_name_it_as_their_request_uri() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKsr1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "carrier1",
            &[
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
                (Hdr::RECORD_ROUTE, "<sip:127.0.0.3:5070>"),
            ],
            Some(SDP),
        ),
    );
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKsr1a", ""));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.uri(), "sip:127.0.0.3:5070");
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKsr1b"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.uri(), "sip:127.0.0.3:5070");
    assert_eq!(bye.header_lines(&Hdr::ROUTE), ["<sip:c@127.0.0.3>"]);
}

/// The carrier's re-INVITE is answered by the phone, and before the carrier ACKs that 2xx
/// (the gateway ACKs the phone when it does) the carrier's UPDATE offer for the phone, which
/// takes no UPDATE, would go as a re-INVITE: it gets 491 instead. Before, the phone got a
/// new INVITE before the ACK of its last 2xx (RFC 3261 §14.1), which stacks refuse.
#[test]
fn no_invite_goes_to_a_leg_whose_last_2xx_waits_for_its_ack() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text(
            "call-1@127.0.0.2",
            "z9hG4bKupd8",
            "+8610123",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKack8", ""));
    h.take(CARRIER_A);
    let offer = SDP.replace("o=- 1 1 ", "o=- 1 2 ");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "c1", 5, "z9hG4bKcr8", &offer),
    );
    let re = h.one_request(PHONE, Method::Invite);
    h.recv_msg(PHONE, reply(&re, 200, "alice1", &[], Some(SDP)));
    assert_eq!(h.statuses(CARRIER_A), vec![100, 200]);
    assert!(
        h.take_requests(PHONE, Method::Ack).is_empty(),
        "ACKed with the carrier's"
    );
    let offer = SDP.replace("o=- 1 1 ", "o=- 1 3 ");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "c1", 6, "z9hG4bKcu8", &offer),
    );
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
    assert_eq!(h.statuses(CARRIER_A), vec![491]);
}

/// A second UPDATE before the first has its final answer gets 500 with Retry-After (RFC 3311
/// §5.2), offer or not; once the first is answered, the next goes on. Before, both were
/// relayed, and the far peer refused one of them.
#[test]
fn a_second_update_before_the_first_is_answered_gets_500_with_retry_after() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("UPDATE", &tag, 2, "z9hG4bKup1", ""));
    let up = h.one_request(CARRIER_A, Method::Update);
    h.recv(PHONE, &from_phone("UPDATE", &tag, 3, "z9hG4bKup2", ""));
    let refused = h.response_with(PHONE, 500, "the second UPDATE's 500");
    assert!(refused.header(&Hdr::RETRY_AFTER).is_some());
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    h.recv_msg(CARRIER_A, reply(&up, 200, "carrier1", &[], None));
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.recv(PHONE, &from_phone("UPDATE", &tag, 4, "z9hG4bKup3", ""));
    h.one_request(CARRIER_A, Method::Update);
}

/// A far peer that answers a relayed UPDATE 405 (its `Allow` said nothing, or listed UPDATE)
/// takes UPDATE no more: the next offer toward it goes as a re-INVITE. Before, every hold
/// and resume by UPDATE got the same 405.
#[test]
fn a_peer_that_refuses_a_relayed_update_is_sent_the_next_offer_as_a_reinvite() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let held = SDP.replace(
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",
    );
    h.recv(PHONE, &from_phone("UPDATE", &tag, 2, "z9hG4bKu405a", &held));
    let up = h.one_request(CARRIER_A, Method::Update);
    h.recv_msg(CARRIER_A, reply(&up, 405, "carrier1", &[], None));
    assert_eq!(h.failures(PHONE), vec![405]);
    h.recv(PHONE, &from_phone("UPDATE", &tag, 3, "z9hG4bKu405b", &held));
    let sent = h.requests_to(CARRIER_A);
    let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
    assert_eq!(methods, vec![Method::Invite], "the offer, as a re-INVITE");
    let re = &sent[0];
    assert!(!re.body().is_empty(), "the offer, as a re-INVITE");
}

/// A callee that asks for user-level privacy (`Privacy: user`) in its answer: its
/// `Organization` and `Subject` do not reach the phone (outside the trust domain).
#[test]
fn a_callees_user_privacy_keeps_its_organization_from_the_caller() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("up1", "z9hG4bKup1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let heads = [
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::named("Organization"), "Carrier Customer Ltd"),
        (Hdr::named("Privacy"), "user"),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &heads, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "answered");
    assert!(!ok.has_header(&Hdr::named("Organization")), "{ok:?}");
}

/// Six INFOs waiting on the far peer take every relay slot an INFO may; the seventh gets
/// `500 Retry-After: 1`, but a re-INVITE (a hold, a session refresh) still goes: two of the
/// eight slots are kept for what changes or refreshes the session. Before, a burst of INFOs
/// could have a hold refused.
#[test]
fn a_burst_of_infos_leaves_room_for_a_reinvite() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    for cseq in 2..=7 {
        let branch = format!("z9hG4bKib{cseq}");
        h.recv(PHONE, &from_phone("INFO", &tag, cseq, &branch, ""));
    }
    assert_eq!(h.take_requests(CARRIER_A, Method::Info).len(), 6);
    h.recv(PHONE, &from_phone("INFO", &tag, 8, "z9hG4bKib8", ""));
    let refused = h.response_with(PHONE, 500, "no slot for a seventh");
    assert_eq!(refused.header(&Hdr::RETRY_AFTER).as_deref(), Some("1"));
    let hold = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
    h.recv(PHONE, &from_phone("INVITE", &tag, 9, "z9hG4bKih9", &hold));
    assert_eq!(
        h.take_requests(CARRIER_A, Method::Invite).len(),
        1,
        "the hold goes"
    );
}

/// A phone that sends INFOs as fast as the carrier answers them gets 20 relayed a second;
/// the rest get `500` + `Retry-After: 1`, nothing sent on; the next second it may relay
/// again, and a re-INVITE goes through whatever the count. Before, every one was relayed.
#[test]
fn a_call_relays_at_most_twenty_infos_a_second() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    twenty_of_twenty_five_relayed(&mut h, &tag, Method::Info);
    h.recv(PHONE, &from_phone("INVITE", &tag, 40, "z9hG4bKflre", SDP));
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
    h.advance(Duration::from_secs(1));
    h.recv(PHONE, &from_phone("INFO", &tag, 41, "z9hG4bKfl41", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Info).len(), 1);
}

/// An INFO whose body is too long for a datagram that arrives whole (past 4 KiB) is not
/// relayed to a leg over UDP: `513`, nothing sent on. A short one goes. Before, it went as
/// IP fragments, resent for 32 s where a firewall dropped them, and the call was then
/// released as if the carrier had gone.
#[test]
fn a_long_info_is_not_relayed_over_udp() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let info = |cseq: u32, branch: &str, len: usize| {
        let body = "x".repeat(len);
        from_phone("INFO", &tag, cseq, branch, "").replace(
            "Content-Length: 0\r\n",
            &format!("Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n"),
        ) + &body
    };
    h.recv(PHONE, &info(2, "z9hG4bKbig", 5000));
    assert_eq!(h.statuses(PHONE), vec![513]);
    assert!(h.take_requests(CARRIER_A, Method::Info).is_empty());
    h.recv(PHONE, &info(3, "z9hG4bKsmall", 300));
    assert_eq!(h.take_requests(CARRIER_A, Method::Info).len(), 1);
    assert!(h.cdrs.is_empty());
}

/// UPDATEs (an identity update, no SDP) sent as fast as the carrier answers them are held
/// to 20 relayed a second too, at a count of their own. Before, re-INVITEs and UPDATEs were
/// paced by nothing but one at a time.
#[test]
fn a_call_relays_at_most_twenty_updates_a_second() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    twenty_of_twenty_five_relayed(&mut h, &tag, Method::Update);
}

/// The phone sends 25 `method`s (no body) in call `tag`, each as the carrier answered the
/// last: 20 are relayed, 5 get `500`.
fn twenty_of_twenty_five_relayed(h: &mut H, tag: &str, method: Method) {
    let mut relayed = 0;
    for n in 0..25u32 {
        let branch = format!("z9hG4bKfl{n}");
        h.recv(PHONE, &from_phone(method.as_str(), tag, 2 + n, &branch, ""));
        if let Some(sent) = h.take_requests(CARRIER_A, method.clone()).pop() {
            relayed += 1;
            h.recv_msg(CARRIER_A, reply(&sent, 200, "carrier1", &[], None));
        }
    }
    assert_eq!(relayed, 20, "{method:?}");
    let statuses = h.statuses(PHONE);
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        5,
        "{statuses:?}"
    );
}

/// A far peer's 405 to a relayed INFO reaches the phone with an `Allow` that leaves INFO out
/// (and UPDATE, which the carrier's own Allow left out). Before, it carried the gateway's
/// whole list: a 405 to an INFO that listed INFO, and the phone sent its next one the same
/// way.
#[test]
fn a_relayed_405_does_not_list_the_refused_method() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKi405", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    let allow = [(Hdr::ALLOW, "INVITE, ACK, BYE, CANCEL, OPTIONS")];
    h.recv_msg(CARRIER_A, reply(&info, 405, "carrier1", &allow, None));
    let got = h.take_responses(PHONE);
    assert_eq!(got.len(), 1);
    let lines = got[0].header_lines(&Hdr::ALLOW);
    assert_eq!(
        lines,
        ["INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK"],
        "{:?}",
        got[0]
    );
}

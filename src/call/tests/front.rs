//! Behind a SIP front (`[sip] front`, a Kamailio dispatcher): peers are told apart by the
//! front's X-Trunkgate-Source, believed from the front only; every request toward a peer goes
//! to the front, naming its destination (the peer's address, within a dialog too); OPTIONS says 503 while
//! draining, so the front stops sending new calls.

use super::*;

const FRONT: &str = "127.0.0.10:5060";

fn behind_front() -> H {
    let mut cfg = config();
    cfg.front = Some(Target::udp(addr(FRONT)));
    H::with(cfg)
}

/// Where `r` tells the front to send it (`X-Trunkgate-Peer`), if it does.
fn destination(r: &Request) -> Option<String> {
    r.header(&Hdr::named(super::super::cx::PEER_HEADER))
}

/// The front's additions to a request it passes on: the source, and its Record-Route on an
/// initial INVITE.
fn via_front(text: &str, from: &str) -> String {
    let to_tagged = text
        .lines()
        .any(|l| l.starts_with("To:") && l.contains(";tag="));
    let rr = if text.starts_with("INVITE ") && !to_tagged {
        "Record-Route: <sip:127.0.0.10:5060;lr>\r\n"
    } else {
        ""
    };
    text.replacen(
        "Max-Forwards:",
        &format!("X-Trunkgate-Source: {from}\r\n{rr}Max-Forwards:"),
        1,
    )
}

/// The PBX calls +8610123 through the front (`call_id`, its INVITE's `branch`): the harness
/// and the INVITE toward carrier-a.
fn pbx_calls_via_front(call_id: &str, branch: &str) -> (H, Request) {
    let mut h = behind_front();
    let invite = invite_text(call_id, branch, "+8610123", "");
    h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    let inv = h.one_request(FRONT, Method::Invite);
    (h, inv)
}

/// carrier-a answers `inv` (through the front, record-routed by it): the 200 the caller gets.
fn carrier_answers_via_front(h: &mut H, inv: &Request) -> Response {
    h.recv_msg(
        FRONT,
        reply(
            inv,
            200,
            "c1",
            &[
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
                (Hdr::RECORD_ROUTE, "<sip:127.0.0.10:5060;lr>"),
            ],
            Some(SDP),
        ),
    );
    h.response_with(FRONT, 200, "the 200 goes back through the front")
}

/// Call f-1 from the PBX, answered by carrier-a and ACKed by the PBX, all through the front:
/// the INVITE toward the carrier.
fn answered_via_front() -> (H, Request) {
    let (mut h, inv) = pbx_calls_via_front("f-1", "z9hG4bKf1");
    let tag = carrier_answers_via_front(&mut h, &inv).to_tag().unwrap();
    h.recv(
        FRONT,
        &via_front(&in_call("ACK", &tag, 1, "z9hG4bKfa"), "127.0.0.2:5060"),
    );
    (h, inv)
}

/// carrier-a (tag `c1`) hangs up the call `inv` set up, through the front: the BYE the
/// gateway sends toward the caller.
fn carrier_hangs_up_via_front(h: &mut H, inv: &Request) -> Request {
    let bye_from_carrier = msgs::in_dialog(
        "BYE",
        "sip:127.0.0.1:5060",
        &format!("{};tag=c1", inv.header(&Hdr::TO).unwrap()),
        &inv.header(&Hdr::FROM).unwrap(),
        &inv.call_id().unwrap(),
        1,
        "z9hG4bKcb",
        "127.0.0.3:5060",
        "",
    );
    h.recv(FRONT, &via_front(&bye_from_carrier, "127.0.0.3:5060"));
    h.one_request(FRONT, Method::Bye)
}

/// The phone's request in call f-1 (our To tag `tag`).
fn in_call(method: &str, tag: &str, cseq: u32, branch: &str) -> String {
    msgs::in_dialog(
        method,
        "sip:127.0.0.1",
        phone_from(),
        &phone_to(tag),
        "f-1",
        cseq,
        branch,
        "127.0.0.2:5060",
        "",
    )
}

/// An OPTIONS through the front is answered for the peer the front names: its profile's
/// extensions in `Supported`. Before, the front's own address, no peer's, was looked up
/// and every peer behind a front was told of none.
#[test]
fn an_options_through_the_front_is_answered_for_the_peer_it_names() {
    let mut h = behind_front();
    let options = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bKfo1\r\n\
        Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKpo1\r\nMax-Forwards: 69\r\n\
        From: <sip:ping@127.0.0.3>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: fopt-1\r\n\
        CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.recv(FRONT, &via_front(options, "127.0.0.3:5060"));
    let r = h.take_responses(FRONT).remove(0);
    assert_eq!(r.status(), 200);
    let supported = r.header_tokens(&Hdr::SUPPORTED);
    assert!(supported.iter().any(|t| t == "100rel"), "{supported:?}");
}

#[test]
fn calls_through_the_front_are_the_peer_it_names_and_leave_through_it() {
    let mut h = behind_front();
    let invite = invite_text("f-1", "z9hG4bKf1", "+8610123", "");
    h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    // Routed as the PBX's call, to carrier-a, through the front (the 100 goes there too).
    let sent = h.take(FRONT);
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Response(r) if r.status() == 100))
    );
    let inv = sent
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method() == Method::Invite => Some(r.clone()),
            _ => None,
        })
        .expect("the INVITE toward carrier-a");
    assert_eq!(
        destination(&inv).as_deref(),
        Some("127.0.0.3:5060;transport=udp")
    );
    // The PBX's address, named by the front, never goes on.
    assert!(inv.header(&Hdr::named("X-Trunkgate-Source")).is_none());
    assert!(!String::from_utf8_lossy(&inv.to_bytes()).contains("127.0.0.2"));
    assert!(
        h.take(CARRIER_A).is_empty(),
        "nothing goes to the carrier directly"
    );
    let ok = carrier_answers_via_front(&mut h, &inv);
    // It carries the front's Record-Route (RFC 3261 §12.1.1): the caller's requests within
    // the dialog come back through the front.
    assert_eq!(
        ok.header(&Hdr::RECORD_ROUTE).as_deref(),
        Some("<sip:127.0.0.10:5060;lr>")
    );
    // The caller's BYE (through the front) reaches the callee through the front, with the
    // Route set, and names the callee's address for the front to send it to (not where the
    // callee's Contact would lead).
    let tag = ok.to_tag().unwrap();
    h.recv(
        FRONT,
        &via_front(&in_call("ACK", &tag, 1, "z9hG4bKfa"), "127.0.0.2:5060"),
    );
    let ack = h.one_request(FRONT, Method::Ack);
    assert!(ack.header(&Hdr::ROUTE).is_some());
    assert_eq!(
        destination(&ack).as_deref(),
        Some("127.0.0.3:5060;transport=udp")
    );
    h.recv(
        FRONT,
        &via_front(&in_call("BYE", &tag, 2, "z9hG4bKfb"), "127.0.0.2:5060"),
    );
    let bye = h.one_request(FRONT, Method::Bye);
    assert!(bye.header(&Hdr::ROUTE).is_some());
    assert_eq!(
        destination(&bye).as_deref(),
        Some("127.0.0.3:5060;transport=udp")
    );
    assert_eq!(h.cdrs[0].ingress_peer, "pbx");
}

#[test]
fn a_bye_toward_the_caller_follows_the_fronts_route() {
    let (mut h, inv) = answered_via_front();
    h.take(FRONT);
    // The carrier hangs up (through the front): the caller's BYE goes to the front with the
    // Route the front put in the caller's INVITE, to the caller's Contact, and tells the
    // front the address the caller's INVITE came from (the front's stamp on it): a Contact
    // names anyone its writer likes, and the front would relay there from its own address.
    let bye = carrier_hangs_up_via_front(&mut h, &inv);
    assert_eq!(
        bye.header(&Hdr::ROUTE).as_deref(),
        Some("<sip:127.0.0.10:5060;lr>")
    );
    assert_eq!(bye.uri(), "sip:1000@127.0.0.2:5060");
    assert_eq!(
        destination(&bye).as_deref(),
        Some("127.0.0.2:5060;transport=udp")
    );
}

#[test]
fn only_the_front_is_believed_and_its_own_pings_are_answered() {
    let mut h = behind_front();
    // A carrier claiming to be the PBX is still the carrier (carrier-a's calls route to the
    // PBX, so the call goes to the PBX as carrier-a's).
    let invite = invite_text("f-2", "z9hG4bKf2", "+8610123", "").replace(
        "Via: SIP/2.0/UDP 127.0.0.2:5060",
        "Via: SIP/2.0/UDP 127.0.0.3:5060",
    );
    h.recv(CARRIER_A, &via_front(&invite, "127.0.0.2:5060"));
    let inv = h.one_request(FRONT, Method::Invite);
    assert_eq!(
        destination(&inv).as_deref(),
        Some("127.0.0.2:5060;transport=udp"),
        "routed as carrier-a's call, to the PBX"
    );
    // The front's INVITE that names nobody known: refused, never routed.
    let mut h = behind_front();
    h.recv(
        FRONT,
        &via_front(
            &invite_text("f-3", "z9hG4bKf3", "+8610123", ""),
            "192.0.2.99:5060",
        ),
    );
    assert!(h.take(FRONT).is_empty(), "an unknown origin is a stranger");
    // Its OPTIONS probe: 200, and 503 once draining.
    let options = |branch: &str| {
        msgs::in_dialog(
            "OPTIONS",
            "sip:127.0.0.1",
            "<sip:ping@127.0.0.10>;tag=p",
            "<sip:127.0.0.1>",
            &format!("ping-{branch}"),
            1,
            branch,
            "127.0.0.10:5060",
            "",
        )
    };
    h.recv(FRONT, &options("z9hG4bKo1"));
    assert_eq!(h.statuses(FRONT), vec![200]);
    // Another socket on the front's host (another process there; a port of its own) is no
    // front: its stamp naming the PBX is not believed, and its INVITE is a stranger's.
    // Before, the front was known by its IP alone.
    let beside = "127.0.0.10:5099";
    h.recv(
        beside,
        &via_front(
            &invite_text("f-4", "z9hG4bKf4", "+8610123", ""),
            "127.0.0.2:5060",
        ),
    );
    assert!(h.take(FRONT).is_empty(), "not routed as the PBX's call");
    h.input(Input::Drain);
    h.recv(FRONT, &options("z9hG4bKo2"));
    assert_eq!(h.statuses(FRONT), vec![503]);
}

#[test]
fn a_2xx_again_through_the_front_is_heard_only_from_the_leg_peer_it_names() {
    let (mut h, inv) = answered_via_front();
    assert_eq!(h.one_request(FRONT, Method::Ack).cseq().unwrap().0, 1);
    // Past the INVITE transaction's life (RFC 6026 Timer M): a 2xx now is a stray one.
    h.advance(Duration::from_secs(33));
    h.take(FRONT);
    let again = |from: Option<&str>| {
        let extra: Vec<(Hdr, &str)> = [
            (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
            (Hdr::RECORD_ROUTE, "<sip:127.0.0.10:5060;lr>"),
        ]
        .into_iter()
        .chain(from.map(|f| (Hdr::named("X-Trunkgate-Source"), f)))
        .collect();
        reply(&inv, 200, "c1", &extra, Some(SDP))
    };
    // The carrier's 2xx again, named by the front as the carrier's: our ACK again.
    h.recv_msg(FRONT, again(Some("127.0.0.3:5060")));
    assert_eq!(h.one_request(FRONT, Method::Ack).cseq().unwrap().0, 1);
    // The same 2xx, named as another peer's (the PBX on the other leg): nothing.
    h.recv_msg(FRONT, again(Some("127.0.0.2:5060")));
    assert!(
        h.take(FRONT).is_empty(),
        "a 2xx from another peer is dropped"
    );
    // A front that names no source is taken at its word; one that names it unreadably is
    // not (the IPv6 form is `[ip]:port`).
    h.recv_msg(FRONT, again(None));
    assert_eq!(h.one_request(FRONT, Method::Ack).cseq().unwrap().0, 1);
    for unreadable in ["2001:db8::1:5060", "127.0.0.3", "nonsense"] {
        h.recv_msg(FRONT, again(Some(unreadable)));
        assert!(h.take(FRONT).is_empty(), "{unreadable}");
    }
    // A 2xx for no call, named as a stranger's: no ACK, no BYE.
    let Message::Response(mut stray) = again(Some("192.0.2.66:5060")) else {
        unreachable!()
    };
    stray.set_header(&Hdr::CALL_ID, "nobody@127.0.0.1").unwrap();
    h.recv_msg(FRONT, Message::Response(stray));
    assert!(
        h.take(FRONT).is_empty(),
        "a stranger's 2xx makes us send nothing"
    );
    assert!(h.cdrs.is_empty(), "the call goes on");
}

/// Behind the front, a caller's SDP is judged against where its signalling really comes
/// from (the front's X-Trunkgate-Source), not the front's address: a phone behind NAT
/// (public source, private SDP, `latch = "any"`) is sent no RTP before its own packets
/// come. Before, the front's (private or loopback) address made its SDP look reachable.
#[test]
fn a_caller_behind_nat_is_judged_by_its_source_through_the_front() {
    let public: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let mut cfg = config_with(|n, p| {
        if n == "pbx" {
            p.anchor = true;
            p.latch = crate::media::Latch::Any;
            p.matches = vec![public.into()];
        }
    });
    cfg.front = Some(Target::udp(addr(FRONT)));
    let mut h = H::with(cfg);
    let natted =
        invite_text("f-n", "z9hG4bKfn", "+8610123", "").replace("192.0.2.10", "192.168.1.20");
    h.recv(FRONT, &via_front(&natted, "203.0.113.7:5060"));
    let pairs = h.relay_pairs();
    assert!(!pairs.is_empty(), "the relay is planned");
    assert_eq!(
        pairs[0].a_remote,
        Some("192.168.1.20:4000".parse().unwrap())
    );
    assert!(pairs[0].a_wait_for_source);
}

/// A 2xx that the callee failed over from sends late, through the front, is counted for that
/// callee (`LateAnswer`). Before, its peer was looked up by where its INVITE went, the
/// front, which no profile may match: it was counted for nobody.
#[test]
fn a_late_answer_through_the_front_is_counted_for_its_callee() {
    let (mut h, inv_a) = pbx_calls_via_front("f-2", "z9hG4bKf2");
    h.recv_msg(FRONT, reply(&inv_a, 503, "ta", &[], None));
    let inv_b = h.one_request(FRONT, Method::Invite);
    assert_ne!(inv_a.call_id(), inv_b.call_id(), "the next callee's INVITE");
    // From another port of carrier-a's host, as the front says.
    let late = reply(
        &inv_a,
        200,
        "late",
        &[
            (Hdr::CONTACT, "<sip:a@127.0.0.3>"),
            (Hdr::named("X-Trunkgate-Source"), "127.0.0.3:5099"),
        ],
        Some(SDP),
    );
    h.recv_msg(FRONT, late);
    let sent = h.take(FRONT);
    let to_peer: Vec<(Method, Option<String>)> = (sent.iter())
        .filter_map(|m| match m {
            Message::Request(r) => Some((r.method(), destination(r))),
            _ => None,
        })
        .collect();
    // Both where its INVITE went (carrier-a's `address`), not the 2xx's source port.
    // Before, the BYE named the port the 2xx came from.
    let at = Some("127.0.0.3:5060;transport=udp".to_string());
    assert_eq!(
        to_peer,
        [(Method::Ack, at.clone()), (Method::Bye, at)],
        "{sent:?}"
    );
    assert_eq!(h.late_answers(), ["carrier-a"]);
}

/// A 2xx for no call through the front gets its ACK and BYE toward the peer the front says
/// sent it (X-Trunkgate-Peer), with no route set, and nothing when the front names no
/// sender. Before, they followed the 2xx's own Record-Route (no X-Trunkgate-Peer with a
/// Route), so a 2xx forged in a carrier's name made the front send them to any host.
#[test]
fn a_2xx_for_no_call_through_the_front_goes_back_to_its_sender_only() {
    let mut h = behind_front();
    let stray = |stamp: Option<&str>| {
        let stamp = stamp.map_or(String::new(), |s| format!("X-Trunkgate-Source: {s}\r\n"));
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnever\r\n\
             Record-Route: <sip:192.0.2.99;lr>\r\n{stamp}\
             From: <sip:1000@127.0.0.1>;tag=ours\r\nTo: <sip:+8610123@ims.example.com>;tag=x\r\n\
             Call-ID: stray@127.0.0.1\r\nCSeq: 7 INVITE\r\nContact: <sip:v@192.0.2.99>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    h.recv(FRONT, &stray(Some("127.0.0.3:5060")));
    let sent = h.requests_to(FRONT);
    let [ack, bye] = &sent[..] else {
        panic!("expected ACK and BYE, got {sent:?}");
    };
    assert_eq!((ack.method(), bye.method()), (Method::Ack, Method::Bye));
    for r in [ack, bye] {
        assert!(r.header(&Hdr::ROUTE).is_none(), "{r:?}");
        assert_eq!(
            destination(r).as_deref(),
            Some("127.0.0.3:5060;transport=udp")
        );
    }
    h.recv(FRONT, &stray(None));
    assert!(h.take(FRONT).is_empty(), "no sender named, nothing sent");
}

/// A front on a dual-stack socket stamps an IPv4 caller as `[::ffff:127.0.0.2]:5060`: that
/// is the PBX (127.0.0.2) for every request of the call. Before, the INVITE was (the peer
/// lookup took the IPv4 form) but the dialog's own checks compared the mapped form: the
/// ACK was dropped and the BYE answered 481.
#[test]
fn a_mapped_stamp_is_the_ipv4_peer_throughout_the_call() {
    let mut h = behind_front();
    let stamp = "[::ffff:127.0.0.2]:5060";
    let invite = invite_text("f-1", "z9hG4bKf1", "+8610123", "");
    h.recv(FRONT, &via_front(&invite, stamp));
    let inv = h.one_request(FRONT, Method::Invite);
    let tag = carrier_answers_via_front(&mut h, &inv).to_tag().unwrap();
    h.recv(
        FRONT,
        &via_front(&in_call("ACK", &tag, 1, "z9hG4bKfa"), stamp),
    );
    h.recv(
        FRONT,
        &via_front(&in_call("BYE", &tag, 2, "z9hG4bKfb"), stamp),
    );
    let sent = h.take(FRONT);
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Response(r) if r.status() == 200 && r.cseq().unwrap().1 == Method::Bye)),
        "{sent:?}"
    );
    assert_eq!(h.cdrs.len(), 1);
}

/// Behind the front, a response in one of our transactions is taken only when the front
/// names the peer the request went to as its sender (or names none): a 200 to our INVITE
/// that the front says came from another peer (one that learnt the branch) neither answers
/// the call nor is ACKed as the callee's. Before, anything through the front with the
/// branch was the callee's answer.
#[test]
fn a_response_through_the_front_is_taken_only_from_the_peer_it_names() {
    let (mut h, inv) = pbx_calls_via_front("f-3", "z9hG4bKf3");
    h.take(FRONT);
    let answer = |from: &str| {
        reply(
            &inv,
            200,
            "c1",
            &[
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
                (Hdr::RECORD_ROUTE, "<sip:127.0.0.10:5060;lr>"),
                (Hdr::named("X-Trunkgate-Source"), from),
            ],
            Some(SDP),
        )
    };
    for other in ["127.0.0.2:5060", "192.0.2.66:5060", "unreadable"] {
        h.recv_msg(FRONT, answer(other));
        assert!(
            !h.statuses(FRONT).contains(&200),
            "a 200 named as {other}'s answers nothing"
        );
    }
    assert!(h.cdrs.is_empty(), "the call still rings");
    // The callee's own, named by the front as the carrier's: the call is answered.
    h.recv_msg(FRONT, answer("127.0.0.3:5060"));
    assert!(h.statuses(FRONT).contains(&200));
}

/// The same for a request's transaction: the caller's INVITE again through the front, named
/// as another peer's (carrier-a, who may have learnt the branch), is no retransmission of
/// the caller's (it draws no 100 again); named as the caller's, it is.
#[test]
fn a_request_again_through_the_front_is_the_callers_only_when_named_so() {
    let mut h = behind_front();
    let invite = via_front(
        &invite_text("f-4", "z9hG4bKf4", "+8610123", ""),
        "127.0.0.2:5060",
    );
    h.recv(FRONT, &invite);
    h.take(FRONT);
    let named_other = invite.replace(
        "X-Trunkgate-Source: 127.0.0.2:5060",
        "X-Trunkgate-Source: 127.0.0.3:5060",
    );
    assert_ne!(named_other, invite);
    h.recv(FRONT, &named_other);
    assert!(h.statuses(FRONT).is_empty(), "another's copy draws nothing");
    h.recv(FRONT, &invite);
    assert_eq!(
        h.statuses(FRONT),
        vec![100],
        "the caller's own is answered again"
    );
}

/// The ACK of our failure through the front is the front's own (its transaction ACKs our
/// 486 hop by hop and absorbs the caller's; Kamailio builds it without the stamp): taken, so
/// our 486 is not sent again. Before, once the transaction held the caller as its peer, an
/// ACK naming nobody was dropped and the 486 went out again until Timer H (32 s).
#[test]
fn the_fronts_own_ack_of_our_failure_ends_its_retransmissions() {
    let (mut h, inv) = pbx_calls_via_front("f-5", "z9hG4bKf5");
    h.take(FRONT);
    let busy = reply(
        &inv,
        486,
        "c5",
        &[(Hdr::named("X-Trunkgate-Source"), "127.0.0.3:5060")],
        None,
    );
    h.recv_msg(FRONT, busy);
    let ours = h.response_with(FRONT, 486, "the caller's 486");
    let tag = ours.to_tag().unwrap();
    let ack = format!(
        "ACK sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKf5;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\n\
         To: <sip:+8610123@127.0.0.1>;tag={tag}\r\nCall-ID: f-5\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.recv(FRONT, &ack);
    h.take(FRONT);
    h.advance(Duration::from_secs(8));
    assert!(
        !h.statuses(FRONT).contains(&486),
        "no 486 again once the front ACKed it"
    );
}

/// A request in a dialog goes through the front along its Route set to the callee's
/// Contact, which may be another host of the carrier's than its profile's `address`: its
/// response, named by the front as that host's, ends our BYE. (Only requests the front is
/// told the destination of are held to it.)
#[test]
fn a_response_in_a_dialog_through_the_front_may_come_from_the_callees_contact() {
    let (mut h, inv) = pbx_calls_via_front("f-6", "z9hG4bKf6");
    let from_contact = [
        (Hdr::CONTACT, "<sip:c@192.0.2.50>"),
        (Hdr::RECORD_ROUTE, "<sip:127.0.0.10:5060;lr>"),
        (Hdr::named("X-Trunkgate-Source"), "127.0.0.3:5060"),
    ];
    h.recv_msg(FRONT, reply(&inv, 200, "c6", &from_contact, Some(SDP)));
    let ok = h.response_with(FRONT, 200, "the 200 goes back through the front");
    let tag = ok.to_tag().unwrap();
    let in_f6 = |method: &str, cseq: u32, branch: &str| {
        in_call(method, &tag, cseq, branch).replace("Call-ID: f-1", "Call-ID: f-6")
    };
    h.recv(
        FRONT,
        &via_front(&in_f6("ACK", 1, "z9hG4bKf6a"), "127.0.0.2:5060"),
    );
    h.recv(
        FRONT,
        &via_front(&in_f6("BYE", 2, "z9hG4bKf6b"), "127.0.0.2:5060"),
    );
    let bye = h.one_request(FRONT, Method::Bye);
    assert!(bye.uri().contains("192.0.2.50"), "{}", bye.uri());
    h.take(FRONT);
    let done = reply(
        &bye,
        200,
        "c6",
        &[(Hdr::named("X-Trunkgate-Source"), "192.0.2.50:5060")],
        None,
    );
    h.recv_msg(FRONT, done);
    h.advance(Duration::from_secs(2));
    assert!(
        h.take_requests(FRONT, Method::Bye).is_empty(),
        "the BYE was answered: not sent again"
    );
}

/// A new INVITE toward a peer with `[sip] invite_timeout_s` tells the front that time
/// (`;fr=` in ms on `X-Trunkgate-Peer`): the front's own 100 reaches the instance at once
/// and stops its timers, as a proxy's does, so the front times the peer's silence. A peer
/// without one is left to the front's default.
#[test]
fn a_peers_invite_timeout_is_the_fronts_to_keep() {
    let mut cfg = config();
    cfg.front = Some(Target::udp(addr(FRONT)));
    edit_profiles(&mut cfg, |n, p| {
        if n == "carrier-a" {
            p.invite_timeout = Some(Duration::from_secs(3));
        }
    });
    let mut h = H::with(cfg);
    let invite = invite_text("f-fr", "z9hG4bKffr", "+8610123", "");
    h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    let inv = h.one_request(FRONT, Method::Invite);
    assert_eq!(
        destination(&inv).as_deref(),
        Some("127.0.0.3:5060;transport=udp;fr=3000")
    );
    // The front's 408 after that time: carrier-b is tried, told no time of its own.
    h.recv_msg(FRONT, reply(&inv, 100, "", &[], None));
    h.recv_msg(FRONT, reply(&inv, 408, "", &[], None));
    let next = h.one_request(FRONT, Method::Invite);
    assert_eq!(
        destination(&next).as_deref(),
        Some("127.0.0.4:5060;transport=udp")
    );
}

/// The INVITE sent again after the peer's 422 (RFC 4028 §7.4) tells the front the peer's
/// time too, as any INVITE to it does. Before, it went without `;fr=`, and the front's
/// default (32 s) applied to the peer's silence from then on.
#[test]
fn an_invite_sent_again_after_a_422_tells_the_front_the_peers_time() {
    use crate::interop::session_timer::{SessionTimerPolicy, TimerMode};
    let mut cfg = config();
    cfg.front = Some(Target::udp(addr(FRONT)));
    edit_profiles(&mut cfg, |n, p| {
        if n == "carrier-a" {
            p.invite_timeout = Some(Duration::from_secs(3));
            p.session_timer = SessionTimerPolicy {
                mode: TimerMode::Accept,
                expires: Duration::from_secs(300),
                min_se: Duration::from_secs(90),
            };
        }
    });
    let mut h = H::with(cfg);
    let invite = invite_text("f-422", "z9hG4bKf422", "+8610123", "");
    h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    let inv = h.one_request(FRONT, Method::Invite);
    let stamp = Some("127.0.0.3:5060;transport=udp;fr=3000");
    assert_eq!(destination(&inv).as_deref(), stamp);
    let min = [(Hdr::named("Min-SE"), "600")];
    h.recv_msg(FRONT, reply(&inv, 422, "c1", &min, None));
    let again = h.one_request(FRONT, Method::Invite);
    assert!(
        again
            .header(&Hdr::SESSION_EXPIRES)
            .is_some_and(|v| v.starts_with("600"))
    );
    assert_eq!(destination(&again).as_deref(), stamp);
}

/// The front's own 408 (its timer for the peer ended, unstamped) to an INVITE that never
/// rang is the peer's silence: the call fails as one to a peer that never answered
/// (`peer_unreachable`, event `peer_timeout`). Before, it was taken for the peer's 408
/// (`callee_reject`, `failover_408`).
#[test]
fn the_fronts_own_408_is_the_peers_silence() {
    let mut cfg = config();
    cfg.front = Some(Target::udp(addr(FRONT)));
    cfg.routes[0].to.truncate(1);
    let mut h = H::with(cfg);
    let invite = invite_text("f-408", "z9hG4bKf408", "+8610123", "");
    h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    let inv = h.one_request(FRONT, Method::Invite);
    h.recv_msg(FRONT, reply(&inv, 408, "", &[], None));
    let c = &h.cdrs[0];
    assert_eq!(c.call_tag, CallTag::PeerUnreachable, "{c:?}");
    assert!(c.events.iter().any(|e| e == "peer_timeout"), "{c:?}");
}

/// Behind a front, an instance's own want of room for the route (its share of the peers'
/// `[limits]`, divided among the instances) is refused with a Retry-After, the mark of an
/// instance's own refusal, so the front tries the next instance. Before, it went without
/// one, and the front passed it to the caller while another instance had room.
#[test]
fn behind_a_front_a_route_full_here_is_refused_for_the_front_to_move() {
    let mut cfg = config();
    cfg.front = Some(Target::udp(addr(FRONT)));
    cfg.routes[0].to.truncate(1);
    edit_profiles(&mut cfg, |n, p| {
        if n == "carrier-a" {
            p.limits.calls = crate::config::CallLimits {
                max_calls: Some(1),
                cps: None,
            };
        }
    });
    let mut h = H::with(cfg);
    for n in 1..=2 {
        let invite = invite_text(
            &format!("full{n}"),
            &format!("z9hG4bKfull{n}"),
            "+8610123",
            "",
        );
        h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    }
    let refused = h
        .take_responses(FRONT)
        .into_iter()
        .find(|r| r.status() == 503)
        .expect("the second call refused");
    assert_eq!(refused.header(&Hdr::RETRY_AFTER).as_deref(), Some("10"));
    // Marked as the route's, so the front answers the last one's without a Retry-After.
    assert_eq!(
        refused.header(&Hdr::named("X-Trunkgate-Scope")).as_deref(),
        Some("route")
    );
    assert_eq!(h.cdrs[0].call_tag, CallTag::RateLimited);
}

/// Within a dialog, the front is told to send our requests to the address each peer is
/// known by (the caller's as the front stamped it, the callee's as its route), not where
/// the Contact and Route set the peer wrote lead: those name anyone their writer likes, and
/// the front would relay there from the address carriers trust. An instance alone sends
/// them to the same addresses.
#[test]
fn requests_in_a_dialog_through_the_front_name_the_peers_address_not_its_contact() {
    let mut h = behind_front();
    let invite = invite_text("f-1", "z9hG4bKf1", "+8610123", "").replace(
        "Contact: <sip:1000@127.0.0.2:5060>",
        "Contact: <sip:1000@198.51.100.7:5060>",
    );
    h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    let inv = h.one_request(FRONT, Method::Invite);
    h.recv_msg(
        FRONT,
        reply(
            &inv,
            200,
            "c1",
            &[
                (Hdr::CONTACT, "<sip:c@198.51.100.8>"),
                (
                    Hdr::RECORD_ROUTE,
                    "<sip:198.51.100.9;lr>, <sip:127.0.0.10:5060;lr>",
                ),
            ],
            Some(SDP),
        ),
    );
    let tag = h.response_with(FRONT, 200, "answered").to_tag().unwrap();
    h.recv(
        FRONT,
        &via_front(&in_call("ACK", &tag, 1, "z9hG4bKfa"), "127.0.0.2:5060"),
    );
    let ack = h.one_request(FRONT, Method::Ack);
    assert_eq!(ack.uri(), "sip:c@198.51.100.8");
    assert_eq!(
        destination(&ack).as_deref(),
        Some("127.0.0.3:5060;transport=udp")
    );
    // The carrier hangs up: the BYE toward the PBX names where its INVITE came from.
    let bye = carrier_hangs_up_via_front(&mut h, &inv);
    assert_eq!(bye.uri(), "sip:1000@198.51.100.7:5060");
    assert_eq!(
        destination(&bye).as_deref(),
        Some("127.0.0.2:5060;transport=udp")
    );
}

/// The front's tm answers the caller's CANCEL itself and sends one of its own, without the
/// stamp (it relays a CANCEL only from the address its INVITE came from): that is the
/// caller's. A CANCEL the front stamps as another address's is not.
#[test]
fn the_fronts_own_cancel_is_the_callers_and_another_peers_is_not() {
    let (mut h, inv) = pbx_calls_via_front("f-c", "z9hG4bKfc");
    h.recv_msg(FRONT, reply(&inv, 180, "c1", &[], None));
    h.take(FRONT);
    let cancel = msgs::cancel_text("f-c", "z9hG4bKfc");
    h.recv(FRONT, &via_front(&cancel, "127.0.0.9:5060"));
    // (A stranger's, as the front says: dropped.)
    let refused = h.take(FRONT);
    assert!(
        !refused.iter().any(|m| match m {
            Message::Response(r) => r.status() < 300,
            Message::Request(r) => r.method() == Method::Cancel,
        }),
        "{refused:?}"
    );
    h.recv(FRONT, &cancel);
    let sent = h.take(FRONT);
    let status = |s: u16| {
        sent.iter()
            .any(|m| matches!(m, Message::Response(r) if r.status() == s))
    };
    assert!(status(200) && status(487), "{sent:?}");
    assert!(sent.iter().any(
        |m| matches!(m, Message::Request(r) if r.method() == Method::Cancel && r.call_id() == inv.call_id())
    ));
}

/// A peer not believed (`trust_asserted = false`) answers through a front that does not
/// stamp responses: its SIP-I body still goes on as its SDP alone, judged by the call's own
/// peer for that leg. Before, a sender the front left unnamed was believed, and its ISUP
/// reached the PBX (trusted with identities).
#[test]
fn an_unbelieved_callees_isup_through_the_front_goes_no_further() {
    let mut cfg = config_with(|n, p| match n {
        "carrier-a" => p.headers.trust_asserted = false,
        "pbx" => p.headers.trust_identity = true,
        _ => {}
    });
    cfg.front = Some(Target::udp(addr(FRONT)));
    let mut h = H::with(cfg);
    let invite = invite_text("f-isup", "z9hG4bKfisup", "+8610123", "");
    h.recv(FRONT, &via_front(&invite, "127.0.0.2:5060"));
    let inv = h.one_request(FRONT, Method::Invite);
    h.take(FRONT);
    let isup = b"\x09\x00\x01\r\n";
    let (body, ct) =
        crate::sdp::with_sdp_part(SDP.as_bytes(), isup, "application/isup", &[]).unwrap();
    let Message::Response(mut ok) = reply(
        &inv,
        200,
        "c1",
        &[
            (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
            (Hdr::RECORD_ROUTE, "<sip:127.0.0.10:5060;lr>"),
        ],
        None,
    ) else {
        unreachable!("a reply is a response")
    };
    ok.set_body(body, Some(&ct)).unwrap();
    h.recv_msg(FRONT, Message::Response(ok));
    let to_pbx = h.response_with(FRONT, 200, "the PBX is answered");
    assert!(
        !to_pbx.body().windows(isup.len()).any(|w| w == isup),
        "{to_pbx:?}"
    );
    assert_eq!(to_pbx.body().as_ref(), SDP.as_bytes());
}

//! Call-backs (RFC 3725 flow I) on the fake clock: user1 is the PBX's extension 1001 (at
//! the phone's address), user2 a carrier number; the call-back service is played by the
//! test, which sends `Input::Callback` and reads `H::reports`.

use super::*;
use crate::callback::{CallbackId, Command, End, Number, Originate, Outcome, State};

const OFFER: &str = "v=0\r\no=- 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";

/// The test configuration plus a route for the PBX's extensions ("1…" → pbx).
fn cb_config() -> Config {
    let mut cfg = config();
    cfg.routes.insert(
        0,
        Route {
            from: RouteFrom::Peer(PeerName("pbx".into())),
            prefix: "1".into(),
            to: vec![PeerName("pbx".into())],
            ring_timeout: Some(Duration::from_secs(20)),
        },
    );
    cfg
}

/// [`cb_config`] with every peer's calls anchored.
fn anchored_cb_config() -> Config {
    let mut cfg = cb_config();
    edit_profiles(&mut cfg, |_, p| p.anchor = true);
    cfg
}

fn id(s: &str) -> CallbackId {
    CallbackId::parse(s).unwrap()
}

fn originate_with(h: &mut H, cb: &str, user1: &str, user2: &str, max: Duration) {
    originate_from(h, cb, (user1, user2), max, Some("pbx"));
}

/// [`originate_with`] with the service's `from_peer` (`None`: not set).
fn originate_from(
    h: &mut H,
    cb: &str,
    (user1, user2): (&str, &str),
    max: Duration,
    from_peer: Option<&str>,
) {
    h.input(Input::Callback(Command::Originate(Originate {
        id: id(cb),
        user1: Number::parse(user1).unwrap(),
        user2: Number::parse(user2).unwrap(),
        caller: None,
        max_duration: max,
        from_peer: from_peer.map(|p| PeerName(p.into())),
    })));
}

fn originate(h: &mut H, cb: &str) {
    originate_with(h, cb, "1001", "+8610123", Duration::from_secs(3600));
}

/// The call-back `cb` placed ([`originate`]): user1's INVITE, to the phone.
fn user1_invited(h: &mut H, cb: &str) -> Request {
    originate(h, cb);
    h.one_request(PHONE, Method::Invite)
}

/// user1's Contact in its answers.
const USER1_CONTACT: &str = "<sip:1001@127.0.0.2:5060>";

fn ended(h: &H) -> Vec<(CallbackId, End)> {
    h.reports
        .iter()
        .filter_map(|r| match r {
            CallbackReport::Ended { id, end } => Some((id.clone(), *end)),
            _ => None,
        })
        .collect()
}

fn progress(h: &H) -> Vec<State> {
    h.reports
        .iter()
        .filter_map(|r| match r {
            CallbackReport::Progress { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

/// user1 (the phone's address) answers `inv1` with its offer; returns user2's INVITE.
fn user1_answers(h: &mut H, inv1: &Request) -> Request {
    let contact = [(Hdr::CONTACT, USER1_CONTACT)];
    h.recv_msg(PHONE, reply(inv1, 180, "u1", &contact, None));
    h.recv_msg(PHONE, reply(inv1, 200, "u1", &contact, Some(OFFER)));
    h.one_request(CARRIER_A, Method::Invite)
}

/// user2 (carrier-a) answers `inv2` with `SDP`.
fn user2_answers(h: &mut H, inv2: &Request) {
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(inv2, 200, "u2", &contact, Some(SDP)));
}

/// A request from user1 in the call-back's dialog (the gateway called it with `inv1`).
fn from_user1(inv1: &Request, method: &str, cseq: u32, branch: &str) -> String {
    msgs::in_dialog(
        method,
        "sip:127.0.0.1:5060",
        &format!("{};tag=u1", inv1.header(&Hdr::TO).unwrap()),
        &inv1.header(&Hdr::FROM).unwrap(),
        &inv1.call_id().unwrap(),
        cseq,
        branch,
        "127.0.0.2:5060",
        "",
    )
}

/// Both connected; returns (user1's INVITE, user2's INVITE).
fn connected(h: &mut H) -> (Request, Request) {
    let inv1 = user1_invited(h, "cb-1");
    let inv2 = user1_answers(h, &inv1);
    user2_answers(h, &inv2);
    assert_eq!(progress(h), vec![State::Calling2, State::Connected]);
    (inv1, inv2)
}

/// user2's setup time (`trunkgate_setup_seconds` of its peer) runs from its own INVITE, not
/// from the call-back's start: user1 ringing 8 s is not user2's peer's slowness. Before,
/// user2's answer after 1 s read as 9 s.
#[test]
fn user2s_setup_is_timed_from_its_own_invite() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-t");
    let contact = [(Hdr::CONTACT, USER1_CONTACT)];
    h.recv_msg(PHONE, reply(&inv1, 180, "u1", &contact, None));
    h.advance(Duration::from_secs(8));
    let inv2 = user1_answers(&mut h, &inv1);
    h.advance(Duration::from_secs(1));
    user2_answers(&mut h, &inv2);
    let user2_answer = h.events.iter().find_map(|e| match e {
        CoreEvent::Progress {
            peer,
            stage: Stage::Answered,
            after,
            ..
        } if peer.as_str() == "carrier-a" => Some(*after),
        _ => None,
    });
    assert_eq!(user2_answer, Some(Duration::from_secs(1)));
}

/// user2 answers user1's offer in a reliable 183 and its 200 has no SDP (RFC 3262: the answer
/// was given): user1 still gets that answer in our ACK. Before, the ACK went without one.
#[test]
fn user2s_answer_in_a_reliable_183_reaches_user1_in_the_ack() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    let inv2 = user1_answers(&mut h, &inv1);
    let contact = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:+8610123@127.0.0.3>"),
    ];
    h.recv_msg(CARRIER_A, reply(&inv2, 183, "u2", &contact, Some(SDP)));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reply(&pr, 200, "u2", &[], None));
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv2,
            200,
            "u2",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            None,
        ),
    );
    let ack1 = h.one_request(PHONE, Method::Ack);
    assert_eq!(ack1.body().as_ref(), SDP.as_bytes(), "user2's early answer");
    assert!(h.one_request(CARRIER_A, Method::Ack).body().is_empty());
}

/// Two branches of a forking proxy each answer in a reliable 183; the second one's bare 200
/// wins: user1 gets that branch's answer, not the first branch's.
#[test]
fn the_answering_branchs_early_answer_reaches_user1() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    let inv2 = user1_answers(&mut h, &inv1);
    let other_sdp = SDP.replace("m=audio 4000", "m=audio 4002");
    assert_ne!(other_sdp, SDP);
    for (tag, sdp) in [("u2a", SDP), ("u2b", other_sdp.as_str())] {
        let hdrs = [
            (Hdr::REQUIRE, "100rel"),
            (Hdr::RSEQ, "1"),
            (Hdr::CONTACT, "<sip:+8610123@127.0.0.3>"),
        ];
        h.recv_msg(CARRIER_A, reply(&inv2, 183, tag, &hdrs, Some(sdp)));
        let pr = h.one_request(CARRIER_A, Method::Prack);
        h.recv_msg(CARRIER_A, reply(&pr, 200, tag, &[], None));
    }
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv2,
            200,
            "u2b",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            None,
        ),
    );
    let ack1 = h.one_request(PHONE, Method::Ack);
    assert_eq!(ack1.body().as_ref(), other_sdp.as_bytes());
}

#[test]
fn both_answer_the_offer_and_answer_cross_in_the_acks() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    // Flow I: no SDP toward user1, and no 100rel (an offer in a reliable 18x would need an
    // answer we do not have yet). user1 sees who it will be connected to.
    assert!(inv1.body().is_empty(), "{inv1:?}");
    assert!(!inv1.header_has_token(&Hdr::SUPPORTED, "100rel"));
    assert!(inv1.uri().starts_with("sip:1001@"), "{}", inv1.uri());
    assert!(inv1.from_uri().unwrap().contains("+8610123"), "{inv1:?}");
    assert!(h.reports.is_empty());

    let inv2 = user1_answers(&mut h, &inv1);
    assert_eq!(progress(&h), vec![State::Calling2]);
    assert_eq!(
        inv2.body().as_ref(),
        OFFER.as_bytes(),
        "user1's offer goes to user2"
    );
    assert!(inv2.from_uri().unwrap().contains("1001"), "{inv2:?}");
    assert_ne!(inv2.call_id(), inv1.call_id());
    assert!(
        h.take(PHONE).is_empty(),
        "user1 is not ACKed before user2 answers"
    );

    user2_answers(&mut h, &inv2);
    let ack1 = h.one_request(PHONE, Method::Ack);
    assert_eq!(ack1.cseq().unwrap().0, 1);
    assert_eq!(ack1.to_tag().as_deref(), Some("u1"));
    assert_eq!(
        ack1.body().as_ref(),
        SDP.as_bytes(),
        "user2's answer goes to user1"
    );
    let ack2 = h.one_request(CARRIER_A, Method::Ack);
    assert!(ack2.body().is_empty());
    assert_eq!(progress(&h), vec![State::Calling2, State::Connected]);

    // user1's 2xx again: our ACK again.
    h.recv_msg(
        PHONE,
        reply(
            &inv1,
            200,
            "u1",
            &[(Hdr::CONTACT, USER1_CONTACT)],
            Some(OFFER),
        ),
    );
    assert_eq!(
        h.one_request(PHONE, Method::Ack).to_bytes(),
        ack1.to_bytes()
    );

    h.advance(Duration::from_secs(30));
    h.recv(PHONE, &from_user1(&inv1, "BYE", 1, "z9hG4bKu1bye"));
    assert_eq!(h.statuses(PHONE), vec![200]);
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "u2", &[], None));

    let ends = ended(&h);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].0, id("cb-1"));
    let e = ends[0].1;
    assert_eq!(e.outcome, Outcome::Connected);
    assert_eq!((e.call_tag, e.cause.0), (CallTag::CallerBye, 16));
    assert_eq!(e.duration, Duration::from_secs(30));
    assert_eq!(h.cdrs.len(), 1);
    let c = &h.cdrs[0];
    assert_eq!(c.callback_id.as_deref(), Some("cb-1"));
    assert_eq!(Some(c.call_id.clone()), inv1.call_id());
    assert_eq!(c.egress_call_id, inv2.call_id());
    assert_eq!((c.from.as_str(), c.to.as_str()), ("1001", "+8610123"));
    assert_eq!(c.ingress_peer, "pbx");
    assert_eq!(c.egress_peer.as_deref(), Some("carrier-a"));
    assert_eq!(c.duration_ms, 30_000);
    assert_idle(&mut h);
}

/// A fault (a defect) while a call-back is placed, before it is a call, costs it alone: its
/// peer's call count is given back, and the service is told it ended. Before, the count
/// stayed taken until a restart (here, where a call-back to one of the PBX's extensions
/// counts twice against its `max_calls = 2`, every later one refused) and the service
/// waited for an end never reported.
#[test]
fn a_fault_placing_a_callback_gives_back_its_count_and_reports_its_end() {
    let mut cfg = cb_config();
    edit_profiles(&mut cfg, |n, p| {
        if n == "pbx" {
            p.limits.calls = crate::config::CallLimits {
                max_calls: Some(2),
                cps: None,
            };
        }
    });
    let mut h = H::with(cfg);
    super::super::router::test_fault::arm_new_call(1);
    originate(&mut h, "cb-1");
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
    let ends = ended(&h);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].0, id("cb-1"));
    assert_eq!(ends[0].1.call_tag, CallTag::GatewayError);
    // The pbx's two are free for the next.
    originate(&mut h, "cb-2");
    h.one_request(PHONE, Method::Invite);
}

#[test]
fn user1_busy_ends_it_before_user2_is_called() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    h.recv_msg(PHONE, reply(&inv1, 486, "u1", &[], None));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    let e = ended(&h)[0].1;
    assert_eq!(e.outcome, Outcome::User1Failed);
    assert_eq!((e.call_tag, e.cause.0), (CallTag::CalleeReject, 17));
    let c = &h.cdrs[0];
    assert_eq!(Some(c.call_id.clone()), inv1.call_id());
    assert_eq!(c.callback_id.as_deref(), Some("cb-1"));
    assert_eq!(c.egress_call_id, None);
    assert_eq!(c.user1_answer, None);
    assert_idle(&mut h);
}

#[test]
fn user2_busy_gets_user1_an_answer_refusing_its_streams_then_a_bye() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    let inv2 = user1_answers(&mut h, &inv1);
    h.recv_msg(CARRIER_A, reply(&inv2, 486, "u2", &[], None));
    let to_user1 = h.take(PHONE);
    let ack = to_user1
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method() == Method::Ack => Some(r.clone()),
            _ => None,
        })
        .expect("user1's 2xx is ACKed");
    let answer = String::from_utf8_lossy(ack.body()).to_string();
    assert!(answer.contains("m=audio 0 "), "{answer}");
    assert!(!answer.contains("192.0.2.20"), "{answer}");
    let bye = to_user1
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method() == Method::Bye => Some(r.clone()),
            _ => None,
        })
        .expect("and hung up");
    assert!(
        bye.header(&Hdr::REASON)
            .unwrap_or_default()
            .contains("cause=17"),
        "{bye:?}"
    );
    h.recv_msg(PHONE, reply(&bye, 200, "u1", &[], None));
    let e = ended(&h)[0].1;
    assert_eq!(e.outcome, Outcome::User2Failed);
    assert_eq!((e.call_tag, e.cause.0), (CallTag::CalleeReject, 17));
    assert_eq!(h.cdrs[0].egress_call_id, inv2.call_id());
    // user1's leg was answered, and billed by its carrier, though the call-back was not:
    // the CDR says when (before, nothing did).
    assert!(h.cdrs[0].user1_answer.is_some() && h.cdrs[0].answer.is_none());
    assert_idle(&mut h);
}

#[test]
fn user1_hanging_up_while_user2_rings_cancels_user2() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    let inv2 = user1_answers(&mut h, &inv1);
    h.recv_msg(CARRIER_A, reply(&inv2, 180, "u2", &[], None));
    h.recv(PHONE, &from_user1(&inv1, "BYE", 1, "z9hG4bKu1bye"));
    // The 200 to its BYE, and the ACK its 2xx is owed (RFC 3261 §13.2.2.4), refusing its
    // offer; no BYE of ours. Before, no ACK: user1 retransmitted its 200 for 32 s.
    let to_user1 = h.take(PHONE);
    assert_eq!(to_user1.len(), 2, "{to_user1:?}");
    let ack = (to_user1.iter())
        .find_map(|m| match m {
            Message::Request(r) if r.method() == Method::Ack => Some(r.clone()),
            _ => None,
        })
        .expect("user1's 2xx is ACKed");
    assert!(String::from_utf8_lossy(ack.body()).contains("m=audio 0 "));
    assert!(
        to_user1
            .iter()
            .any(|m| matches!(m, Message::Response(r) if r.status() == 200))
    );
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(cancel.call_id(), inv2.call_id());
    h.recv_msg(CARRIER_A, reply(&cancel, 200, "u2", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv2, 487, "u2", &[], None));
    let e = ended(&h)[0].1;
    assert_eq!(e.outcome, Outcome::User2Failed);
    assert_eq!(e.call_tag, CallTag::CallerCancel);
    assert_idle(&mut h);
}

#[test]
fn the_service_cancels_at_each_stage() {
    // While user1 rings: CANCEL toward user1.
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    h.recv_msg(PHONE, reply(&inv1, 180, "u1", &[], None));
    h.input(Input::Callback(Command::Cancel { id: id("cb-1") }));
    let cancel = h.one_request(PHONE, Method::Cancel);
    h.recv_msg(PHONE, reply(&cancel, 200, "u1", &[], None));
    h.recv_msg(PHONE, reply(&inv1, 487, "u1", &[], None));
    let e = ended(&h)[0].1;
    assert_eq!(
        (e.outcome, e.call_tag),
        (Outcome::Cancelled, CallTag::CallbackCancelled)
    );
    assert_idle(&mut h);

    // While user2 rings: CANCEL toward user2, ACK and BYE toward user1.
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-2");
    let inv2 = user1_answers(&mut h, &inv1);
    h.recv_msg(CARRIER_A, reply(&inv2, 180, "u2", &[], None));
    h.input(Input::Callback(Command::Cancel { id: id("cb-2") }));
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    h.recv_msg(CARRIER_A, reply(&cancel, 200, "u2", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv2, 487, "u2", &[], None));
    let methods: Vec<Method> = h.requests_to(PHONE).iter().map(|r| r.method()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(ended(&h)[0].1.outcome, Outcome::Cancelled);
    h.advance(Duration::from_secs(40));
    assert_eq!(h.core.active_calls(), 0);

    // Connected: BYE both; it was connected.
    let mut h = H::with(cb_config());
    connected(&mut h);
    h.take(PHONE);
    h.take(CARRIER_A);
    h.input(Input::Callback(Command::Cancel { id: id("cb-1") }));
    h.one_request(PHONE, Method::Bye);
    h.one_request(CARRIER_A, Method::Bye);
    let e = ended(&h)[0].1;
    assert_eq!(
        (e.outcome, e.call_tag),
        (Outcome::Connected, CallTag::CallbackCancelled)
    );
}

#[test]
fn max_duration_ends_a_connected_call_back() {
    let mut h = H::with(cb_config());
    originate_with(&mut h, "cb-1", "1001", "+8610123", Duration::from_secs(60));
    let inv1 = h.one_request(PHONE, Method::Invite);
    let inv2 = user1_answers(&mut h, &inv1);
    user2_answers(&mut h, &inv2);
    h.take(PHONE);
    h.take(CARRIER_A);
    h.advance(Duration::from_secs(59));
    assert!(ended(&h).is_empty());
    h.advance(Duration::from_millis(1100));
    h.one_request(PHONE, Method::Bye);
    h.one_request(CARRIER_A, Method::Bye);
    let e = ended(&h)[0].1;
    assert_eq!(
        (e.outcome, e.call_tag),
        (Outcome::Connected, CallTag::MaxDuration)
    );
    assert_eq!(e.duration, Duration::from_secs(60));
    let c = &h.cdrs[0];
    assert!(
        c.user1_answer.is_some() && c.user1_answer <= c.answer,
        "{c:?}"
    );
}

#[test]
fn user2_rings_no_longer_than_user1_waits_for_its_ack() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    let inv2 = user1_answers(&mut h, &inv1);
    h.recv_msg(CARRIER_A, reply(&inv2, 180, "u2", &[], None));
    // The carrier route rings 60 s, but user1 gives up on our ACK after 64·T1 = 32 s.
    h.advance(Duration::from_secs(29));
    assert!(ended(&h).is_empty());
    h.advance(Duration::from_millis(1100));
    h.one_request(CARRIER_A, Method::Cancel);
    h.one_request(PHONE, Method::Ack);
    let e = ended(&h)[0].1;
    assert_eq!(
        (e.outcome, e.call_tag, e.cause.0),
        (Outcome::User2Failed, CallTag::NoAnswerTimeout, 19)
    );
}

#[test]
fn a_call_back_without_a_route_ends_at_once_with_a_cdr() {
    let mut h = H::with(cb_config());
    originate_with(&mut h, "cb-1", "1001", "999", Duration::from_secs(60));
    assert!(h.sent.is_empty());
    let e = ended(&h)[0].1;
    assert_eq!(
        (e.outcome, e.call_tag, e.cause.0),
        (Outcome::User1Failed, CallTag::NoRoute, 1)
    );
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].callback_id.as_deref(), Some("cb-1"));
    assert_eq!(h.cdrs[0].ingress_peer, "pbx");
    assert_eq!(h.core.active_calls(), 0);
}

/// Without `from_peer`, a call-back refused before any call is still written with a peer:
/// the one user1 would have been called through, else `*` (no profile's name); never an
/// empty name (the CDR's, and the metrics' label).
#[test]
fn a_refused_call_back_without_from_peer_names_a_peer() {
    let mut h = H::with(cb_config());
    let minute = Duration::from_secs(60);
    originate_from(&mut h, "cb-2", ("1001", "999"), minute, None);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::NoRoute);
    assert!(!h.cdrs[0].ingress_peer.is_empty());
    // A user1 no route reaches: `*`.
    originate_from(&mut h, "cb-3", ("999", "+8610123"), minute, None);
    assert_eq!(h.cdrs.len(), 2);
    assert_eq!(h.cdrs[1].ingress_peer, "*");
}

/// While CDRs cannot be written a call-back is refused as an INVITE is: the service hears
/// why, and no CDR joins a queue kept for the calls already up.
#[test]
fn a_call_back_refused_while_cdrs_cannot_be_written_writes_none() {
    let mut h = H::with(cb_config());
    h.input(Input::CdrWritable(false));
    originate(&mut h, "cb-1");
    assert!(h.sent.is_empty());
    let e = ended(&h)[0].1;
    assert_eq!(
        (e.outcome, e.call_tag),
        (Outcome::User1Failed, CallTag::GatewayError)
    );
    assert!(h.cdrs.is_empty());
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn user1_answering_without_an_offer_is_acked_and_hung_up() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    let contact = [(Hdr::CONTACT, USER1_CONTACT)];
    h.recv_msg(PHONE, reply(&inv1, 200, "u1", &contact, None));
    let msgs = h.take(PHONE);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(h.take(CARRIER_A).is_empty());
    let e = ended(&h)[0].1;
    assert_eq!(e.outcome, Outcome::User1Failed);
    // user1 answered (and its carrier bills that moment) though it offered nothing.
    assert!(h.cdrs[0].user1_answer.is_some(), "{:?}", h.cdrs[0]);
}

#[test]
fn shutdown_ends_call_backs_with_their_report() {
    let mut h = H::with(cb_config());
    originate(&mut h, "cb-1");
    h.input(Input::Drain);
    originate(&mut h, "cb-2");
    h.input(Input::HangUpAll);
    let ends = ended(&h);
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!(ends.iter().all(|(_, e)| e.call_tag == CallTag::Shutdown));
}

#[test]
fn limits_count_both_legs_and_release_them() {
    let mut h = H::with(cb_config());
    connected(&mut h);
    let pbx = PeerName("pbx".into());
    let carrier = PeerName("carrier-a".into());
    // from_peer (pbx) and user1's peer (pbx, once more), and user2's peer.
    assert_eq!(h.core.peer_calls(&pbx), 2);
    assert_eq!(h.core.peer_calls(&carrier), 1);
    h.input(Input::Callback(Command::Cancel { id: id("cb-1") }));
    h.advance(Duration::from_secs(60));
    assert_eq!(h.core.active_calls(), 0);
    assert_eq!(h.core.peer_calls(&pbx), 0);
    assert_eq!(h.core.peer_calls(&carrier), 0);
}

#[test]
fn anchored_call_backs_show_each_party_only_the_gateway() {
    let mut h = H::with(anchored_cb_config());
    let inv1 = user1_invited(&mut h, "cb-1");
    let inv2 = user1_answers(&mut h, &inv1);
    let offer = String::from_utf8_lossy(inv2.body()).to_string();
    assert!(!offer.contains("192.0.2.20"), "{offer}");
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    user2_answers(&mut h, &inv2);
    let ack1 = h.one_request(PHONE, Method::Ack);
    let answer = String::from_utf8_lossy(ack1.body()).to_string();
    assert!(!answer.contains("192.0.2.10"), "{answer}");
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    // The relay knows both parties' real endpoints.
    assert!(
        h.media
            .iter()
            .any(|m| format!("{m:?}").contains("192.0.2.20:6000")),
        "{:?}",
        h.media
    );
    assert!(
        h.media
            .iter()
            .any(|m| format!("{m:?}").contains("192.0.2.10:4000")),
        "{:?}",
        h.media
    );
}

/// user1's INVITE forked: a second device answers too. Its 2xx is ACKed and hung up, and
/// what it sends afterwards is not user1's dialog's (RFC 3261 §12.2.2: both tags).
/// Before, it got nothing, and its BYE 32 s later ended the connected call as user1's.
#[test]
fn a_second_device_answering_user1_is_acked_and_hung_up_and_cannot_end_the_call() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-fork");
    let inv2 = user1_answers(&mut h, &inv1);
    let contact = [(Hdr::CONTACT, "<sip:1001@127.0.0.2:5062>")];
    h.recv_msg(PHONE, reply(&inv1, 200, "u1b", &contact, Some(OFFER)));
    let sent = h.requests_to(PHONE);
    let to_fork: Vec<(Method, Option<String>)> =
        sent.iter().map(|r| (r.method(), r.to_tag())).collect();
    assert_eq!(
        to_fork,
        [
            (Method::Ack, Some("u1b".to_string())),
            (Method::Bye, Some("u1b".to_string()))
        ]
    );
    // Its retransmission is ACKed again, not hung up again (a BYE transaction each, before),
    // and it is one late answer (once per dialog).
    h.recv_msg(PHONE, reply(&inv1, 200, "u1b", &contact, Some(OFFER)));
    let again: Vec<Method> = h.requests_to(PHONE).iter().map(|r| r.method()).collect();
    assert_eq!(again, [Method::Ack]);
    assert_eq!(h.late_answers().len(), 1);
    user2_answers(&mut h, &inv2);
    h.take(PHONE);
    // The other device's BYE (user1's Call-ID and our tag, its own From tag): not this call's.
    let bye = from_user1(&inv1, "BYE", 2, "z9hG4bKu1bbye").replace(";tag=u1", ";tag=u1b");
    h.recv(PHONE, &bye);
    assert_eq!(h.statuses(PHONE), vec![481]);
    assert!(h.cdrs.is_empty(), "the call goes on");
}

/// A call-back's side A is user1's dialog once user1 answers: its SDP is judged against
/// where user1 is reached, not against the call-back's `from_peer`. Here user1 is behind
/// NAT on a public trunk (private SDP, `latch = "any"`): no RTP goes to its private address
/// before its own packets come. Before, the PBX's (loopback) address was used, and RTP
/// went to 10.1.2.3.
#[test]
fn a_call_backs_user1_behind_nat_waits_for_its_own_packets() {
    let public: std::net::SocketAddr = "198.51.100.3:5060".parse().unwrap();
    let mut cfg = cb_config();
    for (name, p) in cfg.profiles.iter_mut() {
        if &*name.0 == "carrier-a" {
            let mut q = (**p).clone();
            q.anchor = true;
            q.latch = crate::media::Latch::Any;
            q.address = Target::udp(public);
            q.matches = vec![public.ip().into()];
            *p = Arc::new(q);
        }
    }
    let mut h = H::with(cfg);
    originate_with(&mut h, "nat", "+8610999", "1001", Duration::from_secs(3600));
    let inv1 = h.one_request("198.51.100.3:5060", Method::Invite);
    let offer = OFFER.replace("192.0.2.20", "10.1.2.3");
    let contact = [(Hdr::CONTACT, "<sip:+8610999@198.51.100.3:5060>")];
    h.recv_msg(
        "198.51.100.3:5060",
        reply(&inv1, 200, "u1", &contact, Some(&offer)),
    );
    let pairs = h.relay_pairs();
    assert!(!pairs.is_empty(), "the relay is planned");
    assert_eq!(pairs[0].a_remote, Some("10.1.2.3:6000".parse().unwrap()));
    assert!(pairs[0].a_wait_for_source);
}

/// user2 answers with a 2xx without SDP, having given no answer before: user1's offer has no
/// answer for its ACK. The call-back fails as for an unreadable answer: user2 is ACKed and
/// hung up, user1's ACK refuses every stream and a BYE follows, the service hears
/// `user2_failed`. Before, user1 was ACKed without an answer and the service told
/// `connected`.
#[test]
fn user2_answering_without_an_answer_fails_the_call_back() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-noans");
    let inv2 = user1_answers(&mut h, &inv1);
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv2, 200, "u2", &contact, None));
    let to_user2: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(|r| r.method())
        .collect();
    assert_eq!(to_user2, [Method::Ack, Method::Bye]);
    let to_user1 = h.requests_to(PHONE);
    let ack = to_user1
        .iter()
        .find(|r| r.method() == Method::Ack)
        .expect("ACK");
    let body = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(body.contains("m=audio 0 "), "{body}");
    assert!(to_user1.iter().any(|r| r.method() == Method::Bye));
    let ends = ended(&h);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].1.outcome, Outcome::User2Failed);
    assert!(!progress(&h).contains(&State::Connected));
}

/// A call-back whose end panics (a defect) once it counts as ended, before its CDR, still
/// has the service told how it ended, once. Before, only its CDR was written, and its
/// `max_active` slot waited for the service's watchdog.
#[test]
fn a_call_back_whose_end_faults_is_still_reported() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-fault");
    let inv2 = user1_answers(&mut h, &inv1);
    crate::call::router::fault::test_fault::arm_ended(1);
    h.recv_msg(CARRIER_A, reply(&inv2, 486, "u2", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    let ends = ended(&h);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].1.outcome, Outcome::User2Failed);
}

/// user1 answers without an offer (nothing to call user2 with): its 2xx is ACKed and hung
/// up, and its retransmission ACKed again only, no second BYE, no late answer counted.
#[test]
fn user1_answering_without_an_offer_is_hung_up_once() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-nooffer");
    let contact = [(Hdr::CONTACT, USER1_CONTACT)];
    h.recv_msg(PHONE, reply(&inv1, 200, "u1", &contact, None));
    let first: Vec<Method> = h.requests_to(PHONE).iter().map(|r| r.method()).collect();
    assert_eq!(first, [Method::Ack, Method::Bye]);
    h.recv_msg(PHONE, reply(&inv1, 200, "u1", &contact, None));
    let again: Vec<Method> = h.requests_to(PHONE).iter().map(|r| r.method()).collect();
    assert_eq!(again, [Method::Ack]);
    assert!(h.late_answers().is_empty());
    assert_eq!(ended(&h).len(), 1);
}

/// user1's route failed over (carrier-b, then the PBX, which answered), and carrier-b's
/// branch answers late once user2 is called: counted for carrier-b. Before, the attempt's
/// place was read in the route the call-back had by then, user2's, and named carrier-a.
#[test]
fn a_late_answer_to_user1s_first_attempt_is_counted_for_its_peer() {
    let mut cfg = cb_config();
    cfg.routes[0].to.insert(0, PeerName("carrier-b".into()));
    let mut h = H::with(cfg);
    originate(&mut h, "cb-late");
    let first = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, reply(&first, 503, "b1", &[], None));
    let inv1 = h.one_request(PHONE, Method::Invite);
    user1_answers(&mut h, &inv1);
    let contact = [(Hdr::CONTACT, "<sip:1001@127.0.0.4>")];
    h.requests_to(CARRIER_B); // (the ACK of its 503)
    h.recv_msg(CARRIER_B, reply(&first, 200, "late", &contact, Some(OFFER)));
    let sent = h.requests_to(CARRIER_B);
    assert_eq!(sent.iter().filter(|r| r.method() == Method::Bye).count(), 1);
    assert_eq!(h.late_answers(), ["carrier-b"]);
    // Its INVITE went without SDP: the offer in its 2xx is answered in the ACK, every
    // stream refused (before, the ACK had no body: user2's INVITE, the current attempt,
    // carried an offer).
    let ack = sent
        .iter()
        .find(|r| r.method() == Method::Ack)
        .expect("ACK");
    let body = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(body.contains("m=audio 0 "), "{body}");
}

/// user1 forces 100rel on a call-back (its INVITE offered none): its reliable 180 is
/// PRACKed, it answers, and user2 is called; user1's late refusal of that PRACK says nothing
/// of user2, whose reliable 183 is PRACKed. Before, user2's route numbered its attempts
/// from 1 again, the refusal matched user2's first attempt, and user2 got no PRACK.
#[test]
fn user1s_late_prack_refusal_says_nothing_of_user2() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-prack");
    let contact = (Hdr::CONTACT, USER1_CONTACT);
    let reliable = [(Hdr::REQUIRE, "100rel"), (Hdr::RSEQ, "1"), contact.clone()];
    h.recv_msg(PHONE, reply(&inv1, 180, "u1", &reliable, None));
    let prack = h.one_request(PHONE, Method::Prack);
    h.recv_msg(PHONE, reply(&inv1, 200, "u1", &[contact], Some(OFFER)));
    let inv2 = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(PHONE, reply(&prack, 481, "u1", &[], None));
    let reliable = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:+8610123@127.0.0.3>"),
    ];
    h.recv_msg(CARRIER_A, reply(&inv2, 183, "u2", &reliable, Some(SDP)));
    assert_eq!(h.take_requests(CARRIER_A, Method::Prack).len(), 1);
}

/// user1 answers without a To tag (RFC 2543), and resends its 2xx while user2 rings (our
/// ACK waits for user2's answer): the resend is user1's own, not another device's, so user1
/// is not hung up. Before, every resend of a tagless 2xx was taken for a second device's
/// and got a BYE in user1's own dialog.
#[test]
fn a_tagless_user1_resending_its_answer_is_not_hung_up() {
    let mut h = H::with(cb_config());
    let inv1 = user1_invited(&mut h, "cb-tagless");
    let tagless = || tagless_2xx(&inv1, USER1_CONTACT, OFFER);
    h.recv_msg(PHONE, tagless());
    let inv2 = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(PHONE, tagless());
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    user2_answers(&mut h, &inv2);
    let ack = h.one_request(PHONE, Method::Ack);
    assert_eq!(ack.to_tag(), None);
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    assert!(h.cdrs.is_empty(), "the call-back is connected");
}

/// An anchored call-back whose user2 answers in SDP that cannot be read: both are ACKed
/// (user1 with every stream refused) and hung up at once, the call-back reported ended
/// with `media_unavailable`. Before, the two were left connected without audio.
#[test]
fn user2_answering_in_sdp_that_cannot_be_read_ends_the_call_back() {
    let mut h = H::with(anchored_cb_config());
    let inv1 = user1_invited(&mut h, "cb-u");
    let inv2 = user1_answers(&mut h, &inv1);
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    // A line that is no SDP: not read, so not anchored.
    let unreadable = "v=0\r\nc=IN IP4 192.0.2.10\r\nbogus\r\nm=audio 4000 RTP/AVP 0\r\n";
    h.recv_msg(
        CARRIER_A,
        reply(&inv2, 200, "u2", &contact, Some(unreadable)),
    );
    let to_user1 = h.requests_to(PHONE);
    let methods: Vec<Method> = to_user1.iter().map(|r| r.method()).collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    let answer = String::from_utf8_lossy(to_user1[0].body()).to_string();
    assert!(
        answer.contains("m=audio 0 ") && !answer.contains("192.0.2.10"),
        "{answer}"
    );
    let to_user2: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(|r| r.method())
        .collect();
    assert_eq!(to_user2, [Method::Ack, Method::Bye]);
    let e = ended(&h)[0].1;
    assert_eq!((e.call_tag, e.cause.0), (CallTag::MediaUnavailable, 127));
    // No one was connected: failed, as a call whose callee answers so fails (before, the
    // service heard `connected` and the CDR had an answer time).
    assert_eq!(
        (e.outcome, e.duration),
        (Outcome::User2Failed, Duration::ZERO)
    );
    assert!(h.cdrs[0].answer.is_none(), "{:?}", h.cdrs[0]);
    assert!(
        h.cdrs[0]
            .events
            .iter()
            .any(|e| e == "callee_sdp_unreadable")
    );
}

/// A call-back's numbers come from the application server, not from a peer's callers: user2's
/// number is read with its trunk's own prefixes, not with those of the peer the call-back
/// names (a North American PBX here, whose `1…` would be a national prefix) or of user1's.
#[test]
fn a_callbacks_numbers_are_read_with_the_receiving_peers_prefixes() {
    let mut cfg = cb_config();
    edit_profiles(&mut cfg, |n, p| nanp_pbx_and_e164_carrier(n, p, "86"));
    cfg.routes.insert(
        1,
        Route {
            from: RouteFrom::Peer(PeerName("pbx".into())),
            prefix: "0".into(),
            to: vec![PeerName("carrier-a".into())],
            ring_timeout: None,
        },
    );
    let mut h = H::with(cfg);
    originate_with(
        &mut h,
        "cbn",
        "1001",
        "01012345678",
        Duration::from_secs(60),
    );
    let inv1 = h.one_request(PHONE, Method::Invite);
    let inv2 = user1_answers(&mut h, &inv1);
    assert!(
        inv2.uri().starts_with("sip:+861012345678@"),
        "{}",
        inv2.uri()
    );
}

/// The `o=` version of a session a call-back's user1 is shown: user2's answer in user1's
/// ACK is numbered as it is sent, its `a=ptime` (user1's profile's) in it, so the same
/// session again (the answer to user1's unchanged re-INVITE) keeps that version. Before,
/// the answer was numbered without its ptime and the same session went again one version
/// on.
#[test]
fn user1_sees_one_version_of_an_unchanged_session() {
    let mut cfg = anchored_cb_config();
    edit_profiles(&mut cfg, |n, p| {
        if n == "pbx" {
            p.ptime = Some(30);
        }
    });
    let mut h = H::with(cfg);
    let inv1 = user1_invited(&mut h, "cb-ver");
    let inv2 = user1_answers(&mut h, &inv1);
    user2_answers(&mut h, &inv2);
    let ack = h.one_request(PHONE, Method::Ack);
    let origin = |body: &[u8]| {
        let text = String::from_utf8_lossy(body).into_owned();
        let o = text
            .lines()
            .find(|l| l.starts_with("o="))
            .map(str::to_owned);
        (o, text.contains("a=ptime:30"))
    };
    let (first, ptime) = origin(ack.body());
    assert!(ptime, "user1's ptime in its ACK");
    h.take(CARRIER_A);
    // user1's re-INVITE offering its session unchanged: relayed to user2, which answers
    // with its own unchanged; user1 is shown the session it has, at the same version.
    let re = from_user1(&inv1, "INVITE", 2, "z9hG4bKu1re").replace(
        "Content-Length: 0\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n",
            OFFER.len()
        ),
    ) + OFFER;
    h.recv(PHONE, &re);
    let re2 = h.one_request(CARRIER_A, Method::Invite);
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&re2, 200, "u2", &contact, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "the answer to user1");
    assert_eq!(
        origin(ok.body()).0,
        first,
        "{:?}",
        String::from_utf8_lossy(ok.body())
    );
}

//! A changed offer in the caller's PRACK (RFC 3262 §5), put to the callee as an UPDATE in
//! its early dialog (RFC 3311) when it said it takes UPDATE: the PRACK's 200 carries the
//! callee's answer, and our 2xx to the INVITE waits for it.

use super::prack::invite_100rel;
use super::*;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, PRACK, UPDATE";

/// The phone's INVITE (100rel), and the carrier's reliable 183 with its answer, from a
/// carrier that says (`allow`) what it takes: the INVITE it got, the 183's tag and RSeq.
fn reliable_183_allowing(h: &mut H, call_id: &str, allow: &str) -> (Request, String, u32) {
    h.recv(PHONE, &invite_100rel(call_id, &format!("z9hG4bK{call_id}")));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let (tag, rseq) = reliable_183_to(h, &inv, allow);
    (inv, tag, rseq)
}

/// The carrier's reliable 183 with its answer to `inv`, saying (`allow`) what it takes: the
/// tag and RSeq the phone got it with.
fn reliable_183_to(h: &mut H, inv: &Request, allow: &str) -> (String, u32) {
    let headers = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::ALLOW, allow),
    ];
    h.recv_msg(CARRIER_A, reply(inv, 183, "c1", &headers, Some(SDP)));
    let r183 = h.response_with(PHONE, 183, "the answer reaches the phone");
    let rseq = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    (r183.to_tag().unwrap(), rseq)
}

/// [`reliable_183_allowing`] UPDATE, then the phone's PRACK with a new offer ([`moved`]):
/// the INVITE the carrier got, the phone's dialog tag, and the UPDATE the offer went in.
fn offer_in_prack(h: &mut H, call_id: &str) -> (Request, String, Request) {
    let (inv, tag, rseq) = reliable_183_allowing(h, call_id, ALLOW);
    h.recv(PHONE, &phone_prack(call_id, &tag, 2, rseq, &moved()));
    let update = h.one_request(CARRIER_A, Method::Update);
    (inv, tag, update)
}

/// The carrier takes the offer in `update`, answering on another port ([`callee_answer`]).
fn callee_takes(h: &mut H, update: &Request) {
    h.recv_msg(
        CARRIER_A,
        reply(update, 200, "c1", &[], Some(&callee_answer())),
    );
}

/// The carrier (its first branch) answers the INVITE `inv`, with `sdp`.
fn callee_answers(h: &mut H, inv: &Request, sdp: Option<&str>) {
    let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(inv, 200, "c1", &contact, sdp));
}

/// A reliable provisional's headers, RSeq `rseq`, from the carrier's first branch.
fn reliable(rseq: &str) -> [(Hdr, &str); 3] {
    [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, rseq),
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
    ]
}

/// The phone cancels call `call_id`: whether its CDR then says `prack_offer_ignored`.
fn ignored_after_cancel(h: &mut H, call_id: &str) -> bool {
    h.recv(PHONE, &cancel_text(call_id, &format!("z9hG4bK{call_id}")));
    h.advance(Duration::from_secs(1));
    let events = &h.cdrs[0].events;
    events.contains(&"prack_offer_ignored".to_string())
}

/// The phone ACKs our 2xx in its dialog `tag` of call `call_id`.
fn phone_acks(h: &mut H, call_id: &str, tag: &str) {
    let branch = format!("z9hG4bK{call_id}a");
    h.recv(PHONE, &from_phone_in(call_id, "ACK", tag, 1, &branch, ""));
}

/// The status of the PRACK's response among `rs`, and whether it carried no body.
fn prack_200(rs: &[Response]) -> Option<(u16, bool)> {
    response_to(rs, Method::Prack).map(|r| (r.status(), r.body().is_empty()))
}

/// Of the responses `rs`, the one to a `method` request.
fn response_to(rs: &[Response], method: Method) -> Option<&Response> {
    rs.iter().find(|r| r.cseq().is_some_and(|c| c.1 == method))
}

/// The phone's session of [`SDP`] moved to another port, in a new version.
fn moved() -> String {
    SDP.replace("o=- 1 1", "o=- 1 2").replace("4000", "4002")
}

/// The carrier's answer to the UPDATE, on another port than its 183's.
fn callee_answer() -> String {
    SDP.replace("o=- 1 1", "o=- 1 2").replace("4000", "5008")
}

/// The phone PRACKs the 183 with a new offer: the carrier gets it in an UPDATE within its
/// early dialog, and the PRACK waits; the UPDATE's 200 and its answer come back in the
/// PRACK's 200. Before, the PRACK got a 200 without SDP at once and the offer went nowhere.
#[test]
fn a_changed_offer_in_the_callers_prack_goes_to_the_callee_and_its_answer_back() {
    let mut h = H::new();
    let (_, tag, rseq) = reliable_183_allowing(&mut h, "po1", ALLOW);
    h.recv(PHONE, &phone_prack("po1", &tag, 2, rseq, &moved()));
    assert!(
        h.statuses(PHONE).is_empty(),
        "the PRACK waits for the callee"
    );
    let update = h.one_request(CARRIER_A, Method::Update);
    let body = String::from_utf8_lossy(update.body()).into_owned();
    assert!(
        body.contains("m=audio 4002"),
        "the phone's new offer: {body}"
    );
    assert_eq!(
        update.header(&Hdr::RACK),
        None,
        "the PRACK's own header stays"
    );
    assert_eq!(
        update.to_tag().as_deref(),
        Some("c1"),
        "in the early dialog"
    );
    callee_takes(&mut h, &update);
    let ok = h.response_with(PHONE, 200, "the PRACK's 200");
    assert_eq!(ok.cseq().map(|c| c.1), Some(Method::Prack));
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(
        answer.contains("m=audio 5008"),
        "the callee's answer: {answer}"
    );
    h.advance(Duration::from_secs(2));
    assert!(h.statuses(PHONE).is_empty(), "the 183 is acknowledged");
    assert!(!ignored_after_cancel(&mut h, "po1"));
}

/// The carrier answers the INVITE while its UPDATE's answer is still to come: our 2xx waits
/// for it, so the phone gets the PRACK's answer first, then the 2xx.
#[test]
fn our_2xx_waits_for_the_answer_to_the_offer_in_the_prack() {
    let mut h = H::new();
    let (inv, tag, update) = offer_in_prack(&mut h, "po2");
    callee_answers(&mut h, &inv, Some(SDP));
    assert!(h.statuses(PHONE).is_empty(), "the 2xx waits");
    callee_takes(&mut h, &update);
    let rs = h.take_responses(PHONE);
    let order: Vec<_> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().map(|c| c.1)))
        .collect();
    assert_eq!(
        order,
        [(200, Some(Method::Prack)), (200, Some(Method::Invite))],
        "the PRACK's answer, then the 2xx"
    );
    // The offer/answer was done in the PRACK: the 2xx carries that answer again (its own
    // SDP, anchored before it, would be an older version), the ACK answers nothing, and the
    // call is up.
    assert_eq!(rs[1].body(), rs[0].body());
    phone_acks(&mut h, "po2", &tag);
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert!(ack.body().is_empty());
    h.recv(
        PHONE,
        &from_phone_in("po2", "BYE", &tag, 3, "z9hG4bKpo2b", ""),
    );
    h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(h.cdrs[0].status, 200);
}

/// The carrier refuses the UPDATE (488), or does not answer it within 8 s: the PRACK still
/// gets a 2xx (it acknowledged our 183), without an answer, well before the caller's PRACK
/// transaction gives up (32 s); the session stays as it was (CDR event
/// `prack_offer_ignored`), and a 2xx that waited goes.
#[test]
fn a_refused_or_unanswered_update_still_gets_the_prack_its_200() {
    let mut h = H::new();
    let (inv, _, update) = offer_in_prack(&mut h, "po3");
    callee_answers(&mut h, &inv, None);
    h.recv_msg(CARRIER_A, reply(&update, 488, "c1", &[], None));
    let rs = h.take_responses(PHONE);
    let order: Vec<_> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().map(|c| c.1)))
        .collect();
    assert_eq!(
        order,
        [(200, Some(Method::Prack)), (200, Some(Method::Invite))]
    );
    assert!(rs[0].body().is_empty(), "no answer to the refused offer");

    let mut h = H::new();
    let (_, _, _) = offer_in_prack(&mut h, "po4");
    h.advance(Duration::from_secs(7));
    assert!(h.statuses(PHONE).is_empty(), "the callee is given its time");
    h.advance(Duration::from_secs(2));
    // Before, only the UPDATE's Timer F (32 s) answered it: after the caller's PRACK
    // transaction had given up.
    let ok = h.response_with(PHONE, 200, "the PRACK's 200 after 8 s");
    // Given up: the UPDATE is retransmitted no more.
    h.take_requests(CARRIER_A, Method::Update);
    h.advance(Duration::from_secs(8));
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    assert_eq!(ok.cseq().map(|c| c.1), Some(Method::Prack));
    assert!(ok.body().is_empty());
    assert!(ignored_after_cancel(&mut h, "po4"));
}

/// A callee that never said it takes UPDATE is sent none (RFC 3311 §5.1): the PRACK gets
/// 200 without an answer at once, as before.
#[test]
fn a_callee_that_takes_no_update_is_sent_none() {
    let mut h = H::new();
    let (_, tag, rseq) = reliable_183_allowing(&mut h, "po5", "INVITE, ACK, CANCEL, BYE, PRACK");
    h.recv(PHONE, &phone_prack("po5", &tag, 2, rseq, &moved()));
    let ok = h.response_with(PHONE, 200, "at once");
    assert!(ok.body().is_empty());
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
}

/// The caller cancels while the UPDATE is out: its PRACK gets 200 (not 487: it
/// acknowledged our 183), its INVITE 487.
#[test]
fn a_cancel_while_the_update_is_out_answers_the_prack_200() {
    let mut h = H::new();
    let (_, _, _) = offer_in_prack(&mut h, "po6");
    h.recv(PHONE, &cancel_text("po6", "z9hG4bKpo6"));
    h.advance(Duration::from_millis(10));
    let rs = h.take_responses(PHONE);
    let prack = response_to(&rs, Method::Prack);
    assert_eq!(prack.map(|r| r.status()), Some(200), "{rs:?}");
}

/// On an anchored call the callee is offered the gateway's media address, and the phone
/// is answered with it: neither sees the other's.
#[test]
fn the_offer_and_answer_through_the_update_are_anchored() {
    let mut h = anchored();
    let (_, _, update) = offer_in_prack(&mut h, "po7");
    let offer = String::from_utf8_lossy(update.body()).into_owned();
    assert!(
        offer.contains("c=IN IP4 127.0.0.1") && !offer.contains("192.0.2.10"),
        "{offer}"
    );
    callee_takes(&mut h, &update);
    let ok = h.response_with(PHONE, 200, "the PRACK's 200");
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(
        answer.contains("c=IN IP4 127.0.0.1") && !answer.contains("192.0.2.10"),
        "{answer}"
    );
}

/// A callee whose answer came in an unreliable 183 (the gateway made it reliable toward
/// the phone) has not completed its offer/answer: it may not be sent an offer in an UPDATE
/// yet (RFC 3311 §5.1), so the PRACK gets 200 without an answer at once.
#[test]
fn a_callee_whose_answer_was_not_reliable_is_sent_no_update() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("po8", "z9hG4bKpo8"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let headers = [(Hdr::CONTACT, "<sip:c@127.0.0.3>"), (Hdr::ALLOW, ALLOW)];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &headers, Some(SDP)));
    let r183 = h.response_with(PHONE, 183, "reliable toward the phone");
    let rseq = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(
        PHONE,
        &phone_prack("po8", &r183.to_tag().unwrap(), 2, rseq, &moved()),
    );
    let ok = h.response_with(PHONE, 200, "at once");
    assert!(ok.body().is_empty());
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
}

/// Two branches of a forking proxy answered in reliable 183s: an UPDATE would change one
/// branch's session while the other may answer the call, so none goes.
#[test]
fn no_update_goes_to_one_of_several_branches() {
    let mut h = H::new();
    let (inv, tag, rseq) = reliable_183_allowing(&mut h, "po9", ALLOW);
    let headers = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:c2@127.0.0.3>"),
        (Hdr::ALLOW, ALLOW),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c2", &headers, Some(SDP)));
    // The second branch's 183 queues behind the first, unacknowledged.
    h.recv(PHONE, &phone_prack("po9", &tag, 2, rseq, &moved()));
    let rs = h.take_responses(PHONE);
    assert_eq!(prack_200(&rs), Some((200, true)), "{rs:?}");
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
}

/// The callee's 2xx comes without SDP (RFC 3262 lets it: its answer was reliable): the
/// relay keeps sending to where the UPDATE's answer moved it, not back to where its 183
/// said. Before, the 183's answer, kept for such a 2xx, put the relay back on port 4000.
#[test]
fn a_2xx_without_sdp_after_the_update_keeps_the_updates_session() {
    let mut h = anchored();
    let (inv, _, update) = offer_in_prack(&mut h, "po10");
    callee_takes(&mut h, &update);
    callee_answers(&mut h, &inv, None);
    let callee = h.relay_pairs()[0].b_remote;
    assert_eq!(callee, Some("192.0.2.10:5008".parse().unwrap()));
}

/// The UPDATE is not answered while the callee's 2xx waits for it: the PRACK gets its 200
/// and the caller the 2xx, and the UPDATE's own timeout later ends nothing. Before, it
/// released the call just answered (a BYE right after the 2xx, `peer_unreachable`).
#[test]
fn an_unanswered_update_does_not_end_the_answered_call() {
    let mut h = H::new();
    let (inv, tag, _) = offer_in_prack(&mut h, "po11");
    callee_answers(&mut h, &inv, Some(SDP));
    h.advance(Duration::from_millis(8100));
    let rs = h.take_responses(PHONE);
    let order: Vec<_> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().map(|c| c.1)))
        .collect();
    assert_eq!(
        order,
        [(200, Some(Method::Prack)), (200, Some(Method::Invite))]
    );
    // The offer was not taken: the 2xx's SDP is the session as it stands, and goes.
    assert!(!rs[1].body().is_empty());
    phone_acks(&mut h, "po11", &tag);
    h.one_request(CARRIER_A, Method::Ack);
    h.advance(Duration::from_secs(40));
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert!(h.cdrs.is_empty(), "the call is up");
}

/// Another branch answers the call while the UPDATE is with the first: the first's answer
/// is not the call's, and the PRACK gets 200 without it. Before, that answer went to the
/// caller and the first branch's Contact became the answering branch's target.
#[test]
fn an_update_answered_by_a_branch_that_lost_answers_nothing() {
    let mut h = H::new();
    let (inv, tag, update) = offer_in_prack(&mut h, "po12");
    let contact = [(Hdr::CONTACT, "<sip:c2@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c2", &contact, Some(SDP)));
    let first = [(Hdr::CONTACT, "<sip:c1@127.0.0.3>")];
    h.recv_msg(
        CARRIER_A,
        reply(&update, 200, "c1", &first, Some(&callee_answer())),
    );
    let rs = h.take_responses(PHONE);
    assert_eq!(prack_200(&rs), Some((200, true)), "{rs:?}");
    phone_acks(&mut h, "po12", &tag);
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert!(ack.uri().to_string().contains("c2@"), "{}", ack.uri());
}

/// While the caller's offer is with the callee, a reliable provisional with SDP from the
/// callee waits: SDP reaching the caller then would cross its offer. It goes once the
/// PRACK is answered. Before, it went at once.
#[test]
fn a_provisional_waits_while_the_prack_offer_is_out() {
    let mut h = H::new();
    let (inv, _, update) = offer_in_prack(&mut h, "po13");
    let headers = reliable("2");
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &headers, Some(SDP)));
    assert!(h.statuses(PHONE).is_empty(), "it waits");
    callee_takes(&mut h, &update);
    assert_eq!(h.statuses(PHONE), [200, 183]);
}

/// An early-offer caller PRACKs a reliable 180 without SDP (its offer not yet answered: the
/// callee's 183 with the answer waits behind it) with SDP: no new offer that could be put,
/// so no UPDATE, though the callee's own offer/answer is done.
#[test]
fn sdp_in_the_prack_of_a_provisional_without_the_answer_goes_nowhere() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("po14", "z9hG4bKpo14"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ringing = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::ALLOW, ALLOW),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &ringing, None));
    let r180 = h.response_with(PHONE, 180, "180");
    let rseq: u32 = r180.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = r180.to_tag().unwrap();
    h.take(CARRIER_A);
    let progress = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "2"),
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::ALLOW, ALLOW),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &progress, Some(SDP)));
    assert!(h.statuses(PHONE).is_empty(), "the 183 waits behind the 180");
    h.recv(PHONE, &phone_prack("po14", &tag, 2, rseq, &moved()));
    let rs = h.take_responses(PHONE);
    assert_eq!(prack_200(&rs), Some((200, true)), "{rs:?}");
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
}

/// The caller's new session, taken by the first callee in an UPDATE, is what the next
/// callee of a failover is offered: not the INVITE's, which the caller has left. Before,
/// the next INVITE carried the INVITE's SDP (port 4000) while the caller was on 4002.
#[test]
fn a_failover_offers_the_session_the_prack_moved_to() {
    let mut h = H::new();
    let (inv, _, update) = offer_in_prack(&mut h, "po15");
    callee_takes(&mut h, &update);
    h.response_with(PHONE, 200, "the PRACK's 200");
    h.recv_msg(CARRIER_A, reply(&inv, 503, "c1", &[], None));
    let next = h.one_request(CARRIER_B, Method::Invite);
    let body = String::from_utf8_lossy(next.body()).into_owned();
    assert!(body.contains("m=audio 4002"), "{body}");
}

/// Once the PRACK's offer is taken, the caller's session is the new one: a later PRACK that
/// restates it is answered from the provisional PRACKed, and puts nothing to the callee.
#[test]
fn a_prack_restating_the_session_the_last_one_moved_to_is_no_new_offer() {
    let mut h = H::new();
    let (inv, tag, update) = offer_in_prack(&mut h, "po16");
    callee_takes(&mut h, &update);
    h.response_with(PHONE, 200, "the PRACK's 200");
    let again = reliable("2");
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 183, "c1", &again, Some(&callee_answer())),
    );
    let r183 = h.response_with(PHONE, 183, "the second 183");
    let rseq2: u32 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let restated = moved().replace("o=- 1 2", "o=- 1 3");
    h.recv(PHONE, &phone_prack("po16", &tag, 3, rseq2, &restated));
    let ok = h.response_with(PHONE, 200, "answered at once");
    assert_eq!(ok.body(), r183.body(), "the answer the 183 gave");
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    assert!(!ignored_after_cancel(&mut h, "po16"));
}

/// The callee moves its media by an UPDATE of its own in the early dialog, then answers
/// without SDP: the relay follows the UPDATE's session, not the 183's answer kept for such
/// a 2xx. Before, that answer was refreshed under the caller's tag (no match), and the
/// relay went back to the 183's port.
#[test]
fn a_callees_early_update_is_its_session_for_a_2xx_without_sdp() {
    let mut h = anchored();
    let (inv, tag, rseq) = reliable_183_allowing(&mut h, "po17", ALLOW);
    h.recv(PHONE, &phone_prack("po17", &tag, 2, rseq, ""));
    h.response_with(PHONE, 200, "the PRACK's 200");
    let update = from_carrier_in(&inv, "UPDATE", "c1", 2, "z9hG4bKpo17u", &callee_answer());
    let update = update.replacen("Content-", "Contact: <sip:c@127.0.0.3>\r\nContent-", 1);
    h.recv(CARRIER_A, &update);
    let to_phone = h.one_request(PHONE, Method::Update);
    let answer = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv_msg(PHONE, reply(&to_phone, 200, &tag, &[], Some(&answer)));
    h.response_with(CARRIER_A, 200, "the UPDATE's 200");
    callee_answers(&mut h, &inv, None);
    let callee = h.relay_pairs()[0].b_remote;
    assert_eq!(callee, Some("192.0.2.10:5008".parse().unwrap()));
}

/// Another branch answers (its 2xx waits) while the UPDATE is with the first;
/// the first then answers the UPDATE: not taken, and the relay stays with the branch that
/// answered the call. Before, not taking the offer put the media back to before the
/// UPDATE: the first branch's 183, the caller's RTP to the branch that lost.
#[test]
fn a_refused_prack_offer_goes_back_to_the_answering_branchs_media() {
    let mut h = anchored();
    let (inv, _, update) = offer_in_prack(&mut h, "po18");
    let contact = [(Hdr::CONTACT, "<sip:c2@127.0.0.3>")];
    let other = SDP.replace("4000", "6000");
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c2", &contact, Some(&other)));
    callee_takes(&mut h, &update);
    let rs = h.take_responses(PHONE);
    assert_eq!(prack_200(&rs), Some((200, true)), "{rs:?}");
    let ok = response_to(&rs, Method::Invite);
    assert!(
        ok.is_some_and(|r| !r.body().is_empty()),
        "the 2xx keeps its SDP: {rs:?}"
    );
    let pair = &h.relay_pairs()[0];
    assert_eq!(pair.b_remote, Some("192.0.2.10:6000".parse().unwrap()));
    assert_eq!(
        pair.a_remote,
        Some("192.0.2.10:4000".parse().unwrap()),
        "the caller stays where its refused offer would have moved it from"
    );
}

/// A reliable provisional queued behind the one PRACKed waits while the PRACK's offer is
/// with the callee, and goes after the PRACK's 200. Before, it went with the UPDATE.
#[test]
fn a_queued_provisional_waits_for_the_answer_to_the_prack_offer() {
    let mut h = H::new();
    let (inv, tag, rseq) = reliable_183_allowing(&mut h, "po19", ALLOW);
    let ringing = reliable("2");
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &ringing, None));
    assert!(h.statuses(PHONE).is_empty(), "queued behind the 183");
    h.recv(PHONE, &phone_prack("po19", &tag, 2, rseq, &moved()));
    let update = h.one_request(CARRIER_A, Method::Update);
    assert!(h.statuses(PHONE).is_empty(), "still queued");
    callee_takes(&mut h, &update);
    assert_eq!(h.statuses(PHONE), [200, 180]);
}

/// An unreliable 180 of another branch while the UPDATE is out moves the gateway's view of
/// the callee's early dialog; the UPDATE's branch still answers for its own dialog, and
/// the PRACK gets that answer while the call rings. Before, it was refused as another
/// branch's.
#[test]
fn another_branchs_ringing_does_not_refuse_the_updates_answer() {
    let mut h = H::new();
    let (inv, _, update) = offer_in_prack(&mut h, "po20");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "c2",
            &[(Hdr::CONTACT, "<sip:c2@127.0.0.3>")],
            None,
        ),
    );
    h.take(PHONE);
    callee_takes(&mut h, &update);
    let ok = h.response_with(PHONE, 200, "the PRACK's 200");
    assert!(String::from_utf8_lossy(ok.body()).contains("m=audio 5008"));
}

/// Two provisionals queued while the UPDATE is out: after the answer, each goes with the
/// SDP the PRACK's 200 gave, not the older one it was anchored with. Before, only the first
/// released was mended, and the second went with the session before the answer.
#[test]
fn every_queued_provisional_goes_with_the_answers_sdp() {
    let mut h = H::new();
    let (inv, tag, update) = offer_in_prack(&mut h, "po21");
    let rel = |rseq: &'static str| {
        [
            (Hdr::REQUIRE, "100rel"),
            (Hdr::RSEQ, rseq),
            (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        ]
    };
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &rel("2"), None));
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &rel("3"), Some(SDP)));
    callee_takes(&mut h, &update);
    let rs = h.take_responses(PHONE);
    let ok = rs
        .iter()
        .find(|r| r.status() == 200)
        .expect("the PRACK's 200");
    let r180 = rs
        .iter()
        .find(|r| r.status() == 180)
        .expect("the first queued");
    let rseq2: u32 = r180.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(PHONE, &phone_prack("po21", &tag, 3, rseq2, ""));
    let rs = h.take_responses(PHONE);
    let r183 = rs
        .iter()
        .find(|r| r.status() == 183)
        .expect("the second queued");
    assert_eq!(r183.body(), ok.body());
}

/// The caller's early UPDATE goes to the branch the gateway's callee dialog now follows;
/// a 2xx to an UPDATE from another branch does not move that dialog's target. Before, the
/// other branch's Contact became this one's target.
#[test]
fn an_updates_2xx_from_another_branch_moves_no_target() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("po22", "z9hG4bKpo22"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let headers = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:c1@127.0.0.3>"),
        (Hdr::ALLOW, ALLOW),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &headers, Some(SDP)));
    let r183 = h.response_with(PHONE, 183, "183");
    let tag = r183.to_tag().unwrap();
    let rseq: u32 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(PHONE, &phone_prack("po22", &tag, 2, rseq, ""));
    h.take(PHONE);
    h.take(CARRIER_A);
    let update = from_phone_in("po22", "UPDATE", &tag, 3, "z9hG4bKpo22u", &moved());
    h.recv(PHONE, &update);
    let sent = h.one_request(CARRIER_A, Method::Update);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "c2",
            &[(Hdr::CONTACT, "<sip:c2@127.0.0.3>")],
            None,
        ),
    );
    let moved_to = [(Hdr::CONTACT, "<sip:c1-moved@127.0.0.3>")];
    h.recv_msg(
        CARRIER_A,
        reply(&sent, 200, "c1", &moved_to, Some(&callee_answer())),
    );
    h.take(PHONE);
    // (An UPDATE without SDP: a connected-identity refresh, relayed in the early dialog.)
    let refresh = from_phone_in("po22", "UPDATE", &tag, 4, "z9hG4bKpo22i", "");
    h.recv(PHONE, &refresh);
    let relayed = h.one_request(CARRIER_A, Method::Update);
    assert!(
        relayed.uri().to_string().contains("c2@"),
        "{}",
        relayed.uri()
    );
}

/// A callee's own early UPDATE changes its kept answer (for a 2xx without SDP) only in the
/// same shape: an offer that adds a stream is no answer to our INVITE's offer, and would
/// turn the caller's streams on or off by the wrong shape. An answer to our offer (the
/// caller's, in its PRACK) is taken whatever its shape.
#[test]
fn a_callees_own_offer_stands_for_its_answer_only_in_the_same_shape() {
    use crate::call::state::{EarlyAnswer, UacRel};
    let sdp = |s: &str| bytes::Bytes::from(s.to_string());
    let ct = Some("application/sdp".to_string());
    let mut rel = UacRel::default();
    rel.keep_early_answer(EarlyAnswer {
        tag: "c1".into(),
        body: sdp(SDP),
        ct: ct.clone(),
    });
    let video = format!("{}m=video 5010 RTP/AVP 96\r\n", callee_answer());
    rel.refresh_early_answer("c1", &sdp(&video), ct.clone(), (false, false));
    assert_eq!(rel.take_early_answer("c1").unwrap().body, sdp(SDP));
    rel.keep_early_answer(EarlyAnswer {
        tag: "c1".into(),
        body: sdp(SDP),
        ct: ct.clone(),
    });
    rel.refresh_early_answer("c1", &sdp(&callee_answer()), ct.clone(), (false, false));
    assert_eq!(
        rel.take_early_answer("c1").unwrap().body,
        sdp(&callee_answer())
    );
    rel.keep_early_answer(EarlyAnswer {
        tag: "c1".into(),
        body: sdp(SDP),
        ct: ct.clone(),
    });
    rel.refresh_early_answer("c1", &sdp(&video), ct.clone(), (true, false));
    assert_eq!(rel.take_early_answer("c1").unwrap().body, sdp(&video));
    // Another shape, the caller having its answer: the old answer is emptied, the
    // dialog's exchange still done.
    rel.keep_early_answer(EarlyAnswer {
        tag: "c1".into(),
        body: sdp(SDP),
        ct: ct.clone(),
    });
    rel.refresh_early_answer("c1", &sdp(&video), ct, (false, true));
    assert!(rel.exchange_done("c1"));
    assert!(rel.take_early_answer("c1").unwrap().body.is_empty());
}

/// Another branch, which answered in its own reliable 183 (its answer kept), answers the
/// call with a 2xx without SDP while the UPDATE is with the first; the first refuses it:
/// the relay follows the branch that answered. Before, the 2xx without SDP left nothing to
/// anchor again after the refusal, and the relay went back to the first branch's 183.
#[test]
fn a_2xx_without_sdp_from_another_branch_is_followed_after_a_refusal() {
    let mut h = anchored();
    let (inv, _, update) = offer_in_prack(&mut h, "po23");
    let c2 = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:c2@127.0.0.3>"),
    ];
    let other = SDP.replace("4000", "6000");
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c2", &c2, Some(&other)));
    h.take(CARRIER_A);
    let contact = [(Hdr::CONTACT, "<sip:c2@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c2", &contact, None));
    h.recv_msg(CARRIER_A, reply(&update, 488, "c1", &[], None));
    let rs = h.take_responses(PHONE);
    assert_eq!(
        response_to(&rs, Method::Invite).map(|r| r.status()),
        Some(200)
    );
    let pair = &h.relay_pairs()[0];
    assert_eq!(pair.b_remote, Some("192.0.2.10:6000".parse().unwrap()));
    assert_eq!(pair.a_remote, Some("192.0.2.10:4000".parse().unwrap()));
}

/// The PRACK's offer turns a stream off (port 0); the callee's 2xx crosses the UPDATE, which
/// it then refuses: the 2xx reaches the caller as an answer to the session it still has,
/// both streams on. Before, the 2xx was anchored while the refused offer was current, and
/// went with the video stream refused.
#[test]
fn a_2xx_crossing_a_refused_offer_answers_the_session_as_it_stands() {
    let mut h = anchored();
    let video = "m=video 4010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    let av = format!("{SDP}{video}");
    let invite = invite_100rel("po24", "z9hG4bKpo24")
        .replace(SDP, &av)
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {}", av.len()),
        );
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let headers = [
        (Hdr::REQUIRE, "100rel"),
        (Hdr::RSEQ, "1"),
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::ALLOW, ALLOW),
    ];
    let answer = format!("{SDP}m=video 5010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &headers, Some(&answer)));
    let r183 = h.response_with(PHONE, 183, "183");
    let rseq: u32 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = r183.to_tag().unwrap();
    let off = format!(
        "{}m=video 0 RTP/AVP 96\r\n",
        SDP.replace("o=- 1 1", "o=- 1 2")
    );
    h.recv(PHONE, &phone_prack("po24", &tag, 2, rseq, &off));
    let update = h.one_request(CARRIER_A, Method::Update);
    let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &contact, Some(&answer)));
    h.recv_msg(CARRIER_A, reply(&update, 488, "c1", &[], None));
    let rs = h.take_responses(PHONE);
    let ok = response_to(&rs, Method::Invite)
        .filter(|r| r.status() == 200)
        .expect("the 2xx");
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(
        body.contains("m=video ") && !body.contains("m=video 0 "),
        "{body}"
    );
}

/// The route's ring timeout falls while the callee's 2xx waits for the answer to the
/// PRACK's offer: the callee has answered, so the call is not failed for want of one.
/// Before, the caller got 408 and the answered callee a CANCEL.
#[test]
fn the_ring_timeout_does_not_fail_a_call_whose_2xx_waits() {
    let mut cfg = config_with(|_, _| {});
    cfg.routes[0].ring_timeout = Some(Duration::from_secs(5));
    let mut h = H::with(cfg);
    let (inv, tag, rseq) = reliable_183_allowing(&mut h, "po25", ALLOW);
    h.advance(Duration::from_secs(4));
    h.recv(PHONE, &phone_prack("po25", &tag, 2, rseq, &moved()));
    h.one_request(CARRIER_A, Method::Update);
    callee_answers(&mut h, &inv, Some(SDP));
    h.advance(Duration::from_millis(8100));
    let st = h.statuses(PHONE);
    assert!(st.iter().all(|s| *s < 300), "{st:?}");
    assert!(st.contains(&200), "{st:?}");
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
}

/// The caller cancels while the callee's 2xx waits: that 2xx is ACKed and hung up at once,
/// not left to its retransmissions. Before, it was dropped with the PRACK's relay.
#[test]
fn a_cancel_while_the_2xx_waits_hangs_that_2xx_up() {
    let mut h = H::new();
    let (inv, _, _) = offer_in_prack(&mut h, "po26");
    callee_answers(&mut h, &inv, Some(SDP));
    h.recv(PHONE, &cancel_text("po26", "z9hG4bKpo26"));
    let sent = h.take(CARRIER_A);
    let methods: Vec<Method> = sent
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method()),
            _ => None,
        })
        .collect();
    assert!(
        methods.contains(&Method::Ack) && methods.contains(&Method::Bye),
        "{methods:?}"
    );
    let bye = (sent.into_iter())
        .find_map(|m| match m {
            Message::Request(r) if r.method() == Method::Bye => Some(r),
            _ => None,
        })
        .unwrap();
    h.recv_msg(CARRIER_A, reply(&bye, 200, "c1", &[], None));
    // Its INVITE transaction closed with it: the call is forgotten with its last
    // transactions (the caller's INVITE, Timer H's 32 s), not left for the 40 s of a
    // call that still had one open.
    h.advance(Duration::from_secs(33));
    assert_eq!(h.core.stats().calls, 0, "{:?}", h.core.stats());
}

/// Another branch's 2xx while the first's waits is ACKed and hung up at once.
#[test]
fn another_branchs_2xx_while_one_waits_is_hung_up() {
    let mut h = H::new();
    let (inv, _, _) = offer_in_prack(&mut h, "po27");
    callee_answers(&mut h, &inv, Some(SDP));
    let other = [(Hdr::CONTACT, "<sip:c2@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c2", &other, Some(SDP)));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.to_tag().as_deref(), Some("c2"));
}

/// The UPDATE's 2xx moves the callee's target after its INVITE 2xx, which waited, was
/// sent: the newer Contact stays the dialog's. Before, the waiting 2xx's older Contact
/// came back when it was taken.
#[test]
fn the_updates_contact_outlives_the_waiting_2xxs() {
    let mut h = H::new();
    let (inv, tag, update) = offer_in_prack(&mut h, "po28");
    let old = [(Hdr::CONTACT, "<sip:c-old@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &old, Some(SDP)));
    let new = [(Hdr::CONTACT, "<sip:c-new@127.0.0.3>")];
    h.recv_msg(
        CARRIER_A,
        reply(&update, 200, "c1", &new, Some(&callee_answer())),
    );
    phone_acks(&mut h, "po28", &tag);
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert!(ack.uri().to_string().contains("c-new@"), "{}", ack.uri());
}

/// The PRACK of a provisional without SDP that our 2xx overtook carries an offer: it comes
/// after the call's answer and is not put, but the CDR says so. Before, it went unrecorded.
#[test]
fn an_offer_in_a_prack_the_2xx_overtook_is_recorded() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("po29", "z9hG4bKpo29"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ringing = reliable("1");
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &ringing, None));
    let r180 = h.response_with(PHONE, 180, "180");
    let rseq: u32 = r180.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    let tag = r180.to_tag().unwrap();
    callee_answers(&mut h, &inv, Some(SDP));
    h.response_with(PHONE, 200, "the 2xx overtakes the 180's PRACK");
    h.recv(PHONE, &phone_prack("po29", &tag, 2, rseq, &moved()));
    h.response_with(PHONE, 200, "the PRACK's 200");
    phone_acks(&mut h, "po29", &tag);
    h.recv(
        PHONE,
        &from_phone_in("po29", "BYE", &tag, 3, "z9hG4bKpo29b", ""),
    );
    let events = &h.cdrs[0].events;
    assert!(
        events.contains(&"prack_offer_ignored".to_string()),
        "{events:?}"
    );
}

/// The `o=` version of the SDP in `r`.
fn sdp_version(r: &Response) -> u64 {
    let sdp = String::from_utf8_lossy(r.body()).into_owned();
    let o = sdp.lines().find_map(|l| l.strip_prefix("o=")).expect("o=");
    o.split(' ').nth(2).unwrap().parse().unwrap()
}

/// The carrier's session of [`SDP`] on PCMA, in a new version.
fn pcma() -> String {
    SDP.replace("o=- 1 1", "o=- 1 2")
        .replace("RTP/AVP 0", "RTP/AVP 8")
        .replace("0 PCMU", "8 PCMA")
}

/// A provisional with changed SDP that came while the PRACK's offer was out is numbered
/// for the caller when it goes, after the PRACK's answer: the caller sees each version
/// one past the last (RFC 3264 §8). Before, it took its number as it came, and the
/// PRACK's answer skipped one.
#[test]
fn a_provisional_queued_while_the_prack_offer_is_out_skips_no_version() {
    let mut h = anchored();
    let (inv, tag, rseq) = reliable_183_allowing(&mut h, "po30", ALLOW);
    // The first 183 showed the caller the carrier's session as it numbered it.
    let first = 1;
    h.recv(PHONE, &phone_prack("po30", &tag, 2, rseq, &moved()));
    let update = h.one_request(CARRIER_A, Method::Update);
    // The carrier's early media changes (a new codec) while the UPDATE is out.
    let changed = pcma();
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 183, "c1", &reliable("2"), Some(&changed)),
    );
    // Its answer to the UPDATE changes what the caller sees too (a ptime).
    let answer = callee_answer() + "a=ptime:30\r\n";
    h.recv_msg(CARRIER_A, reply(&update, 200, "c1", &[], Some(&answer)));
    let rs = h.take_responses(PHONE);
    let ok = response_to(&rs, Method::Prack).expect("the PRACK's 200");
    assert_eq!(sdp_version(ok), first + 1, "the PRACK's answer");
    let queued = rs
        .iter()
        .find(|r| r.status() == 183)
        .expect("the queued 183");
    assert_eq!(
        sdp_version(queued),
        first + 1,
        "the same SDP, the same version"
    );
    assert_eq!(queued.body(), ok.body());
}

/// Provisionals queued while the PRACK's offer is out, when the callee refuses it: each
/// goes with its own SDP, numbered one past the last the caller saw, in the order they go.
#[test]
fn provisionals_queued_past_a_refused_prack_offer_are_numbered_in_turn() {
    let mut h = anchored();
    let (inv, tag, update) = offer_in_prack(&mut h, "po31");
    let pcma = pcma();
    let back = SDP.replace("o=- 1 1", "o=- 1 3");
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 183, "c1", &reliable("2"), Some(&pcma)),
    );
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 183, "c1", &reliable("3"), Some(&back)),
    );
    h.recv_msg(CARRIER_A, reply(&update, 488, "c1", &[], None));
    let rs = h.take_responses(PHONE);
    assert_eq!(prack_200(&rs), Some((200, true)), "no answer");
    let second = rs
        .iter()
        .find(|r| r.status() == 183)
        .expect("the first queued");
    assert_eq!(sdp_version(second), 2);
    assert!(String::from_utf8_lossy(second.body()).contains("PCMA"));
    let rseq: u32 = second.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(PHONE, &phone_prack("po31", &tag, 3, rseq, ""));
    let rs = h.take_responses(PHONE);
    let third = rs
        .iter()
        .find(|r| r.status() == 183)
        .expect("the second queued");
    assert_eq!(sdp_version(third), 3, "changed back: the next version");
}

/// A harness whose carrier's profile requires session timers (RFC 4028) of 300 s.
fn timers_on_carrier() -> H {
    use crate::interop::session_timer::{SessionTimerPolicy, TimerMode};
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = SessionTimerPolicy {
                mode: TimerMode::Require,
                expires: Duration::from_secs(300),
                min_se: Duration::from_secs(90),
            };
        }
    }))
}

/// The UPDATE carrying the PRACK's offer restates the callee's session timer as the INVITE
/// asked for it: one that crosses the callee's 2xx is taken as a refresh, and without
/// Session-Expires would turn the callee's timer off (RFC 4028 §9) while the gateway still
/// waits for its refreshes. Before, it carried none.
#[test]
fn the_update_carrying_the_prack_offer_restates_the_session_timer() {
    let mut h = timers_on_carrier();
    let (inv, _, update) = offer_in_prack(&mut h, "po32");
    assert_eq!(inv.header(&Hdr::SESSION_EXPIRES).as_deref(), Some("300"));
    assert_eq!(update.header(&Hdr::SESSION_EXPIRES).as_deref(), Some("300"));
    assert!(update.header_has_token(&Hdr::SUPPORTED, "timer"));
    // Without a timer on the callee's leg, none.
    let mut h = H::new();
    let (inv, _, update) = offer_in_prack(&mut h, "po33");
    assert_eq!(inv.header(&Hdr::SESSION_EXPIRES), None);
    assert_eq!(update.header(&Hdr::SESSION_EXPIRES), None);
}

/// After the callee's 422 (its Min-SE above what the profile asks), the UPDATE restates the
/// terms the INVITE was sent again with, not the first ask the callee refused: it would
/// refuse the UPDATE too, and the caller's offer would go unanswered.
#[test]
fn after_a_422_the_update_asks_for_the_callees_minimum() {
    let mut h = timers_on_carrier();
    h.recv(PHONE, &invite_100rel("po34", "z9hG4bKpo34"));
    let first = h.one_request(CARRIER_A, Method::Invite);
    let min = [(Hdr::MIN_SE, "1800")];
    h.recv_msg(CARRIER_A, reply(&first, 422, "c0", &min, None));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.header(&Hdr::SESSION_EXPIRES).as_deref(), Some("1800"));
    let (tag, rseq) = reliable_183_to(&mut h, &inv, ALLOW);
    h.recv(PHONE, &phone_prack("po34", &tag, 2, rseq, &moved()));
    let update = h.one_request(CARRIER_A, Method::Update);
    assert_eq!(
        update.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("1800")
    );
    assert_eq!(update.header(&Hdr::MIN_SE).as_deref(), Some("1800"));
}

/// The UPDATE crossed the callee's 2xx: to the callee it was a refresh, and the terms its
/// 2xx to the UPDATE states (the gateway refreshes; or none, when the callee then runs no
/// timer, and the gateway refreshes to be safe) are the newer. The gateway keeps them, not
/// those of the 2xx to the INVITE that waited (the callee refreshes): else neither side
/// would refresh, and the callee would end the call when its timer ran out.
#[test]
fn the_updates_timer_terms_follow_the_2xx_it_crossed() {
    for (n, stated) in [(35, Some("300;refresher=uac")), (36, None)] {
        let mut h = timers_on_carrier();
        let id = format!("po{n}");
        let (inv, tag, update) = offer_in_prack(&mut h, &id);
        let ok_inv = [
            (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
            (Hdr::SESSION_EXPIRES, "300;refresher=uas"),
            (Hdr::REQUIRE, "timer"),
        ];
        h.recv_msg(CARRIER_A, reply(&inv, 200, "c1", &ok_inv, Some(SDP)));
        let ok_update: Vec<(Hdr, &str)> = match stated {
            Some(se) => vec![(Hdr::SESSION_EXPIRES, se), (Hdr::REQUIRE, "timer")],
            None => vec![],
        };
        let answer = callee_answer();
        h.recv_msg(
            CARRIER_A,
            reply(&update, 200, "c1", &ok_update, Some(&answer)),
        );
        phone_acks(&mut h, &id, &tag);
        h.take(CARRIER_A);
        h.advance(Duration::from_secs(149));
        assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
        h.advance(Duration::from_secs(2));
        let refresh = h.take_requests(CARRIER_A, Method::Update);
        assert!(
            !refresh.is_empty(),
            "{stated:?}: the gateway refreshes the carrier at half the interval"
        );
    }
}

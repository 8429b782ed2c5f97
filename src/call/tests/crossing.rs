//! Offers and INVITEs that cross: glare (491), a second offer before its sender's first is
//! answered (500 with Retry-After), and offers waiting in a 2xx, an 18x or a refresh.

use super::*;

/// The final responses `to` got, with their Retry-After.
fn finals_with_retry_after(h: &mut H, to: &str) -> Vec<(u16, Option<u32>)> {
    h.take_responses(to)
        .iter()
        .filter(|r| r.status() > 100)
        .map(|r| {
            let after = r
                .header(&Hdr::RETRY_AFTER)
                .map(|v| v.trim().parse().unwrap());
            (r.status(), after)
        })
        .collect()
}

#[test]
fn a_second_invite_before_the_first_is_answered_gets_500_with_retry_after() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKg1", SDP));
    h.one_request(CARRIER_A, Method::Invite);
    h.take(PHONE);
    // RFC 3261 §14.2: not glare, the phone's own INVITE is still unanswered.
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKg2", SDP));
    let finals = finals_with_retry_after(&mut h, PHONE);
    assert!(
        matches!(finals[..], [(500, Some(0..=10))]),
        "500 with a Retry-After of 0 to 10 s: {finals:?}"
    );
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
}

/// A re-INVITE in the early dialog, the caller's first INVITE still unanswered: 500 with
/// Retry-After (RFC 3261 §14.2), not the 491 of glare it got before.
#[test]
fn an_invite_before_the_callers_first_is_answered_gets_500_with_retry_after() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKe1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &[], None));
    let ringing = h.take_responses(PHONE);
    let tag = ringing
        .iter()
        .find(|r| r.status() == 180)
        .and_then(|r| r.to_tag())
        .expect("the 180's tag");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKe2", SDP));
    let finals = finals_with_retry_after(&mut h, PHONE);
    assert!(
        matches!(finals[..], [(500, Some(0..=10))]),
        "500 with a Retry-After of 0 to 10 s: {finals:?}"
    );
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
}

#[test]
fn glare_gets_491() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKg3", SDP));
    h.one_request(CARRIER_A, Method::Invite);
    // The carrier's re-INVITE crosses the phone's (RFC 3261 §14.1).
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 1, "z9hG4bKg4", SDP),
    );
    assert_eq!(
        finals_with_retry_after(&mut h, CARRIER_A),
        vec![(491, None)]
    );
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
}

#[test]
fn an_update_offer_crossing_its_senders_own_gets_500_and_the_others_491() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let hold = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKc1", &hold));
    h.one_request(CARRIER_A, Method::Invite);
    h.take(PHONE);
    // The phone's second offer before its first is answered (RFC 3311 §5.2).
    h.recv(PHONE, &from_phone("UPDATE", &tag, 3, "z9hG4bKc2", SDP));
    let finals = finals_with_retry_after(&mut h, PHONE);
    assert!(matches!(finals[..], [(500, Some(0..=10))]), "{finals:?}");
    // The carrier's offer crosses an offer made to it.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "carrier1", 1, "z9hG4bKc3", SDP),
    );
    assert_eq!(
        finals_with_retry_after(&mut h, CARRIER_A),
        vec![(491, None)]
    );
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    assert!(h.take_requests(PHONE, Method::Update).is_empty());
}

#[test]
fn an_offer_crossing_one_in_a_2xx_waits_for_the_ack() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    // The phone's re-INVITE without SDP: the carrier offers in its 200.
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKo1", ""));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert!(h.statuses(PHONE).contains(&200));
    // Before the phone's ACK answers it, neither side may offer again.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "carrier1", 1, "z9hG4bKo2", SDP),
    );
    let finals = finals_with_retry_after(&mut h, CARRIER_A);
    assert!(matches!(finals[..], [(500, Some(0..=10))]), "{finals:?}");
    h.recv(PHONE, &from_phone("UPDATE", &tag, 3, "z9hG4bKo3", SDP));
    assert_eq!(finals_with_retry_after(&mut h, PHONE), vec![(491, None)]);
    assert!(h.take_requests(PHONE, Method::Update).is_empty());
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    // Nor may the carrier re-INVITE: it has not had our ACK (RFC 3261 §14.2: glare).
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 2, "z9hG4bKo6", SDP),
    );
    assert_eq!(
        finals_with_retry_after(&mut h, CARRIER_A),
        vec![(491, None)]
    );
    // The ACK answers it; then an offer goes through.
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKo4", SDP));
    h.one_request(CARRIER_A, Method::Ack);
    h.recv(PHONE, &from_phone("UPDATE", &tag, 4, "z9hG4bKo5", SDP));
    h.one_request(CARRIER_A, Method::Update);
}

#[test]
fn a_reinvite_before_the_ack_of_our_2xx_gets_491() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKg9", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let tag = ok.to_tag().unwrap();
    // No ACK yet from the phone: a new offer in its dialog must wait.
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKg10", SDP));
    let finals: Vec<u16> = h.statuses(PHONE).into_iter().filter(|s| *s > 100).collect();
    assert!(finals.contains(&491), "{finals:?}");
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
}

#[test]
fn an_invite_without_sdp_crossing_an_offer_gets_491() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("UPDATE", &tag, 2, "z9hG4bKn1", SDP));
    h.one_request(CARRIER_A, Method::Update);
    // It asks for an offer, which could only cross the phone's.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 1, "z9hG4bKn2", ""),
    );
    assert_eq!(
        finals_with_retry_after(&mut h, CARRIER_A),
        vec![(491, None)]
    );
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
}

/// A re-INVITE requiring an extension the gateway does not support gets 420 naming it (RFC
/// 3261 §8.2.2.3), and is not relayed without it (its Require is the leg's own). Before, it
/// went on to the carrier with the requirement silently dropped. A BYE ends the call
/// whatever it requires.
#[test]
fn an_in_dialog_request_requiring_an_unknown_extension_gets_420() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let re = from_phone("INVITE", &tag, 2, "z9hG4bKrq1", SDP).replace(
        "Content-Length:",
        "Require: precondition\r\nContent-Length:",
    );
    assert!(re.contains("Require: precondition"));
    h.recv(PHONE, &re);
    let r = h.take_responses(PHONE);
    let refusal = r.iter().find(|r| r.status() > 100).expect("a final answer");
    assert_eq!(refusal.status(), 420);
    assert_eq!(
        refusal.header(&Hdr::UNSUPPORTED).as_deref(),
        Some("precondition")
    );
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    let bye = from_phone("BYE", &tag, 3, "z9hG4bKrq2", "").replace(
        "Content-Length:",
        "Require: precondition\r\nContent-Length:",
    );
    h.recv(PHONE, &bye);
    assert_eq!(h.statuses(PHONE), vec![200]);
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
}

//! The answer to the gateway's own offer (a session refresh) with terms the other leg was
//! not shown (SRTP keys made anew, payload types renumbered) is offered to that leg
//! (`Call::carry_over`): the relay passes media without reading it, so a leg left with the
//! old keys could not decrypt the other's audio.

use super::session_timer::{answer_refresh, call_offering, timers, with_headers};
use super::*;
use crate::interop::session_timer::TimerMode;

/// The phone's SRTP offer (its key `PHONEKEY`).
fn srtp(key: &str, version: u32) -> String {
    SDP.replace("RTP/AVP 0", "RTP/SAVP 0")
        .replace("o=- 1 1", &format!("o=- 1 {version}"))
        + &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n")
}

/// An anchored call, the carrier refreshed by us every 150 s, set up with SRTP: the phone
/// (its INVITE with `phone_extra`) offering `PHONEKEY`, the carrier answering `CARRIERKEY`.
/// Our 200 to the phone.
fn srtp_call_with(h: &mut H, phone_extra: &str) -> Response {
    let sdp = (&srtp("PHONEKEY", 1), &srtp("CARRIERKEY", 1));
    let (_, ok) = call_offering(h, phone_extra, &[], (sdp.0, sdp.1));
    assert!(String::from_utf8_lossy(ok.body()).contains("inline:CARRIERKEY"));
    ok
}

/// [`srtp_call_with`] a plain INVITE: our tag toward the phone.
fn srtp_call(h: &mut H) -> String {
    srtp_call_with(h, "").to_tag().expect("our tag")
}

fn refreshed() -> H {
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
            p.anchor = true;
        }
    }))
}

/// Our refresh to the carrier, once due.
fn refresh(h: &mut H) -> Request {
    h.advance(Duration::from_millis(150_200));
    h.one_request(CARRIER_A, Method::Invite)
}

fn body(r: &Request) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// The carrier answers our refresh with a new key: the phone is offered it (a re-INVITE in
/// its dialog, the next version of its session), and its answer, with its own key as
/// before, goes no further. The next refresh offers the carrier what it has. Before, the
/// new key reached no one, and the phone could not decrypt the carrier's audio.
#[test]
fn a_new_key_in_the_answer_to_our_refresh_is_offered_to_the_other_leg() {
    let mut h = refreshed();
    let ok = srtp_call_with(&mut h, "");
    let ours = ok.to_tag().expect("our tag");
    let r1 = refresh(&mut h);
    assert!(body(&r1).contains("inline:PHONEKEY"), "{}", body(&r1));
    answer_refresh(&mut h, &r1, &srtp("NEWCARRIERKEY", 2));
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    let re = h.one_request(PHONE, Method::Invite);
    assert!(body(&re).contains("inline:NEWCARRIERKEY"), "{}", body(&re));
    assert!(!body(&re).contains("inline:CARRIERKEY"), "{}", body(&re));
    assert_eq!(re.from_tag().as_deref(), Some(ours.as_str()));
    assert_eq!(origin_version(re.body()), origin_version(ok.body()) + 1);
    h.recv_msg(
        PHONE,
        reply(&re, 200, "alice1", &[], Some(&srtp("PHONEKEY", 2))),
    );
    assert_eq!(h.take_requests(PHONE, Method::Ack).len(), 1);
    assert!(h.take(CARRIER_A).is_empty(), "the phone kept its key");
    // The carrier's session stands: refreshed with the phone's key as before.
    let r2 = refresh(&mut h);
    assert_eq!(r2.body(), r1.body());
    answer_refresh(&mut h, &r2, &srtp("NEWCARRIERKEY", 2));
    h.take_requests(CARRIER_A, Method::Ack);
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
}

/// A refresh answered with the same key (at a new address, or a new version) offers the
/// phone nothing: the relay follows the address.
#[test]
fn the_same_key_at_a_new_address_offers_nothing() {
    let mut h = refreshed();
    srtp_call(&mut h);
    let r1 = refresh(&mut h);
    let moved = srtp("CARRIERKEY", 2).replace("m=audio 4000", "m=audio 4400");
    answer_refresh(&mut h, &r1, &moved);
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4400".parse().unwrap())
    );
}

/// A carrier that answers our refresh with its codec under another payload type number: the
/// phone, which would send the old number, is offered the new one.
#[test]
fn a_payload_type_renumbered_in_the_answer_is_offered_to_the_other_leg() {
    let mut h = refreshed();
    let opus = |pt: &str, v: u32| {
        SDP.replace("o=- 1 1", &format!("o=- 1 {v}")).replace(
            "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
            &format!("RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2"),
        )
    };
    call_offering(&mut h, "", &[], (&opus("96", 1), &opus("96", 1)));
    let r1 = refresh(&mut h);
    answer_refresh(&mut h, &r1, &opus("111", 2));
    let re = h.one_request(PHONE, Method::Invite);
    assert!(body(&re).contains("m=audio "), "{}", body(&re));
    assert!(
        body(&re).contains(" RTP/AVP 111\r\na=rtpmap:111 opus/48000/2"),
        "{}",
        body(&re)
    );
}

/// Two peers that make a new key in every answer: the carrier's is offered to the phone,
/// the phone's new one to the carrier, and there it stops (each would answer with yet
/// another), not an endless exchange of re-INVITEs.
#[test]
fn peers_that_rekey_in_every_answer_are_offered_twice_not_for_ever() {
    let mut h = refreshed();
    srtp_call(&mut h);
    let r1 = refresh(&mut h);
    answer_refresh(&mut h, &r1, &srtp("CARRIER2", 2));
    h.take_requests(CARRIER_A, Method::Ack);
    let to_phone = h.one_request(PHONE, Method::Invite);
    assert!(body(&to_phone).contains("inline:CARRIER2"));
    h.recv_msg(
        PHONE,
        reply(&to_phone, 200, "alice1", &[], Some(&srtp("PHONE2", 2))),
    );
    h.take_requests(PHONE, Method::Ack);
    let to_carrier = h.one_request(CARRIER_A, Method::Invite);
    assert!(
        body(&to_carrier).contains("inline:PHONE2"),
        "{}",
        body(&to_carrier)
    );
    answer_refresh(&mut h, &to_carrier, &srtp("CARRIER3", 3));
    h.take_requests(CARRIER_A, Method::Ack);
    assert!(
        h.take_requests(PHONE, Method::Invite).is_empty(),
        "no third offer"
    );
    assert!(h.cdrs.is_empty(), "the call is still up");
}

/// The phone refuses the new key offered to it (488): its session stays the one it has. Its
/// own unchanged refresh is answered here with that session (the carrier's first key), not
/// with the refused offer; before, the refused offer had become the leg's session, and the
/// phone's refreshes were relayed.
#[test]
fn a_carried_offer_refused_leaves_the_leg_its_session() {
    let mut h = refreshed();
    let timer = "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n";
    let tag = srtp_call_with(&mut h, timer).to_tag().expect("our tag");
    let r1 = refresh(&mut h);
    answer_refresh(&mut h, &r1, &srtp("NEWCARRIERKEY", 2));
    h.take_requests(CARRIER_A, Method::Ack);
    let re = h.one_request(PHONE, Method::Invite);
    h.recv_msg(PHONE, reply(&re, 488, "alice1", &[], None));
    assert_eq!(h.take_requests(PHONE, Method::Ack).len(), 1);
    let again = from_phone("INVITE", &tag, 2, "z9hG4bKpr2", &srtp("PHONEKEY", 1));
    h.recv(
        PHONE,
        &with_headers(&again, "Session-Expires: 600;refresher=uac\r\n"),
    );
    let r = h.response_with(PHONE, 200, "the phone's refresh answered here");
    let answer = String::from_utf8_lossy(r.body()).into_owned();
    assert!(answer.contains("inline:CARRIERKEY"), "{answer}");
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
}

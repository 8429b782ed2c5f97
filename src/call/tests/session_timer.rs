//! Session timers (RFC 4028), each leg on its own: negotiation, refreshes answered or sent
//! by the gateway, 422 both ways, expiry releasing the call.

use super::*;
use crate::interop::session_timer::{SessionTimerPolicy, TimerMode};

pub(super) fn timers(mode: TimerMode, expires: u64) -> SessionTimerPolicy {
    SessionTimerPolicy {
        mode,
        expires: Duration::from_secs(expires),
        min_se: Duration::from_secs(90),
    }
}

/// The carrier's in-dialog request to the gateway (its dialog from `inv`), with the header
/// lines `extra`.
fn from_carrier(inv: &Request, method: &str, cseq: u32, branch: &str, extra: &str) -> String {
    with_headers(
        &from_carrier_in(inv, method, "carrier1", cseq, branch, ""),
        extra,
    )
}

/// `msg` with the header lines `extra` added after its Max-Forwards.
/// A call whose phone asked for a 600 s session it refreshes itself: our INVITE, the
/// phone's 200, and our tag toward the phone.
fn phone_refreshing(h: &mut H) -> (Request, Response, String) {
    let (inv, ok) = call_with(
        h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n",
        &[],
    );
    let tag = ok.to_tag().unwrap();
    (inv, ok, tag)
}

/// The phone's refresh re-INVITE in call `tag`: its SDP again, o= unchanged, restating its
/// timer (without Session-Expires it would turn it off).
fn phone_refresh(tag: &str, cseq: u32, branch: &str) -> String {
    with_headers(
        &from_phone("INVITE", tag, cseq, branch, SDP),
        "Session-Expires: 600;refresher=uac\r\n",
    )
}

pub(super) fn with_headers(msg: &str, extra: &str) -> String {
    msg.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
        1,
    )
}

/// A call from the phone (its INVITE with `phone_extra`) answered by the carrier (its 200
/// with `carrier_extra`) and ACKed. Returns (the carrier's INVITE, the phone's 200).
fn call_with(h: &mut H, phone_extra: &str, carrier_extra: &[(Hdr, &str)]) -> (Request, Response) {
    call_offering(h, phone_extra, carrier_extra, (SDP, SDP))
}

/// [`call_with`], the phone offering `sdp.0` and the carrier answering `sdp.1`.
pub(super) fn call_offering(
    h: &mut H,
    phone_extra: &str,
    carrier_extra: &[(Hdr, &str)],
    sdp: (&str, &str),
) -> (Request, Response) {
    let invite = invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", phone_extra)
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {}", sdp.0.len()),
        )
        .replace(SDP, sdp.0);
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let mut extra = vec![(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    extra.extend_from_slice(carrier_extra);
    h.recv_msg(CARRIER_A, reply(&inv, 200, "carrier1", &extra, Some(sdp.1)));
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKack1", ""));
    h.one_request(CARRIER_A, Method::Ack);
    (inv, ok)
}

#[test]
fn the_callers_timer_is_negotiated_on_its_leg_alone_and_expires_the_call() {
    let mut h = H::new();
    let (inv, ok) = call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\nMin-SE: 90\r\n",
        &[],
    );
    // The carrier's INVITE says what the gateway supports toward it, not the phone's terms.
    assert!(inv.header_has_token(&Hdr::SUPPORTED, "timer"));
    assert!(!inv.has_header(&Hdr::SESSION_EXPIRES));
    assert!(!inv.has_header(&Hdr::MIN_SE));
    // The phone is told its own terms: it refreshes.
    assert_eq!(
        ok.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("600;refresher=uac")
    );
    assert!(ok.header_has_token(&Hdr::REQUIRE, "timer"));
    let tag = ok.to_tag().unwrap();

    // The phone refreshes with UPDATE at half time: answered here, the carrier sees nothing.
    h.advance(Duration::from_secs(300));
    h.recv(
        PHONE,
        &with_headers(
            &from_phone("UPDATE", &tag, 2, "z9hG4bKu2", ""),
            "Session-Expires: 600;refresher=uac\r\n",
        ),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("600;refresher=uac")
    );
    assert!(
        h.take(CARRIER_A).is_empty(),
        "no refresh ripples to the carrier"
    );

    // Then the phone goes silent: shortly before the interval ends (600 - 32 s), the call is
    // released on both legs.
    h.advance(Duration::from_secs(560));
    assert!(h.cdrs.is_empty());
    h.advance(Duration::from_secs(10));
    // One BYE each (and its retransmissions: nobody answers it here).
    for peer in [PHONE, CARRIER_A] {
        let byes = h.take_requests(peer, Method::Bye);
        assert!(!byes.is_empty(), "a BYE to {peer}");
        assert!(byes.iter().all(|b| b.cseq() == byes[0].cseq()));
    }
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
    assert_eq!(h.cdrs[0].cause, 102);
    assert!(
        h.cdrs[0]
            .events
            .iter()
            .any(|e| e == "session_expired_caller")
    );
}

#[test]
fn a_carrier_that_knows_no_timers_is_refreshed_by_reinvite_with_our_last_offer() {
    let mut h = carrier_requiring_timers();
    let (inv, ok) = call_with(&mut h, "", &[]);
    assert_eq!(inv.header(&Hdr::SESSION_EXPIRES).as_deref(), Some("300"));
    assert_eq!(inv.header(&Hdr::MIN_SE).as_deref(), Some("90"));
    // The carrier answered without Session-Expires: the gateway refreshes it at 150 s, with
    // a re-INVITE (its Allow is unknown) carrying the SDP it was offered, unchanged.
    h.advance(Duration::from_secs(149));
    assert!(h.take(CARRIER_A).is_empty());
    h.advance(Duration::from_millis(1200));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(re.cseq().unwrap(), (2, Method::Invite));
    assert_eq!(re.body(), inv.body(), "the same SDP, same o= version");
    assert_eq!(
        re.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("300;refresher=uac")
    );
    // An offer of the carrier's would cross the one the refresh made it.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "carrier1", 1, "z9hG4bKsu1", SDP),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![491]);
    assert!(h.take(PHONE).is_empty());
    h.recv_msg(
        CARRIER_A,
        reply(
            &re,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:moved@127.0.0.3:5070>")],
            Some(SDP),
        ),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (2, Method::Ack));
    // The ACK goes to the target the 2xx just gave (RFC 3261 §12.2.1.2, §13.2.2.4); before,
    // it was built before the 2xx's Contact was taken.
    assert_eq!(ack.uri(), "sip:moved@127.0.0.3:5070");
    assert!(h.take(PHONE).is_empty(), "the phone never hears of it");

    // The next refresh waits while the phone's offer waits for the carrier's answer: it
    // would cross it (RFC 3311 §5.1).
    let tag = ok.to_tag().unwrap();
    h.advance(Duration::from_millis(148_000));
    h.recv(PHONE, &from_phone("UPDATE", &tag, 2, "z9hG4bKsu2", SDP));
    let up = h.one_request(CARRIER_A, Method::Update);
    h.advance(Duration::from_millis(2_200));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.recv_msg(CARRIER_A, reply(&up, 200, "carrier1", &[], Some(SDP)));
    h.take(PHONE);
    // (That exchange refreshed the leg: the next refresh is due a half-interval later.)
    // The next refresh finds the dialog gone (481): the call is released.
    h.advance(Duration::from_millis(150_200));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 481, "carrier1", &[], None));
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
    assert!(
        h.cdrs[0]
            .events
            .iter()
            .any(|e| e == "session_expired_callee")
    );
}

/// On a SIP-I call the gateway's refresh offers the SDP alone: the IAM beside it went once,
/// in the INVITE, and a second one mid-call is an ISUP message out of place, which a far
/// interworking unit may release the call for. Before, the refresh re-INVITE carried the
/// whole multipart body again.
#[test]
fn a_sip_i_calls_refresh_offers_its_sdp_without_the_isup() {
    let mut h = carrier_requiring_timers();
    let (body, ct) = crate::sdp::with_sdp_part(
        SDP.as_bytes(),
        b"\x01\x00\x49\x00",
        "application/isup;version=itu-t92+",
        &[("Content-Disposition", "signal;handling=optional")],
    )
    .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let invite = invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", "")
        .replace(
            "Content-Type: application/sdp",
            &format!("Content-Type: {ct}"),
        )
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {}", body.len()),
        )
        .replace(SDP, &body);
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(
        inv.body().windows(4).any(|w| w == b"isup"),
        "SIP-I to the carrier"
    );
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "carrier1", &contact, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKack1", ""));
    h.one_request(CARRIER_A, Method::Ack);
    h.advance(Duration::from_millis(150_200));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        re.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
    assert_eq!(re.body().as_ref(), SDP.as_bytes(), "the SDP alone");
}

#[test]
fn a_refresh_after_a_refused_reinvite_offers_the_session_that_stands_not_the_refused_one() {
    let mut h = carrier_requiring_timers();
    let (inv, ok) = call_with(&mut h, "", &[]);
    let tag = ok.to_tag().unwrap();
    // The phone asks for hold; the carrier refuses it (488): the session stays as it was.
    let held = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
    h.advance(Duration::from_secs(10));
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre2", &held));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(re.body()).contains("a=sendonly"));
    h.recv_msg(CARRIER_A, reply(&re, 488, "carrier1", &[], None));
    h.take(PHONE);
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKre2", ""));
    // The gateway's refresh of the carrier offers the SDP in force, not the refused hold.
    h.advance(Duration::from_secs(139));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.advance(Duration::from_millis(1200));
    let refresh = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(refresh.cseq().unwrap(), (3, Method::Invite));
    assert_eq!(refresh.body(), inv.body(), "the session that stands");
}

/// The next refresh re-INVITE the gateway sends the carrier (half its 300 s interval on),
/// answered 200 with `sdp`.
fn refresh_answered(h: &mut H, sdp: &str) {
    h.advance(Duration::from_millis(150_200));
    let refresh = h.one_request(CARRIER_A, Method::Invite);
    answer_refresh(h, &refresh, sdp);
}

/// The carrier's 200 with `sdp` to our refresh re-INVITE `refresh`.
pub(super) fn answer_refresh(h: &mut H, refresh: &Request, sdp: &str) {
    h.recv_msg(
        CARRIER_A,
        reply(
            refresh,
            200,
            "carrier1",
            &[(Hdr::SESSION_EXPIRES, "300;refresher=uac")],
            Some(sdp),
        ),
    );
}

/// The carrier's answer to our refresh re-INVITE names a new media address: the relay
/// follows it. Before, the answer was only ACKed, and the caller's audio went on toward the
/// old address.
#[test]
fn the_answer_to_our_refresh_moves_the_relay() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
            p.anchor = true;
        }
    }));
    call_with(&mut h, "", &[]);
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4000".parse().unwrap())
    );
    let moved = SDP
        .replace("192.0.2.10", "198.51.100.9")
        .replace("o=- 1 1", "o=- 1 2");
    refresh_answered(&mut h, &moved);
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.9:4000".parse().unwrap())
    );
    // Nothing of it reaches the phone.
    assert!(h.take(PHONE).is_empty());
    // The next refresh's answer is the same session (same o=): the relay is not told again
    // (each update counts as media activity, and would keep a dead call up for ever).
    let relays = |h: &H| {
        (h.media.iter())
            .filter(|m| matches!(m, crate::media::MediaAction::Relay { .. }))
            .count()
    };
    let before = relays(&h);
    refresh_answered(&mut h, &moved);
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    assert_eq!(relays(&h), before);
    // An answer that takes a stream the refresh offered at port 0 gets no ports for it.
    let free = h.core.free_media_ports();
    let grown = moved.replace("o=- 1 2", "o=- 1 3") + "m=video 5006 RTP/AVP 96\r\n";
    refresh_answered(&mut h, &grown);
    assert_eq!(h.core.free_media_ports(), free);
    assert_eq!(h.relay_pairs().len(), 1);
}

/// The answer to our own refresh moves the relay and nothing else: the phone, which is
/// sent nothing of it, keeps its `o=` numbering, so the next SDP it is sent is one version
/// up from the last it got (RFC 3264 §8). Before, reading that answer counted it as shown
/// to the phone, and the phone's next SDP skipped a version.
#[test]
fn the_answer_to_our_refresh_moves_no_version_the_caller_is_shown() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
            p.anchor = true;
        }
    }));
    let (inv, ok) = call_with(&mut h, "", &[]);
    let shown = origin_version(ok.body());
    // (A change the phone would see in it, were it sent the answer: its packet time.)
    let moved = SDP.replace("o=- 1 1", "o=- 1 2") + "a=ptime:30\r\n";
    refresh_answered(&mut h, &moved);
    h.take(CARRIER_A);
    let held = moved.replace("o=- 1 2", "o=- 1 3") + "a=sendonly\r\n";
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 2, "z9hG4bKhold1", &held),
    );
    let re = h.one_request(PHONE, Method::Invite);
    assert_eq!(origin_version(re.body()), shown + 1);
}

/// The phone offers PCMU and PCMA, the carrier answers PCMA: our refresh offers the carrier
/// PCMA alone (at the next `o=` version, once), not the phone's whole offer again, from
/// which it could pick PCMU while the phone goes on sending PCMA. Before, the refresh
/// offered every codec of the phone's INVITE again.
#[test]
fn our_refresh_offers_the_session_agreed_not_the_first_offer() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
            p.anchor = true;
        }
    }));
    let two = SDP.replace(
        "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        "RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
    );
    let pcma = SDP.replace(
        "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
        "RTP/AVP 8\r\na=rtpmap:8 PCMA/8000",
    );
    let (inv, _) = call_offering(&mut h, "", &[], (&two, &pcma));
    let body = |r: &Request| String::from_utf8_lossy(r.body()).into_owned();
    assert!(body(&inv).contains("RTP/AVP 0 8\r\n"), "{}", body(&inv));
    let origin = |r: &Request| {
        body(r)
            .lines()
            .find_map(|l| l.strip_prefix("o=").map(str::to_string))
            .unwrap_or_default()
    };
    h.advance(Duration::from_millis(150_200));
    let refresh = h.one_request(CARRIER_A, Method::Invite);
    let offered = body(&refresh);
    assert!(offered.contains("m=audio"), "{offered}");
    assert!(
        offered.contains(" RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n") && !offered.contains("PCMU"),
        "the session agreed: {offered}"
    );
    // The same media address as before, and the next version: the SDP changed.
    assert_eq!(
        offered
            .replace(
                " RTP/AVP 8\r\na=rtpmap:8 PCMA/8000",
                " RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000"
            )
            .replace("o=- 1 2 ", "o=- 1 1 "),
        body(&inv)
    );
    assert_eq!(origin(&refresh), "- 1 2 IN IP4 127.0.0.1");
    answer_refresh(&mut h, &refresh, &pcma);
    h.take_requests(CARRIER_A, Method::Ack);
    // The next refresh is the same session: the same version.
    h.advance(Duration::from_millis(150_200));
    let again = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(again.body(), refresh.body());
    assert!(h.take(PHONE).is_empty(), "the phone never hears of it");
    // A carrier that refuses the agreed session is offered the first offer again, at a
    // version past the one it refused.
    h.recv_msg(CARRIER_A, reply(&again, 488, "carrier1", &[], None));
    h.take_requests(CARRIER_A, Method::Ack);
    h.advance(Duration::from_millis(4_200));
    let uncut = h.one_request(CARRIER_A, Method::Invite);
    assert!(
        body(&uncut).contains(" RTP/AVP 0 8\r\n"),
        "{}",
        body(&uncut)
    );
    assert_eq!(origin(&uncut), "- 1 3 IN IP4 127.0.0.1");
}

#[test]
fn on_an_anchored_call_a_refresh_after_a_refused_offer_goes_past_the_refused_version() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
            p.anchor = true;
        }
    }));
    let (inv, ok) = call_with(&mut h, "", &[]);
    let origin = |r: &Request| {
        String::from_utf8_lossy(r.body())
            .lines()
            .find_map(|l| l.strip_prefix("o=").map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(origin(&inv), "- 1 1 IN IP4 127.0.0.1");
    let tag = ok.to_tag().unwrap();
    let held = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
    h.advance(Duration::from_secs(10));
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre2", &held));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(origin(&re), "- 1 2 IN IP4 127.0.0.1");
    h.recv_msg(CARRIER_A, reply(&re, 488, "carrier1", &[], None));
    h.take(PHONE);
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKre2", ""));
    // The same hold again: the carrier has seen version 2 refused, so this is version 3.
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKre3", &held));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(origin(&re), "- 1 3 IN IP4 127.0.0.1");
    h.recv_msg(CARRIER_A, reply(&re, 488, "carrier1", &[], None));
    h.take(PHONE);
    h.recv(PHONE, &from_phone("ACK", &tag, 3, "z9hG4bKre3", ""));
    h.advance(Duration::from_secs(139));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.advance(Duration::from_millis(1200));
    let refresh = h.one_request(CARRIER_A, Method::Invite);
    let body = String::from_utf8_lossy(refresh.body()).into_owned();
    assert!(
        !body.contains("sendonly"),
        "the session that stands: {body}"
    );
    // And the standing SDP after that, version 4: never a version the carrier has seen.
    assert_eq!(origin(&refresh), "- 1 4 IN IP4 127.0.0.1");
}

#[test]
fn an_offer_retried_after_its_refusal_is_relayed_again_not_answered_as_a_refresh() {
    let mut h = H::new();
    let (_inv, _ok, tag) = phone_refreshing(&mut h);
    // The phone's hold (o= version 2); the carrier answers 491 (glare).
    let held = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
    let hold = |cseq: u32, branch: &str| {
        with_headers(
            &from_phone("INVITE", &tag, cseq, branch, &held),
            "Session-Expires: 600;refresher=uac\r\n",
        )
    };
    h.recv(PHONE, &hold(2, "z9hG4bKh2"));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 491, "carrier1", &[], None));
    assert_eq!(h.statuses(PHONE), vec![100, 491]);
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKh2", ""));
    // The phone tries the same offer again, as RFC 3261 §14.1 has it after a 491: it goes to
    // the carrier, it is no refresh of a session that never took it.
    h.advance(Duration::from_secs(3));
    h.recv(PHONE, &hold(3, "z9hG4bKh3"));
    let again = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(again.body()).contains("a=sendonly"));
}

#[test]
fn a_carrier_that_takes_update_is_refreshed_by_update_and_a_timeout_ends_the_call() {
    let mut h = carrier_requiring_timers();
    let (_, up) = refreshing_by_update(&mut h);
    assert!(up.body().is_empty());
    assert_eq!(
        up.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("300;refresher=uac")
    );
    // No answer at all (Timer F): the carrier is gone.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
}

/// A refresh that could not be sent (a transport error: the TCP connection backed up,
/// refused, closed) is a 503 (RFC 3261 §8.1.3.1), which ends no dialog: it is tried again
/// shortly and the call goes on. Before, the call was released at once, `session_expired`,
/// with half the session left.
#[test]
fn a_refresh_that_could_not_be_sent_is_tried_again_and_ends_nothing() {
    let mut h = carrier_requiring_timers();
    let (_, _up) = refreshing_by_update(&mut h);
    h.input(Input::SendFailed(h.last_txn_to(CARRIER_A)));
    assert!(h.cdrs.is_empty(), "{:?}", h.cdrs);
    h.advance(Duration::from_millis(4_100));
    let again = h.one_request(CARRIER_A, Method::Update);
    h.recv_msg(
        CARRIER_A,
        reply(
            &again,
            200,
            "carrier1",
            &[(Hdr::SESSION_EXPIRES, "300;refresher=uac")],
            None,
        ),
    );
    assert!(h.cdrs.is_empty());
    assert_eq!(h.core.active_calls(), 1);
}

/// A call whose carrier leg the gateway refreshes by UPDATE (300 s), a phone's re-INVITE
/// (a video upgrade, say) that the carrier leaves ringing, and half the interval on: the
/// phone's dialog tag, that re-INVITE, and the refresh UPDATE sent meanwhile.
fn refresh_while_a_reinvite_rings(h: &mut H) -> (String, Request, Request) {
    let (_inv, ok) = call_with(
        h,
        "",
        &[
            (Hdr::SESSION_EXPIRES, "300;refresher=uac"),
            (Hdr::ALLOW, "INVITE, ACK, BYE, CANCEL, UPDATE"),
            (Hdr::REQUIRE, "timer"),
        ],
    );
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKvid", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    h.advance(Duration::from_millis(150_200));
    let up = h.one_request(CARRIER_A, Method::Update);
    (tag, re, up)
}

/// The test gateway with carrier-a requiring session timers (300 s, the gateway refreshing).
fn carrier_requiring_timers() -> H {
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
        }
    }))
}

/// The refresh by UPDATE falls due while the phone's re-INVITE, relayed to the carrier, has
/// been heard of not at all: it waits (4 s at a time) until the carrier answers it, so that
/// its higher CSeq cannot overtake a lost first send of the re-INVITE, which the carrier
/// would then refuse as out of order (RFC 3261 §12.2.2). Before, it went at once.
#[test]
fn a_refresh_waits_for_a_relayed_request_nothing_was_heard_of() {
    let mut h = carrier_requiring_timers();
    let (_inv, ok) = call_with(
        &mut h,
        "",
        &[
            (Hdr::SESSION_EXPIRES, "300;refresher=uac"),
            (Hdr::ALLOW, "INVITE, ACK, BYE, CANCEL, UPDATE"),
            (Hdr::REQUIRE, "timer"),
        ],
    );
    let tag = ok.to_tag().unwrap();
    h.advance(Duration::from_secs(149));
    h.take(CARRIER_A);
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKunheard", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_millis(1_200));
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    h.recv_msg(CARRIER_A, reply(&re, 180, "carrier1", &[], None));
    h.advance(Duration::from_millis(4_100));
    let up = h.one_request(CARRIER_A, Method::Update);
    assert!(up.cseq().unwrap().0 > re.cseq().unwrap().0);
}

#[test]
fn a_refresh_by_update_goes_while_a_reinvite_rings() {
    let mut h = carrier_requiring_timers();
    // The refresh goes as an UPDATE without an offer all the same.
    let (_tag, re, up) = refresh_while_a_reinvite_rings(&mut h);
    assert!(up.body().is_empty());
    h.recv_msg(
        CARRIER_A,
        reply(
            &up,
            200,
            "carrier1",
            &[(Hdr::SESSION_EXPIRES, "300;refresher=uac")],
            None,
        ),
    );
    // The re-INVITE is still the carrier's to answer; the call lives on.
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert!(h.statuses(PHONE).contains(&200));
    assert!(h.cdrs.is_empty());
}

#[test]
fn a_refused_update_refresh_waits_for_a_pending_reinvite_before_its_own() {
    let mut h = carrier_requiring_timers();
    let (tag, re, up) = refresh_while_a_reinvite_rings(&mut h);
    // The carrier takes no UPDATE after all: the refresh must become a re-INVITE, but not
    // while the phone's re-INVITE is still under way there.
    h.recv_msg(CARRIER_A, reply(&up, 405, "carrier1", &[], None));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    h.take_responses(PHONE);
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKvida", ""));
    h.take(CARRIER_A);
    // That re-INVITE's 2xx refreshed the session; the next refresh, half an interval on,
    // goes as a re-INVITE.
    h.advance(Duration::from_secs(140));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.advance(Duration::from_secs(11));
    // (With its retransmissions: nobody answers it here.)
    let refresh = h.take_requests(CARRIER_A, Method::Invite);
    assert!(!refresh.is_empty());
    assert!(refresh.iter().all(|r| r.cseq() == refresh[0].cseq()));
    assert!(refresh[0].header(&Hdr::SESSION_EXPIRES).is_some());
}

#[test]
fn a_carrier_refresher_is_answered_here_and_its_silence_expires_the_call() {
    let mut h = H::new();
    let (inv, _ok) = call_with(
        &mut h,
        "",
        &[
            (Hdr::SESSION_EXPIRES, "300;refresher=uas"),
            (Hdr::REQUIRE, "timer"),
        ],
    );
    h.advance(Duration::from_secs(150));
    assert!(
        h.take(CARRIER_A).is_empty(),
        "the carrier refreshes, not us"
    );
    carrier_refresh_answered(&mut h, &inv, "", "300;refresher=uac");
    assert!(h.take(PHONE).is_empty());
    // Refreshed at 150 s: it now expires at 150 + 268 s, not at 268 s.
    h.advance(Duration::from_secs(200));
    assert!(h.cdrs.is_empty());
    h.advance(Duration::from_secs(70));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
}

/// The carrier's refresh UPDATE in the call of our INVITE `inv` (its header lines `extra`
/// and `Session-Expires: se`) is answered here with 200 restating `se`.
fn carrier_refresh_answered(h: &mut H, inv: &Request, extra: &str, se: &str) {
    let lines = format!("{extra}Session-Expires: {se}\r\n");
    h.recv(
        CARRIER_A,
        &from_carrier(inv, "UPDATE", 1, "z9hG4bKcu1", &lines),
    );
    let r = h.take_responses(CARRIER_A).remove(0);
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.header(&Hdr::SESSION_EXPIRES).as_deref(), Some(se));
}

/// Carrier-a's profile runs timers when asked (`accept`) with `min_se_s = 300`.
fn carrier_accepting_min_se_300() -> H {
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = SessionTimerPolicy {
                mode: TimerMode::Accept,
                expires: Duration::from_secs(1800),
                min_se: Duration::from_secs(300),
            };
        }
    }))
}

/// A carrier whose 2xx set an interval below the profile's `min_se_s` (our INVITE, under
/// `accept`, asked for nothing and stated no Min-SE) refreshes at that interval: answered,
/// not refused with 422 (which a carrier that does not retry would meet with the call
/// expiring under it), and our own requests there state no Min-SE above it.
#[test]
fn an_interval_agreed_below_min_se_is_the_legs_floor_from_then_on() {
    let mut h = carrier_accepting_min_se_300();
    let (inv, ok) = call_with(&mut h, "", &[(Hdr::SESSION_EXPIRES, "180;refresher=uas")]);
    h.advance(Duration::from_secs(80));
    carrier_refresh_answered(&mut h, &inv, "Supported: timer\r\n", "180;refresher=uac");
    // Refreshed at 80 s: still up at 180 s, past where the first interval gave up (148 s).
    h.advance(Duration::from_secs(100));
    assert!(h.cdrs.is_empty());
    // The phone's hold goes to the carrier restating the leg's 180 s with a Min-SE that
    // allows it.
    let hold = SDP
        .replace("o=- 1 1 ", "o=- 1 2 ")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKh2", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    // The carrier refreshes: in our request it is the UAS.
    assert_terms(&re, "180;refresher=uas", "180");
}

/// `req` states `Session-Expires: se` and `Min-SE: min`.
fn assert_terms(req: &Request, se: &str, min: &str) {
    assert_eq!(req.header(&Hdr::SESSION_EXPIRES).as_deref(), Some(se));
    assert_eq!(req.header(&Hdr::MIN_SE).as_deref(), Some(min));
}

/// The same, the carrier leaving the refreshes to us: our refresh asks for the 180 s agreed
/// with a Min-SE that allows it (RFC 4028 §7.4), not the profile's 300.
#[test]
fn our_refresh_of_an_interval_below_min_se_states_a_min_se_that_allows_it() {
    let mut h = carrier_accepting_min_se_300();
    call_with(&mut h, "", &[(Hdr::SESSION_EXPIRES, "180;refresher=uac")]);
    h.advance(Duration::from_secs(91));
    let sent = h.take(CARRIER_A);
    let refresh = sent
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if matches!(r.method(), Method::Invite | Method::Update) => {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("our refresh");
    assert_terms(&refresh, "180;refresher=uac", "180");
}

/// A late-offer call (the phone's INVITE without SDP, the carrier's offer in its 200, the
/// phone's answer in its ACK): what the phone was sent is an offer, not our answer. The
/// phone's refresh, its SDP unchanged, goes on to the carrier. Before, the gateway answered
/// it itself with the carrier's offer (every codec, every crypto line, as an "answer").
#[test]
fn a_late_offer_calls_refresh_is_not_answered_with_the_offer() {
    let mut h = H::new();
    let timer = "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n";
    h.recv(
        PHONE,
        &offerless_text("call-1@127.0.0.2", "z9hG4bKlo1", timer),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.body().is_empty());
    let offer = SDP.replace("RTP/AVP 0", "RTP/AVP 0 8 18");
    let ok = h.carrier_answers(&inv, "carrier1", &offer);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKlo1a", SDP));
    assert!(!h.one_request(CARRIER_A, Method::Ack).body().is_empty());
    h.advance(Duration::from_secs(300));
    h.recv(PHONE, &phone_refresh(&tag, 2, "z9hG4bKlo1r"));
    let statuses = h.statuses(PHONE);
    assert!(!statuses.contains(&200), "answered here: {statuses:?}");
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(re.body()).contains("m=audio"));
}

/// The phone's hold (a new `o=` version, `a=inactive`) gets the carrier's 183 with an
/// inactive answer, then 488: the session is as before. The phone's next refresh (its first
/// SDP again) is answered here with the answer it had, not the 183's inactive one, which
/// would have silenced it while the carrier still sent.
#[test]
fn a_refused_offer_after_an_answer_in_a_183_leaves_the_refresh_answer_as_it_was() {
    let mut h = H::new();
    let (_inv, ok, tag) = phone_refreshing(&mut h);
    let hold = SDP
        .replace("o=- 1 1 ", "o=- 1 2 ")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=inactive\r\n");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKh2", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    let inactive = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=inactive\r\n");
    h.recv_msg(CARRIER_A, reply(&re, 183, "carrier1", &[], Some(&inactive)));
    h.recv_msg(CARRIER_A, reply(&re, 488, "carrier1", &[], None));
    let last = h.statuses(PHONE).into_iter().rfind(|s| *s >= 200);
    assert_eq!(last, Some(488));
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKh2", ""));
    h.advance(Duration::from_secs(300));
    h.recv(PHONE, &phone_refresh(&tag, 3, "z9hG4bKh3"));
    let r = h.response_with(PHONE, 200, "the refresh answered here");
    assert!(!String::from_utf8_lossy(r.body()).contains("inactive"));
    assert_eq!(r.body(), ok.body());
}

/// The phone's refresh that goes on to the carrier (a new offer) is a refresh heard: the
/// phone's leg expires an interval after it (less the RFC 4028 §10 margin), whatever the
/// carrier answers and however long it takes. Before, the expiry ran on until the carrier's
/// 2xx: a carrier slower than the time left, or refusing the offer, had the call released as
/// `session_expired` with both peers alive.
#[test]
fn a_relayed_refresh_keeps_the_callers_leg_alive_while_the_far_leg_answers() {
    let mut h = H::new();
    let (_inv, _ok, tag) = phone_refreshing(&mut h);
    h.advance(Duration::from_secs(560));
    let changed = SDP.replace("o=- 1 1 ", "o=- 1 2 ");
    h.recv(
        PHONE,
        &with_headers(
            &from_phone("INVITE", &tag, 2, "z9hG4bKrh2", &changed),
            "Session-Expires: 600;refresher=uac\r\n",
        ),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 100, "carrier1", &[], None));
    // Past where the expiry stood (568 s), the carrier still deciding.
    h.advance(Duration::from_secs(15));
    assert!(h.cdrs.is_empty(), "released with both peers alive");
    h.recv_msg(CARRIER_A, reply(&re, 488, "carrier1", &[], None));
    assert_eq!(h.statuses(PHONE), [100, 488]);
    // The refresh was heard at 560 s: the leg expires 568 s after it, not sooner.
    h.advance(Duration::from_secs(550));
    assert!(h.cdrs.is_empty());
    h.advance(Duration::from_secs(10));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
}

/// A refresh the gateway itself refuses (here its Max-Forwards spent: 483) went nowhere:
/// it does not move the leg's expiry, which the phone's silence then ends as before.
#[test]
fn a_refresh_the_gateway_refuses_does_not_move_the_expiry() {
    let mut h = H::new();
    let (_inv, _ok, tag) = phone_refreshing(&mut h);
    h.advance(Duration::from_secs(500));
    let changed = SDP.replace("o=- 1 1 ", "o=- 1 2 ");
    let spent = with_headers(
        &from_phone("INVITE", &tag, 2, "z9hG4bKrf2", &changed),
        "Session-Expires: 600;refresher=uac\r\n",
    )
    .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.recv(PHONE, &spent);
    assert_eq!(h.statuses(PHONE), [483]);
    h.advance(Duration::from_secs(70));
    assert_eq!(h.cdrs.len(), 1, "expired as if unheard (568 s)");
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
}

#[test]
fn an_unchanged_reinvite_is_answered_here_and_a_changed_one_is_relayed() {
    let mut h = H::new();
    let (_inv, ok, tag) = phone_refreshing(&mut h);
    h.advance(Duration::from_secs(300));
    // The phone's refresh offers its SDP again, o= unchanged: the answer is ours, the one it
    // got in the 200.
    // (A refresh restates the timer: without Session-Expires it would turn it off.)
    h.recv(PHONE, &phone_refresh(&tag, 2, "z9hG4bKr2"));
    let r = h.response_with(PHONE, 200, "200 from the gateway");
    assert_eq!(r.body(), ok.body());
    assert_eq!(
        r.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("600;refresher=uac")
    );
    assert!(h.take(CARRIER_A).is_empty());
    // Its ACK stays here too.
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKr2a", ""));
    assert!(h.take(CARRIER_A).is_empty());
    // A real change (hold, new o= version) goes to the carrier as before.
    let hold = SDP
        .replace("o=- 1 1 ", "o=- 1 2 ")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKr3", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(re.body()).contains("a=sendonly"));
}

/// The same unchanged refresh toward a carrier whose profile sets `[sdp] ptime`: the SDP the
/// carrier was sent had `a=ptime:20` added, and the phone's refresh (its SDP again, byte for
/// byte) is still the SDP it sent last, answered here. (The first version of the digest
/// below read the rewritten copy and relayed every such refresh.)
#[test]
fn an_unchanged_reinvite_toward_a_ptime_rewriting_peer_is_answered_here() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.ptime = Some(20);
        }
    }));
    let (inv, ok, tag) = phone_refreshing(&mut h);
    assert!(String::from_utf8_lossy(inv.body()).contains("a=ptime:20"));
    h.advance(Duration::from_secs(300));
    h.recv(PHONE, &phone_refresh(&tag, 2, "z9hG4bKpt2"));
    let r = h.response_with(PHONE, 200, "200 from the gateway");
    assert_eq!(r.body(), ok.body());
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
}

/// A phone that changes its SDP without raising its `o=` version (RFC 3264 §8 says it must;
/// some do not) is heard: its hold in a refresh re-INVITE goes to the carrier. Before, the
/// same `o=` line made it a refresh answered here with the old `sendrecv` answer, the hold
/// lost.
#[test]
fn a_changed_sdp_under_the_same_origin_is_relayed() {
    let mut h = H::new();
    let (_inv, _ok, tag) = phone_refreshing(&mut h);
    h.advance(Duration::from_secs(300));
    let hold = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(
        PHONE,
        &with_headers(
            &from_phone("INVITE", &tag, 2, "z9hG4bKso2", &hold),
            "Session-Expires: 600;refresher=uac\r\n",
        ),
    );
    assert!(!h.statuses(PHONE).contains(&200), "not answered here");
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(re.body()).contains("a=sendonly"));
}

/// An unchanged re-INVITE without Session-Expires turns the phone's timer off (RFC 4028 §9)
/// and is still an offer: our 200 answers it with the SDP the phone had from us (RFC 3261
/// §13.3.1), on a call whose media is not anchored too, and says nothing of a timer.
#[test]
fn an_unchanged_reinvite_turning_the_timer_off_is_answered_with_sdp() {
    let mut h = H::new();
    let (_inv, ok, tag) = phone_refreshing(&mut h);
    h.advance(Duration::from_secs(300));
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKr2", SDP));
    let r = h.response_with(PHONE, 200, "200 from the gateway");
    assert!(!r.body().is_empty(), "the offer's answer is missing");
    assert_eq!(r.body(), ok.body());
    assert!(r.header(&Hdr::SESSION_EXPIRES).is_none());
    assert!(h.take(CARRIER_A).is_empty());
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKr2a", ""));
    // No timer on that leg any more: past the old interval the call is still up.
    h.advance(Duration::from_secs(700));
    assert!(h.cdrs.is_empty());
}

/// A too brief interval from a peer that knows the extension gets 422 (RFC 4028 §9), on
/// either leg; from one that does not (a proxy put Session-Expires on a UA that cannot act
/// on a 422, §8) the call goes on at our minimum, the gateway refreshing (errata 1687).
/// Before, that caller's call failed 422.
#[test]
fn a_too_brief_interval_gets_422_on_either_leg() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("c0", "z9hG4bKs0", "+8610123", "Session-Expires: 60\r\n"),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c0", SDP);
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("90;refresher=uas")
    );
    assert!(!ok.header_has_token(&Hdr::REQUIRE, "timer"));
    assert!(h.cdrs.is_empty());

    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text(
            "c1",
            "z9hG4bKs1",
            "+8610123",
            "Supported: timer\r\nSession-Expires: 60\r\n",
        ),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 422);
    assert_eq!(r.header(&Hdr::MIN_SE).as_deref(), Some("90"));
    assert!(h.take(CARRIER_A).is_empty());
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerRejected);

    // Mid-call too.
    let (_inv, ok) = call_with(&mut h, "", &[]);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &with_headers(
            &from_phone("UPDATE", &tag, 2, "z9hG4bKu2", ""),
            "Supported: timer\r\nSession-Expires: 30\r\n",
        ),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 422);
    assert!(h.take(CARRIER_A).is_empty());
}

/// A call with a carrier whose leg runs session timers; the phone's re-INVITE to hold (with
/// the header lines `extra`) relayed, refused by the carrier with 422 (Min-SE 1800), and
/// sent again: the gateway, our tag toward the phone, the first send and the second.
fn hold_refused_with_422(extra: &str) -> (H, String, Request, Request) {
    let mut h = carrier_requiring_timers();
    let (_inv, ok) = call_with(&mut h, "", &[]);
    let tag = ok.to_tag().unwrap();
    let hold = SDP
        .replace("o=- 1 1 ", "o=- 1 2 ")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    let reinvite = from_phone("INVITE", &tag, 2, "z9hG4bKm2", &hold);
    h.recv(PHONE, &with_headers(&reinvite, extra));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(&re, 422, "carrier1", &[(Hdr::MIN_SE, "1800")], None),
    );
    let again = h.one_request(CARRIER_A, Method::Invite);
    (h, tag, re, again)
}

/// A relayed re-INVITE's 422: the gateway, whose interval it was (timers are per leg), sends
/// it again once at the carrier's minimum, and the phone gets the answer to that. Before,
/// the 422 went to the phone, whose new interval changed nothing on the carrier's leg. A
/// second 422 reaches the phone with the minimum asked for (RFC 4028 §6: a 422 carries
/// Min-SE, which stayed behind as a per-leg header).
#[test]
fn a_relayed_422_is_answered_here_once_then_carries_its_min_se() {
    let (mut h, _tag, re, again) = hold_refused_with_422("Session-Expires: 120\r\n");
    assert_eq!(again.header(&Hdr::SESSION_EXPIRES).as_deref(), Some("1800"));
    assert_eq!(again.header(&Hdr::MIN_SE).as_deref(), Some("1800"));
    assert_eq!(again.cseq().unwrap().0, re.cseq().unwrap().0 + 1);
    assert_eq!(again.body(), re.body());
    assert_ne!(
        again.top_via().unwrap().branch,
        re.top_via().unwrap().branch
    );
    assert!(
        h.statuses(PHONE).iter().all(|s| *s < 200),
        "nothing final for the phone yet"
    );
    // (Had the carrier taken it, its 2xx would be the phone's answer: see the next test.)
    // Refused again: the phone hears of it, with the minimum.
    h.recv_msg(
        CARRIER_A,
        reply(&again, 422, "carrier1", &[(Hdr::MIN_SE, "3600")], None),
    );
    let r = h.response_with(PHONE, 422, "the carrier's second 422");
    assert_eq!(r.header(&Hdr::MIN_SE).as_deref(), Some("3600"));
}

/// The re-INVITE sent again after the carrier's 422, answered: the phone gets that answer,
/// and the carrier the ACK of the INVITE it answered.
#[test]
fn a_relayed_invite_sent_again_after_422_answers_the_phone() {
    let (mut h, tag, _re, again) = hold_refused_with_422("");
    let held = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n");
    let se = [(Hdr::SESSION_EXPIRES, "1800;refresher=uac")];
    h.recv_msg(CARRIER_A, reply(&again, 200, "carrier1", &se, Some(&held)));
    let r = h.response_with(PHONE, 200, "the answer to the re-INVITE sent again");
    assert!(String::from_utf8_lossy(r.body()).contains("a=recvonly"));
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKm2a", ""));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap().0, again.cseq().unwrap().0);
}

/// The carrier's 2xx to a relayed re-INVITE sent again after its 422 is read against what
/// that second send asked (its minimum), not the leg's interval before: it takes the
/// refreshing on itself, and the gateway sends no refresh of its own. Before, its interval
/// was clamped back to the old one (300 s) and the gateway made itself the refresher
/// against the carrier's word (here unanswered: the call was released).
#[test]
fn the_answer_to_a_request_sent_again_after_422_is_read_against_what_it_asked() {
    let (mut h, tag, _re, again) = hold_refused_with_422("");
    let se = [(Hdr::SESSION_EXPIRES, "1800;refresher=uas")];
    h.recv_msg(CARRIER_A, reply(&again, 200, "carrier1", &se, Some(SDP)));
    h.response_with(PHONE, 200, "the answer");
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKm2a", ""));
    h.take(CARRIER_A);
    h.advance(Duration::from_secs(1000));
    let sent: Vec<Method> = (h.take(CARRIER_A).iter())
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method()),
            Message::Response(_) => None,
        })
        .collect();
    assert!(sent.is_empty(), "{sent:?}");
    assert!(h.cdrs.is_empty(), "the call is up");
    // The carrier's silence past its interval ends it (1800 s less 32).
    h.advance(Duration::from_secs(800));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
}

/// Our own refresh refused with 422 goes again with the peer's minimum as both its interval
/// and its `Min-SE` (RFC 4028 §7.4); before, it carried our own, lower `Min-SE`.
#[test]
fn a_refresh_refused_with_422_goes_again_with_the_peers_minimum() {
    let mut h = carrier_requiring_timers();
    let (_inv, _ok) = call_with(&mut h, "", &[]);
    h.advance(Duration::from_millis(150_200));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(re.header(&Hdr::MIN_SE).as_deref(), Some("90"));
    h.recv_msg(
        CARRIER_A,
        reply(&re, 422, "carrier1", &[(Hdr::MIN_SE, "1200")], None),
    );
    let again = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        again.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("1200;refresher=uac")
    );
    assert_eq!(again.header(&Hdr::MIN_SE).as_deref(), Some("1200"));
    assert_eq!(again.cseq().unwrap().0, re.cseq().unwrap().0 + 1);
}

/// Glare on a refresh (RFC 3261 §14.1): toward the phone, whose Call-ID it is, the gateway
/// tries again within 2 s; toward the carrier, on a Call-ID the gateway made, after 2.1–4 s.
/// Before, both waited 4 s.
#[test]
fn a_refresh_that_meets_glare_waits_as_the_call_ids_owner_or_not() {
    let mut h = H::new();
    let (_inv, ok) = call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uas\r\nMin-SE: 90\r\n",
        &[],
    );
    assert_eq!(
        ok.header(&Hdr::SESSION_EXPIRES).as_deref(),
        Some("600;refresher=uas")
    );
    h.advance(Duration::from_millis(300_200));
    // The refresh (with its UDP retransmissions so far).
    let re = h.take_requests(PHONE, Method::Invite).remove(0);
    h.recv_msg(PHONE, reply(&re, 491, "phone1", &[], None));
    h.advance(Duration::from_millis(2_010));
    let again = h.take_requests(PHONE, Method::Invite);
    assert!(!again.is_empty(), "tried again within 2 s");
    assert_eq!(again[0].cseq().unwrap().0, re.cseq().unwrap().0 + 1);

    let mut h = carrier_requiring_timers();
    call_with(&mut h, "", &[]);
    h.advance(Duration::from_millis(150_200));
    // The refresh (with its UDP retransmissions so far).
    let re = h.take_requests(CARRIER_A, Method::Invite).remove(0);
    h.recv_msg(CARRIER_A, reply(&re, 491, "carrier1", &[], None));
    h.advance(Duration::from_millis(2_090));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.advance(Duration::from_millis(1_920));
    let again = h.take_requests(CARRIER_A, Method::Invite);
    assert!(!again.is_empty(), "tried again by 4 s");
    assert_eq!(again[0].cseq().unwrap().0, re.cseq().unwrap().0 + 1);
}

/// A peer that refuses every refresh (491 at once) is tried again less and less often, up to
/// an eighth of the interval apart, until the leg expires: a handful of refreshes, not one
/// every couple of seconds (before: 241 in the 300 s left of a 600 s interval). A challenge
/// the gateway cannot answer (the phone's profile has no `[auth]`) is a refusal too (before:
/// one refresh every 4 s, without the back-off).
#[test]
fn a_peer_that_refuses_every_refresh_is_asked_less_and_less_often() {
    for status in [491u16, 401] {
        refused_every_refresh(status);
    }
}

fn refused_every_refresh(status: u16) {
    let mut h = H::new();
    call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uas\r\nMin-SE: 90\r\n",
        &[],
    );
    let challenge = [(
        Hdr::named("WWW-Authenticate"),
        "Digest realm=\"pbx\", nonce=\"n1\", algorithm=MD5",
    )];
    let extra: &[(Hdr, &str)] = if status == 401 { &challenge } else { &[] };
    h.advance(Duration::from_millis(300_200));
    let mut refreshes = std::collections::BTreeSet::new();
    for _ in 0..700 {
        for re in h.take_requests(PHONE, Method::Invite) {
            if refreshes.insert(re.seq()) {
                h.recv_msg(PHONE, reply(&re, status, "phone1", extra, None));
            }
        }
        if !h.cdrs.is_empty() {
            break;
        }
        h.advance(Duration::from_millis(500));
    }
    assert!(
        (4..=12).contains(&refreshes.len()),
        "{status}: {} refreshes",
        refreshes.len()
    );
    assert_eq!(h.cdrs.len(), 1, "the leg expired once none worked");
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
    assert!(
        h.cdrs[0]
            .events
            .contains(&"session_expired_caller".to_string()),
        "{:?}",
        h.cdrs[0].events
    );
}

#[test]
fn the_carriers_422_is_retried_once_with_its_minimum() {
    let mut h = carrier_requiring_timers();
    h.recv(PHONE, &invite_text("c1", "z9hG4bKs1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 422, "x1", &[(Hdr::MIN_SE, "1200")], None),
    );
    let sent = h.take(CARRIER_A);
    let again: Vec<Request> = sent
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) if r.method() == Method::Invite => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(again.len(), 1, "the INVITE once more");
    let again = &again[0];
    assert_eq!(again.cseq().unwrap(), (2, Method::Invite));
    assert_eq!(again.call_id(), inv.call_id());
    assert_eq!(again.header(&Hdr::SESSION_EXPIRES).as_deref(), Some("1200"));
    assert_eq!(again.header(&Hdr::MIN_SE).as_deref(), Some("1200"));
    assert!(h.statuses(PHONE).iter().all(|s| *s < 200));
    // A second 422 is the caller's 500 (the hop's business, RFC 3261 status mapping).
    h.recv_msg(
        CARRIER_A,
        reply(again, 422, "x1", &[(Hdr::MIN_SE, "3600")], None),
    );
    assert!(h.statuses(PHONE).contains(&500));
}

/// The INVITE sent again after the 422 has branches of its own: once one rang, a request in
/// the dialog of the branch that rang for the first send is refused 481 (before, it reached
/// the caller).
#[test]
fn the_invite_sent_again_after_422_forgets_the_branch_that_rang() {
    let mut h = carrier_requiring_timers();
    h.recv(PHONE, &invite_text("c1", "z9hG4bKs2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t1", &[], None));
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 422, "x1", &[(Hdr::MIN_SE, "1200")], None),
    );
    let again = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&again, 180, "t2", &[], None));
    h.take(PHONE);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&again, "INFO", "t1", 4, "z9hG4bKs2i", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [481]);
    assert!(h.take(PHONE).is_empty());
}

#[test]
fn off_neither_copies_nor_answers_timers() {
    let off = SessionTimerPolicy::off();
    // Nor probes (`probe.rs`), which the harness's peers would not answer.
    let mut h = H::with(config_with(|_, p| {
        p.session_timer = off;
        p.probe = None;
    }));
    let (inv, ok) = call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n",
        &[(Hdr::SESSION_EXPIRES, "300;refresher=uas")],
    );
    assert!(!inv.has_header(&Hdr::SESSION_EXPIRES));
    assert!(!inv.header_has_token(&Hdr::SUPPORTED, "timer"));
    assert!(!ok.has_header(&Hdr::SESSION_EXPIRES));
    // Nothing expires: the call outlives any interval.
    h.advance(Duration::from_secs(3600));
    assert!(h.cdrs.is_empty());
}

#[test]
fn huge_intervals_from_a_peer_neither_panic_nor_stick() {
    // No probes of the phone's leg (`probe.rs`), which the harness's phone would not answer.
    let mut h = H::with(config_with(|_, p| p.probe = None));
    let huge = "10000000000000000000";
    // The carrier's 2xx names an absurd interval, longer than asked: the gateway refreshes
    // at its own (before, it waited for the carrier's refresh for a day).
    let se = format!("{huge};refresher=uas");
    let (inv, ok) = call_with(&mut h, "", &[(Hdr::SESSION_EXPIRES, se.as_str())]);
    let tag = ok.to_tag().unwrap();
    // A Min-SE beyond any clock in a refresh: honoured as 2^32 - 1 s (RFC 4028 §9), the
    // refresh answered, nothing armed from it (it was 400 before).
    h.recv(
        PHONE,
        &with_headers(
            &from_phone("UPDATE", &tag, 2, "z9hG4bKhu", ""),
            &format!("Session-Expires: 1800\r\nMin-SE: {huge}\r\n"),
        ),
    );
    // (A refresh without SDP is the leg's own: answered here.)
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    let answered = h.response_with(PHONE, 200, "the phone's refresh answered");
    let se = answered.header(&Hdr::SESSION_EXPIRES).unwrap_or_default();
    assert!(se.starts_with("4294967295"), "{se}");
    // Within the hour, the gateway refreshes the carrier's leg itself.
    let mut refreshed = false;
    for _ in 0..60 {
        h.advance(Duration::from_secs(60));
        let to_carrier = h.requests_to(CARRIER_A);
        if to_carrier
            .iter()
            .any(|r| matches!(r.method(), Method::Update | Method::Invite))
        {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "no refresh toward the carrier within an hour");
    assert!(h.cdrs.is_empty());
    let _ = inv;
}

#[test]
fn a_bodyless_update_without_session_expires_is_relayed_not_swallowed() {
    let mut h = H::new();
    let (_inv, _ok, tag) = phone_refreshing(&mut h);
    // An identity update (no Session-Expires): the carrier gets it.
    h.recv(
        PHONE,
        &with_headers(
            &from_phone("UPDATE", &tag, 2, "z9hG4bKid2", ""),
            "P-Asserted-Identity: <sip:1001@127.0.0.2>\r\n",
        ),
    );
    let up = h.one_request(CARRIER_A, Method::Update);
    assert!(up.has_header(&Hdr::P_ASSERTED_IDENTITY));
}

/// A refresh answered here waits for the phone's ACK; a re-INVITE from the carrier meanwhile
/// gets 491 (one INVITE at a time in either direction, RFC 3261 §14.1), not relayed toward
/// a phone whose INVITE is not yet confirmed.
#[test]
fn a_reinvite_toward_a_leg_whose_refresh_awaits_its_ack_gets_491() {
    let mut h = H::new();
    let (inv, _ok, tag) = phone_refreshing(&mut h);
    h.advance(Duration::from_secs(300));
    h.recv(PHONE, &phone_refresh(&tag, 2, "z9hG4bKr9"));
    assert!(h.statuses(PHONE).contains(&200));
    let moved = SDP.replace("o=- 1 1 ", "o=- 1 2 ");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 2, "z9hG4bKc9", &moved),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![491]);
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
}

/// The gateway stalled past a leg's session expiry (a VM paused 700 s with the phone's
/// refresh of a 600 s session due in the middle): the expiry fires late, and the leg gets a
/// refresh's time (32 s) from then instead of being released at once; the refresh that
/// comes then keeps the call up. A leg that is really gone still ends 32 s later. Before,
/// every such call was released at resume, its refresh unread in the socket.
#[test]
fn a_session_expiry_fired_late_by_a_stall_gives_the_refresh_its_time() {
    let mut h = H::new();
    let (_inv, ok) = call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\nMin-SE: 90\r\n",
        &[],
    );
    let tag = ok.to_tag().unwrap();
    let stall = |h: &mut H, d: Duration| {
        h.now += d;
        h.core.handle_timeout(h.now);
        h.apply();
    };
    stall(&mut h, Duration::from_secs(700));
    assert!(h.cdrs.is_empty(), "not released at resume");
    h.recv(
        PHONE,
        &with_headers(
            &from_phone("UPDATE", &tag, 2, "z9hG4bKst2", ""),
            "Session-Expires: 600;refresher=uac\r\n",
        ),
    );
    assert_eq!(h.statuses(PHONE), [200]);
    h.advance(Duration::from_secs(60));
    assert!(h.cdrs.is_empty(), "the refresh kept it up");
    // Another stall, and no refresh after it: released a refresh's time later.
    stall(&mut h, Duration::from_secs(700));
    assert!(h.cdrs.is_empty());
    h.advance(Duration::from_secs(33));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
}

/// A gateway late again at the grace's end (an overload that keeps the loop behind) ends
/// the call then: one grace a deadline. Before, each late firing gave another, and calls
/// whose peers were gone stayed up, holding their `max_calls` slots, for as long as the
/// gateway ran behind.
#[test]
fn a_session_expiry_late_again_gets_no_second_grace() {
    let mut h = H::new();
    call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\nMin-SE: 90\r\n",
        &[],
    );
    let stall = |h: &mut H, d: Duration| {
        h.now += d;
        h.core.handle_timeout(h.now);
        h.apply();
    };
    stall(&mut h, Duration::from_secs(700));
    assert!(h.cdrs.is_empty(), "the grace");
    stall(&mut h, Duration::from_secs(40));
    assert_eq!(h.cdrs.len(), 1, "no second grace");
    assert_eq!(h.cdrs[0].call_tag, CallTag::SessionExpired);
}

/// A call to a carrier that takes UPDATE and requires a 300 s session the gateway
/// refreshes, at its first refresh: the carrier's INVITE and the refresh UPDATE.
fn refreshing_by_update(h: &mut H) -> (Request, Request) {
    let (inv, _) = call_with(
        h,
        "",
        &[
            (Hdr::SESSION_EXPIRES, "300;refresher=uac"),
            (Hdr::ALLOW, "INVITE, ACK, BYE, CANCEL, UPDATE"),
            (Hdr::REQUIRE, "timer"),
        ],
    );
    h.advance(Duration::from_millis(150_200));
    let up = h.one_request(CARRIER_A, Method::Update);
    (inv, up)
}

/// A carrier that lists UPDATE but refuses the refresh UPDATE (403 here; some SBCs take
/// UPDATE only with SDP): the refresh goes again at once as a re-INVITE, and later ones
/// too. Before, only a 405 or 501 turned refreshes into re-INVITEs: every other refusal
/// sent the UPDATE again every 4 s until the session expired and a live call was ended.
#[test]
fn a_refused_refresh_update_is_sent_again_as_a_reinvite() {
    let mut h = carrier_requiring_timers();
    let (_, up) = refreshing_by_update(&mut h);
    h.recv_msg(CARRIER_A, reply(&up, 403, "carrier1", &[], None));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(re.header(&Hdr::SESSION_EXPIRES).is_some());
    h.recv_msg(
        CARRIER_A,
        reply(
            &re,
            200,
            "carrier1",
            &[(Hdr::SESSION_EXPIRES, "300;refresher=uac")],
            Some(SDP),
        ),
    );
    h.take(CARRIER_A);
    h.advance(Duration::from_secs(151));
    let methods: Vec<Method> = (h.take(CARRIER_A).into_iter())
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method()),
            _ => None,
        })
        .collect();
    assert!(methods.contains(&Method::Invite), "{methods:?}");
    assert!(!methods.contains(&Method::Update), "{methods:?}");
    assert!(h.cdrs.is_empty());
}

/// The carrier's own offer (an UPDATE with SDP) is open when it refuses our refresh UPDATE:
/// the refresh as a re-INVITE does not go while that offer waits for its answer (RFC 3311
/// §5.1); later refreshes are re-INVITEs. Before, it went at once, an offer crossing the
/// carrier's open one.
#[test]
fn a_refresh_reinvite_waits_for_the_peers_open_offer() {
    let mut h = carrier_requiring_timers();
    let (inv, up) = refreshing_by_update(&mut h);
    // (It restates the timer, the gateway refreshing: without one it would turn it off.)
    h.recv(
        CARRIER_A,
        &with_headers(
            &from_carrier_in(&inv, "UPDATE", "carrier1", 2, "z9hG4bKcu2", SDP),
            "Session-Expires: 300;refresher=uas\r\n",
        ),
    );
    let relayed: Vec<Request> = (h.take(PHONE).into_iter())
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(relayed.len(), 1, "the carrier's offer reaches the phone");
    h.recv_msg(CARRIER_A, reply(&up, 403, "carrier1", &[], None));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    // Nor on the retry 4 s later, the offer still open.
    h.advance(Duration::from_secs(5));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    // The phone answers the offer, and the carrier's UPDATE refreshed the session: the
    // next refresh, at half time, is a re-INVITE.
    h.recv_msg(PHONE, reply(&relayed[0], 200, "", &[], Some(SDP)));
    assert!(h.statuses(CARRIER_A).contains(&200));
    h.advance(Duration::from_secs(148));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.advance(Duration::from_secs(3));
    let methods: Vec<Method> = (h.requests_to(CARRIER_A).iter())
        .map(|r| r.method())
        .collect();
    assert!(methods.contains(&Method::Invite), "{methods:?}");
    assert!(!methods.contains(&Method::Update), "{methods:?}");
    assert!(h.cdrs.is_empty());
}

/// A 503 to the refresh UPDATE says the carrier is busy for now, not that it takes no
/// UPDATE: the UPDATE is tried again after the 503's Retry-After, no re-INVITE. A second
/// 5xx in a row sends the refresh as a re-INVITE, so that the session does not expire.
#[test]
fn a_refresh_update_refused_for_now_is_tried_again_as_an_update() {
    let mut h = carrier_requiring_timers();
    let (_, up) = refreshing_by_update(&mut h);
    h.recv_msg(
        CARRIER_A,
        reply(&up, 503, "carrier1", &[(Hdr::RETRY_AFTER, "10")], None),
    );
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    h.advance(Duration::from_secs(9));
    let sent = h.requests_to(CARRIER_A);
    assert!(
        sent.iter().all(|r| r.cseq() == up.cseq()),
        "not before 10 s"
    );
    h.advance(Duration::from_secs(2));
    let sent = h.requests_to(CARRIER_A);
    assert!(sent.iter().all(|r| r.method() == Method::Update));
    let mut again: Vec<Request> = (sent.into_iter())
        .filter(|r| r.cseq() != up.cseq())
        .collect();
    again.dedup_by_key(|r| r.cseq());
    assert_eq!(again.len(), 1, "the UPDATE again, with its next CSeq");
    h.recv_msg(CARRIER_A, reply(&again[0], 500, "carrier1", &[], None));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(re.header(&Hdr::SESSION_EXPIRES).is_some());
}

/// The phone refreshes by UPDATE without Session-Expires (turning its timer off, RFC 4028
/// §9) and the carrier takes no UPDATE, so the gateway answers it: its 200 states what
/// that leaves of the timer, and the gateway's own expiry of that leg goes as the peer's
/// does. Before, the 200 said nothing of it (to the phone: no timer), the gateway's timer
/// ran on, and the call was released as session_expired while both ends talked.
#[test]
fn an_update_answered_for_the_other_leg_states_the_session_timer() {
    let mut h = H::new();
    let (_inv, ok) = call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n",
        &[(Hdr::ALLOW, "INVITE, ACK, BYE, CANCEL, OPTIONS")],
    );
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("UPDATE", &tag, 2, "z9hG4bKstu1", ""));
    let ok = h.response_with(PHONE, 200, "UPDATE");
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    // The phone turned its timer off, and the gateway (no [session_timer] of its own here)
    // agrees: none is stated, and none runs on that leg any more.
    assert_eq!(ok.header(&Hdr::named("Session-Expires")), None);
    h.advance(Duration::from_secs(700));
    assert!(h.cdrs.is_empty(), "{:?}", h.cdrs);
}

/// A late offer (the carrier offers in its 200) answered in the phone's ACK toward a
/// carrier whose profile sets `[sdp] ptime`: our refresh re-INVITE offers the session the
/// carrier was sent, at the same `o=` version, as nothing changed. Before, the answer was
/// anchored before its ptime was set, so the version was judged on other bytes than those
/// sent, and every refresh numbered the unchanged session anew.
#[test]
fn a_late_answer_shaped_for_its_peer_is_offered_again_at_its_own_version() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
            p.anchor = true;
            p.ptime = Some(30);
        }
    }));
    let late = invite_text("call-1@127.0.0.2", "z9hG4bKlate0", "+8610123", "")
        .replace(SDP, "")
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            "Content-Length: 0",
        );
    h.recv(PHONE, &late);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let extra = [
        (Hdr::CONTACT, "<sip:+8610123@127.0.0.3>"),
        (Hdr::SESSION_EXPIRES, "300;refresher=uac"),
    ];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "carrier1", &extra, Some(SDP)));
    let ok = h.response_with(PHONE, 200, "the phone gets the offer");
    let tag = ok.to_tag().unwrap();
    let answer = SDP.replace("192.0.2.10", "192.0.2.20");
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKlate1", &answer));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert!(String::from_utf8_lossy(ack.body()).contains("a=ptime:30"));
    h.advance(Duration::from_millis(150_200));
    let refresh = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(origin_version(refresh.body()), origin_version(ack.body()));
    assert_eq!(refresh.body(), ack.body(), "the same session, as sent");
}

/// Our refresh offers the carrier our last answer to it (B: PCMU and PCMA, the phone's
/// answer to the carrier's re-INVITE); the carrier answers with a new version taking PCMA
/// alone. That exchange made B our offer: the carrier's next refresh re-INVITE, its SDP
/// unchanged, is relayed to the phone, not answered here with B, which lists a codec the
/// carrier's SDP dropped (no valid answer to it). Before, it was answered here with B.
#[test]
fn after_our_refresh_offered_our_answer_the_peers_new_sdp_is_not_answered_with_it() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
            p.anchor = true;
        }
    }));
    let (inv, _ok) = call_with(&mut h, "", &[]);
    let two = SDP.replace("o=- 1 1", "o=- 1 2").replace(
        "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        "RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
    );
    let from_carrier = |cseq: u32, branch: &str, sdp: &str, se: &str| {
        with_headers(
            &from_carrier_in(&inv, "INVITE", "carrier1", cseq, branch, sdp),
            &format!("Session-Expires: 300;refresher={se}\r\n"),
        )
    };
    // The carrier offers both codecs; we refresh it from now on (refresher=uas: us).
    h.recv(CARRIER_A, &from_carrier(2, "z9hG4bKc2", &two, "uas"));
    let re = h.one_request(PHONE, Method::Invite);
    h.recv_msg(PHONE, reply(&re, 200, "alice1", &[], Some(&two)));
    h.response_with(CARRIER_A, 200, "our answer, both codecs");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "ACK", "carrier1", 2, "z9hG4bKc2a", ""),
    );
    h.take(PHONE);
    h.advance(Duration::from_millis(150_200));
    let refresh = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(refresh.body()).contains("RTP/AVP 0 8\r\n"));
    let pcma = SDP.replace("o=- 1 1", "o=- 1 3").replace(
        "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
        "RTP/AVP 8\r\na=rtpmap:8 PCMA/8000",
    );
    answer_refresh(&mut h, &refresh, &pcma);
    h.take_requests(CARRIER_A, Method::Ack);
    h.recv(CARRIER_A, &from_carrier(3, "z9hG4bKc3", &pcma, "uac"));
    assert!(
        !h.statuses(CARRIER_A).contains(&200),
        "not answered here with both codecs"
    );
    assert_eq!(h.take_requests(PHONE, Method::Invite).len(), 1, "relayed");
}

/// A carrier whose 200 listed no Allow refuses a relayed INFO (405): it is taken to refuse
/// INFO, not to have listed every other method, so our refreshes stay re-INVITEs, not
/// UPDATEs it never said it takes (one it ignored would end the call). Before, a refused
/// INFO made up its Allow as "all but INFO".
#[test]
fn a_refused_info_does_not_make_the_refreshes_updates() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.session_timer = timers(TimerMode::Require, 300);
        }
    }));
    let (_inv, ok) = call_with(&mut h, "", &[]);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKri1", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    h.recv_msg(CARRIER_A, reply(&info, 405, "carrier1", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_millis(150_200));
    let methods: Vec<Method> = (h.take(CARRIER_A).into_iter())
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method()),
            _ => None,
        })
        .collect();
    assert_eq!(methods, [Method::Invite], "a re-INVITE refresh, no UPDATE");
}

/// The phone's refresh re-INVITE put off with 491 (the carrier's re-INVITE is on its way to
/// the phone) still shows the phone alive: its leg's expiry runs anew. Before, only a
/// relayed or answered refresh counted, and a phone whose refreshes kept meeting the other
/// leg's exchanges had its live call released as expired.
#[test]
fn a_refresh_put_off_by_glare_still_counts() {
    let mut h = H::new();
    let (inv, ok) = call_with(
        &mut h,
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
        &[],
    );
    let tag = ok.to_tag().unwrap();
    // The phone's leg ends 60 s after its last refresh (90 s less a third).
    h.advance(Duration::from_secs(40));
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 2, "z9hG4bKcr2", SDP),
    );
    let toward_phone = h.one_request(PHONE, Method::Invite);
    h.advance(Duration::from_secs(5));
    let refresh = with_headers(
        &from_phone("INVITE", &tag, 2, "z9hG4bKpr2", SDP),
        "Session-Expires: 90;refresher=uac\r\n",
    );
    h.recv(PHONE, &refresh);
    assert_eq!(h.statuses(PHONE), vec![491]);
    // The phone has not answered the carrier's re-INVITE yet (it rings, say): 60 s after
    // the call's 2xx, the phone's leg has not expired, its refresh put off having counted.
    h.recv_msg(PHONE, reply(&toward_phone, 180, "alice1", &[], None));
    h.advance(Duration::from_secs(20));
    assert!(h.cdrs.is_empty(), "{:?}", h.cdrs);
}

//! Profile shaping of what leaves: ptime, URI and number forms, identity headers, causes.

use super::*;
use crate::interop::causes::Q850Cause;

#[test]
fn ptime_and_uri_policy_shape_the_outbound_invite_and_the_answer() {
    let mut h = H::with(config_with(|n, p| match n {
        "carrier-a" => {
            p.ptime = Some(20);
            p.uri.user_phone = true;
            p.uri.request_uri_params = "tgrp=abc".into();
        }
        "pbx" => p.ptime = Some(40),
        _ => {}
    }));
    h.recv(PHONE, &invite_text("p9", "z9hG4bKp9", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        inv.uri(),
        "sip:+8610123@ims.example.com;user=phone;tgrp=abc"
    );
    assert_eq!(
        inv.to_uri().as_deref(),
        Some("sip:+8610123@ims.example.com;user=phone")
    );
    let body = String::from_utf8_lossy(inv.body()).into_owned();
    assert_eq!(body, format!("{SDP}a=ptime:20\r\n"));
    let ok = h.carrier_answers(&inv, "c9", SDP);
    assert!(String::from_utf8_lossy(ok.body()).ends_with("a=ptime:40\r\n"));
}

/// The phone's SIP-I INVITE: SDP, and `isup` as its ISUP part.
fn sip_i_invite(isup: &[u8]) -> Message {
    let (body, ct) = crate::sdp::with_sdp_part(
        SDP.as_bytes(),
        isup,
        "application/ISUP;version=itu-t92+",
        &[("Content-Disposition", "signal;handling=optional")],
    )
    .unwrap();
    invite_with_body(&body, &ct)
}

/// The phone's INVITE with `body` of type `ct`.
fn invite_with_body(body: &[u8], ct: &str) -> Message {
    let text = invite_text("sipi1", "z9hG4bKsipi1", "+8610123", "").replace(
        "Content-Type: application/sdp",
        &format!("Content-Type: {ct}"),
    );
    let mut raw = text
        .split("Content-Length:")
        .next()
        .unwrap()
        .as_bytes()
        .to_vec();
    raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    raw.extend_from_slice(body);
    crate::sip::parse_datagram(raw.into(), 65535).unwrap()
}

/// From a peer not believed (`trust_asserted = false`), a SIP-I INVITE's SDP goes on alone:
/// its ISUP part (an IAM with a calling number screened as the network's, the forwarding
/// numbers) would assert on the gateway's word what the peer may not assert in a header.
/// Before, it reached the carrier byte for byte.
#[test]
fn an_unbelieved_peers_isup_part_goes_no_further() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.headers.trust_asserted = false;
        }
    }));
    let isup = b"\x01\x00\x49\x00\r\n";
    h.recv_msg(PHONE, sip_i_invite(isup));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        inv.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
    assert_eq!(inv.body().as_ref(), SDP.as_bytes());
    assert!(!inv.has_header(&Hdr::named("Content-Disposition")));
    // Nor when the part's type is written with spaces, folded, or with a comment, which
    // MIME readers take for ISUP all the same (before, these went on whole). The comment
    // the gateway's reader does not take: that body cannot be taken apart, and the INVITE
    // is refused 415 (neither its ISUP nor, without its SDP, a late offer goes on).
    for (n, part_type) in [
        "application / ISUP",
        "application/\r\n isup",
        "application/(sip-i) isup",
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!(
            "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b1\r\nContent-Type: {part_type}\r\n\r\n\x01\x00\x49\r\n--b1--\r\n"
        );
        let msg = invite_with_body(body.as_bytes(), "multipart/mixed;boundary=b1");
        let text = String::from_utf8_lossy(&msg.to_bytes())
            .replace("sipi1", &format!("sipi-s{n}"))
            .replace("z9hG4bKsipi1", &format!("z9hG4bKsipis{n}"));
        h.recv(PHONE, &text);
        if part_type.contains('(') {
            assert_eq!(h.statuses(PHONE).last(), Some(&415));
            assert!(h.take(CARRIER_A).is_empty());
            continue;
        }
        let inv = h.one_request(CARRIER_A, Method::Invite);
        assert_eq!(inv.body().as_ref(), SDP.as_bytes(), "{part_type:?}");
    }
    h.take(PHONE);
    // A late offer's IAM alone in a multipart body: no body at all.
    let iam_alone = b"--b1\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n\x01\x00\x49\r\n--b1--\r\n";
    let (call, branch) = ("sipi2", "z9hG4bKsipi2");
    let msg = invite_with_body(iam_alone, "multipart/mixed;boundary=b1");
    let text = String::from_utf8_lossy(&msg.to_bytes())
        .replace("sipi1", call)
        .replace("z9hG4bKsipi1", branch);
    h.recv(PHONE, &text);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.body().is_empty(), "{inv:?}");
    assert!(!inv.has_header(&Hdr::CONTENT_TYPE));
    // Another multipart body (a location, RFC 6442) goes on as it came.
    let (located, ct) =
        crate::sdp::with_sdp_part(SDP.as_bytes(), b"<presence/>", "application/pidf+xml", &[])
            .unwrap();
    let text = String::from_utf8_lossy(&invite_with_body(&located, &ct).to_bytes())
        .replace("sipi1", "sipi3")
        .replace("z9hG4bKsipi1", "z9hG4bKsipi3");
    h.recv(PHONE, &text);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(
        inv.body().windows(11).any(|w| w == b"<presence/>"),
        "{inv:?}"
    );
}

/// A trusted carrier's SIP-I body the gateway cannot take apart (here, no closing
/// delimiter), toward a peer outside the trust domain: the INVITE is not sent without its
/// body (its SDP would be gone, the PBX would offer in its 2xx and the carrier take that for
/// its answer); the carrier gets 503 and may try elsewhere. Before, the PBX got an INVITE
/// with no body.
#[test]
fn a_carriers_sip_i_body_that_cannot_be_taken_apart_is_not_sent_without_its_sdp() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.headers.trust_identity = false;
        }
    }));
    let unclosed = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b1\r\nContent-Type: application/isup\r\n\r\n\x01\x00\x49\r\n"
    );
    h.recv_msg(
        CARRIER_A,
        invite_with_body(unclosed.as_bytes(), "multipart/mixed;boundary=b1"),
    );
    assert!(
        h.take_requests(PHONE, Method::Invite).is_empty(),
        "no INVITE without its SDP"
    );
    // (That peer of the route is skipped, as one whose INVITE cannot be built: the next,
    // in the trust domain, could take the body whole; with none, 503.)
    let statuses = h.statuses(CARRIER_A);
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
}

/// A trusted carrier's SIP-I INVITE reaches a peer outside the trust domain (`pbx`,
/// `trust_identity = false`) as its SDP alone: the IAM's calling number (restricted or not)
/// and forwarding numbers are what `Privacy` and History-Info withhold from it in headers.
/// One in the trust domain gets the ISUP as it came. Before, the PBX got it byte for byte.
#[test]
fn a_carriers_isup_reaches_only_peers_in_the_trust_domain() {
    for trusted in [false, true] {
        let mut h = H::with(config_with(|n, p| {
            if n == "pbx" {
                p.headers.trust_identity = trusted;
            }
        }));
        let isup = b"\x01\x00\x49\x00\r\n";
        h.recv_msg(CARRIER_A, sip_i_invite(isup));
        let inv = h.one_request(PHONE, Method::Invite);
        let carried = inv.body().windows(isup.len()).any(|w| w == isup);
        assert_eq!(carried, trusted, "{inv:?}");
        if trusted {
            continue;
        }
        // The carrier's SIP-I re-INVITE too; withheld, it is no ptime rewrite (the PBX has
        // none), which every body changed was counted as.
        let (re_body, ct) =
            crate::sdp::with_sdp_part(SDP.as_bytes(), isup, "application/isup", &[]).unwrap();
        let re_body = String::from_utf8(re_body.to_vec()).unwrap();
        let contact = [(Hdr::CONTACT, "<sip:1000@127.0.0.2>")];
        h.recv_msg(PHONE, reply(&inv, 200, "p1", &contact, Some(SDP)));
        let ok = h.response_with(CARRIER_A, 200, "the carrier is answered");
        let tag = ok.to_tag().unwrap();
        h.recv(
            CARRIER_A,
            &from_phone_in("sipi1", "ACK", &tag, 1, "z9hG4bKsipa", ""),
        );
        let re = from_phone_in("sipi1", "INVITE", &tag, 2, "z9hG4bKsipr", &re_body).replacen(
            "Content-Type: application/sdp",
            &format!("Content-Type: {ct}"),
            1,
        );
        h.recv(CARRIER_A, &re);
        let re = h.one_request(PHONE, Method::Invite);
        assert_eq!(re.body().as_ref(), SDP.as_bytes(), "{re:?}");
        let ptime = h.core.rewrites().into_iter().find(|(k, _)| *k == "ptime");
        assert!(ptime.is_none_or(|(_, n)| n == 0), "{ptime:?}");
        if !trusted {
            assert_eq!(
                inv.header(&Hdr::CONTENT_TYPE).as_deref(),
                Some("application/sdp")
            );
            assert_eq!(inv.body().as_ref(), SDP.as_bytes());
        }
    }
}

/// A caller that asked to be private (`Privacy: id`, or `user`) reaches a peer outside the
/// trust domain as `"Anonymous" <sip:anonymous@anonymous.invalid>`: its number and name in
/// From would show what its withheld P-Asserted-Identity does not. A trusted peer gets the
/// From as the caller sent it. Before, the PBX showed the number a carrier wrote in From.
#[test]
fn a_private_caller_is_anonymous_to_a_peer_outside_the_trust_domain() {
    for (privacy, trusted, hidden) in [
        ("id", false, true),
        ("user", false, true),
        ("none", false, false),
        ("id", true, false),
    ] {
        let mut h = H::with(config_with(|n, p| {
            if n == "pbx" {
                p.headers.trust_identity = trusted;
            }
        }));
        let invite = invite_text(
            "pa1",
            "z9hG4bKpa1",
            "1000",
            &format!("Privacy: {privacy}\r\nSubject: Alice calling\r\nOrganization: Alice Ltd\r\n"),
        );
        h.recv(CARRIER_A, &invite);
        let inv = h.one_request(PHONE, Method::Invite);
        // What the caller wrote of itself goes on unless it asked for it withheld (`user`)
        // from a peer outside the trust domain.
        let said =
            inv.has_header(&Hdr::named("Subject")) && inv.has_header(&Hdr::named("Organization"));
        assert_eq!(said, privacy != "user" || trusted, "{privacy} {trusted}");
        let from = inv.header(&Hdr::FROM).unwrap();
        assert_eq!(
            from.starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
            hidden,
            "{privacy} {trusted}: {from}"
        );
        assert_eq!(from.contains("Alice"), !hidden, "{from}");
    }
}

/// A SIP-I INVITE's SDP part gets the peer's ptime like a plain SDP body; its ISUP part
/// goes as it came.
#[test]
fn the_sdp_part_of_a_sip_i_body_gets_the_peers_ptime() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.ptime = Some(20);
        }
    }));
    let isup = b"\x01\x00\x49\x00\r\n";
    h.recv_msg(PHONE, sip_i_invite(isup));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ct = inv.header(&Hdr::CONTENT_TYPE);
    let part = crate::sdp::locate(ct.as_deref(), inv.body())
        .unwrap()
        .unwrap();
    assert!(part.multipart);
    assert_eq!(
        part.of(inv.body()),
        format!("{SDP}a=ptime:20\r\n").as_bytes()
    );
    assert!(
        inv.body().windows(isup.len()).any(|w| w == isup),
        "the ISUP as it came"
    );
}

/// `send_reason = false` sends no Reason at all: not the callee's on its 183 either.
#[test]
fn send_reason_false_stops_the_far_legs_reason_too() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.causes.send_reason = false;
        }
    }));
    h.recv(PHONE, &invite_text("p12", "z9hG4bKp12", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let reason = [(Hdr::REASON, "Q.850;cause=16")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c12", &reason, Some(SDP)));
    let r = h.response_with(PHONE, 183, "183");
    assert!(!r.has_header(&Hdr::REASON), "{r:?}");
    // A peer that takes Reasons gets the callee's as it was written.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p13", "z9hG4bKp13", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c13", &reason, Some(SDP)));
    let r = h.response_with(PHONE, 183, "183");
    assert_eq!(r.header(&Hdr::REASON).as_deref(), Some("Q.850;cause=16"));
}

/// A callee whose profile takes no Reason gets none on our CANCEL either.
#[test]
fn send_reason_false_keeps_the_cancel_bare() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.causes.send_reason = false;
        }
    }));
    h.recv(PHONE, &invite_text("p14", "z9hG4bKp14", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c14", &[], None));
    h.recv(PHONE, &cancel_text("p14", "z9hG4bKp14"));
    let c = h.one_request(CARRIER_A, Method::Cancel);
    assert!(!c.has_header(&Hdr::REASON), "{c:?}");
}

#[test]
fn causes_map_and_send_reason() {
    let mut h = H::with(config_with(|n, p| match n {
        "carrier-a" => {
            p.causes.map.insert(480, Q850Cause(20));
        }
        "pbx" => p.causes.send_reason = false,
        _ => {}
    }));
    h.recv(PHONE, &invite_text("p10", "z9hG4bKp10", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 480, "c10", &[], None));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 480)
        .unwrap();
    assert!(!r.has_header(&Hdr::REASON), "send_reason = false");
    let c = &h.cdrs[0];
    assert_eq!((c.cause, c.cause_source), (20, CauseSource::PeerMap));

    let mut h = H::new();
    h.recv(PHONE, &invite_text("p11", "z9hG4bKp11", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 480, "c11", &[], None));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 480)
        .unwrap();
    assert_eq!(r.header(&Hdr::REASON).as_deref(), Some("Q.850;cause=18"));
    assert_eq!(h.cdrs[0].cause_source, CauseSource::Rfc3398);
}

/// A route without its own ring time: each peer rings for its profile's `ring_timeout_s`,
/// from its own INVITE. carrier-a fails at once; carrier-b (20 s) is given up 20 s after it
/// was called. Before, the call kept the first peer's ring time (here 120 s) throughout.
#[test]
fn without_a_routes_ring_time_each_peer_rings_for_its_own() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-b" {
            p.ring_timeout = Some(Duration::from_secs(20));
        }
    });
    cfg.routes[0].ring_timeout = None;
    let mut h = H::with(cfg);
    h.recv(PHONE, &invite_text("p14", "z9hG4bKp14", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_secs(1));
    h.recv_msg(CARRIER_A, reply(&inv, 503, "c14", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, reply(&inv_b, 180, "b14", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_millis(19_900));
    assert!(h.statuses(PHONE).iter().all(|s| *s < 200), "still ringing");
    h.advance(Duration::from_millis(200));
    assert!(
        h.take_requests(CARRIER_B, Method::Cancel).len() == 1,
        "carrier-b cancelled"
    );
    h.recv_msg(CARRIER_B, reply(&inv_b, 487, "b14", &[], None));
    assert!(h.statuses(PHONE).contains(&480), "carrier-b rang");
}

/// A callee's 503 + Retry-After reaches the caller without the Retry-After (it speaks of the
/// callee's server, not of the gateway); a 486's is the callee's advice and goes on.
#[test]
fn a_callees_503_retry_after_is_not_passed_to_the_caller() {
    for (status, kept) in [(503, false), (500, false), (486, true)] {
        let mut cfg = config();
        cfg.routes[0].to.truncate(1);
        let mut h = H::with(cfg);
        h.recv(PHONE, &invite_text("p13", "z9hG4bKp13", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(
            CARRIER_A,
            reply(&inv, status, "c13", &[(Hdr::RETRY_AFTER, "3600")], None),
        );
        let r = h
            .take_responses(PHONE)
            .into_iter()
            .find(|r| r.status() == status)
            .expect("relayed");
        assert_eq!(r.has_header(&Hdr::RETRY_AFTER), kept, "{status}");
    }
}

/// The same for a 503 to a request relayed inside the call (a re-INVITE): before, its
/// Retry-After reached the caller's side, and one answer from one peer could have the other
/// stop sending calls to the gateway for as long as it said (RFC 3261 §21.5.4). A 500's is
/// glare advice (§14.2), and goes on.
#[test]
fn a_503_retry_after_inside_a_call_is_not_passed_on() {
    for (status, kept) in [(503, false), (500, true)] {
        let mut h = H::new();
        let (_inv, ok) = answered_call(&mut h);
        let tag = ok.to_tag().unwrap();
        h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKra2", SDP));
        let re = h.one_request(CARRIER_A, Method::Invite);
        h.take(PHONE);
        let after = [(Hdr::RETRY_AFTER, "86400")];
        h.recv_msg(CARRIER_A, reply(&re, status, "carrier1", &after, None));
        let r = h.response_with(PHONE, status, "relayed");
        assert_eq!(r.has_header(&Hdr::RETRY_AFTER), kept, "{status}");
    }
}

/// A trusted PBX asserting its caller as a sip URI and a number: toward a trunk that takes
/// numbers as sip URIs both would be sip URIs, two of one kind, which RFC 3325 §9.1 forbids
/// (a strict carrier refuses, a lax one takes either). The number goes on, alone. Toward a
/// trunk that takes tel URIs, both go on, one of each kind.
#[test]
fn at_most_one_asserted_identity_of_each_kind_goes_on() {
    let pai = "P-Asserted-Identity: <sip:alice@pbx.example>, <tel:+15551234>\r\n";
    let asserted = |scheme: crate::interop::uri::UriScheme| {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.uri.scheme = scheme;
            }
        }));
        let invite = invite_text("pai2", "z9hG4bKpai2", "+8610123", "").replace(
            "P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>\r\n",
            pai,
        );
        assert!(invite.contains("alice@"));
        h.recv(PHONE, &invite);
        let inv = h.one_request(CARRIER_A, Method::Invite);
        inv.header_lines(&Hdr::P_ASSERTED_IDENTITY).join(", ")
    };
    let sip = asserted(crate::interop::uri::UriScheme::Sip);
    assert_eq!(sip.matches("<sip:").count(), 1, "{sip}");
    assert!(sip.contains("+15551234") && !sip.contains("alice"), "{sip}");
    let tel = asserted(crate::interop::uri::UriScheme::Tel);
    assert!(
        tel.contains("<tel:+15551234>") && tel.contains("alice"),
        "{tel}"
    );
}

/// `P-Early-Media` (RFC 5009) passes only from a peer that is believed, as a priority claim
/// does, in a callee's provisional too: before, any callee's 183 carried its early-media
/// authorisation to the caller's side.
#[test]
fn early_media_authorisation_passes_only_from_a_believed_peer() {
    for believed in [true, false] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.headers.trust_asserted = believed;
                p.headers.pass.push(Hdr::named("P-Early-Media"));
            }
            if n == "pbx" {
                p.headers.pass.push(Hdr::named("P-Early-Media"));
            }
        }));
        h.recv(PHONE, &invite_text("pem", "z9hG4bKpem", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let pem = [(Hdr::named("P-Early-Media"), "sendrecv")];
        h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &pem, Some(SDP)));
        let r = h.response_with(PHONE, 183, "relayed");
        let got = r.header(&Hdr::named("P-Early-Media"));
        assert_eq!(got.is_some(), believed, "believed: {believed}, {r:?}");
    }
}

/// A STIR/SHAKEN `Identity` an operator lets through (`pass`) reaches the trunk only from
/// a believed peer: the gateway verifies none. Before, any phone's attestation went on.
#[test]
fn a_passed_stir_identity_goes_on_only_from_a_believed_peer() {
    for believed in [true, false] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.headers.pass.push(Hdr::named("Identity"));
            }
            if n == "pbx" {
                p.headers.trust_asserted = believed;
            }
        }));
        let identity = "Identity: eyJhbGciOiJFUzI1NiJ9.e30.c2ln;info=<https://cert.example/x.pem>;alg=ES256;ppt=shaken\r\n";
        h.recv(
            PHONE,
            &invite_text("stir", "z9hG4bKstir", "+8610123", identity),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let got = inv.header(&Hdr::named("Identity"));
        assert_eq!(got.is_some(), believed, "believed: {believed}");
    }
}

/// A passed STIR/SHAKEN `Identity` is withheld with the P-Asserted-Identity when its caller
/// asks for privacy (`Privacy: id`) and the trunk is outside the trust domain: its token
/// names the caller's number. Before, only the P-Asserted-Identity was withheld.
#[test]
fn a_passed_stir_identity_is_withheld_under_privacy_id() {
    for (privacy, passed) in [("id", false), ("none", true)] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.headers.pass.push(Hdr::named("Identity"));
                p.headers.trust_identity = false;
            }
            if n == "pbx" {
                p.headers.trust_asserted = true;
            }
        }));
        let lines = format!(
            "Identity: eyJhbGciOiJFUzI1NiJ9.e30.c2ln;info=<https://cert.example/x.pem>\r\n\
             Privacy: {privacy}\r\n"
        );
        h.recv(
            PHONE,
            &invite_text("stirp", "z9hG4bKstp", "+8610123", &lines),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let got = inv.header(&Hdr::named("Identity"));
        assert_eq!(got.is_some(), passed, "Privacy: {privacy}");
    }
}

/// An emergency call's location (RFC 6442) reaches the trunk whole: its `Geolocation`
/// (pointing at the location body) and `Geolocation-Routing` go on with the body. A phone's
/// `Allow-Events` does not: the gateway takes no SUBSCRIBE. Before, the location headers
/// were left behind and the event packages advertised.
#[test]
fn location_headers_go_on_and_event_packages_do_not() {
    let mut h = H::new();
    let lines = "Geolocation: <cid:loc1@pbx.example>\r\nGeolocation-Routing: yes\r\n\
                 Allow-Events: talk, hold, dialog\r\n";
    h.recv(PHONE, &invite_text("geo", "z9hG4bKgeo", "+8610123", lines));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        inv.header(&Hdr::named("Geolocation")).as_deref(),
        Some("<cid:loc1@pbx.example>")
    );
    assert_eq!(
        inv.header(&Hdr::named("Geolocation-Routing")).as_deref(),
        Some("yes")
    );
    assert_eq!(inv.header(&Hdr::named("Allow-Events")), None);
}

/// carrier-a fails with 503, carrier-b (tried next) never answers: the caller gets carrier-a's
/// 503, and its cause is read with carrier-a's `[causes.map]`, not carrier-b's. The CDR's
/// `egress_peer` is the last peer tried (carrier-b); the event `failure_from_carrier-a` says
/// whose failure the caller got (before, nothing did).
#[test]
fn an_earlier_peers_failure_is_mapped_with_its_own_causes() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.causes.map.insert(503, Q850Cause(34));
        }
    }));
    h.recv(PHONE, &invite_text("p12", "z9hG4bKp12", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 503, "c12", &[], None));
    h.one_request(CARRIER_B, Method::Invite);
    h.advance(Duration::from_secs(40));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() >= 300)
        .expect("a final answer");
    assert_eq!(r.status(), 503);
    assert_eq!(r.header(&Hdr::REASON).as_deref(), Some("Q.850;cause=34"));
    let c = &h.cdrs[0];
    assert_eq!((c.cause, c.cause_source), (34, CauseSource::PeerMap));
    assert_eq!(c.egress_peer.as_deref(), Some("carrier-b"));
    assert!(
        c.events.contains(&"failure_from_carrier-a".to_string()),
        "{c:?}"
    );
}

/// A ported number's routing facts (`;rn=…;npdi`, RFC 4694) and the calling party's
/// category reach the trunk with the number, from a trunk (a transit call), in whichever
/// URI form it takes; before they were dropped whenever the number was rewritten, and the
/// carrier routed a ported number to its old network. From a phone or a PBX only the
/// extension passes: a caller must not route or bill its call by them. The hop's own
/// (`tgrp`) never passes, and a peer may be told to hear none (`number_params = false`).
/// The calling party's category and line information ride on P-Asserted-Identity too
/// (they describe the caller), both ways: a trunk's reach the next trunk; before, every identity header
/// lost them.
#[test]
fn a_numbers_rfc3966_parameters_reach_the_trunk() {
    let gateway = |scheme, user_phone, keep| {
        let mut cfg = config_with(|n, p| {
            if n == "carrier-a" {
                p.uri.scheme = scheme;
                p.uri.user_phone = user_phone;
                p.uri.number_params = keep;
                p.uri.request_uri_params = "tgrp=t1".into();
            }
            if n == "carrier-b" {
                p.uri.scheme = crate::interop::uri::UriScheme::Tel;
            }
        });
        cfg.routes[0].prefix = String::new();
        // Transit: what carrier-b sends goes on to carrier-a.
        cfg.routes.push(Route {
            from: RouteFrom::Peer(PeerName("carrier-b".into())),
            prefix: String::new(),
            to: vec![PeerName("carrier-a".into())],
            ring_timeout: None,
        });
        H::with(cfg)
    };
    let ported = invite_text("p1", "z9hG4bKp1", "x", "")
        .replacen(
            "INVITE sip:x@127.0.0.1 SIP/2.0",
            "INVITE tel:+1-555-0100;rn=+15550199;npdi;tgrp=caller;ext=7 SIP/2.0",
            1,
        )
        .replace(
            "From: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\n",
            "From: \"Alice\" <tel:+15550111;cpc=payphone>;tag=alice1\r\n\
             P-Asserted-Identity: <tel:+15550111;cpc=payphone;oli=27>\r\n",
        );
    assert!(ported.contains("P-Asserted-Identity"), "{ported}");
    const CARRIER_B: &str = "127.0.0.4:5060";
    use crate::interop::uri::UriScheme;
    let mut h = gateway(UriScheme::Tel, false, true);
    h.recv(CARRIER_B, &ported);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    // The operator's tgrp, not the caller's; the number's own in RFC 3966 order.
    assert_eq!(inv.uri(), "tel:+15550100;ext=7;npdi;rn=+15550199;tgrp=t1");
    let to = inv.header(&Hdr::TO).unwrap();
    assert!(
        to.contains("<tel:+15550100;ext=7;npdi;rn=+15550199>"),
        "{to}"
    );
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(from.contains("<tel:+15550111;cpc=payphone>"), "{from}");
    let pai = inv.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(pai.contains("<tel:+15550111;cpc=payphone;oli=27>"), "{pai}");
    // The callee trunk's identity reaches the caller trunk with its own.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "c1",
            &[(Hdr::P_ASSERTED_IDENTITY, "<tel:+15550100;oli=62>")],
            None,
        ),
    );
    let ringing = h
        .take_responses(CARRIER_B)
        .into_iter()
        .find(|r| r.status() == 180)
        .unwrap();
    let pai = ringing.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(pai.contains("<tel:+15550100;oli=62>"), "{pai}");
    // In a SIP URI they belong to the user part, and only with ;user=phone.
    let mut h = gateway(UriScheme::Sip, true, true);
    h.recv(CARRIER_B, &ported);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(
        inv.uri()
            .starts_with("sip:+15550100;ext=7;npdi;rn=+15550199@")
            && inv.uri().ends_with(";user=phone;tgrp=t1"),
        "{}",
        inv.uri()
    );
    let mut h = gateway(UriScheme::Sip, false, true);
    h.recv(CARRIER_B, &ported);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.uri().starts_with("sip:+15550100@"), "{}", inv.uri());
    let mut h = gateway(UriScheme::Tel, false, false);
    h.recv(CARRIER_B, &ported);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.uri(), "tel:+15550100;tgrp=t1");
    // The same INVITE from the PBX: only its extension goes on.
    let mut h = gateway(UriScheme::Tel, false, true);
    h.recv(PHONE, &ported);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.uri(), "tel:+15550100;ext=7;tgrp=t1");
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(from.contains("<tel:+15550111>"), "{from}");
    let pai = inv.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(pai.contains("<tel:+15550111>"), "{pai}");
}

/// Names keep their dots and dashes on their way through (RFC 3966 visual separators are a
/// number's only), and a number private to a domain is not made a national number by an
/// e164 peer. Before, `sales-team` went out as `salesteam`, `john.doe` as `johndoe`, and
/// `tel:1234;phone-context=pbx.example.com` as `+861234`.
#[test]
fn names_keep_their_separators_and_a_private_number_stays_private() {
    let gateway = || {
        let mut cfg = config_with(|n, p| {
            if n == "carrier-a" {
                p.uri.number = crate::interop::uri::NumberFormat::E164;
                p.uri.country_code = Some("86".into());
            }
        });
        cfg.routes[0].prefix = String::new();
        H::with(cfg)
    };
    let mut h = gateway();
    let named = invite_text("n1", "z9hG4bKn1", "sales-team", "").replace(
        "<sip:1000@127.0.0.2>;tag=alice1",
        "<sip:john.doe@127.0.0.2>;tag=alice1",
    );
    h.recv(PHONE, &named);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.uri().starts_with("sip:sales-team@"), "{}", inv.uri());
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(from.contains("<sip:john.doe@"), "{from}");
    let mut h = gateway();
    let private = invite_text("n2", "z9hG4bKn2", "x", "")
        .replacen(
            "INVITE sip:x@127.0.0.1 SIP/2.0",
            "INVITE tel:1234;phone-context=pbx.example.com SIP/2.0",
            1,
        )
        .replace(
            "From: \"Alice\" <sip:1000@127.0.0.2>",
            "From: \"Alice\" <tel:1000;phone-context=pbx.example.com>",
        );
    h.recv(PHONE, &private);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.uri().starts_with("sip:1234@"), "{}", inv.uri());
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(!from.contains("+861000"), "{from}");
    // Toward a peer that takes tel: URIs the number keeps its own context, not the peer's
    // +86 (which would make it national again); its From too.
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.number = crate::interop::uri::NumberFormat::E164;
            p.uri.country_code = Some("86".into());
            p.uri.scheme = crate::interop::uri::UriScheme::Tel;
        }
    });
    cfg.routes[0].prefix = String::new();
    let mut h = H::with(cfg);
    h.recv(PHONE, &private);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.uri(), "tel:1234;phone-context=pbx.example.com");
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(
        from.contains("<tel:1000;phone-context=pbx.example.com>"),
        "{from}"
    );
    // A global context still makes the number global.
    let mut h = gateway();
    h.recv(
        PHONE,
        &invite_text("n3", "z9hG4bKn3", "x", "").replacen(
            "INVITE sip:x@127.0.0.1 SIP/2.0",
            "INVITE tel:10-1234;phone-context=+86 SIP/2.0",
            1,
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.uri().starts_with("sip:+86101234@"), "{}", inv.uri());
    // Dialled with the national prefix in a global context: toward a peer of that country
    // the prefix goes, in the Request-URI, To and From alike. Before, the context was lost
    // on the way and `+8601012345678` went out.
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.number = crate::interop::uri::NumberFormat::E164;
            p.uri.country_code = Some("86".into());
        }
    });
    cfg.routes[0].prefix = String::new();
    let mut h = H::with(cfg);
    h.recv(
        PHONE,
        &invite_text("n4", "z9hG4bKn4", "x", "")
            .replacen(
                "INVITE sip:x@127.0.0.1 SIP/2.0",
                "INVITE tel:010-1234-5678;phone-context=+86 SIP/2.0",
                1,
            )
            .replace(
                "From: \"Alice\" <sip:1000@127.0.0.2>",
                "From: \"Alice\" <tel:0755-8888-1234;phone-context=+86>",
            ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.uri().starts_with("sip:+861012345678@"), "{}", inv.uri());
    let to = inv.header(&Hdr::TO).unwrap();
    assert!(to.contains("+861012345678@"), "{to}");
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(from.contains("+8675588881234@"), "{from}");
}

/// A local number dialled within a global context is routed as the callee gets it: `0044…`
/// dialled within `+86` is international (`00` is China's international prefix), so a route
/// for `+86` does not take it. Before, routing read it as `+860044…` (a domestic call, the
/// CDR said so) while the carrier got `+44…`: any phone could reach any country through a
/// route meant for domestic calls. The same with the plan known only from the callee's
/// profile, and with the sender's own plan; the CDR's `to` is the number sent.
#[test]
fn a_number_dialled_within_a_global_context_is_routed_as_the_callee_gets_it() {
    for sender_plan in [false, true] {
        let cfg = config_with(|n, p| {
            if n == "carrier-a" || (sender_plan && n == "pbx") {
                p.uri.country_code = Some("86".into());
            }
        });
        for uri in [
            "tel:0044900123456;phone-context=+86",
            "sip:0044900123456;phone-context=+86@127.0.0.1",
        ] {
            let mut h = H::with(cfg.clone());
            h.recv(
                PHONE,
                &invite_text("g1", "z9hG4bKg1", "x", "").replacen(
                    "INVITE sip:x@127.0.0.1 SIP/2.0",
                    &format!("INVITE {uri} SIP/2.0"),
                    1,
                ),
            );
            assert!(
                h.take_requests(CARRIER_A, Method::Invite).is_empty(),
                "{uri}: an international number through the +86 route"
            );
            assert_eq!(h.statuses(PHONE), vec![404], "{uri}");
            assert_eq!(h.cdrs[0].to, "+44900123456", "{uri}");
        }
        // Dialled as a domestic number in the same way, it takes the route.
        let mut h = H::with(cfg);
        h.recv(
            PHONE,
            &invite_text("g2", "z9hG4bKg2", "x", "").replacen(
                "INVITE sip:x@127.0.0.1 SIP/2.0",
                "INVITE tel:01012345678;phone-context=+86 SIP/2.0",
                1,
            ),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        assert!(inv.uri().starts_with("sip:+861012345678@"), "{}", inv.uri());
    }
}

/// A PBX without a dialling plan calls through carrier-a, which has none either; carrier-b's
/// profile says how China dials (`country_code` 86, national prefix `0`). The caller's
/// number dialled within `+86` with its national prefix reads the same in its From and its
/// P-Asserted-Identity: `+8675588881234`. Before, the From was read with carrier-b's plan
/// and the P-Asserted-Identity with carrier-a's (none): `+86075588881234`, the trunk
/// prefix inside, which the carrier bills and shows.
#[test]
fn identities_dialled_within_a_global_context_read_as_the_from_does() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-b" {
            p.uri.country_code = Some("86".into());
        }
    });
    cfg.routes[0].prefix = String::new();
    let mut h = H::with(cfg);
    let number = "<tel:0755-8888-1234;phone-context=+86>";
    h.recv(
        PHONE,
        &invite_text("pc1", "z9hG4bKpc1", "+8610123", "")
            .replace(
                "From: \"Alice\" <sip:1000@127.0.0.2>",
                &format!("From: \"Alice\" {number}"),
            )
            .replace(
                "P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>",
                &format!("P-Asserted-Identity: {number}"),
            ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(from.contains("+8675588881234"), "{from}");
    let pai = inv.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(pai.contains("+8675588881234"), "{pai}");
}

#[test]
fn identity_headers_follow_the_peers_number_form() {
    let gateway = || {
        let mut cfg = config_with(|n, p| {
            if n == "carrier-a" {
                p.uri.number = crate::interop::uri::NumberFormat::E164;
                p.uri.country_code = Some("86".into());
                p.uri.user_phone = true;
            }
        });
        cfg.routes[0].prefix = String::new();
        H::with(cfg)
    };
    let mut h = gateway();
    h.recv(
        PHONE,
        &invite_text(
            "i1",
            "z9hG4bKi1",
            "010-1234-5678",
            "Diversion: <sip:0755-8888@127.0.0.2>;reason=unconditional\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.uri(), "sip:+861012345678@ims.example.com;user=phone");
    assert_eq!(
        inv.header(&Hdr::named("Diversion")).as_deref(),
        Some("<sip:+867558888@ims.example.com;user=phone>;reason=unconditional")
    );
    // The PBX's extension 1000 is no national number: not made `+861000` (a number nobody
    // has), it goes as the local number it is, with its context (RFC 3966 §5.1.5).
    assert_eq!(
        inv.header(&Hdr::P_ASSERTED_IDENTITY).as_deref(),
        Some("\"Alice\" <sip:1000;phone-context=+86@ims.example.com;user=phone>")
    );
    // Written without <>: the rewritten URI, which has parameters now, gets them (RFC 3261
    // §20), and the header's own parameters stay outside. Before, `;user=phone` went out
    // bare and read as a header parameter.
    let mut h = gateway();
    h.recv(
        PHONE,
        &invite_text(
            "i2",
            "z9hG4bKi2",
            "010-1234-5678",
            "Diversion: sip:0755-8888@127.0.0.2;reason=unconditional\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        inv.header(&Hdr::named("Diversion")).as_deref(),
        Some("<sip:+867558888@ims.example.com;user=phone>;reason=unconditional")
    );
    // A header parameter of the sender's own (naming its host, say) stays behind; the
    // ones the header defines go on. P-Asserted-Identity has none (RFC 3325 §9.1).
    let mut h = gateway();
    h.recv(
        PHONE,
        &invite_text(
            "i3",
            "z9hG4bKi3",
            "010-1234-5678",
            "Diversion: <sip:0755-8888@127.0.0.2>;x-host=10.1.1.5;Reason=\"user-busy\";counter=2\r\n",
        )
        .replace(
            "P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>",
            "P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>;x=\"10.1.1.5\"",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        inv.header(&Hdr::named("Diversion")).as_deref(),
        Some("<sip:+867558888@ims.example.com;user=phone>;Reason=\"user-busy\";counter=2")
    );
    let pai = inv.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(!pai.contains("10.1.1.5"), "{pai}");
}

/// An identity that does not read as a number or a SIP URI, or whose URI carries what
/// would name a host again, is not carried as written: a broken element is left out, a SIP
/// URI keeps only its user at the gateway's host. Before, each went to the trunk unchanged,
/// the PBX's address in it.
#[test]
fn identity_headers_that_cannot_be_read_are_left_out_not_passed() {
    for (pai, want) in [
        ("< sip:alice@10.0.0.5>", Some("<sip:alice@127.0.0.1>")),
        ("\"Alice <sip:alice@10.0.0.5>", None),
        ("sip:alice;x@10.0.0.5", None),
        (
            "<sip:alice@10.0.0.5;maddr=10.0.0.9?h=10.0.0.9>",
            Some("<sip:alice@127.0.0.1>"),
        ),
        ("<http://10.0.0.5/alice>", None),
        (
            "<sip:bob@10.0.0.5>, \"Alice <sip:alice@10.0.0.5>",
            Some("<sip:bob@127.0.0.1>"),
        ),
    ] {
        let mut h = H::new();
        h.recv(
            PHONE,
            &invite_text("ib", "z9hG4bKib", "+8610123", "")
                .replace("P-Asserted-Identity", "X-Old-PAI")
                .replace(
                    "Max-Forwards:",
                    &format!("P-Asserted-Identity: {pai}\r\nMax-Forwards:"),
                ),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        assert_eq!(
            inv.header(&Hdr::P_ASSERTED_IDENTITY).as_deref(),
            want,
            "{pai}"
        );
        assert!(
            !inv.to_bytes().windows(8).any(|w| w == b"10.0.0.5"),
            "{pai}"
        );
    }
}

// ---------------------------------------------------------------- media anchoring

/// After a failover, the failure the caller gets may be an earlier callee's: its identity
/// is trusted as that callee's, not as the last one tried. A PBX (internal, untrusted with
/// `cpc`) refuses with 503, the trunk after it never answers: the caller trunk hears the
/// PBX's 503 with the PBX's identity stripped of `cpc`. Before, it was taken as the trunk's.
#[test]
fn a_failure_relayed_after_failover_is_trusted_as_the_callee_that_sent_it() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-b" {
            p.uri.scheme = crate::interop::uri::UriScheme::Tel;
        }
    });
    cfg.routes.insert(
        0,
        Route {
            from: RouteFrom::Peer(PeerName("carrier-b".into())),
            prefix: String::new(),
            to: vec![PeerName("pbx".into()), PeerName("carrier-a".into())],
            ring_timeout: None,
        },
    );
    let mut h = H::with(cfg);
    const CARRIER_B: &str = "127.0.0.4:5060";
    let call = invite_text("fo1", "z9hG4bKfo1", "x", "").replacen(
        "INVITE sip:x@127.0.0.1 SIP/2.0",
        "INVITE tel:+15550100 SIP/2.0",
        1,
    );
    h.recv(CARRIER_B, &call);
    let to_pbx = h.one_request(PHONE, Method::Invite);
    h.recv_msg(
        PHONE,
        reply(
            &to_pbx,
            503,
            "p1",
            &[(
                Hdr::P_ASSERTED_IDENTITY,
                "<tel:+15550100;cpc=payphone;ext=7>",
            )],
            None,
        ),
    );
    let _to_trunk = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_secs(40));
    let failed = h.take_responses(CARRIER_B);
    let failed = failed
        .iter()
        .find(|r| r.status() >= 300)
        .expect("the caller's failure");
    assert_eq!(failed.status(), 503, "the PBX's, the trunk gave none");
    let pai = failed.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(pai.contains("<tel:+15550100;ext=7>"), "{pai}");
}

/// An encoded body (`Content-Encoding: gzip`) is opaque to the gateway: a profile's ptime
/// edit would corrupt it, so it goes on as it came and with its encoding, also in the ACK
/// the gateway builds for the caller's answer to a late offer. Before, `a=ptime` was written
/// into the encoded bytes, and the ACK carried them without their Content-Encoding.
#[test]
fn an_encoded_body_goes_on_as_it_came_with_its_encoding() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.ptime = Some(20);
        }
    }));
    let encoded = |m: String| {
        m.replace(
            "Content-Type: application/sdp\r\n",
            "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n",
        )
    };
    let offerless = invite_text("enc1", "z9hG4bKenc1", "+8610123", "")
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!("Content-Length: {}\r\n\r\n{SDP}", SDP.len()),
            "Content-Length: 0\r\n\r\n",
        );
    h.recv(PHONE, &offerless);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.body().is_empty());
    let tag = h.carrier_answers(&inv, "c", SDP).to_tag().unwrap();
    h.take_responses(PHONE);
    let ack = encoded(from_phone_in("enc1", "ACK", &tag, 1, "z9hG4bKenc1a", SDP));
    assert!(ack.contains("Content-Encoding"));
    h.recv(PHONE, &ack);
    let acks = h.take_requests(CARRIER_A, Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(&acks[0].body()[..], SDP.as_bytes());
    let encoding = Hdr::named("Content-Encoding");
    assert_eq!(acks[0].header(&encoding).as_deref(), Some("gzip"));
    // A relayed request's encoded body is not shaped either.
    h.recv(
        PHONE,
        &encoded(from_phone_in(
            "enc1",
            "INVITE",
            &tag,
            2,
            "z9hG4bKenc1r",
            SDP,
        )),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(&re.body()[..], SDP.as_bytes());
    assert_eq!(re.header(&encoding).as_deref(), Some("gzip"));
}

/// A caller who asked for privacy (`Privacy: id`, RFC 3323/3325): its asserted identity
/// reaches a trunk, in the trust domain, which withholds it itself, but not the PBX, an
/// internal peer outside it (whose phones would show the number); `Privacy` goes on to
/// both. Without `Privacy: id`, the PBX gets it. Before, every peer got it.
#[test]
fn privacy_id_keeps_the_asserted_identity_from_peers_outside_the_trust_domain() {
    let private = |text: String| {
        text.replacen(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nP-Asserted-Identity: <tel:+8613800138000>\r\nPrivacy: id\r\n",
            1,
        )
    };
    let mut h = H::new();
    h.recv(
        CARRIER_A,
        &private(invite_text("pv1", "z9hG4bKpv1", "1000", "")),
    );
    let inv = h.one_request(PHONE, Method::Invite);
    assert_eq!(inv.header(&Hdr::P_ASSERTED_IDENTITY), None);
    assert_eq!(inv.header(&Hdr::named("Privacy")).as_deref(), Some("id"));
    // Its answer asks the same of the carrier's caller-to-be: the trunk gets the PBX's.
    let mut h = H::new();
    h.recv(
        PHONE,
        &private(invite_text("pv2", "z9hG4bKpv2", "+8610123", "")),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(
        inv.header(&Hdr::P_ASSERTED_IDENTITY).is_some(),
        "a trunk is trusted"
    );
    // The callee trunk's private identity in its 200 does not reach the PBX.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c1",
            &[
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
                (Hdr::P_ASSERTED_IDENTITY, "<tel:+8610123>"),
                (Hdr::named("Privacy"), "id"),
            ],
            Some(SDP),
        ),
    );
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    assert_eq!(ok.header(&Hdr::P_ASSERTED_IDENTITY), None);
    // A Remote-Party-ID that asks for privacy itself (no Privacy header, as some trunks
    // send it) is withheld from the PBX too; one with `privacy=off` is not.
    for (privacy, kept) in [("full", false), ("off", true)] {
        let mut h = H::new();
        let rpid = invite_text("pv4", "z9hG4bKpv4", "1000", "").replacen(
            "Max-Forwards: 70\r\n",
            &format!(
                "Max-Forwards: 70\r\nRemote-Party-ID: <sip:+8613800138000@10.9.9.9>;party=calling;privacy={privacy}\r\n"
            ),
            1,
        );
        h.recv(CARRIER_A, &rpid);
        let inv = h.one_request(PHONE, Method::Invite);
        assert_eq!(
            inv.header(&Hdr::named("Remote-Party-ID")).is_some(),
            kept,
            "{privacy}"
        );
    }
    // No privacy asked: the PBX gets the identity.
    let mut h = H::new();
    let open = invite_text("pv3", "z9hG4bKpv3", "1000", "").replacen(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nP-Asserted-Identity: <tel:+8613800138000>\r\n",
        1,
    );
    h.recv(CARRIER_A, &open);
    let inv = h.one_request(PHONE, Method::Invite);
    assert!(inv.header(&Hdr::P_ASSERTED_IDENTITY).is_some());
}

/// A scheme is case-insensitive (RFC 3986 §3.1): a caller's `TEL:` From and identity are a
/// tel: URI toward a `scheme = "keep"` peer, as `tel:` is. Before, they went as sip:.
#[test]
fn a_tel_uri_in_capitals_is_a_tel_uri() {
    use crate::interop::uri::UriScheme;
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.scheme = UriScheme::Keep;
        }
    }));
    let invite = invite_text("tc1", "z9hG4bKtc1", "+8610123", "").replace(
        "From: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\n",
        "From: \"Alice\" <TEL:+8613800138000>;tag=alice1\r\n\
         P-Asserted-Identity: <TEL:+8613800138000>\r\n",
    );
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(from.contains("<tel:+8613800138000>"), "{from}");
    let pai = inv.header(&Hdr::P_ASSERTED_IDENTITY).unwrap();
    assert!(pai.contains("<tel:+8613800138000>"), "{pai}");
}

/// An IMS core asserts one number twice, as a sip: and a tel: URI (RFC 3325 §9.1): toward
/// a peer that takes sip: URIs both become the same one, which goes once. Before, the peer
/// got two identical P-Asserted-Identity values.
#[test]
fn one_number_asserted_twice_reaches_a_peer_once() {
    let mut h = H::new();
    let invite = invite_text("pd1", "z9hG4bKpd1", "1000", "").replacen(
        "P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>\r\n",
        "P-Asserted-Identity: \"Alice\" <sip:+8613800138000@ims.example.com;user=phone>\r\n\
         P-Asserted-Identity: <tel:+8613800138000>\r\n",
        1,
    );
    h.recv(CARRIER_A, &invite);
    let inv = h.one_request(PHONE, Method::Invite);
    let pai = inv.header_lines(&Hdr::P_ASSERTED_IDENTITY);
    assert_eq!(pai.len(), 1, "{pai:?}");
    assert!(pai[0].starts_with("\"Alice\""), "the first kept: {pai:?}");
}

/// A carrier's INVITE listing hundreds of identities in one line reaches the phone with
/// at most two P-Asserted-Identity values (RFC 3325 §9.1) and ten Diversion entries, each
/// once. Before, every element was rewritten (growing by the gateway's host): the INVITE
/// relayed was several times the one received.
#[test]
fn identity_lists_are_carried_each_once_and_bounded() {
    let mut h = H::new();
    let many = |n: u32| {
        (0..n)
            .map(|i| format!("<tel:+86138001{:05}>", i % 100))
            .collect::<Vec<_>>()
            .join(",")
    };
    let invite = invite_text("pd2", "z9hG4bKpd2", "1000", "").replacen(
        "P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>\r\n",
        &format!(
            "P-Asserted-Identity: {}\r\nDiversion: {};reason=unconditional\r\n",
            many(300),
            many(300)
        ),
        1,
    );
    h.recv(CARRIER_A, &invite);
    let inv = h.one_request(PHONE, Method::Invite);
    let count = |h: &Hdr| {
        (inv.header_lines(h).iter())
            .map(|l| crate::sip::split_header_list(l).len())
            .sum::<usize>()
    };
    // (One of each kind, RFC 3325 §9.1: these are all tel.)
    assert_eq!(count(&Hdr::P_ASSERTED_IDENTITY), 1);
    assert_eq!(count(&Hdr::named("Diversion")), 10);
    assert!(
        inv.to_bytes().len() < invite.len() / 4,
        "{}",
        inv.to_bytes().len()
    );
}

/// Routes compare numbers in global form: the PBX's callers dial `0086…` or `010…` (its
/// `country_code` 86, its prefixes `00` and `0`), and the route written `+86` takes both;
/// a route written as dialled still takes the number as dialled. Before, only a caller that
/// dialled `+86…` reached the route, and the others got 404.
#[test]
fn routes_take_a_number_however_the_callers_peer_dials_it() {
    let plan = |country: Option<&str>| {
        let mut cfg = config_with(|n, p| {
            if n == "pbx" {
                p.uri.country_code = country.map(str::to_string);
            }
        });
        cfg.routes.push(Route {
            from: RouteFrom::Peer(PeerName("pbx".into())),
            prefix: "00".into(),
            to: vec![PeerName("carrier-b".into())],
            ring_timeout: None,
        });
        H::with(cfg)
    };
    let dial = |h: &mut H, number: &str, branch: &str| {
        let call_id = format!("{branch}@127.0.0.2");
        h.recv(PHONE, &invite_text(&call_id, branch, number, ""));
        (
            h.take_requests(CARRIER_A, Method::Invite).len(),
            h.take_requests(CARRIER_B, Method::Invite).len(),
            h.failures(PHONE),
        )
    };
    let mut h = plan(Some("86"));
    assert_eq!(dial(&mut h, "+8610123456", "z9hG4bKr1"), (1, 0, vec![]));
    assert_eq!(dial(&mut h, "0086-10-123456", "z9hG4bKr2"), (1, 0, vec![]));
    assert_eq!(dial(&mut h, "010123456", "z9hG4bKr3"), (1, 0, vec![]));
    // Another country's number: no `+44` route, the `00` route as dialled.
    assert_eq!(dial(&mut h, "0044207946000", "z9hG4bKr4"), (0, 1, vec![]));
    // A short code stays as dialled: no route takes `112`; nor do bare digits, which may be
    // an extension of the PBX's own (`20001` is not `+8620001`).
    assert_eq!(dial(&mut h, "112", "z9hG4bKr5"), (0, 0, vec![404]));
    assert_eq!(dial(&mut h, "20001", "z9hG4bKr8"), (0, 0, vec![404]));
    // Without a country code the peer's dialling plan is unknown: numbers as dialled.
    let mut h = plan(None);
    assert_eq!(dial(&mut h, "010123456", "z9hG4bKr6"), (0, 0, vec![404]));
    assert_eq!(dial(&mut h, "0086-10-123456", "z9hG4bKr7"), (0, 1, vec![]));
}

/// An identity written without `<>` from a phone or PBX: a `tel:` number's tail is its own
/// parameters, filtered as any caller's (no `rn`/`npdi` from a PBX), and the rewritten URI
/// goes out in `<>`; an element whose text before `<` is an address, not a display name,
/// is left out (its address would reach the trunk). Before, `;rn=…;npdi` went out after
/// the number as written, and read as the number's again; and the address went out too.
#[test]
fn an_unbracketed_identity_keeps_no_untrusted_parameter_and_no_address() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.scheme = crate::interop::uri::UriScheme::Tel;
            p.headers.trust_identity = true;
        }
    });
    cfg.routes[0].prefix = String::new();
    let mut h = H::with(cfg);
    h.recv(
        PHONE,
        &invite_text(
            "u1",
            "z9hG4bKu1",
            "+8610123",
            "P-Asserted-Identity: tel:+8613800001111;rn=+8613900000000;npdi\r\n\
             P-Asserted-Identity: sip:1000@10.0.0.5;x=<sip:2000@10.0.0.5>\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let pai = inv.header_lines(&Hdr::P_ASSERTED_IDENTITY).join(", ");
    assert!(pai.contains("<tel:+8613800001111>"), "{pai}");
    assert!(!pai.contains("rn=") && !pai.contains("npdi"), "{pai}");
    assert!(!pai.contains("10.0.0.5"), "{pai}");
}

/// A peer's Reason on a provisional response goes on as we write Reason values: an
/// unterminated quoted text closed, odd spacing gone. Before, anything but a failure
/// response and a BYE carried it as the peer wrote it, broken quote and all. One value per
/// protocol (RFC 3326): the second Q.850 one stays behind.
#[test]
fn a_provisionals_reason_goes_on_as_we_write_reason_values() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("r1", "z9hG4bKr1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            183,
            "c1",
            &[
                (Hdr::REASON, "Q.850;cause=16;text=\"unterminated"),
                (Hdr::REASON, "Q.850 ; cause=31"),
                (Hdr::REASON, "SIP ; cause=183"),
            ],
            None,
        ),
    );
    let got = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 183)
        .expect("the 183 relayed");
    let reasons = got.header_lines(&Hdr::REASON).join(", ");
    assert_eq!(
        reasons,
        "Q.850;cause=16;text=\"unterminated\", SIP;cause=183"
    );
}

/// A caller name whose `;` came escaped (`%3B`: part of the name, no parameter) goes on
/// escaped: written back as a bare `;` it would give a trunk reading parameters in a user
/// part the `rn`/`npdi` a phone may not set (the number parameters' trust rule).
#[test]
fn an_escaped_semicolon_in_the_callers_name_stays_escaped() {
    let mut h = H::new();
    let inv = invite_text("esc1", "z9hG4bKesc1", "+8610123", "").replace(
        "<sip:1000@127.0.0.2>",
        "<sip:1000%3Brn=+15550199%3Bnpdi@127.0.0.2>",
    );
    assert!(inv.contains("%3Brn="));
    h.recv(PHONE, &inv);
    let out = h.one_request(CARRIER_A, Method::Invite);
    let from = out.header(&Hdr::FROM).unwrap();
    assert!(!from.contains(";rn=") && !from.contains(";npdi"), "{from}");
    assert!(from.contains("%3Brn="), "{from}");
}

/// RFC 3325 §5: the identity a peer that is not believed (`trust_asserted = false`) asserts
/// goes no further, in its INVITE or its answer (a phone could claim any number, and a trunk
/// would take it as the gateway's assertion), nor the one it prefers (the trunk may assert
/// it on our word, §6), nor the forwarding numbers it names (Diversion, History-Info: a
/// carrier bills a forwarded call and lets it show the caller's number by them). A believed
/// peer's (the test PBX's, as profiles/pbx.toml) reach the trunk.
#[test]
fn an_identity_asserted_by_a_peer_that_is_not_believed_goes_no_further() {
    let gateway = |believed: bool| {
        H::with(config_with(|n, p| {
            if n == "pbx" {
                p.headers.trust_asserted = believed;
            }
        }))
    };
    let claims = "Remote-Party-ID: <sip:+8620999@127.0.0.2>;party=calling;screen=yes\r\n\
                  P-Preferred-Identity: <sip:1000@127.0.0.2>\r\n\
                  Diversion: <sip:+8620888@127.0.0.2>;reason=unconditional\r\n\
                  History-Info: <sip:+8620777@127.0.0.2>;index=1\r\n";
    for believed in [false, true] {
        let mut h = gateway(believed);
        h.recv(PHONE, &invite_text("ua1", "z9hG4bKua1", "+8610123", claims));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        for claim in [
            Hdr::P_ASSERTED_IDENTITY,
            Hdr::named("Remote-Party-ID"),
            Hdr::P_PREFERRED_IDENTITY,
            Hdr::named("Diversion"),
            Hdr::HISTORY_INFO,
        ] {
            assert_eq!(inv.header(&claim).is_some(), believed, "{claim:?}");
        }
    }
    // A carrier's call answered by the PBX that is not believed: the connected identity in
    // its 200 does not reach the carrier.
    let mut h = gateway(false);
    h.recv(CARRIER_A, &invite_text("ua2", "z9hG4bKua2", "1000", ""));
    let inv = h.one_request(PHONE, Method::Invite);
    h.recv_msg(
        PHONE,
        reply(
            &inv,
            200,
            "p1",
            &[
                (Hdr::CONTACT, "<sip:1000@127.0.0.2>"),
                (Hdr::P_ASSERTED_IDENTITY, "<sip:+8620999@127.0.0.2>"),
            ],
            Some(SDP),
        ),
    );
    let ok = h.response_with(CARRIER_A, 200, "the carrier gets the 200");
    assert_eq!(ok.header(&Hdr::P_ASSERTED_IDENTITY), None);
}

/// Numbers are read as the caller's peer dials them and written as the callee's peer takes
/// them: a North American PBX (`011` abroad, `1` before a national number) calls through a
/// trunk that wants E.164 and whose own callers dial `00` and `0`. Its `011 44…` is
/// `+44…`, and its caller's `1 212…` is `+1 212…`. Before, the trunk's prefixes read them:
/// `+1 11 44…` and `+1 12 12…`, numbers nobody has.
#[test]
fn numbers_are_read_with_the_callers_prefixes_and_written_in_the_callees_form() {
    let mut cfg = config_with(|n, p| nanp_pbx_and_e164_carrier(n, p, "1"));
    cfg.routes[0].prefix = String::new();
    let mut h = H::with(cfg);
    let invite = invite_text("np1", "z9hG4bKnp1", "011442079460000", "").replace(
        "<sip:1000@127.0.0.2>;tag",
        "<sip:12125550100@127.0.0.2>;tag",
    );
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.uri(), "sip:+442079460000@ims.example.com");
    assert_eq!(
        inv.from_uri().as_deref(),
        Some("sip:+12125550100@ims.example.com")
    );
}

/// Privacy and priority toward a trunk: `Resource-Priority` only from a peer that is believed
/// (RFC 4412 §11; before, any phone's `ets.0` reached the carrier on our word); an identity
/// whose owner asked for privacy is withheld from a trusted peer whose `strip` takes
/// `Privacy` off (before, it got the identity without the request, and showed it); a
/// Diversion entry with its own `privacy=full` is withheld from a peer outside the trust
/// domain, as a Remote-Party-ID's is (before, the forwarding number went on).
#[test]
fn privacy_and_priority_reach_a_trunk_only_as_their_senders_may_ask() {
    let call = |cfg: crate::config::Config, extra: &str| {
        let mut cfg = cfg;
        cfg.routes[0].prefix = String::new();
        let mut h = H::with(cfg);
        h.recv(PHONE, &invite_text("pp1", "z9hG4bKpp1", "+8610123", extra));
        h.one_request(CARRIER_A, Method::Invite)
    };
    let rp = "Resource-Priority: ets.0\r\n";
    let believed = call(config_with(|_, _| {}), rp);
    assert_eq!(
        believed.header(&Hdr::named("Resource-Priority")).as_deref(),
        Some("ets.0")
    );
    let untrusted = call(
        config_with(|n, p| {
            if n == "pbx" {
                p.headers.trust_asserted = false;
            }
        }),
        rp,
    );
    assert_eq!(untrusted.header(&Hdr::named("Resource-Priority")), None);

    let private = "Privacy: id\r\n";
    let trusted = |strip: bool| {
        config_with(move |n, p| {
            if n == "carrier-a" {
                p.headers.trust_identity = true;
                if strip {
                    p.headers.strip = vec![Hdr::named("Privacy")];
                }
            }
        })
    };
    let kept = call(trusted(false), private);
    assert!(kept.header(&Hdr::P_ASSERTED_IDENTITY).is_some());
    assert_eq!(kept.header(&Hdr::named("Privacy")).as_deref(), Some("id"));
    let stripped = call(trusted(true), private);
    assert_eq!(stripped.header(&Hdr::named("Privacy")), None);
    assert_eq!(stripped.header(&Hdr::P_ASSERTED_IDENTITY), None);

    // Toward a trunk outside the trust domain.
    let diverted = |privacy: &str| {
        call(
            config_with(|n, p| {
                if n == "carrier-a" {
                    p.headers.trust_identity = false;
                }
            }),
            &format!("Diversion: <sip:0755-8888@127.0.0.2>;reason=unconditional{privacy}\r\n"),
        )
        .header(&Hdr::named("Diversion"))
    };
    assert!(diverted("").is_some());
    assert!(diverted(";privacy=off").is_some());
    // A parameter that would make the header unreadable (a quote never closed) stays out.
    let broken = diverted(";counter=\"2").unwrap_or_default();
    assert!(!broken.contains("counter"), "{broken}");
    assert!(broken.contains("reason=unconditional"), "{broken}");
    assert_eq!(diverted(";privacy=full"), None);
    // Per entry (RFC 5806 §4), on one line: the private one withheld, the others kept.
    // Before, `privacy=off` followed by another entry read as private, and one entry's
    // `privacy=full` withheld the whole line.
    let both = |first: &str, second: &str| {
        diverted(&format!(
            "{first}, <sip:0755-9999@127.0.0.2>;reason=user-busy{second}"
        ))
    };
    let kept = both(";privacy=off", "").expect("both kept");
    assert!(kept.contains("8888") && kept.contains("9999"), "{kept}");
    let kept = both("", ";privacy=full").expect("the first kept");
    assert!(kept.contains("8888") && !kept.contains("9999"), "{kept}");
}

/// A believed PBX's call: after a reload that no longer believes its address's profile, an
/// ISUP body in an INFO of that call still goes on, judged by the call's own peer (as a
/// reload changes nothing else of a call). Before, the edge judged it by the profile its
/// address now falls in, and withheld it.
#[test]
fn a_calls_isup_is_judged_by_its_own_peer_after_a_reload() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let info = |cseq: u32, branch: &str| {
        from_phone("INFO", &tag, cseq, branch, "\x01\x00\x49\x00").replace(
            "Content-Type: application/sdp",
            "Content-Type: application/isup;version=itu-t92+",
        )
    };
    let mut cfg = config_with(|n, p| {
        if n == "pbx" {
            p.headers.trust_asserted = false;
        }
    });
    cfg.link_dial_plans();
    assert!(h.reload(Arc::new(cfg)));
    h.take(CARRIER_A);
    h.recv(PHONE, &info(2, "z9hG4bKisr1"));
    let relayed = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(relayed.body().as_ref(), b"\x01\x00\x49\x00");
}

/// A short code and a service code dialled under a country's `phone-context` keep that
/// context toward the callee, in the Request-URI, To, From and P-Asserted-Identity alike
/// (README, `[uri] user_phone`): `911;phone-context=+1` is the US emergency number whatever
/// the callee's `country_code`. Before, Request-URI, To and From took the callee's country
/// (`+86`) while P-Asserted-Identity kept `+44`: a review found it.
#[test]
fn a_short_code_keeps_its_global_context_on_every_uri_of_the_invite() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.country_code = Some("86".into());
            p.uri.scheme = crate::interop::uri::UriScheme::Tel;
        }
    });
    cfg.routes[0].prefix = String::new();
    let mut h = H::with(cfg);
    let invite = invite_text("sc1", "z9hG4bKsc1", "x", "")
        .replacen(
            "INVITE sip:x@127.0.0.1 SIP/2.0",
            "INVITE tel:911;phone-context=+1 SIP/2.0",
            1,
        )
        .replace("To: <sip:x@127.0.0.1>", "To: <tel:911;phone-context=+1>")
        .replace(
            "From: \"Alice\" <sip:1000@127.0.0.2>",
            "From: \"Alice\" <tel:*21#;phone-context=+44>",
        )
        .replace(
            "P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>",
            "P-Asserted-Identity: \"Alice\" <tel:*21#;phone-context=+44>",
        );
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.uri(), "tel:911;phone-context=+1");
    let to = inv.header(&Hdr::TO).unwrap();
    assert!(to.contains("tel:911;phone-context=+1"), "{to}");
    let from = inv.header(&Hdr::FROM).unwrap();
    assert!(from.contains("phone-context=+44"), "{from}");
    let pai = inv.header(&Hdr::named("P-Asserted-Identity")).unwrap();
    assert!(pai.contains("phone-context=+44"), "{pai}");
}

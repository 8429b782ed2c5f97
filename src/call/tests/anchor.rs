//! Anchored media: SDP toward each leg names only the gateway; ports come back however calls end.

use super::*;

use crate::media::MediaAction;

/// A callee behind NAT (its signalling from a public address, its SDP naming a private
/// one, `latch = "any"`) gets no RTP before its own packets show where it is: the relay is
/// told not to send to that SDP address. Before, the caller's audio went to 10.1.2.3, a
/// host of the gateway's own network perhaps. A leg whose SDP is public, or whose peer is
/// as private as its SDP (a PBX on the LAN), is sent to as before.
#[test]
fn rtp_waits_for_a_natted_legs_own_packets() {
    let natted = |address: &str| {
        let address: std::net::SocketAddr = address.parse().unwrap();
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
                p.latch = crate::media::Latch::Any;
                p.address = crate::sip::Target::udp(address);
                p.matches = vec![address.ip().into()];
            }
        }))
    };
    for (peer, sdp, waits) in [
        ("198.51.100.3:5060", "10.1.2.3", true),
        ("198.51.100.3:5060", "100.64.0.9", true),
        ("198.51.100.3:5060", "198.51.100.7", false),
        ("10.9.9.9:5060", "10.1.2.3", false),
    ] {
        let mut h = natted(peer);
        h.recv(PHONE, &invite_text("w1", "z9hG4bKw1", "+8610123", ""));
        let inv = h.one_request(peer, Method::Invite);
        let answer = SDP.replace("192.0.2.10", sdp).replace("4000", "5004");
        h.carrier_answers_on(peer, &inv, "m1", &answer);
        let pairs = h.relay_pairs();
        assert_eq!(pairs[0].b_wait_for_source, waits, "{peer} {sdp}");
        assert_eq!(
            pairs[0].b_remote,
            Some(format!("{sdp}:5004").parse().unwrap())
        );
        // The caller's SDP is public (192.0.2.10): sent to as before.
        assert!(!pairs[0].a_wait_for_source);
        // Each leg's signalling IP, which its RTP may come from after the first seconds.
        let peer_ip: std::net::SocketAddr = peer.parse().unwrap();
        assert_eq!(pairs[0].b_signalling, Some(peer_ip.ip()));
        assert_eq!(pairs[0].a_signalling, Some(addr(PHONE).ip()));
    }
}

/// A carrier whose profile lists its media networks (`[media] networks`): an answer naming
/// an address outside them (an internal host of ours, say) is never sent to, the relay is
/// told to take nothing from outside them, and the CDR says so; one inside is sent to as
/// before, and the caller's leg (no networks) is as it was.
#[test]
fn an_sdp_address_outside_the_peers_media_networks_is_never_a_destination() {
    let nets: std::sync::Arc<[ipnet::IpNet]> =
        std::sync::Arc::from(vec!["198.51.100.0/24".parse::<ipnet::IpNet>().unwrap()]);
    for (sdp, outside) in [("10.1.2.3", true), ("198.51.100.7", false)] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
                p.media_networks = Some(nets.clone());
            }
        }));
        h.recv(PHONE, &invite_text("n1", "z9hG4bKn1", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let answer = SDP.replace("192.0.2.10", sdp).replace("4000", "5004");
        let ok = h.carrier_answers_on(CARRIER_A, &inv, "m1", &answer);
        let pairs = h.relay_pairs();
        assert_eq!(pairs[0].b_wait_for_source, outside, "{sdp}");
        assert_eq!(pairs[0].b_networks.as_deref(), Some(&nets[..]));
        assert!(!pairs[0].a_wait_for_source && pairs[0].a_networks.is_none());
        let bye = from_phone_in("n1", "BYE", &ok.to_tag().unwrap(), 2, "z9hG4bKnb", "");
        h.recv(PHONE, &bye);
        let events = &h.cdrs[0].events;
        let said = events.iter().any(|e| e == "media_outside_networks_callee");
        assert_eq!(said, outside, "{events:?}");
    }
}

/// An offer whose Content-Type spells SDP with spaces around the `/` (RFC 3261 allows them;
/// every SIP parser reads it as SDP) is anchored like any other, and a body whose
/// Content-Type cannot be read at all is refused (488). Before, both went on untouched:
/// the phone's addresses to the carrier, and its media around the relay.
#[test]
fn an_offer_typed_with_spaces_is_anchored_and_an_unreadable_type_refused() {
    let mut h = anchored();
    let spaced = invite_text("sp1", "z9hG4bKsp1", "+8610123", "").replace(
        "Content-Type: application/sdp",
        "Content-Type: application / sdp",
    );
    assert!(spaced.contains("application / sdp"));
    h.recv(PHONE, &spaced);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let offer = String::from_utf8_lossy(inv.body()).into_owned();
    assert!(!offer.contains("192.0.2.10"), "leaked:\n{offer}");
    assert!(offer.contains("c=IN IP4 127.0.0.1\r\n"), "{offer}");
    let mut h = anchored();
    let unreadable = invite_text("sp2", "z9hG4bKsp2", "+8610123", "")
        .replace("Content-Type: application/sdp", "Content-Type: sdp");
    h.recv(PHONE, &unreadable);
    assert!(h.take(CARRIER_A).is_empty());
    assert!(h.statuses(PHONE).contains(&488));
}

#[test]
fn anchored_call_shows_each_side_only_the_gateway_and_plans_the_relay() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("a1", "z9hG4bKa1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let offer = String::from_utf8_lossy(inv.body()).into_owned();
    assert!(
        !offer.contains("192.0.2.10"),
        "phone's media address leaked:\n{offer}"
    );
    assert!(offer.contains("c=IN IP4 127.0.0.1\r\n"));
    let pairs = h.relay_pairs();
    assert_eq!(pairs.len(), 1);
    assert!(
        offer.contains(&format!("m=audio {} RTP/AVP 0", pairs[0].b_port)),
        "{offer}"
    );
    assert_eq!(pairs[0].a_remote, Some("192.0.2.10:4000".parse().unwrap()));
    assert_eq!(pairs[0].b_remote, None);
    // The carrier answers from its own media address; the phone sees only the gateway.
    let answer = SDP
        .replace("192.0.2.10", "198.51.100.7")
        .replace("4000", "5004");
    let ok = h.carrier_answers(&inv, "m1", &answer);
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(!body.contains("198.51.100.7"), "{body}");
    let pairs = h.relay_pairs();
    assert!(
        body.contains(&format!("m=audio {} RTP/AVP 0", pairs[0].a_port)),
        "{body}"
    );
    assert_eq!(
        pairs[0].b_remote,
        Some("198.51.100.7:5004".parse().unwrap())
    );
    assert_ne!(pairs[0].a_port, pairs[0].b_port);
}

#[test]
fn each_legs_rtcp_port_from_its_sdp_reaches_the_relay() {
    let mut h = anchored();
    // The phone's `a=rtcp` names another host: not taken (its RTCP is taken only from its
    // RTP's IP, and another address would be sent to unchecked).
    let offer = format!("{SDP}a=rtcp:4001 IN IP4 192.0.2.99\r\n");
    h.recv(PHONE, &invite_with_sdp("rc1", &offer));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    // The carrier's is on a port of its own, at its RTP address.
    let answer = SDP
        .replace("192.0.2.10", "198.51.100.7")
        .replace("4000", "5004")
        + "a=rtcp:5010 IN IP4 198.51.100.7\r\n";
    h.carrier_answers(&inv, "rc1", &answer);
    let pairs = h.relay_pairs();
    assert_eq!(
        (pairs[0].a_rtcp_port, pairs[0].b_rtcp_port),
        (None, Some(5010))
    );
}

/// An answer with fewer m= lines than its offer (a peer that leaves out the video it does
/// not take) reaches the offerer with the missing sections added back, refused (port 0,
/// the offer's media, transport and formats): RFC 3264 §6, and an offerer may refuse an
/// answer that has fewer. Before, it went on as the peer sent it.
#[test]
fn an_answer_that_leaves_out_offered_sections_gets_them_back_refused() {
    let mut h = anchored();
    let offer = format!(
        "{SDP}m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=mid:v1\r\na=mid:v2\r\n"
    );
    h.recv(PHONE, &invite_with_sdp("pd1", &offer));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let answer = SDP
        .replace("192.0.2.10", "198.51.100.7")
        .replace("4000", "5004");
    let ok = h.carrier_answers(&inv, "pd1", &answer);
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    let m: Vec<&str> = body.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(m.len(), 2, "{body}");
    assert!(
        m[0].starts_with("m=audio ") && !m[0].starts_with("m=audio 0 "),
        "{body}"
    );
    assert_eq!(m[1], "m=video 0 RTP/AVP 96", "{body}");
    assert!(
        body.ends_with("m=video 0 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\na=mid:v1\r\n"),
        "{body}"
    );
    assert!(!body.contains("198.51.100.7"), "{body}");
}

#[test]
fn ports_return_to_the_pool_whatever_way_calls_end() {
    let mut h = anchored();
    let total = h.core.free_media_ports();
    assert_eq!(total, 5, "test pool 30000-30009");
    for i in 0..2000 {
        let id = format!("pp{i}");
        h.recv(
            PHONE,
            &invite_text(&id, &format!("z9hG4bKpp{i}"), "+8610123", ""),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        match i % 3 {
            0 => h.recv_msg(CARRIER_A, reply(&inv, 486, "x", &[], None)),
            1 => {
                let ok = h.carrier_answers(&inv, "x", SDP);
                let tag = ok.to_tag().unwrap();
                h.recv(
                    PHONE,
                    &in_dialog(
                        "BYE",
                        "sip:127.0.0.1",
                        phone_from(),
                        &format!("<sip:+8610123@127.0.0.1>;tag={tag}"),
                        &id,
                        2,
                        &format!("z9hG4bKppb{i}"),
                        "127.0.0.2:5060",
                        "",
                    ),
                );
                let bye = h.one_request(CARRIER_A, Method::Bye);
                h.recv_msg(CARRIER_A, reply(&bye, 200, "x", &[], None));
            }
            _ => h.advance(Duration::from_secs(33)),
        }
        h.sent.clear();
    }
    h.advance(Duration::from_secs(100));
    assert_eq!(h.core.free_media_ports(), total, "no port leaked");
    let releases = h
        .media
        .iter()
        .filter(|m| matches!(m, MediaAction::Release { .. }))
        .count();
    assert_eq!(releases, 2000);
}

#[test]
fn an_exhausted_pool_refuses_the_call_with_503() {
    let mut h = anchored();
    // Five pairs: two calls take four, the third needs two more.
    for i in 0..3 {
        h.recv(
            PHONE,
            &invite_text(&format!("ex{i}"), &format!("z9hG4bKex{i}"), "+8610123", ""),
        );
    }
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 2);
    let st: Vec<u16> = h.statuses(PHONE);
    assert!(st.contains(&503), "{st:?}");
    let c = h.cdrs.iter().find(|c| c.call_id == "ex2").unwrap();
    assert_eq!(c.call_tag, CallTag::MediaUnavailable);
    assert_eq!(c.cause, 47);
}

/// A late offer (an INVITE without SDP) on an anchored route when the pool is dry is
/// refused as an offer is: 503, cause 47, `media_ports_exhausted`, no INVITE sent. Before,
/// it went on, the callee's offer found no ports, and the call was answered with every
/// stream refused: silent, and billed.
#[test]
fn a_late_offer_with_the_pool_dry_is_refused_with_503() {
    let mut h = anchored();
    while h.core.env.pool.alloc_pairs(1).is_some() {}
    h.recv(PHONE, &offerless_text("lx1", "z9hG4bKlx1", ""));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    assert!(h.statuses(PHONE).contains(&503));
    let c = h.cdrs.iter().find(|c| c.call_id == "lx1").unwrap();
    assert_eq!((c.call_tag, c.cause), (CallTag::MediaUnavailable, 47));
    assert!(
        c.events.iter().any(|e| e == "media_ports_exhausted"),
        "{:?}",
        c.events
    );
    // The relay was told nothing of a call refused before any stream: told, it opened
    // (and then deleted) the call's recording, once per INVITE.
    assert!(
        !h.media
            .iter()
            .any(|m| matches!(m, MediaAction::Relay { .. })),
        "{:?}",
        h.media
    );
}

/// A re-INVITE adding a stream when the pool is dry is refused with 488 (the call goes on)
/// and said as a new call's would be: a warning and the CDR's `media_ports_exhausted`.
#[test]
fn a_stream_added_mid_call_with_the_pool_dry_gets_488_and_the_cdr_says_why() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("dry1", "z9hG4bKdry1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    phone_acks(&mut h, "dry1", &tag, 1, "z9hG4bKdry1a");
    // Other calls take the rest of the pool.
    for i in 0..2 {
        h.recv(
            PHONE,
            &invite_text(
                &format!("dry-o{i}"),
                &format!("z9hG4bKdo{i}"),
                "+8610123",
                "",
            ),
        );
    }
    h.take_requests(CARRIER_A, Method::Invite);
    h.take_responses(PHONE);
    let two = format!("{SDP}m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    h.recv(
        PHONE,
        &from_phone_in("dry1", "INVITE", &tag, 2, "z9hG4bKdry2", &two),
    );
    let refused = h.response_with(PHONE, 488, "refused");
    assert!(
        refused.header(&Hdr::named("Warning")).is_none(),
        "our want, not the offer's fault"
    );
    assert!(h.take(CARRIER_A).is_empty(), "never forwarded");
    h.recv(
        PHONE,
        &from_phone_in("dry1", "ACK", &tag, 2, "z9hG4bKdry2", ""),
    );
    h.recv(
        PHONE,
        &from_phone_in("dry1", "BYE", &tag, 3, "z9hG4bKdry3", ""),
    );
    let cdr = h.cdrs.iter().find(|c| c.call_id == "dry1").unwrap();
    assert_eq!(cdr.call_tag, CallTag::CallerBye, "the call went on");
    assert!(
        cdr.events.iter().any(|e| e == "media_ports_exhausted"),
        "{:?}",
        cdr.events
    );
}

/// A leg's SDP in the other IP family than the relay's (`[media] advertise` IPv4 here): an
/// offer so written gets 488 and takes no ports; an answer (which cannot be refused) is
/// said, in the log and the CDR. Before, the call answered silent, every send failing at
/// debug level.
#[test]
fn media_in_the_other_ip_family_than_the_relays_is_refused_or_said() {
    let v6 = SDP.replace("IN IP4 192.0.2.10", "IN IP6 2001:db8::5");
    // Latched to its SDP's address, the phone would never be heard: refused.
    let mut h = H::with(config_with(|n, p| match n {
        "carrier-a" => p.anchor = true,
        "pbx" => p.latch = crate::media::Latch::SdpIp,
        _ => {}
    }));
    let free = h.core.free_media_ports();
    h.recv(PHONE, &invite_with_sdp("fam1", &v6));
    let refused = h.response_with(PHONE, 488, "refused");
    let warning = refused.header(&Hdr::named("Warning")).unwrap_or_default();
    assert!(warning.starts_with("301 "), "{warning}");
    assert!(h.take(CARRIER_A).is_empty(), "never forwarded");
    assert_eq!(h.core.free_media_ports(), free);
    assert!(
        h.cdrs[0]
            .events
            .iter()
            .any(|e| e == "media_other_family_caller")
    );
    // Latched to any source (a dual-stack phone may send from IPv4): it goes on, said.
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("fam0", &v6));
    h.one_request(CARRIER_A, Method::Invite);
    // The callee answers in IPv6: the call goes on, and its CDR says why it may be silent.
    h.recv(PHONE, &invite_text("fam2", "z9hG4bKfam2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", &v6);
    let tag = ok.to_tag().unwrap();
    phone_acks(&mut h, "fam2", &tag, 1, "z9hG4bKfam2a");
    h.recv(
        PHONE,
        &from_phone_in("fam2", "BYE", &tag, 2, "z9hG4bKfam2b", ""),
    );
    let cdr = h.cdrs.iter().find(|c| c.call_id == "fam2").unwrap();
    assert!(
        cdr.events.iter().any(|e| e == "media_other_family_callee"),
        "{:?}",
        cdr.events
    );
}

#[test]
fn reinvite_moving_media_updates_the_relay_without_new_ports() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("mv1", "z9hG4bKmv1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("mv1", "ACK", &tag, 1, "z9hG4bKmv1a", ""),
    );
    let before = h.relay_pairs();
    let free = h.core.free_media_ports();
    // Hold, from a new port.
    let moved = SDP
        .replace("4000", "4010")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(
        PHONE,
        &from_phone_in("mv1", "INVITE", &tag, 2, "z9hG4bKmv2", &moved),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    let body = String::from_utf8_lossy(re.body()).into_owned();
    assert!(
        body.contains(&format!("m=audio {} RTP/AVP 0", before[0].b_port)),
        "{body}"
    );
    assert!(body.contains("a=sendonly"));
    // The relay moves with the answer (RFC 3264 §8.3.1), not with the offer.
    assert_eq!(h.relay_pairs()[0].a_remote, before[0].a_remote);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(SDP)));
    let after = h.relay_pairs();
    assert_eq!(
        (after[0].a_port, after[0].b_port),
        (before[0].a_port, before[0].b_port)
    );
    assert_eq!(after[0].a_remote, Some("192.0.2.10:4010".parse().unwrap()));
    assert_eq!(
        h.core.free_media_ports(),
        free,
        "no new ports for a moved stream"
    );
}

/// A 2xx to a relayed re-INVITE whose answer cannot be read: the re-INVITE's sender keeps
/// its session (502), and the far peer, its 2xx ACKed, is offered the session it had.
/// Before, the sender got a 200 with every stream refused while the far peer kept its
/// answer: the legs disagreed for the rest of the call.
#[test]
fn an_unreadable_answer_to_a_relayed_reinvite_leaves_both_legs_as_they_were() {
    let mut h = anchored();
    let tag = anchored_call_with(&mut h, "ur1", SDP, SDP);
    let before = h.relay_pairs();
    let held = SDP
        .replace("4000", "4010")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    let re = phone_reinvites(&mut h, "ur1", &tag, 2, &held);
    h.recv_msg(
        CARRIER_A,
        reply(&re, 200, "c", &[], Some("v=1\r\nnot sdp\r\n")),
    );
    let answered = h.statuses(PHONE);
    assert_eq!(
        answered.last(),
        Some(&502),
        "the phone keeps its session: {answered:?}"
    );
    assert!(!answered.contains(&200));
    // Its 2xx ACKed, then the session it had offered again.
    let sent: Vec<Request> = (h.take(CARRIER_A).into_iter())
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            _ => None,
        })
        .collect();
    let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
    assert_eq!(methods, [Method::Ack, Method::Invite]);
    let again = sent[1].clone();
    let body = String::from_utf8_lossy(again.body()).into_owned();
    assert!(
        body.contains(&format!("m=audio {} RTP/AVP 0", before[0].b_port))
            && !body.contains("sendonly"),
        "the carrier is offered the session it had: {body}"
    );
    assert_eq!(
        h.relay_pairs()[0].a_remote,
        before[0].a_remote,
        "the relay as it was"
    );
    // Its answer settles it.
    h.recv_msg(CARRIER_A, reply(&again, 200, "c", &[], Some(SDP)));
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    assert!(
        h.take_responses(PHONE).is_empty(),
        "nothing more to the phone"
    );
    assert_eq!(h.core.active_calls(), 1);
}

/// An INVITE carrying `body` as its SDP.
fn invite_with_sdp(call_id: &str, body: &str) -> String {
    invite_text(call_id, &format!("z9hG4bK{call_id}"), "+8610123", "")
        .replace(SDP, body)
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {}", body.len()),
        )
}

#[test]
fn an_offer_that_cannot_be_anchored_is_refused_with_488_and_never_forwarded() {
    let mut h = anchored();
    let free = h.core.free_media_ports();
    // Not SDP at all, though it says it is.
    h.recv(PHONE, &invite_with_sdp("bad1", "hello, carrier\r\n"));
    assert!(h.take(CARRIER_A).is_empty(), "nothing reaches the carrier");
    let refused = h.response_with(PHONE, 488, "refused");
    // It says why (RFC 3261 §21.4.26), in our words.
    assert_eq!(
        refused.header(&Hdr::named("Warning")).as_deref(),
        Some("399 127.0.0.1 \"SDP: not a <type>=<value> line\"")
    );
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerRejected);
    assert_eq!(h.core.free_media_ports(), free, "no port taken");
}

#[test]
fn sdp_without_a_content_type_is_refused_not_forwarded_unanchored() {
    let mut h = anchored();
    let untyped = invite_text("untyped1", "z9hG4bKut1", "+8610123", "")
        .replace("Content-Type: application/sdp\r\n", "");
    assert!(!untyped.contains("Content-Type"));
    h.recv(PHONE, &untyped);
    assert!(
        h.take(CARRIER_A).is_empty(),
        "the phone's address stays private"
    );
    assert_eq!(h.statuses(PHONE), vec![488]);
}

#[test]
fn offers_that_keep_adding_streams_cannot_take_the_port_pool() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    });
    cfg.media_ports = (30000, 30399);
    let mut h = H::with(cfg);
    h.recv(PHONE, &invite_text("grow1", "z9hG4bKgr1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("grow1", "ACK", &tag, 1, "z9hG4bKgr1a", ""),
    );
    let free = h.core.free_media_ports();
    // Each re-INVITE refuses the streams it had and offers four new ones.
    let mut refused = 1;
    let mut answers = Vec::new();
    for cseq in 2..12 {
        let mut body = SDP.replace("m=audio 4000", "m=audio 0");
        for _ in 1..refused {
            body.push_str("m=audio 0 RTP/AVP 0\r\n");
        }
        for p in 0..4 {
            body.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 5000 + 2 * p));
        }
        refused += 4;
        let branch = format!("z9hG4bKgr{cseq}");
        h.recv(
            PHONE,
            &from_phone_in("grow1", "INVITE", &tag, cseq, &branch, &body),
        );
        let finals: Vec<u16> = h.statuses(PHONE).into_iter().filter(|s| *s > 100).collect();
        if finals.contains(&488) {
            answers.push(488);
            continue;
        }
        let re = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
        h.take_responses(PHONE);
        h.recv(
            PHONE,
            &from_phone_in("grow1", "ACK", &tag, cseq, &branch, ""),
        );
        answers.push(0);
    }
    // Every offer goes through, and the new streams take the refused ones' ports: the
    // first offer's one stream and three more, never more.
    assert!(answers.iter().all(|a| *a == 0), "{answers:?}");
    assert_eq!(
        h.core.free_media_ports(),
        free - 2 * 3,
        "four streams at most, two ports each"
    );
}

#[test]
fn fifty_rejected_streams_take_no_ports_and_too_many_active_ones_get_488() {
    let mut h = anchored();
    let free = h.core.free_media_ports();
    // One live stream and fifty refused (port 0) ones: one pair of ports, not fifty-one.
    let mut body = SDP.to_string();
    for _ in 0..50 {
        body.push_str("m=audio 0 RTP/AVP 0\r\n");
    }
    h.recv(PHONE, &invite_with_sdp("many0", &body));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(h.core.free_media_ports(), free - 2, "one stream, two ports");
    let offer = String::from_utf8_lossy(inv.body()).into_owned();
    assert_eq!(
        offer.matches("m=audio 0 ").count(),
        50,
        "refused streams stay refused"
    );
    // Five live streams against max_streams = 4: refused, and the next call still gets ports.
    let mut five = SDP.to_string();
    for p in 1..5 {
        five.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * p));
    }
    h.recv(PHONE, &invite_with_sdp("many5", &five));
    assert_eq!(h.statuses(PHONE).last(), Some(&488));
    assert_eq!(h.core.free_media_ports(), free - 2);
}

/// A peer's own `[media] max_streams` holds its offers to fewer streams than the gateway's
/// (its share of the port pool), and only its offers: the phone (max 1) offering two
/// streams gets 488 and takes no ports, while the carrier's re-INVITE offering two goes to
/// the phone, and the phone's answer taking both is relayed.
#[test]
fn a_peers_own_max_streams_holds_its_offers_and_only_its_offers() {
    let mut h = H::with(config_with(|n, p| match n {
        "carrier-a" => p.anchor = true,
        "pbx" => p.max_streams = Some(1),
        _ => {}
    }));
    let free = h.core.free_media_ports();
    let two = format!("{SDP}m=audio 4002 RTP/AVP 0\r\n");
    h.recv(PHONE, &invite_with_sdp("own2", &two));
    assert_eq!(h.statuses(PHONE).last(), Some(&488));
    assert!(h.take(CARRIER_A).is_empty(), "never forwarded");
    assert_eq!(h.core.free_media_ports(), free, "no ports taken");

    h.recv(PHONE, &invite_with_sdp("own1", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("own1", "ACK", &tag, 1, "z9hG4bKown1a", ""),
    );
    assert_eq!(h.core.free_media_ports(), free - 2);
    let offer = format!("{SDP}m=audio 4002 RTP/AVP 0\r\n").replace("192.0.2.10", "198.51.100.7");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "c1", 2, "z9hG4bKown2", &offer),
    );
    let re = h.one_request(PHONE, Method::Invite);
    assert_eq!(
        String::from_utf8_lossy(re.body())
            .matches("m=audio ")
            .count(),
        2
    );
    h.recv_msg(PHONE, reply(&re, 200, "", &[], Some(&two)));
    let ok2 = h.take_responses(CARRIER_A);
    assert_eq!(ok2.last().map(|r| r.status()), Some(200), "{ok2:?}");
    let body = String::from_utf8_lossy(ok2.last().unwrap().body()).into_owned();
    assert!(!body.contains("m=audio 0 "), "both streams taken:\n{body}");
    assert_eq!(
        h.core.free_media_ports(),
        free - 4,
        "two streams, two ports each"
    );
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "ACK", "c1", 2, "z9hG4bKown2a", ""),
    );
    // The phone's own re-INVITE with two streams: 488, and the call goes on as it was.
    h.recv(
        PHONE,
        &from_phone_in("own1", "INVITE", &tag, 2, "z9hG4bKown3", &two),
    );
    let refused = h.response_with(PHONE, 488, "refused");
    assert_eq!(
        refused.header(&Hdr::named("Warning")).as_deref(),
        Some("304 127.0.0.1 \"SDP: too many media streams\"")
    );
    assert!(h.take(CARRIER_A).is_empty(), "never forwarded");
    assert_eq!(h.core.free_media_ports(), free - 4);
    assert_eq!(h.cdrs.len(), 1, "only the refused call's: this one goes on");
}

/// A peer allowed more streams than the gateway's `[media] max_streams` (4) has its offers'
/// answers read whole: an answer relays no stream its offer did not. Before, the answer was
/// held to the gateway's 4, so a six-stream call the offer let through ended at answer
/// (ACK and BYE to the callee, 502 to the caller).
#[test]
fn an_answer_is_held_to_no_fewer_streams_than_its_offer_was() {
    let mut cfg = config_with(|n, p| match n {
        "carrier-a" => p.anchor = true,
        "pbx" => p.max_streams = Some(6),
        _ => {}
    });
    cfg.media_ports = (30000, 30099);
    let mut h = H::with(cfg);
    let six = format!("{SDP}{}", "m=audio 4002 RTP/AVP 0\r\n".repeat(5));
    h.recv(PHONE, &invite_with_sdp("six", &six));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c1", &six.replace("192.0.2.10", "198.51.100.7"));
    assert_eq!(ok.status(), 200);
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    assert_eq!(body.matches("m=audio ").count(), 6, "{body}");
    assert!(
        !body.contains("m=audio 0 "),
        "every stream relayed:\n{body}"
    );
    let to_callee = h.take(CARRIER_A);
    assert!(
        to_callee
            .iter()
            .all(|m| !matches!(m, Message::Request(r) if r.method() == Method::Bye)),
        "the callee kept: {to_callee:?}"
    );
}

/// An answer takes only what its offer relayed (RFC 3264 §6): a stream the offer refused
/// stays refused (no ports, port 0 toward the caller) whatever port the answer names, and
/// m= lines beyond the offer's are not forwarded. Before, each took a pair of ports, the
/// relay sent toward the answer's address, and the caller got streams it never offered.
#[test]
fn an_answer_takes_no_stream_its_offer_did_not_relay() {
    let mut h = anchored();
    let free = h.core.free_media_ports();
    let offer = format!("{SDP}m=video 0 RTP/AVP 96\r\n");
    h.recv(PHONE, &invite_with_sdp("ans1", &offer));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(h.core.free_media_ports(), free - 2);
    let answer = SDP.replace("192.0.2.10", "198.51.100.7")
        + "m=video 5006 RTP/AVP 96\r\nc=IN IP4 198.51.100.8\r\n"
        + "m=audio 5008 RTP/AVP 0\r\na=sendrecv\r\n";
    let ok = h.carrier_answers(&inv, "m1", &answer);
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    assert_eq!(
        body.matches("m=").count(),
        2,
        "as many m= lines as offered:\n{body}"
    );
    assert!(body.contains("m=video 0 RTP/AVP 96\r\n"), "{body}");
    assert!(
        !body.contains("5008") && !body.contains("a=sendrecv"),
        "{body}"
    );
    assert!(!body.contains("198.51.100"), "{body}");
    assert_eq!(
        h.core.free_media_ports(),
        free - 2,
        "the refused stream took no ports"
    );
    let pairs = h.relay_pairs();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    assert_eq!(
        pairs[0].b_remote,
        Some("198.51.100.7:4000".parse().unwrap())
    );
}

/// An answer's m= lines past its offer's are not counted against `[media] max_streams`
/// (4 here): an answer to one stream that adds four more is taken, its extra lines left
/// out. Before, it was refused whole as too many streams, and the call failed.
#[test]
fn an_answers_extra_streams_do_not_count_against_max_streams() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("mx1", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let mut answer = SDP.replace("192.0.2.10", "198.51.100.7");
    for port in [5006, 5008, 5010, 5012] {
        answer.push_str(&format!("m=audio {port} RTP/AVP 0\r\n"));
    }
    let ok = h.carrier_answers(&inv, "mx", &answer);
    assert_eq!(ok.status(), 200);
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    assert_eq!(body.matches("m=").count(), 1, "{body}");
    assert!(!body.contains("198.51.100"), "{body}");
    assert!(h.cdrs.is_empty(), "{:?}", h.cdrs);
}

/// An answer is judged against the other leg's offer, whatever the answering leg offered
/// since: the carrier answers the phone's INVITE in a 183, offers in an early UPDATE (the
/// phone answers it), then its 2xx repeats its answer with a stream the INVITE never
/// offered. Before, the answer was judged against the carrier's own UPDATE offer, that is
/// against nothing, and the extra stream got ports and reached the phone.
#[test]
fn an_answer_is_judged_against_the_other_legs_offer() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("ow1", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        early_taking_update(&inv, "ea", "<sip:a@127.0.0.3>"),
    );
    h.take_responses(PHONE);
    let free = h.core.free_media_ports();
    let offer = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "ea", 1, "z9hG4bKow1u", &offer),
    );
    let update = h.one_request(PHONE, Method::Update);
    h.recv_msg(PHONE, reply(&update, 200, "ph", &[], Some(SDP)));
    h.take(CARRIER_A);
    let answer = SDP.replace("o=- 1 1", "o=- 1 3") + "m=video 5006 RTP/AVP 96\r\n";
    let ok = h.carrier_answers(&inv, "ea", &answer);
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    assert_eq!(body.matches("m=").count(), 1, "{body}");
    assert_eq!(h.core.free_media_ports(), free);
}

/// What the relay is told of a stream changes only with a completed offer/answer that
/// changes it: an offer to hold that the carrier refuses, and a refresh whose SDP differs
/// only in its version, leave the relay's streams exactly as they were (else a silent leg
/// would be opened to the next sprayer, and a dead call's media clock started over).
#[test]
fn a_refused_hold_and_a_refresh_leave_the_relays_streams_as_they_were() {
    let mut h = anchored();
    let (_inv, tag) = anchored_call_inv(&mut h, "rf1");
    let before = h.relay_pairs();
    assert!(before[0].flowing, "{before:?}");
    let told = h.media.len();
    let every_update_as_before = |h: &H| {
        h.media[told..].iter().all(|m| match m {
            MediaAction::Relay { pairs, .. } => *pairs == before,
            _ => true,
        })
    };
    let hold = SDP
        .replace("o=- 1 1", "o=- 1 2")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=inactive\r\n");
    let re = phone_reinvites(&mut h, "rf1", &tag, 2, &hold);
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
    phone_acks(&mut h, "rf1", &tag, 2, "z9hG4bKrf12");
    assert!(every_update_as_before(&h), "{:?}", &h.media[told..]);
    let refresh = SDP.replace("o=- 1 1", "o=- 1 3");
    let re = phone_reinvites(&mut h, "rf1", &tag, 3, &refresh);
    let answer = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&answer)));
    assert!(every_update_as_before(&h), "{:?}", &h.media[told..]);
}

/// An offer that moves a leg's media moves the relay only once answered: until then the
/// leg's old endpoint still sends (RFC 3264 §8.3.1), and a refused one never moved it.
/// Before, the offer emptied the leg's latch at once (open to any sender for 10 s) and the
/// refusal emptied it again: a sprayer took a leg that was latched.
#[test]
fn an_offer_moving_a_leg_moves_the_relay_only_once_answered() {
    let mut h = anchored();
    let (_inv, tag) = anchored_call_inv(&mut h, "mo1");
    let before = h.relay_pairs();
    let told = h.media.len();
    let every_update_as_before = |h: &H| {
        h.media[told..].iter().all(|m| match m {
            MediaAction::Relay { pairs, .. } => *pairs == before,
            _ => true,
        })
    };
    let moved = SDP.replace("o=- 1 1", "o=- 1 2").replace("4000", "4010");
    let re = phone_reinvites(&mut h, "mo1", &tag, 2, &moved);
    assert!(every_update_as_before(&h), "{:?}", &h.media[told..]);
    // An answer in a 183, then a refusal: the 183 moved the relay there, the 488 back.
    let early = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv_msg(CARRIER_A, reply(&re, 183, "c", &[], Some(&early)));
    assert!(every_update_as_before(&h), "{:?}", &h.media[told..]);
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
    phone_acks(&mut h, "mo1", &tag, 2, "z9hG4bKmo12");
    assert!(every_update_as_before(&h), "{:?}", &h.media[told..]);
    // Offered again and answered: the relay moves then.
    let moved = SDP.replace("o=- 1 1", "o=- 1 3").replace("4000", "4010");
    let re = phone_reinvites(&mut h, "mo1", &tag, 3, &moved);
    assert!(every_update_as_before(&h), "{:?}", &h.media[told..]);
    let answer = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&answer)));
    let after = h.relay_pairs();
    assert_eq!(after[0].a_remote, Some("192.0.2.10:4010".parse().unwrap()));
}

/// The carrier's UPDATE offer comes after its 2xx went to the phone and before the phone's
/// ACK: the relay keeps the carrier's latched address until the phone answers it, as it
/// does once the call is confirmed (before, an offer then emptied the latch at once).
#[test]
fn an_update_before_the_callers_ack_moves_the_relay_only_once_answered() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("mo2", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    let before = h.relay_pairs();
    let moved = SDP.replace("o=- 1 1", "o=- 1 2").replace("4000", "4010");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "c", 2, "z9hG4bKmo2u", &moved),
    );
    let update = h.one_request(PHONE, Method::Update);
    assert_eq!(h.relay_pairs()[0].b_remote, before[0].b_remote);
    h.recv_msg(PHONE, reply(&update, 200, &tag, &[], Some(SDP)));
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4010".parse().unwrap())
    );
    phone_acks(&mut h, "mo2", &tag, 1, "z9hG4bKmo2a");
}

/// The carrier resumes a held call by re-INVITE; while the phone has not answered yet, an
/// INFO of the phone's fails at the carrier. The phone's answer then still settles the
/// carrier's offer: the relay hears the media flows again. Before, the INFO's failure
/// dropped the pending offer, and the resume was never told.
#[test]
fn a_failed_info_does_not_drop_an_offer_pending_meanwhile() {
    let mut h = anchored();
    let (inv, tag) = anchored_call_inv(&mut h, "pi1");
    let hold = SDP
        .replace("o=- 1 1", "o=- 1 2")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    let re = phone_reinvites(&mut h, "pi1", &tag, 2, &hold);
    let held = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n");
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&held)));
    phone_acks(&mut h, "pi1", &tag, 2, "z9hG4bKpi1a");
    assert!(!h.relay_pairs()[0].flowing);
    let resume = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "c", 1, "z9hG4bKpi1r", &resume),
    );
    let to_phone = h.one_request(PHONE, Method::Invite);
    h.recv(
        PHONE,
        &from_phone_in("pi1", "INFO", &tag, 3, "z9hG4bKpi1i", ""),
    );
    let info = h.one_request(CARRIER_A, Method::Info);
    h.recv_msg(CARRIER_A, reply(&info, 415, "c", &[], None));
    h.recv_msg(PHONE, reply(&to_phone, 200, &tag, &[], Some(SDP)));
    assert!(h.relay_pairs()[0].flowing);
}

/// The flowing flags the relay is told, in order, since `from`.
fn flowing_since(h: &H, from: usize) -> Vec<bool> {
    (h.media[from..].iter())
        .filter_map(|m| match m {
            MediaAction::Relay { pairs, .. } => pairs.first().map(|p| p.flowing),
            _ => None,
        })
        .collect()
}

/// A hold answered in a 183 and then refused does not turn the stream's flowing back on
/// (which the relay reads as a resume, opening silent legs to sprayers), and media is not
/// said to flow before the answer (a failover or forks' provisionals would turn it on and
/// off while the caller waits).
#[test]
fn the_relay_hears_of_flowing_media_only_once_answered_and_never_from_a_refusal() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("fl1", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c", &[], Some(SDP)));
    assert_eq!(flowing_since(&h, 0), [false, false], "ringing");
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    phone_acks(&mut h, "fl1", &tag, 1, "z9hG4bKfl1a");
    assert!(h.relay_pairs()[0].flowing);
    let told = h.media.len();
    let hold = SDP
        .replace("o=- 1 1", "o=- 1 2")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=inactive\r\n");
    let re = phone_reinvites(&mut h, "fl1", &tag, 2, &hold);
    h.recv_msg(CARRIER_A, reply(&re, 183, "c", &[], Some(&hold)));
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
    phone_acks(&mut h, "fl1", &tag, 2, "z9hG4bKfl12");
    let seen = flowing_since(&h, told);
    assert!(
        !seen.windows(2).any(|w| !w[0] && w[1]),
        "no false→true edge: {seen:?}"
    );
}

/// A resume answered in a 183 and then refused leaves the call held, and the relay is told
/// so: the real resume after it is then the edge that reopens the legs (before, the 183's
/// flowing stayed, and the real resume reopened nothing).
#[test]
fn a_resume_answered_in_a_183_and_refused_leaves_the_stream_held() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("fl2", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    phone_acks(&mut h, "fl2", &tag, 1, "z9hG4bKfl2a");
    let hold = SDP
        .replace("o=- 1 1", "o=- 1 2")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=inactive\r\n");
    let re = phone_reinvites(&mut h, "fl2", &tag, 2, &hold);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&hold)));
    phone_acks(&mut h, "fl2", &tag, 2, "z9hG4bKfl22a");
    assert!(!h.relay_pairs()[0].flowing, "held");
    let resume = SDP.replace("o=- 1 1", "o=- 1 3");
    let re = phone_reinvites(&mut h, "fl2", &tag, 3, &resume);
    h.recv_msg(CARRIER_A, reply(&re, 183, "c", &[], Some(&resume)));
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
    phone_acks(&mut h, "fl2", &tag, 3, "z9hG4bKfl23a");
    assert!(!h.relay_pairs()[0].flowing, "still held after the refusal");
    let told = h.media.len();
    let resume = SDP.replace("o=- 1 1", "o=- 1 4");
    let re = phone_reinvites(&mut h, "fl2", &tag, 4, &resume);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&resume)));
    phone_acks(&mut h, "fl2", &tag, 4, "z9hG4bKfl24a");
    let seen = flowing_since(&h, told);
    assert_eq!(seen.last(), Some(&true), "resumed: {seen:?}");
}

/// Where the relay sends the caller's leg before its packets come: its SDP address, unless
/// the leg waits for its source.
fn caller_dest(p: &crate::media::RelayPair) -> Option<std::net::SocketAddr> {
    p.a_remote.filter(|_| !p.a_wait_for_source)
}

#[test]
fn addresses_that_are_no_destination_are_not_relayed_to() {
    for (c, why) in [
        ("0.0.0.0", "old-style hold"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("127.0.0.1", "the gateway's own media address"),
    ] {
        let mut h = anchored();
        let sdp = SDP.replace("c=IN IP4 192.0.2.10", &format!("c=IN IP4 {c}"));
        h.recv(PHONE, &invite_with_sdp("dest1", &sdp));
        h.one_request(CARRIER_A, Method::Invite);
        let pairs = h.relay_pairs();
        assert_eq!(pairs.len(), 1, "{why}");
        assert_eq!(
            caller_dest(&pairs[0]),
            None,
            "{why}: no destination until it sends"
        );
    }
}

/// A trunk (`latch = "sdp-ip"`) whose SDP names one of this host's own addresses (an SBC
/// beside the gateway) is sent nothing first, but its SDP address is kept: the relay takes
/// its packets from there and answers them. Before, the address was dropped, and with it
/// every packet of the leg: a silent call.
#[test]
fn a_trunk_on_an_address_of_this_host_is_heard_from_it() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.latch = crate::media::Latch::SdpIp;
        }
    });
    cfg.host_ips = ["192.0.2.99".parse().unwrap()].into();
    let mut h = H::with(cfg);
    h.recv(PHONE, &invite_with_sdp("dest4", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let beside = SDP.replace("c=IN IP4 192.0.2.10", "c=IN IP4 192.0.2.99");
    h.carrier_answers(&inv, "c", &beside);
    let p = h.relay_pairs().pop().unwrap();
    assert_eq!(p.b_latch, crate::media::Latch::SdpIp);
    assert_eq!(p.b_remote, Some("192.0.2.99:4000".parse().unwrap()));
    assert!(p.b_wait_for_source, "nothing sent there before it sends");
}

#[test]
fn loopback_is_a_destination_only_for_a_gateway_on_loopback() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    });
    cfg.media_ip = "192.0.2.1".parse().unwrap();
    let mut h = H::with(cfg);
    let sdp = SDP.replace("c=IN IP4 192.0.2.10", "c=IN IP4 127.0.0.5");
    h.recv(PHONE, &invite_with_sdp("dest2", &sdp));
    h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(caller_dest(&h.relay_pairs()[0]), None);
    // The same SDP toward a gateway on loopback (the tests' own setup) is a destination.
    let mut lab = anchored();
    lab.recv(PHONE, &invite_with_sdp("dest3", &sdp));
    lab.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        caller_dest(&lab.relay_pairs()[0]),
        Some("127.0.0.5:4000".parse().unwrap())
    );
}

/// The media timeout the shell was last told for the call.
fn last_timeout(h: &H) -> Option<Option<Duration>> {
    h.media.iter().rev().find_map(|m| match m {
        MediaAction::Relay { rtp_timeout, .. } => Some(*rtp_timeout),
        _ => None,
    })
}

/// The test gateway with carrier-a's calls anchored, a media timeout of 30 s and a hold
/// timeout of an hour.
fn with_hold_timeout() -> H {
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.rtp_timeout = Some(Duration::from_secs(30));
            p.rtp_hold_timeout = Some(Duration::from_secs(3600));
        }
    }))
}

#[test]
fn a_call_on_hold_gets_the_hold_timeout_and_the_short_one_again_on_resume() {
    let mut h = with_hold_timeout();
    let (_inv, ok) = answered_call(&mut h);
    assert_eq!(last_timeout(&h), Some(Some(Duration::from_secs(30))));
    let tag = ok.to_tag().unwrap();
    // Hold (a=sendonly offered, a=recvonly answered): an hour of silence is allowed.
    let hold = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKh2", &hold));
    assert_eq!(last_timeout(&h), Some(Some(Duration::from_secs(3600))));
    let re = h.one_request(CARRIER_A, Method::Invite);
    let held_answer = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n");
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&held_answer)));
    assert_eq!(last_timeout(&h), Some(Some(Duration::from_secs(3600))));
    // The relay is told the media no longer flows both ways.
    let pairs = h.relay_pairs();
    assert!(!pairs[0].flowing, "{pairs:?}");
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKh2a", ""));
    // Resume: back to the short timeout.
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKh3", SDP));
    assert_eq!(last_timeout(&h), Some(Some(Duration::from_secs(30))));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(SDP)));
    let pairs = h.relay_pairs();
    assert!(pairs[0].flowing, "{pairs:?}");
    assert!(h.cdrs.is_empty(), "the call is still up");
}

/// An old-style hold (`c=0.0.0.0`, no direction attribute) answered `sendrecv` with the
/// carrier's real address (RFC 3264 §8.4 lets it): nothing flows either way (the carrier was
/// told to send nowhere), so the call keeps the hold timeout. Before, the answer's own SDP,
/// holding nothing, set the short one back, and the held call was released as
/// `rtp_timeout` 30 s later.
#[test]
fn an_old_style_hold_answered_sendrecv_keeps_the_hold_timeout() {
    let mut h = with_hold_timeout();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let hold = SDP
        .replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0")
        .replace("o=- 1 1 ", "o=- 1 2 ");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKoh2", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(SDP)));
    assert_eq!(last_timeout(&h), Some(Some(Duration::from_secs(3600))));
    // Resumed (its address again): the short one.
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKoh2a", ""));
    let resume = SDP.replace("o=- 1 1 ", "o=- 1 3 ");
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKoh3", &resume));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(SDP)));
    assert_eq!(last_timeout(&h), Some(Some(Duration::from_secs(30))));
}

/// An offer that relays no stream (every m= line at port 0) holds none: the media timeout
/// stays the plain one, not the hold one an empty "all streams held" gave.
#[test]
fn an_offer_relaying_no_stream_keeps_the_plain_media_timeout() {
    let mut h = with_hold_timeout();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let none = SDP.replace("m=audio 4000 ", "m=audio 0 ");
    assert_ne!(none, SDP);
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKnone", &none));
    assert_eq!(last_timeout(&h), Some(Some(Duration::from_secs(30))));
}

#[test]
fn only_answered_calls_keep_their_recording() {
    let recorded = || {
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
                p.record = true;
            }
        }))
    };
    let release = |h: &H| {
        h.media.iter().find_map(|m| match m {
            MediaAction::Release { keep_recording, .. } => Some(*keep_recording),
            _ => None,
        })
    };
    // Refused by the callee: no recording in the CDR, and its file is discarded.
    let mut h = recorded();
    h.recv(PHONE, &invite_text("rec-1", "z9hG4bKrec1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 486, "c1", &[], None));
    h.advance(Duration::from_secs(40));
    assert_eq!(h.cdrs[0].recording, None);
    assert_eq!(release(&h), Some(false));
    // Answered: kept.
    let mut h = recorded();
    let (_inv, ok) = answered_call(&mut h);
    h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKbye1"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    h.advance(Duration::from_secs(40));
    assert!(h.cdrs[0].recording.is_some());
    assert_eq!(release(&h), Some(true));
}

/// A route of carrier-a (not recorded) then carrier-b (recorded): a call carrier-a answers
/// is not recorded (what was recorded while it rang is removed, the CDR names no file); one
/// that fails over to carrier-b, which answers, is. Before, any peer of the route recording
/// made every call on it recorded, whoever answered (`record` is a consent setting).
#[test]
fn a_call_is_recorded_only_when_the_caller_or_the_callee_that_answered_records() {
    let config = || {
        H::with(config_with(|n, p| match n {
            "carrier-a" => p.anchor = true,
            "carrier-b" => {
                p.anchor = true;
                p.record = true;
            }
            _ => {}
        }))
    };
    let told = |h: &H| {
        h.media.iter().find_map(|m| match m {
            MediaAction::Answered { record, .. } => Some(*record),
            _ => None,
        })
    };
    let hang_up = |h: &mut H, carrier: &str, ok: &Response| {
        let tag = ok.to_tag().unwrap();
        phone_acks(h, "rr", &tag, 1, "z9hG4bKrra");
        h.recv(
            PHONE,
            &from_phone_in("rr", "BYE", &tag, 2, "z9hG4bKrrb", ""),
        );
        let bye = h.one_request(carrier, Method::Bye);
        h.recv_msg(carrier, reply(&bye, 200, "c1", &[], None));
        h.advance(Duration::from_secs(40));
    };
    // carrier-a answers.
    let mut h = config();
    h.recv(PHONE, &invite_with_sdp("rr", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let planned = h
        .media
        .iter()
        .any(|m| matches!(m, MediaAction::Relay { record, .. } if record.is_some()));
    assert!(planned, "recorded while it rings: carrier-b may answer");
    let ok = h.carrier_answers(&inv, "c1", SDP);
    hang_up(&mut h, CARRIER_A, &ok);
    assert_eq!(told(&h), Some(false), "the relay drops its recording");
    assert_eq!(h.cdrs[0].recording, None);
    // carrier-a fails, carrier-b answers.
    let mut h = config();
    h.recv(PHONE, &invite_with_sdp("rr", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 503, "c1", &[], None));
    let inv = h.one_request(CARRIER_B, Method::Invite);
    let ok = h.carrier_answers_on(CARRIER_B, &inv, "c1", SDP);
    hang_up(&mut h, CARRIER_B, &ok);
    assert_eq!(told(&h), Some(true));
    assert!(h.cdrs[0].recording.is_some());
}

/// A recorded call none of whose streams the relay can carry (an MSRP session over TCP gets
/// no ports) never opened its recording: its CDR names no file and says
/// `recording_not_started`. Before, it named the file it was to have.
#[test]
fn a_recorded_call_without_a_relayed_stream_names_no_file() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.record = true;
        }
    }));
    let msrp = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
                m=message 7394 TCP/MSRP *\r\na=path:msrp://127.0.0.2:7394/s1;tcp\r\n";
    h.recv(PHONE, &invite_with_sdp("nr", msrp));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c1", &msrp.replace("127.0.0.2", "127.0.0.3"));
    let tag = ok.to_tag().unwrap();
    phone_acks(&mut h, "nr", &tag, 1, "z9hG4bKnra");
    h.recv(
        PHONE,
        &from_phone_in("nr", "BYE", &tag, 2, "z9hG4bKnrb", ""),
    );
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "c1", &[], None));
    assert!(
        !(h.media.iter()).any(|m| matches!(m, MediaAction::Relay { .. })),
        "no stream, no relay: {:?}",
        h.media
    );
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].recording, None);
    assert!(
        h.cdrs[0]
            .events
            .iter()
            .any(|e| e == "recording_not_started"),
        "{:?}",
        h.cdrs[0].events
    );
}

/// The writer thread's news reaches the CDR: a recording that never got a file names none,
/// one made under another name names that one, one the disk stopped says so; and a call
/// whose recording could not start asks the relay for none at its next offer/answer.
#[test]
fn the_cdr_names_the_recording_the_writer_made() {
    use crate::media::RecordingNews;
    let recorded = || {
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
                p.record = true;
            }
        }))
    };
    let relays = |h: &H| -> Vec<(u64, Option<String>)> {
        h.media
            .iter()
            .filter_map(|m| match m {
                MediaAction::Relay { call, record, .. } => {
                    Some((*call, record.as_ref().map(|r| r.path.display().to_string())))
                }
                _ => None,
            })
            .collect()
    };
    let cdr_after = |news: Option<RecordingNews>| {
        let mut h = recorded();
        let (_inv, ok) = answered_call(&mut h);
        let (call, planned) = relays(&h).remove(0);
        let planned = planned.expect("a recorded call asks for its recording");
        if let Some(news) = news {
            h.input(Input::Recording { call, news });
        }
        let tag = ok.to_tag().unwrap();
        h.media.clear();
        // A re-INVITE (hold) after the news: asks for a recording only if one runs.
        let hold = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
        h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKrn2", &hold));
        let re = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
        h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKrn2a", ""));
        let asked = relays(&h).iter().any(|(_, r)| r.is_some());
        h.recv(PHONE, &phone_bye(&tag, 3, "z9hG4bKrn3"));
        let bye = h.one_request(CARRIER_A, Method::Bye);
        h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
        h.advance(Duration::from_secs(40));
        assert_eq!(h.cdrs.len(), 1);
        (h.cdrs[0].clone(), planned, asked)
    };
    let (cdr, planned, asked) = cdr_after(None);
    assert_eq!(cdr.recording, Some(planned));
    assert!(asked);
    let (cdr, _, asked) = cdr_after(Some(RecordingNews::NotStarted));
    assert_eq!(cdr.recording, None);
    assert!(cdr.events.contains(&"recording_not_started".to_string()));
    assert!(
        !asked,
        "no recording asked of the relay once none could start"
    );
    let other = std::path::PathBuf::from("/tmp/trunkgate-test-recordings/other.wav");
    let (cdr, _, asked) = cdr_after(Some(RecordingNews::Renamed(other.clone())));
    assert_eq!(
        cdr.recording.as_deref(),
        Some("/tmp/trunkgate-test-recordings/other.wav")
    );
    assert!(cdr.events.is_empty(), "{:?}", cdr.events);
    assert!(asked);
    let (cdr, planned, _) = cdr_after(Some(RecordingNews::Stopped));
    assert_eq!(cdr.recording, Some(planned));
    assert_eq!(cdr.events, vec!["recording_stopped".to_string()]);
    // Its file removed mid-call: no file named, and said.
    let (cdr, _, _) = cdr_after(Some(RecordingNews::Removed));
    assert_eq!(cdr.recording, None);
    assert_eq!(cdr.events, vec!["recording_removed".to_string()]);
}

/// The `o=` line of a message's SDP.
fn origin_of(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_caller_sees_one_session_across_a_failover_after_early_media() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("fo1", "z9hG4bKfo1", "+8610123", ""));
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    let early = SDP.replace("o=- 1 1", "o=- 100 1");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv_a,
            183,
            "ea",
            &[(Hdr::CONTACT, "<sip:a@127.0.0.3>")],
            Some(&early),
        ),
    );
    let ringing = h.take_responses(PHONE);
    let shown = ringing.iter().find(|r| r.status() == 183).expect("183");
    assert_eq!(origin_of(shown.body()), "- 100 1 IN IP4 127.0.0.1");
    // The first carrier gives up; the second answers with a session of its own, whose
    // version happens to equal the first's, and another codec.
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ea", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    let answer = SDP
        .replace("o=- 1 1", "o=carrier-b 555 1")
        .replace("4000 RTP/AVP 0", "5004 RTP/AVP 8")
        .replace("0 PCMU/8000", "8 PCMA/8000");
    h.recv_msg(
        CARRIER_B,
        reply(
            &inv_b,
            200,
            "tb",
            &[(Hdr::CONTACT, "<sip:b@127.0.0.4>")],
            Some(&answer),
        ),
    );
    let ok = h.response_with(PHONE, 200, "200");
    assert_eq!(
        origin_of(ok.body()),
        "- 100 2 IN IP4 127.0.0.1",
        "the session the caller was shown, one version on"
    );
    // The carrier sees the caller's session as it is.
    assert_eq!(origin_of(inv_b.body()), "- 1 1 IN IP4 127.0.0.1");
}

/// An anchored call from the phone with `offer`, answered by the carrier with `answer`; its
/// To tag.
fn anchored_call_with(h: &mut H, id: &str, offer: &str, answer: &str) -> String {
    h.recv(PHONE, &invite_with_sdp(id, offer));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", answer);
    let tag = ok.to_tag().unwrap();
    phone_acks(h, id, &tag, 1, &format!("z9hG4bK{id}ack1"));
    tag
}

/// The phone ACKs the final answer to its INVITE with CSeq `cseq` (`branch`: the INVITE's
/// for a failure, a new one for a 2xx).
fn phone_acks(h: &mut H, id: &str, tag: &str, cseq: u32, branch: &str) {
    h.take_responses(PHONE);
    h.recv(PHONE, &from_phone_in(id, "ACK", tag, cseq, branch, ""));
    h.take_requests(CARRIER_A, Method::Ack);
}

/// The phone re-INVITEs (CSeq `cseq`) with `offer`; the carrier's answer to it.
fn phone_reinvites(h: &mut H, id: &str, tag: &str, cseq: u32, offer: &str) -> Request {
    h.recv(
        PHONE,
        &from_phone_in(
            id,
            "INVITE",
            tag,
            cseq,
            &format!("z9hG4bK{id}{cseq}"),
            offer,
        ),
    );
    h.one_request(CARRIER_A, Method::Invite)
}

#[test]
fn a_stream_changes_kind_when_the_answer_accepts_and_not_when_the_offer_is_refused() {
    use crate::media::StreamKind;
    let mut h = anchored();
    let tag = anchored_call_with(&mut h, "k1", SDP, SDP);
    assert_eq!(h.relay_pairs()[0].kind, StreamKind::Rtp);
    let t38 = SDP.replace(
        "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        "m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\n",
    );
    // The fax side offers T.38; the carrier refuses it: the stream stays voice.
    let re = phone_reinvites(&mut h, "k1", &tag, 2, &t38);
    assert_eq!(h.relay_pairs()[0].kind, StreamKind::Rtp, "not on the offer");
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
    assert_eq!(h.relay_pairs()[0].kind, StreamKind::Rtp);
    phone_acks(&mut h, "k1", &tag, 2, "z9hG4bKk12");
    // Offered again and accepted: T.38 from the answer on.
    let re = phone_reinvites(&mut h, "k1", &tag, 3, &t38);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&t38)));
    assert_eq!(h.relay_pairs()[0].kind, StreamKind::Datagram);
    phone_acks(&mut h, "k1", &tag, 3, "z9hG4bKk1ack3");
    // And back to voice.
    let re = phone_reinvites(&mut h, "k1", &tag, 4, SDP);
    assert_eq!(h.relay_pairs()[0].kind, StreamKind::Datagram);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(SDP)));
    assert_eq!(h.relay_pairs()[0].kind, StreamKind::Rtp);
}

#[test]
fn keys_offered_on_rtp_avp_and_declined_leave_plain_rtp_and_mux_needs_both_legs() {
    use crate::media::StreamKind;
    let mut h = anchored();
    let keyed = SDP.replace(
        "PCMU/8000\r\n",
        "PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=rtcp-mux\r\n",
    );
    h.recv(PHONE, &invite_with_sdp("k2", &keyed));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let offered = h.relay_pairs()[0].clone();
    assert_eq!((offered.kind, offered.rtcp_mux), (StreamKind::Srtp, false));
    // Best-effort SRTP declined: the answer has neither keys nor mux.
    h.carrier_answers(&inv, "c", SDP);
    let answered = h.relay_pairs()[0].clone();
    assert_eq!((answered.kind, answered.rtcp_mux), (StreamKind::Rtp, false));
    // Both keyed and multiplexed.
    let mut h = anchored();
    anchored_call_with(&mut h, "k3", &keyed, &keyed);
    let both = h.relay_pairs()[0].clone();
    assert_eq!((both.kind, both.rtcp_mux), (StreamKind::Srtp, true));
}

#[test]
fn a_stream_the_relay_does_not_read_keeps_its_legs_repacketising_for_when_it_becomes_rtp() {
    use crate::media::StreamKind;
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.repacketize = true;
            p.ptime = Some(20);
        }
    }));
    let keyed = SDP.replace(
        "PCMU/8000\r\n",
        "PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
    );
    anchored_call_with(&mut h, "k4", &keyed, &keyed);
    let p = h.relay_pairs()[0].clone();
    // SRTP now (the relay forwards it unread), but if a re-INVITE drops the keys the relay
    // opened for this stream must already cut the carrier's RTP to 20 ms.
    assert_eq!((p.kind, p.b_ptime), (StreamKind::Srtp, Some(20)));
}

/// A recorded call whose voice is SRTP: the relay gives the recorder none of it (the
/// stream is no voice it can take), and the CDR says why the recording holds nothing
/// (`recording_encrypted`). With a G.711 stream in the clear beside it, that one is the
/// call's voice: recorded, and no such event.
#[test]
fn a_recorded_call_whose_voice_is_encrypted_says_so_in_its_cdr() {
    let keyed = SDP.replace(
        "PCMU/8000\r\n",
        "PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
    );
    let clear_too = format!("{keyed}m=audio 4002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n");
    for (sdp, encrypted) in [(keyed.clone(), true), (clear_too, false)] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
                p.record = true;
            }
        }));
        let tag = anchored_call_with(&mut h, "k9", &sdp, &sdp);
        let voice: Vec<bool> = h.relay_pairs().iter().map(|p| p.is_voice()).collect();
        assert_eq!(
            voice,
            if encrypted {
                vec![false]
            } else {
                vec![false, true]
            }
        );
        h.recv(
            PHONE,
            &from_phone_in("k9", "BYE", &tag, 2, "z9hG4bKk9bye", ""),
        );
        let bye = h.one_request(CARRIER_A, Method::Bye);
        h.recv_msg(CARRIER_A, reply(&bye, 200, "c", &[], None));
        let cdr = h.cdrs.last().expect("a CDR");
        assert!(cdr.recording.is_some());
        assert_eq!(
            cdr.events.iter().any(|e| e == "recording_encrypted"),
            encrypted,
            "{:?}",
            cdr.events
        );
    }
    // Recorded in the clear, then re-INVITEd to SRTP: the file holds the voice before the
    // change, and the CDR does not say it holds none.
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.record = true;
        }
    }));
    let tag = anchored_call_with(&mut h, "k10", SDP, SDP);
    let re = phone_reinvites(&mut h, "k10", &tag, 2, &keyed);
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&keyed)));
    phone_acks(&mut h, "k10", &tag, 2, "z9hG4bKk10ack2");
    assert_eq!(h.relay_pairs()[0].kind, crate::media::StreamKind::Srtp);
    h.recv(
        PHONE,
        &from_phone_in("k10", "BYE", &tag, 3, "z9hG4bKk10bye", ""),
    );
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "c", &[], None));
    let cdr = h.cdrs.last().expect("a CDR");
    assert!(
        !cdr.events.iter().any(|e| e == "recording_encrypted"),
        "{:?}",
        cdr.events
    );
}

/// A trickle-ICE INFO (RFC 8840) names the sender's own addresses, LAN ones among them: on
/// an anchored call, whose SDP the gateway strips of them, it is answered 469 (no such
/// package on the far side), not relayed. Before, it reached the carrier as sent. On a call
/// that is not anchored it goes on, ICE being end to end there.
#[test]
fn a_trickle_ice_info_on_an_anchored_call_is_refused_not_relayed() {
    let body = "a=ice-ufrag:abcd\r\na=candidate:1 1 UDP 2130706431 192.168.1.20 4000 typ host\r\n";
    let info = |tag: &str, id: &str| {
        from_phone_in(id, "INFO", tag, 2, "z9hG4bKti1", body).replacen(
            "Content-Type: application/sdp\r\n",
            "Info-Package: trickle-ice\r\nContent-Type: application/trickle-ice-sdpfrag\r\n",
            1,
        )
    };
    for anchor in [true, false] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = anchor;
            }
        }));
        let tag = anchored_call_with(&mut h, "ti", SDP, SDP);
        h.recv(PHONE, &info(&tag, "ti"));
        let relayed = h.take_requests(CARRIER_A, Method::Info);
        if anchor {
            assert!(relayed.is_empty(), "no candidate reaches the carrier");
            let r = h.response_with(PHONE, 469, "INFO");
            assert!(r.header(&Hdr::named("Recv-Info")).is_some());
            // The fragment without the package: a legacy INFO, 415.
            let legacy = info(&tag, "ti").replacen("Info-Package: trickle-ice\r\n", "", 1);
            h.recv(
                PHONE,
                &legacy
                    .replace("z9hG4bKti1", "z9hG4bKti2")
                    .replace(" 2 INFO", " 3 INFO"),
            );
            assert!(h.take_requests(CARRIER_A, Method::Info).is_empty());
            h.response_with(PHONE, 415, "the legacy INFO");
        } else {
            assert_eq!(relayed.len(), 1);
        }
    }
}

/// `repacketize` re-cuts G.711 audio only: a video stream, or audio without G.711 (Opus
/// alone), is relayed as sent. Before, every RTP stream of the peer went through the
/// repacketiser, which renumbered video without its gaps (hiding loss from the receiver's
/// NACK) and stripped its header extensions and CSRCs.
#[test]
fn repacketising_takes_only_g711_audio() {
    let repacketising = || {
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
                p.repacketize = true;
                p.ptime = Some(20);
            }
        }))
    };
    let mut h = repacketising();
    let av = SDP.replace(
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:0 PCMU/8000\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
    );
    anchored_call_with(&mut h, "k6", &av, &av);
    let ptimes: Vec<Option<u16>> = h.relay_pairs().iter().map(|p| p.b_ptime).collect();
    assert_eq!(ptimes, [Some(20), None]);
    let mut h = repacketising();
    let opus = SDP.replace(
        "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
        "RTP/AVP 111\r\na=rtpmap:111 opus/48000/2",
    );
    anchored_call_with(&mut h, "k7", &opus, &opus);
    let ptimes: Vec<Option<u16>> = h.relay_pairs().iter().map(|p| p.b_ptime).collect();
    assert_eq!(ptimes, [None]);
}

/// The repacketiser never sends a leg longer packets than its own SDP's `a=maxptime` (the
/// media level's, else the session's): a carrier asking `ptime = 40` in its profile but
/// saying `a=maxptime:30` gets 30 ms. Before, 40 ms packets it said it cannot take.
#[test]
fn repacketising_keeps_to_the_receivers_maxptime() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.repacketize = true;
            p.ptime = Some(40);
        }
    }));
    let phone = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=maxptime:20\r\n");
    let carrier = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=maxptime:30\r\n");
    anchored_call_with(&mut h, "mx1", &phone, &carrier);
    let p = h.relay_pairs()[0].clone();
    assert_eq!((p.a_ptime, p.b_ptime), (None, Some(30)));
    // At the session level, and one under 5 ms ignored.
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.repacketize = true;
            p.ptime = Some(40);
        }
    }));
    let session = SDP.replacen("t=0 0\r\n", "t=0 0\r\na=maxptime:20\r\n", 1);
    let silly = SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=maxptime:1\r\n");
    anchored_call_with(&mut h, "mx2", &silly, &session);
    assert_eq!(h.relay_pairs()[0].b_ptime, Some(20));
}

#[test]
fn a_refused_offer_that_moved_ports_between_streams_leaves_the_streams_as_they_were() {
    use crate::media::StreamKind;
    let mut h = anchored();
    let tag = anchored_call_with(&mut h, "k5", SDP, SDP);
    let before = h.relay_pairs();
    assert_eq!(before.len(), 1);
    // T.38 offered as a new stream beside the voice one turned off (port 0): the voice
    // stream's ports go to the new one while the offer is out.
    let fax = SDP.replace(
        "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        "m=audio 0 RTP/AVP 0\r\nm=image 4002 udptl t38\r\n",
    );
    let re = phone_reinvites(&mut h, "k5", &tag, 2, &fax);
    let offered = h.relay_pairs();
    assert_eq!(
        offered[0].a_remote,
        Some("192.0.2.10:4002".parse().unwrap())
    );
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
    // Refused: the voice stream is where it was, as it was.
    let after = h.relay_pairs();
    let voice = after
        .iter()
        .find(|p| (p.a_port, p.b_port) == (before[0].a_port, before[0].b_port))
        .expect("the voice stream's ports");
    assert_eq!(voice.kind, StreamKind::Rtp);
    assert_eq!(voice.a_remote, before[0].a_remote);
    assert_eq!(voice.b_remote, before[0].b_remote);
}

/// The ports a refused offer took for a new stream stay the call's (for the next stream to
/// take), relaying nothing. Before, they were told to the relay as active streams with no
/// address, so on `latch = "any"` each side latched to whoever sent first: an open relay
/// between any two senders for as long as the call lasted.
#[test]
fn the_ports_a_refused_offer_took_relay_nothing() {
    let mut h = anchored();
    let tag = anchored_call_with(&mut h, "k6", SDP, SDP);
    let before = h.relay_pairs();
    assert_eq!(before.len(), 1);
    let video = format!("{SDP}m=video 4010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    let re = phone_reinvites(&mut h, "k6", &tag, 2, &video);
    assert_eq!(h.relay_pairs().len(), 2, "the new stream's ports");
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], None));
    let after = h.relay_pairs();
    assert_eq!(after.len(), 2, "{after:?}");
    let voice = after
        .iter()
        .find(|p| (p.a_port, p.b_port) == (before[0].a_port, before[0].b_port))
        .expect("the voice stream");
    assert!(voice.active);
    let kept = after.iter().find(|p| p.a_port != voice.a_port).unwrap();
    assert!(!kept.active, "{kept:?}");
}

/// An anchored call from the phone, answered by the carrier (tag `c`) and ACKed: the
/// carrier's INVITE and the phone's tag.
fn anchored_call_inv(h: &mut H, id: &str) -> (Request, String) {
    h.recv(PHONE, &invite_with_sdp(id, SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    phone_acks(h, id, &tag, 1, &format!("z9hG4bK{id}ack1"));
    (inv, tag)
}

#[test]
fn an_offer_crossing_one_still_unanswered_gets_491() {
    let mut h = anchored();
    let (inv, tag) = anchored_call_inv(&mut h, "x1");
    let _re = phone_reinvites(&mut h, "x1", &tag, 2, &SDP.replace("o=- 1 1", "o=- 1 2"));
    // The carrier's UPDATE offer crosses the phone's re-INVITE: refused here, not relayed.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "c", 1, "z9hG4bKxu1", SDP),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![491]);
    assert!(h.take_requests(PHONE, Method::Update).is_empty());
}

#[test]
fn a_late_offer_in_a_2xx_and_its_answer_in_the_ack_settle_rtcp_multiplexing() {
    let mut h = anchored();
    // The carrier's answer comes twice, in a 183 and in the 200: the same answer, no offer.
    h.recv(PHONE, &invite_with_sdp("x2", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            183,
            "c",
            &[(Hdr::CONTACT, "<sip:a@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    phone_acks(&mut h, "x2", &tag, 1, "z9hG4bKx2ack1");
    assert!(!h.relay_pairs()[0].rtcp_mux);
    // The carrier asks for an offer (a re-INVITE without SDP).
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "c", 1, "z9hG4bKxr1", ""),
    );
    let re = h.one_request(PHONE, Method::Invite);
    assert!(re.body().is_empty());
    let muxed = format!("{}a=rtcp-mux\r\n", SDP.replace("o=- 1 1", "o=- 1 2"));
    h.recv_msg(
        PHONE,
        reply(
            &re,
            200,
            "alice1",
            &[(Hdr::CONTACT, "<sip:1000@127.0.0.2:5060>")],
            Some(&muxed),
        ),
    );
    let ok = h.response_with(CARRIER_A, 200, "the phone's offer reaches the carrier");
    assert!(String::from_utf8_lossy(ok.body()).contains("a=rtcp-mux"));
    // The carrier's ACK answers it, multiplexing too.
    h.recv(
        CARRIER_A,
        &from_carrier_in(
            &inv,
            "ACK",
            "c",
            1,
            "z9hG4bKxa1",
            &muxed.replace("192.0.2.10", "198.51.100.7"),
        ),
    );
    h.one_request(PHONE, Method::Ack);
    assert!(
        h.relay_pairs()[0].rtcp_mux,
        "offered in the 2xx, answered in the ACK"
    );
}

#[test]
fn an_offer_refused_for_want_of_ports_puts_the_moved_ports_back() {
    let mut h = anchored();
    let (_inv, tag) = anchored_call_inv(&mut h, "x3");
    let before = h.relay_pairs();
    // Another call takes most of the rest of the tests' pool (5 port pairs, two a stream):
    // one pair is left, no stream's worth.
    h.recv(PHONE, &invite_with_sdp("fill", SDP));
    h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(h.core.free_media_ports(), 1);
    // Voice off, fax and video on: the voice ports move to the fax line, video finds none.
    let offer = SDP.replace(
        "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        "m=audio 0 RTP/AVP 0\r\nm=image 4002 udptl t38\r\nm=video 4004 RTP/AVP 96\r\n",
    );
    h.recv(
        PHONE,
        &from_phone_in("x3", "INVITE", &tag, 2, "z9hG4bKx32", &offer),
    );
    assert!(h.statuses(PHONE).contains(&488));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    let after = h.relay_pairs();
    assert_eq!(after.len(), 1);
    assert_eq!(
        (after[0].a_port, after[0].a_remote, after[0].b_remote),
        (before[0].a_port, before[0].a_remote, before[0].b_remote),
        "the voice stream as it was"
    );
}

#[test]
fn a_failover_sends_the_callers_media_to_no_one_until_the_next_callee_says_where() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("x4", SDP));
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    let early = SDP.replace("192.0.2.10", "198.51.100.7");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv_a,
            183,
            "ea",
            &[(Hdr::CONTACT, "<sip:a@127.0.0.3>")],
            Some(&early),
        ),
    );
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.7:4000".parse().unwrap())
    );
    let first = h.relay_pairs()[0].callee;
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ea", &[], None));
    h.one_request(CARRIER_B, Method::Invite);
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        None,
        "not to the callee that failed"
    );
    // The relay learns nothing of the next callee from the one that failed, nor takes a
    // source for it before its SDP.
    assert_ne!(h.relay_pairs()[0].callee, first);
    assert!(h.relay_pairs()[0].a_heard);
    assert!(!h.relay_pairs()[0].b_heard);
}

/// A 183 with SDP from a carrier at `contact` that takes UPDATE.
fn early_taking_update(inv: &Request, tag: &str, contact: &str) -> Message {
    let allow = "INVITE, ACK, BYE, CANCEL, UPDATE";
    let headers = [(Hdr::CONTACT, contact), (Hdr::ALLOW, allow)];
    reply(inv, 183, tag, &headers, Some(SDP))
}

#[test]
fn an_update_relayed_to_a_callee_that_fails_ends_with_it() {
    let mut h = anchored();
    // The phone's new offer in the early dialog goes to the first carrier.
    let (inv_a, tag, update) = early_update_to_the_carrier(&mut h, "x5");
    // The first carrier fails before answering it: the phone's UPDATE ends there.
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ea", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert_eq!(h.statuses(PHONE), vec![487]);
    // Its late answer names an address of the carrier that failed: it reaches no one.
    let late = SDP.replace("192.0.2.10", "198.51.100.9");
    h.recv_msg(CARRIER_A, reply(&update, 200, "ea", &[], Some(&late)));
    assert!(h.take_responses(PHONE).is_empty());
    assert_eq!(h.relay_pairs()[0].b_remote, None);
    // The next carrier may take an offer at once.
    h.recv_msg(
        CARRIER_B,
        early_taking_update(&inv_b, "eb", "<sip:b@127.0.0.4>"),
    );
    h.take_responses(PHONE);
    h.recv(
        PHONE,
        &from_phone_in(
            "x5",
            "UPDATE",
            &tag,
            3,
            "z9hG4bKx5v",
            &SDP.replace("o=- 1 1", "o=- 1 3"),
        ),
    );
    assert!(h.take_responses(PHONE).is_empty(), "nothing refused");
    h.one_request(CARRIER_B, Method::Update);
}

/// An answer without SDP (the session came in a 183) still tells the relay the call is
/// answered, so its media clock starts there, not at the last offer/answer.
#[test]
fn an_answer_without_sdp_starts_the_media_clock() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("ans1", "z9hG4bKans1", "+8610123", ""));
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
    h.media.clear();
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c1",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            None,
        ),
    );
    assert!(h.statuses(PHONE).contains(&200));
    assert!(
        h.media
            .iter()
            .any(|m| matches!(m, MediaAction::Answered { .. })),
        "{:?}",
        h.media
    );
}

/// A stream turned off (port 0) keeps its ports until another stream takes them, and the
/// relay is told it is off: it relays nothing there (latched by anyone, its two sides
/// would carry strangers' traffic).
#[test]
fn a_stream_turned_off_is_told_to_the_relay_as_off() {
    let mut h = anchored();
    let two = format!("{SDP}m=audio 4002 RTP/AVP 0\r\n");
    h.recv(PHONE, &invite_with_sdp("off1", &two));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let answer = String::from_utf8_lossy(inv.body()).replace("127.0.0.1", "192.0.2.40");
    let ok = h.carrier_answers(&inv, "c", &answer);
    assert_eq!(
        h.relay_pairs().iter().map(|p| p.active).collect::<Vec<_>>(),
        [true, true]
    );
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("off1", "ACK", &tag, 1, "z9hG4bKoff1a", ""),
    );
    // The phone turns its second stream off.
    let one = format!("{SDP}m=audio 0 RTP/AVP 0\r\n");
    h.recv(
        PHONE,
        &from_phone_in("off1", "INVITE", &tag, 2, "z9hG4bKoff2", &one),
    );
    h.one_request(CARRIER_A, Method::Invite);
    let pairs = h.relay_pairs();
    assert_eq!(pairs.len(), 2, "its ports are kept");
    assert_eq!(
        pairs.iter().map(|p| p.active).collect::<Vec<_>>(),
        [true, false]
    );
}

/// Two branches of a forking proxy answer in reliable 183s, each shown to the 100rel caller
/// (which PRACKs both); the second one is anchored last; the first branch's bare 200 wins.
/// The relay sends to the first branch's media, not to the last one anchored.
#[test]
fn the_relay_follows_the_branch_whose_bare_2xx_wins() {
    let mut h = anchored();
    h.recv(
        PHONE,
        &invite_text("fk1", "z9hG4bKfk1", "+8610123", "Supported: 100rel\r\n"),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let branch = |host: &str, port: &str| SDP.replace("192.0.2.10", host).replace("4000", port);
    let (a_sdp, b_sdp) = (
        branch("198.51.100.7", "5004"),
        branch("198.51.100.9", "6008"),
    );
    for (n, (tag, sdp)) in [("bra", &a_sdp), ("brb", &b_sdp)].into_iter().enumerate() {
        let hdrs = [
            (Hdr::REQUIRE, "100rel"),
            (Hdr::RSEQ, "1"),
            (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        ];
        h.recv_msg(CARRIER_A, reply(&inv, 183, tag, &hdrs, Some(sdp)));
        let pr = h.one_request(CARRIER_A, Method::Prack);
        h.recv_msg(CARRIER_A, reply(&pr, 200, tag, &[], None));
        // The caller acknowledges the 183 it got (this branch's answer).
        let r183 = h.response_with(PHONE, 183, "183");
        let rseq = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
        let prack = phone_prack("fk1", &r183.to_tag().unwrap(), 2 + n as u32, rseq, "");
        h.recv(PHONE, &prack);
    }
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.9:6008".parse().unwrap()),
        "the last branch anchored"
    );
    h.take(PHONE);
    let ok = h.carrier_answers_bare(&inv, "bra");
    assert!(ok.body().is_empty(), "the caller has its answer already");
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.7:5004".parse().unwrap()),
        "the branch that answered"
    );
    // Answered, the relay is told the media flows (the 2xx had no SDP to tell it with).
    assert!(h.relay_pairs()[0].flowing);
}

/// An SDP address written as an IPv4-mapped IPv6 address is kept as the IPv4 address it
/// reaches: the relay hears that peer as IPv4, and latching to the SDP's address compares
/// the two.
#[test]
fn a_mapped_sdp_address_is_relayed_to_as_ipv4() {
    let mut h = anchored();
    let mapped = SDP.replace("IN IP4 192.0.2.10", "IN IP6 ::ffff:192.0.2.10");
    h.recv(
        PHONE,
        &invite_text("mp1", "z9hG4bKmp1", "+8610123", "").replace(SDP, &mapped),
    );
    h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        h.relay_pairs()[0].a_remote,
        Some("192.0.2.10:4000".parse().unwrap())
    );
}

/// SDP in a message that answers no offer (the 200 to an INFO; a 488's capabilities, RFC
/// 3261 §21.4.26; a callee's failure) changes nothing of the call's media and
/// reaches the other side with every stream refused and the gateway's address, never the
/// peer's. Before, it was taken for an answer (the 200 to an OPTIONS with `m=audio 0`
/// turned the call's audio off; the 488 undid what the refused offer put back), or, in the
/// failure of a first INVITE, went on with the callee's address.
#[test]
fn sdp_in_what_answers_no_offer_changes_nothing_and_leaks_nothing() {
    const FAR: &str = "198.51.100.77";
    let caps = SDP
        .replace("192.0.2.10", FAR)
        .replace("m=audio 4000", "m=audio 0");
    let leaks = |r: &Response| String::from_utf8_lossy(r.body()).contains(FAR);
    let mut h = anchored();
    let tag = anchored_call_with(&mut h, "n1", SDP, SDP);
    let before = h.relay_pairs();
    assert!(before[0].active);
    h.recv(
        PHONE,
        &from_phone_in("n1", "INFO", &tag, 2, "z9hG4bKn1info", ""),
    );
    let info = h.one_request(CARRIER_A, Method::Info);
    h.recv_msg(CARRIER_A, reply(&info, 200, "c", &[], Some(&caps)));
    let ok = h.take_responses(PHONE);
    let ok = ok
        .iter()
        .find(|r| r.status() == 200)
        .expect("the INFO's 200");
    assert!(!leaks(ok), "{ok:?}");
    let after = h.relay_pairs();
    assert!(after[0].active, "the call's audio goes on: {after:?}");
    assert_eq!(after[0].a_remote, before[0].a_remote);
    assert_eq!(after[0].b_remote, before[0].b_remote);
    // A re-INVITE refused with the carrier's capabilities: the streams stay as they were.
    let re = phone_reinvites(&mut h, "n1", &tag, 3, &SDP.replace("o=- 1 1", "o=- 1 2"));
    h.recv_msg(CARRIER_A, reply(&re, 488, "c", &[], Some(&caps)));
    let refused = h.take_responses(PHONE);
    let refused = refused.iter().find(|r| r.status() == 488).expect("the 488");
    assert!(!leaks(refused), "{refused:?}");
    let after = h.relay_pairs();
    assert!(after[0].active, "{after:?}");
    assert_eq!(after[0].b_remote, before[0].b_remote);
    // A first INVITE's failure with SDP: the caller hears no callee address.
    h.recv(PHONE, &invite_with_sdp("n2", SDP));
    for carrier in [CARRIER_A, "127.0.0.4:5060"] {
        if let Some(inv) = h.take_requests(carrier, Method::Invite).pop() {
            h.recv_msg(carrier, reply(&inv, 488, "c2", &[], Some(&caps)));
        }
    }
    let failed = h.take_responses(PHONE);
    let failed = failed
        .iter()
        .find(|r| r.status() == 488)
        .expect("the caller's 488");
    assert!(!leaks(failed), "{failed:?}");
}

/// An encoded body (`Content-Encoding: gzip`) on an anchored call is SDP that cannot be
/// read: an offer in one is refused with 488, an early answer in one reaches the caller
/// with every stream refused, not encoded, and without the callee's address, and a 2xx
/// answering in one fails the call (502). Before, an answer's bytes went on nearly as they
/// came, labelled gzip for the caller to decode.
#[test]
fn an_encoded_body_on_an_anchored_call_is_sdp_that_cannot_be_read() {
    const FAR: &str = "198.51.100.78";
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("g1", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let answer = SDP.replace("192.0.2.10", FAR);
    let encoded = |status| {
        reply(
            &inv,
            status,
            "c",
            &[
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
                (Hdr::named("Content-Encoding"), "gzip"),
            ],
            Some(&answer),
        )
    };
    h.recv_msg(CARRIER_A, encoded(183));
    let ok = h.response_with(PHONE, 183, "the 183");
    let body = String::from_utf8_lossy(ok.body());
    assert!(!body.contains(FAR), "{body}");
    assert!(body.contains("m=audio 0 "), "{body}");
    assert!(
        ok.header(&Hdr::named("Content-Encoding")).is_none(),
        "{ok:?}"
    );
    h.recv_msg(CARRIER_A, encoded(200));
    assert_eq!(h.failures(PHONE), vec![502]);
    // An offer in an encoded body: refused.
    let encoded = invite_with_sdp("g2", SDP).replace(
        "Content-Type: application/sdp\r\n",
        "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n",
    );
    assert!(encoded.contains("Content-Encoding"));
    h.recv(PHONE, &encoded);
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    assert!(h.statuses(PHONE).contains(&488));
}

/// SDP in the ACK of a 2xx that offered nothing is no answer (RFC 3261 §13.2.2.4): it
/// changes nothing of the call's media and does not reach the other side. Before, it was
/// anchored as the caller's answer: the relay's view of the caller moved to whatever it
/// named, and the carrier got an ACK with SDP to a 2xx that had answered.
#[test]
fn sdp_in_the_ack_of_a_2xx_that_offered_nothing_is_no_answer() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("ak1", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    let before = h.relay_pairs();
    h.take_responses(PHONE);
    h.recv(
        PHONE,
        &from_phone_in(
            "ak1",
            "ACK",
            &tag,
            1,
            "z9hG4bKak1ack",
            &SDP.replace("192.0.2.10", "198.51.100.79"),
        ),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert!(ack.body().is_empty(), "{ack:?}");
    let after = h.relay_pairs();
    assert_eq!(after[0].a_remote, before[0].a_remote);
}

/// Only an INVITE, UPDATE or PRACK offers, and only what answers an offer is an answer:
/// SDP in an INFO is passed on with every stream refused and takes no ports; SDP in the
/// 200 to an UPDATE that offered nothing changes nothing. Before, the INFO's SDP was
/// anchored as an offer (ports taken, addresses moved) and the UPDATE's 200 as an answer.
#[test]
fn sdp_in_an_info_or_in_the_200_to_an_update_without_offer_changes_nothing() {
    const FAR: &str = "198.51.100.80";
    let mut h = anchored();
    let tag = anchored_call_with(&mut h, "i1", SDP, SDP);
    let before = h.relay_pairs();
    let free = h.core.free_media_ports();
    let other = SDP.replace("192.0.2.10", FAR).replace("4000", "5000");
    h.recv(
        PHONE,
        &from_phone_in("i1", "INFO", &tag, 2, "z9hG4bKi1info", &other),
    );
    let info = h.one_request(CARRIER_A, Method::Info);
    let body = String::from_utf8_lossy(info.body());
    assert!(!body.contains(FAR) && body.contains("m=audio 0 "), "{body}");
    assert_eq!(h.core.free_media_ports(), free, "no ports taken");
    assert_eq!(h.relay_pairs(), before);
    // An UPDATE without SDP, answered 200 with the carrier's SDP: no answer.
    h.recv(
        PHONE,
        &from_phone_in("i1", "UPDATE", &tag, 3, "z9hG4bKi1upd", ""),
    );
    let update = h.one_request(CARRIER_A, Method::Update);
    h.recv_msg(CARRIER_A, reply(&update, 200, "c", &[], Some(&other)));
    let ok = h.take_responses(PHONE);
    let ok = ok
        .iter()
        .find(|r| r.status() == 200)
        .expect("the UPDATE's 200");
    assert!(!String::from_utf8_lossy(ok.body()).contains(FAR), "{ok:?}");
    assert_eq!(h.relay_pairs(), before);
}

/// The phone's INVITE carries no SDP; one branch of the carrier's rings with its early
/// media, another answers with a 2xx offering its session: the relay sends toward the
/// answering branch's address at once, before the phone's ACK answers the offer (nothing
/// before it is the call's to keep). Before, the first 2xx's offer was held as a move: the
/// relay kept sending to the ringing branch until the phone's ACK.
#[test]
fn a_late_offer_in_the_first_2xx_gives_the_relay_the_callees_address_at_once() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("lo1", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ringing = SDP.replace("4000", "4400");
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c1", &[], Some(&ringing)));
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4400".parse().unwrap())
    );
    let ok = h.carrier_answers(&inv, "c", SDP);
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4000".parse().unwrap())
    );
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("lo1", "ACK", &tag, 1, "z9hG4bKlo1a", SDP),
    );
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4000".parse().unwrap())
    );
    assert!(h.cdrs.is_empty());
}

/// The callee answers an anchored call with SDP that cannot be read (not SDP at all, or
/// more media sections than any SDP is taken with, 128: an answer's sections past its
/// offer's within that are only left out), or offers in it (a late offer: the
/// caller's INVITE had no SDP): there is no call to connect. The caller gets 502 (the
/// callee's response is invalid) and the callee's 2xx is ACKed and hung up; its
/// retransmission is ACKed again, not hung up twice. Before, the caller got a 200 with
/// every stream refused: a connected call without audio, billed, until someone hung up.
#[test]
fn unreadable_sdp_in_the_first_2xx_fails_the_call_and_hangs_up_the_callee() {
    let too_many = format!(
        "{SDP}{}",
        "m=audio 4002 RTP/AVP 0\r\n".repeat(crate::sdp::MAX_SECTIONS)
    );
    let cases = [
        (SDP, "v=1\r\nnot sdp\r\n"),
        (SDP, too_many.as_str()),
        ("", "v=1\r\nnot sdp\r\n"),
    ];
    for (i, (offer, answer)) in cases.into_iter().enumerate() {
        let mut h = anchored();
        h.recv(PHONE, &invite_with_sdp(&format!("ua{i}"), offer));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
        let ok = reply(&inv, 200, "u1", &contact, Some(answer));
        h.recv_msg(CARRIER_A, ok.clone());
        assert_eq!(h.failures(PHONE), vec![502], "case {i}");
        let sent = h.requests_to(CARRIER_A);
        let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
        assert_eq!(methods, [Method::Ack, Method::Bye], "case {i}");
        let bye = &sent[1];
        assert_eq!(h.cdrs.len(), 1);
        assert_eq!(h.cdrs[0].call_tag, CallTag::MediaUnavailable);
        assert_eq!(h.cdrs[0].cause, 127);
        let events = &h.cdrs[0].events;
        assert!(
            events.iter().any(|e| e == "callee_sdp_unreadable"),
            "{events:?}"
        );
        // Its retransmission: ACKed again, no second BYE.
        h.recv_msg(CARRIER_A, ok);
        assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
        assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
        h.recv_msg(CARRIER_A, reply(bye, 200, "u1", &[], None));
        let all = anchored().core.free_media_ports();
        assert_eq!(h.core.free_media_ports(), all, "case {i}");
        assert_idle(&mut h);
    }
}

/// The callee answered in a reliable 183 (its answer, RFC 3262) and its 2xx repeats it in
/// SDP that cannot be read: the answer given stands. A caller that had the 183 unreliably
/// gets that answer in its 200, anchored; one that had it reliably gets a 200 without SDP
/// (not the copy with every stream refused); the call goes on. Before, the unreadable copy
/// failed the call, and earlier reached a caller with its answer as every stream refused.
#[test]
fn an_unreadable_2xx_after_a_reliable_early_answer_keeps_that_answer() {
    for caller_rel in [false, true] {
        let mut h = anchored();
        let extra = if caller_rel {
            "Supported: 100rel\r\n"
        } else {
            ""
        };
        h.recv(PHONE, &invite_text("ue1", "z9hG4bKue1", "+8610123", extra));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let early = SDP.replace("192.0.2.10", "198.51.100.7");
        let r183 = super::prack::reliable_183_from(&inv, "e1", 1, "<sip:c@127.0.0.3>", &early);
        h.recv_msg(CARRIER_A, r183);
        let pr = h.one_request(CARRIER_A, Method::Prack);
        h.recv_msg(CARRIER_A, reply(&pr, 200, "e1", &[], None));
        if caller_rel {
            let r183 = h.response_with(PHONE, 183, "the reliable 183");
            let rseq = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
            h.recv(
                PHONE,
                &phone_prack("ue1", &r183.to_tag().unwrap(), 2, rseq, ""),
            );
        }
        h.take(PHONE);
        let ok = h.carrier_answers(&inv, "e1", "v=1\r\n");
        let body = String::from_utf8_lossy(ok.body()).to_string();
        if caller_rel {
            assert!(
                body.is_empty() && !ok.has_header(&Hdr::CONTENT_TYPE),
                "{ok:?}"
            );
        } else {
            let answer = body.contains("c=IN IP4 127.0.0.1") && !body.contains("m=audio 0 ");
            assert!(answer && !body.contains("198.51.100.7"), "{body}");
        }
        assert_eq!(
            h.relay_pairs()[0].b_remote,
            Some("198.51.100.7:4000".parse().unwrap())
        );
        assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
        assert!(h.cdrs.is_empty());
    }
}

/// The only branch answers our PRACK 481 (an SBC's way of refusing it): a refusal, the call
/// goes on, and so does the early media its 183 set up. Before, the branch's media was let
/// go as if its dialog were gone, and the caller's audio toward it dropped until the answer.
#[test]
fn the_only_branchs_481_to_our_prack_keeps_its_early_media() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("pm1", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let early = SDP.replace("192.0.2.10", "198.51.100.7");
    h.recv_msg(
        CARRIER_A,
        super::prack::reliable_183_from(&inv, "c1", 1, "<sip:c@127.0.0.3>", &early),
    );
    let pr = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.7:4000".parse().unwrap())
    );
    h.recv_msg(CARRIER_A, reply(&pr, 481, "c1", &[], None));
    assert!(h.cdrs.is_empty(), "the call goes on");
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.7:4000".parse().unwrap()),
        "its early media goes on"
    );
}

/// The callee's offer in its 2xx to the phone's offerless re-INVITE, never answered (the
/// phone does not ACK): the ACK the callee is owed refuses it in the session the callee
/// was shown, one version up (RFC 3264 §8: the `o=` of one session keeps its id). Before,
/// it came as a session of its own, its id made from the offer.
#[test]
fn the_refusal_in_an_owed_ack_keeps_the_session_the_callee_was_shown() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    let (inv, ok) = answered_call(&mut h);
    let origin = |body: &[u8]| -> (String, u64) {
        let text = String::from_utf8_lossy(body).into_owned();
        let o = text
            .lines()
            .find(|l| l.starts_with("o="))
            .expect("o=")
            .to_string();
        let fields: Vec<&str> = o.split(' ').collect();
        (fields[1].to_string(), fields[2].parse().unwrap())
    };
    let (session, version) = origin(inv.body());
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKowed1", ""));
    let re = h.one_request(CARRIER_A, Method::Invite);
    let offer = SDP.replace("o=- 1 1", "o=- 1 2");
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(
        CARRIER_A,
        reply(&re, 200, "carrier1", &contact, Some(&offer)),
    );
    assert!(h.statuses(PHONE).contains(&200));
    h.advance(Duration::from_secs(40));
    let acks = h.take_requests(CARRIER_A, Method::Ack);
    let ack = acks.last().expect("the ACK the callee is owed");
    let body = String::from_utf8_lossy(ack.body()).into_owned();
    assert!(body.contains("m=audio 0 "), "a refusal:\n{body}");
    assert_eq!(origin(ack.body()), (session, version + 1), "{body}");
}

/// The callee's offer in its 2xx to the phone's offerless re-INVITE cannot be read: the
/// phone is sent it with every stream refused, as many m= lines as it had, and the phone's
/// answer in its ACK goes to the callee with as many (RFC 3264 §6). Before, the answer was
/// cut to the callee's earlier offer's m= lines (one, from its hold), which a strict peer
/// refuses.
#[test]
fn the_answer_to_an_unreadable_offer_in_a_2xx_keeps_its_own_lines() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    // The carrier's own offer once (a hold): its shape is one audio line.
    let hold = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INVITE", "carrier1", 2, "z9hG4bKshape1", &hold),
    );
    let re = h.one_request(PHONE, Method::Invite);
    h.recv_msg(PHONE, reply(&re, 200, "", &[], Some(SDP)));
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "ACK", "carrier1", 2, "z9hG4bKshape2", ""),
    );
    h.take(PHONE);
    // The phone's offerless re-INVITE; the carrier offers three lines, one unreadable.
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKshape3", ""));
    let to_carrier = h.one_request(CARRIER_A, Method::Invite);
    let three = SDP.replace("o=- 1 1", "o=- 1 3")
        + "m=audio 4002 RTP/AVP 0\r\nm=audio 4004 RTP/AVP 0\r\nbogus\r\n";
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(
        CARRIER_A,
        reply(&to_carrier, 200, "carrier1", &contact, Some(&three)),
    );
    let offered = h.response_with(PHONE, 200, "the phone is offered it, refused");
    let lines = |b: &[u8]| String::from_utf8_lossy(b).matches("m=audio ").count();
    assert_eq!(lines(offered.body()), 3);
    // The phone names a port for the first stream anyway: the offer it was sent refused
    // it, so it stays refused and takes no ports (RFC 3264 §6).
    let answer = SDP.to_string() + "m=audio 0 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\n";
    let free = h.core.free_media_ports();
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKshape4", &answer));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    let body = String::from_utf8_lossy(ack.body()).into_owned();
    assert_eq!(lines(ack.body()), 3, "{body}");
    assert_eq!(body.matches("m=audio 0 ").count(), 3, "{body}");
    assert_eq!(
        h.core.free_media_ports(),
        free,
        "no ports for a refused stream"
    );
}

/// An answer that cannot be read reaches the offerer with every stream refused and as many
/// m= lines as its offer had (RFC 3264 §6): the answer's extra lines left out, missing ones
/// the offer's, refused. Before, the refusal kept the answerer's lines, three to a one-line
/// offer (and one to a two-line offer), which a strict offerer refuses. (An early answer, in
/// a 183 to the re-INVITE: one in its 2xx has the re-INVITE fail instead,
/// `an_unreadable_answer_to_a_relayed_reinvite_leaves_both_legs_as_they_were`.)
#[test]
fn an_unreadable_answer_has_as_many_lines_as_its_offer() {
    for (offered, answered) in [(1, 3), (2, 1)] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
            }
        }));
        let (inv, ok) = answered_call(&mut h);
        let tag = ok.to_tag().unwrap();
        let offer =
            SDP.replace("o=- 1 1", "o=- 1 2") + &"m=audio 4002 RTP/AVP 0\r\n".repeat(offered - 1);
        h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKur1", &offer));
        let re = h.one_request(CARRIER_A, Method::Invite);
        let answer = SDP.replace("o=- 1 1", "o=- 1 2")
            + &"m=audio 4002 RTP/AVP 0\r\n".repeat(answered - 1)
            + "bogus\r\n";
        let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
        h.recv_msg(
            CARRIER_A,
            reply(&re, 183, "carrier1", &contact, Some(&answer)),
        );
        let relayed = h.response_with(PHONE, 183, "the answer, refused");
        let body = String::from_utf8_lossy(relayed.body()).into_owned();
        assert_eq!(body.matches("m=audio 0 ").count(), offered, "{body}");
        assert_eq!(body.matches("m=").count(), offered, "{body}");
        let _ = inv;
    }
}

/// A call that ends stops its media at once, though a leg that does not answer our BYE
/// keeps its ports for Timer F: before, both directions were relayed, and recorded, for up
/// to 40 s after the CDR was written (audio on to a phone that had hung up, a leg cut at
/// `max_call_duration_s` talking on).
#[test]
fn an_ended_call_relays_nothing_while_its_bye_goes_unanswered() {
    let mut h = anchored();
    let (_inv, tag) = anchored_call_inv(&mut h, "end1");
    assert!(h.relay_pairs().iter().all(|p| p.active));
    h.recv(
        PHONE,
        &from_phone_in("end1", "BYE", &tag, 2, "z9hG4bKend1bye", ""),
    );
    h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(h.cdrs.len(), 1);
    let pairs = h.relay_pairs();
    assert!(
        !pairs.is_empty() && pairs.iter().all(|p| !p.active),
        "{pairs:?}"
    );
    let released = |h: &H| {
        (h.media.iter())
            .filter(|m| matches!(m, MediaAction::Release { .. }))
            .count()
    };
    assert_eq!(released(&h), 0, "the ports wait for the BYE's transaction");
    h.advance(Duration::from_secs(45));
    assert_eq!(released(&h), 1);
}

/// A pair the relay found held by another socket is handed out no more (once said).
#[test]
fn a_media_pair_another_socket_holds_is_withheld() {
    let mut h = H::new();
    let free = h.core.free_media_ports();
    h.input(Input::MediaPortHeld(30003));
    assert_eq!(h.core.free_media_ports(), free - 1);
    h.input(Input::MediaPortHeld(30002));
    h.input(Input::MediaPortHeld(40000));
    assert_eq!(h.core.free_media_ports(), free - 1);
}

/// A withheld pair found free again is handed out again.
#[test]
fn a_withheld_media_pair_that_binds_again_is_handed_out_again() {
    let mut h = H::new();
    let free = h.core.free_media_ports();
    h.input(Input::MediaPortHeld(30002));
    h.input(Input::MediaPortFree(30002));
    assert_eq!(h.core.free_media_ports(), free);
}

/// The phone calls (`id`), carrier-a (which takes UPDATE) answers in a 183 with SDP, and
/// the phone offers anew in an early UPDATE: the carrier's INVITE, our tag toward the phone,
/// and the UPDATE the carrier got.
fn early_update_to_the_carrier(h: &mut H, id: &str) -> (Request, String, Request) {
    h.recv(PHONE, &invite_with_sdp(id, SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        early_taking_update(&inv, "ea", "<sip:a@127.0.0.3>"),
    );
    let tag = (h.take_responses(PHONE).iter())
        .find(|r| r.status() == 183)
        .and_then(|r| r.to_tag())
        .expect("183 with a tag");
    let offer = SDP.replace("o=- 1 1", "o=- 1 2");
    let branch = format!("z9hG4bK{id}u");
    h.recv(
        PHONE,
        &from_phone_in(id, "UPDATE", &tag, 2, &branch, &offer),
    );
    let update = h.one_request(CARRIER_A, Method::Update);
    (inv, tag, update)
}

/// An early UPDATE offer refused after the callee's 2xx came: the 2xx's session stands, not
/// what stood before the UPDATE. Before, the relay went back to the 183's address for the
/// rest of the call.
#[test]
fn an_early_update_refused_after_the_answer_leaves_the_answer_standing() {
    let mut h = anchored();
    let (inv, _tag, update) = early_update_to_the_carrier(&mut h, "x6");
    let answered = SDP.replace("192.0.2.10", "192.0.2.55");
    let contact = [(Hdr::CONTACT, "<sip:a@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "ea", &contact, Some(&answered)));
    let at = |h: &H| h.relay_pairs()[0].b_remote.map(|r| r.ip().to_string());
    assert_eq!(at(&h).as_deref(), Some("192.0.2.55"));
    h.recv_msg(CARRIER_A, reply(&update, 488, "ea", &[], None));
    assert!(h.failures(PHONE).contains(&488));
    assert_eq!(at(&h).as_deref(), Some("192.0.2.55"), "the answer stands");
}

/// A callee that refused an early UPDATE (405) and then lists UPDATE in its 2xx's `Allow`
/// still takes none: the next offer goes as a re-INVITE. Before, the 2xx's `Allow` undid
/// what its 405 said.
#[test]
fn an_update_refused_early_stays_refused_whatever_the_answers_allow() {
    let mut h = anchored();
    let (inv, tag, update) = early_update_to_the_carrier(&mut h, "x7");
    h.recv_msg(CARRIER_A, reply(&update, 405, "ea", &[], None));
    assert!(h.failures(PHONE).contains(&405));
    let allow = "INVITE, ACK, BYE, CANCEL, UPDATE";
    let headers = [(Hdr::CONTACT, "<sip:a@127.0.0.3>"), (Hdr::ALLOW, allow)];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "ea", &headers, Some(SDP)));
    phone_acks(&mut h, "x7", &tag, 1, "z9hG4bKx7a");
    let moved = SDP
        .replace("o=- 1 1", "o=- 1 3")
        .replace("192.0.2.10", "192.0.2.66");
    h.recv(
        PHONE,
        &from_phone_in("x7", "UPDATE", &tag, 3, "z9hG4bKx7v", &moved),
    );
    let methods: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(|r| r.method())
        .collect();
    assert_eq!(methods, vec![Method::Invite], "the offer as a re-INVITE");
}

/// The callee's second reliable 183 in its early dialog carries other SDP (RFC 6337 says it
/// must not; the relay follows it), then its 2xx none: the relay stays where the early
/// media went. Before, the 2xx brought back the first 183's answer, and the relay with it.
#[test]
fn a_2xx_without_sdp_completes_the_last_reliable_answer_of_its_dialog() {
    let mut h = anchored();
    h.recv(PHONE, &invite_with_sdp("ra2", SDP));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    for (rseq, host) in [(1, "198.51.100.7"), (2, "198.51.100.8")] {
        let early = SDP.replace("192.0.2.10", host);
        let r183 = super::prack::reliable_183_from(&inv, "e1", rseq, "<sip:c@127.0.0.3>", &early);
        h.recv_msg(CARRIER_A, r183);
        let pr = h.one_request(CARRIER_A, Method::Prack);
        h.recv_msg(CARRIER_A, reply(&pr, 200, "e1", &[], None));
    }
    let moved = Some("198.51.100.8:4000".parse().unwrap());
    assert_eq!(h.relay_pairs()[0].b_remote, moved, "early media moved");
    h.take(PHONE);
    h.carrier_answers_bare(&inv, "e1");
    assert_eq!(h.relay_pairs()[0].b_remote, moved, "and stays there");
    assert!(h.cdrs.is_empty());
}

/// The phone asks for an offer (a re-INVITE without SDP) and the carrier's 200 offers its
/// audio and adds video while the pool is dry, or more streams than `max_streams`: only the
/// streams past what can be relayed are refused in the offer the phone gets (an offer in a
/// response cannot be refused with 488), the call's audio goes on. Before, every stream of
/// it was refused: the phone answered the audio with port 0 too and the call went silent.
#[test]
fn an_offer_in_a_response_past_the_pool_or_max_streams_keeps_the_calls_audio() {
    let m_lines = |b: &[u8]| -> Vec<String> {
        (String::from_utf8_lossy(b).lines())
            .filter(|l| l.starts_with("m="))
            .map(str::to_string)
            .collect()
    };
    for (case, extra) in [
        ("dry", "m=video 5006 RTP/AVP 96\r\n"),
        (
            "many",
            "m=video 5006 RTP/AVP 96\r\nm=video 5008 RTP/AVP 96\r\nm=audio 5010 RTP/AVP 0\r\nm=audio 5012 RTP/AVP 0\r\n",
        ),
    ] {
        let mut h = anchored();
        h.recv(PHONE, &invite_text(case, "z9hG4bKlo1", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        let ok = h.carrier_answers(&inv, "c", SDP);
        let tag = ok.to_tag().unwrap();
        h.recv(
            PHONE,
            &from_phone_in(case, "ACK", &tag, 1, "z9hG4bKlo1a", ""),
        );
        h.take(CARRIER_A);
        if case == "dry" {
            while h.core.env.pool.alloc_pairs(1).is_some() {}
        }
        h.recv(
            PHONE,
            &from_phone_in(case, "INVITE", &tag, 2, "z9hG4bKlo2", ""),
        );
        let re = h.one_request(CARRIER_A, Method::Invite);
        let offer = format!("{}{extra}", SDP.replace("o=- 1 1", "o=- 1 2"));
        h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&offer)));
        let to_phone = h.response_with(PHONE, 200, "the offer");
        let lines = m_lines(to_phone.body());
        assert!(!lines[0].starts_with("m=audio 0 "), "{case}: {lines:?}");
        let refused = lines
            .iter()
            .skip(1)
            .filter(|l| l.contains(" 0 RTP"))
            .count();
        // Dry, the video; else the fifth stream (past `max_streams`) and the two the test
        // pool has no ports for (it holds two streams' ports).
        let expected = if case == "dry" { 1 } else { 3 };
        assert_eq!(refused, expected, "{case}: {lines:?}");
        // The phone answers the audio, and the carrier's ACK carries it on a port.
        let answer = format!(
            "{}{}",
            SDP.replace("o=- 1 1", "o=- 1 2"),
            lines[1..]
                .iter()
                .map(|l| format!("{}\r\n", l.replacen(|c: char| c.is_ascii_digit(), "0", 1)))
                .collect::<String>()
        );
        h.recv(
            PHONE,
            &from_phone_in(case, "ACK", &tag, 2, "z9hG4bKlo2a", &answer),
        );
        let ack = h.one_request(CARRIER_A, Method::Ack);
        let acked = m_lines(ack.body());
        assert!(!acked[0].starts_with("m=audio 0 "), "{case}: {acked:?}");
        assert!(h.relay_pairs()[0].active, "{case}");
    }
}

/// A held call; the phone asks for an offer (a re-INVITE without SDP) to resume, the carrier
/// offers in a 183 (sendrecv, SRTP), then refuses the re-INVITE: the call is as it was, held
/// (timed by the hold timeout) and its stream plain RTP. Before, only the stream's addresses
/// went back: the relay was told the live call's 30 s timeout for a held call (released as
/// `rtp_timeout` 30 s later) and the stream stayed SRTP (not recorded, not repacketised).
#[test]
fn an_offer_in_a_183_to_a_failed_reinvite_without_sdp_changes_nothing() {
    let last = |h: &H| {
        h.media.iter().rev().find_map(|m| match m {
            MediaAction::Relay {
                rtp_timeout, pairs, ..
            } => Some((*rtp_timeout, pairs[0].kind, pairs[0].flowing)),
            _ => None,
        })
    };
    let mut h = with_hold_timeout();
    h.recv(PHONE, &invite_text("h183", "z9hG4bKh1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("h183", "ACK", &tag, 1, "z9hG4bKh1a", ""),
    );
    let hold = SDP
        .replace("o=- 1 1", "o=- 1 2")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(
        PHONE,
        &from_phone_in("h183", "INVITE", &tag, 2, "z9hG4bKh2", &hold),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    let held = SDP
        .replace("o=- 1 1", "o=- 1 2")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n");
    h.recv_msg(CARRIER_A, reply(&re, 200, "c", &[], Some(&held)));
    h.recv(
        PHONE,
        &from_phone_in("h183", "ACK", &tag, 2, "z9hG4bKh2a", ""),
    );
    let before = last(&h);
    assert_eq!(before.map(|b| b.0), Some(Some(Duration::from_secs(3600))));
    h.recv(
        PHONE,
        &from_phone_in("h183", "INVITE", &tag, 3, "z9hG4bKh3", ""),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    let offer = SDP.replace("o=- 1 1", "o=- 1 3").replace(
        "m=audio 4000 RTP/AVP 0\r\n",
        "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
    );
    h.recv_msg(CARRIER_A, reply(&re, 183, "c", &[], Some(&offer)));
    h.recv_msg(CARRIER_A, reply(&re, 500, "c", &[], None));
    assert_eq!(last(&h), before);
    assert_eq!(before.map(|b| b.1), Some(crate::media::StreamKind::Rtp));
}

/// The callee's SDP names its media host by name (RFC 8866 allows it; the relay does not
/// look names up): the call goes on, and its CDR says `media_no_address_callee`, once.
/// Before, nothing said why that leg had no audio.
#[test]
fn an_sdp_host_name_is_said_in_the_cdr() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("hn1", "z9hG4bKhn1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let named = SDP.replace("c=IN IP4 192.0.2.10", "c=IN IP4 media.carrier.example");
    let ok = h.carrier_answers(&inv, "c", &named);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("hn1", "ACK", &tag, 1, "z9hG4bKhn1a", ""),
    );
    h.recv(
        PHONE,
        &from_phone_in("hn1", "BYE", &tag, 2, "z9hG4bKhn1b", ""),
    );
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "c", &[], None));
    let cdr = h.cdrs.iter().find(|c| c.call_id == "hn1").unwrap();
    let said = cdr
        .events
        .iter()
        .filter(|e| *e == "media_no_address_callee")
        .count();
    assert_eq!(said, 1, "{:?}", cdr.events);
}

/// The phone's re-INVITE without SDP waits; meanwhile its UPDATE moves its media and the
/// carrier takes it; then the carrier offers in a 183 and refuses the re-INVITE: the relay
/// stays at the UPDATE's address. (Putting back the streams as they were before the
/// re-INVITE would undo the UPDATE the two legs agreed on.)
#[test]
fn an_update_agreed_while_a_reinvite_without_sdp_waits_survives_its_failure() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("up1", "z9hG4bKup1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("up1", "ACK", &tag, 1, "z9hG4bKup1a", ""),
    );
    h.take(CARRIER_A);
    h.recv(
        PHONE,
        &from_phone_in("up1", "INVITE", &tag, 2, "z9hG4bKup2", ""),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    let moved = SDP
        .replace("o=- 1 1", "o=- 1 2")
        .replace("m=audio 4000", "m=audio 4010");
    h.recv(
        PHONE,
        &from_phone_in("up1", "UPDATE", &tag, 3, "z9hG4bKup3", &moved),
    );
    let up = h.one_request(CARRIER_A, Method::Update);
    let answer = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv_msg(CARRIER_A, reply(&up, 200, "c", &[], Some(&answer)));
    let a_after_update = h.relay_pairs()[0].a_remote;
    assert_eq!(a_after_update.map(|a| a.port()), Some(4010));
    let offer = SDP.replace("o=- 1 1", "o=- 1 3");
    h.recv_msg(CARRIER_A, reply(&re, 183, "c", &[], Some(&offer)));
    h.recv_msg(CARRIER_A, reply(&re, 500, "c", &[], None));
    assert_eq!(h.relay_pairs()[0].a_remote, a_after_update);
}

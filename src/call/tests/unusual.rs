//! Calls that end or run in the less common ways: BYE in the early dialog, a peer that cannot
//! be reached, no RTP, a reload mid-call, a caller over TCP, recording file names, shutdown,
//! a callee that never answers our CANCEL.

use super::*;
use crate::media::MediaAction;

/// A provisional with a To tag from carrier-a, which makes the early dialogs.
fn early(h: &mut H) -> (Request, String) {
    h.recv(PHONE, &invite_text("e1", "z9hG4bKe1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "carrier1", &[], Some(SDP)));
    let ringing = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 183);
    let our_tag = ringing.and_then(|r| r.to_tag()).expect("183 with our tag");
    (inv, our_tag)
}

#[test]
fn bye_in_the_early_dialog_from_the_caller_cancels_the_call() {
    let mut h = H::new();
    let (inv, tag) = early(&mut h);
    let bye = in_dialog(
        "BYE",
        "sip:127.0.0.1",
        phone_from(),
        &format!("<sip:+8610123@127.0.0.1>;tag={tag}"),
        "e1",
        2,
        "z9hG4bKe1bye",
        "127.0.0.2:5060",
        "",
    );
    h.recv(PHONE, &bye);
    let mut statuses = h.statuses(PHONE);
    statuses.sort();
    assert_eq!(
        statuses,
        vec![200, 487],
        "200 to the BYE, 487 to the INVITE"
    );
    assert_eq!(h.take_requests(CARRIER_A, Method::Cancel).len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerCancel);
    assert_eq!(h.cdrs[0].status, 487);
    h.recv_msg(CARRIER_A, reply(&inv, 487, "carrier1", &[], None));
    assert_idle(&mut h);
}

#[test]
fn bye_in_the_early_dialog_from_the_callee_fails_the_call_with_480() {
    let mut h = H::new();
    let (inv, _) = early(&mut h);
    let our_from = inv.header(&Hdr::FROM).unwrap();
    let bye = in_dialog(
        "BYE",
        "sip:127.0.0.1",
        "<sip:+8610123@ims.example.com>;tag=carrier1",
        &our_from,
        &inv.call_id().unwrap(),
        1,
        "z9hG4bKe1cbye",
        "127.0.0.3:5060",
        "",
    );
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    assert_eq!(h.statuses(PHONE), vec![480]);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CalleeBye);
}

#[test]
fn a_transport_error_toward_the_first_peer_fails_over_to_the_next() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("t1", "z9hG4bKt1", "+8610123", ""));
    h.take(CARRIER_A);
    h.input(Input::SendFailed(h.txn_to(CARRIER_A)));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, reply(&inv_b, 486, "tb", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].egress_peer.as_deref(), Some("carrier-b"));
    assert!(
        h.cdrs[0]
            .events
            .contains(&"peer_transport_error".to_string())
    );
}

/// The carriers over TCP, the gateway listening on TCP too.
fn tcp_carriers() -> crate::config::Config {
    let mut cfg = config_with(|n, p| {
        if n.starts_with("carrier") {
            p.address.transport = Transport::Tcp;
        }
    });
    cfg.listen.push(crate::config::Listen {
        transport: Transport::Tcp,
        addr: "127.0.0.1:5060".parse().expect("an address"),
    });
    cfg
}

/// The TCP connection our INVITE went out on closed before anything answered (a trunk or
/// balancer closing the connection it held idle just as we wrote, a peer reset, a standby
/// taking over its address): the INVITE is sent once more, the same bytes, for a new
/// connection; lost again, it is taken as not delivered and the next peer is tried at once.
/// Answered (a 100 will do), the peer has it: its answers come on a new connection, and
/// nothing fails over. Before, both waited for Timer B (32 s); then, the first loss failed
/// the call over from a trunk that was up.
#[test]
fn a_lost_connection_resends_an_unanswered_invite_once_then_fails_over() {
    let mut h = H::with(tcp_carriers());
    h.recv(PHONE, &invite_text("cl1", "z9hG4bKcl1", "+8610123", ""));
    let first = h.take(CARRIER_A);
    assert_eq!(first.len(), 1);
    h.input(Input::ConnectionLost(h.txn_to(CARRIER_A)));
    let again = h.take(CARRIER_A);
    assert_eq!(again.len(), 1, "sent once more");
    assert_eq!(again[0].to_bytes(), first[0].to_bytes(), "the same request");
    assert!(h.take(CARRIER_B).is_empty(), "no failover yet");
    h.input(Input::ConnectionLost(h.txn_to(CARRIER_A)));
    assert!(h.take(CARRIER_A).is_empty(), "once only");
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);

    // The peer answers the one sent again: the call goes on with it.
    let mut h = H::with(tcp_carriers());
    h.recv(PHONE, &invite_text("cl3", "z9hG4bKcl3", "+8610123", ""));
    h.take(CARRIER_A);
    h.input(Input::ConnectionLost(h.txn_to(CARRIER_A)));
    let Some(Message::Request(inv)) = h.take(CARRIER_A).pop() else {
        panic!("sent once more");
    };
    h.carrier_answers(&inv, "ca3", SDP);
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    assert!(h.cdrs.is_empty(), "the call goes on");

    let mut h = H::with(tcp_carriers());
    h.recv(PHONE, &invite_text("cl2", "z9hG4bKcl2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 100, "", &[], None));
    h.input(Input::ConnectionLost(h.txn_to(CARRIER_A)));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    h.carrier_answers(&inv, "ca2", SDP);
    assert!(h.cdrs.is_empty(), "the call goes on");
}

#[test]
fn the_media_timeout_releases_only_answered_calls() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }));
    h.recv(PHONE, &invite_text("m1", "z9hG4bKm1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let call = h
        .media
        .iter()
        .find_map(|m| match m {
            MediaAction::Relay { call, .. } => Some(*call),
            _ => None,
        })
        .expect("an anchored call plans its relay");
    // Ringing: silence is normal.
    h.input(Input::MediaTimeout(call));
    assert!(h.cdrs.is_empty());
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    h.input(Input::MediaTimeout(call));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::RtpTimeout);
    assert_eq!(h.cdrs[0].cause, 102);
    // The caller's 2xx was still waiting for its ACK: the gateway ACKs the carrier and
    // hangs up its leg, and the caller's once its ACK comes (RFC 3261 §15).
    let to_carrier: Vec<Method> = h
        .requests_to(CARRIER_A)
        .iter()
        .map(|r| r.method())
        .collect();
    assert_eq!(to_carrier, vec![Method::Ack, Method::Bye]);
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("m1", "ACK", &tag, 1, "z9hG4bKm1ack", ""),
    );
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
}

#[test]
fn a_failed_relay_ends_the_call_whatever_its_phase() {
    let anchored = || {
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.anchor = true;
            }
        }))
    };
    let relay_of = |h: &H| {
        h.media
            .iter()
            .find_map(|m| match m {
                MediaAction::Relay { call, .. } => Some(*call),
                _ => None,
            })
            .expect("an anchored call plans its relay")
    };
    // Ringing: the caller gets 503, the carrier a CANCEL.
    let mut h = anchored();
    h.recv(PHONE, &invite_text("mf1", "z9hG4bKmf1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &[], None));
    let call = relay_of(&h);
    h.sent.clear();
    h.input(Input::MediaFailed(call));
    assert!(h.statuses(PHONE).contains(&503));
    assert_eq!(h.take_requests(CARRIER_A, Method::Cancel).len(), 1);
    h.recv_msg(CARRIER_A, reply(&inv, 487, "c1", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::MediaUnavailable);
    assert_eq!(h.cdrs[0].cause, 41);
    // Answered: both legs get BYE, not a call left without audio. The caller's waits for
    // its ACK of the 200, which goes on being sent until then (RFC 3261 §15); before, the
    // 200 stopped and the BYE went at once, so a caller whose 200 was lost answered 481.
    let mut h = anchored();
    h.recv(PHONE, &invite_text("mf2", "z9hG4bKmf2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let call = relay_of(&h);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    h.input(Input::MediaFailed(call));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::MediaUnavailable);
    assert!(h.take_requests(CARRIER_A, Method::Bye).len() == 1);
    assert!(
        h.take_requests(PHONE, Method::Bye).is_empty(),
        "not before its ACK"
    );
    h.advance(Duration::from_millis(600));
    assert_eq!(h.statuses(PHONE), vec![200], "the 200 goes on");
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("mf2", "ACK", &tag, 1, "z9hG4bKmf2ack", ""),
    );
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
}

#[test]
fn a_reload_changes_new_calls_but_not_the_calls_in_progress() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let reloaded = config_with(|n, p| {
        if n == "carrier-a" {
            p.ptime = Some(30);
        }
    });
    h.reload(Arc::new(reloaded));
    // The running call's re-INVITE toward carrier-a keeps the profile it started with.
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKr2", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(re.call_id(), inv.call_id());
    assert!(!String::from_utf8_lossy(re.body()).contains("a=ptime"));
    // A new call gets the reloaded profile.
    h.recv(PHONE, &invite_text("r2", "z9hG4bKr3", "+8610123", ""));
    let new = h.one_request(CARRIER_A, Method::Invite);
    assert!(String::from_utf8_lossy(new.body()).contains("a=ptime:30"));
}

/// Our 2xx to a caller over TCP is retransmitted until its ACK all the same (RFC 3261
/// §13.3.1.4: "independent of whatever transport protocols are used", since a hop beyond
/// the caller's connection may be UDP), and without one the ACK timeout ends the call.
/// Before, it was sent once over TCP: lost beyond the caller's SBC, the call died at 32 s.
#[test]
fn a_caller_over_tcp_gets_2xx_retransmissions_and_the_ack_timeout() {
    let mut h = H::new();
    h.recv_tcp(PHONE, &invite_text("tcp1", "z9hG4bKtcp1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.carrier_answers(&inv, "carrier1", SDP);
    h.take(PHONE);
    h.advance(Duration::from_millis(3600));
    let again = h.take_responses(PHONE);
    assert_eq!(again.len(), 3, "at 0.5, 1.5 and 3.5 s");
    assert!(again.iter().all(|r| r.status() == 200));
    h.advance(Duration::from_secs(30));
    assert_eq!(h.cdrs.len(), 1, "still no ACK after 64*T1");
    assert!(h.cdrs[0].events.contains(&"ack_timeout_caller".to_string()));
    // The caller is gone: its failure, not the gateway's.
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
}

/// The caller never ACKs and the callee, never ACKed either (its ACK waits for the
/// caller's), gives up on its 2xx first and sends BYE: still the caller's ACK timeout in the
/// CDR. Before, `callee_bye`, as likely as not (the callee's clock starts a transit earlier
/// than ours). A callee hanging up soon after answering stays `callee_bye`.
#[test]
fn a_callees_bye_at_its_own_ack_timeout_is_the_callers_ack_timeout() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("ackt", "z9hG4bKackt", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.carrier_answers(&inv, "carrier1", SDP);
    h.advance(Duration::from_millis(31_900));
    assert!(h.cdrs.is_empty());
    let bye = from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKcbye", "");
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
    assert!(h.cdrs[0].events.contains(&"ack_timeout_caller".to_string()));

    let mut h = H::new();
    h.recv(PHONE, &invite_text("ackq", "z9hG4bKackq", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.carrier_answers(&inv, "carrier1", SDP);
    h.advance(Duration::from_secs(2));
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKcbyq", ""),
    );
    assert_eq!(h.cdrs[0].call_tag, CallTag::CalleeBye);
}

/// The shell keeps open the TCP connections calls send on (`engine::tcp`'s idle timeout):
/// the core names them, a caller's connection among them while its call lasts, and none
/// after, nor a leg over UDP.
#[test]
fn a_calls_tcp_connection_is_named_while_the_call_lasts() {
    let mut h = H::new();
    h.recv_tcp(PHONE, &invite_text("tcp2", "z9hG4bKtcp2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.carrier_answers(&inv, "carrier1", SDP);
    let named: Vec<Target> = h.core.tcp_targets().collect();
    assert_eq!(
        named.len(),
        1,
        "the caller's leg, not the carrier's over UDP"
    );
    assert_eq!(named[0].conn, Some(crate::sip::ConnId(1)));
    h.advance(Duration::from_secs(40));
    assert_eq!(h.cdrs.len(), 1);
    h.advance(Duration::from_secs(40));
    assert_eq!(h.core.tcp_targets().count(), 0, "the call is gone");
}

/// A caller over TCP whose NAT rebound (or that reconnected) speaks in its dialog on a new
/// connection from another port: our requests follow it there (the BYE when the carrier
/// hangs up), and that connection is the one kept open. Before, the BYE went to the old
/// connection, gone, and a connection back to its Contact behind its NAT reached nothing:
/// the caller kept the call up.
#[test]
fn a_caller_that_reconnects_over_tcp_is_followed_to_its_new_connection() {
    let mut h = H::new();
    h.recv_tcp(PHONE, &invite_text("tcp3", "z9hG4bKtcp3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv_tcp(
        PHONE,
        &from_phone_in("tcp3", "ACK", &tag, 1, "z9hG4bKtcp3a", ""),
    );
    h.take(CARRIER_A);
    let moved = "127.0.0.2:40002";
    h.recv_tcp_on(
        moved,
        7,
        &from_phone_in("tcp3", "INFO", &tag, 2, "z9hG4bKtcp3i", ""),
    );
    let info = h.one_request(CARRIER_A, Method::Info);
    h.recv_msg(CARRIER_A, reply(&info, 200, "carrier1", &[], None));
    assert_eq!(h.statuses(moved), vec![200]);
    let named: Vec<Target> = h.core.tcp_targets().collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].conn, Some(crate::sip::ConnId(7)));
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKtcp3b", ""),
    );
    let bye: Vec<&(Target, Message)> = (h.sent.iter())
        .filter(|(_, m)| matches!(m, Message::Request(r) if r.method() == Method::Bye))
        .collect();
    assert_eq!(bye.len(), 1, "{:?}", h.sent);
    assert_eq!(bye[0].0.conn, Some(crate::sip::ConnId(7)));
}

/// The same when the caller's only message on its new connection is the ACK of our 2xx:
/// the carrier's BYE goes there. (The first version of the fix above moved the leg on
/// requests only.)
#[test]
fn a_caller_whose_ack_comes_on_a_new_tcp_connection_is_followed_there() {
    let mut h = H::new();
    h.recv_tcp(PHONE, &invite_text("tcp4", "z9hG4bKtcp4", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    let tag = ok.to_tag().unwrap();
    let moved = "127.0.0.2:40004";
    h.recv_tcp_on(
        moved,
        8,
        &from_phone_in("tcp4", "ACK", &tag, 1, "z9hG4bKtcp4a", ""),
    );
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKtcp4b", ""),
    );
    let bye = first_bye_target(&h, "the caller's BYE");
    assert_eq!(bye.conn, Some(crate::sip::ConnId(8)));
}

/// An INVITE the call no longer wants (the caller CANCELled before any provisional, so the
/// CANCEL waits for one) is not sent again when its connection closes: it fails, and no
/// callee is rung for a caller gone. A review of the resend found it.
#[test]
fn a_lost_connection_does_not_resend_an_invite_whose_caller_cancelled() {
    let mut h = H::with(tcp_carriers());
    h.recv(PHONE, &invite_text("cl4", "z9hG4bKcl4", "+8610123", ""));
    assert_eq!(h.take(CARRIER_A).len(), 1);
    h.recv(PHONE, &cancel_text("cl4", "z9hG4bKcl4"));
    h.input(Input::ConnectionLost(h.txn_to(CARRIER_A)));
    assert!(
        h.take_requests(CARRIER_A, Method::Invite).is_empty(),
        "not sent again"
    );
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
}

/// A phone behind NAT (its Via names a private address) calls over UDP from a port of its
/// NAT, and the carrier answers. `via` is the host its later messages' Via names; `at`, the
/// NAT's port they come from; the carrier's BYE then: where the gateway's BYE to the phone
/// went.
fn phone_bye_after_moving(call_id: &str, via: &str, at: &str, ack_only: bool) -> Target {
    let mut h = H::new();
    let natted = |text: String| {
        text.replace(
            "Via: SIP/2.0/UDP 127.0.0.2:5060",
            &format!("Via: SIP/2.0/UDP {via}"),
        )
    };
    let invite = natted(invite_text(
        call_id,
        &format!("z9hG4bK{call_id}"),
        "+8610123",
        "",
    ));
    h.recv("127.0.0.2:40010", &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let ok = h.response_with("127.0.0.2:40010", 200, "the phone's NAT gets the 200");
    let tag = ok.to_tag().unwrap();
    let ack = natted(from_phone_in(
        call_id,
        "ACK",
        &tag,
        1,
        &format!("z9hG4bK{call_id}a"),
        "",
    ));
    if ack_only {
        h.recv(at, &ack);
    } else {
        h.recv("127.0.0.2:40010", &ack);
        let info = natted(from_phone_in(
            call_id,
            "INFO",
            &tag,
            2,
            &format!("z9hG4bK{call_id}i"),
            "",
        ));
        h.recv(at, &info);
        let info = h.one_request(CARRIER_A, Method::Info);
        h.recv_msg(CARRIER_A, reply(&info, 200, "carrier1", &[], None));
        assert_eq!(
            h.statuses(at),
            vec![200],
            "the INFO's answer to where it came from"
        );
    }
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(
            &inv,
            "BYE",
            "carrier1",
            1,
            &format!("z9hG4bK{call_id}b"),
            "",
        ),
    );
    first_bye_target(&h, "the caller's BYE")
}

/// Where the first BYE the gateway sent went (`what` names it when there is none).
fn first_bye_target(h: &H, what: &str) -> Target {
    (h.sent.iter())
        .find(|(_, m)| matches!(m, Message::Request(r) if r.method() == Method::Bye))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("{what}"))
}

/// A phone behind NAT over UDP whose NAT gave it another port mid-call (its mapping timed
/// out and was made anew) speaks in its dialog from there: our requests follow it (the BYE
/// when the carrier hangs up), as they follow a TCP reconnect. So too when its only message
/// from the new port is the ACK. Before, the BYE went to the old port, which the NAT had
/// dropped or given to another host, and the phone kept the call up. A phone not behind NAT
/// (its Via names the address it sends from) keeps its first port: it may send from one
/// port and listen on another.
#[test]
fn a_natted_caller_over_udp_is_followed_to_its_nats_new_port() {
    let private = "192.168.1.20:5060";
    let moved = "127.0.0.2:40011";
    let to = |t: Target| t.addr.to_string();
    assert_eq!(
        to(phone_bye_after_moving("nat1", private, moved, false)),
        moved
    );
    assert_eq!(
        to(phone_bye_after_moving("nat2", private, moved, true)),
        moved
    );
    let public = "127.0.0.2:40010";
    assert_eq!(
        to(phone_bye_after_moving("nat3", public, moved, false)),
        "127.0.0.2:40010",
        "not behind NAT: kept"
    );
}

/// A carrier we reach at its configured address keeps it whatever port its requests in the
/// dialog come from, behind NAT or not (a port forward, an SBC sending from a port of its
/// own).
#[test]
fn a_leg_reached_at_its_configured_address_keeps_it() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("nat4", "z9hG4bKnat4", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("nat4", "ACK", &tag, 1, "z9hG4bKnat4a", ""),
    );
    h.take(CARRIER_A);
    let info = from_carrier_in(&inv, "INFO", "carrier1", 1, "z9hG4bKnat4i", "").replace(
        "Via: SIP/2.0/UDP 127.0.0.3:5060",
        "Via: SIP/2.0/UDP 10.0.0.3:5060",
    );
    assert!(info.contains("10.0.0.3"), "{info}");
    h.recv("127.0.0.3:40020", &info);
    let info = h.one_request(PHONE, Method::Info);
    h.recv_msg(PHONE, reply(&info, 200, "", &[], None));
    h.recv(
        PHONE,
        &from_phone_in("nat4", "BYE", &tag, 2, "z9hG4bKnat4b", ""),
    );
    let bye = first_bye_target(&h, "the carrier's BYE");
    assert_eq!(bye.addr.to_string(), CARRIER_A);
}

#[test]
fn recordings_are_named_by_day_time_and_call_id() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
            p.record = true;
        }
    }));
    h.recv(
        PHONE,
        &invite_text("rec/1@127.0.0.2", "z9hG4bKrec1", "+8610123", ""),
    );
    let spec = h
        .media
        .iter()
        .find_map(|m| match m {
            MediaAction::Relay { record, .. } => record.clone(),
            _ => None,
        })
        .expect("a recorded call asks for its recording");
    // The harness clock starts at the Unix epoch: 1970-01-01 at 00:00:00.000; a token of 8
    // hex digits makes the name the call's own.
    let path = spec.path.to_string_lossy().into_owned();
    let prefix = "/tmp/trunkgate-test-recordings/1970-01-01/000000000-rec_1_127.0.0.2-";
    let token = path
        .strip_prefix(prefix)
        .and_then(|t| t.strip_suffix(".wav"))
        .unwrap_or_else(|| panic!("{path}"));
    assert!(
        token.len() == 8 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{path}"
    );
    assert!(spec.stereo);
    // A call at the same instant whose Call-ID reads alike gets a file of its own.
    h.recv(
        PHONE,
        &invite_text("rec_1@127.0.0.2", "z9hG4bKrec2", "+8610123", ""),
    );
    let other = h
        .media
        .iter()
        .filter_map(|m| match m {
            MediaAction::Relay { record, .. } => record.clone(),
            _ => None,
        })
        .map(|r| r.path)
        .find(|p| *p != spec.path)
        .expect("the second call's recording has another name");
    assert!(other.to_string_lossy().starts_with(prefix), "{other:?}");
}

/// Shutdown's hang-up in turns (`hang_up_some`): each turn hangs up at most so many of the
/// calls up when it began, oldest first, and says whether some are left.
#[test]
fn shutdown_hangs_up_calls_in_turns_oldest_first() {
    let mut h = H::new();
    for n in 0..3 {
        let id = format!("turn-{n}");
        h.recv(
            PHONE,
            &invite_text(&id, &format!("z9hG4bKturn{n}"), "+8610123", ""),
        );
    }
    h.take(CARRIER_A);
    h.take(PHONE);
    h.input(Input::Drain);
    assert!(h.core.hang_up_some(h.now, 2), "one left");
    h.apply();
    let ids: Vec<&str> = h.cdrs.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, ["turn-0", "turn-1"]);
    assert!(!h.core.hang_up_some(h.now, 2), "none left");
    h.apply();
    assert_eq!(h.cdrs.len(), 3);
    assert_eq!(h.cdrs[2].call_id, "turn-2");
    assert!(h.cdrs.iter().all(|c| c.call_tag == CallTag::Shutdown));
}

#[test]
fn shutdown_releases_calls_with_cdrs() {
    let mut h = H::new();
    answered_call(&mut h);
    h.recv(PHONE, &invite_text("c18", "z9hG4bKc18", "+8610123", ""));
    h.take(CARRIER_A);
    h.take(PHONE);
    h.input(Input::Drain);
    assert_eq!(h.core.active_calls(), 2);
    h.recv(PHONE, &invite_text("c19", "z9hG4bKc19", "+8610123", ""));
    let refused = h.take_responses(PHONE);
    assert_eq!(
        refused.iter().map(|r| r.status()).collect::<Vec<_>>(),
        [503]
    );
    // The front and carriers try elsewhere for that long (README: `[shutdown] drain_s`).
    assert_eq!(refused[0].header(&Hdr::RETRY_AFTER).as_deref(), Some("30"));
    // A ping while draining is answered 503 too, with the same Retry-After.
    let options = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKdr1\r\nMax-Forwards: 70\r\nFrom: <sip:ping@127.0.0.2>;tag=d1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: drain-ping\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.recv(PHONE, options);
    let pong = h.take_responses(PHONE);
    assert_eq!(pong.iter().map(|r| r.status()).collect::<Vec<_>>(), [503]);
    assert_eq!(pong[0].header(&Hdr::RETRY_AFTER).as_deref(), Some("30"));
    h.input(Input::HangUpAll);
    let tags: Vec<CallTag> = h.cdrs.iter().map(|c| c.call_tag).collect();
    assert_eq!(tags, vec![CallTag::Shutdown; 3]);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
    // A call answered whose caller has not ACKed yet: at shutdown its BYE goes at once
    // (the process will not be there when the ACK comes), not held for the ACK.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c21", "z9hG4bKc21", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.carrier_answers(&inv, "carrier1", SDP);
    h.input(Input::HangUpAll);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::Shutdown);
}

#[test]
fn cancel_never_answered_is_given_up_without_leaks() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c20", "z9hG4bKc20", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t20", &[], None));
    h.recv(PHONE, "CANCEL sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKc20;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: c20\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
    // The carrier answers neither the CANCEL nor the INVITE, ever.
    assert_eq!(h.cdrs.len(), 1);
    h.advance(Duration::from_secs(120));
    let s = h.core.stats();
    assert_eq!(s.calls, 0, "{s:?}");
    assert_eq!((s.client_txns, s.server_txns), (0, 0), "{s:?}");
    assert_eq!((s.txn_owners, h.core.timers_armed()), (0, 0), "{s:?}");
}

// ---------------------------------------------------------------- interop profiles

/// A callee's failure whose reason phrase holds a NUL (the parser takes one there, the
/// response builder does not): the caller gets the status, the NUL a space, and nothing of
/// the call stays. (Before, the caller got 502.) A header holding one is not carried.
#[test]
fn a_failure_with_control_characters_still_answers_the_caller() {
    let mut h = H::new();
    let (inv, _) = early(&mut h);
    let Message::Response(busy) = reply(&inv, 486, "carrier1", &[], None) else {
        unreachable!()
    };
    let text = String::from_utf8_lossy(&busy.to_bytes())
        .replace("Busy Here", "Busy\0Here")
        .replace(
            "Content-Length:",
            "Reason: Q.850;cause=17;text=\"a\u{1b}b\"\r\nContent-Length:",
        );
    h.recv(CARRIER_A, &text);
    let r = h.response_with(PHONE, 486, "the status goes on");
    assert_eq!(r.reason(), "Busy Here");
    assert!(!r.to_bytes().iter().any(|&b| b == 0 || b == 0x1b));
    // The ACK for the callee's 486 went out (its transaction's own).
    assert_idle(&mut h);
}

#[test]
fn an_escaped_nul_in_the_callers_identity_does_not_fail_the_call() {
    let mut h = H::new();
    // RFC 4475 §3.1.1.2: a NUL may come escaped in a quoted string.
    let inv = invite_text("nul-1", "z9hG4bKnul1", "+8610123", "")
        .replace("From: \"Alice\"", "From: \"Al\\\u{0}ice\"")
        .replace(
            "P-Asserted-Identity: \"Alice\"",
            "P-Asserted-Identity: \"Al\\\u{0}ice\"",
        )
        // A raw NUL and ESC in a header carried end to end: it is not carried.
        .replace(
            "Max-Forwards:",
            "Subject: hi\u{0}X-Evil: 1\u{1b}\r\nMax-Forwards:",
        );
    assert!(inv.contains('\u{0}'));
    h.recv(PHONE, &inv);
    let out = h.one_request(CARRIER_A, Method::Invite);
    let from = out.header(&Hdr::FROM).unwrap();
    assert!(from.starts_with("\"Alice\" <"), "{from}");
    assert!(!out.to_bytes().contains(&0), "no NUL leaves the gateway");
    assert!(!out.to_bytes().contains(&0x1b));
    assert!(out.header(&Hdr::named("Subject")).is_none());
}

#[test]
fn an_escaped_nul_in_a_bye_reason_or_an_answer_identity_does_not_break_the_call() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("nul-2", "z9hG4bKnul2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    // The carrier's 200 names an identity with an escaped NUL (written out by hand: our
    // own builder refuses one).
    let Message::Response(ok) = reply(
        &inv,
        200,
        "c1",
        &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
        Some(SDP),
    ) else {
        unreachable!()
    };
    let text = String::from_utf8(ok.to_bytes().to_vec()).unwrap().replacen(
        "\r\n",
        "\r\nP-Asserted-Identity: \"Bo\\\u{0}b\" <sip:+8610123@127.0.0.3>\r\n",
        1,
    );
    h.recv(CARRIER_A, &text);
    let ok = h.response_with(PHONE, 200, "the phone gets the answer");
    assert!(!ok.to_bytes().contains(&0));
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("nul-2", "ACK", &tag, 1, "z9hG4bKnul2a", ""),
    );
    // The phone hangs up with a Reason carrying one too: the carrier still gets its BYE.
    let bye = from_phone_in("nul-2", "BYE", &tag, 2, "z9hG4bKnul2b", "").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nReason: Q.850;cause=16;text=\"a\\\u{0}b\"\r\n",
    );
    h.recv(PHONE, &bye);
    let out = h.one_request(CARRIER_A, Method::Bye);
    assert!(!out.to_bytes().contains(&0));
    assert_eq!(h.cdrs.len(), 1);
}

/// Only the calls up at a reload that moves a peer keep its old addresses heard: calls
/// begun after it do not, so on a busy gateway the old addresses are forgotten when the
/// last call from before the reload ends, not when the gateway is next idle.
#[test]
fn calls_begun_after_a_reload_that_moves_a_peer_do_not_keep_its_old_addresses_heard() {
    let mut h = H::new();
    let (inv, _) = answered_call(&mut h);
    h.reload(Arc::new(config_with(|n, p| {
        if n == "carrier-b" {
            p.matches = vec!["192.0.2.0/24".parse().unwrap()];
        }
    })));
    assert!(h.core.peers_moved());
    // A call placed after the reload, left ringing.
    h.recv(
        PHONE,
        &invite_text("after@127.0.0.2", "z9hG4bKafter", "+8610123", ""),
    );
    h.one_request(CARRIER_A, Method::Invite);
    let bye = from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKmvb", "");
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    h.take_requests(PHONE, Method::Bye);
    h.advance(Duration::from_secs(45));
    assert_eq!(
        h.core.active_calls(),
        1,
        "the call placed after the reload rings on"
    );
    assert!(
        !h.core.peers_moved(),
        "the calls from before the reload are over"
    );
}

/// Each reload that moves a peer is counted apart: the one whose calls have all ended is
/// forgotten (the shell forgets its old addresses with it) while a later one's calls are
/// still up. Before, only the latest reload was counted, and the addresses of every
/// earlier one were kept as long as its calls.
#[test]
fn each_reload_that_moves_a_peer_is_forgotten_with_its_own_calls() {
    let mut h = H::new();
    let (inv, _) = answered_call(&mut h);
    let moved = |net: &'static str| {
        Arc::new(config_with(move |n, p| {
            if n == "carrier-b" {
                p.matches = vec![net.parse().unwrap()];
            }
        }))
    };
    h.reload(moved("192.0.2.0/24"));
    h.recv(
        PHONE,
        &invite_text("after@127.0.0.2", "z9hG4bKafter", "+8610123", ""),
    );
    // It rings (no failover to the moved peer once carrier-a's INVITE times out).
    let inv2 = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv2, 180, "c2", &[], None));
    h.reload(moved("198.51.100.0/24"));
    let first = h.core.moved_since();
    assert!(first.is_some());
    let bye = from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKmvc", "");
    h.recv(CARRIER_A, &bye);
    h.advance(Duration::from_secs(45));
    assert_eq!(h.core.active_calls(), 1, "the second call rings on");
    assert!(
        h.core.moved_since() > first,
        "the first reload's call is over, the second's rings"
    );
    assert!(h.core.peers_moved());
}

/// A call ringing at a peer with two servers (its `match` holds both) hears its answer from
/// the other one after a reload that took that server out of the peer's `match`: the call
/// began with it. Before, the answer matched no transaction (the same-peer check read the
/// new configuration only) and was dropped: the callee answered into silence, the caller
/// rang until it gave up.
#[test]
fn a_reload_that_moves_a_peer_still_lets_its_other_server_answer_a_call_up() {
    let two_servers = |both: bool| {
        Arc::new(config_with(move |n, p| {
            if n == "carrier-a" {
                p.matches = vec!["127.0.0.3/32".parse().unwrap()];
                if both {
                    p.matches.push("127.0.0.30/32".parse().unwrap());
                }
            }
        }))
    };
    let mut h = H::with((*two_servers(true)).clone());
    h.recv(
        PHONE,
        &invite_text("two@127.0.0.2", "z9hG4bKtwo", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.take(PHONE);
    h.reload(two_servers(false));
    h.recv_msg("127.0.0.30:5060", reply(&inv, 200, "c30", &[], Some(SDP)));
    h.response_with(PHONE, 200, "the answer from the peer's other server");
}

/// A reload that re-addresses (or removes) a peer does not cut the calls already up off
/// from it: a request in its call's dialog, from an address the call's own profile matched,
/// is still heard, and so is the caller's CANCEL of a call still ringing. A stranger with
/// the same identifiers from elsewhere is not.
#[test]
fn a_reload_that_moves_a_peer_still_lets_its_calls_in_progress_be_ended_from_it() {
    let moved = || {
        Arc::new(config_with(|n, p| {
            if n == "carrier-a" || n == "pbx" {
                p.matches = vec!["192.0.2.0/24".parse().unwrap()];
            }
        }))
    };
    let mut h = H::new();
    let (inv, _) = answered_call(&mut h);
    h.reload(moved());
    let bye = from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKmv1", "");
    h.recv("127.0.0.9:5060", &bye);
    assert!(
        h.sent.is_empty() && h.cdrs.is_empty(),
        "a stranger is not heard"
    );
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CalleeBye);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
    // Once those calls are gone, strangers are strangers again without a lookup.
    assert!(h.core.peers_moved());
    h.advance(Duration::from_secs(64));
    assert_eq!(h.core.active_calls(), 0);
    assert!(!h.core.peers_moved());
    // Moving the peers back with no call up, then a reload that moves none, never asks.
    h.reload(Arc::new(config()));
    answered_call(&mut h);
    h.reload(Arc::new(config()));
    assert!(!h.core.peers_moved());

    // A call ringing when the PBX was moved: its CANCEL still ends it.
    let mut h = H::new();
    let invite = invite_text("mv2", "z9hG4bKmv2", "+8610123", "");
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c9", &[], None));
    h.take(PHONE);
    h.reload(moved());
    let cancel = invite
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.recv(PHONE, &cancel);
    let mut st = h.statuses(PHONE);
    st.sort_unstable();
    assert_eq!(st, vec![200, 487]);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerCancel);
}

#[test]
fn a_require_that_is_no_token_gets_400_and_leaves_no_transaction() {
    // Found by core_dialog (F8): its bytes went back in the 420's Unsupported, the 420 could
    // not be built, and the INVITE's server transaction stayed unanswered for ever.
    let mut h = H::new();
    let invite = invite_text(
        "f8@127.0.0.2",
        "z9hG4bKf8",
        "+8610123",
        "Require: 100r\u{db}\u{1}\u{0}\u{0}: 1\r\n",
    );
    h.recv(PHONE, &invite);
    let finals = h.failures(PHONE);
    assert_eq!(finals, vec![400]);
    assert!(h.take(CARRIER_A).is_empty(), "no call was placed");
    h.advance(Duration::from_secs(40));
    assert_idle(&mut h);
}

/// A callee that answers with a 2xx without a To tag (RFC 2543; RFC 3261 §12.1.2 keeps its
/// dialog, with a null remote tag): its dialog is the call's all the same, so a re-INVITE
/// of the phone's reaches it and the phone's BYE ends it there. Before, the call was up
/// but nothing could go to the callee: each request got 491, and the BYE was never sent,
/// so the carrier billed a call the gateway had ended.
#[test]
fn a_callee_answering_without_a_to_tag_gets_requests_and_its_bye() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKnt1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, tagless_answer(&inv));
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKnt1a", ""));
    let _ = h.take_requests(CARRIER_A, Method::Ack);
    let hold = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKnt1r", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert!(h.statuses(PHONE).iter().all(|s| *s != 491));
    h.recv_msg(CARRIER_A, tagless_answer(&re));
    h.take_responses(PHONE);
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKnt1b", ""));
    h.recv(PHONE, &phone_bye(&tag, 3, "z9hG4bKnt1y"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.to_tag(), None);
    assert_eq!(h.cdrs.len(), 1);
}

/// The callee's 2xx to `req` without a To tag (RFC 2543).
fn tagless_answer(req: &Request) -> Message {
    tagless_2xx(req, "<sip:c@127.0.0.3>", SDP)
}

/// The tagless callee answered while the caller's reliable 183 waits for its PRACK (the
/// 2xx is held), and the caller gives up: the callee's dialog is confirmed all the same and
/// gets its ACK and BYE. Before, the call ending "unanswered" (its 2xx never reached the
/// caller) sent the tagless callee no BYE: the carrier billed on.
#[test]
fn a_tagless_callee_whose_answer_was_held_gets_its_bye() {
    let mut h = H::new();
    h.recv(PHONE, &super::prack::invite_100rel("tl1", "z9hG4bKtl1"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let mut ringing = Response::to_request(&inv, 183, "Session Progress", None).unwrap();
    ringing
        .set_body(Bytes::from(SDP), Some("application/sdp"))
        .unwrap();
    h.recv_msg(CARRIER_A, Message::Response(ringing));
    h.recv_msg(CARRIER_A, tagless_answer(&inv));
    let st = h.statuses(PHONE);
    assert!(st.contains(&183) && !st.contains(&200), "{st:?}");
    let cancel = super::prack::invite_100rel("tl1", "z9hG4bKtl1")
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.recv(PHONE, &cancel);
    let to_carrier: Vec<Method> = (h.requests_to(CARRIER_A).iter())
        .map(|r| r.method())
        .collect();
    assert_eq!(to_carrier, vec![Method::Ack, Method::Bye]);
}

/// A dialog answered without a tag is the tagless peer's alone: a BYE from the carrier's
/// address with a From tag (another fork's dialog, or a forgery) gets 481 and the call
/// goes on; the tagless peer's own BYE ends it. Before, any From tag matched it.
#[test]
fn a_tagless_dialog_takes_no_request_with_a_tag() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKtl2", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, tagless_answer(&inv));
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKtl2a", ""));
    h.take(CARRIER_A);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "fork2", 1, "z9hG4bKtl2b", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), vec![481]);
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    assert!(h.cdrs.is_empty());
    let tagless_bye =
        from_carrier_in(&inv, "BYE", "x", 1, "z9hG4bKtl2c", "").replace(">;tag=x", ">");
    h.recv(CARRIER_A, &tagless_bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    h.one_request(PHONE, Method::Bye);
    assert_eq!(h.cdrs.len(), 1);
}

/// A caller whose From has no tag (RFC 2543): its dialog's remote tag is null (RFC 3261
/// §12.1.1), so a request from its address carrying a From tag is not in it (481), and its
/// own tagless BYE ends the call. Before, any From tag matched a caller's tagless dialog.
#[test]
fn a_tagless_callers_dialog_takes_no_request_with_a_tag() {
    let mut h = H::new();
    let untagged = |msg: String| msg.replace(">;tag=alice1\r\n", ">\r\n");
    h.recv(
        PHONE,
        &untagged(invite_text(
            "call-1@127.0.0.2",
            "z9hG4bKtl3",
            "+8610123",
            "",
        )),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c3", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &untagged(from_phone("ACK", &tag, 1, "z9hG4bKtl3a", "")),
    );
    h.take(CARRIER_A);
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKtl3b"));
    assert_eq!(h.statuses(PHONE), vec![481]);
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    h.recv(PHONE, &untagged(phone_bye(&tag, 3, "z9hG4bKtl3c")));
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(h.cdrs.len(), 1);
}

/// The transaction of the caller's INVITE: the last one something went to the phone in.
fn callers_txn(h: &H) -> crate::txn::TxnId {
    h.txns
        .iter()
        .rev()
        .find(|(to, _)| *to == addr(PHONE))
        .map(|(_, t)| *t)
        .expect("an answer went to the caller in its INVITE's transaction")
}

/// The call's one CDR says the caller could not be reached.
fn assert_caller_unreachable(h: &H) {
    assert_eq!(h.cdrs.len(), 1);
    let cdr = &h.cdrs[0];
    assert_eq!(cdr.call_tag, CallTag::PeerUnreachable);
    assert_eq!(cdr.cause, 41);
    assert!(
        cdr.events.contains(&"caller_unreachable".to_string()),
        "{:?}",
        cdr.events
    );
}

/// Our answer to the caller's INVITE cannot be sent (its TCP connection gone, none to be
/// opened): the callee is cancelled rather than left to ring, be answered and billed, and
/// the CDR says who could not be reached.
#[test]
fn a_caller_that_cannot_be_reached_ends_its_ringing_call() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("u1", "z9hG4bKu1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "carrier1", &[], None));
    let caller = callers_txn(&h);
    h.take(PHONE);
    h.input(Input::SendFailed(caller));
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(cancel.cseq().map(|c| c.0), inv.cseq().map(|c| c.0));
    h.recv_msg(CARRIER_A, reply(&cancel, 200, "carrier1", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 487, "carrier1", &[], None));
    assert_caller_unreachable(&h);
    assert!(
        h.take(PHONE).is_empty(),
        "nothing more is sent to the caller"
    );
}

/// Our 2xx cannot reach the caller (its TCP connection gone, none to be opened): the
/// callee gets its ACK and BYE at once, and the CDR says who could not be reached. Before,
/// the answered callee was held, and a carrier's call paid for, until the ACK timeout 32 s
/// later. Also when the failure comes after the 2xx was sent again (over TCP too): it comes
/// when opening a connection back failed (its connect timeout, or an RST), by when a caller
/// that had the first 2xx would have ACKed over a connection of its own.
#[test]
fn a_caller_our_2xx_cannot_reach_is_hung_up_at_once() {
    for sent_again in [false, true] {
        let mut h = H::new();
        h.recv_tcp(PHONE, &invite_text("u2", "z9hG4bKu2", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        h.carrier_answers(&inv, "carrier1", SDP);
        let caller = callers_txn(&h);
        if sent_again {
            h.advance(std::time::Duration::from_millis(600));
        }
        h.take(CARRIER_A);
        h.input(Input::SendFailed(caller));
        let sent: Vec<Method> = h
            .requests_to(CARRIER_A)
            .iter()
            .map(|r| r.method())
            .collect();
        assert_eq!(sent, [Method::Ack, Method::Bye], "sent again: {sent_again}");
        assert_caller_unreachable(&h);
        // Our 2xx goes out no more, and the caller, without it, gets no BYE.
        h.take(PHONE);
        h.advance(std::time::Duration::from_secs(40));
        assert!(h.take(PHONE).is_empty());
        assert_eq!(h.cdrs.len(), 1);
    }
}

/// A carrier's 2xx from another of its addresses (its profile matches both: an SBC pair,
/// one answering for the other) is the call's: ACKed and passed on. Before, it was a
/// stray, never ACKed, and the caller rang on.
#[test]
fn a_2xx_from_another_address_of_the_same_peer_is_taken() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.matches.push("127.0.0.33/32".parse().unwrap());
        }
    }));
    h.recv(PHONE, &invite_text("sb1", "z9hG4bKsb1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.take(PHONE);
    h.recv_msg(
        "127.0.0.33:5060",
        reply(
            &inv,
            200,
            "sbc2",
            &[(Hdr::CONTACT, "<sip:sbc2@127.0.0.33>")],
            Some(SDP),
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![200]);
    // Not from an address of another peer's.
    let mut h = H::new();
    h.recv(PHONE, &invite_text("sb2", "z9hG4bKsb2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.take(PHONE);
    h.recv_msg(CARRIER_B, reply(&inv, 200, "other", &[], Some(SDP)));
    assert!(h.statuses(PHONE).is_empty());
}

/// Forty reliable provisionals from a peer that was never offered 100rel are one
/// `peer_forced_100rel` event, not forty filling the CDR's events.
#[test]
fn a_forced_100rel_is_one_event_a_call() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.prack.mode = crate::interop::prack::PrackMode::Disabled;
        }
    }));
    h.recv(PHONE, &invite_text("fr1", "z9hG4bKfr1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    for rseq in 1..=40u32 {
        h.recv_msg(
            CARRIER_A,
            super::prack::reliable_183_from(&inv, "fr", rseq, "<sip:c@127.0.0.3>", SDP),
        );
        if let Some(pr) = h.take_requests(CARRIER_A, Method::Prack).pop() {
            h.recv_msg(CARRIER_A, reply(&pr, 200, "fr", &[], None));
        }
    }
    h.recv_msg(CARRIER_A, reply(&inv, 486, "fr", &[], None));
    let forced = h.cdrs[0]
        .events
        .iter()
        .filter(|e| *e == "peer_forced_100rel")
        .count();
    assert_eq!(forced, 1, "{:?}", h.cdrs[0].events);
}

/// A trunk's SBC that we send calls to (`address`) but that its `match` leaves out: a
/// request in one of its calls' dialogs from there is that peer's (profiles/README.md), so
/// its BYE ends the call. Before, it was a stranger's: dropped (or 403), and the call stayed
/// up until the caller hung up. Another peer's address with the same identifiers, or a new
/// call from there, is still not heard.
#[test]
fn a_request_in_a_call_from_its_peers_address_outside_match_is_heard() {
    let mut h = H::with(config_with(matching_outside_their_addresses));
    let (inv, _) = answered_call(&mut h);
    carrier_bye_heard_only_from_its_address(&mut h, &inv, "z9hG4bKaddr1");
    // A call from there is still a stranger's.
    h.recv(
        CARRIER_A,
        &invite_text("new@127.0.0.3", "z9hG4bKaddr2", "+8610123", ""),
    );
    assert!(h.take(PHONE).is_empty(), "not routed");
    assert_eq!(h.core.active_calls(), 0);
}

/// The same for a call the trunk placed from one of its hosts in `match`: its BYE from the
/// SBC at its `address` (outside `match`) ends the call. Before, only the host the call came
/// from and `match` were heard in that leg's dialog: the BYE got 481 and the phone's leg
/// stayed up.
#[test]
fn a_bye_from_a_peers_address_ends_a_call_one_of_its_hosts_placed() {
    let mut h = H::with(config_with(matching_outside_their_addresses));
    h.recv(
        "192.0.2.10:5060",
        &invite_text("in-sbc", "z9hG4bKinsbc", "1000", ""),
    );
    let inv = h.one_request(PHONE, Method::Invite);
    h.recv_msg(
        PHONE,
        reply(
            &inv,
            200,
            "ph1",
            &[(Hdr::CONTACT, "<sip:1000@127.0.0.2>")],
            Some(SDP),
        ),
    );
    let ok = h.response_with("192.0.2.10:5060", 200, "answered");
    let tag = ok.to_tag().unwrap();
    let bye = in_dialog(
        "BYE",
        "sip:127.0.0.1",
        phone_from(),
        &format!("<sip:1000@127.0.0.1>;tag={tag}"),
        "in-sbc",
        2,
        "z9hG4bKinsbcbye",
        "127.0.0.3:5060",
        "",
    );
    h.recv(CARRIER_B, &bye);
    assert!(h.cdrs.is_empty(), "another peer's address");
    h.take(CARRIER_B);
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerBye);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
}

/// A reload that gives a peer another `address` (its `match` unchanged) leaves the calls up
/// with it able to be ended from the old one, as a reload that moves its `match` does: the
/// carrier's SBC we sent the call to hangs it up. Before, only `match` changes counted, and
/// the BYE from the old address was a stranger's.
#[test]
fn a_reload_that_readdresses_a_peer_still_hears_its_calls_from_the_old_address() {
    let mut h = H::with(config_with(matching_outside_their_addresses));
    let (inv, _) = answered_call(&mut h);
    h.reload(Arc::new(config_with(|n, p| {
        matching_outside_their_addresses(n, p);
        if n == "carrier-a" {
            p.address = Target::udp(addr("127.0.0.9:5060"));
        }
    })));
    assert!(h.core.peers_moved());
    carrier_bye_heard_only_from_its_address(&mut h, &inv, "z9hG4bKreaddr");
}

/// The carriers' `match` leaves out their own addresses (127.0.0.3 and .4).
fn matching_outside_their_addresses(n: &str, p: &mut crate::config::Profile) {
    match n {
        "carrier-a" => p.matches = vec!["192.0.2.0/25".parse().unwrap()],
        "carrier-b" => p.matches = vec!["192.0.2.128/25".parse().unwrap()],
        _ => {}
    }
}

/// carrier-a's BYE in the call of our INVITE `inv`: from carrier-b's address it is not
/// heard; from carrier-a's it ends the call.
fn carrier_bye_heard_only_from_its_address(h: &mut H, inv: &Request, branch: &str) {
    let bye = from_carrier_in(inv, "BYE", "carrier1", 1, branch, "");
    h.recv(CARRIER_B, &bye);
    assert!(
        h.sent.is_empty() && h.cdrs.is_empty(),
        "another peer's address"
    );
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CalleeBye);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
}

/// A request in a dialog is heard whatever its Date says (RFC 4475 §3.1.2.12: only a Date
/// that matters may be refused), and a Date that is no RFC 1123 date in GMT is not copied
/// on: the carrier's INFO reaches the phone without it (with a GMT one, with it), its BYE
/// dated in EST ends the call on both legs. Before, both got 400 and the phone's leg stayed
/// up.
#[test]
fn a_request_in_a_dialog_with_a_date_outside_gmt_is_heard_and_its_date_left_behind() {
    let mut h = H::new();
    let (inv, _) = answered_call(&mut h);
    let dated = |method: &str, cseq: u32, date: &str| {
        from_carrier_in(
            &inv,
            method,
            "carrier1",
            cseq,
            &format!("z9hG4bKd{cseq}"),
            "",
        )
        .replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\nDate: {date}\r\n"),
            1,
        )
    };
    let gmt = "Fri, 01 Jan 2010 16:00:00 GMT";
    for (cseq, date, copied) in [
        (1, gmt, Some(gmt)),
        (2, "Fri, 01 Jan 2010 16:00:00 EST", None),
    ] {
        h.recv(CARRIER_A, &dated("INFO", cseq, date));
        let out = h.one_request(PHONE, Method::Info);
        assert_eq!(out.header(&Hdr::named("Date")).as_deref(), copied);
    }
    h.recv(CARRIER_A, &dated("BYE", 3, "Fri, 01 Jan 2010 16:00:00 EST"));
    assert_eq!(
        h.statuses(CARRIER_A),
        vec![200, 487, 487],
        "the BYE's 200; the INFOs the phone left unanswered end with the call"
    );
    h.one_request(PHONE, Method::Bye);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CalleeBye);
}

/// A Content-Type parameter holding a control character does not cross to the other leg:
/// with an ESC the INVITE went on carrying it (the SDP still read and anchored), with a NUL
/// the INVITE toward the carrier could not be built and the call failed. Now the parameter
/// stays behind and the call goes on.
#[test]
fn a_content_type_parameter_holding_a_control_character_stays_on_its_leg() {
    for (i, ctl) in ["\u{1b}", "\u{0}"].into_iter().enumerate() {
        let mut h = H::new();
        let invite = invite_text(
            &format!("ctl{i}"),
            &format!("z9hG4bKctl{i}"),
            "+8610123",
            "",
        )
        .replace(
            "Content-Type: application/sdp\r\n",
            &format!("Content-Type: application/sdp;x=a{ctl};charset=utf-8\r\n"),
        );
        h.recv(PHONE, &invite);
        let out = h.one_request(CARRIER_A, Method::Invite);
        assert_eq!(
            out.header(&Hdr::CONTENT_TYPE).as_deref(),
            Some("application/sdp;charset=utf-8"),
            "{ctl:?}"
        );
        assert!(!out.body().is_empty());
    }
}

/// A callee's Q.850 cause whose text holds a control character is still its cause: the
/// caller is told 34 (the text cleaned, as the gateway writes Reason values) and the CDR
/// says 34 from the Reason. Before, the whole line was dropped and the table's 17 told.
#[test]
fn a_reason_with_a_control_character_in_its_text_keeps_its_cause() {
    let mut h = H::new();
    let (inv, _) = early(&mut h);
    let Message::Response(busy) = reply(&inv, 486, "carrier1", &[], None) else {
        unreachable!()
    };
    let text = String::from_utf8_lossy(&busy.to_bytes()).replace(
        "Content-Length:",
        "Reason: Q.850;cause=34;text=\"No circuit\u{1}\"\r\nContent-Length:",
    );
    h.recv(CARRIER_A, &text);
    let r = h.response_with(PHONE, 486, "the status goes on");
    let reason = r.header(&Hdr::REASON).unwrap_or_default();
    assert!(reason.starts_with("Q.850;cause=34"), "{reason}");
    assert_eq!(
        (h.cdrs[0].cause, h.cdrs[0].cause_source),
        (34, crate::interop::causes::CauseSource::ReasonHeader)
    );
}

/// A callee's failure with only a preemption Reason (RFC 4411), which the CDR reads as
/// cause 8: the caller is told cause 8 beside it. Before, only the preemption value went
/// on, and the caller learnt no cause while the CDR said 8.
#[test]
fn a_preemption_reason_goes_on_with_its_q850_cause() {
    let mut h = H::new();
    let (inv, _) = early(&mut h);
    let preempted = [(Hdr::REASON, "preemption;cause=1;text=\"UA preemption\"")];
    h.recv_msg(CARRIER_A, reply(&inv, 486, "carrier1", &preempted, None));
    let r = h.response_with(PHONE, 486, "the status goes on");
    let lines = r.header_lines(&Hdr::REASON);
    assert!(
        lines.iter().any(|l| l.contains("Q.850;cause=8")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("preemption;cause=1")),
        "{lines:?}"
    );
    assert_eq!(h.cdrs[0].cause, 8);
}

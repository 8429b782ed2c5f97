//! The edge: strangers get nothing (or one stateless 403), and within a call only each
//! leg's own peer is heard, whatever identifiers a message carries.

use super::*;
use crate::config::UnknownSources;

const STRANGER: &str = "127.0.0.9:5060";

fn stranger_invite(call_id: &str) -> String {
    invite_text(call_id, &format!("z9hG4bK{call_id}"), "+8610123", "")
        .replace("127.0.0.2:5060;branch", "127.0.0.9:5060;branch")
}

#[test]
fn unknown_sources_get_one_stateless_403_in_reject_mode_never_retransmitted() {
    let mut cfg = config();
    cfg.protect.unknown_sources = UnknownSources::Reject;
    let mut h = H::with(cfg);
    h.recv(STRANGER, &stranger_invite("s1"));
    assert_eq!(h.statuses(STRANGER), vec![403]);
    // Nothing is kept for it (no transaction, no timer), so nothing is ever resent.
    h.advance(Duration::from_secs(40));
    assert!(h.sent.is_empty(), "no retransmission: {:?}", h.sent);
    assert_eq!(h.core.stats().server_txns, 0);
    // An ACK (or anything malformed) gets nothing even in reject mode.
    h.recv(
        STRANGER,
        &in_dialog(
            "ACK",
            "sip:127.0.0.1",
            "<sip:a@127.0.0.9>;tag=x",
            "<sip:b@127.0.0.1>;tag=y",
            "s1",
            1,
            "z9hG4bKs1",
            "127.0.0.9:5060",
            "",
        ),
    );
    assert!(h.sent.is_empty());
    assert_idle(&mut h);
}

#[test]
fn a_known_peer_that_is_not_the_legs_cannot_end_or_move_a_call() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    // carrier-b (a profile of ours, but not this call's) forges the phone's BYE and a
    // re-INVITE moving the media, with the right Call-ID and tags.
    for (method, body) in [("BYE", ""), ("INVITE", SDP)] {
        let forged = in_dialog(
            method,
            "sip:127.0.0.1",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            99,
            &format!("z9hG4bKforged{method}"),
            "127.0.0.4:5060",
            body,
        );
        h.recv(CARRIER_B, &forged);
        assert_eq!(h.statuses(CARRIER_B), vec![481], "{method}");
    }
    assert!(
        h.take(CARRIER_A).is_empty(),
        "nothing relayed to the carrier"
    );
    assert!(h.cdrs.is_empty(), "the call is still up");
    // The real phone's BYE, with the next CSeq of its own, still ends it.
    let bye = phone_bye(&tag, 2, "z9hG4bKrealbye");
    h.recv(PHONE, &bye);
    assert_eq!(h.statuses(PHONE), vec![200]);
    assert_eq!(
        h.one_request(CARRIER_A, Method::Bye).call_id(),
        inv.call_id()
    );
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerBye);
}

#[test]
fn a_cancel_or_an_answer_from_elsewhere_changes_nothing() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("x1", "z9hG4bKx1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.take(PHONE);
    // A 200 for carrier-a's INVITE, sent from carrier-b's address: not the peer we asked.
    h.recv_msg(CARRIER_B, reply(&inv, 200, "forged", &[], Some(SDP)));
    assert!(
        h.take_responses(PHONE).is_empty(),
        "no answer reaches the caller"
    );
    // A CANCEL of the phone's INVITE from carrier-b's address.
    let cancel = cancel_text("x1", "z9hG4bKx1");
    h.recv(CARRIER_B, &cancel);
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    assert!(h.cdrs.is_empty(), "the call still rings");
    // The real answer still connects the call.
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    assert_eq!(ok.status(), 200);
}

#[test]
fn while_cdrs_cannot_be_written_new_calls_get_503_and_calls_up_go_on() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    h.input(Input::CdrWritable(false));
    h.recv(PHONE, &invite_text("nocdr", "z9hG4bKnocdr", "+8610123", ""));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() >= 200)
        .expect("a final answer");
    assert_eq!(r.status(), 503);
    assert_eq!(r.header(&Hdr::RETRY_AFTER).as_deref(), Some("5"));
    assert!(h.take(CARRIER_A).is_empty(), "nothing forwarded");
    assert!(
        h.cdrs.is_empty(),
        "no CDR for the refusal: the queue is what is full"
    );
    // The call already up still ends normally, with its CDR.
    let tag = ok.to_tag().unwrap();
    let bye = phone_bye(&tag, 2, "z9hG4bKnocdrbye");
    h.recv(PHONE, &bye);
    assert_eq!(h.cdrs.len(), 1);
    h.input(Input::CdrWritable(true));
    h.recv(PHONE, &invite_text("cdrok", "z9hG4bKcdrok", "+8610123", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
}

/// The shell hands over an INVITE that waited too long in its queue.
fn overloaded(h: &mut H, from: &str, text: &str) {
    let msg = parse_datagram(Bytes::from(text.to_string()), 65535).unwrap();
    h.input(Input::Overloaded {
        msg,
        source: Target::udp(addr(from)),
    });
}

/// A retransmission of an RFC 2543 peer's INVITE (no branch cookie, a Via host that is not
/// its address) that waited too long is still a retransmission, not new work to refuse:
/// its call goes on. Before, the overload check keyed it without the `received` its
/// transaction was keyed with, and it got a stateless 503 while its call was ringing.
#[test]
fn an_overloaded_retransmission_of_a_legacy_invite_is_absorbed_not_refused() {
    let mut h = H::new();
    let inv = invite_text("ov2", "oldbranch-ov2", "+8610123", "").replace(
        "Via: SIP/2.0/UDP 127.0.0.2:5060",
        "Via: SIP/2.0/UDP pbx.example:5060",
    );
    h.recv(PHONE, &inv);
    assert_eq!(h.statuses(PHONE), vec![100]);
    h.one_request(CARRIER_A, Method::Invite);
    overloaded(&mut h, PHONE, &inv);
    let statuses = h.statuses(PHONE);
    assert!(!statuses.contains(&503), "{statuses:?}");
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn overloaded_new_invites_get_one_stateless_503_and_cost_no_state() {
    let mut h = H::new();
    // The shell's 503s carry this tag; the core's carry it too, so their ACKs are
    // dropped at the edge unparsed (before, a fresh tag sent them up the urgent queue).
    h.core.set_overload_tag("ov-edge");
    let inv = invite_text("ov1", "z9hG4bKov1", "+8610123", "");
    overloaded(&mut h, PHONE, &inv);
    let resp = h.take_responses(PHONE);
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].status(), 503);
    assert_eq!(resp[0].header(&Hdr::RETRY_AFTER).as_deref(), Some("5"));
    assert_eq!(resp[0].to_tag().as_deref(), Some("ov-edge"));
    // No transaction, no call, no CDR, nothing toward a carrier; never resent.
    assert_eq!(h.core.stats().server_txns, 0);
    assert_eq!(h.core.active_calls(), 0);
    assert!(h.cdrs.is_empty());
    assert!(h.take(CARRIER_A).is_empty());
    h.advance(Duration::from_secs(40));
    assert!(h.sent.is_empty(), "{:?}", h.sent);
    // The ACK for that 503 finds nothing and gets nothing.
    let ack = in_dialog(
        "ACK",
        "sip:+8610123@127.0.0.1",
        "\"Alice\" <sip:1000@127.0.0.2>;tag=alice1",
        &format!("<sip:+8610123@127.0.0.1>;tag={}", resp[0].to_tag().unwrap()),
        "ov1",
        1,
        "z9hG4bKov1",
        "127.0.0.2:5060",
        "",
    );
    h.recv(PHONE, &ack);
    assert!(h.sent.is_empty());
    assert_idle(&mut h);
}

/// A retransmission of an INVITE refused for overload, let in once the queue drained (it
/// crossed the 503, or the 503 was lost), gets the same 503 again: one transaction, one
/// answer (RFC 3261 §8.2.7, §17.2.1). Before, it found no transaction and became a call
/// the caller had been told had failed: the callee rang, and its answer went unACKed.
#[test]
fn a_retransmission_of_an_invite_refused_for_overload_is_refused_again() {
    let mut h = H::new();
    h.core.set_overload_tag("ov-edge");
    let inv = invite_text("ov3", "z9hG4bKov3", "+8610123", "");
    overloaded(&mut h, PHONE, &inv);
    assert_eq!(h.statuses(PHONE), vec![503]);
    h.advance(Duration::from_millis(500));
    h.recv(PHONE, &inv);
    let resp = h.take_responses(PHONE);
    assert_eq!(resp.len(), 1, "{resp:?}");
    assert_eq!(resp[0].status(), 503);
    assert_eq!(resp[0].to_tag().as_deref(), Some("ov-edge"));
    assert_eq!(h.core.active_calls(), 0);
    assert!(h.take(CARRIER_A).is_empty());
    // Another INVITE from the same phone is new work, and served.
    h.recv(PHONE, &invite_text("ov4", "z9hG4bKov4", "+8610123", ""));
    h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(h.core.active_calls(), 1);
}

/// The same for an RFC 2543 peer's INVITE, which has no branch at all: its transaction is
/// its top Via, From tag, Call-ID and CSeq (RFC 3261 §17.2.3). Before, it was not noted,
/// and its retransmission became a call.
#[test]
fn a_retransmission_of_a_branchless_invite_refused_for_overload_is_refused_again() {
    let mut h = H::new();
    h.core.set_overload_tag("ov-edge");
    let inv = invite_text("ov5", "x", "+8610123", "").replace(";branch=x", "");
    overloaded(&mut h, PHONE, &inv);
    assert_eq!(h.statuses(PHONE), vec![503]);
    h.advance(Duration::from_millis(500));
    h.recv(PHONE, &inv);
    assert_eq!(h.statuses(PHONE), vec![503]);
    assert_eq!(h.core.active_calls(), 0);
    assert!(h.take(CARRIER_A).is_empty());
    // The same Call-ID with a new CSeq (or another From tag) is another transaction.
    h.recv(PHONE, &inv.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE"));
    h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn overload_never_answers_a_retransmission_of_a_call_already_taken() {
    let mut h = H::new();
    let inv = invite_text("ov2", "z9hG4bKov2", "+8610123", "");
    h.recv(PHONE, &inv);
    assert_eq!(h.statuses(PHONE), vec![100]);
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
    // Its retransmission, delayed in an overloaded queue: absorbed by the transaction (the
    // 100 again), not refused, and the call goes on.
    overloaded(&mut h, PHONE, &inv);
    assert_eq!(h.statuses(PHONE), vec![100]);
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn under_overload_a_stranger_is_still_only_a_stranger() {
    let mut cfg = config();
    cfg.protect.unknown_sources = UnknownSources::Reject;
    let mut h = H::with(cfg);
    overloaded(&mut h, STRANGER, &stranger_invite("ov3"));
    // Reject mode answers strangers with one 403 as usual (never a 503: a stranger learns
    // nothing about our load).
    assert_eq!(h.statuses(STRANGER), vec![403]);
    assert_idle(&mut h);
}

#[test]
fn a_merged_invite_by_another_path_gets_482_and_places_no_second_call() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("merge-1", "z9hG4bKpath1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.take_responses(PHONE);
    // The same INVITE, forked upstream, arriving by a second path: another branch.
    h.recv(
        PHONE,
        &invite_text("merge-1", "z9hG4bKpath2", "+8610123", ""),
    );
    let rs = h.take_responses(PHONE);
    assert_eq!(rs.iter().map(|r| r.status()).collect::<Vec<_>>(), vec![482]);
    assert_eq!(
        rs[0].top_via().and_then(|v| v.branch).as_deref(),
        Some("z9hG4bKpath2")
    );
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    assert!(h.cdrs.is_empty(), "not a call: no CDR");
    // Counted, as the README says (before, only logged at debug).
    assert!(h.events.contains(&CoreEvent::Refused { why: "merged" }));
    // The call itself goes on; once settled it forgets its INVITE.
    let ok = h.carrier_answers(&inv, "c1", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &from_phone_in("merge-1", "ACK", &tag, 1, "z9hG4bKack", ""),
    );
    assert_eq!(h.core.stats().setups, 1);
    h.advance(Duration::from_secs(33));
    assert_eq!(h.core.stats().setups, 0);
    assert_eq!(h.core.stats().calls, 1);
}

#[test]
fn an_invite_retried_after_the_first_failed_is_not_a_merged_request() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("retry-1", "z9hG4bKtry1", "+8610123", ""),
    );
    h.one_request(CARRIER_A, Method::Invite);
    h.take_responses(PHONE);
    // The caller gives up; the carrier never answers our CANCEL (the call lingers).
    h.recv(
        PHONE,
        &invite_text("retry-1", "z9hG4bKtry1", "+8610123", "")
            .replacen("INVITE sip:", "CANCEL sip:", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL"),
    );
    h.take(CARRIER_A);
    assert!(h.statuses(PHONE).contains(&487));
    // An upstream proxy's serial failover sends the same INVITE again by another branch.
    h.recv(
        PHONE,
        &invite_text("retry-1", "z9hG4bKtry2", "+8610123", ""),
    );
    assert!(!h.statuses(PHONE).contains(&482));
    // The second call rings on; the first is forgotten meanwhile. A copy of the second's
    // INVITE by yet another path is still a merged request (before, forgetting the first
    // call removed the second's entry, and the copy became a third call).
    let inv2 = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv2, 180, "c2", &[], None));
    h.advance(Duration::from_secs(41));
    h.take(PHONE);
    h.take(CARRIER_A);
    h.recv(
        PHONE,
        &invite_text("retry-1", "z9hG4bKtry3", "+8610123", ""),
    );
    assert_eq!(h.statuses(PHONE), vec![482]);
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
}

#[test]
fn refusals_past_the_peers_refused_rate_are_answered_but_write_no_cdr() {
    let mut cfg = config();
    cfg.cdr_refused_rate = std::num::NonZeroU32::new(5);
    let mut h = H::with(cfg);
    // A scan: twenty INVITEs the gateway refuses (an extension it does not support).
    for i in 0..20 {
        let call_id = format!("scan-{i}");
        let branch = format!("z9hG4bKscan{i}");
        h.recv(
            PHONE,
            &invite_text(&call_id, &branch, "+8610123", "Require: no-such-thing\r\n"),
        );
    }
    let finals: Vec<u16> = h.statuses(PHONE).into_iter().filter(|s| *s > 100).collect();
    assert_eq!(finals, vec![420; 20], "every one answered");
    assert_eq!(h.cdrs.len(), 5, "a second's worth written");
    let unrecorded = |h: &H| {
        h.events
            .iter()
            .filter(|e| {
                matches!(e, CoreEvent::RefusalUnrecorded { peer, cause, .. }
                    if peer.0.as_ref() == "pbx" && *cause > 0)
            })
            .count()
    };
    assert_eq!(unrecorded(&h), 15);
    // A second later the peer's refusals are written again.
    h.advance(Duration::from_secs(1));
    h.recv(
        PHONE,
        &invite_text(
            "scan-late",
            "z9hG4bKscanl",
            "+8610123",
            "Require: no-such-thing\r\n",
        ),
    );
    assert_eq!(h.cdrs.len(), 6);
    assert_eq!(unrecorded(&h), 15);
}

/// Audit L7: what answers a peer, or follows a dialog it opened, leaves by the UDP listener
/// its requests came in on; a request to a peer's configured address names none.
#[test]
fn answers_and_dialog_requests_leave_by_the_listener_the_peer_used() {
    let mut h = H::new();
    h.on = Some(crate::sip::ListenerId(1));
    let (inv, _ok) = answered_call(&mut h);
    let listeners = |h: &H, to: &str| -> Vec<Option<crate::sip::ListenerId>> {
        h.sent
            .iter()
            .filter(|(t, _)| t.addr == addr(to))
            .map(|(t, _)| t.listener)
            .collect()
    };
    assert!(h.sent.is_empty(), "answered_call took what it sent");
    let bye = from_carrier_in(&inv, "BYE", "carrier1", 1, "z9hG4bKl7", "");
    h.recv(CARRIER_A, &bye);
    assert_eq!(listeners(&h, PHONE), vec![Some(crate::sip::ListenerId(1))]);
    assert_eq!(
        listeners(&h, CARRIER_A),
        vec![Some(crate::sip::ListenerId(1))]
    );
    h.one_request(PHONE, Method::Bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    // A new call: its INVITE goes to the carrier's configured address.
    h.recv(
        PHONE,
        &invite_text("call-2@127.0.0.2", "z9hG4bKl7b", "+8610123", ""),
    );
    assert_eq!(listeners(&h, PHONE), vec![Some(crate::sip::ListenerId(1))]);
    assert_eq!(listeners(&h, CARRIER_A), vec![None]);
}

/// RFC 3261 §8.1.3.3: a response with more than one Via is discarded (we sent one). Before,
/// a 200 with a second Via answered the call.
#[test]
fn a_response_with_a_second_via_is_discarded() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("vias", "z9hG4bKvias", "+8610123", ""));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let extra = [(Hdr::VIA, "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKother")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "v", &extra, Some(SDP)));
    assert!(h.statuses(PHONE).is_empty(), "no answer reached the caller");
    assert!(h.events.iter().any(|e| matches!(
        e,
        CoreEvent::Refused { why } if *why == "foreign_response"
    )));
    // The same answer with its one Via is taken.
    h.recv_msg(CARRIER_A, reply(&inv, 200, "v", &[], Some(SDP)));
    assert_eq!(h.statuses(PHONE), vec![200]);
}

/// A malformed request's 400 names the check it failed, and the metric counts it under one
/// fixed reason (before, the check's sentence was the label: a label per check, with
/// spaces, none of them documented).
#[test]
fn a_malformed_request_is_counted_under_one_reason() {
    let mut h = H::new();
    let bad = invite_text("cseqm", "z9hG4bKcseqm", "+8610123", "")
        .replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    h.recv(PHONE, &bad);
    let out = h.take_responses(PHONE);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status(), 400);
    assert!(
        out[0].reason().contains("CSeq method"),
        "{}",
        out[0].reason()
    );
    assert!(h.events.contains(&CoreEvent::Refused {
        why: "malformed_request"
    }));
}

/// A request in a dialog the gateway does not have (a BYE with made-up tags, spoofed in a
/// peer's name) gets its 481 without a server transaction: a flood of them keeps nothing
/// for Timer J's 32 s. Before, each one kept a transaction (and its 481) for 32 s.
#[test]
fn a_request_in_no_dialog_gets_its_481_without_a_transaction() {
    let mut h = H::new();
    let bye = phone_bye("no-such-tag", 2, "z9hG4bKnodlg");
    h.recv(PHONE, &bye);
    assert_eq!(h.statuses(PHONE), vec![481]);
    assert_eq!(h.core.stats().server_txns, 0);
    // A retransmission gets another.
    h.recv(PHONE, &bye);
    assert_eq!(h.statuses(PHONE), vec![481]);
    // A request in a dialog that exists still gets its transaction.
    let (_inv, ok) = answered_call(&mut h);
    h.recv(
        PHONE,
        &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKrealbye"),
    );
    assert!(h.core.stats().server_txns >= 1);
}

/// New calls' INVITEs from the phone until the server transaction table holds `bound`
/// (a request outside any dialog that is not an INVITE takes no transaction any more).
pub(super) fn fill_with_invites(h: &mut H, prefix: &str, bound: usize) {
    for n in 0..2 * bound {
        if h.core.stats().server_txns >= bound {
            break;
        }
        h.recv(
            PHONE,
            &invite_text(
                &format!("{prefix}-{n}"),
                &format!("z9hG4bK{prefix}{n}"),
                "+8610123",
                "",
            ),
        );
    }
    h.take(PHONE);
}

/// Past the bound on server transactions a new call is refused (503, and so are its
/// retransmissions) and counted; a ping outside any dialog is still answered, as it needs
/// no transaction.
#[test]
fn past_the_transaction_bound_new_calls_are_refused_and_pings_still_answered() {
    let mut h = H::new();
    h.core.env.max_server_txns = 2;
    fill_with_invites(&mut h, "fill", 2);
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 2);
    // An INVITE is told (503, Retry-After), and so are its retransmissions: it would be
    // sent seven times, and its caller would wait out Timer B before trying elsewhere.
    let inv = invite_text("full-1", "z9hG4bKfull1", "+8610123", "");
    h.recv(PHONE, &inv);
    h.recv(PHONE, &inv);
    assert_eq!(h.statuses(PHONE), vec![503, 503]);
    assert!(h.take(CARRIER_A).is_empty());
    assert!(h.events.iter().any(|e| matches!(
        e,
        CoreEvent::Refused { why } if *why == "transactions_full"
    )));
    let options = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKopt1\r\nMax-Forwards: 70\r\nFrom: <sip:ping@127.0.0.2>;tag=p1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.recv(PHONE, options);
    assert_eq!(h.statuses(PHONE), vec![200]);
    assert_eq!(h.core.stats().server_txns, 2);
    // Once the calls have ended there is room again.
    h.advance(Duration::from_secs(200));
    h.take(PHONE);
    h.take(CARRIER_A);
    h.recv(
        PHONE,
        &invite_text("after-1", "z9hG4bKafter1", "+8610123", ""),
    );
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
}

/// An OPTIONS, or a method the gateway does not take, outside any dialog is answered
/// without a server transaction: a flood of them spoofed in a peer's name keeps nothing
/// for Timer J's 32 s. Before, each kept one, and some 8,000 a second filled the table:
/// every new call was refused 503. A retransmission gets another answer, with the same To
/// tag (RFC 3261 §8.2.7; before, a new random one), and another request another tag.
#[test]
fn a_request_outside_any_dialog_is_answered_without_a_transaction() {
    let mut h = H::new();
    let mut tags = Vec::new();
    let options = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKsl1\r\nMax-Forwards: 70\r\nFrom: <sip:ping@127.0.0.2>;tag=s1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: sl-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    for _ in 0..2 {
        h.recv(PHONE, options);
        let r = h.take_responses(PHONE);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status(), 200);
        assert!(r[0].header(&Hdr::ALLOW).is_some());
        tags.push(r[0].to_tag().expect("a To tag"));
    }
    assert_eq!(
        tags[0], tags[1],
        "a retransmission's answer carries the same tag"
    );
    let key = h.core.env.ids.tag_key().clone();
    assert!(!key.ours(&tags[0], "sl-1") && !key.is(crate::sip::TagKind::Refusal, &tags[0], "sl-1"));
    let message = options
        .replace("OPTIONS sip", "MESSAGE sip")
        .replace("1 OPTIONS", "1 MESSAGE")
        .replace("z9hG4bKsl1", "z9hG4bKsl2");
    h.recv(PHONE, &message);
    let r = h.take_responses(PHONE);
    assert_eq!(r.iter().map(|r| r.status()).collect::<Vec<_>>(), vec![405]);
    assert_ne!(
        r[0].to_tag().as_deref(),
        Some(tags[0].as_str()),
        "another request"
    );
    assert_eq!(h.core.stats().server_txns, 0);
}

/// As many Vias as a request may carry besides its own (69 of 70), each long.
fn long_vias(branch: &str) -> String {
    (0..69)
        .map(|i| {
            format!(
                "Via: SIP/2.0/UDP 198.51.100.{}:5060;branch=z9hG4bK{branch}{i};x={}\r\n",
                i % 250,
                "p".repeat(80)
            )
        })
        .collect()
}

/// The bound holds in bytes too: long requests (each 200 repeats their Vias, kept 32 s for
/// retransmissions) fill the table long before its count, and what it holds stays within
/// the bound's bytes. Before, 262,144 transactions of 60 KB (16 GiB) could be held.
#[test]
fn the_transaction_bound_holds_in_bytes() {
    let mut h = H::new();
    h.core.env.max_server_txns = 64;
    let vias = long_vias("v");
    let invite = |n: u32| {
        invite_text(
            &format!("long-{n}"),
            &format!("z9hG4bKlong{n}"),
            "+8610123",
            "",
        )
        .replace(
            "Max-Forwards: 70\r\n",
            &format!("{vias}Max-Forwards: 70\r\n"),
        )
    };
    let mut taken = 0;
    for n in 0..64 {
        h.recv(PHONE, &invite(n));
        taken += h.take_requests(CARRIER_A, Method::Invite).len();
        h.take(PHONE);
    }
    assert!((2..16).contains(&taken), "{taken} of 64 taken");
    assert!(h.events.iter().any(|e| matches!(
        e,
        // (One source: refused at three quarters, the rest kept for others.)
        CoreEvent::Refused { why } if *why == "transactions_full" || *why == "source_transactions"
    )));
    let held = h.core.env.txn.server_retained();
    let bound = 64 * crate::call::incoming::TXN_BYTES;
    assert!(held <= bound + 16 * 1024, "{held} bytes held");
}

/// One source's long requests fill three quarters of the table's bytes at most while it
/// holds half of them: the last quarter stays for the other peers, whose new calls go on.
/// Before, the phone's INVITEs (or a spoofer's in its name) filled it all, and the
/// carrier's next call was refused 503 like the phone's.
#[test]
fn one_source_cannot_take_the_last_quarter_of_the_transaction_table() {
    let mut h = H::new();
    // A call of the phone's, up before its flood.
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.core.env.max_server_txns = 64;
    let vias = long_vias("q");
    let long = |n: u32| {
        invite_text(
            &format!("hog-{n}"),
            &format!("z9hG4bKhog{n}"),
            "+8610123",
            "",
        )
        .replace(
            "Max-Forwards: 70\r\n",
            &format!("{vias}Max-Forwards: 70\r\n"),
        )
    };
    for n in 0..64 {
        h.recv(PHONE, &long(n));
        h.take(PHONE);
    }
    h.take(CARRIER_A);
    let bytes = 64 * crate::call::incoming::TXN_BYTES;
    let held = h.core.env.txn.server_retained();
    assert!(
        held < bytes,
        "the phone filled the table: {held} of {bytes}"
    );
    assert!(h.events.iter().any(|e| matches!(
        e,
        CoreEvent::Refused { why } if *why == "source_transactions"
    )));
    // The carrier's call still gets through.
    h.recv(CARRIER_A, &invite_text("in-1", "z9hG4bKin1", "1000", ""));
    assert_eq!(h.take_requests(PHONE, Method::Invite).len(), 1);
    assert!(h.statuses(CARRIER_A).iter().all(|s| *s != 503));
    // And the phone's call up is served as ever (its calls keep their headroom).
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKhoginfo", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Info).len(), 1, "relayed");
}

/// A full transaction table does not stop the calls up: their requests have a quarter more
/// room, and their BYE always gets its transaction; nothing grows the table past that.
/// Before (the first bound), a flood that filled the table made the gateway drop every new
/// request, a live call's BYE and PRACKs included.
#[test]
fn a_full_transaction_table_still_serves_the_calls_up() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    h.take(PHONE);
    let bound = 8;
    h.core.env.max_server_txns = bound;
    fill_with_invites(&mut h, "full", bound);
    assert_eq!(h.core.stats().server_txns, bound, "filled to the bound");
    // The call's own requests have a quarter more room, and no more.
    let tag = ok.to_tag().unwrap();
    for n in 0..20 {
        let branch = format!("z9hG4bKinfo{n}");
        h.recv(PHONE, &from_phone("INFO", &tag, 2 + n, &branch, ""));
    }
    assert_eq!(h.core.stats().server_txns, bound + bound / 4);
    h.take(PHONE);
    h.take(CARRIER_A);
    // Nor a CANCEL of its INVITE, answered already: it ends nothing. Before, every CANCEL
    // matching a live INVITE transaction got one, and the table could reach twice its bound.
    h.recv(
        PHONE,
        "CANCEL sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKa1\r\nMax-Forwards: 70\r\nFrom: <sip:1000@127.0.0.2>;tag=a1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: call-1@127.0.0.2\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(h.core.stats().server_txns, bound + bound / 4);
    // A BYE that would not end the call (out of order) gets no room: a peer cannot grow
    // the table with them.
    for n in 0..10 {
        let branch = format!("z9hG4bKlowbye{n}");
        h.recv(PHONE, &from_phone("BYE", &tag, 1, &branch, ""));
    }
    assert_eq!(h.core.stats().server_txns, bound + bound / 4);
    assert!(h.cdrs.is_empty());
    // Its BYE still gets its transaction, and the call ends.
    h.recv(PHONE, &phone_bye(&tag, 30, "z9hG4bKbyefull"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    assert!(h.statuses(PHONE).contains(&200), "the BYE was answered");
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.core.stats().server_txns, bound + bound / 4 + 1);
}

/// One call cannot take the room kept for the calls up: while the table is past its bound,
/// each call opens at most its share of that room, and another call still finds room for
/// its own. Before, the room was one pool, and one call's peer (or a flood in its dialog's
/// name) could use all of it.
#[test]
fn one_call_takes_at_most_its_share_of_the_room_for_the_calls_up() {
    use crate::call::headroom::PER_CALL_HEADROOM;
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag1 = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &invite_text("call-2@127.0.0.2", "z9hG4bKa2", "+8610123", ""),
    );
    let inv2 = h.one_request(CARRIER_A, Method::Invite);
    let ok2 = h.carrier_answers(&inv2, "carrier2", SDP);
    let tag2 = ok2.to_tag().unwrap();
    h.take(PHONE);
    h.take(CARRIER_A);
    // The room (a quarter of the bound) holds more than one call's share.
    let bound = 200;
    assert!(bound / 4 > usize::from(PER_CALL_HEADROOM) + 1);
    h.core.env.max_server_txns = bound;
    fill_with_invites(&mut h, "share", bound);
    assert_eq!(h.core.stats().server_txns, bound, "filled to the bound");
    for n in 0..60 {
        let branch = format!("z9hG4bKgreedy{n}");
        h.recv(PHONE, &from_phone("INFO", &tag1, 2 + n, &branch, ""));
    }
    let share = usize::from(PER_CALL_HEADROOM);
    assert_eq!(h.core.stats().server_txns, bound + share);
    h.recv(
        PHONE,
        &from_phone_in("call-2@127.0.0.2", "INFO", &tag2, 2, "z9hG4bKother", ""),
    );
    assert_eq!(
        h.core.stats().server_txns,
        bound + share + 1,
        "the other call still has room"
    );
}

/// However much room the transaction table has, one call's requests hold at most its share
/// (`PER_CALL_ALWAYS` a window): a peer flooding its own dialog (OPTIONS answered here, each
/// kept for Timer J) has the rest dropped, and its BYE still ends the call. Before, only
/// past the table's bound was a call held to a share, and one peer's flood in its own
/// dialog filled the table: every peer's new calls got 503.
#[test]
fn one_call_holds_at_most_its_share_of_transactions_whatever_the_room() {
    use crate::call::headroom::PER_CALL_ALWAYS;
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.take(PHONE);
    let before = h.core.stats().server_txns;
    let flood = usize::from(PER_CALL_ALWAYS) + 44;
    for n in 0..flood {
        let branch = format!("z9hG4bKflood{n}");
        h.recv(
            PHONE,
            &from_phone("OPTIONS", &tag, 2 + n as u32, &branch, ""),
        );
    }
    let answered = h.statuses(PHONE).len();
    assert_eq!(
        answered,
        usize::from(PER_CALL_ALWAYS),
        "the rest dropped (UDP)"
    );
    assert_eq!(h.core.stats().server_txns, before + answered);
    // A re-INVITE past the share is told to try again (500 + Retry-After), not 503 (which
    // would tell a carrier to send the gateway nothing for a while).
    let re = from_phone("INVITE", &tag, 1 + flood as u32, "z9hG4bKfloodre", SDP);
    h.recv(PHONE, &re);
    let refused = h.response_with(PHONE, 500, "the re-INVITE past the share");
    assert_eq!(refused.header(&Hdr::RETRY_AFTER).as_deref(), Some("1"));
    // Its BYE still ends it.
    let bye = from_phone("BYE", &tag, 2 + flood as u32, "z9hG4bKfloodbye", "");
    h.recv(PHONE, &bye);
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
}

/// A CANCEL of no INVITE we have gets its 481 without a transaction: a flood of them with
/// made-up branches (spoofed in a peer's name at its packet rate) keeps nothing. Before,
/// each kept a server transaction for Timer J's 32 s, and about 8,000 a second filled the
/// table, after which every new call was dropped. A CANCEL of a ringing call still gets its
/// 200 and ends the call.
#[test]
fn a_cancel_of_no_invite_is_answered_without_a_transaction() {
    let mut h = H::new();
    for n in 0..50 {
        h.recv(
            PHONE,
            &format!(
                "CANCEL sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKnone{n}\r\nMax-Forwards: 70\r\nFrom: <sip:1000@127.0.0.2>;tag=c{n}\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: no-such-{n}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
            ),
        );
    }
    assert_eq!(h.statuses(PHONE), vec![481; 50]);
    assert_eq!(h.core.stats().server_txns, 0, "nothing kept");
    // A real one still ends its call.
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", ""),
    );
    h.take(CARRIER_A);
    let cancel = invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", "")
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.recv(PHONE, &cancel);
    let got = h.statuses(PHONE);
    assert!(got.contains(&200) && got.contains(&487), "{got:?}");
}

/// Only a dialog's own tag carries the check the edge verifies: the tags of answers that
/// make no dialog (a stranger's 403, a refused INVITE, a 481 to a CANCEL of nothing) are
/// plain. Else one packet from anywhere would hand out a (Call-ID, tag) pair the edge takes
/// for a dialog's, for a flood spoofed in a peer's name to go ahead of accepted work.
#[test]
fn only_a_dialogs_tag_carries_the_check_the_edge_verifies() {
    let mut cfg = config();
    cfg.protect.unknown_sources = UnknownSources::Reject;
    let mut h = H::with(cfg);
    let key = h.core.env.ids.tag_key().clone();
    let checked = |r: &Response| key.ours(&r.to_tag().unwrap(), &r.call_id().unwrap());
    h.recv(STRANGER, &stranger_invite("t1"));
    let forbidden = h.take_responses(STRANGER);
    assert_eq!(forbidden[0].status(), 403);
    assert!(!checked(&forbidden[0]), "a stranger's 403");
    let refusal = |r: &Response| {
        key.is(
            crate::sip::TagKind::Refusal,
            &r.to_tag().unwrap(),
            &r.call_id().unwrap(),
        )
    };
    // Stateless: nothing asks for its ACK, so its tag is no kind of ours at all.
    assert!(!refusal(&forbidden[0]), "a stranger's 403 is stateless");
    // No route for this number: refused, no dialog.
    h.recv(PHONE, &invite_text("t2", "z9hG4bKt2", "9999", ""));
    let refused = h.take_responses(PHONE);
    let refused = refused.iter().find(|r| r.status() >= 400).unwrap();
    assert!(!checked(refused), "a refused INVITE's {}", refused.status());
    // Its transaction waits for the ACK: the edge knows that ACK for ours.
    assert!(refusal(refused));
    h.recv(
        PHONE,
        &invite_text("t3", "z9hG4bKt3", "+8610123", "")
            .replacen("INVITE sip:", "CANCEL sip:", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL"),
    );
    let cancel = h.take_responses(PHONE);
    assert_eq!(cancel[0].status(), 481);
    assert!(
        !checked(&cancel[0]) && !refusal(&cancel[0]),
        "a CANCEL of nothing"
    );
    // A call's own tag does.
    let (_inv, ok) = answered_call(&mut h);
    assert!(checked(&ok));
}

/// A request too broken for a transaction still gets its one 400 with `received` and
/// `rport` in its Via (RFC 3581 §4), as every other response does: a phone behind NAT
/// learns where it is seen from. Before, the Via went back as the phone wrote it.
#[test]
fn a_stateless_400_says_where_the_request_came_from() {
    let mut h = H::new();
    let bad = invite_text("bad-date", "z9hG4bKbd", "+8610123", "Date: yesterday\r\n")
        .replace("127.0.0.2:5060;branch", "192.168.1.20:5062;branch");
    h.recv(PHONE, &bad);
    let resp = h.response_with(PHONE, 400, "the broken request gets 400");
    assert_eq!(
        resp.header(&Hdr::VIA).as_deref(),
        Some("SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKbd;received=127.0.0.2;rport=5060")
    );
}

/// A request giving a single-valued header twice (a compact Call-ID beside the long one,
/// two CSeq lines, two To lines) is refused with 400: every reader here takes the first, a
/// peer behind may take the other. Before, it was served as its first values said.
#[test]
fn a_single_valued_header_given_twice_is_refused() {
    let options = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKdup1\r\nMax-Forwards: 70\r\nFrom: <sip:ping@127.0.0.2>;tag=d1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: dup-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    for (from, to) in [
        ("Call-ID: dup-1\r\n", "Call-ID: dup-1\r\ni: dup-2\r\n"),
        (
            "CSeq: 1 OPTIONS\r\n",
            "CSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS\r\n",
        ),
        (
            "To: <sip:127.0.0.1>\r\n",
            "To: <sip:127.0.0.1>\r\nt: <sip:x@127.0.0.1>\r\n",
        ),
        ("Max-Forwards: 70\r\n", "Max-Forwards: 70, 69\r\n"),
    ] {
        let mut h = H::new();
        h.recv(PHONE, &options.replace(from, to));
        assert_eq!(h.statuses(PHONE), vec![400], "{to:?}");
    }
    let mut h = H::new();
    h.recv(PHONE, options);
    assert_eq!(h.statuses(PHONE), vec![200]);
}

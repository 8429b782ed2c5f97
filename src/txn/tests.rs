//! The transaction layer: our machines behind sipx's keys, deadlines owned by the layer and
//! fired on the caller's clock, targets, events.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::sip::{Message, Method, Request, Response, Target, Transport, parse_datagram};

fn parse(text: &str) -> Message {
    parse_datagram(Bytes::from(text.to_string()), 65535).unwrap()
}

fn request(method: &str, branch: &str) -> Request {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    match parse(&text) {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn target(t: Transport) -> Target {
    Target {
        transport: t,
        addr: "192.0.2.9:5060".parse().unwrap(),
        conn: None,
        listener: None,
    }
}

/// The timers transaction `id` has armed, by slot, as (name, deadline after t0).
fn armed(l: &TxnLayer, id: TxnId) -> Vec<(String, Duration)> {
    l.timers_of(id)
        .into_iter()
        .map(|(t, at)| (format!("{t:?}"), at - t0()))
        .collect()
}

thread_local! {
    static T0: Instant = Instant::now();
}

fn t0() -> Instant {
    T0.with(|t| *t)
}

/// The id of the server transaction whose request the layer passed up to the user.
fn passed_up(out: &[TxnOutput]) -> TxnId {
    out.iter()
        .find_map(|o| match o {
            TxnOutput::Request { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a request passed up")
}

fn sends(out: &[TxnOutput]) -> Vec<(Target, Message)> {
    out.iter()
        .filter_map(|o| match o {
            TxnOutput::Send { target, wire, .. } => {
                Some((*target, parse_datagram(wire.clone(), 65535).unwrap()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn invite_client_over_udp_retransmits_on_the_callers_clock() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let id = l
        .send_request(
            request("INVITE", "z9hG4bKc1"),
            target(Transport::Udp),
            t0(),
            &mut out,
        )
        .unwrap();
    assert_eq!(sends(&out).len(), 1);
    assert_eq!(sends(&out)[0].0, target(Transport::Udp));
    assert_eq!(
        armed(&l, id),
        vec![
            ("A".into(), Duration::from_millis(500)),
            ("B".into(), Duration::from_secs(32))
        ]
    );
    assert_eq!(l.poll_timeout(), Some(t0() + Duration::from_millis(500)));
    // Nothing is due a moment before Timer A.
    out.clear();
    l.handle_timeout(t0() + Duration::from_millis(499), &mut out);
    assert!(out.is_empty());
    // Timer A fires at 0.5 s: resend, next at 0.5 + 1 s.
    l.handle_timeout(t0() + Duration::from_millis(500), &mut out);
    assert_eq!(sends(&out).len(), 1);
    assert_eq!(
        armed(&l, id),
        vec![
            ("A".into(), Duration::from_millis(1500)),
            ("B".into(), Duration::from_secs(32))
        ]
    );
    // By Timer B, A has resent at 1.5, 3.5, 7.5, 15.5 and 31.5 s; then the user hears
    // Timeout, and the transaction ends and forgets its target.
    out.clear();
    while let Some(at) = l.poll_timeout() {
        if at > t0() + Duration::from_secs(32) {
            break;
        }
        l.handle_timeout(at, &mut out);
    }
    assert_eq!(sends(&out).len(), 5);
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Timeout { .. })));
    assert!(
        out.iter()
            .any(|o| matches!(o, TxnOutput::Terminated { .. }))
    );
    assert_eq!(l.target(id), None);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn reliable_transport_has_no_retransmission_timer() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let id = l
        .send_request(
            request("INVITE", "z9hG4bKc2"),
            target(Transport::Tcp),
            t0(),
            &mut out,
        )
        .unwrap();
    assert_eq!(armed(&l, id), vec![("B".into(), Duration::from_secs(32))]);
}

#[test]
fn non_2xx_final_is_acked_by_the_transaction_toward_the_same_target() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKc3");
    let id = l
        .send_request(inv.clone(), target(Transport::Udp), t0(), &mut out)
        .unwrap();
    out.clear();
    let resp = Response::to_request(&inv, 486, "Busy Here", Some("x")).unwrap();
    assert!(
        l.receive(
            Message::Response(resp),
            target(Transport::Udp),
            t0(),
            &mut out
        )
        .is_none()
    );
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    match &s[0].1 {
        Message::Request(ack) => {
            assert_eq!(ack.method(), Method::Ack);
            assert_eq!(ack.top_via().unwrap().branch.as_deref(), Some("z9hG4bKc3"));
            assert_eq!(ack.to_tag().as_deref(), Some("x"));
        }
        Message::Response(_) => panic!("ACK expected"),
    }
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Response { .. })));
    assert_eq!(armed(&l, id), vec![("D".into(), Duration::from_secs(32))]);
}

/// A response is matched to its client transaction by branch and method (RFC 3261
/// §17.1.3): one whose top Via left out our port (or cased our host otherwise) is still
/// ours, not a stray that leaves the INVITE retransmitting until Timer B. A response with
/// the method of another transaction is not.
#[test]
fn a_response_whose_via_lost_our_port_is_matched_by_branch_and_method() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKport1");
    l.send_request(inv.clone(), target(Transport::Udp), t0(), &mut out)
        .unwrap();
    out.clear();
    let resp = Response::to_request(&inv, 180, "Ringing", Some("x")).unwrap();
    let text = String::from_utf8_lossy(&resp.to_bytes()).replace("192.0.2.1:5060;", "192.0.2.1;");
    let Message::Response(resp) = parse(&text) else {
        panic!("a response")
    };
    let cancel_like = text.replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    assert!(
        l.receive(
            Message::Response(resp),
            target(Transport::Udp),
            t0(),
            &mut out
        )
        .is_none(),
        "taken by the INVITE's transaction"
    );
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Response { .. })));
    assert!(
        l.receive(parse(&cancel_like), target(Transport::Udp), t0(), &mut out)
            .is_some(),
        "no CANCEL of ours: a stray"
    );
}

/// RFC 3261 §8.2.6.1: the INVITE's Timestamp comes back in the 100 (a peer measures the
/// round trip with it); a 100 for an INVITE without one has none.
#[test]
fn the_100_carries_the_invites_timestamp() {
    for (stamp, want) in [(Some("54.2 0.3"), Some("54.2 0.3")), (None, None)] {
        let mut l = TxnLayer::new(TimerConfig::default());
        let mut out = Vec::new();
        let mut inv = request("INVITE", "z9hG4bKts1");
        if let Some(s) = stamp {
            inv.insert_header_before_length(&crate::sip::Hdr::named("Timestamp"), s.to_string())
                .unwrap();
        }
        l.receive(
            Message::Request(inv.clone()),
            target(Transport::Udp),
            t0(),
            &mut out,
        );
        out.clear();
        l.flush_trying(t0(), &mut out);
        let s = sends(&out);
        let Message::Response(r) = &s[0].1 else {
            panic!("a 100")
        };
        assert_eq!(r.status(), 100);
        assert_eq!(
            r.header(&crate::sip::Hdr::named("Timestamp")).as_deref(),
            want
        );
        // The INVITE again: its 100 again, with the Timestamp too.
        out.clear();
        l.receive(
            Message::Request(inv),
            target(Transport::Udp),
            t0(),
            &mut out,
        );
        let s = sends(&out);
        let Message::Response(r) = &s[0].1 else {
            panic!("a 100 again")
        };
        assert_eq!(
            r.header(&crate::sip::Hdr::named("Timestamp")).as_deref(),
            want
        );
    }
}

#[test]
fn server_absorbs_retransmissions_and_answers_with_the_last_response() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKs1");
    let src = target(Transport::Udp);
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    // Once the user has seen it without answering, the transaction sends 100 Trying (and
    // arms nothing for it).
    assert!(sends(&out).is_empty());
    out.clear();
    l.flush_trying(t0(), &mut out);
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert!(matches!(&s[0].1, Message::Response(r) if r.status() == 100));
    assert!(armed(&l, id).is_empty());
    // A retransmitted INVITE gets the 100 again.
    out.clear();
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    assert!(matches!(&sends(&out)[0].1, Message::Response(r) if r.status() == 100));
    out.clear();
    let ringing = Response::to_request(&inv, 180, "Ringing", Some("t")).unwrap();
    l.send_response(id, ringing, t0(), &mut out);
    assert_eq!(sends(&out).len(), 1);
    out.clear();
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    assert!(
        !out.iter().any(|o| matches!(o, TxnOutput::Request { .. })),
        "no second Request"
    );
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert!(matches!(&s[0].1, Message::Response(r) if r.status() == 180));
    assert_eq!(s[0].0, src);
    assert!(l.server_pending(id));
    // A CANCEL for it finds it.
    let cancel = request("CANCEL", "z9hG4bKs1");
    assert_eq!(l.cancelled_invite(&cancel), Some(id));
}

#[test]
fn non_invite_client_backs_off_to_t2_and_times_out_with_f() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let id = l
        .send_request(
            request("OPTIONS", "z9hG4bKn1"),
            target(Transport::Udp),
            t0(),
            &mut out,
        )
        .unwrap();
    assert_eq!(
        armed(&l, id),
        vec![
            ("E".into(), Duration::from_millis(500)),
            ("F".into(), Duration::from_secs(32))
        ]
    );
    let mut now = t0();
    let mut interval = Duration::from_millis(500);
    let mut intervals = Vec::new();
    for _ in 0..5 {
        now += interval;
        out.clear();
        l.handle_timeout(now, &mut out);
        assert_eq!(sends(&out).len(), 1, "OPTIONS resent");
        let next = armed(&l, id)[0].1 - (now - t0());
        intervals.push(next);
        interval = next;
    }
    assert_eq!(
        intervals,
        [1, 2, 4, 4, 4].map(Duration::from_secs).to_vec(),
        "T1 doubling capped at T2"
    );
    out.clear();
    l.handle_timeout(t0() + Duration::from_secs(32), &mut out);
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Timeout { .. })));
}

/// Once the last transaction is gone, the scratch lists a burst grew have no room left
/// (the deadline index is replaced by a new set too: std's keeps a node when emptied, which
/// no test can see), and the layer works as before.
#[test]
fn an_idle_layer_gives_back_what_a_burst_grew() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    for i in 0..200 {
        l.send_request(
            request("OPTIONS", &format!("z9hG4bKb{i}")),
            target(Transport::Udp),
            t0(),
            &mut out,
        )
        .unwrap();
    }
    l.release_idle();
    assert_eq!(l.deadlines.len(), 200, "nothing released while busy");
    l.handle_timeout(t0() + Duration::from_secs(33), &mut out);
    assert!(l.is_empty(), "every OPTIONS timed out");
    assert!(l.scratch.capacity() > 0, "the burst grew the scratch list");
    l.release_idle();
    assert_eq!(l.scratch.capacity(), 0);
    assert_eq!(l.trying.capacity(), 0);
    l.send_request(
        request("OPTIONS", "z9hG4bKafter"),
        target(Transport::Udp),
        t0() + Duration::from_secs(40),
        &mut out,
    )
    .unwrap();
    assert_eq!(l.len(), (1, 0));
}

/// A failure after a provisional (the call rang, then the callee was busy): the caller
/// stopped retransmitting when it heard the 100, so the failure is ours to repeat.
#[test]
fn invite_server_final_failure_retransmits_until_ack_then_absorbs() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKs2");
    let src = target(Transport::Udp);
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    l.flush_trying(t0(), &mut out);
    out.clear();
    l.send_response(
        id,
        Response::to_request(&inv, 486, "Busy Here", Some("t")).unwrap(),
        t0(),
        &mut out,
    );
    assert_eq!(
        armed(&l, id),
        vec![
            ("G".into(), Duration::from_millis(500)),
            ("H".into(), Duration::from_secs(32))
        ]
    );
    // Timer G doubles up to T2.
    let mut now = t0();
    let mut intervals = Vec::new();
    let mut interval = Duration::from_millis(500);
    for _ in 0..5 {
        now += interval;
        out.clear();
        l.handle_timeout(now, &mut out);
        assert_eq!(sends(&out).len(), 1, "486 resent");
        interval = armed(&l, id)[0].1 - (now - t0());
        intervals.push(interval);
    }
    assert_eq!(intervals, [1, 2, 4, 4, 4].map(Duration::from_secs).to_vec());
    // The ACK (same branch) confirms; Timer I absorbs further ACKs, then it ends.
    let ack = request("ACK", "z9hG4bKs2");
    out.clear();
    l.receive(Message::Request(ack.clone()), src, now, &mut out);
    assert_eq!(
        armed(&l, id),
        vec![("I".into(), now - t0() + Duration::from_secs(5))]
    );
    assert!(
        !out.iter().any(|o| matches!(o, TxnOutput::Ack { .. })),
        "a non-2xx ACK stays in the transaction"
    );
    out.clear();
    l.receive(Message::Request(inv.clone()), src, now, &mut out);
    assert!(
        sends(&out).is_empty(),
        "confirmed: retransmitted INVITE absorbed"
    );
    l.handle_timeout(now + Duration::from_secs(5), &mut out);
    assert!(l.is_empty());
}

#[test]
fn invite_server_2xx_is_the_users_to_retransmit_and_its_ack_goes_up() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKs3");
    let src = target(Transport::Udp);
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = l.cancelled_invite(&request("CANCEL", "z9hG4bKs3")).unwrap();
    out.clear();
    let ok = Response::to_request(&inv, 200, "OK", Some("t")).unwrap();
    l.send_response(id, ok.clone(), t0(), &mut out);
    assert_eq!(armed(&l, id), vec![("L".into(), Duration::from_secs(32))]);
    assert!(!l.server_pending(id));
    out.clear();
    // A retransmitted INVITE is absorbed (RFC 6026), the user's own 2xx retransmission is sent.
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    assert!(sends(&out).is_empty());
    l.send_response(id, ok, t0(), &mut out);
    assert_eq!(sends(&out).len(), 1);
    out.clear();
    // The ACK to a 2xx (new branch in real life; here it matches) goes to the user.
    l.receive(
        Message::Request(request("ACK", "z9hG4bKs3")),
        src,
        t0(),
        &mut out,
    );
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Ack { .. })));
}

#[test]
fn invite_client_2xx_retransmissions_reach_the_user_and_non_2xx_get_the_same_ack() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKc9");
    let tgt = target(Transport::Udp);
    let id = l.send_request(inv.clone(), tgt, t0(), &mut out).unwrap();
    out.clear();
    let ok = Response::to_request(&inv, 200, "OK", Some("x")).unwrap();
    l.receive(Message::Response(ok.clone()), tgt, t0(), &mut out);
    assert_eq!(armed(&l, id), vec![("M".into(), Duration::from_secs(32))]);
    assert!(
        sends(&out).is_empty(),
        "no ACK for a 2xx from the transaction"
    );
    out.clear();
    l.receive(Message::Response(ok), tgt, t0(), &mut out);
    assert!(
        out.iter().any(|o| matches!(o, TxnOutput::Response { .. })),
        "RFC 6026: each 2xx goes up"
    );

    let inv2 = request("INVITE", "z9hG4bKc10");
    out.clear();
    l.send_request(inv2.clone(), tgt, t0(), &mut out);
    let busy = Response::to_request(&inv2, 486, "Busy Here", Some("y")).unwrap();
    out.clear();
    l.receive(Message::Response(busy.clone()), tgt, t0(), &mut out);
    let first = sends(&out);
    out.clear();
    l.receive(Message::Response(busy), tgt, t0(), &mut out);
    let again = sends(&out);
    assert_eq!(first.len(), 1);
    assert_eq!(again.len(), 1);
    assert_eq!(
        first[0].1.to_bytes(),
        again[0].1.to_bytes(),
        "the same ACK, byte for byte"
    );
    assert!(
        !out.iter().any(|o| matches!(o, TxnOutput::Response { .. })),
        "the user saw it once"
    );
}

/// After a failure from one fork, a 2xx from another goes up (the user ACKs and ends that
/// dialog) instead of being taken for a retransmission of the failure; a late provisional
/// draws no ACK.
#[test]
fn invite_client_completed_passes_another_forks_2xx_up_and_ignores_a_late_provisional() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKc11");
    let tgt = target(Transport::Udp);
    let id = l.send_request(inv.clone(), tgt, t0(), &mut out).unwrap();
    let declined = Response::to_request(&inv, 603, "Decline", Some("y")).unwrap();
    l.receive(Message::Response(declined), tgt, t0(), &mut out);
    out.clear();
    let ringing = Response::to_request(&inv, 180, "Ringing", Some("z")).unwrap();
    l.receive(Message::Response(ringing), tgt, t0(), &mut out);
    assert!(out.is_empty(), "{out:?}");
    let ok = Response::to_request(&inv, 200, "OK", Some("z")).unwrap();
    l.receive(Message::Response(ok), tgt, t0(), &mut out);
    assert!(sends(&out).is_empty(), "not the 603's ACK");
    let up: Vec<u16> = out
        .iter()
        .filter_map(|o| match o {
            TxnOutput::Response { resp, .. } => Some(resp.status()),
            _ => None,
        })
        .collect();
    assert_eq!(up, [200]);
    assert_eq!(armed(&l, id), vec![("D".into(), Duration::from_secs(32))]);
}

/// An RFC 2543 peer (no branch cookie) ACKs our 486 with the To tag the 486 added: that
/// ACK confirms the INVITE's transaction (RFC 3261 §17.2.3), which then only absorbs
/// (Timer I). Before, the key held the ACK's To tag and missed: the 486 was resent until
/// Timer H. An ACK with another tag is not ours to take.
#[test]
fn a_legacy_ack_of_our_failure_confirms_the_invites_transaction() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "oldbranch");
    let src = target(Transport::Udp);
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    let busy = Response::to_request(&inv, 486, "Busy Here", Some("t")).unwrap();
    l.send_response(id, busy, t0(), &mut out);
    let ack_tagged = |tag: &str| {
        let Message::Request(ack) = parse(
            &String::from_utf8_lossy(&request("ACK", "oldbranch").to_bytes()).replace(
                "To: <sip:bob@example.com>",
                &format!("To: <sip:bob@example.com>;tag={tag}"),
            ),
        ) else {
            unreachable!()
        };
        ack
    };
    out.clear();
    let stray = l.receive(Message::Request(ack_tagged("other")), src, t0(), &mut out);
    assert!(
        stray.is_some(),
        "another tag's ACK is not this transaction's"
    );
    let taken = l.receive(Message::Request(ack_tagged("t")), src, t0(), &mut out);
    assert!(taken.is_none());
    assert_eq!(armed(&l, id), vec![("I".into(), Duration::from_secs(5))]);
}

/// A refusal (a failure before any provisional) is sent once per INVITE received: the
/// caller is still retransmitting, and each INVITE again draws it again. Timer G would send
/// it 11 times over 32 s toward whoever the INVITE's source claims to be, a forged one too.
/// The transaction stays the 32 s of the caller's retransmissions, and its ACK ends it.
#[test]
fn a_refusal_is_sent_once_per_invite_not_on_timer_g() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKr1");
    let src = target(Transport::Udp);
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    out.clear();
    l.send_response(
        id,
        Response::to_request(&inv, 404, "Not Found", Some("t")).unwrap(),
        t0(),
        &mut out,
    );
    assert_eq!(sends(&out).len(), 1, "the refusal, once");
    assert_eq!(armed(&l, id), vec![("H".into(), Duration::from_secs(32))]);
    out.clear();
    l.handle_timeout(t0() + Duration::from_secs(20), &mut out);
    assert!(sends(&out).is_empty(), "nothing resent on a timer");
    // The caller did not hear it: its INVITE again draws it again, once.
    l.receive(
        Message::Request(inv.clone()),
        src,
        t0() + Duration::from_secs(20),
        &mut out,
    );
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert!(matches!(&s[0].1, Message::Response(r) if r.status() == 404));
    out.clear();
    l.receive(
        Message::Request(request("ACK", "z9hG4bKr1")),
        src,
        t0() + Duration::from_secs(20),
        &mut out,
    );
    assert_eq!(armed(&l, id), vec![("I".into(), Duration::from_secs(25))]);
    // Unacknowledged, it ends at Timer H without a send.
    out.clear();
    let inv = request("INVITE", "z9hG4bKr2");
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    l.send_response(
        id,
        Response::to_request(&inv, 503, "Service Unavailable", Some("t")).unwrap(),
        t0(),
        &mut out,
    );
    out.clear();
    l.handle_timeout(t0() + Duration::from_secs(32), &mut out);
    assert!(sends(&out).is_empty());
    assert!(l.is_empty());
}

/// An ACK with the transaction's branch from another address neither confirms it nor
/// reaches the user as the INVITE's peer's.
#[test]
fn an_ack_from_another_address_than_the_invites_is_not_the_transactions() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let src = target(Transport::Udp);
    let elsewhere = Target {
        addr: "198.51.100.7:5060".parse().unwrap(),
        ..src
    };
    // A failure after the 100: its retransmissions go on until the INVITE's peer ACKs.
    let inv = request("INVITE", "z9hG4bKs5");
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    l.flush_trying(t0(), &mut out);
    let busy = Response::to_request(&inv, 486, "Busy Here", Some("t")).unwrap();
    l.send_response(id, busy, t0(), &mut out);
    out.clear();
    l.receive(
        Message::Request(request("ACK", "z9hG4bKs5")),
        elsewhere,
        t0(),
        &mut out,
    );
    assert_eq!(armed(&l, id).len(), 2, "G and H still run");
    l.receive(
        Message::Request(request("ACK", "z9hG4bKs5")),
        src,
        t0(),
        &mut out,
    );
    assert_eq!(armed(&l, id), vec![("I".into(), Duration::from_secs(5))]);
    // A 2xx: the ACK goes up only from the INVITE's peer.
    let inv = request("INVITE", "z9hG4bKs6");
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = l.cancelled_invite(&request("CANCEL", "z9hG4bKs6")).unwrap();
    let ok = Response::to_request(&inv, 200, "OK", Some("t")).unwrap();
    l.send_response(id, ok, t0(), &mut out);
    out.clear();
    l.receive(
        Message::Request(request("ACK", "z9hG4bKs6")),
        elsewhere,
        t0(),
        &mut out,
    );
    assert!(!out.iter().any(|o| matches!(o, TxnOutput::Ack { .. })));
    l.receive(
        Message::Request(request("ACK", "z9hG4bKs6")),
        src,
        t0(),
        &mut out,
    );
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Ack { .. })));
}

/// A second request with a running transaction's branch and method is refused, and the
/// running one keeps its responses.
#[test]
fn a_client_key_in_use_is_not_taken_over() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let tgt = target(Transport::Udp);
    let opt = request("OPTIONS", "z9hG4bKdup");
    let id = l.send_request(opt.clone(), tgt, t0(), &mut out).unwrap();
    assert!(l.send_request(opt.clone(), tgt, t0(), &mut out).is_none());
    out.clear();
    let ok = Response::to_request(&opt, 200, "OK", Some("x")).unwrap();
    l.receive(Message::Response(ok), tgt, t0(), &mut out);
    assert!(
        out.iter()
            .any(|o| matches!(o, TxnOutput::Response { id: i, .. } if *i == id))
    );
}

/// `req` with `n` more Via lines under its own (a request that came through many proxies,
/// or a long one made to draw a long response).
fn with_vias(req: &str, n: usize) -> Request {
    let more: String = (0..n)
        .map(|i| {
            format!(
                "Via: SIP/2.0/UDP 203.0.113.{}:5060;branch=z9hG4bKp{i}\r\n",
                i % 250
            )
        })
        .collect();
    let text = req.replacen("Max-Forwards", &format!("{more}Max-Forwards"), 1);
    match parse(&text) {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

/// A retransmission draws our last response again only from where that response goes, and
/// only when it is not a short copy (top Via, CSeq, method) of a long request: anyone can
/// copy a branch and spoof a peer's address, and a short datagram must not draw a long
/// response toward it (about 400 times as many bytes before). The request itself again,
/// from its peer, gets the response as before.
#[test]
fn a_retransmission_draws_no_more_than_it_is_worth_nor_from_elsewhere() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let src = target(Transport::Udp);
    let short = request("OPTIONS", "z9hG4bKamp");
    let long = with_vias(&String::from_utf8_lossy(&short.to_bytes()), 200);
    l.receive(Message::Request(long.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    let ok = Response::to_request(&long, 200, "OK", Some("t")).unwrap();
    assert!(ok.to_bytes().len() > 10 * short.to_bytes().len());
    l.send_response(id, ok, t0(), &mut out);
    out.clear();
    l.receive(Message::Request(short), src, t0(), &mut out);
    assert!(sends(&out).is_empty(), "a short copy draws nothing");
    let elsewhere = Target {
        addr: "198.51.100.7:5060".parse().unwrap(),
        ..src
    };
    l.receive(Message::Request(long.clone()), elsewhere, t0(), &mut out);
    assert!(sends(&out).is_empty(), "nor one from another address");
    l.receive(Message::Request(long), src, t0(), &mut out);
    let s = sends(&out);
    assert_eq!(s.len(), 1, "the request again, from its peer");
    assert_eq!(s[0].0, src);
    // A short request whose answer is long (a late offer's INVITE, our 183 with SDP) gets
    // it again when retransmitted: it is as long as the request.
    out.clear();
    let late = request("INVITE", "z9hG4bKamp3");
    l.receive(Message::Request(late.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    let sdp = format!("v=0\r\n{}", "a=x-pad\r\n".repeat(400));
    let mut ringing = Response::to_request(&late, 183, "Session Progress", Some("t")).unwrap();
    ringing
        .set_body(Bytes::from(sdp.clone()), Some("application/sdp"))
        .unwrap();
    l.send_response(id, ringing, t0(), &mut out);
    out.clear();
    l.receive(Message::Request(late), src, t0(), &mut out);
    let s = sends(&out);
    assert!(matches!(&s[..], [(_, Message::Response(r))] if r.status() == 183));
    // A short copy of a long INVITE: the long provisional gives way to a 100 Trying of the
    // copy's own size, which stops the caller's retransmissions all the same.
    out.clear();
    let inv = with_vias(
        &String::from_utf8_lossy(&request("INVITE", "z9hG4bKamp2").to_bytes()),
        20,
    );
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    let mut ringing = Response::to_request(&inv, 183, "Session Progress", Some("t")).unwrap();
    ringing
        .set_body(Bytes::from(sdp), Some("application/sdp"))
        .unwrap();
    l.send_response(id, ringing, t0(), &mut out);
    out.clear();
    let copy = request("INVITE", "z9hG4bKamp2");
    l.receive(Message::Request(copy.clone()), src, t0(), &mut out);
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert!(matches!(&s[0].1, Message::Response(r) if r.status() == 100));
    // From elsewhere, not even that.
    out.clear();
    l.receive(Message::Request(copy), elsewhere, t0(), &mut out);
    assert!(sends(&out).is_empty());
}

/// The bytes the server transactions hold follow what they keep: the key and the response
/// kept for sending again, until the transaction ends. A client transaction (ours) counts
/// nothing.
#[test]
fn the_server_transactions_bytes_are_counted_while_they_are_held() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let src = target(Transport::Udp);
    assert_eq!(l.server_retained(), 0);
    let bye = with_vias(
        &String::from_utf8_lossy(&request("BYE", "z9hG4bKb1").to_bytes()),
        100,
    );
    l.receive(Message::Request(bye.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    let key_only = l.server_retained();
    assert!(key_only > 0 && key_only < 2048, "{key_only}");
    let ok = Response::to_request(&bye, 200, "OK", Some("t")).unwrap();
    let len = ok.to_bytes().len();
    l.send_response(id, ok, t0(), &mut out);
    assert_eq!(l.server_retained(), key_only + len);
    // All of it its source's (an IPv4-mapped form of it names the same).
    let ip = src.addr.ip();
    assert_eq!(l.server_retained_from(ip), key_only + len);
    let mapped = match ip {
        std::net::IpAddr::V4(v4) => std::net::IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    assert_eq!(l.server_retained_from(mapped), key_only + len);
    assert_eq!(l.server_retained_from([192, 0, 2, 10].into()), 0);
    l.send_request(request("OPTIONS", "z9hG4bKc1"), src, t0(), &mut out);
    assert_eq!(l.server_retained(), key_only + len, "ours count nothing");
    // Timer J ends it: nothing is held.
    l.handle_timeout(t0() + Duration::from_secs(33), &mut out);
    assert_eq!(l.server_retained(), 0);
    assert_eq!(l.server_retained_from(ip), 0);
}

/// A response whose CSeq number is not its request's (branch and method match) is no
/// answer to it (RFC 3261 §17.1.3; §8.1.3.3): before, a callee that answered `2147483647
/// INVITE` set our ACK's number and the BYE after it to 2^31, past what SIP allows (the
/// peer's parser refuses it, so an unwanted fork's dialog was never torn down).
#[test]
fn a_response_with_another_cseq_number_is_not_the_transactions() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKc9");
    l.send_request(inv.clone(), target(Transport::Udp), t0(), &mut out)
        .unwrap();
    out.clear();
    let mut wrong = Response::to_request(&inv, 200, "OK", Some("x")).unwrap();
    wrong
        .set_header(&crate::sip::Hdr::CSEQ, "2147483647 INVITE".to_string())
        .unwrap();
    let back = l.receive(
        Message::Response(wrong),
        target(Transport::Udp),
        t0(),
        &mut out,
    );
    assert!(back.is_none(), "dropped, not a stray: {back:?}");
    assert!(out.is_empty(), "{out:?}");
    let right = Response::to_request(&inv, 200, "OK", Some("x")).unwrap();
    l.receive(
        Message::Response(right),
        target(Transport::Udp),
        t0(),
        &mut out,
    );
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Response { .. })));
}

/// An INVITE answered only provisionally has no timer (a phone may ring for long); its
/// user may give up on it later (`abandon_later`, after a call released on a fault): 64·T1
/// on, it ends without a timeout, and a further provisional does not put that off. Given
/// up on later, not now: a final answer meanwhile still gets its ACK. A transaction in any
/// other state is left to its own timers.
#[test]
fn an_invite_given_up_on_later_ends_then_unless_answered() {
    for answered in [false, true] {
        let mut l = TxnLayer::new(TimerConfig::default());
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bKc12");
        let tgt = target(Transport::Udp);
        let id = l.send_request(inv.clone(), tgt, t0(), &mut out).unwrap();
        let ringing = Response::to_request(&inv, 180, "Ringing", Some("z")).unwrap();
        l.receive(Message::Response(ringing.clone()), tgt, t0(), &mut out);
        assert!(armed(&l, id).is_empty());
        l.abandon_later(id, t0(), &mut out);
        assert_eq!(armed(&l, id), vec![("B".into(), Duration::from_secs(32))]);
        l.receive(Message::Response(ringing), tgt, t0(), &mut out);
        assert_eq!(armed(&l, id), vec![("B".into(), Duration::from_secs(32))]);
        out.clear();
        if answered {
            let busy = Response::to_request(&inv, 486, "Busy Here", Some("z")).unwrap();
            l.receive(Message::Response(busy), tgt, t0(), &mut out);
            assert_eq!(sends(&out).len(), 1, "the ACK");
            assert_eq!(armed(&l, id), vec![("D".into(), Duration::from_secs(32))]);
            l.abandon_later(id, t0(), &mut out);
            assert_eq!(armed(&l, id), vec![("D".into(), Duration::from_secs(32))]);
            continue;
        }
        l.handle_timeout(t0() + Duration::from_secs(32), &mut out);
        assert!(
            out.iter()
                .any(|o| matches!(o, TxnOutput::Terminated { .. }))
        );
        assert!(!out.iter().any(|o| matches!(o, TxnOutput::Timeout { .. })));
        assert_eq!(l.len(), (0, 0));
    }
}

/// The ACK of a failure we sent confirms the server transaction: not a retransmission,
/// though nothing goes up (before, every failed or cancelled call counted one in
/// `trunkgate_retransmissions_total{direction="absorbed"}`, which then followed the failure
/// rate and looked like loss). An ACK sent again is one.
#[test]
fn the_first_ack_of_a_failure_is_no_retransmission() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKfa1");
    let src = target(Transport::Udp);
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = passed_up(&out);
    l.send_response(
        id,
        Response::to_request(&inv, 486, "Busy Here", Some("t")).unwrap(),
        t0(),
        &mut out,
    );
    let ack = request("ACK", "z9hG4bKfa1");
    l.receive(Message::Request(ack.clone()), src, t0(), &mut out);
    assert_eq!(l.retransmissions().absorbed, 0);
    l.receive(Message::Request(ack), src, t0(), &mut out);
    assert_eq!(l.retransmissions().absorbed, 1);
}

/// An INVITE that rang (a provisional came) is never sent again: its bytes go then, not at
/// its final answer minutes later. A failure after it still gets its ACK (built from the
/// parsed request).
#[test]
fn a_ringing_invite_holds_no_wire_form_and_still_acks_its_failure() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKrw1");
    let tgt = target(Transport::Udp);
    let id = l.send_request(inv.clone(), tgt, t0(), &mut out).unwrap();
    assert!(l.holds_wire(id), "retransmitted on Timer A until answered");
    let ringing = Response::to_request(&inv, 180, "Ringing", Some("x")).unwrap();
    l.receive(Message::Response(ringing), tgt, t0(), &mut out);
    assert!(!l.holds_wire(id));
    out.clear();
    let busy = Response::to_request(&inv, 486, "Busy Here", Some("x")).unwrap();
    l.receive(Message::Response(busy), tgt, t0(), &mut out);
    let acks = sends(&out);
    assert_eq!(acks.len(), 1);
    assert!(matches!(&acks[0].1, Message::Request(r) if r.method() == Method::Ack));
}

/// Nothing answers an ACK (RFC 3261 §17): a "response" with `CSeq: n ACK` (a broken peer
/// answering our ACK, or a host that saw the branch) is dropped. Before, it matched the
/// INVITE's transaction (the key folds ACK into INVITE): each drew our ACK again, a
/// ping-pong until Timer D, and a 200 went up as another fork's answer.
#[test]
fn a_response_to_our_ack_is_dropped() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKra1");
    let tgt = target(Transport::Udp);
    l.send_request(inv.clone(), tgt, t0(), &mut out).unwrap();
    let busy = Response::to_request(&inv, 486, "Busy Here", Some("x")).unwrap();
    l.receive(Message::Response(busy), tgt, t0(), &mut out);
    for status in [481, 200] {
        let mut to_ack = Response::to_request(&inv, status, "X", Some("x")).unwrap();
        to_ack
            .set_header(&crate::sip::Hdr::CSEQ, "1 ACK".to_string())
            .unwrap();
        out.clear();
        let back = l.receive(Message::Response(to_ack), tgt, t0(), &mut out);
        assert!(back.is_none(), "{status}: {back:?}");
        assert!(out.is_empty(), "{status}: {out:?}");
    }
}

/// A transaction whose timer panics (a defect) is ended and its user told, the panic passed
/// on up. Before, it was left filed under no deadline: kept for good, counted against the
/// layer's bounds.
#[test]
fn a_transaction_whose_timer_panics_is_ended() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let req = request("OPTIONS", "z9hG4bKp1");
    let id = (l.send_request(req, target(Transport::Udp), t0(), &mut out)).unwrap();
    out.clear();
    super::drive::test_fault::arm();
    let fired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        l.handle_timeout(t0() + Duration::from_millis(500), &mut out)
    }));
    assert!(fired.is_err(), "the panic goes on up");
    assert!(!l.holds(id));
    assert!(
        out.iter()
            .any(|o| matches!(o, TxnOutput::Timeout { id: t } if *t == id))
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, TxnOutput::Terminated { id: t } if *t == id))
    );
    assert_eq!(l.poll_timeout(), None);
    // A server transaction too, whose timers fire once it answered (H here), past where
    // `abandon` ends one.
    let inv = request("INVITE", "z9hG4bKp2");
    l.receive(
        Message::Request(inv.clone()),
        target(Transport::Udp),
        t0(),
        &mut out,
    );
    let id = passed_up(&out);
    let busy = Response::to_request(&inv, 486, "Busy Here", Some("t")).unwrap();
    l.send_response(id, busy, t0(), &mut out);
    out.clear();
    super::drive::test_fault::arm();
    let fired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        l.handle_timeout(t0() + Duration::from_secs(32), &mut out)
    }));
    assert!(fired.is_err());
    assert!(!l.holds(id), "the answered server transaction is ended too");
    assert_eq!(l.poll_timeout(), None);
}

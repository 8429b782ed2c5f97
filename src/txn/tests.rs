//! Our wrapper around sipx's machines: deadlines from the caller's clock, targets, events.

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
    }
}

fn timers(out: &[TxnOutput]) -> Vec<(String, Duration)> {
    out.iter()
        .filter_map(|o| match o {
            TxnOutput::SetTimer { timer, at, .. } => Some((timer.name(), *at - t0())),
            _ => None,
        })
        .collect()
}

thread_local! {
    static T0: Instant = Instant::now();
}

fn t0() -> Instant {
    T0.with(|t| *t)
}

fn sends(out: &[TxnOutput]) -> Vec<(Target, Message)> {
    out.iter()
        .filter_map(|o| match o {
            TxnOutput::Send { target, msg, .. } => Some((*target, msg.clone())),
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
        timers(&out),
        vec![
            ("A".into(), Duration::from_millis(500)),
            ("B".into(), Duration::from_secs(32))
        ]
    );
    // Timer A fires at 0.5 s: resend, next at 0.5 + 1 s.
    out.clear();
    l.on_timer(
        &id,
        TxnTimer(sipx_sip::Timer::A),
        t0() + Duration::from_millis(500),
        &mut out,
    );
    assert_eq!(sends(&out).len(), 1);
    assert_eq!(
        timers(&out),
        vec![("A".into(), Duration::from_millis(1500))]
    );
    // Timer B: the user hears Timeout, then the transaction ends and forgets its target.
    out.clear();
    l.on_timer(
        &id,
        TxnTimer(sipx_sip::Timer::B),
        t0() + Duration::from_secs(32),
        &mut out,
    );
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Timeout { .. })));
    assert!(
        out.iter()
            .any(|o| matches!(o, TxnOutput::Terminated { .. }))
    );
    assert_eq!(l.target(&id), None);
    assert!(l.is_empty());
}

#[test]
fn reliable_transport_has_no_retransmission_timer() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    l.send_request(
        request("INVITE", "z9hG4bKc2"),
        target(Transport::Tcp),
        t0(),
        &mut out,
    );
    assert_eq!(timers(&out), vec![("B".into(), Duration::from_secs(32))]);
}

#[test]
fn non_2xx_final_is_acked_by_the_transaction_toward_the_same_target() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKc3");
    l.send_request(inv.clone(), target(Transport::Udp), t0(), &mut out);
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
    assert!(timers(&out).contains(&("D".into(), Duration::from_secs(32))));
}

#[test]
fn server_absorbs_retransmissions_and_answers_with_the_last_response() {
    let mut l = TxnLayer::new(TimerConfig::default());
    let mut out = Vec::new();
    let inv = request("INVITE", "z9hG4bKs1");
    let src = target(Transport::Udp);
    l.receive(Message::Request(inv.clone()), src, t0(), &mut out);
    let id = out
        .iter()
        .find_map(|o| match o {
            TxnOutput::Request { id, .. } => Some(id.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        timers(&out),
        vec![("Trying100".into(), Duration::from_millis(200))]
    );
    out.clear();
    let ringing = Response::to_request(&inv, 180, "Ringing", Some("t")).unwrap();
    l.send_response(&id, ringing, t0(), &mut out);
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
    assert!(l.server_pending(&id));
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
        timers(&out),
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
        l.on_timer(&id, TxnTimer(sipx_sip::Timer::E), now, &mut out);
        let next = timers(&out)[0].1 - (now - t0());
        intervals.push(next);
        interval = next;
    }
    assert_eq!(
        intervals,
        [1, 2, 4, 4, 4].map(Duration::from_secs).to_vec(),
        "T1 doubling capped at T2"
    );
    out.clear();
    l.on_timer(
        &id,
        TxnTimer(sipx_sip::Timer::F),
        t0() + Duration::from_secs(32),
        &mut out,
    );
    assert!(out.iter().any(|o| matches!(o, TxnOutput::Timeout { .. })));
}

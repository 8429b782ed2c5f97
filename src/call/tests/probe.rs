//! Whether the peers still have an answered call (`probe.rs`): an in-dialog OPTIONS every
//! `[sip] probe_s` on a leg without a session timer; 481, 408 or silence release the call.

use super::*;
use crate::config::DEFAULT_PROBE;
use crate::interop::session_timer::{SessionTimerPolicy, TimerMode};

/// The probe `h` sent `to` (one, perhaps retransmitted), checked to be within that leg's
/// dialog.
fn probe(h: &mut H, to: &str, call_id: &str) -> Request {
    let mut sent = h.take_requests(to, Method::Options);
    assert!(!sent.is_empty(), "a probe to {to}");
    assert!(sent.iter().all(|s| s.cseq() == sent[0].cseq()), "one probe");
    let p = sent.remove(0);
    assert_eq!(p.call_id().as_deref(), Some(call_id));
    assert!(
        p.to_tag().is_some() && p.from_tag().is_some(),
        "in the dialog"
    );
    p
}

#[test]
fn both_legs_are_asked_each_interval_and_a_481_releases_the_call() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let carrier_call_id = inv.call_id().unwrap();
    // Nothing before the interval.
    h.advance(DEFAULT_PROBE - Duration::from_secs(1));
    assert!(h.take_requests(PHONE, Method::Options).is_empty());
    assert!(h.take_requests(CARRIER_A, Method::Options).is_empty());
    h.advance(Duration::from_secs(2));
    let to_phone = probe(&mut h, PHONE, "call-1@127.0.0.2");
    assert_eq!(to_phone.to_tag().as_deref(), Some("alice1"));
    assert_eq!(to_phone.from_tag(), ok.to_tag());
    let to_carrier = probe(&mut h, CARRIER_A, &carrier_call_id);
    assert_eq!(
        to_carrier.uri(),
        "sip:+8610123@127.0.0.3",
        "the leg's target"
    );
    assert!(
        to_carrier.cseq().unwrap().0 > inv.cseq().unwrap().0,
        "the dialog's next CSeq"
    );
    // Both answer (the phone with 405: it answered within the dialog all the same).
    h.recv_msg(PHONE, reply(&to_phone, 405, "alice1", &[], None));
    h.recv_msg(CARRIER_A, reply(&to_carrier, 200, "carrier1", &[], None));
    assert!(h.take(PHONE).is_empty() && h.take(CARRIER_A).is_empty());
    // The next round, an interval after the answers.
    h.advance(DEFAULT_PROBE);
    let to_phone = probe(&mut h, PHONE, "call-1@127.0.0.2");
    let to_carrier = probe(&mut h, CARRIER_A, &carrier_call_id);
    h.recv_msg(PHONE, reply(&to_phone, 200, "alice1", &[], None));
    assert!(h.cdrs.is_empty());
    // The carrier restarted and lost the call: both legs get a BYE.
    h.recv_msg(CARRIER_A, reply(&to_carrier, 481, "carrier1", &[], None));
    let bye = h.one_request(PHONE, Method::Bye);
    assert!(
        bye.header(&Hdr::REASON)
            .is_some_and(|r| r.contains("cause=41"))
    );
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    let cdr = &h.cdrs[0];
    assert_eq!(cdr.call_tag, CallTag::PeerUnreachable);
    assert_eq!(cdr.cause, 41);
    assert!(cdr.events.iter().any(|e| e == "probe_failed_callee"));
}

#[test]
fn a_peer_that_answers_nothing_releases_the_call_after_timer_f() {
    let mut h = H::new();
    answered_call(&mut h);
    h.advance(DEFAULT_PROBE + Duration::from_secs(1));
    let to_carrier = h.take_requests(CARRIER_A, Method::Options).remove(0);
    h.recv_msg(CARRIER_A, reply(&to_carrier, 200, "carrier1", &[], None));
    // The phone is gone: its probe is retransmitted, then given up at 64·T1.
    h.advance(Duration::from_secs(30));
    assert!(h.cdrs.is_empty());
    assert!(h.take_requests(PHONE, Method::Options).len() > 1);
    h.advance(Duration::from_secs(3));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
    assert_eq!(h.cdrs[0].cause, 102);
    assert!(h.cdrs[0].events.iter().any(|e| e == "probe_failed_caller"));
    assert!(!h.take_requests(CARRIER_A, Method::Bye).is_empty());
}

/// The requests `h` sent `to`, by method.
fn methods_to(h: &mut H, to: &str) -> Vec<Request> {
    h.take(to)
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        })
        .collect()
}

/// A leg whose session timer runs is not probed (its refreshes prove it); nor one whose
/// profile turns probes off, or says its peer takes no OPTIONS.
#[test]
fn legs_with_a_session_timer_or_probes_off_are_not_asked() {
    for case in ["timer", "off", "allow"] {
        let mut h = H::with(config_with(|name, p| {
            if name != "carrier-a" {
                return;
            }
            match case {
                "timer" => {
                    p.session_timer = SessionTimerPolicy {
                        mode: TimerMode::Require,
                        expires: Duration::from_secs(3600),
                        min_se: Duration::from_secs(90),
                    }
                }
                "off" => p.probe = None,
                _ => p.allow = Some(vec!["INVITE".into(), "ACK".into(), "BYE".into()]),
            }
        }));
        let (inv, _) = answered_call(&mut h);
        if case == "timer" {
            assert!(inv.has_header(&Hdr::SESSION_EXPIRES));
        }
        h.advance(DEFAULT_PROBE + Duration::from_secs(1));
        let to_phone = probe(&mut h, PHONE, "call-1@127.0.0.2");
        h.recv_msg(PHONE, reply(&to_phone, 200, "alice1", &[], None));
        let sent = methods_to(&mut h, CARRIER_A);
        assert!(
            sent.iter().all(|r| r.method() != Method::Options),
            "{case}: the carrier is not probed"
        );
        // (The carrier's timer is refreshed by re-INVITE at half its hour; it answers.)
        if case == "timer" {
            let re = sent.iter().find(|r| r.method() == Method::Invite);
            let re = re.expect("the carrier's refresh");
            h.recv_msg(CARRIER_A, reply(re, 200, "carrier1", &[], Some(SDP)));
            h.one_request(CARRIER_A, Method::Ack);
        }
        h.advance(DEFAULT_PROBE);
        h.take_requests(PHONE, Method::Options);
        let sent = methods_to(&mut h, CARRIER_A);
        assert!(sent.iter().all(|r| r.method() != Method::Options));
        assert!(h.cdrs.is_empty(), "{case}: {:?}", h.cdrs);
    }
}

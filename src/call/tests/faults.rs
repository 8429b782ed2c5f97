//! A panic in the core is a defect; it costs the call it happened in (released as the
//! gateway's failure, its CDR written) or the one event, never the process or another call.

use super::*;
use crate::call::router::test_fault;

/// The phone calls +8610123 (Call-ID `call_id`); the INVITE carrier-a gets.
fn phone_calls(h: &mut H, call_id: &str) -> Request {
    h.recv(
        PHONE,
        &invite_text(call_id, &format!("z9hG4bK{call_id}"), "+8610123", ""),
    );
    h.take(PHONE);
    h.one_request(CARRIER_A, Method::Invite)
}

/// Faults made on purpose are per thread: a test arms them for itself only.
fn arm(n: u32) {
    test_fault::arm(FaultPlace::Call, n);
}

/// A panic once a call has ended, before its CDR was written (building it, say): the fault
/// still writes it, as the call ended (the phone's BYE), and the gateway's count of calls
/// up is right after. Before, the CDR was lost (the release after the fault found the call
/// ended already and did nothing), and the count of calls up stayed one too high while
/// other ended calls lingered.
#[test]
fn a_panic_between_a_calls_end_and_its_cdr_still_writes_the_cdr() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    // A second call up, and a third ended and lingering (its BYE to the carrier unanswered).
    let inv2 = phone_calls(&mut h, "f21");
    h.carrier_answers(&inv2, "c2", SDP);
    let inv3 = phone_calls(&mut h, "f22");
    let ok3 = h.carrier_answers(&inv3, "c3", SDP);
    let bye3 = from_phone_in("f22", "BYE", &ok3.to_tag().unwrap(), 2, "z9hG4bKf3b", "");
    h.recv(PHONE, &bye3);
    h.take(PHONE);
    h.take(CARRIER_A);
    assert_eq!(h.core.active_calls(), 2);
    let tag = ok.to_tag().unwrap();
    test_fault::arm_ended(1);
    h.recv(PHONE, &from_phone("BYE", &tag, 2, "z9hG4bKfend", ""));
    let ours: Vec<_> = (h.cdrs.iter())
        .filter(|c| c.call_id == "call-1@127.0.0.2")
        .collect();
    assert_eq!(ours.len(), 1, "its CDR");
    assert_eq!(ours[0].call_tag, CallTag::CallerBye);
    assert!(h.events.contains(&CoreEvent::Fault {
        place: FaultPlace::Call
    }));
    assert_eq!(h.core.active_calls(), 1, "the second call alone");
    // The carrier's leg, up still when the fault came, gets its BYE (before, none: it stayed
    // up, billed, for a call the gateway had forgotten); the phone, which hung up, none.
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.to_tag().as_deref(), Some("carrier1"));
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
}

/// A panic once the callee's 2xx made the call answered but before the caller was sent it:
/// the caller's INVITE gets 500 and the callee a BYE, and the CDR says the call was never
/// answered. Before, the caller was sent a BYE for a dialog it never had, its INVITE left
/// without a final answer (ringing until its user gave up), and the CDR said 200.
#[test]
fn a_panic_between_the_callees_answer_and_the_callers_leaves_the_call_unanswered() {
    let mut h = H::new();
    let inv = phone_calls(&mut h, "fa1");
    test_fault::arm_answered(1);
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "ca1", &contact, Some(SDP)));
    assert_eq!(h.failures(PHONE), vec![500]);
    assert!(h.take_requests(PHONE, Method::Bye).is_empty());
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.to_tag().as_deref(), Some("ca1"));
    assert_eq!(h.cdrs.len(), 1);
    let cdr = &h.cdrs[0];
    assert_eq!((cdr.call_tag, cdr.status), (CallTag::GatewayError, 500));
    assert!(cdr.answer.is_none(), "never answered for the caller");
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn a_panic_outside_any_call_costs_its_event_only() {
    let mut h = H::new();
    let inv = phone_calls(&mut h, "f6");
    // The core panics on the next input (the carrier's 180): it is lost, nothing else.
    test_fault::arm(FaultPlace::Core, 1);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c6", &[], None));
    assert!(h.take(PHONE).is_empty());
    assert!(h.events.contains(&CoreEvent::Fault {
        place: FaultPlace::Core
    }));
    // The call goes on: the carrier's answer reaches the phone.
    h.carrier_answers(&inv, "c6", SDP);
    assert!(h.cdrs.is_empty());
}

#[test]
fn a_panic_in_one_calls_handling_releases_that_call_and_no_other() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    // A second call, ringing at the carrier.
    h.recv(
        PHONE,
        &invite_text("call-2@127.0.0.2", "z9hG4bKf2", "+8610124", ""),
    );
    h.take(PHONE);
    let inv2 = h.one_request(CARRIER_A, Method::Invite);
    let tag = ok.to_tag().unwrap();
    // The first call's handling of the phone's INFO panics.
    arm(1);
    let info = from_phone("INFO", &tag, 2, "z9hG4bKfinfo", "");
    h.recv(PHONE, &info);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_id, "call-1@127.0.0.2");
    assert_eq!(
        (h.cdrs[0].call_tag, h.cdrs[0].cause),
        (CallTag::GatewayError, 41)
    );
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
    assert!(h.events.contains(&CoreEvent::Fault {
        place: FaultPlace::Call
    }));
    // The INFO whose handling failed is not held for ever: sent again, it is answered.
    h.take(PHONE);
    h.recv(PHONE, &info);
    assert_eq!(h.statuses(PHONE), vec![481]);
    // The other call goes on as if nothing happened.
    h.recv_msg(CARRIER_A, reply(&inv2, 486, "c2", &[], None));
    assert_eq!(h.failures(PHONE), vec![486]);
    assert_eq!(h.cdrs.len(), 2);
    assert_eq!(h.cdrs[1].call_tag, CallTag::CalleeReject);
    // What the first call sent (its BYEs) ends; nothing of either call stays.
    h.advance(Duration::from_secs(40));
    assert_idle(&mut h);
}

#[test]
fn a_call_whose_release_panics_too_still_gets_its_cdr_and_its_caller_an_answer() {
    let mut h = H::new();
    let inv = phone_calls(&mut h, "f3");
    // The carrier's 180 panics the call, and so does its release.
    arm(2);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c3", &[], None));
    assert_eq!(h.failures(PHONE), vec![500]);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(
        (h.cdrs[0].call_tag, h.cdrs[0].status),
        (CallTag::GatewayError, 500)
    );
    assert_eq!(h.core.stats().calls, 0);
    // The carrier's INVITE is left to its transaction (a 200 for it then finds no call:
    // ACKed and hung up as an orphan).
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c3", &[], Some(SDP)));
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    h.advance(Duration::from_secs(40));
    assert_idle(&mut h);
}

/// A call released after a panic while its INVITE rang at the callee: the callee answers
/// the CANCEL but never the INVITE. That INVITE's transaction (no timer of its own once
/// answered provisionally) is given up on 64·T1 later, as the call's linger would have;
/// before, it and its owner entry stayed for ever, one per fault. A final answer that does
/// come in time still gets its ACK.
#[test]
fn a_call_released_after_a_panic_leaves_no_ringing_invite_open() {
    for answers in [false, true] {
        let mut h = H::new();
        let inv = phone_calls(&mut h, "f7");
        h.recv_msg(CARRIER_A, reply(&inv, 180, "c7", &[], None));
        h.take(PHONE);
        arm(1);
        h.recv_msg(CARRIER_A, reply(&inv, 183, "c7", &[], None));
        assert_eq!(h.cdrs.len(), 1);
        let cancel = h.one_request(CARRIER_A, Method::Cancel);
        h.recv_msg(CARRIER_A, reply(&cancel, 200, "c7", &[], None));
        h.advance(Duration::from_secs(10));
        if answers {
            h.take(CARRIER_A);
            h.recv_msg(CARRIER_A, reply(&inv, 487, "c7", &[], None));
            assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
        }
        h.advance(Duration::from_secs(30));
        assert_idle(&mut h);
    }
}

#[test]
fn a_panic_in_a_calls_timer_costs_that_call_only() {
    let mut h = H::new();
    let inv = phone_calls(&mut h, "f4");
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c4", &[], None));
    h.take(PHONE);
    // The call's next timer (its ring timeout) panics: the call is released, and the core
    // takes the next call as before.
    arm(1);
    h.advance(Duration::from_secs(61));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::GatewayError);
    // (Sent again until the phone ACKs, which this one does not.)
    let finals = h.failures(PHONE);
    assert!(
        !finals.is_empty() && finals.iter().all(|s| *s == 500),
        "{finals:?}"
    );
    assert!(!h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    h.take(CARRIER_A);
    h.recv(PHONE, &invite_text("f5", "z9hG4bKf5", "+8610123", ""));
    assert_eq!(h.statuses(PHONE), vec![100]);
    h.one_request(CARRIER_A, Method::Invite);
}

/// A panic before an INVITE is a call (admission, routing, building it) costs that INVITE
/// only: it is answered 500 and its resend gets the same 500 (absorbed, not handled and
/// panicking again), and the peer's call count taken for it is given back. Before, the
/// INVITE stayed unanswered until the caller gave up, and the count was lost for good.
#[test]
fn a_panic_before_an_invite_is_a_call_answers_it_500_and_gives_back_its_count() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.limits.calls = crate::config::CallLimits {
                max_calls: Some(1),
                cps: None,
            };
        }
    }));
    test_fault::arm_new_call(1);
    let invite = invite_text("nc1", "z9hG4bKnc1", "+8610123", "");
    h.recv(PHONE, &invite);
    assert_eq!(h.statuses(PHONE), vec![500]);
    assert!(h.take(CARRIER_A).is_empty());
    assert!(h.events.contains(&CoreEvent::Fault {
        place: FaultPlace::Core
    }));
    h.recv(PHONE, &invite);
    assert_eq!(
        h.statuses(PHONE),
        vec![500],
        "the resend gets the same answer"
    );
    // The pbx's one call is free for the next INVITE.
    h.recv(PHONE, &invite_text("nc2", "z9hG4bKnc2", "+8610123", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
}

/// A reload whose handling panics (a defect) is applied whole or not at all: the running
/// configuration stays, its limits with it, and the shell is told it failed. Before, a
/// panic once the new limits were in place left them so under the old configuration, or,
/// past the swap, the new configuration without its registrations, reported as applied.
#[test]
fn a_reload_that_panics_leaves_the_running_configuration_whole() {
    for at in [1, 2] {
        let mut h = H::new();
        let running = h.core.config().clone();
        let (_inv, _ok) = answered_call(&mut h);
        let mut one_call = config();
        one_call.limits = crate::config::CallLimits {
            max_calls: Some(1),
            cps: None,
        };
        let one_call = Arc::new(one_call);
        test_fault::arm_reload(at);
        assert!(!h.reload(one_call.clone()), "fault point {at}");
        assert!(Arc::ptr_eq(h.core.config(), &running), "fault point {at}");
        // The gateway's limit is still none: a second call reaches the carrier.
        phone_calls(&mut h, &format!("rl{at}"));
        // Applied once the defect is gone: a third call is over the limit.
        assert!(h.reload(one_call.clone()));
        h.recv(
            PHONE,
            &invite_text(
                &format!("rm{at}"),
                &format!("z9hG4bKrm{at}"),
                "+8610123",
                "",
            ),
        );
        assert!(h.statuses(PHONE).contains(&503), "fault point {at}");
    }
}

/// A reload that re-addresses a resting trunk and then panics leaves the trunk resting: the
/// rest its old server asked for still holds, for the address still in use. Before, the
/// configuration was put back but the rest stayed cleared.
#[test]
fn a_reload_that_panics_leaves_a_trunks_rest_as_it_was() {
    let mut h = H::new();
    carrier_a_resting(&mut h, "fr1");
    let moved = Arc::new(config_with(|n, p| {
        if n == "carrier-a" {
            p.address.addr = "127.0.0.9:5060".parse().expect("address");
        }
    }));
    test_fault::arm_reload(2);
    assert!(!h.reload(moved));
    h.recv(PHONE, &invite_text("fr2", "z9hG4bKfr2", "+8610123", ""));
    assert!(
        h.take_requests(CARRIER_A, Method::Invite).is_empty(),
        "resting"
    );
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
}

/// A panic in a turn of the stop's hang-up, outside any call, costs that turn: the calls are
/// still up and a next turn is asked for, which hangs them up. Three such turns in a row and
/// the hang-up gives up (a stop must end). Before, it unwound into the shell.
#[test]
fn a_panic_in_a_hang_up_turn_leaves_the_calls_to_the_next() {
    let mut h = H::new();
    let (_inv, _ok) = answered_call(&mut h);
    test_fault::arm(FaultPlace::Core, 1);
    assert!(h.core.hang_up_some(h.now, 10), "a next turn");
    h.apply();
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert!(h.events.contains(&CoreEvent::Fault {
        place: FaultPlace::Core
    }));
    assert_eq!(h.core.active_calls(), 1);
    assert!(!h.core.hang_up_some(h.now, 10));
    h.apply();
    h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(h.cdrs.len(), 1);
    // Every turn panicking: the third gives up.
    let mut h = H::new();
    let (_inv, _ok) = answered_call(&mut h);
    test_fault::arm(FaultPlace::Core, 3);
    assert!(h.core.hang_up_some(h.now, 10));
    assert!(h.core.hang_up_some(h.now, 10));
    assert!(!h.core.hang_up_some(h.now, 10), "given up");
}

/// A panic as a call ends whose callee's 2xx was held for the caller's PRACK (the callee
/// hung up): the caller's INVITE gets its final answer, and no BYE on its early dialog; the
/// CDR says unanswered. Before, the caller was sent a BYE and its INVITE left unanswered.
#[test]
fn a_panic_ending_a_call_whose_2xx_was_held_for_prack_answers_the_caller() {
    let mut h = H::new();
    h.recv(PHONE, &super::prack::invite_100rel("fp1", "z9hG4bKfp1"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c6", &[], Some(SDP)));
    let contact = [(Hdr::CONTACT, "<sip:c@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "c6", &contact, Some(SDP)));
    h.take(PHONE);
    test_fault::arm_ended(1);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "c6", 2, "z9hG4bKfp1b", ""),
    );
    let to_phone = h.take(PHONE);
    assert!(
        to_phone
            .iter()
            .all(|m| matches!(m, Message::Response(r) if r.status() >= 400)),
        "{to_phone:?}"
    );
    assert_eq!(to_phone.len(), 1, "its final answer, once");
    assert_eq!(h.cdrs.len(), 1);
    assert!(h.cdrs[0].answer.is_none());
    let Message::Response(r) = &to_phone[0] else {
        unreachable!()
    };
    assert_eq!(
        r.status(),
        h.cdrs[0].status,
        "what the caller got is what the CDR says"
    );
}

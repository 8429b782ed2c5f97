//! `[limits]`: calls per second and calls at once, for the gateway and per peer, and the
//! maximum call duration. Refusals are 503 with Retry-After, a CDR tagged `rate_limited`, and
//! an event the shell counts.

use super::*;
use crate::config::{CallLimits, PeerName};

fn limited(global: CallLimits, peers: &[(&str, CallLimits)]) -> H {
    let mut cfg = config_with(|n, p| {
        if let Some((_, l)) = peers.iter().find(|(name, _)| *name == n) {
            p.limits.calls = *l;
        }
    });
    cfg.limits = global;
    H::with(cfg)
}

fn call(h: &mut H, n: u32) {
    h.recv(
        PHONE,
        &invite_text(
            &format!("lim{n}"),
            &format!("z9hG4bKlim{n}"),
            "+8610123",
            "",
        ),
    );
}

/// The phone's last final status and the 503's Retry-After.
fn refused(h: &mut H) -> Option<(u16, Option<String>)> {
    h.take_responses(PHONE)
        .into_iter()
        .rfind(|r| r.status() >= 200)
        .map(|r| (r.status(), r.header(&Hdr::RETRY_AFTER)))
}

fn limit_events(h: &H) -> Vec<(String, &'static str)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            CoreEvent::LimitRefused { peer, reason } => Some((peer.to_string(), *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn gateway_cps_refuses_the_excess_with_503_and_refills() {
    // 5 per second: a burst of one, then one every 200 ms.
    let mut h = limited(
        CallLimits {
            max_calls: None,
            cps: Some(5),
        },
        &[],
    );
    call(&mut h, 1);
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
    call(&mut h, 2);
    assert_eq!(refused(&mut h), Some((503, Some("1".into()))));
    assert!(h.take(CARRIER_A).is_empty(), "nothing forwarded");
    let cdr = h.cdrs.last().unwrap();
    assert_eq!((cdr.call_tag, cdr.cause), (CallTag::RateLimited, 42));
    // The gateway's limit, told apart from the peer's own.
    assert_eq!(limit_events(&h), vec![("pbx".to_string(), "gateway_cps")]);
    h.advance(Duration::from_millis(200));
    call(&mut h, 3);
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
}

#[test]
fn gateway_max_calls_counts_calls_in_progress() {
    let mut h = limited(
        CallLimits {
            max_calls: Some(1),
            cps: None,
        },
        &[],
    );
    call(&mut h, 1);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    call(&mut h, 2);
    assert_eq!(refused(&mut h), Some((503, Some("10".into()))));
    // The first call ends: room for the next one.
    h.recv_msg(CARRIER_A, reply(&inv, 486, "t1", &[], None));
    h.take(PHONE);
    call(&mut h, 3);
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
}

#[test]
fn a_peer_over_its_max_calls_is_skipped_for_the_next_of_the_route() {
    let one = CallLimits {
        max_calls: Some(1),
        cps: None,
    };
    let mut h = limited(
        CallLimits::default(),
        &[("carrier-a", one), ("carrier-b", one)],
    );
    call(&mut h, 1);
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
    // carrier-a is full: the second call goes to carrier-b.
    call(&mut h, 2);
    assert!(h.take(CARRIER_A).is_empty());
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
    // Both full: 503 to the caller, without Retry-After (the route is full, not the
    // gateway), and the CDR says why.
    call(&mut h, 3);
    assert_eq!(refused(&mut h), Some((503, None)));
    let cdr = h.cdrs.last().unwrap();
    assert_eq!(cdr.call_tag, CallTag::RateLimited);
    assert!(cdr.events.contains(&"peer_limited_max_calls".to_string()));
    assert_eq!(
        limit_events(&h),
        vec![
            ("carrier-a".to_string(), "max_calls"),
            ("carrier-a".to_string(), "max_calls"),
            ("carrier-b".to_string(), "max_calls")
        ]
    );
    assert_eq!(h.core.peer_calls(&PeerName("carrier-a".into())), 1);
    assert_eq!(h.core.peer_calls(&PeerName("pbx".into())), 2);
}

#[test]
fn counts_return_to_zero_however_calls_end() {
    let two = CallLimits {
        max_calls: Some(2),
        cps: None,
    };
    let mut h = limited(CallLimits::default(), &[("pbx", two), ("carrier-a", two)]);
    // Answered and hung up; rejected; failed over then answered at carrier-b and hung up.
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let bye = phone_bye(&tag, 2, "z9hG4bKlbye");
    h.recv(PHONE, &bye);
    let b = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, reply(&b, 200, "carrier1", &[], None));
    call(&mut h, 2);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 503, "t2", &[], None));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, reply(&inv_b, 486, "t2b", &[], None));
    assert_idle(&mut h);
    for peer in ["pbx", "carrier-a", "carrier-b"] {
        assert_eq!(h.core.peer_calls(&PeerName(peer.into())), 0, "{peer}");
    }
}

/// The phone hangs up and the carrier, gone, never answers our BYE: the call is over (its
/// CDR written), so the phone's one slot is free at once, not after the BYE's 32 s; the
/// peer's and the gateway's alike. Before, the gateway's `max_calls` counted the ended call
/// until it was forgotten, and an outage refused new calls that long.
#[test]
fn an_ended_call_frees_its_slots_while_its_bye_is_unanswered() {
    let one = CallLimits {
        max_calls: Some(1),
        cps: None,
    };
    for gateways in [false, true] {
        let mut h = if gateways {
            limited(one, &[])
        } else {
            limited(CallLimits::default(), &[("pbx", one)])
        };
        let (_inv, ok) = answered_call(&mut h);
        let tag = ok.to_tag().unwrap();
        h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKlbye2"));
        h.one_request(CARRIER_A, Method::Bye);
        assert_eq!(h.cdrs.len(), 1);
        assert_eq!(
            h.core.active_calls(),
            0,
            "the ended call is no call in progress"
        );
        // But the core still holds it (its BYE waits for an answer): what a shutdown
        // hangs up and a reload counts.
        assert_eq!(h.core.calls_held(), 1);
        h.take(PHONE);
        call(&mut h, 2);
        let inv = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(CARRIER_A, reply(&inv, 180, "t2", &[], None));
        assert_eq!(h.core.active_calls(), 1);
        if !gateways {
            assert_eq!(h.core.peer_calls(&PeerName("pbx".into())), 1);
        }
        // The first call, forgotten once its BYE timed out, is not released twice.
        h.advance(Duration::from_secs(40));
        assert_eq!(h.core.stats().calls, 1);
        assert_eq!(h.core.active_calls(), 1);
        if !gateways {
            assert_eq!(h.core.peer_calls(&PeerName("pbx".into())), 1);
        }
        call(&mut h, 3);
        assert_eq!(
            refused(&mut h),
            Some((503, Some("10".into()))),
            "still one at most"
        );
    }
}

#[test]
fn max_call_duration_releases_an_answered_call_with_bye_both_ways() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.limits.max_call_duration = Some(Duration::from_secs(60));
        }
    }));
    answered_call(&mut h);
    h.advance(Duration::from_secs(59));
    assert!(h.cdrs.is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::MaxDuration);
    assert_eq!(h.cdrs[0].duration_ms, 60_000);
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
}

/// INVITEs refused because every peer of their route is over its limits (nothing went out)
/// are refusals like those before a call exists: their CDRs are held to the caller's
/// peer's `[cdr] refused_rate`, the rest counted. Before, each wrote a full CDR: a flood of
/// them toward a trunk at its `max_calls` filled the CDR file at the rate it came.
#[test]
fn refusals_by_the_routes_limits_are_held_to_the_refused_rate() {
    let full = CallLimits {
        max_calls: Some(1),
        cps: None,
    };
    let mut cfg = config_with(|n, p| {
        if n.starts_with("carrier") {
            p.limits.calls = full;
        }
    });
    cfg.cdr_refused_rate = std::num::NonZeroU32::new(3);
    let mut h = H::with(cfg);
    call(&mut h, 0);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    call(&mut h, 1);
    h.one_request(CARRIER_B, Method::Invite);
    for n in 2..12 {
        call(&mut h, n);
    }
    let finals: Vec<u16> = h
        .statuses(PHONE)
        .into_iter()
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals, vec![503; 10], "every one answered");
    assert_eq!(h.cdrs.len(), 3, "a second's worth written");
    assert!(h.cdrs.iter().all(|c| c.call_tag == CallTag::RateLimited));
    let unrecorded = h
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                CoreEvent::RefusalUnrecorded {
                    tag: CallTag::RateLimited,
                    ..
                }
            )
        })
        .count();
    assert_eq!(unrecorded, 7);
    // A call that went out and failed is no refusal: its CDR is written, whatever the rate.
    h.recv_msg(CARRIER_A, reply(&inv, 486, "c0", &[], None));
    assert_eq!(h.cdrs.len(), 4);
}

/// Refusals from many peers together write no more CDRs a second than
/// `[cdr] refused_rate_total`, each peer's own `refused_rate` notwithstanding: a flood
/// forged in many peers' names (their addresses are easy to learn) cannot fill the disk
/// at the core's pace. Every one is still answered. A review found it.
#[test]
fn refusals_from_many_peers_are_held_to_the_total_refused_rate() {
    let one = CallLimits {
        max_calls: Some(1),
        cps: None,
    };
    let mut cfg = config();
    cfg.limits = one;
    cfg.cdr_refused_rate = std::num::NonZeroU32::new(3);
    cfg.cdr_refused_rate_total = std::num::NonZeroU32::new(4);
    let mut h = H::with(cfg);
    call(&mut h, 0);
    h.one_request(CARRIER_A, Method::Invite);
    for n in 1..6 {
        call(&mut h, n);
    }
    for n in 6..11 {
        let invite = invite_text(&format!("lim{n}"), &format!("z9hG4bKlim{n}"), "1000", "")
            .replace(
                "Via: SIP/2.0/UDP 127.0.0.2:5060",
                "Via: SIP/2.0/UDP 127.0.0.3:5060",
            );
        h.recv(CARRIER_A, &invite);
    }
    let refused = |to: &str, h: &mut H| (h.statuses(to).into_iter()).filter(|s| *s == 503).count();
    assert_eq!(refused(PHONE, &mut h), 5);
    assert_eq!(refused(CARRIER_A, &mut h), 5);
    assert_eq!(
        h.cdrs.len(),
        4,
        "the PBX's 3, then 1 of the carrier's: {:?}",
        h.cdrs
    );
    assert!(h.cdrs.iter().all(|c| c.call_tag == CallTag::RateLimited));
}

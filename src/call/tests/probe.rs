//! Whether the peers still have an answered call (`probe.rs`): an in-dialog OPTIONS every
//! `[sip] probe_s` on a leg without a session timer; 481, 408 or silence release the call.

use super::*;
use crate::config::DEFAULT_PROBE;
use crate::interop::session_timer::{SessionTimerPolicy, TimerMode};

/// The standard gateway with the PBX's legs probed too (only trunks are, by default).
fn probing_both() -> H {
    H::with(config_with(|_, p| p.probe = Some(DEFAULT_PROBE)))
}

/// The transaction of the last message sent `to`.
fn last_txn(h: &H, to: &str) -> crate::txn::TxnId {
    h.last_txn_to(to)
}

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
    let mut h = probing_both();
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
    let mut h = probing_both();
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
            p.probe = Some(DEFAULT_PROBE);
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
        let sent = methods_to(&mut h, CARRIER_A);
        assert!(
            sent.iter().all(|r| r.method() != Method::Options),
            "{case}: the carrier is not probed"
        );
        // (The carrier's timer is refreshed by re-INVITE at half its hour; it answers. The
        // phone's probe, due then too, waits for it.)
        if case == "timer" {
            let re = sent.iter().find(|r| r.method() == Method::Invite);
            let re = re.expect("the carrier's refresh");
            h.recv_msg(CARRIER_A, reply(re, 200, "carrier1", &[], Some(SDP)));
            h.one_request(CARRIER_A, Method::Ack);
            h.advance(Duration::from_secs(4));
        }
        let to_phone = probe(&mut h, PHONE, "call-1@127.0.0.2");
        h.recv_msg(PHONE, reply(&to_phone, 200, "alice1", &[], None));
        h.advance(DEFAULT_PROBE);
        h.take_requests(PHONE, Method::Options);
        let sent = methods_to(&mut h, CARRIER_A);
        assert!(sent.iter().all(|r| r.method() != Method::Options));
        assert!(h.cdrs.is_empty(), "{case}: {:?}", h.cdrs);
    }
}

/// By default only trunks are probed: a phone behind NAT may not hear an OPTIONS once its
/// binding lapsed mid-call, and would be released talking.
#[test]
fn by_default_only_the_trunks_leg_is_asked() {
    let mut h = H::new();
    answered_call(&mut h);
    h.advance(DEFAULT_PROBE + Duration::from_secs(1));
    assert!(h.take_requests(PHONE, Method::Options).is_empty());
    let to_carrier = h.take_requests(CARRIER_A, Method::Options).remove(0);
    h.recv_msg(CARRIER_A, reply(&to_carrier, 200, "carrier1", &[], None));
    h.advance(DEFAULT_PROBE);
    assert!(h.take_requests(PHONE, Method::Options).is_empty());
    assert!(h.cdrs.is_empty());
}

/// A probe that cannot be sent (a TCP connection we could not open, say), or an answer by
/// which RFC 5057 says the dialog is gone (404: its target), is doubtful: a proxy on the
/// way may be having a bad minute. The leg is asked again 32 s later, and three doubtful
/// outcomes in a row release the call; an answer in between clears them.
#[test]
fn doubtful_outcomes_are_asked_again_and_three_in_a_row_release_the_call() {
    let mut h = H::new();
    answered_call(&mut h);
    h.advance(DEFAULT_PROBE + Duration::from_secs(1));
    h.take_requests(CARRIER_A, Method::Options);
    h.input(Input::SendFailed(last_txn(&h, CARRIER_A)));
    h.advance(Duration::from_secs(31));
    assert!(h.take(CARRIER_A).is_empty(), "not before 32 s");
    h.advance(Duration::from_secs(2));
    let second = h.take_requests(CARRIER_A, Method::Options).remove(0);
    h.recv_msg(CARRIER_A, reply(&second, 404, "carrier1", &[], None));
    // Two doubts; an answer clears them, and the next probe is an interval on.
    h.advance(Duration::from_secs(33));
    let third = h.take_requests(CARRIER_A, Method::Options).remove(0);
    h.recv_msg(CARRIER_A, reply(&third, 200, "carrier1", &[], None));
    h.advance(Duration::from_secs(60));
    assert!(h.take(CARRIER_A).is_empty());
    for n in 0..3 {
        // The first an interval after the answer (60 s of it gone by).
        h.advance(if n == 0 {
            DEFAULT_PROBE - Duration::from_secs(59)
        } else {
            Duration::from_secs(33)
        });
        assert!(h.cdrs.is_empty(), "after {n} doubtful answers");
        let probe = h.take_requests(CARRIER_A, Method::Options).remove(0);
        h.recv_msg(CARRIER_A, reply(&probe, 502, "carrier1", &[], None));
    }
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(
        (h.cdrs[0].call_tag, h.cdrs[0].cause),
        (CallTag::PeerUnreachable, 41)
    );
}

/// The carrier's proxy's challenge to a probe.
const CHALLENGE: &str =
    "Digest realm=\"proxy.carrier.example\", nonce=\"n1\", qop=\"auth\", algorithm=MD5";

/// An answered call toward a carrier with `[auth]`: its first probe challenged
/// ([`CHALLENGE`]) and the probe that answered it sent. Returns both probes.
fn a_probe_challenged_and_answered() -> (H, Request, Request) {
    use crate::auth::{Algorithm, Credentials, Secret};
    let creds = Arc::new(Credentials {
        username: "trunkuser".into(),
        password: Secret::new("trunk-secret"),
        realm: None,
        algorithms: Algorithm::ALL.to_vec(),
        in_dialog: Default::default(),
    });
    let mut h = H::with(config_with(|name, p| {
        if name == "carrier-a" {
            p.auth = Some(creds.clone());
        }
    }));
    authenticated_call(&mut h);
    h.advance(DEFAULT_PROBE + Duration::from_secs(1));
    let probe1 = h.take_requests(CARRIER_A, Method::Options).remove(0);
    let challenge = [(Hdr::named("Proxy-Authenticate"), CHALLENGE)];
    h.recv_msg(CARRIER_A, reply(&probe1, 407, "carrier1", &challenge, None));
    let probe2 = h.take_requests(CARRIER_A, Method::Options).remove(0);
    (h, probe1, probe2)
}

/// A challenge to the probe (the carrier's proxy) is answered once, with credentials, and
/// the authenticated answer judged; a peer without credentials here is asked again later.
#[test]
fn a_challenged_probe_is_answered_once_and_its_answer_judged() {
    let (mut h, probe1, probe2) = a_probe_challenged_and_answered();
    let challenge = [(Hdr::named("Proxy-Authenticate"), CHALLENGE)];
    assert!(probe2.has_header(&Hdr::PROXY_AUTHORIZATION));
    assert!(probe2.cseq().unwrap().0 > probe1.cseq().unwrap().0);
    // A second challenge is not answered: the leg is asked again later, the call goes on.
    h.recv_msg(CARRIER_A, reply(&probe2, 407, "carrier1", &challenge, None));
    h.advance(Duration::from_secs(1));
    assert!(h.take_requests(CARRIER_A, Method::Options).is_empty());
    assert!(h.cdrs.is_empty());
    h.advance(DEFAULT_PROBE);
    let probe3 = h.take_requests(CARRIER_A, Method::Options).remove(0);
    assert!(
        probe3.has_header(&Hdr::PROXY_AUTHORIZATION),
        "credentials up front"
    );
    h.recv_msg(CARRIER_A, reply(&probe3, 481, "carrier1", &[], None));
    assert_eq!(h.cdrs.len(), 1);
}

/// A probe that carried credentials up front and is challenged with the same nonce was
/// refused: it is not answered again. Before, a new unsigned OPTIONS was judged instead of
/// the one sent, and the refused nonce answered again from nc 1, at every probe.
#[test]
fn a_probe_refused_with_its_own_nonce_is_not_answered_again() {
    let (mut h, _, probe2) = a_probe_challenged_and_answered();
    let challenge = [(Hdr::named("Proxy-Authenticate"), CHALLENGE)];
    h.recv_msg(CARRIER_A, reply(&probe2, 200, "carrier1", &[], None));
    h.advance(DEFAULT_PROBE + Duration::from_secs(1));
    let probe3 = h.take_requests(CARRIER_A, Method::Options).remove(0);
    assert!(
        probe3.has_header(&Hdr::PROXY_AUTHORIZATION),
        "credentials up front"
    );
    h.recv_msg(CARRIER_A, reply(&probe3, 407, "carrier1", &challenge, None));
    h.advance(Duration::from_secs(1));
    assert!(
        h.take_requests(CARRIER_A, Method::Options).is_empty(),
        "the refused nonce is not answered again"
    );
    h.advance(DEFAULT_PROBE);
    let probe4 = h.take_requests(CARRIER_A, Method::Options).remove(0);
    h.recv_msg(CARRIER_A, reply(&probe4, 481, "carrier1", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    assert!(
        h.cdrs[0].events.contains(&"auth_failed".to_string()),
        "{:?}",
        h.cdrs[0].events
    );
}

/// A probe due while another request of ours is open on the call (a relayed re-INVITE)
/// waits for it: its higher CSeq must not overtake a lost first send of the other.
#[test]
fn a_probe_waits_while_a_relayed_request_is_open() {
    let mut h = H::new();
    let (_, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.advance(DEFAULT_PROBE - Duration::from_secs(1));
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre2", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_secs(3));
    assert!(h.take_requests(CARRIER_A, Method::Options).is_empty());
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    h.take(PHONE);
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKack2", ""));
    h.take_requests(CARRIER_A, Method::Ack);
    h.advance(Duration::from_secs(5));
    let probe = h.take_requests(CARRIER_A, Method::Options);
    assert!(!probe.is_empty(), "asked once the re-INVITE is done");
    assert!(probe[0].cseq().unwrap().0 > re.cseq().unwrap().0);
}

/// A peer's own OPTIONS within the call is answered by the gateway for its leg while the
/// far leg is watched (probed here, or under a session timer): a far peer that ignores
/// OPTIONS must not make this one think the call gone. Toward a far leg nobody watches it
/// goes on as before: the asking peer learns whether the far peer still has the call.
#[test]
fn a_peers_options_within_the_call_is_answered_here_while_the_far_leg_is_watched() {
    for watched in [true, false] {
        let mut h = H::with(config_with(|name, p| {
            if name == "pbx" && watched {
                p.probe = Some(DEFAULT_PROBE);
            }
        }));
        let (inv, _) = answered_call(&mut h);
        h.recv(
            CARRIER_A,
            &from_carrier_in(&inv, "OPTIONS", "carrier1", 2, "z9hG4bKcopt", ""),
        );
        let relayed = h.take_requests(PHONE, Method::Options);
        if watched {
            let ok = h.take_responses(CARRIER_A).remove(0);
            assert_eq!(ok.status(), 200);
            assert!(ok.header(&Hdr::ALLOW).is_some_and(|a| a.contains("INVITE")));
            assert!(relayed.is_empty(), "nothing reaches the phone");
        } else {
            assert_eq!(relayed.len(), 1, "relayed to the phone");
            h.recv_msg(PHONE, reply(&relayed[0], 481, "alice1", &[], None));
            assert_eq!(h.failures(CARRIER_A), [481]);
            assert_eq!(h.cdrs.len(), 1, "the phone lost the call: released");
        }
    }
}

/// Toward a far peer that takes no OPTIONS (its profile's `allow` leaves it out), a peer's
/// own OPTIONS within the call is answered here too, though nobody watches the far leg:
/// relayed, a PBX that drops OPTIONS would have let Timer F release a healthy call. Before,
/// it was relayed.
#[test]
fn a_peers_options_toward_a_peer_that_takes_none_is_answered_here() {
    let mut h = H::with(config_with(|name, p| {
        if name == "pbx" {
            p.allow = Some(
                ["INVITE", "ACK", "BYE", "CANCEL"]
                    .map(String::from)
                    .to_vec(),
            );
        }
    }));
    let (inv, _) = answered_call(&mut h);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "OPTIONS", "carrier1", 2, "z9hG4bKcopt2", ""),
    );
    assert!(
        h.take_requests(PHONE, Method::Options).is_empty(),
        "not relayed"
    );
    assert_eq!(h.statuses(CARRIER_A), [200]);
    h.advance(Duration::from_secs(40));
    assert!(h.cdrs.is_empty(), "the call goes on");
}

/// A leg whose peer stretched its session interval past the probe's (to a day, by its own
/// Min-SE) is probed all the same: its timer would find it gone only a day on. Before, any
/// session timer turned the probe off, and a dead phone's call held its limits, relay ports
/// and CDR for a day.
#[test]
fn a_leg_whose_session_runs_longer_than_the_probe_is_probed() {
    let mut h = probing_both();
    let day = "Supported: timer\r\nSession-Expires: 86400;refresher=uac\r\nMin-SE: 86400\r\n";
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", day),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "carrier1", SDP);
    let agreed = ok.header(&Hdr::SESSION_EXPIRES).unwrap_or_default();
    assert!(agreed.starts_with("86400"), "{agreed}");
    let our_tag = ok.to_tag().unwrap();
    let ack = in_dialog(
        "ACK",
        "sip:127.0.0.1",
        phone_from(),
        &format!("<sip:+8610123@127.0.0.1>;tag={our_tag}"),
        "call-1@127.0.0.2",
        1,
        "z9hG4bKack1",
        "127.0.0.2:5060",
        "",
    );
    h.recv(PHONE, &ack);
    h.advance(DEFAULT_PROBE + Duration::from_secs(1));
    let to_phone = probe(&mut h, PHONE, "call-1@127.0.0.2");
    h.recv_msg(PHONE, reply(&to_phone, 481, "alice1", &[], None));
    assert_eq!(h.cdrs.len(), 1, "released on the 481");
}

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::sip::{Message, parse_datagram};

const S: fn(u64) -> Duration = Duration::from_secs;

fn invite(extra: &str) -> Request {
    let text = format!(
        "INVITE sip:100@gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\r\n\
         From: <sip:1@a>;tag=1\r\nTo: <sip:100@gw>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
         Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(Bytes::from(text), 65535) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

/// [`invite`] within a dialog (a To tag).
fn reinvite(extra: &str) -> Request {
    let text = format!(
        "INVITE sip:100@gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK2\r\n\
         From: <sip:1@a>;tag=1\r\nTo: <sip:100@gw>;tag=9\r\nCall-ID: c\r\nCSeq: 2 INVITE\r\n\
         Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(Bytes::from(text), 65535) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn ok(extra: &str) -> Response {
    status("200 OK", extra)
}

fn status(line: &str, extra: &str) -> Response {
    let text = format!(
        "SIP/2.0 {line}\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
         From: <sip:1@a>;tag=1\r\nTo: <sip:100@gw>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(Bytes::from(text), 65535) {
        Ok(Message::Response(r)) => r,
        other => panic!("not a response: {other:?}"),
    }
}

fn policy(mode: TimerMode, expires: u64, min_se: u64) -> SessionTimerPolicy {
    SessionTimerPolicy {
        mode,
        expires: S(expires),
        min_se: S(min_se),
    }
}

#[test]
fn off_ignores_the_peers_timer_and_asks_for_none() {
    let p = SessionTimerPolicy::off();
    let req = invite("Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n");
    assert_eq!(p.as_uas(&req), UasTerms::NoTimer);
    assert!(p.request_headers(None).is_empty());
    assert_eq!(
        p.as_uac(&ok("Session-Expires: 600;refresher=uac\r\n"), None),
        None
    );
    assert!(!p.supported());
}

#[test]
fn accept_runs_the_timer_the_caller_asks_for_and_lets_it_refresh() {
    let p = policy(TimerMode::Accept, 1800, 90);
    let req = invite("Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n");
    let terms = p.as_uas(&req);
    let UasTerms::Timer { session, announce } = terms else {
        panic!("{terms:?}")
    };
    assert_eq!(session.interval, S(600));
    assert!(!session.we_refresh, "the caller chose to refresh");
    let hdrs = response_headers(&terms);
    assert_eq!(
        hdrs,
        vec![
            (Hdr::SESSION_EXPIRES, "600;refresher=uac".into()),
            (Hdr::REQUIRE, "timer".into())
        ]
    );
    assert!(announce.is_some());
    // Nothing asked: nothing run under `accept`.
    assert_eq!(p.as_uas(&invite("Supported: timer\r\n")), UasTerms::NoTimer);
}

/// A caller whose INVITE names `refresher=uac` (a proxy put it there) but does not support
/// the extension is refreshed by us and not told `Require: timer`. Before, it was trusted to
/// refresh, told to require what it never named, and released as expired.
#[test]
fn a_caller_that_does_not_know_the_extension_never_refreshes() {
    let p = policy(TimerMode::Accept, 1800, 90);
    let terms = p.as_uas(&invite("Session-Expires: 600;refresher=uac\r\n"));
    let UasTerms::Timer { session, .. } = terms else {
        panic!("{terms:?}")
    };
    assert!(session.we_refresh);
    assert_eq!(session.interval, S(600));
    assert_eq!(
        response_headers(&terms),
        vec![(Hdr::SESSION_EXPIRES, "600;refresher=uas".into())]
    );
    // Its re-INVITE, the proxy writing `refresher=uac` again: we go on refreshing. Before,
    // the first re-INVITE made it the refresher (told `Require: timer`), and the call
    // expired.
    let re = reinvite("Session-Expires: 600;refresher=uac\r\n");
    let terms = p.as_uas_in(&re, Some(session));
    let UasTerms::Timer { session: again, .. } = terms else {
        panic!("{terms:?}")
    };
    assert!(again.we_refresh);
    assert!(
        !response_headers(&terms)
            .iter()
            .any(|(h, _)| *h == Hdr::REQUIRE)
    );
    // A peer that set up the timer naming the extension and refreshes keeps refreshing when
    // a refresh of its leaves `Supported` out (not told to require it, though).
    let theirs = Session {
        interval: S(600),
        we_refresh: false,
    };
    let terms = p.as_uas_in(&re, Some(theirs));
    let UasTerms::Timer { session: kept, .. } = terms else {
        panic!("{terms:?}")
    };
    assert!(!kept.we_refresh);
    assert!(
        !response_headers(&terms)
            .iter()
            .any(|(h, _)| *h == Hdr::REQUIRE)
    );
}

#[test]
fn a_caller_without_refresher_preference_leaves_the_refreshing_to_us() {
    let p = policy(TimerMode::Accept, 1800, 90);
    let terms = p.as_uas(&invite("Supported: timer\r\nSession-Expires: 1800\r\n"));
    let UasTerms::Timer { session, .. } = terms else {
        panic!("{terms:?}")
    };
    assert!(session.we_refresh);
    assert_eq!(
        response_headers(&terms)[0],
        (Hdr::SESSION_EXPIRES, "1800;refresher=uas".into())
    );
}

#[test]
fn a_longer_interval_than_ours_is_shortened_to_ours_but_never_below_a_minimum() {
    let p = policy(TimerMode::Accept, 600, 90);
    let UasTerms::Timer { session, .. } =
        p.as_uas(&invite("Supported: timer\r\nSession-Expires: 7200\r\n"))
    else {
        panic!()
    };
    assert_eq!(session.interval, S(600));
    // The caller's own Min-SE is above our interval: its minimum wins.
    let UasTerms::Timer { session, .. } = p.as_uas(&invite(
        "Supported: timer\r\nSession-Expires: 7200\r\nMin-SE: 900\r\n",
    )) else {
        panic!()
    };
    assert_eq!(session.interval, S(900));
}

#[test]
fn too_brief_an_interval_gets_422_with_our_minimum() {
    let p = policy(TimerMode::Accept, 1800, 300);
    let req = invite("Supported: timer\r\nSession-Expires: 120\r\n");
    assert_eq!(p.as_uas(&req), UasTerms::TooBrief(S(300)));
    // Below RFC 4028's 90 s floor whatever our own minimum says.
    let p = policy(TimerMode::Accept, 1800, 90);
    assert_eq!(
        p.as_uas(&invite("Supported: timer\r\nSession-Expires: 30\r\n")),
        UasTerms::TooBrief(S(90))
    );
    // A peer that does not know the extension cannot act on a 422 (RFC 4028 §8): it gets
    // our minimum, the gateway refreshing, nothing required of it.
    let ours = Session {
        interval: S(90),
        we_refresh: true,
    };
    assert_eq!(
        p.as_uas(&invite("Session-Expires: 30\r\n")),
        UasTerms::Timer {
            session: ours,
            announce: Some(Announce {
                interval: S(90),
                refresher: Refresher::Uas,
                require: false,
            }),
        }
    );
}

#[test]
fn an_unreadable_session_expires_is_malformed() {
    let p = policy(TimerMode::Accept, 1800, 90);
    assert_eq!(
        p.as_uas(&invite("Session-Expires: soon\r\n")),
        UasTerms::Malformed
    );
    assert_eq!(
        p.as_uas(&invite("Session-Expires: 1800;refresher=proxy\r\n")),
        UasTerms::Malformed
    );
}

#[test]
fn require_refreshes_a_peer_that_does_not_know_the_extension_without_telling_it() {
    let p = policy(TimerMode::Require, 600, 90);
    let terms = p.as_uas(&invite(""));
    assert_eq!(
        terms,
        UasTerms::Timer {
            session: Session {
                interval: S(600),
                we_refresh: true
            },
            announce: None
        }
    );
    assert!(response_headers(&terms).is_empty());
    // A peer that supports it but asked for nothing is told our terms, and we refresh.
    let terms = p.as_uas(&invite("Supported: timer\r\n"));
    let UasTerms::Timer { session, announce } = terms else {
        panic!()
    };
    assert!(session.we_refresh);
    assert_eq!(session.interval, S(600));
    assert_eq!(announce.map(|a| a.refresher), Some(Refresher::Uas));
}

#[test]
fn as_uac_require_asks_and_accept_only_says_supported() {
    let req = policy(TimerMode::Require, 600, 120);
    assert_eq!(
        req.request_headers(None),
        vec![
            (Hdr::SESSION_EXPIRES, "600".into()),
            (Hdr::MIN_SE, "120".into())
        ]
    );
    let acc = policy(TimerMode::Accept, 600, 120);
    assert!(acc.request_headers(None).is_empty());
    // Within a running timer our requests restate it, naming ourselves (uac) or the peer.
    let running = Session {
        interval: S(900),
        we_refresh: false,
    };
    assert_eq!(
        acc.request_headers(Some(running))[0],
        (Hdr::SESSION_EXPIRES, "900;refresher=uas".into())
    );
}

#[test]
fn as_uac_the_2xx_decides_who_refreshes() {
    let p = policy(TimerMode::Require, 600, 90);
    let s = p
        .as_uac(&ok("Session-Expires: 600;refresher=uas\r\n"), Some(S(600)))
        .unwrap();
    assert!(!s.we_refresh);
    let s = p
        .as_uac(&ok("Session-Expires: 600;refresher=uac\r\n"), Some(S(600)))
        .unwrap();
    assert!(s.we_refresh);
    // No Session-Expires from a callee we asked: it does not know timers, we refresh it.
    let s = p.as_uac(&ok(""), Some(S(600))).unwrap();
    assert_eq!((s.interval, s.we_refresh), (S(600), true));
    // Under `accept` we asked for nothing: no header, no timer.
    let acc = policy(TimerMode::Accept, 600, 90);
    assert_eq!(acc.as_uac(&ok(""), None), None);
    // An interval below RFC 4028's floor is raised to it (a peer cannot make us refresh
    // faster than every 45 s); one above it that the peer agreed is kept.
    let s = acc
        .as_uac(&ok("Session-Expires: 10;refresher=uac\r\n"), None)
        .unwrap();
    assert_eq!(s.interval, S(90));
    let strict = policy(TimerMode::Accept, 1800, 300);
    let s = strict
        .as_uac(&ok("Session-Expires: 100;refresher=uac\r\n"), None)
        .unwrap();
    assert_eq!(s.interval, S(100), "refresh within what the callee agreed");
}

#[test]
fn a_422_is_retried_with_the_peers_minimum_only_when_it_is_larger_and_sane() {
    let p = policy(TimerMode::Require, 600, 90);
    let resp = |min: &str| {
        status(
            "422 Session Interval Too Small",
            &format!("Min-SE: {min}\r\n"),
        )
    };
    assert_eq!(p.after_422(&resp("1200"), Some(S(600))), Some(S(1200)));
    assert_eq!(p.after_422(&resp("600"), Some(S(600))), None);
    assert_eq!(p.after_422(&resp("999999"), Some(S(600))), None);
    // A peer's Min-SE under the RFC's floor (to a request that asked for none) is asked as
    // 90 s: before, `Session-Expires: 30` and `Min-SE: 30` went out.
    assert_eq!(p.after_422(&resp("30"), None), Some(S(90)));
    assert_eq!(
        SessionTimerPolicy::off().after_422(&resp("1200"), None),
        None
    );
}

#[test]
fn the_deadlines_follow_the_role() {
    let r = Session {
        interval: S(600),
        we_refresh: true,
    };
    assert_eq!((refresh_due(r), expiry_due(r)), (S(300), S(600)));
    let w = Session {
        interval: S(600),
        we_refresh: false,
    };
    assert_eq!(expiry_due(w), S(568));
    let short = Session {
        interval: S(90),
        we_refresh: false,
    };
    assert_eq!(expiry_due(short), S(60));
}

/// A peer's number never reaches a clock unbounded: a huge Session-Expires is capped; a
/// huge Min-SE is honoured (RFC 4028 §9: never below it), taken as 2^32 - 1 s at most.
/// Before, a Min-SE over a day was answered 400 as malformed, which cost the call.
#[test]
fn huge_intervals_from_a_peer_are_capped_or_honoured() {
    let p = policy(TimerMode::Accept, 1800, 90);
    let huge = "10000000000000000000";
    let UasTerms::Timer { session, announce } = p.as_uas(&invite(&format!(
        "Supported: timer\r\nSession-Expires: 1800\r\nMin-SE: {huge}\r\n"
    ))) else {
        panic!("a timer at the peer's minimum")
    };
    assert_eq!(session.interval, S(u32::MAX.into()));
    assert_eq!(announce.map(|a| a.interval), Some(S(u32::MAX.into())));
    // A day and a bit, asked and required as the minimum: granted as asked.
    let UasTerms::Timer { session, .. } = p.as_uas(&invite(
        "Supported: timer\r\nSession-Expires: 100000\r\nMin-SE: 100000\r\n",
    )) else {
        panic!("a timer as asked")
    };
    assert_eq!(session.interval, S(100_000));
    let UasTerms::Timer { session, .. } = p.as_uas(&invite(&format!(
        "Supported: timer\r\nSession-Expires: {huge}\r\n"
    ))) else {
        panic!()
    };
    assert_eq!(session.interval, S(1800));
    // A huge minimum with no Session-Expires asks for no timer, and gets none (it was 400).
    assert_eq!(
        p.as_uas(&invite(&format!("Supported: timer\r\nMin-SE: {huge}\r\n"))),
        UasTerms::NoTimer
    );
    // Longer than the profile's `expires_s` (nothing asked): refreshed at that, by us.
    let s = p
        .as_uac(
            &ok(&format!("Session-Expires: {huge};refresher=uas\r\n")),
            None,
        )
        .unwrap();
    assert_eq!((s.interval, s.we_refresh), (S(1800), true));
}

/// A 2xx that raises the interval we asked for (RFC 4028 §9 forbids it) does not make the
/// gateway wait longer: it refreshes at what it asked for. Before, a callee's
/// `86400;refresher=uas` left a dead callee's call up, and billed, for a day. A shorter one
/// is taken as agreed, and its refresher too.
#[test]
fn a_2xx_that_raises_our_interval_is_refreshed_at_ours() {
    let p = policy(TimerMode::Require, 1800, 90);
    let s = p
        .as_uac(
            &ok("Session-Expires: 86400;refresher=uas\r\n"),
            Some(S(1800)),
        )
        .unwrap();
    assert_eq!((s.interval, s.we_refresh), (S(1800), true));
    let s = p
        .as_uac(&ok("Session-Expires: 600;refresher=uas\r\n"), Some(S(1800)))
        .unwrap();
    assert_eq!((s.interval, s.we_refresh), (S(600), false));
}

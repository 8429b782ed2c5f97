use super::super::credentials::Secret;
use super::super::digest::{Algorithm, split_challenges};
use super::granted::{contact_entry, leading_secs, lists_ours};
use super::*;
use crate::sip::Hdr;

const PASSWORD: &str = "reg-Secret-42";

fn params(expires: u64) -> RegisterParams {
    RegisterParams {
        peer: PeerName("itsp".into()),
        target: Target::udp("127.0.0.3:5060".parse().unwrap()),
        registrar: "sip:sip.itsp.example".into(),
        aor: "sip:4420001@sip.itsp.example".into(),
        contact: "sip:gw@127.0.0.1:5060".into(),
        sent_by: "127.0.0.1:5060".into(),
        expires: Duration::from_secs(expires),
    }
}

fn creds() -> Arc<Credentials> {
    Arc::new(Credentials {
        username: "4420001".into(),
        password: Secret::new(PASSWORD),
        realm: None,
        algorithms: Algorithm::ALL.to_vec(),
        in_dialog: Default::default(),
    })
}

fn reg(expires: u64) -> Registration {
    Registration::new(params(expires), Some(creds()), [42; 32]).without_jitter()
}

fn sent(r: &mut Registration) -> Request {
    let t = r.poll_transmit().expect("a REGISTER to send");
    assert_eq!(t.to, Target::udp("127.0.0.3:5060".parse().unwrap()));
    assert!(r.poll_transmit().is_none(), "one at a time");
    t.request
}

fn answer(req: &Request, status: u16, extra: &[(&'static str, &str)]) -> Response {
    let mut r = Response::to_request(req, status, "X", Some("regtag")).unwrap();
    for (h, v) in extra {
        r.push_header(&Hdr::named(h), v.to_string()).unwrap();
    }
    r
}

fn expires_of(req: &Request) -> String {
    req.header(&Hdr::named("Expires")).unwrap()
}

#[test]
fn register_request_shape() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    assert_eq!(r.poll_timeout(), None);
    r.start(t0);
    let q = sent(&mut r);
    assert_eq!(q.method(), Method::Register);
    assert_eq!(q.uri(), "sip:sip.itsp.example");
    assert_eq!(q.to_uri().as_deref(), Some("sip:4420001@sip.itsp.example"));
    assert_eq!(q.from_uri(), q.to_uri());
    assert!(q.from_tag().is_some());
    assert_eq!(q.call_id().as_deref(), Some(r.call_id()));
    assert!(r.call_id().ends_with("@127.0.0.1"));
    assert_eq!(q.cseq(), Some((1, Method::Register)));
    assert_eq!(q.contact_uri().as_deref(), Some("sip:gw@127.0.0.1:5060"));
    assert_eq!(expires_of(&q), "3600");
    let via = q.top_via().unwrap();
    assert!(via.branch.unwrap().starts_with("z9hG4bK"));
    assert_eq!(via.host, "127.0.0.1");
    assert!(!q.has_header(&Hdr::AUTHORIZATION));
    assert_eq!(r.poll_timeout(), Some(t0 + TRANSACTION_TIMEOUT));
    assert!(!r.is_up());
}

#[test]
fn challenge_then_refresh_at_85_percent_with_credentials_up_front() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q1 = sent(&mut r);
    let ch = r#"Digest realm="itsp", nonce="n1", qop="auth", algorithm=MD5"#;
    assert!(r.handle_response(t0, &answer(&q1, 401, &[("WWW-Authenticate", ch)])));
    let q2 = sent(&mut r);
    assert_eq!(q2.cseq(), Some((2, Method::Register)));
    assert_eq!(q2.call_id(), q1.call_id());
    assert_eq!(q2.from_tag(), q1.from_tag());
    assert_ne!(q2.top_via().unwrap().branch, q1.top_via().unwrap().branch);
    let a = split_challenges(&q2.header(&Hdr::AUTHORIZATION).unwrap());
    assert_eq!(a[0].param("username"), Some("4420001"));
    assert_eq!(a[0].param("uri"), Some("sip:sip.itsp.example"));
    assert_eq!(a[0].param("nc"), Some("00000001"));
    assert!(!r.is_up());

    // 200 grants less than asked, in the Contact's expires parameter.
    let t1 = t0 + Duration::from_millis(80);
    let ok = answer(
        &q2,
        200,
        &[
            (
                "Contact",
                "<sip:other@10.0.0.1>;expires=3000, <sip:gw@127.0.0.1:5060>;expires=600",
            ),
            ("Expires", "3600"),
        ],
    );
    assert!(r.handle_response(t1, &ok));
    assert!(r.is_up());
    assert_eq!(
        r.poll_event(),
        Some(RegEvent::Registered {
            expires: Duration::from_secs(600),
            refresh_in: Duration::from_secs(510),
            service_route: Box::default(),
        })
    );
    assert!(r.poll_transmit().is_none());
    // Counted from when the REGISTER was sent (t0), not from its answer.
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(510)));

    // Nothing happens before the refresh time.
    r.handle_timeout(t1 + Duration::from_secs(509));
    assert!(r.poll_transmit().is_none());
    r.handle_timeout(t1 + Duration::from_secs(510));
    let q3 = sent(&mut r);
    assert_eq!(q3.cseq(), Some((3, Method::Register)));
    assert_eq!(q3.call_id(), q1.call_id());
    let a = split_challenges(&q3.header(&Hdr::AUTHORIZATION).unwrap());
    assert_eq!(a[0].param("nonce"), Some("n1"));
    assert_eq!(a[0].param("nc"), Some("00000002"), "same nonce, next count");
    assert!(r.is_up(), "still bound while the refresh is out");
    assert!(!String::from_utf8_lossy(&q3.to_bytes()).contains(PASSWORD));
    assert!(!format!("{r:?}").contains(PASSWORD));
}

/// A 200 listing bindings none of which is our contact as we wrote it (the registrar shows
/// ours as it saw it, past a NAT): the shortest listed is taken. Before, the hour asked was
/// assumed, and a binding granted 120 s lapsed for most of every hour.
/// A registration for an hour, started at the instant returned, that got a 200 listing the
/// bindings `contacts`.
fn granted_with(contacts: &str) -> (Registration, Instant) {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[("Contact", contacts)]));
    (r, t0)
}

#[test]
fn with_no_binding_of_ours_listed_the_shortest_is_taken() {
    let (r, t0) =
        granted_with("<sip:gw@203.0.113.9:40000>;expires=120, <sip:pbx@198.51.100.2>;expires=3600");
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(102)));
}

/// Past a NAT the registrar shows our contact with another host and port, but our user
/// part: that entry is ours, not another device's binding of the same address of record
/// listed beside it. Before, the other's 5 s were taken for ours: a grant under the least
/// taken, the registration shown down and retried.
#[test]
fn an_entry_with_our_user_part_is_ours_among_other_bindings() {
    let (r, t0) = granted_with(
        "<sip:phone7@198.51.100.7>;expires=5, <sip:gw@203.0.113.99:41000>;expires=3600",
    );
    assert!(r.is_up());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(3060)));
}

#[test]
fn expires_header_is_used_when_the_contact_has_no_parameter() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[("Expires", "120")]));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(102)));
    // A registrar cannot lengthen: a grant above the request is capped.
    let mut r = reg(60);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(
        t0,
        &answer(
            &q,
            200,
            &[("Contact", "<sip:gw@127.0.0.1:5060>;expires=99999")],
        ),
    );
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(51)));
}

/// A registrar that grants a second, or asks us back at once, does not get a REGISTER
/// every second: a grant under MIN_GRANT is a failure, and Retry-After never shortens
/// the back-off.
#[test]
fn a_tiny_grant_or_retry_after_does_not_make_us_register_every_second() {
    let t0 = Instant::now();
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[("Expires", "1")]));
    // A failure: down at once (though held the second granted), retried after the back-off.
    assert!(!r.is_up());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    r.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(r.poll_timeout(), Some(t0 + FIRST_BACKOFF));
    let mut r = reg(3600);
    r.start(t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let q = sent(&mut r);
        r.handle_response(now, &answer(&q, 503, &[("Retry-After", "0")]));
        let at = r.poll_timeout().unwrap();
        waits.push((at - now).as_secs());
        now = at;
        r.handle_timeout(now);
    }
    assert_eq!(waits, [10, 20, 40]);
}

#[test]
fn failures_back_off_exponentially_and_success_resets() {
    let mut r = reg(3600);
    let mut now = Instant::now();
    r.start(now);
    let mut waits = Vec::new();
    for _ in 0..8 {
        let q = sent(&mut r);
        assert!(r.handle_response(now, &answer(&q, 503, &[])));
        assert!(!r.is_up());
        let at = r.poll_timeout().unwrap();
        waits.push((at - now).as_secs());
        // Not a moment early.
        r.handle_timeout(at - Duration::from_millis(1));
        assert!(r.poll_transmit().is_none());
        now = at;
        r.handle_timeout(now);
    }
    assert_eq!(waits, vec![10, 20, 40, 80, 160, 320, 600, 600]);
    let q = sent(&mut r);
    r.handle_response(now, &answer(&q, 200, &[]));
    assert!(r.is_up());
    r.handle_timeout(r.poll_timeout().unwrap());
    let q = sent(&mut r);
    now = r.poll_timeout().unwrap() - TRANSACTION_TIMEOUT;
    r.handle_response(now, &answer(&q, 500, &[]));
    assert_eq!(
        r.poll_timeout(),
        Some(now + FIRST_BACKOFF),
        "back to the first step"
    );
    // Refused: down at once. But a refused refresh does not remove the binding, so a
    // shutdown meanwhile removes it (before, it was taken as gone and left in place).
    assert!(!r.is_up());
    r.shutdown(now);
    let u = sent(&mut r);
    assert_eq!(expires_of(&u), "0");
}

#[test]
fn retry_after_is_honoured_and_bounded() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(
        t0,
        &answer(&q, 503, &[("Retry-After", "120 (maintenance)")]),
    );
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(120)));
    assert!(matches!(
        r.poll_event(),
        Some(RegEvent::Failed { retry_in, .. }) if retry_in == Duration::from_secs(120)
    ));
    r.handle_timeout(t0 + Duration::from_secs(120));
    let q = sent(&mut r);
    let t1 = t0 + Duration::from_secs(120);
    r.handle_response(t1, &answer(&q, 480, &[("Retry-After", "999999")]));
    assert_eq!(r.poll_timeout(), Some(t1 + MAX_RETRY_AFTER));
    // Past what a u32 (or a u64) holds: the longest wait too, not the short back-off.
    for huge in ["4294967296", "99999999999999999999999"] {
        let t = r.poll_timeout().unwrap();
        r.handle_timeout(t);
        let q = sent(&mut r);
        r.handle_response(t, &answer(&q, 503, &[("Retry-After", huge)]));
        assert_eq!(r.poll_timeout(), Some(t + MAX_RETRY_AFTER), "{huge}");
    }
}

#[test]
fn silence_and_transport_errors_are_failures() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let _ = sent(&mut r);
    r.handle_timeout(t0 + TRANSACTION_TIMEOUT);
    assert!(matches!(r.poll_event(), Some(RegEvent::Failed { .. })));
    let retry_at = t0 + TRANSACTION_TIMEOUT + FIRST_BACKOFF;
    assert_eq!(r.poll_timeout(), Some(retry_at));
    r.handle_timeout(retry_at);
    let q = sent(&mut r);
    r.handle_failure(retry_at, q.cseq().unwrap().0, "connection refused", false);
    assert_eq!(
        r.poll_event(),
        Some(RegEvent::Failed {
            reason: "connection refused".into(),
            retry_in: Duration::from_secs(20)
        })
    );
}

#[test]
fn binding_expiry_without_a_successful_refresh_takes_it_down() {
    let mut r = reg(100);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[]));
    assert!(r.is_up());
    r.handle_timeout(t0 + Duration::from_secs(85));
    let _refresh = sent(&mut r);
    // The registrar is slow; our Timer F is later than the binding's end.
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(100)));
    r.handle_timeout(t0 + Duration::from_secs(100));
    assert!(!r.is_up());
}

/// A refused password is tried again after minutes, not seconds, and without the refused
/// nonce up front: one failed authentication a try. Before, the first retry came after
/// 10 s and each carried the old nonce before answering the fresh challenge, two failed
/// authentications a try: eleven in five minutes, enough for a carrier's fraud guard to ban
/// the gateway's address (and the trunk's calls with it).
#[test]
fn a_refused_password_is_not_retried_in_a_loop() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q1 = sent(&mut r);
    let ch = |n: &str| format!(r#"Digest realm="itsp", nonce="{n}""#);
    r.handle_response(t0, &answer(&q1, 401, &[("WWW-Authenticate", &ch("a"))]));
    let q2 = sent(&mut r);
    r.handle_response(t0, &answer(&q2, 401, &[("WWW-Authenticate", &ch("a"))]));
    assert!(r.poll_transmit().is_none());
    assert!(matches!(
        r.poll_event(),
        Some(RegEvent::Failed { reason, retry_in }) if reason.contains("same nonce") && retry_in == FIRST_REFUSED_BACKOFF
    ));
    r.handle_timeout(t0 + FIRST_REFUSED_BACKOFF);
    let q3 = sent(&mut r);
    assert!(q3.header(&Hdr::named("Authorization")).is_none(), "{q3:?}");
    // A 403 is a refusal too; a 503 the registrar's trouble, on the shorter steps.
    let t1 = t0 + FIRST_REFUSED_BACKOFF;
    r.handle_response(t1, &answer(&q3, 403, &[]));
    assert_eq!(r.poll_timeout(), Some(t1 + 2 * FIRST_REFUSED_BACKOFF));
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 503, &[]));
    assert_eq!(r.poll_timeout(), Some(t0 + FIRST_BACKOFF));
    // After an outage's failures, the first refusal waits its own first step, not the hour
    // the failures' count would make it.
    let mut now;
    for _ in 0..5 {
        now = r.poll_timeout().unwrap();
        r.handle_timeout(now);
        let q = sent(&mut r);
        r.handle_response(now, &answer(&q, 503, &[]));
    }
    now = r.poll_timeout().unwrap();
    r.handle_timeout(now);
    let q = sent(&mut r);
    r.handle_response(now, &answer(&q, 403, &[]));
    assert_eq!(r.poll_timeout(), Some(now + FIRST_REFUSED_BACKOFF));
    // Without credentials a challenge is a failure straight away.
    let mut bare = Registration::new(params(3600), None, [1; 32]).without_jitter();
    bare.start(t0);
    let q = sent(&mut bare);
    bare.handle_response(t0, &answer(&q, 407, &[("Proxy-Authenticate", &ch("x"))]));
    assert!(bare.poll_transmit().is_none());
    assert!(
        matches!(bare.poll_event(), Some(RegEvent::Failed { reason, .. }) if reason.contains("no [auth]"))
    );
}

#[test]
fn interval_too_brief_raises_the_expiry_once() {
    let mut r = reg(60);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 423, &[("Min-Expires", "300")]));
    let q = sent(&mut r);
    assert_eq!(expires_of(&q), "300");
    r.handle_response(t0, &answer(&q, 423, &[("Min-Expires", "300")]));
    assert!(r.poll_transmit().is_none());
    assert!(matches!(r.poll_event(), Some(RegEvent::Failed { .. })));
    // A registrar raising it on every answer gets one REGISTER at once, then the back-off
    // between rounds (before, every raise was sent again at once).
    let mut r = reg(60);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 423, &[("Min-Expires", "300")]));
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 423, &[("Min-Expires", "301")]));
    assert!(r.poll_transmit().is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + FIRST_BACKOFF));
    r.handle_timeout(t0 + FIRST_BACKOFF);
    let q = sent(&mut r);
    assert_eq!(expires_of(&q), "301", "the raise is kept");
    // After the back-off, raised again: the next back-off, not another REGISTER at once.
    let t1 = t0 + FIRST_BACKOFF;
    r.handle_response(t1, &answer(&q, 423, &[("Min-Expires", "302")]));
    assert!(r.poll_transmit().is_none());
    assert_eq!(r.poll_timeout(), Some(t1 + 2 * FIRST_BACKOFF));
}

/// A `Min-Expires` past a day (what `[register] expires_s` allows at most) is a failure,
/// not a raise: before, a 423 could have the gateway ask for a week, and a gateway that died
/// stayed registered, drawing the trunk's calls, that long.
#[test]
fn a_min_expires_past_a_day_is_not_taken() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 423, &[("Min-Expires", "604800")]));
    assert!(r.poll_transmit().is_none(), "no REGISTER for a week");
    assert!(matches!(r.poll_event(), Some(RegEvent::Failed { .. })));
    r.handle_timeout(t0 + FIRST_BACKOFF);
    assert_eq!(expires_of(&sent(&mut r)), "3600");
}

/// A REGISTER that went unanswered may have bound all the same (its answers lost on the
/// way back): a stop then removes that binding. Before, it counted as never bound, and the
/// registrar kept sending the trunk's calls to a gateway that had stopped, for up to the
/// hour asked.
#[test]
fn an_unanswered_register_is_removed_at_shutdown_as_a_binding() {
    let t0 = Instant::now();
    for timeout_by_txn in [false, true] {
        let mut r = reg(3600);
        r.start(t0);
        let q = sent(&mut r);
        let t1 = t0 + TRANSACTION_TIMEOUT;
        match timeout_by_txn {
            true => r.handle_failure(t1, q.cseq().unwrap().0, "timeout", true),
            false => r.handle_timeout(t1),
        }
        assert!(!r.is_up(), "shown down");
        r.shutdown(t1 + Duration::from_secs(5));
        assert_eq!(expires_of(&sent(&mut r)), "0");
    }
    // Not one the registrar could not have had: a transport error.
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_failure(t0, q.cseq().unwrap().0, "connection refused", false);
    r.shutdown(t0);
    assert!(r.poll_transmit().is_none() && r.is_done());
}

/// A `Retry-After` longer than the back-off is waited, plus a share drawn up to half of it
/// again: registrations (a fleet of gateways) an overloaded registrar refused together do
/// not come back at the same instant. Before, each waited exactly the `Retry-After`.
#[test]
fn a_retry_after_is_spread() {
    let t0 = Instant::now();
    let waits: Vec<Duration> = (0..8u8)
        .map(|i| {
            let mut r = Registration::new(params(3600), Some(creds()), [i; 32]);
            r.start(t0);
            let q = sent(&mut r);
            r.handle_response(t0, &answer(&q, 503, &[("Retry-After", "60")]));
            match r.poll_event() {
                Some(RegEvent::Failed { retry_in, .. }) => retry_in,
                e => panic!("{e:?}"),
            }
        })
        .collect();
    let s60 = Duration::from_secs(60);
    assert!(
        waits.iter().all(|w| *w >= s60 && *w <= s60 * 3 / 2),
        "{waits:?}"
    );
    assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
}

/// A 200 that lists no binding of ours (only another device's, or no Contact at all) is
/// told apart (the gateway warns: calls to us may not come); ours as written, or its user
/// part at the address the registrar saw, is ours.
#[test]
fn a_200_listing_no_binding_of_ours_is_told_apart() {
    let mut r = reg(3600);
    r.start(Instant::now());
    let q = sent(&mut r);
    let ok = |contact: Option<&str>| match contact {
        Some(c) => answer(&q, 200, &[("Contact", c)]),
        None => answer(&q, 200, &[]),
    };
    let ours = "sip:gw@127.0.0.1:5060";
    assert!(!lists_ours(
        &ok(Some("<sip:otherpbx@198.51.100.7>;expires=3000")),
        ours
    ));
    assert!(!lists_ours(&ok(None), ours));
    assert!(lists_ours(
        &ok(Some("<sip:gw@127.0.0.1:5060>;expires=60")),
        ours
    ));
    assert!(lists_ours(
        &ok(Some(
            "<sip:otherpbx@h>, <sip:gw@203.0.113.9:40000>;expires=60"
        )),
        ours
    ));
}

#[test]
fn stray_and_provisional_responses_change_nothing() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    assert!(r.handle_response(t0, &answer(&q, 100, &[])));
    assert!(!r.is_up());
    let mut other = answer(&q, 200, &[]);
    other.set_header(&Hdr::CALL_ID, "someone-else").unwrap();
    assert!(!r.handle_response(t0, &other));
    let mut old = answer(&q, 200, &[]);
    old.set_header(&Hdr::CSEQ, "7 REGISTER").unwrap();
    assert!(!r.handle_response(t0, &old));
    assert!(!r.is_up());
    assert!(r.handle_response(t0, &answer(&q, 200, &[])));
    assert!(r.is_up());
    // The same 200 again (a retransmission) is no longer ours.
    assert!(!r.handle_response(t0, &answer(&q, 200, &[])));
}

#[test]
fn shutdown_unregisters_with_expires_zero() {
    let mut r = reg(3600);
    let t0 = Instant::now();
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[]));
    let _ = r.poll_event();
    r.shutdown(t0 + Duration::from_secs(5));
    let u = sent(&mut r);
    assert_eq!(expires_of(&u), "0");
    assert_eq!(u.contact_uri().as_deref(), Some("sip:gw@127.0.0.1:5060"));
    assert_eq!(u.call_id(), q.call_id());
    assert_eq!(u.cseq(), Some((2, Method::Register)));
    // Challenged once, answered; then accepted.
    r.handle_response(
        t0,
        &answer(
            &u,
            401,
            &[("WWW-Authenticate", r#"Digest realm="itsp", nonce="z""#)],
        ),
    );
    let u2 = sent(&mut r);
    assert_eq!(expires_of(&u2), "0");
    assert!(u2.has_header(&Hdr::AUTHORIZATION));
    assert!(!r.is_done());
    r.handle_response(t0, &answer(&u2, 200, &[]));
    assert!(r.is_done());
    assert!(!r.is_up());
    assert_eq!(r.poll_event(), Some(RegEvent::Unregistered { ok: true }));
    assert_eq!(r.poll_timeout(), None);

    // Never registered: nothing to remove.
    let mut idle = reg(3600);
    idle.shutdown(t0);
    assert!(idle.is_done());
    assert!(idle.poll_transmit().is_none());
    // Backing off: nothing to remove either.
    let mut down = reg(3600);
    down.start(t0);
    let q = sent(&mut down);
    down.handle_response(t0, &answer(&q, 403, &[]));
    down.shutdown(t0);
    assert!(down.is_done() && down.poll_transmit().is_none());
    // A removal refused outright ends it, without retrying (a stop's, below, too).
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[]));
    r.shutdown(t0);
    let u = sent(&mut r);
    r.handle_response(t0, &answer(&u, 403, &[]));
    assert!(r.is_done());
    assert!(r.poll_transmit().is_none());
}

/// A removal a reload asked for that the registrar did not take (unanswered, 408, 5xx) is
/// sent again after the back-off, three times in all, while the binding may be held: before,
/// one failure left it at the registrar until it expired (up to a day), the dropped trunk's
/// calls still coming to a gateway that refuses them.
#[test]
fn a_reloads_removal_that_failed_is_tried_again_three_times_in_all() {
    let t0 = Instant::now();
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[]));
    r.shutdown(t0);
    let u1 = sent(&mut r);
    r.handle_response(t0, &answer(&u1, 503, &[]));
    assert!(!r.is_done() && r.removes_later() && r.is_removing() && !r.is_up());
    assert!(
        !r.is_leaving(),
        "a registration of its own waits for no retry"
    );
    assert_eq!(r.poll_timeout(), Some(t0 + FIRST_BACKOFF));
    r.handle_timeout(t0 + FIRST_BACKOFF);
    let u2 = sent(&mut r);
    assert_eq!(expires_of(&u2), "0");
    // Unanswered, the second: again after 20 s.
    let t1 = t0 + FIRST_BACKOFF + TRANSACTION_TIMEOUT;
    r.handle_timeout(t1);
    assert!(r.removes_later());
    assert_eq!(r.poll_timeout(), Some(t1 + FIRST_BACKOFF * 2));
    r.handle_timeout(t1 + FIRST_BACKOFF * 2);
    let u3 = sent(&mut r);
    assert_eq!(expires_of(&u3), "0");
    r.handle_response(t1, &answer(&u3, 500, &[]));
    assert!(r.is_done(), "three tries in all");
    assert!(r.poll_transmit().is_none());

    // A stop's removal goes once.
    let mut s = reg(3600);
    s.start(t0);
    let q = sent(&mut s);
    s.handle_response(t0, &answer(&q, 200, &[]));
    s.stop(t0);
    let u = sent(&mut s);
    s.handle_response(t0, &answer(&u, 503, &[]));
    assert!(s.is_done() && s.poll_transmit().is_none());

    // A binding that expires before the next try is not removed again.
    let mut e = reg(15);
    e.start(t0);
    let q = sent(&mut e);
    e.handle_response(t0, &answer(&q, 200, &[]));
    e.shutdown(t0 + Duration::from_secs(6));
    let u = sent(&mut e);
    e.handle_response(t0 + Duration::from_secs(6), &answer(&u, 500, &[]));
    assert!(e.is_done(), "held until 15 s, the retry would come at 16 s");

    // A stop while a retry waits sends it at once, once.
    let mut w = reg(3600);
    w.start(t0);
    let q = sent(&mut w);
    w.handle_response(t0, &answer(&q, 200, &[]));
    w.shutdown(t0);
    let u = sent(&mut w);
    w.handle_response(t0, &answer(&u, 500, &[]));
    w.stop(t0 + Duration::from_secs(1));
    let u = sent(&mut w);
    assert_eq!(expires_of(&u), "0");
    w.handle_response(t0, &answer(&u, 500, &[]));
    assert!(w.is_done());
}

#[test]
fn contact_entries_are_read_with_and_without_brackets() {
    assert_eq!(
        contact_entry("\"GW, one\" <sip:gw@h:5060;transport=udp>;expires=30;q=1"),
        (
            "sip:gw@h:5060;transport=udp".into(),
            Some(Duration::from_secs(30))
        )
    );
    assert_eq!(
        contact_entry("sip:gw@h;EXPIRES=7"),
        ("sip:gw@h".into(), Some(Duration::from_secs(7)))
    );
    assert_eq!(contact_entry("<sip:gw@h>"), ("sip:gw@h".into(), None));
    // A quoted value (against the grammar, seen from registrars): before, no grant read.
    assert_eq!(
        contact_entry("<sip:gw@h>;expires=\"300\""),
        ("sip:gw@h".into(), Some(Duration::from_secs(300)))
    );
    assert_eq!(leading_secs(" 42;x"), Some(Duration::from_secs(42)));
    assert_eq!(leading_secs("99999999999"), None);
    assert_eq!(leading_secs("x"), None);
}

/// A registration handed over by a reload passes on whether it was failing: a binding the
/// registrar refused to refresh shows down in the new registration too, until its own
/// REGISTER is answered; shutdown still removes the binding.
#[test]
fn a_handed_over_binding_keeps_its_state() {
    let t0 = Instant::now();
    let mut old = reg(3600);
    old.start(t0);
    let q = sent(&mut old);
    old.handle_response(t0, &answer(&q, 200, &[]));
    assert!(old.is_up());
    old.handle_timeout(old.poll_timeout().unwrap());
    let q = sent(&mut old);
    let t1 = old.poll_timeout().unwrap() - TRANSACTION_TIMEOUT;
    old.handle_response(t1, &answer(&q, 403, &[]));
    assert!(!old.is_up());
    let mut new = reg(1800);
    new.take_over(old.hand_over(t1));
    assert!(old.is_done());
    assert!(!new.is_up(), "refused before the reload: still down");
    new.shutdown(t1);
    assert_eq!(expires_of(&sent(&mut new)), "0", "the binding is removed");

    // A working one hands over as up.
    let mut old = reg(3600);
    old.start(t0);
    let q = sent(&mut old);
    old.handle_response(t0, &answer(&q, 200, &[]));
    let mut new = reg(1800);
    new.take_over(old.hand_over(t0));
    assert!(new.is_up());
}

/// Shutdown while a REGISTER is out waits for its end before the `Expires: 0` (RFC 3261
/// §10.2, one REGISTER at a time): sent at once, the removal could reach the registrar
/// first and a retransmission of the REGISTER bind the contact again, for an hour. What
/// the REGISTER's answer says decides whether there is a binding to remove.
#[test]
fn shutdown_waits_for_the_register_in_flight() {
    let t0 = Instant::now();
    // Accepted: removed after it.
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.shutdown(t0 + Duration::from_secs(1));
    assert!(
        r.poll_transmit().is_none(),
        "nothing while the REGISTER is out"
    );
    assert!(r.is_leaving() && !r.is_done());
    r.handle_response(t0, &answer(&q, 200, &[]));
    let u = sent(&mut r);
    assert_eq!(expires_of(&u), "0");
    assert_eq!(u.cseq(), Some((2, Method::Register)));
    assert!(!r.is_up(), "leaving is not up");
    r.handle_response(t0, &answer(&u, 200, &[]));
    assert!(r.is_done());
    // Challenged (a first REGISTER binds nothing then): nothing to remove, no answer to
    // the challenge.
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.shutdown(t0);
    r.handle_response(
        t0,
        &answer(
            &q,
            401,
            &[("WWW-Authenticate", r#"Digest realm="itsp", nonce="z""#)],
        ),
    );
    assert!(r.is_done() && r.poll_transmit().is_none());
    // Unanswered: it may have bound, so the removal goes.
    let mut r = reg(3600);
    r.start(t0);
    let _ = sent(&mut r);
    r.shutdown(t0);
    r.handle_timeout(t0 + TRANSACTION_TIMEOUT);
    assert_eq!(expires_of(&sent(&mut r)), "0");
    // A refused refresh of a binding: that binding is removed.
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0, &answer(&q, 200, &[]));
    let at = r.poll_timeout().unwrap();
    r.handle_timeout(at);
    let q = sent(&mut r);
    r.shutdown(at);
    r.handle_response(at, &answer(&q, 403, &[]));
    assert_eq!(expires_of(&sent(&mut r)), "0");
}

/// The end of an earlier REGISTER's transaction (it outlived our own deadline) does not
/// fail the one out now: before, it ended the removal while its `Expires: 0` was still on
/// its way, and a reload's new registration could cross it.
#[test]
fn an_earlier_registers_failure_does_not_end_the_removal() {
    let t0 = Instant::now();
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.shutdown(t0);
    r.handle_timeout(t0 + TRANSACTION_TIMEOUT);
    let u = sent(&mut r);
    assert_eq!(expires_of(&u), "0");
    r.handle_failure(
        t0 + TRANSACTION_TIMEOUT,
        q.cseq().unwrap().0,
        "no response from the registrar",
        true,
    );
    assert!(r.is_leaving() && !r.is_done());
    r.handle_response(t0, &answer(&u, 200, &[]));
    assert!(r.is_done());
    assert!(r.poll_event().is_some());
}

/// A REGISTER answered only on a retransmission, late: its binding and refresh count from
/// when it was sent (the registrar's clock started then at the latest). Before, a 60 s
/// grant answered 31 s late was refreshed 22 s after it had expired.
#[test]
fn a_late_answer_does_not_push_the_refresh_late() {
    let t0 = Instant::now();
    let mut r = reg(60);
    r.start(t0);
    let q = sent(&mut r);
    r.handle_response(t0 + Duration::from_secs(31), &answer(&q, 200, &[]));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(51)));
    assert!(r.is_up());
}

/// When the process stops, a REGISTER still out is waited for at most `LEAVE_WAIT`: a stop
/// cannot wait out a silent registrar's 32 s, and a binding left behind draws calls to a
/// gateway that is gone. Before, a short drain ended with no `Expires: 0` at all. A reload
/// that no longer wants the binding (the process goes on) waits for the REGISTER's end.
#[test]
fn a_stop_waits_for_a_register_out_only_briefly() {
    let t0 = Instant::now();
    let mut r = reg(3600);
    r.start(t0);
    let q = sent(&mut r);
    r.stop(t0 + Duration::from_secs(1));
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + Duration::from_secs(1) + LEAVE_WAIT)
    );
    r.handle_timeout(t0 + Duration::from_secs(1) + LEAVE_WAIT);
    let u = sent(&mut r);
    assert_eq!(expires_of(&u), "0");
    // The first REGISTER's late answer is not the removal's.
    assert!(!r.handle_response(t0, &answer(&q, 200, &[])));
    r.handle_response(t0, &answer(&u, 200, &[]));
    assert!(r.is_done());
    let mut reloaded = reg(3600);
    reloaded.start(t0);
    let _ = sent(&mut reloaded);
    reloaded.shutdown(t0 + Duration::from_secs(1));
    assert_eq!(reloaded.poll_timeout(), Some(t0 + TRANSACTION_TIMEOUT));
}

/// A registration handed over with only its first REGISTER out (unanswered) passes on a
/// binding that may exist, so shutdown removes it, but not as working: the new one shows
/// down until its own REGISTER is answered.
#[test]
fn a_handover_of_an_unanswered_register_is_not_up_but_is_removed() {
    let t0 = Instant::now();
    let mut old = reg(3600);
    old.start(t0);
    let _ = sent(&mut old);
    let mut new = reg(1800);
    new.take_over(old.hand_over(t0 + Duration::from_secs(5)));
    assert!(!new.is_up());
    new.shutdown(t0 + Duration::from_secs(6));
    assert_eq!(expires_of(&sent(&mut new)), "0");
}

/// Registrations that began together do not stay together: each refresh comes at a share
/// of its grant drawn between 75 % and 85 %, each back-off between half and all of its step
/// (RFC 5626 §4.5), so a registrar's outage does not bring every gateway back at once.
#[test]
fn refreshes_and_back_offs_are_spread() {
    let t0 = Instant::now();
    let mut refreshes = std::collections::BTreeSet::new();
    let mut retries = std::collections::BTreeSet::new();
    for seed in 0..20u8 {
        let mut r = Registration::new(params(600), Some(creds()), [seed; 32]);
        r.start(t0);
        let q = sent(&mut r);
        r.handle_response(t0, &answer(&q, 200, &[("Expires", "600")]));
        let at = r.poll_timeout().unwrap() - t0;
        assert!(
            at >= Duration::from_secs(450) && at <= Duration::from_secs(510),
            "{at:?}"
        );
        refreshes.insert(at);
        r.handle_timeout(t0 + at);
        let q = sent(&mut r);
        r.handle_response(t0 + at, &answer(&q, 503, &[]));
        let wait = r.poll_timeout().unwrap() - (t0 + at);
        assert!(
            wait >= FIRST_BACKOFF / 2 && wait <= FIRST_BACKOFF,
            "{wait:?}"
        );
        retries.insert(wait);
    }
    assert!(refreshes.len() > 10, "{refreshes:?}");
    assert!(retries.len() > 10, "{retries:?}");
}

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

use super::*;
use crate::config::{CallbackConfig, Route, RouteFrom};

mod shares;
mod signed;

const AS: &str = "127.0.0.1:40000";
/// The fake wall clock's start, in seconds since 1970.
const WALL0: u64 = 1_764_500_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn id(s: &str) -> CallbackId {
    CallbackId::parse(s).unwrap()
}

/// Routes: from the PBX, "+86…" goes to carrier-a, "1…" to the PBX itself.
fn config(edit: impl FnOnce(&mut CallbackConfig)) -> Arc<Config> {
    let mut callback = CallbackConfig {
        listen: Some(addr("127.0.0.1:5080")),
        from_peer: Some(PeerName("pbx".into())),
        ..CallbackConfig::default()
    };
    edit(&mut callback);
    let route = |prefix: &str, to: &str| Route {
        from: RouteFrom::Peer(PeerName("pbx".into())),
        prefix: prefix.into(),
        to: vec![PeerName(to.into())],
        ring_timeout: None,
    };
    Arc::new(Config {
        listen: Vec::new(),
        advertise: "127.0.0.1".into(),
        front: None,
        cdr_path: "/dev/null".into(),
        max_message_bytes: 65535,
        protect: Default::default(),
        limits: Default::default(),
        cdr_fail_closed: true,
        cdr_max_pending: 10_000,
        cdr_refused_rate: None,
        cdr_refused_rate_total: None,
        drain: Duration::from_secs(1),
        media_ip: IpAddr::from([127, 0, 0, 1]),
        media_ports: (30000, 30009),
        media_max_streams: 4,
        media_threads: 1,
        media_threads_auto: false,
        host_ips: Default::default(),
        recording_dir: "/tmp/trunkgate-test-recordings".into(),
        recording_stereo: true,
        recording_jitter: Duration::from_millis(60),
        recording_min_free: 0,
        metrics: crate::config::MetricsConfig {
            listen: None,
            allow: Vec::new(),
            max_connections: 1,
        },
        profiles: HashMap::new(),
        peers: Default::default(),
        routes: vec![route("+86", "carrier-a"), route("1", "pbx")],
        callback,
        warnings: Vec::new(),
    })
}

/// The service on a fake clock.
struct H {
    svc: Service,
    now: Instant,
    start: Instant,
}

impl H {
    fn new(edit: impl FnOnce(&mut CallbackConfig)) -> H {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(WALL0);
        H {
            svc: Service::new(config(edit), now, wall),
            now,
            start: now,
        }
    }

    fn default() -> H {
        H::new(|_| {})
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The wall clock: 2025-11-30 at the start, moving with `now`.
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(WALL0) + (self.now - self.start)
    }

    /// Send `text` from `src`; return what came out.
    fn recv_from(&mut self, src: &str, text: &str) -> Vec<Output> {
        self.recv_bytes(src, text.as_bytes())
    }

    fn recv_bytes(&mut self, src: &str, bytes: &[u8]) -> Vec<Output> {
        let wall = self.wall();
        self.svc.handle_datagram(self.now, wall, addr(src), bytes);
        self.drain()
    }

    fn recv(&mut self, text: &str) -> Vec<Output> {
        self.recv_from(AS, text)
    }

    /// Send `text` and return the one datagram it got back (and nothing else).
    fn ask(&mut self, text: &str) -> String {
        let out = self.recv(text);
        assert_eq!(out.len(), 1, "{text}: {out:?}");
        sent_text(&out[0], AS)
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.svc.poll_output()).collect()
    }

    /// A REQUEST that is accepted: returns its Originate.
    fn request(&mut self, cb: &str, user1: &str, user2: &str) -> Originate {
        let out = self.recv(&format!("REQUEST: id={cb};user1={user1};user2={user2}"));
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(sent_text(&out[0], AS), format!("ACK: id={cb};result=ok\n"));
        match &out[1] {
            Output::Command(Command::Originate(o)) => o.clone(),
            other => panic!("expected Originate, got {other:?}"),
        }
    }

    fn end(&mut self, cb: &str, outcome: Outcome) -> Vec<Output> {
        self.svc.on_ended(
            self.now,
            &id(cb),
            End {
                outcome,
                duration: Duration::from_millis(42_700),
                call_tag: CallTag::CalleeBye,
                cause: Q850Cause::NORMAL_CLEARING,
            },
        );
        self.drain()
    }

    /// Move the clock to the service's next deadline and fire it.
    fn fire(&mut self) -> Option<Vec<Output>> {
        let at = self.svc.poll_timeout()?;
        assert!(at >= self.now, "deadline in the past");
        self.now = at;
        self.svc.handle_timeout(self.now);
        Some(self.drain())
    }
}

fn sent_text(o: &Output, to: &str) -> String {
    match o {
        Output::Transmit { to: t, bytes } => {
            assert_eq!(*t, addr(to));
            assert!(bytes.len() <= protocol::MAX_DATAGRAM);
            String::from_utf8(bytes.clone()).unwrap()
        }
        other => panic!("expected a datagram, got {other:?}"),
    }
}

const RESPONSE_CONNECTED: &str =
    "RESPONSE: id=a;result=connected;duration=42;call_tag=callee_bye;cause=16\n";

#[test]
fn a_request_from_an_allowed_source_is_acknowledged_and_originated() {
    let mut h = H::new(|c| c.caller = Number::parse("+861000"));
    let o = h.request("a", "1001", "+8610123");
    assert_eq!(
        o,
        Originate {
            id: id("a"),
            user1: Number::parse("1001").unwrap(),
            user2: Number::parse("+8610123").unwrap(),
            caller: Number::parse("+861000"),
            max_duration: Duration::from_secs(3600),
            from_peer: Some(PeerName("pbx".into())),
        }
    );
    assert_eq!(h.svc.active(), 1);
    assert_eq!(h.svc.stats().answered("request", "ok"), 1);
}

#[test]
fn the_request_caller_and_a_shorter_max_duration_win_the_operator_cap_stays() {
    let mut h = H::new(|c| {
        c.caller = Number::parse("+861000");
        c.max_duration = Duration::from_secs(600);
    });
    let out = h.recv("REQUEST: id=a;user1=1001;user2=1002;caller=1003;max_duration=60");
    let Output::Command(Command::Originate(o)) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(o.caller, Number::parse("1003"));
    assert_eq!(o.max_duration, Duration::from_secs(60));
    let out = h.recv("REQUEST: id=b;user1=1001;user2=1002;max_duration=86400");
    let Output::Command(Command::Originate(o)) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(o.max_duration, Duration::from_secs(600));
}

#[test]
fn sources_outside_the_allow_list_get_nothing_and_are_counted() {
    let mut h = H::new(|c| {
        c.allow = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    });
    for text in [
        "REQUEST: id=a;user1=1001;user2=1002",
        "STATUS: id=a",
        "garbage",
    ] {
        assert!(h.recv_from("127.0.0.9:40000", text).is_empty());
    }
    assert_eq!(h.svc.stats().dropped("not_allowed"), 3);
    assert_eq!(h.svc.active(), 0);
    assert_eq!(h.svc.state(&id("a")), None);
    assert!(h.svc.stats().answered.is_empty());
    // Inside a CIDR of the list.
    let out = h.recv_from("10.1.2.3:5000", "STATUS: id=a");
    assert_eq!(
        sent_text(&out[0], "10.1.2.3:5000"),
        "ACK: id=a;result=error;reason=unknown_id\n"
    );
}

#[test]
fn allow_any_accepts_every_source() {
    let mut h = H::new(|c| {
        c.allow.clear();
        c.allow_any = true;
    });
    let out = h.recv_from("192.0.2.1:9", "STATUS: id=a");
    assert_eq!(out.len(), 1);
}

#[test]
fn malformed_datagrams_get_an_error_ack_and_change_nothing() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    for (text, answer) in [
        (
            "REQUEST: id=b;user1=1001;user2=1002;colour=red",
            "ACK: id=b;result=error;reason=unknown_key\n",
        ),
        (
            "REQUEST: id=b;user1=1001",
            "ACK: id=b;result=error;reason=missing_key\n",
        ),
        (
            "REQUEST: id=a;user1=1001;user2=1002;user2=1003",
            "ACK: id=a;result=error;reason=duplicate_key\n",
        ),
        (
            "CANCEL: id=a;now=1",
            "ACK: id=a;result=error;reason=unknown_key\n",
        ),
        ("HELLO", "ACK: result=error;reason=bad_syntax\n"),
        ("STATUS: id=ü", "ACK: result=error;reason=not_ascii\n"),
    ] {
        assert_eq!(h.ask(text), answer, "{text}");
    }
    assert_eq!(h.svc.active(), 1);
    assert_eq!(h.svc.state(&id("a")), Some(State::Calling1));
    assert_eq!(h.svc.state(&id("b")), None);
    assert_eq!(h.svc.stats().answered("request", "unknown_key"), 1);
    assert_eq!(h.svc.stats().answered("cancel", "unknown_key"), 1);
    assert_eq!(h.svc.stats().answered("unknown", "bad_syntax"), 1);
    let long = format!("STATUS: id=a;{}", "x".repeat(600));
    assert_eq!(h.ask(&long), "ACK: result=error;reason=too_long\n");
}

#[test]
fn a_malformed_ack_is_never_answered() {
    let mut h = H::default();
    // Our own ACK reflected back, and a broken one.
    assert!(h.recv("ACK: id=a;result=ok;state=ended").is_empty());
    assert!(h.recv("ACK: result=error;reason=bad_id").is_empty());
    assert_eq!(h.svc.stats().dropped("bad_ack"), 2);
}

#[test]
fn the_rate_limit_refuses_then_refills_with_the_given_clock() {
    let mut h = H::new(|c| c.rate = NonZeroU32::new(2).unwrap());
    h.request("a", "1001", "1002");
    h.request("b", "1001", "1002");
    assert_eq!(
        h.ask("REQUEST: id=c;user1=1001;user2=1002"),
        "ACK: id=c;result=error;reason=over_rate\n"
    );
    assert_eq!(h.svc.state(&id("c")), None);
    // Two a second: one more is allowed half a second later, not before.
    h.advance(Duration::from_millis(499));
    assert!(
        h.ask("REQUEST: id=c;user1=1001;user2=1002")
            .contains("over_rate")
    );
    h.advance(Duration::from_millis(1));
    h.request("c", "1001", "1002");
    assert_eq!(h.svc.stats().answered("request", "over_rate"), 2);
    assert_eq!(h.svc.active(), 3);
}

#[test]
fn refused_requests_do_not_use_up_the_rate() {
    let mut h = H::new(|c| c.rate = NonZeroU32::new(1).unwrap());
    for _ in 0..5 {
        assert!(
            h.ask("REQUEST: id=x;user1=999;user2=1002")
                .contains("no_route")
        );
    }
    h.request("a", "1001", "1002");
}

#[test]
fn max_active_refuses_until_one_ends() {
    let mut h = H::new(|c| c.max_active = 2);
    h.request("a", "1001", "1002");
    h.request("b", "1001", "1002");
    assert_eq!(
        h.ask("REQUEST: id=c;user1=1001;user2=1002"),
        "ACK: id=c;result=error;reason=too_many_active\n"
    );
    h.end("a", Outcome::Connected);
    assert_eq!(h.svc.active(), 1);
    h.request("c", "1001", "1002");
}

#[test]
fn numbers_without_a_route_are_refused() {
    let mut h = H::default();
    assert_eq!(
        h.ask("REQUEST: id=a;user1=1001;user2=+4420"),
        "ACK: id=a;result=error;reason=no_route\n"
    );
    // A route for another peer does not count; a "*" route does.
    let mut cfg = (*config(|_| {})).clone();
    cfg.routes.push(Route {
        from: RouteFrom::Peer(PeerName("carrier-a".into())),
        prefix: "".into(),
        to: vec![PeerName("pbx".into())],
        ring_timeout: None,
    });
    h.svc.set_config(Arc::new(cfg.clone()));
    assert!(
        h.ask("REQUEST: id=a;user1=1001;user2=+4420")
            .contains("no_route")
    );
    cfg.routes.push(Route {
        from: RouteFrom::Any,
        prefix: "+44".into(),
        to: vec![PeerName("carrier-a".into())],
        ring_timeout: None,
    });
    h.svc.set_config(Arc::new(cfg));
    h.request("a", "1001", "+4420");
}

#[test]
fn a_duplicate_id_is_refused_while_active_and_after_the_end() {
    let mut h = H::new(|c| c.allow = vec!["127.0.0.0/8".parse().unwrap()]);
    h.request("a", "1001", "1002");
    // Different numbers, or the same REQUEST from another AS: refused.
    assert_eq!(
        h.ask("REQUEST: id=a;user1=1001;user2=1003"),
        "ACK: id=a;result=error;reason=duplicate_id\n"
    );
    let out = h.recv_from("127.0.0.2:40000", "REQUEST: id=a;user1=1001;user2=1002");
    assert_eq!(
        sent_text(&out[0], "127.0.0.2:40000"),
        "ACK: id=a;result=error;reason=duplicate_id\n"
    );
    // The very same REQUEST again (our ACK was lost): ACKed again, not originated twice.
    assert_eq!(
        h.ask("REQUEST: id=a;user1=1001;user2=1002"),
        "ACK: id=a;result=ok\n"
    );
    assert_eq!(h.svc.active(), 1);
    h.end("a", Outcome::Connected);
    h.recv("ACK: id=a");
    // Ended: even the identical REQUEST is refused, for as long as the id is remembered.
    h.advance(LINGER - Duration::from_secs(1));
    assert!(
        h.ask("REQUEST: id=a;user1=1001;user2=1002")
            .contains("duplicate_id")
    );
    h.advance(Duration::from_secs(1));
    h.svc.handle_timeout(h.now);
    assert_eq!(h.svc.state(&id("a")), None);
    h.request("a", "1001", "1002");
}

#[test]
fn cancel_at_each_stage_asks_the_call_layer_once() {
    for stage in [State::Calling1, State::Calling2, State::Connected] {
        let mut h = H::default();
        h.request("a", "1001", "1002");
        if stage >= State::Calling2 {
            h.svc.on_progress(h.now, &id("a"), State::Calling2);
        }
        if stage >= State::Connected {
            h.svc.on_progress(h.now, &id("a"), State::Connected);
        }
        let out = h.recv("CANCEL: id=a");
        assert_eq!(out.len(), 2, "{stage:?}: {out:?}");
        assert_eq!(sent_text(&out[0], AS), "ACK: id=a;result=ok\n");
        assert_eq!(out[1], Output::Command(Command::Cancel { id: id("a") }));
        // A repeated CANCEL is answered but not passed on again.
        assert_eq!(h.ask("CANCEL: id=a"), "ACK: id=a;result=ok\n");
        // Still running until the call layer says it ended.
        assert_eq!(h.svc.state(&id("a")), Some(stage));
        let out = h.end("a", Outcome::Cancelled);
        assert!(sent_text(&out[0], AS).starts_with("RESPONSE: id=a;result=cancelled;"));
        assert_eq!(
            h.ask("CANCEL: id=a"),
            "ACK: id=a;result=error;reason=ended\n"
        );
    }
    let mut h = H::default();
    assert_eq!(
        h.ask("CANCEL: id=zz"),
        "ACK: id=zz;result=error;reason=unknown_id\n"
    );
}

#[test]
fn status_reports_each_state() {
    let mut h = H::default();
    assert_eq!(
        h.ask("STATUS: id=a"),
        "ACK: id=a;result=error;reason=unknown_id\n"
    );
    h.request("a", "1001", "1002");
    assert_eq!(
        h.ask("STATUS: id=a"),
        "ACK: id=a;result=ok;state=calling1\n"
    );
    h.svc.on_progress(h.now, &id("a"), State::Calling2);
    assert_eq!(
        h.ask("STATUS: id=a"),
        "ACK: id=a;result=ok;state=calling2\n"
    );
    h.svc.on_progress(h.now, &id("a"), State::Connected);
    assert_eq!(
        h.ask("STATUS: id=a"),
        "ACK: id=a;result=ok;state=connected\n"
    );
    // Progress never goes back.
    h.svc.on_progress(h.now, &id("a"), State::Calling2);
    assert_eq!(h.svc.state(&id("a")), Some(State::Connected));
    h.end("a", Outcome::Connected);
    assert_eq!(h.ask("STATUS: id=a"), "ACK: id=a;result=ok;state=ended\n");
    assert_eq!(h.svc.stats().answered("status", "ok"), 4);
}

#[test]
fn the_response_is_resent_at_t1_doubling_seven_times_then_given_up() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    let start = h.now;
    let out = h.end("a", Outcome::Connected);
    assert_eq!(out.len(), 1);
    assert_eq!(sent_text(&out[0], AS), RESPONSE_CONNECTED);
    assert_eq!(h.svc.active(), 0);
    let mut sends = vec![Duration::ZERO];
    let mut given_up_at = None;
    // Bounded: 6 resends, the give-up, and nothing else before the id is forgotten.
    for _ in 0..8 {
        let Some(out) = h.fire() else { break };
        if out.is_empty() {
            given_up_at = Some(h.now - start);
            break;
        }
        assert_eq!(out.len(), 1);
        assert_eq!(sent_text(&out[0], AS), RESPONSE_CONNECTED);
        sends.push(h.now - start);
    }
    let ms = |v: &[u64]| {
        v.iter()
            .map(|m| Duration::from_millis(*m))
            .collect::<Vec<_>>()
    };
    assert_eq!(sends, ms(&[0, 500, 1500, 3500, 7500, 15_500, 31_500]));
    assert_eq!(given_up_at, Some(Duration::from_millis(63_500)));
    assert_eq!(h.svc.stats().responses("given_up"), 1);
    // Only the forgetting is left, and it sends nothing.
    assert_eq!(h.svc.poll_timeout(), Some(start + LINGER));
    assert_eq!(h.fire(), Some(vec![]));
    assert_eq!(h.svc.poll_timeout(), None);
    assert_eq!(h.svc.state(&id("a")), None);
}

/// To a source let in only because anyone may send (unsigned), the RESPONSE goes once: its
/// address may be forged, and seven sends to a victim for one small REQUEST were the
/// service's largest reflection. An AS on a listed network (here loopback, listed beside
/// "anyone") still gets the resends.
#[test]
fn the_response_to_an_unsigned_source_anyone_may_be_goes_once() {
    let mut h = H::new(|c| c.allow_any = true);
    let out = h.recv_from("192.0.2.1:9", "REQUEST: id=a;user1=1001;user2=1002");
    assert_eq!(out.len(), 2, "{out:?}");
    let out = h.end("a", Outcome::Connected);
    assert_eq!(out.len(), 1);
    assert_eq!(h.fire(), Some(vec![]), "no resend");
    assert_eq!(h.svc.stats().responses("sent_once"), 1);
    // A listed source: resent as ever.
    h.request("b", "1001", "1002");
    h.end("b", Outcome::Connected);
    let resent = h.fire().unwrap_or_default();
    assert_eq!(resent.len(), 1, "{resent:?}");
}

#[test]
fn the_as_ack_stops_the_retransmissions_and_is_not_answered() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    let start = h.now;
    h.end("a", Outcome::User2Failed);
    assert!(h.svc.awaiting_acks(), "the RESPONSE waits for its ACK");
    let out = h.fire().unwrap();
    assert_eq!(out.len(), 1);
    assert!(h.recv("ACK: id=a\r\n").is_empty());
    assert!(!h.svc.awaiting_acks());
    assert_eq!(h.svc.stats().responses("acked"), 1);
    // Nothing more is sent: the next deadline is forgetting the id.
    assert_eq!(h.svc.poll_timeout(), Some(start + LINGER));
    assert_eq!(h.fire(), Some(vec![]));
    // A second ACK (ours crossed theirs) is ignored too.
    assert!(h.recv("ACK: id=a").is_empty());
    assert_eq!(h.svc.stats().responses("acked"), 1);
}

#[test]
fn late_or_early_acks_are_ignored() {
    let mut h = H::default();
    assert!(h.recv("ACK: id=never-seen").is_empty());
    h.request("a", "1001", "1002");
    // Before the call-back ended there is no RESPONSE to stop.
    assert!(h.recv("ACK: id=a").is_empty());
    assert_eq!(h.svc.stats().dropped("unexpected_ack"), 2);
    assert_eq!(h.svc.state(&id("a")), Some(State::Calling1));
    let out = h.end("a", Outcome::Connected);
    assert_eq!(out.len(), 1);
}

#[test]
fn the_end_is_reported_once_and_unknown_ids_are_ignored() {
    let mut h = H::default();
    assert!(h.end("nope", Outcome::Connected).is_empty());
    h.svc.on_progress(h.now, &id("nope"), State::Connected);
    assert_eq!(h.svc.state(&id("nope")), None);
    h.request("a", "1001", "1002");
    assert_eq!(h.end("a", Outcome::User1Failed).len(), 1);
    assert!(h.end("a", Outcome::Connected).is_empty());
    assert_eq!(h.svc.stats().ended.get("user1_failed"), Some(&1));
    assert_eq!(h.svc.stats().ended.get("connected"), None);
}

#[test]
fn draining_refuses_new_requests_but_serves_the_running_ones() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    h.svc.start_drain();
    assert_eq!(
        h.ask("REQUEST: id=b;user1=1001;user2=1002"),
        "ACK: id=b;result=error;reason=disabled\n"
    );
    assert_eq!(
        h.ask("STATUS: id=a"),
        "ACK: id=a;result=ok;state=calling1\n"
    );
    assert_eq!(h.recv("CANCEL: id=a").len(), 2);
}

/// A REQUEST resent while the gateway drains (our ACK was lost) is the call-back that
/// runs: `result=ok`, not `disabled` (which told the AS it failed while its call went on).
#[test]
fn a_request_resent_while_draining_is_still_ok() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    h.svc.start_drain();
    assert_eq!(
        h.ask("REQUEST: id=a;user1=1001;user2=1002"),
        "ACK: id=a;result=ok\n"
    );
    assert_eq!(h.svc.active(), 1);
}

#[test]
fn the_table_of_ended_call_backs_stays_bounded() {
    let mut h = H::new(|c| c.rate = NonZeroU32::new(1000).unwrap());
    for i in 0..=MAX_ENDED {
        h.advance(Duration::from_millis(1));
        let cb = format!("cb{i}");
        let wall = h.wall();
        h.svc.handle_datagram(
            h.now,
            wall,
            addr(AS),
            format!("REQUEST: id={cb};user1=1001;user2=1002").as_bytes(),
        );
        h.end(&cb, Outcome::Connected);
    }
    assert_eq!(h.svc.entries.len(), MAX_ENDED);
    assert_eq!(h.svc.state(&id("cb0")), None);
    assert_eq!(h.svc.state(&id("cb1")), Some(State::Ended));
    assert_eq!(h.svc.stats().responses("evicted"), 1);
    assert!(h.svc.resend.len() <= MAX_ENDED);
}

#[test]
fn unsent_datagrams_are_bounded() {
    let mut h = H::default();
    for _ in 0..MAX_QUEUED + 10 {
        let wall = h.wall();
        h.svc
            .handle_datagram(h.now, wall, addr(AS), b"STATUS: id=a");
    }
    assert_eq!(h.drain().len(), MAX_QUEUED);
    assert_eq!(h.svc.stats().dropped("send_queue_full"), 10);
}

/// A RESPONSE that finds the send queue full (many ends in one turn) goes a moment later,
/// that try not counted, its resends on their schedule from its first send; one sent once
/// only is sent then. Before, the dropped send counted as a try (past some 7,000 ends at
/// once RESPONSEs were given up unsent) and one sent once was lost.
#[test]
fn a_response_the_full_send_queue_dropped_goes_at_the_next_tick() {
    let mut h = H::new(|c| {
        c.allow_any = true;
        c.allow = vec!["127.0.0.1/32".parse().unwrap()];
    });
    h.request("a", "1001", "1002");
    let out = h.recv_from("192.0.2.1:9", "REQUEST: id=b;user1=1001;user2=1002");
    assert_eq!(out.len(), 2, "{out:?}");
    let fill = |h: &mut H| {
        for _ in 0..MAX_QUEUED {
            let wall = h.wall();
            h.svc
                .handle_datagram(h.now, wall, addr(AS), b"STATUS: id=zz");
        }
    };
    fill(&mut h);
    h.svc.on_ended(
        h.now,
        &id("a"),
        End {
            outcome: Outcome::Connected,
            duration: Duration::from_millis(42_700),
            call_tag: CallTag::CalleeBye,
            cause: Q850Cause::NORMAL_CLEARING,
        },
    );
    h.svc.on_ended(
        h.now,
        &id("b"),
        End {
            outcome: Outcome::Connected,
            duration: Duration::from_millis(42_700),
            call_tag: CallTag::CalleeBye,
            cause: Q850Cause::NORMAL_CLEARING,
        },
    );
    let out = h.drain();
    assert_eq!(out.len(), MAX_QUEUED, "only the STATUS answers");
    assert_eq!(
        h.svc.stats().dropped("send_queue_full"),
        0,
        "nothing dropped"
    );
    let start = h.now;
    let out = h.fire().unwrap();
    assert_eq!(h.now - start, QUEUE_FULL_WAIT);
    let mut to: Vec<String> = out
        .iter()
        .map(|o| match o {
            Output::Transmit { to, .. } => to.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    to.sort();
    assert_eq!(to, [AS, "192.0.2.1:9"], "each RESPONSE once");
    assert_eq!(h.svc.stats().responses("sent_once"), 1);
    // The resent one on its schedule from there: T1, 2 T1, ..., seven sends in all.
    let sent_at = h.now;
    let mut sends = 1;
    while let Some(out) = h.fire() {
        if out.is_empty() {
            break;
        }
        assert_eq!(sent_text(&out[0], AS), RESPONSE_CONNECTED);
        if sends == 1 {
            assert_eq!(h.now - sent_at, T1);
        }
        sends += 1;
    }
    assert_eq!(sends, MAX_TRIES);
    assert_eq!(h.svc.stats().responses("given_up"), 1);
}

#[test]
fn a_reload_applies_the_new_allow_list_and_rate() {
    let mut h = H::new(|c| c.rate = NonZeroU32::new(1).unwrap());
    h.request("a", "1001", "1002");
    assert!(
        h.ask("REQUEST: id=b;user1=1001;user2=1002")
            .contains("over_rate")
    );
    h.svc.set_config(config(|c| {
        c.rate = NonZeroU32::new(5).unwrap();
        c.allow = vec!["127.0.0.2/32".parse().unwrap()];
    }));
    assert!(h.recv("STATUS: id=a").is_empty());
    let out = h.recv_from("127.0.0.2:1", "REQUEST: id=b;user1=1001;user2=1002");
    assert_eq!(sent_text(&out[0], "127.0.0.2:1"), "ACK: id=b;result=ok\n");
}

#[test]
fn a_call_back_whose_end_is_never_reported_is_released_by_the_watchdog() {
    let mut h = H::default();
    let start = h.now;
    h.request("a", "1001", "1002");
    // user1's leg: the default 120 s ring timeout for each peer of the longest route (one
    // here), plus the grace.
    let setup = Duration::from_secs(120) + WATCHDOG_GRACE;
    assert_eq!(h.svc.poll_timeout(), Some(start + setup));
    let out = h.fire().unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], Output::Command(Command::Cancel { id: id("a") }));
    assert_eq!(
        sent_text(&out[1], AS),
        "RESPONSE: id=a;result=user1_failed;duration=0;call_tag=gateway_error;cause=102\n"
    );
    assert_eq!(h.svc.active(), 0);
    assert_eq!(h.svc.stats().expired, 1);
    // The report that finally arrives changes nothing.
    assert!(h.end("a", Outcome::Connected).is_empty());
}

/// Each leg may fail over through every peer of the longest route, each ringing its ring
/// timeout: user1's leg is allowed that from the REQUEST, and user2's as much again from
/// user1's answer. Before, twice the longest ring timeout for both legs: two legs failing
/// over through three trunks each outlasted it, and the watchdog ended a call-back the call
/// layer was still placing. A review found it.
#[test]
fn each_leg_is_allowed_a_ring_for_every_peer_of_the_longest_route() {
    let mut h = H::default();
    let mut c = (*config(|_| {})).clone();
    c.routes[0].to = ["carrier-a", "carrier-b", "carrier-c"]
        .map(|p| PeerName(p.into()))
        .to_vec();
    h.svc.set_config(Arc::new(c));
    h.request("a", "1001", "1002");
    let leg = Duration::from_secs(3 * 120) + WATCHDOG_GRACE;
    assert_eq!(h.svc.poll_timeout(), Some(h.now + leg));
    h.advance(Duration::from_secs(700));
    h.svc.on_progress(h.now, &id("a"), State::Calling2);
    assert_eq!(
        h.svc.poll_timeout(),
        Some(h.now + leg),
        "user2's leg, from now"
    );
}

#[test]
fn once_connected_the_watchdog_waits_for_max_duration() {
    let mut h = H::new(|c| c.max_duration = Duration::from_secs(60));
    h.request("a", "1001", "1002");
    h.advance(Duration::from_secs(5));
    h.svc.on_progress(h.now, &id("a"), State::Calling2);
    h.advance(Duration::from_secs(5));
    h.svc.on_progress(h.now, &id("a"), State::Connected);
    let connected = h.now;
    assert_eq!(
        h.svc.poll_timeout(),
        Some(connected + Duration::from_secs(60) + WATCHDOG_GRACE)
    );
    // Cancelled by the AS before: the call layer is asked again (the first ask may be what
    // it lost), and does nothing for a call it no longer has.
    assert_eq!(h.recv("CANCEL: id=a").len(), 2);
    let out = h.fire().unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], Output::Command(Command::Cancel { id: id("a") }));
    assert_eq!(
        sent_text(&out[1], AS),
        "RESPONSE: id=a;result=connected;duration=660;call_tag=gateway_error;cause=102\n"
    );
}

#[test]
fn a_reported_end_disarms_the_watchdog() {
    let mut h = H::default();
    let start = h.now;
    h.request("a", "1001", "1002");
    h.end("a", Outcome::User1Failed);
    h.recv("ACK: id=a");
    assert_eq!(h.svc.poll_timeout(), Some(start + LINGER));
    assert_eq!(h.fire(), Some(vec![]));
    assert_eq!(h.svc.poll_timeout(), None);
    assert_eq!(h.svc.stats().expired, 0);
}

#[test]
fn without_from_peer_only_routes_from_anywhere_apply() {
    let mut h = H::new(|c| c.from_peer = None);
    // The test routes are all `from = "pbx"`.
    assert!(
        h.ask("REQUEST: id=a;user1=1001;user2=1002")
            .contains("no_route")
    );
    let mut cfg = (*config(|c| c.from_peer = None)).clone();
    cfg.routes.push(Route {
        from: RouteFrom::Any,
        prefix: "1".into(),
        to: vec![PeerName("pbx".into())],
        ring_timeout: None,
    });
    h.svc.set_config(Arc::new(cfg));
    let o = h.request("a", "1001", "1002");
    assert_eq!(o.from_peer, None);
}

#[test]
fn mutated_datagrams_never_panic_and_answers_stay_bounded() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let seeds: [&[u8]; 5] = [
        b"REQUEST: id=a;user1=+8610123;user2=1002;caller=1003;max_duration=60\n",
        b"CANCEL: id=a",
        b"STATUS: id=a",
        b"ACK: id=a",
        b"REQUEST: id=b;user1=1001;user2=1002",
    ];
    let alphabet = b";=:+*# \r\n\0\xffaz09AZ~";
    let mut rng = SmallRng::seed_from_u64(10);
    let mut h = H::new(|c| {
        c.max_active = 3;
        c.rate = NonZeroU32::new(1000).unwrap();
    });
    for round in 0..20_000u32 {
        let mut d = seeds[round as usize % seeds.len()].to_vec();
        for _ in 0..rng.random_range(0..4) {
            let i = rng.random_range(0..=d.len());
            match rng.random_range(0..3) {
                0 if i < d.len() => {
                    d.remove(i);
                }
                1 if i < d.len() => d[i] = alphabet[rng.random_range(0..alphabet.len())],
                _ => d.insert(i, alphabet[rng.random_range(0..alphabet.len())]),
            }
        }
        h.advance(Duration::from_millis(3));
        let out = h.recv_bytes(AS, &d);
        // Whatever follows, a datagram that starts as an ACK is never answered.
        let is_ack = d.starts_with(b"ACK:");
        assert!(out.len() <= 2, "{out:?}");
        for o in &out {
            match o {
                Output::Transmit { bytes, .. } => {
                    assert!(
                        !is_ack,
                        "an ACK was answered: {:?}",
                        String::from_utf8_lossy(&d)
                    );
                    assert!(bytes.len() <= protocol::MAX_DATAGRAM);
                }
                Output::Command(Command::Originate(o)) => {
                    h.svc.on_ended(
                        h.now,
                        &o.id,
                        End {
                            outcome: Outcome::Connected,
                            duration: Duration::ZERO,
                            call_tag: CallTag::CallerBye,
                            cause: Q850Cause::NORMAL_CLEARING,
                        },
                    );
                }
                Output::Command(Command::Cancel { .. }) => {}
            }
        }
        assert!(h.svc.active() <= 3);
        h.svc.handle_timeout(h.now);
        h.drain();
    }
    assert!(h.svc.stats().answered("request", "ok") > 0);
}

/// An AS that resends its REQUEST from a new socket (our ACK was lost) is its own AS on
/// another port: the resend is ACKed, places nothing, and the RESPONSE goes where it
/// listens now. Before, it was refused `duplicate_id` (an AS that then picks a new id
/// places a second call) and the RESPONSE went to the closed port.
#[test]
fn a_request_resent_from_another_port_of_its_as_is_a_retransmission() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    let out = h.recv_from("127.0.0.1:40001", "REQUEST: id=a;user1=1001;user2=1002");
    assert_eq!(out.len(), 1, "no second Originate: {out:?}");
    assert_eq!(
        sent_text(&out[0], "127.0.0.1:40001"),
        "ACK: id=a;result=ok\n"
    );
    assert_eq!(h.svc.active(), 1);
    let out = h.end("a", Outcome::Connected);
    assert_eq!(sent_text(&out[0], "127.0.0.1:40001"), RESPONSE_CONNECTED);
}

/// The watchdog asks the call layer to release the call even when a CANCEL was asked
/// before: it fires because the call layer never reported the end, so the first ask may
/// have been lost. Before, a cancelled call-back past its watchdog was forgotten here and
/// could run on outside `max_active`.
#[test]
fn the_watchdog_asks_for_the_release_again_after_a_cancel() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    let out = h.recv("CANCEL: id=a");
    assert!(
        out.contains(&Output::Command(Command::Cancel { id: id("a") })),
        "{out:?}"
    );
    let out = h.fire().unwrap();
    assert_eq!(
        out[0],
        Output::Command(Command::Cancel { id: id("a") }),
        "{out:?}"
    );
    assert_eq!(h.svc.stats().expired, 1);
    assert_eq!(h.svc.active(), 0);
}

/// A reload that takes an AS off `allow` leaves its RESPONSEs unACKable (its ACKs are
/// dropped at the socket): they are not resent for a minute, and a drain does not wait for
/// them.
#[test]
fn responses_to_an_as_a_reload_removed_are_not_resent() {
    let mut h = H::default();
    h.request("a", "1001", "1002");
    h.svc
        .set_config(config(|c| c.allow = vec!["127.0.0.9/32".parse().unwrap()]));
    let out = h.end("a", Outcome::Connected);
    assert_eq!(out.len(), 1, "the RESPONSE is sent once: {out:?}");
    assert!(h.svc.awaiting_acks());
    let out = h.fire().unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert!(!h.svc.awaiting_acks());
    assert_eq!(h.svc.stats().responses("not_allowed"), 1);
}

/// Anyone may send (`allow_any` without `secret_file`): a flood of bad datagrams with a
/// victim's address spoofed gets at most 100 error answers a second back, all sources
/// together; an allowed AS's are never held back.
#[test]
fn error_answers_to_anyone_are_bounded_per_second() {
    let mut h = H::new(|c| c.allow_any = true);
    let victim = "192.0.2.7:5060";
    let answered = (0..500)
        .map(|_| h.recv_from(victim, "X:").len())
        .sum::<usize>();
    assert_eq!(answered, 100);
    assert_eq!(h.svc.stats().dropped("answer_rate"), 400);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.recv_from(victim, "X:").len(), 1);
    // With an allow-list (the default), every error is answered.
    let mut h = H::default();
    let answered = (0..500).map(|_| h.recv("X:").len()).sum::<usize>();
    assert_eq!(answered, 500);
    // An allow-list of every address is anyone, written otherwise: held back too (before,
    // `allow = ["0.0.0.0/0"]` reflected every error).
    let mut h = H::new(|c| {
        c.allow = vec![
            "0.0.0.0/0".parse().unwrap(),
            "198.51.100.1/32".parse().unwrap(),
        ]
    });
    let answered = (0..500)
        .map(|_| h.recv_from(victim, "X:").len())
        .sum::<usize>();
    assert_eq!(answered, 100);
    // An AS the list names is answered every time, whatever the spray took.
    let own = (0..50)
        .map(|_| h.recv_from("198.51.100.1:5000", "X:").len())
        .sum::<usize>();
    assert_eq!(own, 50);
}

/// The same for answers that are not errors: a STATUS of a known id (12 bytes answered with
/// 32) or a REQUEST replayed, sent in a victim's name, get at most 100 answers a second
/// together; answers that place a call are held to `rate` instead, never to this. Before,
/// only errors were held back.
#[test]
fn every_answer_to_anyone_but_a_placed_calls_is_bounded_per_second() {
    let mut h = H::new(|c| {
        c.allow_any = true;
        c.rate = NonZeroU32::new(1000).unwrap();
        c.max_active = 1000;
    });
    let victim = "192.0.2.7:5060";
    let sent = |out: Vec<Output>| {
        (out.iter())
            .filter(|o| matches!(o, Output::Transmit { .. }))
            .count()
    };
    let placed = (0..150)
        .map(|i| {
            let req = format!("REQUEST: id=p{i};user1=1001;user2=1002");
            sent(h.recv_from("198.51.100.1:5000", &req))
        })
        .sum::<usize>();
    assert_eq!(placed, 150, "a new call's answer is never held back");
    let status = (0..300)
        .map(|_| sent(h.recv_from(victim, "STATUS: id=p1")))
        .sum::<usize>();
    let again = (0..300)
        .map(|_| sent(h.recv_from(victim, "REQUEST: id=p2;user1=1001;user2=1002")))
        .sum::<usize>();
    assert_eq!(status + again, 100, "{status} + {again}");
    assert_eq!(h.svc.stats().dropped("answer_rate"), 500);
}

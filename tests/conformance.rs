//! The gateway between real SIP peers: SIPp plays the phone and the carriers
//! (scenarios in `conformance/`), the real binary runs in between.

mod common;

use common::*;

fn world() -> (Gateway, tempfile::TempDir) {
    (
        Gateway::start(Ports::new(), GwOpts::default()),
        tempfile::tempdir().unwrap(),
    )
}

#[test]
fn basic_call_bye_from_caller() {
    let (gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "caller_bye");
    assert_eq!(c["status"], 200);
    assert_eq!(c["cause"], 16);
    assert_eq!(c["from"], "1000");
    assert_eq!(c["to"], "+8610123");
    assert_eq!(c["ingress_peer"], "pbx");
    assert_eq!(c["egress_peer"], "carrier-a");
    assert!(c["answer"].is_string());
    assert!(c["duration_ms"].as_u64().unwrap() >= 150, "{c}");
    // The call layer's lines about the call carry its Call-ID and peer (the span).
    let span = format!(
        "call{{call_id={} peer=pbx}}",
        c["call_id"].as_str().unwrap()
    );
    let log = gw.log();
    for step in ["call answered", "call ended"] {
        assert!(
            log.lines().any(|l| l.contains(step) && l.contains(&span)),
            "no {step:?} line in {span}:\n{log}"
        );
    }
}

#[test]
fn basic_call_bye_from_callee() {
    let (gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "callee-bye/carrier.xml",
        "callee-bye/phone.xml",
        Transport::Udp,
    );
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "callee_bye");
    assert_eq!(c["cause"], 16);
    assert_eq!(c["cause_source"], "reason-header");
}

#[test]
fn cancel_while_ringing() {
    let (gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "cancel/carrier.xml",
        "cancel/phone.xml",
        Transport::Udp,
    );
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "caller_cancel");
    assert_eq!(c["status"], 487);
    assert!(c["answer"].is_null());
}

#[test]
fn busy_from_carrier_is_relayed_with_its_cause() {
    let (gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "busy/carrier.xml",
        "busy/phone.xml",
        Transport::Udp,
    );
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "callee_reject");
    assert_eq!(c["status"], 486);
    assert_eq!(c["cause"], 17);
    assert_eq!(c["cause_source"], "reason-header");
}

#[test]
fn failover_to_second_carrier_on_503() {
    let (gw, tmp) = world();
    let b = Sipp::uas(
        "basic-call/carrier.xml",
        CARRIER_B_IP,
        gw.ports.carrier_b,
        tmp.path(),
    );
    let (a, phone) = phone_calls_carrier(
        &gw,
        tmp.path(),
        "failover/carrier-a.xml",
        "basic-call/phone.xml",
        "+8610123",
        Transport::Udp,
    );
    phone.expect_success(&gw);
    a.expect_success(&gw);
    b.expect_success(&gw);
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["egress_peer"], "carrier-b");
    assert_eq!(c["call_tag"], "caller_bye");
    assert_eq!(c["events"][0], "failover_503");
}

#[test]
fn failover_on_transport_error() {
    // carrier-a is reached over TCP and nothing listens there: connection refused.
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            carrier_a_transport: "tcp",
            ..GwOpts::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let b = Sipp::uas(
        "basic-call/carrier.xml",
        CARRIER_B_IP,
        gw.ports.carrier_b,
        tmp.path(),
    );
    let phone = Sipp::uac(
        "basic-call/phone.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
        gw.addr(),
        "+8610123",
    );
    phone.expect_success(&gw);
    b.expect_success(&gw);
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["egress_peer"], "carrier-b");
    assert_eq!(c["events"][0], "peer_transport_error");
}

#[test]
fn hold_and_resume_with_reinvite() {
    let (gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "hold/carrier.xml",
        "hold/phone.xml",
        Transport::Udp,
    );
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn a_reinvite_left_ringing_can_be_cancelled_and_the_next_one_goes_through() {
    let (gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "reinvite-cancel/carrier.xml",
        "reinvite-cancel/phone.xml",
        Transport::Udp,
    );
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn inbound_call_from_carrier_to_pbx() {
    // The carrier calls in (SIPp UAC on the carrier's address); the PBX answers.
    let (gw, tmp) = world();
    let pbx = Sipp::uas(
        "basic-call/carrier.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
    );
    let carrier = Sipp::uac(
        "basic-call/phone.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
        gw.addr(),
        "2001",
    );
    carrier.expect_success(&gw);
    pbx.expect_success(&gw);
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["ingress_peer"], "carrier-a");
    assert_eq!(c["egress_peer"], "pbx");
}

#[test]
fn options_keepalive() {
    let (gw, tmp) = world();
    // A carrier (or a load balancer in front, see issue 14) probing the gateway.
    let ping = Sipp::uac(
        "options/ping.xml",
        CARRIER_A_IP,
        free_port(CARRIER_A_IP),
        tmp.path(),
        gw.addr(),
        "ping",
    );
    ping.expect_success(&gw);
}

#[test]
fn sigterm_after_a_call_exits_cleanly_with_its_cdr_on_disk() {
    let (mut gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "busy/carrier.xml",
        "busy/phone.xml",
        Transport::Udp,
    );
    assert!(gw.stop().success(), "log:\n{}", gw.log());
    assert!(gw.log().contains("trunkgate stopped"));
    let c = gw.cdrs();
    assert_eq!(c.len(), 1, "the call's CDR is flushed before exit");
    assert_eq!(c[0]["call_tag"], "callee_reject");
}

#[test]
fn cdrs_survive_a_crash() {
    // A call ends, then the process dies without any chance to flush (SIGKILL): its CDR was
    // written out of the process, not held in a buffer. (The page cache survives a SIGKILL:
    // the fsync is `cdr::tests`'.)
    let (mut gw, tmp) = world();
    call_succeeds(
        &gw,
        tmp.path(),
        "busy/carrier.xml",
        "busy/phone.xml",
        Transport::Udp,
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let c = gw.cdrs();
    assert_eq!(
        c.len(),
        1,
        "the CDR of a call that ended over a second ago is on disk"
    );
    assert_eq!(c[0]["call_tag"], "callee_reject");
}

fn tcp_world() -> (Gateway, tempfile::TempDir) {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            carrier_a_transport: "tcp",
            ..GwOpts::default()
        },
    );
    (gw, tempfile::tempdir().unwrap())
}

#[test]
fn tcp_on_both_legs_bye_from_caller() {
    // The phone calls over TCP; carrier-a is reached over TCP. Responses reuse the phone's
    // connection; the gateway opens its own to the carrier.
    let (gw, tmp) = tcp_world();
    call_succeeds(
        &gw,
        tmp.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        Transport::Tcp,
    );
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn tcp_on_both_legs_bye_from_callee() {
    // The callee's BYE reaches the phone over the connection the phone opened.
    let (gw, tmp) = tcp_world();
    call_succeeds(
        &gw,
        tmp.path(),
        "callee-bye/carrier.xml",
        "callee-bye/phone.xml",
        Transport::Tcp,
    );
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "callee_bye");
}

#[test]
fn sighup_reloads_profiles_and_refuses_a_broken_reload() {
    let (gw, tmp) = world();
    let send_hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &gw.child.id().to_string()])
            .status()
            .unwrap()
    };
    // 1. A profile edit takes effect for the next call: carrier-a now wants a=ptime:20.
    let profile = gw.path("profiles/carrier-a.toml");
    let original = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, format!("{original}\n[sdp]\nptime = 20\n")).unwrap();
    send_hup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gw.log().contains("configuration reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload:\n{}",
            gw.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    call_succeeds(
        &gw,
        tmp.path(),
        "ptime/carrier.xml",
        "ptime/phone.xml",
        Transport::Udp,
    );

    // 2. A broken edit is refused with its position, and the running configuration stays.
    std::fs::write(
        &profile,
        format!("{original}\n[sdp]\nptime = 20\nptmie = 30\n"),
    )
    .unwrap();
    send_hup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gw.log().contains("reload refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal:\n{}",
            gw.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The line after `original`, the blank line, `[sdp]` and `ptime`.
    let at = format!(
        "carrier-a.toml:{}:1: unknown field `ptmie`",
        original.lines().count() + 4
    );
    assert!(gw.log().contains(&at), "{}", gw.log());
    assert!(
        !gw.log().contains("route to unknown peer"),
        "no follow-on noise: {}",
        gw.log()
    );
    call_succeeds(
        &gw,
        tmp.path(),
        "ptime/carrier.xml",
        "ptime/phone.xml",
        Transport::Udp,
    );
}

/// A call that neither side hangs up (each scenario waits for a BYE), up and answered:
/// a signal sent before that would find it still setting up. Returns SIPp's carrier and
/// phone, and their folder.
fn a_call_that_waits_for_a_bye(gw: &Gateway) -> (Sipp, Sipp, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let (carrier, phone) = phone_calls_carrier(
        gw,
        tmp.path(),
        "prack-phone/carrier.xml",
        "callee-bye/phone.xml",
        "+8610123",
        Transport::Udp,
    );
    // Answered (a counter, moved at once; the active-calls level also counts ringing calls
    // and is sampled once a second), then the 200's ACK's time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw.metrics().lines().any(|l| {
        l.starts_with("trunkgate_calls_answered_total{")
            && l.contains("direction=\"inbound\"")
            && l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v >= 1.0)
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    (carrier, phone, tmp)
}

/// Stop the gateway (SIGTERM), and find the call released by the shutdown, with its CDR.
fn stop_releases_the_call(gw: &mut Gateway, carrier: Sipp, phone: Sipp) {
    assert!(gw.stop().success(), "{}", gw.log());
    phone.expect_success(gw);
    carrier.expect_success(gw);
    let c = gw.cdrs();
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(c[0]["call_tag"], "shutdown");
}

#[test]
fn a_second_sigterm_hangs_up_at_once_instead_of_waiting_out_the_drain() {
    let mut gw = Gateway::start(
        Ports::new(),
        GwOpts {
            drain_s: 600,
            ..GwOpts::default()
        },
    );
    let (carrier, phone, _tmp) = a_call_that_waits_for_a_bye(&gw);
    assert!(gw.http_get("/health").starts_with("HTTP/1.1 200 OK"));
    gw.signal("TERM");
    // A second signal at once (one keypress delivered twice) is the same request.
    gw.signal("INT");
    // Counted from when the gateway acted on the first (its log line), not from when this
    // test sent it: a loaded machine may have it handled late.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw.log().contains("shutting down") {
        assert!(
            std::time::Instant::now() < deadline,
            "no drain:\n{}",
            gw.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A readiness probe sends new calls elsewhere while it drains.
    let health = gw.http_get("/health");
    assert!(
        health.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{health}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let log = gw.log();
    assert_eq!(log.matches("shutting down").count(), 1, "{log}");
    assert!(
        !log.contains("stop signal again"),
        "the repeat within the second was taken for a second request:\n{log}"
    );
    assert!(
        gw.cdrs().is_empty(),
        "the first SIGTERM only starts the drain"
    );
    // A 600 s drain: only the second signal can make this stop within stop()'s 15 s.
    stop_releases_the_call(&mut gw, carrier, phone);
}

/// SIGTERM with more calls up than the CDR queue holds unsynced (twice `[cdr] max_pending`,
/// here 20): the drain's end hangs them up in turns, each no larger than what the queue
/// takes, so every call has its CDR in the file, its BYEs go out, and the stop exits 0.
/// Before, one turn hung up every call at once: the CDRs past the queue's limit went to the
/// log instead of the file, and the run failed.
#[test]
fn a_shutdown_with_more_calls_up_than_the_cdr_queue_holds_writes_every_cdr() {
    const CALLS: usize = 120;
    let mut gw = Gateway::start(
        Ports::new(),
        GwOpts {
            cdr_extra: "max_pending = 10\n",
            ..GwOpts::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let n = CALLS.to_string();
    let load = [
        "-m",
        &n,
        "-r",
        "60",
        "-l",
        &n,
        "-timeout",
        "40s",
        "-timeout_error",
    ];
    let carrier = Sipp::spawn_args(
        "prack-phone/carrier.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
        None,
        None,
        &load,
    );
    let phone = Sipp::spawn_args(
        "callee-bye/phone.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
        Some(gw.addr()),
        Some("+8610123"),
        &load,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let answered = |gw: &Gateway| {
        gw.metrics()
            .lines()
            .filter(|l| l.starts_with("trunkgate_calls_answered_total{"))
            .filter(|l| l.contains("direction=\"inbound\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    while answered(&gw) < CALLS as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {CALLS} calls came up",
            answered(&gw)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(gw.stop().success(), "{}", gw.log());
    let c = gw.cdrs();
    let tags: Vec<_> = c.iter().map(|c| c["call_tag"].to_string()).collect();
    assert_eq!(c.len(), CALLS, "{tags:?}\n{}", gw.log());
    assert!(c.iter().all(|c| c["call_tag"] == "shutdown"), "{tags:?}");
    phone.expect_success(&gw);
    carrier.expect_success(&gw);
}

#[test]
fn sigterm_with_a_call_up_hangs_it_up_after_the_drain_period() {
    // drain_s is 2 in tests.
    let (mut gw, _tmp) = world();
    let (carrier, phone, _calls) = a_call_that_waits_for_a_bye(&gw);
    stop_releases_the_call(&mut gw, carrier, phone);
}

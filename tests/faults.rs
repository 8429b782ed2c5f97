//! Faults against the real binary: SIGKILL under load, a trunk that is down in three ways,
//! a pinged trunk that goes silent and comes back, a `/metrics` port already taken at
//! start-up, and the process stalled (SIGSTOP). Every wait is bounded and waits for a
//! condition; assertions are about what happened, never about how fast. The four trunk
//! tests without pings each last one Timer B (32 s, RFC 3261 §17.1.1.2): without
//! `[sip] ping_s` the gateway notices none of the three failures sooner (see each test). Tests run in parallel, so the file takes about
//! that long. Their routes get a 120 s ring timeout: with a ring timeout under 32 s a silent
//! trunk ends the call with 408 `no_answer_timeout` before Timer B can fail it over.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Call-IDs of the calls a SIPp phone saw end: a `200` to its BYE in its message trace.
fn ended_calls(trace: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut out = Vec::new();
    // SIPp starts every traced message with a line of dashes and a timestamp.
    for entry in text.split("\n-----------------------------------------------") {
        if !entry.contains("message received") {
            continue;
        }
        let Some(sip) = entry.split("\n\n").nth(1) else {
            continue;
        };
        let is_bye_200 =
            sip.starts_with("SIP/2.0 200") && sip.lines().any(|l| l.trim() == "CSeq: 2 BYE");
        if let Some(id) = sip
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID:"))
            .filter(|_| is_bye_200)
        {
            out.push(id.trim().to_string());
        }
    }
    out
}

/// Every line of the CDR file, each of which must be a complete JSON object ending in '\n'.
fn cdr_lines(gw: &Gateway) -> Vec<serde_json::Value> {
    let raw = std::fs::read_to_string(gw.path("cdr.jsonl")).unwrap_or_default();
    assert!(
        raw.is_empty() || raw.ends_with('\n'),
        "the CDR file ends in a partial line: {:?}",
        raw.lines().last()
    );
    raw.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("corrupt CDR line ({e}): {l:?}"))
        })
        .collect()
}

/// What happens to calls when the process is SIGKILLed with calls coming and going:
/// - every call that ended (the phone got the 200 to its BYE) more than a second before the
///   kill has exactly one complete CDR line: CDRs leave the process at release (written,
///   not held in a buffer; a SIGKILL leaves the page cache whole, so this does not test
///   the fsync within half a second, which `cdr::tests` does);
/// - calls in progress at the kill get no CDR and neither of their legs gets a BYE: the
///   phone's next request is retransmitted into an ICMP port unreachable until its
///   transaction times out, and the carrier keeps its dialog until its own session or media
///   timer ends it. Nothing about them survives the restart (the gateway keeps no state on
///   disk other than CDRs);
/// - the restarted gateway binds the same ports and serves a new call at once.
#[test]
fn sigkill_under_load_keeps_every_ended_calls_cdr_and_restarts_clean() {
    let mut gw = Gateway::start(
        Ports::new(),
        GwOpts {
            single_carrier: true,
            ..GwOpts::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut carrier = Sipp::spawn_args(
        "basic-call/carrier.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
        None,
        None,
        &["-m", "500", "-timeout", "60s"],
    );
    // A steady, modest load: 10 calls a second, each up for 200 ms and ended by the phone.
    let mut phone = Sipp::spawn_args(
        "basic-call/phone.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
        Some(gw.addr()),
        Some("+8610123"),
        &["-r", "10", "-m", "500", "-l", "50", "-timeout", "60s"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let ended = loop {
        let ended = ended_calls(&phone.message_log());
        if ended.len() >= 10 {
            break ended;
        }
        assert!(
            Instant::now() < deadline,
            "only {} calls completed under load; gateway log:\n{}",
            ended.len(),
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The calls in `ended` had ended by now; let more than the promised second pass while
    // the load goes on, then kill.
    std::thread::sleep(Duration::from_millis(1500));
    gw.kill9();
    phone.kill();
    carrier.kill();

    let cdrs = cdr_lines(&gw);
    eprintln!(
        "{} calls had ended over a second before the kill; {} CDR lines on disk",
        ended.len(),
        cdrs.len()
    );
    let mut per_call: HashMap<String, usize> = HashMap::new();
    for c in &cdrs {
        *per_call
            .entry(c["call_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    for id in &ended {
        assert_eq!(
            per_call.get(id).copied().unwrap_or(0),
            1,
            "call {id} ended over a second before the kill: exactly one CDR line\n{cdrs:#?}"
        );
    }
    assert!(
        per_call.values().all(|n| *n == 1),
        "a call has two CDR lines: {per_call:?}"
    );
    let ended_set: HashSet<String> = ended.iter().cloned().collect();
    assert!(
        cdrs.iter()
            .filter(|c| ended_set.contains(c["call_id"].as_str().unwrap_or_default()))
            .all(|c| c["call_tag"] == "caller_bye" && c["status"] == 200),
        "{cdrs:#?}"
    );

    // Same folder, same ports, same CDR file: it must come up and serve a call at once.
    gw.restart();
    let before = cdrs.len();
    let tmp2 = tempfile::tempdir().unwrap();
    call_succeeds(
        &gw,
        tmp2.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = cdr_lines(&gw);
        if after.len() > before || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(after.len(), before + 1, "{after:#?}");
    assert_eq!(after[before]["call_tag"], "caller_bye");
    assert_eq!(&after[..before], &cdrs[..], "the old lines are untouched");
}

/// The phone calls through a gateway whose carrier-a is down in some way and carrier-b
/// answers: the call must complete on carrier-b. Returns the CDR.
fn fails_over_to_carrier_b(gw: &Gateway) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let b = Sipp::spawn_args(
        "basic-call/carrier.xml",
        CARRIER_B_IP,
        gw.ports.carrier_b,
        tmp.path(),
        None,
        None,
        &["-m", "1", "-timeout", "90s", "-timeout_error"],
    );
    let phone = Sipp::spawn_args(
        "basic-call/phone.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
        Some(gw.addr()),
        Some("+8610123"),
        &["-m", "1", "-timeout", "90s", "-timeout_error"],
    );
    // Timer B (32 s) plus the call itself, with room for a loaded machine.
    phone.expect_success_within(gw, Duration::from_secs(90));
    b.expect_success_within(gw, Duration::from_secs(90));
    gw.wait_cdrs(1).remove(0)
}

/// A bare INVITE from the PBX's address; returns the first final status (after ACKing it).
fn invite_final_status(gw: &Gateway, call_id: &str) -> u16 {
    invite_final_status_at(gw.addr(), call_id)
        .unwrap_or_else(|| panic!("no final response to {call_id}; log:\n{}", gw.log()))
}

/// [`invite_final_status`] toward the gateway at `gw`: `None` if no final came in 90 s.
fn invite_final_status_at(gw: std::net::SocketAddr, call_id: &str) -> Option<u16> {
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let head = |method: &str| {
        format!(
            "Via: SIP/2.0/UDP {PHONE_IP}:{port};branch=z9hG4bK{call_id}\r\nFrom: <sip:1000@{PHONE_IP}>;tag=f{call_id}\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
        )
    };
    let invite = format!(
        "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\n{}Contact: <sip:1000@{PHONE_IP}:{port}>\r\nContent-Length: 0\r\n\r\n",
        head("INVITE")
    );
    sock.send_to(invite.as_bytes(), gw).unwrap();
    // Timer B is 32 s; give it room on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            let to = text
                .lines()
                .find(|l| l.starts_with("To:"))
                .unwrap_or("To: <sip:+8610123@127.0.0.1>")
                .to_string();
            let ack = format!(
                "ACK sip:+8610123@127.0.0.1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
                head("ACK").replace("To: <sip:+8610123@127.0.0.1>", &to)
            );
            sock.send_to(ack.as_bytes(), gw).unwrap();
            return Some(status);
        }
    }
    None
}

/// Nothing listens on carrier-a's UDP port: the kernel answers each INVITE with ICMP port
/// unreachable. The gateway does not see ICMP on its unconnected UDP socket, so it treats
/// the trunk as silent and fails over when Timer B fires (32 s), not at once.
#[test]
fn udp_trunk_with_nothing_listening_fails_over_to_carrier_b() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            ring_timeout_s: 120,
            ..GwOpts::default()
        },
    );
    let c = fails_over_to_carrier_b(&gw);
    assert_eq!(c["egress_peer"], "carrier-b", "{c:#}");
    assert_eq!(c["call_tag"], "caller_bye", "{c:#}");
    assert_eq!(c["events"][0], "peer_timeout", "{c:#}");
}

/// carrier-a's port is a black hole (a socket that reads and never answers) and there is no
/// second carrier: after Timer B the CDR says `peer_unreachable` (cause 102, recovery on
/// timer expiry). Today the caller gets 408, not 503: the gateway answers a timed-out trunk
/// the way a proxy does (RFC 3261 §16.7), which a PBX may not treat as "try another route".
#[test]
fn udp_black_hole_trunk_without_failover_fails_with_408_peer_unreachable() {
    let ports = Ports::new();
    let hole = UdpSocket::bind((CARRIER_A_IP, ports.carrier_a)).unwrap();
    hole.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swallowed = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            let mut buf = vec![0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if hole.recv_from(&mut buf).is_ok() {
                    n += 1;
                }
            }
            n
        })
    };
    let gw = Gateway::start(
        ports,
        GwOpts {
            ring_timeout_s: 120,
            single_carrier: true,
            ..GwOpts::default()
        },
    );
    let status = invite_final_status(&gw, "blackhole-1");
    stop.store(true, Ordering::Relaxed);
    let swallowed = swallowed.join().unwrap();
    // The INVITE and its Timer A retransmissions all went into the hole.
    assert!(swallowed >= 2, "the black hole saw {swallowed} datagrams");
    assert_eq!(status, 408, "log:\n{}", gw.log());
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "peer_unreachable", "{c:#}");
    assert_eq!(c["status"], 408, "{c:#}");
    assert_eq!(c["cause"], 102, "{c:#}");
    assert_eq!(c["egress_peer"], "carrier-a", "{c:#}");
}

/// A TCP listener on carrier-a that accepts, lets the INVITE arrive and closes with it
/// unread, which makes the kernel reset the connection (RST).
fn resetting_tcp_peer(ip: &str, port: u16) -> std::thread::JoinHandle<usize> {
    tcp_stand_in(ip, port, 0, |s, resets| {
        let mut first = [0u8; 1];
        // Wait for the INVITE's first bytes, leave the rest unread, close: RST.
        if s.peek(&mut first).unwrap_or(0) > 0 {
            *resets += 1;
        }
        *resets >= 1
    })
}

/// A TCP listener at `ip:port` whose connections (blocking, a 10 s read timeout) are each
/// handed to `serve` with what it has gathered so far, until `serve` says it is done or
/// 30 s have passed; returns what it gathered.
fn tcp_stand_in<T: Send + 'static>(
    ip: &str,
    port: u16,
    mut gathered: T,
    mut serve: impl FnMut(std::net::TcpStream, &mut T) -> bool + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let listener = TcpListener::bind((ip, port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok((s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            if serve(s, &mut gathered) {
                break;
            }
        }
        gathered
    })
}

/// carrier-a is reached over TCP, accepts the connection, receives the INVITE and resets.
/// The INVITE, unanswered on a connection that died, is taken as not delivered (RFC 3261
/// §17.1.1.2 / §18.4): the call fails over at once, with the event `peer_transport_error`,
/// as for a refused connection (conformance.rs). Before, it waited for Timer B (32 s) and
/// failed over with `peer_timeout`.
#[test]
fn tcp_trunk_that_resets_fails_over_to_carrier_b() {
    let ports = Ports::new();
    let peer = resetting_tcp_peer(CARRIER_A_IP, ports.carrier_a);
    let gw = Gateway::start(
        ports,
        GwOpts {
            carrier_a_transport: "tcp",
            ring_timeout_s: 120,
            ..GwOpts::default()
        },
    );
    let c = fails_over_to_carrier_b(&gw);
    assert_eq!(
        peer.join().unwrap(),
        1,
        "carrier-a saw the INVITE and reset"
    );
    assert_eq!(c["egress_peer"], "carrier-b", "{c:#}");
    assert_eq!(c["call_tag"], "caller_bye", "{c:#}");
    assert_eq!(c["events"][0], "peer_transport_error", "{c:#}");
}

/// The same reset with no second carrier: at once, 503 to the caller and `peer_unreachable`
/// (as for a refused connection; before, 408 after Timer B, as for the black hole).
#[test]
fn tcp_trunk_that_resets_without_failover_fails_with_503_peer_unreachable() {
    let ports = Ports::new();
    let peer = resetting_tcp_peer(CARRIER_A_IP, ports.carrier_a);
    let gw = Gateway::start(
        ports,
        GwOpts {
            carrier_a_transport: "tcp",
            ring_timeout_s: 120,
            single_carrier: true,
            ..GwOpts::default()
        },
    );
    let status = invite_final_status(&gw, "tcprst-1");
    assert_eq!(
        peer.join().unwrap(),
        1,
        "carrier-a saw the INVITE and reset"
    );
    assert_eq!(status, 503, "log:\n{}", gw.log());
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "peer_unreachable", "{c:#}");
    assert_eq!(c["status"], 503, "{c:#}");
    assert!(gw.log().contains("TCP read failed"), "the reset was seen");
}

/// A TCP listener on carrier-a that closes its first connection once the INVITE's head has
/// come, unanswered, and answers the INVITE on its second with `486 Busy Here`.
/// Returns the Call-ID each connection's INVITE carried.
fn resetting_then_busy_tcp_peer(ip: &str, port: u16) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::{Read, Write};
    tcp_stand_in(ip, port, Vec::new(), |mut s, seen: &mut Vec<String>| {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        seen.push(field("Call-ID:"));
        if seen.len() == 1 {
            // Closed unanswered, as a peer closing a connection it took as idle.
            return false;
        }
        let busy = format!(
            "SIP/2.0 486 Busy Here\r\n{}\r\n{}\r\n{};tag=busy\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
            field("Via:"),
            field("From:"),
            field("To:"),
            field("Call-ID:"),
            field("CSeq:")
        );
        s.write_all(busy.as_bytes()).unwrap();
        // Its ACK comes on this connection: read it before closing.
        let _ = s.read(&mut buf);
        true
    })
}

/// carrier-a, over TCP, closes the connection our INVITE went out on before answering it
/// (as a trunk or balancer closing a connection it held idle does, just as we wrote): the
/// gateway sends the INVITE once more, on a new connection, and carrier-a answers that
/// one. The caller gets carrier-a's answer (486), not a failure. Before, the first loss
/// failed the call (503, `peer_unreachable`) from a trunk that was up.
#[test]
fn tcp_trunk_that_closes_our_first_connection_gets_the_invite_again_on_a_new_one() {
    let ports = Ports::new();
    let peer = resetting_then_busy_tcp_peer(CARRIER_A_IP, ports.carrier_a);
    let gw = Gateway::start(
        ports,
        GwOpts {
            carrier_a_transport: "tcp",
            ring_timeout_s: 120,
            single_carrier: true,
            ..GwOpts::default()
        },
    );
    let status = invite_final_status(&gw, "tcpagain-1");
    assert_eq!(status, 486, "log:\n{}", gw.log());
    let seen = peer.join().unwrap();
    assert_eq!(seen.len(), 2, "two connections: {seen:?}");
    assert_eq!(seen[0], seen[1], "the same INVITE on each");
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["status"], 486, "{c:#}");
    assert_eq!(c["call_tag"], "callee_reject", "{c:#}");
    assert_eq!(c["egress_peer"], "carrier-a", "{c:#}");
}

/// A second gateway (its own ports) configured with the CDR file of one that runs must not
/// start: two writers of one file glue each other's lines together after a short write, and
/// share `.unwritten`. Before, it only warned that its pid file was held, and ran.
#[test]
fn a_second_gateway_on_a_running_ones_cdr_file_does_not_start() {
    let first = Gateway::start(Ports::new(), GwOpts::default());
    let mut second = Gateway::start(Ports::new(), GwOpts::default());
    second.kill9();
    let conf = second.path("gateway.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let shared = format!("path = {:?}", first.path("cdr.jsonl").display().to_string());
    assert!(text.contains("path = \"cdr.jsonl\""), "{text}");
    std::fs::write(&conf, text.replace("path = \"cdr.jsonl\"", &shared)).unwrap();
    let (status, log) = second.start_again_expecting_exit();
    let status = status.unwrap_or_else(|| panic!("still running on a shared CDR file:\n{log}"));
    assert!(!status.success(), "{status}\n{log}");
    assert!(log.contains("held by a running trunkgate"), "{log}");
    assert!(!log.contains("trunkgate running"), "{log}");
    assert!(first.log().contains("trunkgate running"));
}

/// Something else holds the `/metrics` port: `run` must refuse to start, say why, and exit
/// non-zero (rather than run without metrics or hang).
#[test]
fn metrics_port_taken_at_start_up_is_a_clear_error() {
    let mut gw = Gateway::start(Ports::new(), GwOpts::default());
    gw.kill9();
    let _taken = TcpListener::bind(("127.0.0.1", gw.ports.metrics)).unwrap();
    let (status, log) = gw.start_again_expecting_exit();
    let status = status.unwrap_or_else(|| panic!("still running with the port taken:\n{log}"));
    assert!(!status.success(), "{status}\n{log}");
    let addr = format!("127.0.0.1:{}", gw.ports.metrics);
    assert!(
        log.contains("metrics") && log.contains(&addr),
        "the error names the metrics address {addr}:\n{log}"
    );
}

/// Something else holds the call-back port: `run` refuses to start, naming the address, and
/// never says it is running (before, "trunkgate running" came first, then the refusal).
#[test]
fn callback_port_taken_at_start_up_is_a_clear_error_never_running() {
    let cb_port = free_port("127.0.0.1");
    let mut gw = Gateway::start(Ports::new(), GwOpts::callback_on(cb_port, ""));
    gw.kill9();
    let _taken = UdpSocket::bind(("127.0.0.1", cb_port)).unwrap();
    let (status, log) = gw.start_again_expecting_exit();
    let status = status.unwrap_or_else(|| panic!("still running with the port taken:\n{log}"));
    assert!(!status.success(), "{status}\n{log}");
    let addr = format!("udp:127.0.0.1:{cb_port}");
    assert!(log.contains(&addr), "the error names {addr}:\n{log}");
    assert!(!log.contains("trunkgate running"), "{log}");
}

/// The gateway stalled (SIGSTOP: a VM paused, a host that gave it no CPU) while carrier-a's
/// `100 Trying` waited in its socket, past carrier-a's `invite_timeout_s = 1`: on waking it
/// reads the 100 before its timer fires, so the attempt is not given up (before, the timer
/// came first: the caller got 408 and the carrier a CANCEL). The carrier's 486 then ends the
/// call as the carrier said.
#[test]
fn a_response_queued_during_a_stall_is_read_before_the_timers_fire() {
    let ports = Ports::new();
    let carrier = UdpSocket::bind((CARRIER_A_IP, ports.carrier_a)).unwrap();
    carrier
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let gw = Gateway::start(
        ports,
        GwOpts {
            single_carrier: true,
            ..GwOpts::carrier_a("[sip]\ninvite_timeout_s = 1\n")
        },
    );
    let phone = std::thread::spawn({
        let addr = gw.addr();
        move || invite_final_status_at(addr, "stall-1").expect("a final status")
    });
    let mut buf = vec![0u8; 65536];
    let (n, from) = carrier.recv_from(&mut buf).expect("the INVITE");
    let invite = String::from_utf8_lossy(&buf[..n]).into_owned();
    let answer = |status: &str| {
        let mut r = format!("SIP/2.0 {status}\r\n");
        for l in invite.lines().skip(1) {
            let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
            if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
                r.push_str(&format!("{l}\r\n"));
            } else if name == "to" {
                r.push_str(&format!("{l};tag=stall\r\n"));
            }
        }
        r + "Content-Length: 0\r\n\r\n"
    };
    gw.signal("STOP");
    carrier
        .send_to(answer("100 Trying").as_bytes(), from)
        .unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    gw.signal("CONT");
    std::thread::sleep(Duration::from_millis(500));
    carrier
        .send_to(answer("486 Busy Here").as_bytes(), from)
        .unwrap();
    let status = phone.join().unwrap();
    assert_eq!(status, 486, "log:\n{}", gw.log());
    carrier
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while let Ok((n, _)) = carrier.recv_from(&mut buf) {
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!got.starts_with("CANCEL"), "given up: {got}");
    }
}

/// Wait (40 s at most) until `trunkgate_peer_up{peer="carrier-a"}` is `want`.
fn carrier_a_up_becomes(gw: &Gateway, want: f64) {
    let series = "trunkgate_peer_up{peer=\"carrier-a\"}";
    let deadline = Instant::now() + Duration::from_secs(40);
    while Gateway::metric_value(&gw.metrics(), series) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{series} never {want}; log:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What carrier-a's stand-in does with what it is sent.
const SWALLOW: u8 = 0;
const ANSWER: u8 = 1;

/// A UDP peer on carrier-a's address that, while `mode` is [`ANSWER`], answers OPTIONS with
/// 200 and INVITE with 486, and otherwise reads and says nothing. Counts what it read, by
/// method, until `stop`.
fn switchable_peer(
    sock: UdpSocket,
    mode: Arc<std::sync::atomic::AtomicU8>,
    stop: Arc<AtomicBool>,
    seen: Arc<std::sync::Mutex<HashMap<String, usize>>>,
) -> std::thread::JoinHandle<()> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(150);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let method = text.split(' ').next().unwrap_or("").to_string();
            *seen.lock().unwrap().entry(method.clone()).or_default() += 1;
            let status = match method.as_str() {
                "OPTIONS" => "200 OK",
                "INVITE" => "486 Busy Here",
                _ => continue,
            };
            if mode.load(Ordering::Relaxed) != ANSWER {
                continue;
            }
            let mut resp = format!("SIP/2.0 {status}\r\n");
            for line in text.lines() {
                let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
                match name.as_str() {
                    "via" | "from" | "call-id" | "cseq" => resp.push_str(&format!("{line}\r\n")),
                    "to" => resp.push_str(&format!("{line};tag=peer\r\n")),
                    _ => {}
                }
            }
            resp.push_str("Content-Length: 0\r\n\r\n");
            let _ = sock.send_to(resp.as_bytes(), from);
        }
    })
}

/// carrier-a (the route's only peer) is pinged (`[sip] ping_s = 5`) through the real
/// edge: while it answers, it is up; gone silent, it is down within a ping and a call gets
/// `503` at once, no INVITE sent to it (before: each call waited out Timer B, 32 s, and
/// got 408); answering again, it is up and takes the next call.
#[test]
fn a_pinged_trunk_that_goes_silent_is_passed_over_until_it_answers_again() {
    let ports = Ports::new();
    let sock = UdpSocket::bind((CARRIER_A_IP, ports.carrier_a)).unwrap();
    let mode = Arc::new(std::sync::atomic::AtomicU8::new(ANSWER));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let peer = switchable_peer(sock, mode.clone(), stop.clone(), seen.clone());
    let gw = Gateway::start(
        ports,
        GwOpts {
            single_carrier: true,
            ..GwOpts::carrier_a("[sip]\nping_s = 5\n")
        },
    );
    let wait_for = |want: f64| carrier_a_up_becomes(&gw, want);
    let count = |method: &str| seen.lock().unwrap().get(method).copied().unwrap_or(0);
    // (Up before its first ping's outcome too: its answers are proved below, where one
    // brings it back.)
    wait_for(1.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while count("OPTIONS") == 0 {
        assert!(Instant::now() < deadline, "no ping; log:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    mode.store(SWALLOW, Ordering::Relaxed);
    wait_for(0.0);
    assert_eq!(
        invite_final_status(&gw, "pinged-down-1"),
        503,
        "{}",
        gw.log()
    );
    assert_eq!(count("INVITE"), 0, "no INVITE to a peer that is down");
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "peer_unreachable", "{c:#}");
    assert_eq!(c["cause"], 38, "{c:#}");
    assert_eq!(c["events"][0], "peer_down_carrier-a", "{c:#}");

    mode.store(ANSWER, Ordering::Relaxed);
    wait_for(1.0);
    assert_eq!(invite_final_status(&gw, "pinged-up-2"), 486, "{}", gw.log());
    // (Resent, on a loaded machine, if the 486 came late.)
    assert!(count("INVITE") >= 1);
    stop.store(true, Ordering::Relaxed);
    peer.join().unwrap();
}

/// carrier-a pinged every 5 s, SIPp playing it (`conformance/ping/carrier.xml`): it answers
/// two pings, each checked to be an OPTIONS for its domain outside any dialog, and stops;
/// silent, it is down within a ping, and the PBX's call gets 503 at once.
#[test]
fn a_sipp_carrier_answers_its_pings_then_silent_is_passed_over() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            single_carrier: true,
            ..GwOpts::carrier_a("[sip]\nping_s = 5\n")
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let carrier = Sipp::spawn_args(
        "ping/carrier.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
        None,
        None,
        &["-m", "2", "-timeout", "40s", "-timeout_error"],
    );
    carrier.expect_success_within(&gw, Duration::from_secs(45));
    carrier_a_up_becomes(&gw, 0.0);
    assert_eq!(
        invite_final_status(&gw, "sipp-pinged-1"),
        503,
        "{}",
        gw.log()
    );
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "peer_unreachable", "{c:#}");
    assert_eq!(c["events"][0], "peer_down_carrier-a", "{c:#}");
}

//! The edge against the real binary: strangers get nothing (or exactly one stateless 403),
//! and a peer over its `[limits] max_calls` gets 503 with Retry-After. Bounded: each test
//! waits a few seconds at most.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

fn invite(from_ip: &str, port: u16, call_id: &str) -> String {
    format!(
        "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from_ip}:{port};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1000@{from_ip}>;tag=edge\r\n\
         To: <sip:+8610123@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:1000@{from_ip}:{port}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Every response that reaches `sock` within `window`, as status lines.
fn responses(sock: &UdpSocket, window: Duration) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + window;
    let mut buf = [0u8; 65536];
    let mut got = Vec::new();
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            got.push(text);
        }
    }
    got
}

/// A normal call through the gateway (SIPp phone to SIPp carrier) completes.
fn a_normal_call_completes(gw: &Gateway) {
    let tmp = tempfile::tempdir().unwrap();
    call_succeeds(
        gw,
        tmp.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
}

fn status_lines(v: &[String]) -> Vec<String> {
    v.iter()
        .map(|t| t.lines().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_stranger_gets_no_answer_and_no_call() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let sock = UdpSocket::bind((STRANGER_IP, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.send_to(invite(STRANGER_IP, port, "stranger1").as_bytes(), gw.addr())
        .unwrap();
    let got = responses(&sock, Duration::from_secs(2));
    assert!(got.is_empty(), "a stranger must hear nothing: {got:?}");
    assert!(gw.cdrs().is_empty());
    // A burst of them changes nothing for a peer's call.
    for n in 0..500 {
        sock.send_to(
            invite(STRANGER_IP, port, &format!("stranger-burst{n}")).as_bytes(),
            gw.addr(),
        )
        .unwrap();
    }
    a_normal_call_completes(&gw);
    assert!(responses(&sock, Duration::from_millis(300)).is_empty());
    // Every one counted (as a stranger's, or as shed if the burst queued up: a debug
    // build is slow), none answered.
    let metrics = gw.metrics();
    let counted: f64 = ["unknown_source", "overload_drop"]
        .iter()
        .map(|r| refused(&metrics, r))
        .sum();
    assert_eq!(counted, 501.0, "{metrics}");
}

/// `trunkgate_refused_messages_total{reason}` from a metrics page (0 when absent).
fn refused(metrics: &str, reason: &str) -> f64 {
    let series = format!("trunkgate_refused_messages_total{{reason=\"{reason}\"}}");
    Gateway::metric_value(metrics, &series).unwrap_or(0.0)
}

#[test]
fn a_stranger_in_reject_mode_gets_exactly_one_403() {
    let opts = GwOpts {
        gateway_extra: "\n[protect]\nunknown_sources = \"reject\"\n".into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    let sock = UdpSocket::bind((STRANGER_IP, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.send_to(invite(STRANGER_IP, port, "stranger2").as_bytes(), gw.addr())
        .unwrap();
    // A stateful 403 would be resent at 0.5, 1.5 and 3.5 s; a stateless one never is.
    let got = status_lines(&responses(&sock, Duration::from_secs(4)));
    assert_eq!(got, vec!["SIP/2.0 403 Forbidden".to_string()]);
    assert!(gw.cdrs().is_empty());
}

/// An INVITE in a peer's name (its address is easy to forge over UDP) that the gateway
/// refuses at once (here an extension it does not take) draws its refusal once: it comes
/// before any provisional, so the sender is still retransmitting and each retransmission
/// would draw it again. Before, Timer G sent it again at 0.5, 1.5 and 3.5 s (eleven times
/// over 32 s) toward an address that never ACKs, as the real peer does not. Its
/// retransmission still gets it, once.
#[test]
fn an_invite_refused_at_once_is_answered_once_not_on_timer_g() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    let refused = invite(PHONE_IP, port, "norte1").replace(
        "Content-Length: 0",
        "Require: no-such-thing\r\nContent-Length: 0",
    );
    sock.send_to(refused.as_bytes(), gw.addr()).unwrap();
    let got = status_lines(&responses(&sock, Duration::from_secs(4)));
    assert_eq!(got, vec!["SIP/2.0 420 Bad Extension".to_string()]);
    sock.send_to(refused.as_bytes(), gw.addr()).unwrap();
    let again = status_lines(&responses(&sock, Duration::from_millis(800)));
    assert_eq!(again, vec!["SIP/2.0 420 Bad Extension".to_string()]);
}

#[test]
fn a_peer_over_max_calls_gets_503_with_retry_after_while_calls_under_it_complete() {
    // The whole gateway takes two calls at once. Raw INVITEs from carrier-b (routed to the
    // PBX, whose address answers nothing but out-of-call noise to SIPp) ring for ever; a SIPp
    // call from the phone to carrier-a completes in between.
    let opts = GwOpts {
        gateway_extra: "\n[limits]\nmax_calls = 2\n".into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    let sock = UdpSocket::bind((CARRIER_B_IP, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    let ring = |call_id: &str| {
        sock.send_to(invite(CARRIER_B_IP, port, call_id).as_bytes(), gw.addr())
            .unwrap();
        responses(&sock, Duration::from_millis(500))
    };
    // One call ringing: a second, complete call still fits.
    assert_eq!(
        status_lines(&ring("lim1")),
        vec!["SIP/2.0 100 Trying".to_string()]
    );
    a_normal_call_completes(&gw);
    // Two ringing: the third is over the limit.
    assert_eq!(
        status_lines(&ring("lim2")),
        vec!["SIP/2.0 100 Trying".to_string()]
    );
    let third = ring("lim3");
    let refusal = third
        .iter()
        .find(|t| t.contains("Call-ID: lim3"))
        .unwrap_or_else(|| panic!("no answer to the third call: {third:?}"));
    assert!(refusal.starts_with("SIP/2.0 503"), "{refusal}");
    assert!(refusal.contains("\r\nRetry-After: 10\r\n"), "{refusal}");
    let cdrs = gw.wait_cdrs(2);
    let limited: Vec<_> = cdrs
        .iter()
        .filter(|c| c["call_tag"] == "rate_limited")
        .collect();
    assert_eq!(limited.len(), 1, "{cdrs:?}");
    assert_eq!(limited[0]["cause"], 42);
    assert!(
        gw.metrics().contains(
            "trunkgate_limit_refusals_total{peer=\"carrier-b\",reason=\"gateway_max_calls\"} 1"
        ),
        "{}",
        gw.metrics()
    );
}

#[test]
fn tcp_connections_over_the_per_source_cap_are_closed_at_once() {
    use std::io::Read;
    let opts = GwOpts {
        gateway_extra: "\n[protect]\nmax_tcp_per_source = 2\n".into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    let open = || {
        let s = tcp_from(PHONE_IP, &gw);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let (mut a, mut b, mut c) = (open(), open(), open());
    let mut buf = [0u8; 16];
    // The third is closed by the gateway (end of stream); the first two stay open.
    assert_eq!(
        c.read(&mut buf).unwrap_or(usize::MAX),
        0,
        "third connection closed"
    );
    for s in [&mut a, &mut b] {
        // Open: a short read times out (the closed one above had all of 5 s to show it).
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let r = s.read(&mut buf);
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut),
            "still open: {r:?}"
        );
    }
    assert!(
        gw.metrics()
            .contains("trunkgate_refused_messages_total{reason=\"tcp_per_source\"} 1"),
        "{}",
        gw.metrics()
    );
}

#[test]
fn a_tcp_message_that_is_not_complete_in_time_closes_its_connection() {
    use std::io::{Read, Write};
    let opts = GwOpts {
        gateway_extra: "\n[protect]\ntcp_message_timeout_s = 1\n".into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    let mut s = tcp_from(PHONE_IP, &gw);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The start of a request, a byte at a time, never finished (slowloris).
    let started = Instant::now();
    for b in b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: " {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        if started.elapsed() > Duration::from_millis(700) {
            break;
        }
    }
    // The gateway serves a call meanwhile (the dribbling connection holds nothing up).
    a_normal_call_completes(&gw);
    let mut buf = [0u8; 16];
    // Closed by the gateway (end of stream) well before the 5 s read timeout would give up.
    assert_eq!(
        s.read(&mut buf).unwrap_or(usize::MAX),
        0,
        "closed by the gateway"
    );
}

#[test]
fn keep_alive_pings_keep_a_tcp_connection_open_and_are_answered() {
    use std::io::{Read, Write};
    let opts = GwOpts {
        gateway_extra: "\n[protect]\ntcp_message_timeout_s = 1\n".into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    let mut s = tcp_from(PHONE_IP, &gw);
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // RFC 5626 pings for well past the message timeout: each gets its CRLF pong.
    for _ in 0..5 {
        s.write_all(b"\r\n\r\n").unwrap();
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).expect("a pong, connection open");
        assert_eq!(&pong, b"\r\n");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The connection still carries requests.
    let port = s.local_addr().unwrap().port();
    s.write_all(options(PHONE_IP, port, 1).as_bytes()).unwrap();
    let mut got = [0u8; 64];
    let n = s.read(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.starts_with("SIP/2.0 200 OK"), "{text}");
}

/// A message over `max_message_bytes` on a peer's connection is answered 513 (RFC 3261
/// §21.5.14) from its header section, its body skipped unread, and the connection carries
/// the next request. Before, the connection was closed unanswered.
#[test]
fn a_tcp_message_over_the_size_limit_gets_513_and_the_connection_goes_on() {
    use std::io::{Read, Write};
    let opts = GwOpts {
        gateway_extra: "\n[protect]\nmax_message_bytes = 4096\n".into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    let mut s = tcp_from(PHONE_IP, &gw);
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = s.local_addr().unwrap().port();
    let body = "x".repeat(10_000);
    let big = options(PHONE_IP, port, 1).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    // The body in pieces, as a stream brings it.
    for chunk in big.as_bytes().chunks(1500) {
        s.write_all(chunk).unwrap();
    }
    s.write_all(options(PHONE_IP, port, 2).as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline
        && got.windows(12).filter(|w| w == b"\r\nCall-ID: ").count() < 2
    {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("SIP/2.0 513 Message Too Large\r\n"),
        "{text}"
    );
    assert!(text.contains("Call-ID: opt1@"), "{text}");
    let second = text
        .find("SIP/2.0 200 OK\r\n")
        .expect("the next request answered");
    assert!(text[second..].contains("Call-ID: opt2@"), "{text}");
}

#[test]
fn a_stranger_that_opens_tcp_and_says_nothing_is_not_kept() {
    use std::io::{Read, Write};
    // Dropped strangers with a 30 s message timeout: a close within our 5 s read is "at
    // once", not the timeout, with no tight clock bound. Rejected ones with 1 s, and pings
    // for longer than that.
    for (mode, timeout_s) in [("drop", 30), ("reject", 1)] {
        let opts = GwOpts {
            gateway_extra: format!(
                "\n[protect]\nunknown_sources = \"{mode}\"\ntcp_message_timeout_s = {timeout_s}\n"
            ),
            ..GwOpts::default()
        };
        let gw = Gateway::start(Ports::new(), opts);
        let mut s = tcp_from("127.0.0.1", &gw);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Keep-alive pings do not buy a stranger time (and get no pong): pinged every
        // 300 ms for 3 s, it is closed by then, not 1 s after the last ping.
        if mode == "reject" {
            for _ in 0..10 {
                let _ = s.write_all(b"\r\n\r\n");
                std::thread::sleep(Duration::from_millis(300));
            }
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        let mut buf = [0u8; 16];
        // Closed by the gateway: at once when strangers are dropped (the 30 s message
        // timeout is not what closes it: a read waiting past 5 s fails here), within the
        // message timeout when they may have their 403 (the idle timeout is five minutes).
        let r = s.read(&mut buf);
        assert!(
            matches!(r, Ok(0))
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{mode}: {r:?}"
        );
    }
}

fn options(from_ip: &str, port: u16, n: u32) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from_ip}:{port};branch=z9hG4bKopt{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:ping@{from_ip}>;tag=o{n}\r\n\
         To: <sip:127.0.0.1>\r\n\
         Call-ID: opt{n}@{from_ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_source_over_its_packet_rate_is_ignored_for_the_cooldown_while_others_are_served() {
    let opts = GwOpts {
        gateway_extra:
            "\n[protect]\nsource_rate = 20\nsource_cooldown_s = 3\nunknown_sources = \"reject\"\n"
                .into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    // A stranger (its requests get one stateless 403 each, so what is served shows).
    let stranger = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
    let port = stranger.local_addr().unwrap().port();
    // 50 at once: a second's worth (20) is served, the rest is dropped unanswered.
    for n in 0..50 {
        stranger
            .send_to(options("127.0.0.1", port, n).as_bytes(), gw.addr())
            .unwrap();
    }
    let answered = responses(&stranger, Duration::from_millis(700)).len();
    assert!((17..=22).contains(&answered), "answered {answered} of 50");
    // Still cooling down: even one more message is ignored.
    stranger
        .send_to(options("127.0.0.1", port, 99).as_bytes(), gw.addr())
        .unwrap();
    assert!(responses(&stranger, Duration::from_millis(500)).is_empty());
    // A peer over the rate loses the excess only (its address is easy to spoof: a burst in
    // its name must not silence it for the cool-down).
    let phone = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let pport = phone.local_addr().unwrap().port();
    for n in 0..50 {
        phone
            .send_to(options(PHONE_IP, pport, n).as_bytes(), gw.addr())
            .unwrap();
    }
    let answered = responses(&phone, Duration::from_millis(700)).len();
    assert!(
        (17..=40).contains(&answered),
        "phone: answered {answered} of 50"
    );
    phone
        .send_to(options(PHONE_IP, pport, 99).as_bytes(), gw.addr())
        .unwrap();
    let got = status_lines(&responses(&phone, Duration::from_millis(500)));
    assert_eq!(got, vec!["SIP/2.0 200 OK".to_string()]);
    // Another source is served meanwhile.
    let carrier = UdpSocket::bind((CARRIER_A_IP, 0)).unwrap();
    let cport = carrier.local_addr().unwrap().port();
    carrier
        .send_to(options(CARRIER_A_IP, cport, 1).as_bytes(), gw.addr())
        .unwrap();
    let got = status_lines(&responses(&carrier, Duration::from_millis(500)));
    assert_eq!(got, vec!["SIP/2.0 200 OK".to_string()]);
    let metrics = gw.metrics();
    assert!(refused(&metrics, "source_rate") >= 28.0, "{metrics}");
    // After the cool-down the stranger is heard again.
    std::thread::sleep(Duration::from_secs(1));
    stranger
        .send_to(options("127.0.0.1", port, 100).as_bytes(), gw.addr())
        .unwrap();
    let got = status_lines(&responses(&stranger, Duration::from_millis(500)));
    assert_eq!(got, vec!["SIP/2.0 403 Forbidden".to_string()]);
    drop(phone);
    a_normal_call_completes(&gw);
}

#[test]
fn a_strangers_tcp_request_gets_its_one_403_then_the_connection_closes() {
    use std::io::{Read, Write};
    let opts = GwOpts {
        gateway_extra: "\n[protect]\nunknown_sources = \"reject\"\n".into(),
        ..GwOpts::default()
    };
    let gw = Gateway::start(Ports::new(), opts);
    // A stranger's address: the connection's source is what counts.
    let mut s = tcp_from("127.0.0.1", &gw);
    let port = s.local_addr().unwrap().port();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Two requests at once: only the first is looked at.
    let two = options("127.0.0.1", port, 1) + &options("127.0.0.1", port, 2);
    s.write_all(two.as_bytes()).unwrap();
    let mut got = Vec::new();
    // Read to the end of the stream: the gateway closes it (a timeout would fail here).
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        text.lines().next().unwrap_or(""),
        "SIP/2.0 403 Forbidden",
        "{text}"
    );
    assert_eq!(text.matches("SIP/2.0 ").count(), 1, "{text}");
}

#[test]
fn a_hard_open_file_limit_too_low_for_the_configuration_is_refused_at_start() {
    // The shipped configuration (its media range, TCP and /metrics budget kept), in a folder
    // of its own on free ports: a gateway that wrongly starts writes nothing into the tree
    // and meets no other test's ports.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let text = std::fs::read_to_string(shipped.join("gateway.toml"))
        .unwrap()
        .replace("127.0.0.1:5060", &format!("127.0.0.1:{}", ports.gw))
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{}", ports.metrics))
        .replace("port      = 5080", "port      = 0");
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    for entry in std::fs::read_dir(shipped.join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(
                &path,
                dir.path().join("profiles").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    // It can need some 2,350 descriptors; allow 500 and no more.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 500 && ulimit -Hn 500 && exec \"$0\" run --config \"$1\"",
            env!("CARGO_BIN_EXE_trunkgate"),
        ])
        .arg(dir.path().join("gateway.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a gateway that starts after all is killed, and the test fails.
    let status = exit_within(&mut child, Duration::from_secs(15));
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let status =
        status.unwrap_or_else(|| panic!("the gateway started with 500 descriptors:\n{err}"));
    assert!(!status.success());
    // 2342 for ports, recordings, connections and the base, plus two a relay thread (one
    // per core) and the listeners: the exact count is this machine's.
    let need: u64 = err
        .split("can need ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of descriptors said:\n{err}"));
    assert!((2345..2342 + 2 * 64 + 8).contains(&need), "{need}\n{err}");
    assert!(err.contains("hard limit is 500"), "{err}");
}

/// A response from a source no profile knows, to whom the gateway sent no request, is
/// dropped from its first bytes and counted; before, each was parsed and queued (one per
/// spoofed address, bounded only by the stranger's packet rate).
#[test]
fn a_response_from_an_address_never_asked_is_dropped_unread() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let sock = UdpSocket::bind((STRANGER_IP, 0)).unwrap();
    let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKnever\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: never-asked\r\nCSeq: 1 INVITE\r\nContact: <sip:b@127.0.0.9>\r\nContent-Length: 0\r\n\r\n";
    for _ in 0..20 {
        sock.send_to(ok.as_bytes(), gw.addr()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let m = gw.metrics();
        if refused(&m, "unasked_response") == 20.0 {
            break;
        }
        assert!(Instant::now() < deadline, "not counted: {m}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(responses(&sock, Duration::from_millis(300)).is_empty());
    a_normal_call_completes(&gw);
}

/// Against the real binary: a peer's long OPTIONS gets its 200; a short copy of it (its top
/// Via, CSeq and method: what anyone who saw the branch can send in the peer's name) draws
/// no more than its own answer, built from it (OPTIONS outside a dialog are answered
/// without a transaction); the long request again gets the 200 again. Before, the short
/// copy drew the whole 200 (here about 8 times its size; 400 times with the longest
/// headers).
#[test]
fn a_short_copy_of_a_long_request_draws_no_long_answer() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let phone = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let port = phone.local_addr().unwrap().port();
    let short = options(PHONE_IP, port, 7);
    // As many as a request may carry (70 with its own), each long.
    let vias: String = (0..69)
        .map(|i| {
            let pad = "p".repeat(40);
            format!("Via: SIP/2.0/UDP 198.51.100.{i}:5060;branch=z9hG4bKpad{i};x={pad}\r\n")
        })
        .collect();
    let long = short.replacen("Max-Forwards", &format!("{vias}Max-Forwards"), 1);
    phone.send_to(long.as_bytes(), gw.addr()).unwrap();
    let first = responses(&phone, Duration::from_millis(500));
    assert_eq!(status_lines(&first), vec!["SIP/2.0 200 OK".to_string()]);
    assert!(first[0].len() > 4 * short.len(), "{}", first[0].len());
    phone.send_to(short.as_bytes(), gw.addr()).unwrap();
    let drawn = responses(&phone, Duration::from_millis(500));
    let sizes: Vec<usize> = drawn.iter().map(String::len).collect();
    assert!(
        sizes.len() <= 1
            && sizes
                .iter()
                .all(|n| *n < 2 * short.len() && *n < first[0].len() / 2),
        "the short copy ({} bytes) drew {sizes:?} bytes",
        short.len()
    );
    phone.send_to(long.as_bytes(), gw.addr()).unwrap();
    let again = status_lines(&responses(&phone, Duration::from_millis(500)));
    assert_eq!(again, vec!["SIP/2.0 200 OK".to_string()]);
}

/// Listening on `0.0.0.0`, the gateway answers from the address each peer sent to, and
/// starts its own requests from `[sip] advertise` (here 127.0.0.8, as a floating address
/// would be): before, everything left from the address the kernel picked (127.0.0.1).
#[test]
fn on_a_wildcard_listener_answers_leave_from_where_requests_came_and_ours_from_advertise() {
    let opts = GwOpts {
        listen_ip: "0.0.0.0",
        advertise: "127.0.0.8",
        single_carrier: true,
        ..GwOpts::default()
    };
    let ports = Ports::new();
    let gw = Gateway::start(ports, opts);
    let carrier = UdpSocket::bind((CARRIER_A_IP, ports.carrier_a)).unwrap();
    carrier
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let phone = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let port = phone.local_addr().unwrap().port();
    let sent_to: std::net::SocketAddr = format!("127.0.0.9:{}", ports.gw).parse().unwrap();
    phone
        .send_to(invite(PHONE_IP, port, "wild1").as_bytes(), sent_to)
        .unwrap();
    let mut buf = [0u8; 65536];
    let (n, from) = carrier
        .recv_from(&mut buf)
        .expect("the INVITE reaches carrier-a");
    let invite_out = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(invite_out.starts_with("INVITE "), "{invite_out}");
    assert_eq!(
        from.to_string(),
        format!("127.0.0.8:{}", ports.gw),
        "ours: from advertise"
    );
    phone
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let (n, from) = phone.recv_from(&mut buf).expect("the 100 Trying");
    assert!(buf[..n].starts_with(b"SIP/2.0 100 "));
    assert_eq!(from, sent_to, "an answer: from where the INVITE went");
    // The carrier's refusal: the phone gets it from there too, the carrier its ACK from
    // advertise.
    let head = |name: &str| {
        invite_out
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .unwrap_or_default()
            .to_string()
    };
    let busy = format!(
        "SIP/2.0 486 Busy Here\r\n{}\r\n{}\r\n{};tag=c1\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        head("via"),
        head("from"),
        head("to"),
        head("call-id"),
        head("cseq")
    );
    carrier
        .send_to(busy.as_bytes(), from_addr(&invite_out, ports.gw))
        .unwrap();
    let (n, from) = carrier.recv_from(&mut buf).expect("the ACK");
    assert!(buf[..n].starts_with(b"ACK "));
    assert_eq!(from.to_string(), format!("127.0.0.8:{}", ports.gw));
    let (n, from) = phone.recv_from(&mut buf).expect("the 486");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 486 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(from, sent_to);
    assert_eq!(gw.wait_cdrs(1).len(), 1);
}

/// Where the gateway's Via says its responses go.
fn from_addr(request: &str, port: u16) -> std::net::SocketAddr {
    assert!(
        request.contains(&format!("Via: SIP/2.0/UDP 127.0.0.8:{port}")),
        "{request}"
    );
    format!("127.0.0.8:{port}").parse().unwrap()
}

//! `/metrics` of the real binary during and after calls: the values, and (where `promtool`
//! is installed; `scripts/dev test` installs it and sets TRUNKGATE_REQUIRE_PROMTOOL=1) Prometheus' own
//! checker on the page.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

fn body(http: &str) -> &str {
    http.split_once("\r\n\r\n").map_or(http, |(_, b)| b)
}

#[test]
fn metrics_follow_a_ringing_call_and_an_answered_one() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    // During: a call from carrier-b that rings at the PBX's address (where only SIPp's
    // phone will listen later, which ignores it), so carrier-a stays free for the second.
    let carrier_b = UdpSocket::bind((CARRIER_B_IP, 0)).unwrap();
    let port = carrier_b.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER_B_IP}:{port};branch=z9hG4bKm1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+8610999@{CARRIER_B_IP}>;tag=m\r\nTo: <sip:1000@127.0.0.1>\r\n\
         Call-ID: metrics-ring\r\nCSeq: 1 INVITE\r\nContact: <sip:+8610999@{CARRIER_B_IP}:{port}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    carrier_b.send_to(invite.as_bytes(), gw.addr()).unwrap();
    // The levels are sampled once a second: wait (bounded) for the sample that has the call.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let during = loop {
        let page = gw.metrics();
        if Gateway::metric_value(body(&page), "trunkgate_active_calls") == Some(1.0)
            || std::time::Instant::now() > deadline
        {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let page = body(&during);
    assert_eq!(
        Gateway::metric_value(page, "trunkgate_active_calls"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        Gateway::metric_value(page, "trunkgate_peer_active_calls{peer=\"carrier-b\"}"),
        Some(1.0),
        "{page}"
    );
    assert!(
        Gateway::metric_value(page, "trunkgate_transactions{kind=\"server\"}").unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        Gateway::metric_value(
            page,
            "trunkgate_calls_offered_total{peer=\"carrier-b\",direction=\"inbound\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        Gateway::metric_value(
            page,
            "trunkgate_sip_messages_total{direction=\"in\",method=\"INVITE\",class=\"request\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert!(
        Gateway::metric_value(
            page,
            "trunkgate_sip_messages_total{direction=\"out\",method=\"response\",class=\"1xx\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the 100 Trying: {page}"
    );

    // After: an answered call from SIPp to SIPp.
    let tmp = tempfile::tempdir().unwrap();
    let (c, p) = phone_calls_carrier(
        &gw,
        tmp.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        "+8610123",
        Transport::Udp,
    );
    p.expect_success(&gw);
    c.expect_success(&gw);
    gw.wait_cdrs(1);
    let after = gw.metrics();
    let page = body(&after);
    assert_eq!(
        Gateway::metric_value(
            page,
            "trunkgate_calls_answered_total{peer=\"carrier-a\",direction=\"outbound\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        Gateway::metric_value(
            page,
            "trunkgate_setup_seconds_count{peer=\"carrier-a\",stage=\"answer\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        Gateway::metric_value(
            page,
            "trunkgate_call_causes_total{peer=\"pbx\",cause=\"16\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        Gateway::metric_value(
            page,
            &format!(
                "trunkgate_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    promtool_accepts(page);
}

/// `promtool check metrics` on the page. Skipped (with a note) where promtool is not
/// installed, unless TRUNKGATE_REQUIRE_PROMTOOL is set (`scripts/dev test`, so CI).
fn promtool_accepts(page: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("TRUNKGATE_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here but cannot run: {e}"
            );
            eprintln!("promtool not installed: the page was not checked by it");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/metrics` answers only the addresses `[metrics] allow` names (loopback's 127.0.0.1 by
/// default), and a connection that never sends its request is closed, so it cannot hold one
/// of the few connections the endpoint serves at once.
#[test]
fn metrics_answer_only_allowed_scrapers_and_close_silent_connections() {
    use std::io::{Read, Write};
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let at: std::net::SocketAddr = format!("127.0.0.1:{}", gw.ports.metrics).parse().unwrap();
    let read_all = |s: &mut std::net::TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    };

    let mut stranger = tcp_between("127.0.0.9", at);
    let _ = stranger.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    // Closed at once, well before a silent connection's 5 s would close it: a read that
    // times out (the connection held open) fails here.
    stranger
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let mut got = Vec::new();
    let read = stranger.read_to_end(&mut got);
    assert!(
        !read.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "the stranger's connection was held open: {read:?}"
    );
    assert_eq!(got, b"", "a stranger gets nothing");

    let mut silent = tcp_between("127.0.0.1", at);
    let t0 = std::time::Instant::now();
    assert_eq!(read_all(&mut silent), b"");
    assert!(
        t0.elapsed() < Duration::from_secs(12),
        "a silent connection is closed by the gateway, not by our 15 s read timeout"
    );

    // The scraper is served.
    assert!(body(&gw.metrics()).contains("trunkgate_build_info"));
}

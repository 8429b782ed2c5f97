use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::*;

#[test]
fn what_a_request_head_asks_for() {
    let cases: &[(&[u8], Reply)] = &[
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            Reply::Metrics { head_only: false },
        ),
        (
            b"GET / HTTP/1.0\r\n\r\n",
            Reply::Metrics { head_only: false },
        ),
        (
            b"HEAD /metrics?x=1 HTTP/1.1\r\n\r\n",
            Reply::Metrics { head_only: true },
        ),
        (
            b"GET /health HTTP/1.1\n\n",
            Reply::Health { head_only: false },
        ),
        (
            b"GET http://127.0.0.1:9464/metrics HTTP/1.1\r\n\r\n",
            Reply::Metrics { head_only: false },
        ),
        (
            b"GET HTTP://gw/health HTTP/1.1\r\n\r\n",
            Reply::Health { head_only: false },
        ),
        (
            b"GET http://gw HTTP/1.1\r\n\r\n",
            Reply::Metrics { head_only: false },
        ),
        (b"GET ftp://gw/metrics HTTP/1.1\r\n\r\n", Reply::BadRequest),
        (b"POST /metrics HTTP/1.1\r\n\r\n", Reply::MethodNotAllowed),
        (b"GET /metrics\r\n\r\n", Reply::BadRequest),
        (b"GET /metrics HTTP/1.1 x\r\n\r\n", Reply::BadRequest),
        (b"GET metrics HTTP/1.1\r\n\r\n", Reply::BadRequest),
        (b"GET /metrics SIP/2.0\r\n\r\n", Reply::BadRequest),
        (b"\xff\xfe\r\n\r\n", Reply::BadRequest),
        (b"\r\n\r\n", Reply::BadRequest),
    ];
    for (head, want) in cases {
        assert_eq!(reply_to(head), *want, "{:?}", String::from_utf8_lossy(head));
    }
}

#[test]
fn a_head_ends_at_its_blank_line() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
}

/// A server on a free loopback port allowing 127.0.0.0/8 but 127.0.0.2, serving at most
/// `max` connections at once, ready for new calls.
async fn server(max: usize) -> SocketAddr {
    server_ready(max, Arc::new(|| Ok(()))).await
}

async fn server_ready(max: usize, ready: Ready) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = PrometheusBuilder::new().build_recorder().handle();
    let allow: Allow =
        Arc::new(|ip: IpAddr| ip.is_loopback() && ip != IpAddr::from([127, 0, 0, 2]));
    tokio::spawn(serve(listener, handle, allow, ready, max));
    addr
}

/// `/health` is a readiness probe: 503 and why while the gateway refuses new calls
/// (draining, CDRs unwritable), so a load balancer sends them elsewhere; `/metrics` is
/// served all the same. Before, it answered 200 throughout.
#[tokio::test]
async fn health_says_503_while_new_calls_are_refused() {
    let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = refusing.clone();
    let ready: Ready = Arc::new(move || {
        if flag.load(std::sync::atomic::Ordering::Acquire) {
            Err("draining: new calls are refused")
        } else {
            Ok(())
        }
    });
    let addr = server_ready(2, ready).await;
    let get = |path: &'static str| async move {
        let mut c = connect([127, 0, 0, 1], addr).await;
        c.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        String::from_utf8(read_all(&mut c).await).unwrap()
    };
    assert!(get("/health").await.starts_with("HTTP/1.1 200 OK\r\n"));
    refusing.store(true, std::sync::atomic::Ordering::Release);
    let out = get("/health").await;
    assert!(
        out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\r\n\r\ndraining: new calls are refused"),
        "{out}"
    );
    assert!(get("/metrics").await.starts_with("HTTP/1.1 200 OK\r\n"));
}

/// Connect from `from` (any 127/8 address works on Linux loopback).
async fn connect(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// Everything the server sends before it closes, or what came within 30 s.
async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    out
}

/// Everything the server sends before it closes, which it must do well before a silent
/// connection's `HEAD_TIMEOUT` would close it (a connection merely held open, or left in
/// the listen backlog, fails here instead of passing as closed).
async fn read_until_closed_at_once(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let within = HEAD_TIMEOUT / 2;
    let read = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "not closed within {within:?}: {out:?}");
    out
}

#[tokio::test]
async fn an_allowed_scraper_gets_the_page_and_the_connection_closes() {
    let addr = server(2).await;
    let mut c = connect([127, 0, 0, 1], addr).await;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let out = String::from_utf8(read_all(&mut c).await).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.contains("Content-Type: text/plain; version=0.0.4"),
        "{out}"
    );
    assert!(out.contains("Connection: close\r\n"), "{out}");
    // (Closed, so that its slot of the source's share comes back at once.)
    drop(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = connect([127, 0, 0, 1], addr).await;
    c.write_all(b"GET /health HTTP/1.1\r\n\r\n").await.unwrap();
    let out = String::from_utf8(read_all(&mut c).await).unwrap();
    assert!(
        out.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\nOK"),
        "{out}"
    );
}

#[tokio::test]
async fn another_method_gets_405_naming_the_allowed_ones() {
    let addr = server(1).await;
    let mut c = connect([127, 0, 0, 1], addr).await;
    c.write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let out = String::from_utf8(read_all(&mut c).await).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nAllow: GET, HEAD\r\n"), "{out}");
}

#[tokio::test]
async fn a_source_not_allowed_is_closed_without_a_byte() {
    let addr = server(2).await;
    let mut c = connect([127, 0, 0, 2], addr).await;
    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(read_until_closed_at_once(&mut c).await, b"");
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_slots_come_back() {
    let addr = server(2).await;
    // Two silent clients hold both slots.
    let mut quiet = vec![
        connect([127, 0, 0, 1], addr).await,
        connect([127, 0, 0, 3], addr).await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect([127, 0, 0, 4], addr).await;
    let _ = third.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(
        read_until_closed_at_once(&mut third).await,
        b"",
        "the third is closed"
    );
    // One leaves; its slot serves the next scrape.
    drop(quiet.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = connect([127, 0, 0, 3], addr).await;
    next.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let out = read_all(&mut next).await;
    assert!(out.starts_with(b"HTTP/1.1 200 OK"), "{out:?}");
}

/// One allowed source that opens connections and sends nothing holds half the slots at
/// most: another source (a container's health check) is still served. Before, it held
/// them all and the health check failed until the gateway was restarted.
#[tokio::test]
async fn one_source_holds_at_most_half_the_slots() {
    let addr = server(4).await;
    let mut quiet = Vec::new();
    for _ in 0..2 {
        quiet.push(connect([127, 0, 0, 1], addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Its third is closed at once, though two slots are free...
    let mut more = connect([127, 0, 0, 1], addr).await;
    let _ = more.write_all(b"GET /health HTTP/1.1\r\n\r\n").await;
    assert_eq!(read_until_closed_at_once(&mut more).await, b"");
    // ...and they serve another source.
    let mut probe = connect([127, 0, 0, 9], addr).await;
    probe
        .write_all(b"GET /health HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let out = read_all(&mut probe).await;
    assert!(out.starts_with(b"HTTP/1.1 200 OK"), "{out:?}");
    // Its share comes back as its connections end.
    drop(quiet.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = connect([127, 0, 0, 1], addr).await;
    again
        .write_all(b"GET /health HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let out = read_all(&mut again).await;
    assert!(out.starts_with(b"HTTP/1.1 200 OK"), "{out:?}");
}

#[test]
fn ipv6_sources_count_by_their_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(
        crate::config::net::source_key(a),
        crate::config::net::source_key(b)
    );
    assert_ne!(
        crate::config::net::source_key(a),
        crate::config::net::source_key(c)
    );
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(
        crate::config::net::source_key(mapped),
        IpAddr::from([192, 0, 2, 7])
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_after_the_head_timeout() {
    let addr = server(1).await;
    let mut c = connect([127, 0, 0, 1], addr).await;
    let t0 = tokio::time::Instant::now();
    assert_eq!(read_all(&mut c).await, b"");
    let held = t0.elapsed();
    assert!(
        held >= HEAD_TIMEOUT && held < HEAD_TIMEOUT + Duration::from_secs(1),
        "{held:?}"
    );
}

#[tokio::test]
async fn a_head_past_the_size_limit_gets_400() {
    let addr = server(1).await;
    let mut c = connect([127, 0, 0, 1], addr).await;
    let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
    // Twice what is read: the rest is still arriving when the 400 goes, and closing on it
    // unread would reset the connection and could lose the 400.
    head.extend(std::iter::repeat_n(b'a', 2 * MAX_HEAD));
    let _ = c.write_all(&head).await;
    let out = read_all(&mut c).await;
    assert!(out.starts_with(b"HTTP/1.1 400 Bad Request"), "{out:?}");
}

/// A panic deciding on a scraper (here an allow-list that panics for 127.0.0.9) closes that
/// connection and the next scraper is served. Before, it ended the accept loop: `/metrics`
/// and `/health` went unanswered until a restart, and an orchestrator restarted a working
/// gateway.
#[tokio::test]
async fn a_panic_deciding_on_a_scraper_leaves_the_loop_serving() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = PrometheusBuilder::new().build_recorder().handle();
    let allow: Allow = Arc::new(|ip: IpAddr| {
        assert_ne!(ip, IpAddr::from([127, 0, 0, 9]), "a test fault");
        ip.is_loopback()
    });
    tokio::spawn(serve(listener, handle, allow, Arc::new(|| Ok(())), 2));
    let mut faulty = connect([127, 0, 0, 9], addr).await;
    assert!(read_until_closed_at_once(&mut faulty).await.is_empty());
    let mut c = connect([127, 0, 0, 1], addr).await;
    c.write_all(b"GET /health HTTP/1.1\r\n\r\n").await.unwrap();
    let out = String::from_utf8(read_all(&mut c).await).unwrap();
    assert!(out.ends_with("\r\n\r\nOK"), "{out}");
}

use std::time::{Duration, Instant};

use super::*;
use crate::callback::protocol::{ParseError, parse};

/// The next datagram the reader hands on (within 5 s).
async fn next(rx: &mut mpsc::Receiver<Datagram>) -> Datagram {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a datagram within 5 s")
        .expect("the reader is running")
}

fn loopback() -> CallbackConfig {
    CallbackConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..CallbackConfig::default()
    }
}

#[tokio::test]
async fn port_zero_opens_no_socket() {
    let off = CallbackConfig {
        listen: None,
        ..loopback()
    };
    assert!(CallbackSocket::start(&off).unwrap().is_none());
}

#[tokio::test]
async fn datagrams_are_forwarded_with_their_source_and_answers_go_back() {
    let (sock, mut rx) = CallbackSocket::start(&loopback()).unwrap().unwrap();
    let server = sock.local_addr().unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(b"STATUS: id=a\n", server).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.src, client.local_addr().unwrap());
    assert_eq!(&got.bytes[..], b"STATUS: id=a\n");
    sock.send(got.src, b"ACK: id=a;result=error;reason=unknown_id\n");
    let mut buf = [0u8; 600];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, server);
    assert_eq!(&buf[..n], b"ACK: id=a;result=error;reason=unknown_id\n");
}

#[tokio::test]
async fn an_over_long_datagram_arrives_cut_but_still_too_long() {
    let (sock, mut rx) = CallbackSocket::start(&loopback()).unwrap().unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let big = vec![b'x'; 4000];
    client
        .send_to(&big, sock.local_addr().unwrap())
        .await
        .unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.bytes.len(), READ_MAX);
    assert_eq!(parse(&got.bytes).unwrap_err().error, ParseError::TooLong);
}

#[tokio::test]
async fn a_full_inbox_drops_at_the_socket() {
    let (sock, mut rx) = CallbackSocket::start_with_inbox(&loopback(), 4)
        .unwrap()
        .unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..9 {
        client
            .send_to(
                format!("STATUS: id={i}").as_bytes(),
                sock.local_addr().unwrap(),
            )
            .await
            .unwrap();
    }
    // Wait (bounded) until the reader has seen all nine.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut dropped = 0;
    while dropped < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        dropped += sock.take_dropped();
    }
    assert_eq!(dropped, 5);
    for i in 0..4 {
        let d = rx.try_recv().unwrap();
        assert_eq!(d.bytes, Bytes::from(format!("STATUS: id={i}")));
    }
    assert!(rx.try_recv().is_err());
}

/// With keys, an unsigned or forged datagram is dropped by the reader: it never reaches
/// the core's thread. A signed one goes on.
#[tokio::test]
async fn the_reader_drops_what_is_not_signed_when_keys_are_set() {
    use crate::callback::signature::{Keys, Signer, sign};
    let keys = Keys::parse("0123456789abcdef-reader-test\n").unwrap();
    let cfg = CallbackConfig {
        keys: Some(keys.clone()),
        ..loopback()
    };
    let (sock, mut rx) = CallbackSocket::start(&cfg).unwrap().unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = sock.local_addr().unwrap();
    client.send_to(b"STATUS: id=a\n", server).await.unwrap();
    let forged =
        b"STATUS: id=b;ts=1;sig=00000000000000000000000000000000000000000000000000000000000000\n";
    client.send_to(forged, server).await.unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = sign(b"STATUS: id=c\n", Signer::As, &keys, now_s);
    client.send_to(&signed, server).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(&got.bytes[..], &signed[..], "only the signed one");
    assert!(rx.try_recv().is_err());
}

/// A signed datagram captured and sent in a loop is read once (its next copy is due only
/// after half a second), so it does not fill the inbox ahead of the AS's next datagram.
#[tokio::test]
async fn a_signed_capture_sent_in_a_loop_does_not_fill_the_inbox() {
    use crate::callback::signature::{Keys, Signer, sign};
    let keys = Keys::parse("0123456789abcdef-reader-test\n").unwrap();
    let cfg = CallbackConfig {
        keys: Some(keys.clone()),
        ..loopback()
    };
    let (sock, mut rx) = CallbackSocket::start_with_inbox(&cfg, 4).unwrap().unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = sock.local_addr().unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let captured = sign(b"STATUS: id=c\n", Signer::As, &keys, now_s);
    for _ in 0..20 {
        client.send_to(&captured, server).await.unwrap();
    }
    let fresh = sign(b"STATUS: id=d\n", Signer::As, &keys, now_s);
    client.send_to(&fresh, server).await.unwrap();
    assert_eq!(&next(&mut rx).await.bytes[..], &captured[..]);
    assert_eq!(
        &next(&mut rx).await.bytes[..],
        &fresh[..],
        "the next one got in"
    );
    assert_eq!(
        sock.take_dropped(),
        0,
        "nothing was dropped for a full inbox"
    );
}

#[tokio::test]
async fn binding_a_taken_port_fails() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = CallbackConfig {
        listen: Some(taken.local_addr().unwrap()),
        ..CallbackConfig::default()
    };
    assert!(CallbackSocket::start(&cfg).is_err());
}

#[tokio::test]
async fn strangers_are_filtered_before_the_inbox_until_a_reload_allows_them() {
    let (sock, mut rx) = CallbackSocket::start_with_inbox(&loopback(), 1)
        .unwrap()
        .unwrap();
    let server = sock.local_addr().unwrap();
    let stranger = tokio::net::UdpSocket::bind("127.0.0.9:0").await.unwrap();
    let friend = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A stranger's flood does not take the one inbox slot from the allowed source.
    for _ in 0..20 {
        stranger.send_to(b"STATUS: id=x", server).await.unwrap();
    }
    friend.send_to(b"STATUS: id=a", server).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.src, friend.local_addr().unwrap());
    assert_eq!(sock.take_dropped(), 0);
    sock.set_allow(&CallbackConfig {
        allow: vec!["127.0.0.9/32".parse().unwrap()],
        ..loopback()
    });
    stranger.send_to(b"STATUS: id=y", server).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.src, stranger.local_addr().unwrap());
    assert_eq!(&got.bytes[..], b"STATUS: id=y");
}

/// On `[::]` an allowed IPv4 server is still heard: its datagram came to a mapped
/// destination, which the socket reads (an IPv6 packet posing as it would not have).
#[tokio::test]
async fn an_ipv4_server_is_heard_on_the_ipv6_wildcard() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return crate::engine::bind::no_ipv6_here("the IPv6 loopback");
    }
    let cfg = CallbackConfig {
        listen: Some("[::]:0".parse().unwrap()),
        ..CallbackConfig::default()
    };
    let (sock, mut rx) = CallbackSocket::start(&cfg).unwrap().unwrap();
    let port = sock.local_addr().unwrap().port();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(b"STATUS: id=a\n", ("127.0.0.1", port))
        .await
        .unwrap();
    let got = next(&mut rx).await;
    assert_eq!(
        got.src.ip().to_canonical(),
        client.local_addr().unwrap().ip()
    );
}

/// A panic in the service (a defect) costs the datagram or timer that set it off: the
/// service answers the next datagram, and a timer that panicked rests a second instead of
/// being due again at once (the core task would spin on it, its queues unserved).
#[tokio::test]
async fn a_panic_in_the_service_costs_what_set_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    cfg.callback = CallbackConfig {
        from_peer: Some(crate::config::PeerName("pbx".into())),
        ..loopback()
    };
    let now = Instant::now();
    let (mut cb, mut rx) = Callback::start(&Arc::new(cfg), now).unwrap().unwrap();
    let server = cb.sock.local_addr().unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();

    client.send_to(b"PANIC-TEST\n", server).await.unwrap();
    let dg = next(&mut rx).await;
    cb.on_datagram(now, &dg);
    assert_eq!(cb.faults, 1);
    assert!(cb.flush().is_empty());

    client.send_to(b"STATUS: id=a\n", server).await.unwrap();
    let dg = next(&mut rx).await;
    cb.on_datagram(now, &dg);
    cb.flush();
    let mut buf = [0u8; 600];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .expect("the service answers after a fault")
        .unwrap();
    assert!(buf[..n].starts_with(b"ACK: id=a;"), "{:?}", &buf[..n]);
    assert_eq!(cb.faults, 1);

    // A call-back taken: the service watches it with a timer.
    client
        .send_to(b"REQUEST: id=b;user1=+8610123;user2=+8610456\n", server)
        .await
        .unwrap();
    let dg = next(&mut rx).await;
    cb.on_datagram(now, &dg);
    assert_eq!(cb.flush().len(), 1, "the call-back is placed");
    let due = cb.poll_timeout().expect("the service has a timer");
    cb.panic_on_timer = true;
    cb.handle_timeout(due);
    assert_eq!(cb.faults, 2);
    assert_eq!(cb.poll_timeout(), Some(due + TIMER_REST));
    // Not run again before it rests out.
    cb.handle_timeout(due + Duration::from_millis(500));
    assert_eq!(cb.faults, 2);
    cb.panic_on_timer = false;
    cb.handle_timeout(due + TIMER_REST);
    assert_eq!(cb.faults, 2);
    assert_ne!(cb.poll_timeout(), Some(due + TIMER_REST));
}

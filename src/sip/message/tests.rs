use super::*;
use crate::sip::parse_datagram;

/// Regression: sipx's builder refuses NUL even inside a quoted-pair (RFC 4475 §3.1.1.2).
#[test]
fn to_tag_is_added_even_when_to_carries_an_escaped_nul() {
    let raw = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: \"NUL:\\\x00 x\" <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let Message::Request(req) = parse_datagram(Bytes::from_static(raw), 65535).unwrap() else {
        panic!("request expected");
    };
    let resp = Response::to_request(&req, 405, "Method Not Allowed", Some("gw1")).unwrap();
    assert_eq!(resp.to_tag().as_deref(), Some("gw1"));
    let wire = resp.to_bytes();
    assert!(wire.windows(3).any(|w| w == b"\\\x00 "), "escaped NUL kept");
}

#[test]
fn to_tag_on_a_folded_to() {
    let raw = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTO :\r\n <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let Message::Request(req) = parse_datagram(Bytes::from_static(raw), 65535).unwrap() else {
        panic!("request expected");
    };
    let resp = Response::to_request(&req, 200, "OK", Some("t9")).unwrap();
    assert_eq!(resp.to_tag().as_deref(), Some("t9"));
    assert_eq!(resp.to_uri().as_deref(), Some("sip:a@example.com"));
}

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

/// An OPTIONS whose To holds an escaped NUL (so the tag is spliced into the wire form) and
/// is padded to `pad` bytes of display name, with `from` as its From line.
fn nul_to_request(pad: usize, from: &str) -> Option<Request> {
    let raw = format!(
        "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: \"\\\0{}\" <sip:a@example.com>\r\n{from}\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        "x".repeat(pad)
    );
    match parse_datagram(Bytes::from(raw), 65535) {
        Ok(Message::Request(req)) => Some(req),
        _ => None,
    }
}

/// A To the parser accepted at its size limit still gets our tag: before, the spliced
/// response was parsed back under the same limit and refused, and the request's
/// transaction was left unanswered for ever.
#[test]
fn to_tag_is_added_to_a_to_at_the_size_limit() {
    let from = "From: <sip:b@example.com>;tag=1";
    let (pad, req) = (7000..9000)
        .rev()
        .find_map(|pad| nul_to_request(pad, from).map(|r| (pad, r)))
        .expect("some padding parses");
    assert!(nul_to_request(pad + 1, from).is_none(), "at the limit");
    let resp = Response::to_request(&req, 487, "Request Terminated", Some("0123456789abcdef"))
        .expect("answerable");
    assert_eq!(resp.to_tag().as_deref(), Some("0123456789abcdef"));
}

/// The tag goes on the To, not on a continuation line of another header that reads like one.
#[test]
fn to_tag_is_not_put_on_a_folded_line_of_another_header() {
    let req = nul_to_request(4, "From: \"x\r\n to: y\" <sip:b@example.com>;tag=1").expect("parses");
    let resp = Response::to_request(&req, 200, "OK", Some("t7")).unwrap();
    assert_eq!(resp.to_tag().as_deref(), Some("t7"));
    assert_eq!(resp.from_tag().as_deref(), Some("1"));
}

/// A request whose top Via the parser took at its size limit, stamped with where it came
/// from (RFC 3261 §18.2.1, RFC 3581), is still answerable when our To tag has to be spliced
/// in: before, the spliced response was parsed back under the plain limit, the stamped Via
/// was over it, and the transaction was left unanswered.
#[test]
fn a_via_at_the_size_limit_is_stamped_and_still_answered() {
    let request = |pad: usize| {
        let raw = format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1;rport;x={}\r\nTo: \"\\\0\" <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            "x".repeat(pad)
        );
        match parse_datagram(Bytes::from(raw), 65535) {
            Ok(Message::Request(req)) => Some(req),
            _ => None,
        }
    };
    let mut req = (7000..9000)
        .rev()
        .find_map(request)
        .expect("some padding parses");
    // The longest source a stamp can name: a full IPv6 address and a five-digit port.
    let src: std::net::SocketAddr = "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
        .parse()
        .unwrap();
    req.stamp_received(src);
    assert_eq!(
        req.top_via().and_then(|v| v.rport.flatten()),
        Some(65535),
        "stamped"
    );
    let resp = Response::to_request(&req, 487, "Request Terminated", Some("0123456789abcdef"))
        .expect("answerable");
    assert_eq!(resp.to_tag().as_deref(), Some("0123456789abcdef"));
    let sent = crate::sip::parse_sent(resp.to_bytes(), 65535).expect("what we send parses");
    assert!(matches!(sent, Message::Response(_)));
}

/// The stamp leaves a peer's bytes as they came, UTF-8 or not: the answer's Via is the
/// request's, so its branch matches the peer's transaction (RFC 3261 §17.1.3).
#[test]
fn a_stamped_via_keeps_bytes_that_are_not_utf8() {
    let raw = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK\x9e\x85;rport\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let Message::Request(mut req) = parse_datagram(Bytes::from_static(raw), 65535).unwrap() else {
        panic!("request expected");
    };
    req.stamp_received("10.1.1.1:5099".parse().unwrap());
    let resp = Response::to_request(&req, 200, "OK", Some("t1")).unwrap();
    let want: &[u8] = b"Via: SIP/2.0/UDP h;branch=z9hG4bK\x9e\x85;received=10.1.1.1;rport=5099\r\n";
    let wire = resp.to_bytes();
    assert!(
        wire.windows(want.len()).any(|w| w == want),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
}

/// The top Via's branch, read raw where it is written as we write it, and parsed when a
/// peer spaced or capitalised it; only the first hop counts.
#[test]
fn the_top_branch_is_read_raw_or_parsed() {
    let resp = |via: &str| {
        let raw = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n\
             Call-ID: c\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_datagram(Bytes::from(raw), 65535).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => panic!("response expected"),
        }
    };
    let is = |b: &[u8]| b == b"z9hG4bKours";
    assert!(resp("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKours;rport=5060").top_branch_is(is));
    assert!(resp("SIP/2.0/UDP 10.0.0.1:5060 ; BRANCH=z9hG4bKours").top_branch_is(is));
    assert!(!resp("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKother").top_branch_is(is));
    assert!(
        !resp("SIP/2.0/UDP p;branch=z9hG4bKx, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKours")
            .top_branch_is(is),
        "a lower hop is not the top"
    );
    assert!(!resp("SIP/2.0/UDP 10.0.0.1").top_branch_is(is));
}

/// A To whose display name is not UTF-8 is tagged byte for byte: rebuilt from text, each
/// such byte came back as a three-byte U+FFFD, and a stateless 403 to a spoofed source was
/// three times its request's size.
#[test]
fn a_non_utf8_to_is_tagged_as_it_came() {
    let name = vec![0x80u8; 4000];
    let mut raw =
        b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: \""
            .to_vec();
    raw.extend_from_slice(&name);
    raw.extend_from_slice(b"\" <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    let Message::Request(req) = parse_datagram(Bytes::from(raw.clone()), 65535).unwrap() else {
        panic!("request expected");
    };
    let resp = Response::to_request(&req, 403, "Forbidden", Some("t1")).unwrap();
    let wire = resp.to_bytes();
    assert!(
        wire.len() < raw.len() + 256,
        "{} from {}",
        wire.len(),
        raw.len()
    );
    let mut to = b"\"".to_vec();
    to.extend_from_slice(&name);
    to.extend_from_slice(b"\" <sip:a@example.com>;tag=t1");
    assert!(wire.windows(to.len()).any(|w| w == to.as_slice()));
    assert_eq!(resp.to_tag().as_deref(), Some("t1"));
}

/// A body's coding is read from every Content-Encoding line, `identity` left out: before,
/// `identity` on the first line and `gzip` on the next read as `identity`, and a PRACK
/// answer carried a gzip body labelled so.
#[test]
fn a_bodys_coding_is_read_from_every_line() {
    use crate::sip::Body;
    let raw = b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Encoding: identity\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nxx";
    let Message::Request(req) = parse_datagram(Bytes::from_static(raw), 65535).unwrap() else {
        panic!("request expected");
    };
    assert!(req.encoded());
    assert_eq!(req.encoding().as_deref(), Some("gzip"));
}

/// A folded header copied to the other leg goes unfolded: a far end that does not unfold
/// (and trims the continuation line) would read `Content-Length: 0` as a header of its own.
/// Before, it was copied with its fold. One without a fold is copied byte for byte.
#[test]
fn a_folded_header_is_copied_unfolded() {
    let raw = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nX-Foo: a\r\n Content-Length: 0\r\nX-Bar:  kept   as is\r\nContent-Length: 0\r\n\r\n";
    let Message::Request(src) = parse_datagram(Bytes::from_static(raw), 65535).unwrap() else {
        panic!("request expected");
    };
    let mut out = src.clone();
    let (foo, bar) = (Hdr::named("X-Foo"), Hdr::named("X-Bar"));
    out.remove_header(&foo);
    out.remove_header(&bar);
    out.copy_headers_where(src.headers_raw(), |h| *h == foo || *h == bar);
    let wire = String::from_utf8_lossy(&out.to_bytes()).into_owned();
    assert!(
        wire.contains("\r\nX-Foo: a Content-Length: 0\r\n"),
        "{wire}"
    );
    assert!(!wire.contains("a\r\n Content"), "{wire}");
    assert!(wire.contains("\r\nX-Bar:  kept   as is\r\n"), "{wire}");
}

/// A queued message is charged what it holds, its parsed headers too, not its wire bytes
/// alone: the queues' byte budgets bound memory, and a datagram of many tiny headers holds
/// many times its size once parsed (before, a 1.3 KB one of 256 headers was charged 1.3 KB
/// and held some 23 KB: the queues' budgets were 17 times what they said).
#[test]
fn a_message_is_charged_its_parsed_headers_too() {
    let mut text = String::from(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKh\r\n\
         From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: h\r\nCSeq: 1 OPTIONS\r\n",
    );
    for _ in 0..240 {
        text.push_str("X:y\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    let wire = text.len();
    let msg = parse_datagram(Bytes::from(text), 65535).expect("parses");
    let held = msg.held_size(wire);
    assert!(held >= wire * 10, "{held} for {wire} bytes on the wire");
    // An ordinary message is charged little over its size.
    let plain = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKp\r\n\
         From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: p\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n";
    let msg = parse_datagram(Bytes::from_static(plain.as_bytes()), 65535).unwrap();
    assert!(msg.held_size(plain.len()) < plain.len() * 6);
}

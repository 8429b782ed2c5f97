use super::*;

#[test]
fn keep_alive_pings_are_counted_however_reads_split_them_and_are_no_message() {
    let mut f = StreamFramer::new(65535);
    assert!(f.push(b"\r\n").unwrap().is_empty());
    assert_eq!(f.take_pings(), 0);
    assert!(!f.mid_message());
    assert!(f.push(b"\r\n").unwrap().is_empty());
    assert_eq!(f.take_pings(), 1);
    assert!(
        f.push(b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\n")
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.take_pings(), 1);
    assert!(f.mid_message(), "a message has begun");
}

fn options(body: &str, pad: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bK1\r\n\
         From: <sip:b@127.0.0.2>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nX-Pad: {}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        "p".repeat(pad),
        body.len()
    )
    .into_bytes()
}

/// A Content-Length the parser reads otherwise than the framer would have framed by
/// loses the stream, as any length in doubt does: folded digits (`1` and ` 0` on the
/// next line, which RFC 3261 §7.3.1 joins with a space: no number) and a value with a
/// form feed or a CR in it. Before, the framer read `10` and `5`, framed by them, and
/// went on past a message the parser refused.
#[test]
fn a_length_the_parser_would_not_read_as_framed_loses_the_stream() {
    let with = |length: &str| {
        String::from_utf8(options("0123456789", 0))
            .unwrap()
            .replace("Content-Length: 10\r\n", length)
    };
    for length in [
        "Content-Length: 1\r\n 0\r\n",
        "Content-Length: 10\x0c\r\n",
        "Content-Length: 1\r0\r\n",
    ] {
        let wire = with(length);
        assert!(wire.contains(length), "{wire}");
        let mut f = StreamFramer::new(65535);
        assert!(f.push(wire.as_bytes()).is_err(), "{length:?}");
    }
    // Space and tab around it are as ever.
    let mut f = StreamFramer::new(65535);
    let framed = f
        .push(with("Content-Length: \t10 \r\n").as_bytes())
        .unwrap();
    assert!(matches!(framed.as_slice(), [Framed::Message(_)]));
}

/// A keep-alive ping is a CRLF pair: a lone CRLF before a message and another after it
/// are no ping (some peers end each message with a CRLF). Before, the two made one and
/// drew a pong.
#[test]
fn lone_crlfs_on_either_side_of_a_message_are_no_ping() {
    let mut f = StreamFramer::new(65535);
    let mut wire = b"\r\n".to_vec();
    wire.extend(options("", 0));
    wire.extend(b"\r\n");
    assert_eq!(f.push(&wire).unwrap().len(), 1);
    assert_eq!(f.take_pings(), 0);
    // The same CRLF, then one more: a pair, a ping.
    assert!(f.push(b"\r\n").unwrap().is_empty());
    assert_eq!(f.take_pings(), 1);
    // A ping split over two reads, a message right behind its second half: a ping.
    assert!(f.push(b"\r\n").unwrap().is_empty());
    assert_eq!(f.take_pings(), 0);
    let mut rest = b"\r\n".to_vec();
    rest.extend(options("", 0));
    assert_eq!(f.push(&rest).unwrap().len(), 1);
    assert_eq!(f.take_pings(), 1);
}

/// A message over the limit whose header section is within it is answered (a 513, RFC 3261
/// §21.5.14) from that section, its body skipped unread however the reads split it, and
/// the stream goes on. Before, the connection was closed and the trunk's messages behind
/// it on the stream were lost with it.
#[test]
fn the_limit_is_on_the_whole_message_and_a_body_over_it_is_skipped_unread() {
    let at_limit = options("v=0\r\n", 100);
    let mut f = StreamFramer::new(at_limit.len());
    assert_eq!(
        f.push(&at_limit).unwrap().len(),
        1,
        "a message of max bytes passes"
    );

    // A header section under the limit declaring a body that takes the message over it
    // (each alone under the limit: what sipx's stream parser let through).
    let max = 400;
    let body = "x".repeat(300);
    let wire = options(&body, 0);
    let head = wire.len() - body.len();
    assert!(head < max && body.len() < max && wire.len() > max);
    let mut f = StreamFramer::new(max);
    let got = f.push(&wire[..head]).unwrap();
    let [Framed::TooLarge { head: kept }] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(
        &kept[..],
        &wire[..head],
        "its header section, and only that"
    );
    assert!(f.mid_message(), "its body is still to come");
    let next = options("", 0);
    for split in [1, 100, 299, 300] {
        let mut f = StreamFramer::new(max);
        let mut stream = wire.clone();
        stream.extend_from_slice(&next);
        let mut got = Vec::new();
        for chunk in [&stream[..head + split], &stream[head + split..]] {
            got.extend(f.push(chunk).unwrap());
        }
        assert!(
            matches!(&got[..], [Framed::TooLarge { .. }, Framed::Message(_)]),
            "split {split}: {got:?}"
        );
        assert!(!f.mid_message());
    }
    // A response so large is not skipped: the connection's loss fails its transaction at
    // once, where a skipped one would leave it waiting on a peer that answered.
    let response = String::from_utf8(wire.clone()).unwrap().replacen(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0",
        "SIP/2.0 200 OK",
        1,
    );
    let mut f = StreamFramer::new(max);
    assert!(matches!(
        f.push(response.as_bytes()),
        Err(SipError::TooLarge(_))
    ));
    // Past what is worth skipping, the stream is given up.
    let huge = String::from_utf8(options("", 0)).unwrap().replace(
        "Content-Length: 0",
        &format!("Content-Length: {}", MAX_SKIP + 1),
    );
    let mut f = StreamFramer::new(max);
    let err = f.push(huge.as_bytes()).unwrap_err();
    assert!(matches!(err, SipError::TooLarge(_)), "{err}");
    assert!(f.push(b"OPTIONS").is_err(), "the stream stays failed");
    assert!(!f.mid_message(), "nothing of it is kept");
    let mut f = StreamFramer::new(max);
    let at_most = huge.replace(&(MAX_SKIP + 1).to_string(), &MAX_SKIP.to_string());
    assert!(matches!(
        &f.push(at_most.as_bytes()).unwrap()[..],
        [Framed::TooLarge { .. }]
    ));
}

/// A message the stream frames (its Content-Length is good) but that does not parse is
/// one bad message, not a lost stream: the messages behind it on the connection are
/// still read. Before, the connection was closed and a trunk's BYE or 200 in the same
/// read was lost with it (over UDP the same bytes get a 400 and nothing else is lost).
#[test]
fn a_framed_message_that_does_not_parse_does_not_end_the_stream() {
    let bad_header = options("", 9000); // one header over the parser's 8 KiB
    let twice = String::from_utf8(options("", 0))
        .unwrap()
        .replace("Content-Length: 0\r\n", "l: 0\r\nContent-Length: 0\r\n");
    let mut stream = bad_header.clone();
    stream.extend(twice.as_bytes());
    stream.extend(options("v=0\r\n", 0));
    for size in [7, stream.len()] {
        let mut f = StreamFramer::new(65535);
        let mut got = Vec::new();
        for piece in stream.chunks(size) {
            got.extend(f.push(piece).unwrap());
        }
        assert_eq!(got.len(), 3, "reads of {size}");
        assert!(matches!(&got[0], Framed::Unparseable { wire, .. } if wire[..] == bad_header[..]));
        assert!(matches!(&got[1], Framed::Unparseable { .. }));
        let Framed::Message(Message::Request(last)) = &got[2] else {
            panic!("the message behind them was read: {:?}", got[2]);
        };
        assert_eq!(&last.body()[..], b"v=0\r\n");
    }
}

#[test]
fn how_reads_split_the_stream_changes_nothing() {
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend(options("", 3));
    stream.extend(b"\r\n\r\n");
    stream.extend(options("v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\n", 7));
    stream.extend(options("", 0));
    for size in [1, 2, 3, 5, 64, stream.len()] {
        let mut f = StreamFramer::new(65535);
        let mut got = Vec::new();
        for piece in stream.chunks(size) {
            got.extend(f.push(piece).unwrap());
        }
        assert_eq!(got.len(), 3, "reads of {size}");
        let Framed::Message(Message::Request(second)) = &got[1] else {
            panic!("a request was sent");
        };
        assert_eq!(second.body().len(), 31, "reads of {size}");
        assert_eq!(f.take_pings(), 2, "reads of {size}");
        assert!(!f.mid_message());
    }
}

#[test]
fn content_length_is_read_in_every_legal_spelling_and_refused_when_unusable() {
    assert_eq!(content_length(b"INVITE x SIP/2.0\r\nl: 12").unwrap(), 12);
    assert_eq!(
        content_length(b"INVITE x SIP/2.0\r\ncontent-LENGTH \t:\t 7 ").unwrap(),
        7
    );
    assert_eq!(
        content_length(b"INVITE x SIP/2.0\r\nContent-Length:\r\n  5\r\nX: 1").unwrap(),
        5
    );
    assert_eq!(
        content_length(b"INVITE x SIP/2.0\r\nl: 3\r\nContent-Length: 3").unwrap(),
        3
    );
    for bad in [
        &b"INVITE x SIP/2.0\r\nX-Length: 3"[..],
        b"INVITE x SIP/2.0\r\nContent-Length: 3\r\nl: 4",
        b"INVITE x SIP/2.0\r\nContent-Length: -1",
        b"INVITE x SIP/2.0\r\nContent-Length: 1e3",
        b"INVITE x SIP/2.0\r\nContent-Length: 99999999999999999999999",
        b"INVITE x SIP/2.0\r\nContent-Length:",
    ] {
        assert!(
            content_length(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn one_byte_over_the_limit_is_refused_whether_the_head_or_the_body_takes_it_over() {
    let wire = options("v=0\r\n", 40);
    let mut f = StreamFramer::new(wire.len() - 1);
    assert!(
        matches!(&f.push(&wire).unwrap()[..], [Framed::TooLarge { .. }]),
        "the body"
    );
    let mut f = StreamFramer::new(wire.len());
    assert_eq!(f.push(&wire).unwrap().len(), 1, "at the limit");

    // A message without body: its header section and the CRLFCRLF ending it.
    let bare = options("", 40);
    let end = bare.len();
    let mut f = StreamFramer::new(end);
    assert!(
        f.push(&bare[..end - 1]).unwrap().is_empty(),
        "room for the last byte"
    );
    assert_eq!(f.push(&bare[end - 1..]).unwrap().len(), 1);
    // One byte less of room: refused as soon as the bytes before the terminator's last
    // one fill it, without waiting for the rest.
    let mut f = StreamFramer::new(end - 1);
    assert!(
        matches!(f.push(&bare[..end - 1]), Err(SipError::TooLarge(_))),
        "the head"
    );
}

#[test]
fn a_length_folded_into_another_header_frames_nothing() {
    // `l: 50` continues the Subject: this message has no Content-Length, which a stream
    // cannot frame.
    let wire =
        b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nSubject: x\r\n l: 50\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let mut f = StreamFramer::new(65535);
    assert!(matches!(
        f.push(wire),
        Err(SipError::MissingHeader("Content-Length"))
    ));
}

#[test]
fn a_fault_drops_the_whole_read_for_its_framing_is_in_doubt() {
    // A Content-Length one short of its body: the first message is framed without its
    // last byte, which then starts a "message" that cannot be framed. Nothing of the
    // read is handed on, not even the first message, cut as it is.
    let mut stream = options("v=0\r\n", 0);
    let len_at = stream
        .windows(17)
        .position(|w| w == b"Content-Length: 5")
        .unwrap();
    stream[len_at + 16] = b'4';
    stream.extend(options("", 0));
    let mut f = StreamFramer::new(65535);
    assert!(f.push(&stream).is_err());
    assert!(f.push(&options("", 0)).is_err(), "the stream stays failed");
}

#[test]
fn a_frame_that_does_not_start_as_sip_ends_the_stream() {
    let mut f = StreamFramer::new(65535);
    assert!(f.push(b"NOT SIP\r\nContent-Length: 0\r\n\r\n").is_err());
    assert!(f.push(&options("", 0)).is_err());
}

/// One large message read, the room it took goes back: a connection kept open by
/// keep-alives for hours held up to twice the message size before.
#[test]
fn the_room_a_large_message_took_goes_back_once_it_is_read() {
    let mut f = StreamFramer::new(65535);
    let big = options("", 60_000);
    let (head, tail) = big.split_at(30_000);
    assert!(f.push(head).unwrap().is_empty());
    assert_eq!(f.push(tail).unwrap().len(), 1);
    assert!(
        !f.grown && f.buf.capacity() == 0,
        "the large buffer is kept"
    );
    // An ordinary message after it is framed as ever.
    assert_eq!(f.push(&options("", 0)).unwrap().len(), 1);
}
